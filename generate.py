"""Generate full-body images from a network pickle, a URL or a model-zoo name.

Examples:

\b
# Images without truncation (upstream command line, unchanged)
python generate.py --outdir=outputs/generate/stylegan_human_v2_1024 --trunc=1 --seeds=1,3,5,7 \\
    --network=pretrained_models/stylegan_human_v2_1024.pkl --version 2

\b
# A model-zoo name downloads once into the cache; runs on CPU, CUDA or MPS
python generate.py --network=stylegan_human_v2_512 --seeds=0-9 --trunc=0.8 --outdir=out

\b
# StyleGAN3: shift and rotate the input grid
python generate.py --network=stylegan_human_v3_512 --seeds=0 --translate=0.1,0 --rotate=10 --outdir=out

From a notebook: ``generate_images(G, seeds=[0, 1])`` returns the images.
"""

import contextlib
import dataclasses
import os

import click
import numpy as np
import torch

import cli_common
import legacy
from dnnlib.atomic import atomic_write, save_image
from torch_utils import memory


@dataclasses.dataclass
class Sample:
    """One generated image with the latents that made it."""
    seed: int
    image: np.ndarray   # uint8 [H, W, C]
    z: np.ndarray       # float64 [z_dim], exactly what the seed gives
    w: np.ndarray       # float32 [num_ws, w_dim], after truncation


def seed_to_z(seed, z_dim):
    """The project-wide seed convention (same as upstream and NVIDIA's scripts)."""
    return np.random.RandomState(seed).randn(1, z_dim)


def to_uint8(images):
    """NCHW in [-1, 1] -> NHWC uint8, with upstream's rounding (x * 127.5 + 128, truncated)."""
    return (images.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def make_transform(translate=(0, 0), angle=0):
    """StyleGAN3 input transform: rotate by ``angle`` degrees, then translate."""
    m = np.eye(3)
    s = np.sin(angle / 360.0 * np.pi * 2)
    c = np.cos(angle / 360.0 * np.pi * 2)
    m[0][0], m[0][1], m[0][2] = c, s, translate[0]
    m[1][0], m[1][1], m[1][2] = -s, c, translate[1]
    return m


def make_labels(G, class_idx, batch_size, device):
    """One-hot class labels; a conditional network needs a class, an unconditional one refuses it."""
    c = torch.zeros([batch_size, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            raise ValueError('--class: this network is unconditional; drop --class')
        return c
    if class_idx is None:
        raise ValueError(f'this network is conditional ({G.c_dim} classes): pass --class N')
    if not 0 <= class_idx < G.c_dim:
        raise ValueError(f'--class {class_idx}: must be between 0 and {G.c_dim - 1}')
    c[:, class_idx] = 1
    return c


@contextlib.contextmanager
def input_transform(G, translate=(0, 0), rotate=0):
    """Temporarily set a StyleGAN3 generator's input translation/rotation."""
    wants = tuple(translate) != (0, 0) or rotate != 0
    synthesis_input = getattr(G.synthesis, 'input', None)
    if synthesis_input is None or not hasattr(synthesis_input, 'transform'):
        if wants:
            raise ValueError('--translate/--rotate need a StyleGAN3 network')
        yield
        return
    saved = synthesis_input.transform.detach().clone()
    if wants:
        m = np.linalg.inv(make_transform(translate, rotate))
        with torch.no_grad():
            synthesis_input.transform.copy_(torch.from_numpy(m))
    try:
        yield
    finally:
        with torch.no_grad():
            synthesis_input.transform.copy_(saved)


def generate_images(G, seeds, truncation_psi=1.0, truncation_cutoff=None, noise_mode='const',
                    class_idx=None, translate=(0, 0), rotate=0, batch_size=None, device=None,
                    progress=False):
    """Generate one image per seed and return a list of :class:`Sample` (nothing is written).

    ``batch_size=None`` picks the batch from the memory free on ``device``.

    ``G`` is a generator as returned by ``legacy.load_network(...)['G_ema']``.
    Raises ValueError for options the network cannot honour.
    """
    device = torch.device(device) if device is not None else next(G.parameters()).device
    G = G.to(device)
    seeds = list(seeds)
    # The cutoff is passed only when given, so each network keeps its own default
    # (all layers for StyleGAN2/3, the first 8 for StyleGAN1, as upstream).
    mapping_kwargs = dict(truncation_psi=truncation_psi)
    if truncation_cutoff is not None:
        mapping_kwargs['truncation_cutoff'] = truncation_cutoff
    samples = []
    bar = _progress(len(seeds), progress)
    with input_transform(G, translate, rotate), torch.no_grad():
        done = 0
        while done < len(seeds):
            # batch_size=None: one image first, measuring its widest layer; then what memory allows.
            size = batch_size or 1
            batch = seeds[done:done + size]
            z_np = np.concatenate([seed_to_z(seed, G.z_dim) for seed in batch])
            z = torch.from_numpy(z_np).to(device)
            c = make_labels(G, class_idx, len(batch), device)
            w = G.mapping(z, c, **mapping_kwargs)
            probe = memory.widest_output(G.synthesis) if batch_size is None else contextlib.nullcontext([0])
            with probe as widest:
                images = to_uint8(G.synthesis(w, noise_mode=noise_mode, force_fp32=True)).cpu().numpy()
            if batch_size is None:
                batch_size = memory.pick_batch_size(widest[0], device, len(seeds) - len(batch))
            done += len(batch)
            w_np = w.float().cpu().numpy()
            for i, seed in enumerate(batch):
                samples.append(Sample(seed=seed, image=images[i], z=z_np[i], w=w_np[i]))
            bar.update(len(batch))
    bar.close()
    return samples


def _progress(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, unit='img', disable=not enabled, desc='Generating')


def save_latents(samples, path):
    """Write seeds, z and w of every sample to an .npz file (atomically)."""
    arrays = dict(seed=np.array([s.seed for s in samples], dtype=np.int64),
                  z=np.stack([s.z for s in samples]),
                  w=np.stack([s.w for s in samples]))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_latent(path, G, device='cpu'):
    """A w [1, 1, w_dim] or w+ [1, num_ws, w_dim] code for ``G`` from a PTI pivot (.pt) or a latents.npz
    (its first ``w``). Anything else raises ValueError with one line."""
    try:
        if str(path).endswith('.npz'):
            with np.load(path) as data:
                if 'w' not in data:
                    raise ValueError(f'{path}: no "w" array in this .npz')
                w = torch.from_numpy(np.asarray(data['w'][:1] if data['w'].ndim == 3 else data['w'][None]))
        else:
            w = torch.load(path, map_location='cpu', weights_only=True)
    except ValueError:
        raise
    except Exception as err:  # missing file, pickle, zip and tensor errors alike: not a latent file
        raise ValueError(f'{path}: not a latent file ({type(err).__name__}: {err})'.splitlines()[0]) from None
    if not isinstance(w, torch.Tensor) or w.ndim != 3 or w.shape[0] != 1 or w.shape[2] != G.w_dim \
            or w.shape[1] not in (1, G.num_ws):
        shape = list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f'{path}: latent of shape {shape}; this network takes [1, {G.num_ws}, {G.w_dim}]')
    return w.to(device, torch.float32)


def version_of(G):
    """1, 2 or 3, from the generator's own module."""
    module = type(G).__module__
    for version in (1, 2, 3):
        if module.endswith(f'stylegan{version}'):
            return version
    return 3 if hasattr(G.synthesis, 'input') else 2


# ----------------------------------------------------------------------------


@click.command(cls=cli_common.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--seeds', type=cli_common.SEEDS, help='List of random seeds, e.g. 0-10,15', required=True)
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=1, show_default=True)
@click.option('--trunc-cutoff', 'truncation_cutoff', type=int, help='Truncate only the first N ws (default: all for StyleGAN2/3, 8 for StyleGAN1)')
@click.option('--noise-mode', help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir', help='Where to save the output images', default='outputs/generate/', type=str, show_default=True, metavar='DIR')
@click.option('--version', help='StyleGAN version, 1, 2 or 3 (default: read from the file)', type=click.IntRange(1, 3))
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--translate', type=cli_common.VEC2, default='0,0', show_default=True, help='StyleGAN3 input translation, e.g. 0.3,1')
@click.option('--rotate', type=float, default=0, show_default=True, help='StyleGAN3 input rotation in degrees')
@click.option('--device', default='auto', show_default=True, help=cli_common.DEVICE_OPTION_HELP)
@click.option('--batch', 'batch_size', type=click.IntRange(min=1), default=None, help='Images per forward pass  [default: 1 on CPU; on a GPU as many as half its free memory holds, at most 32]')
@click.option('--latents/--no-latents', 'write_latents', default=True, show_default=True, help='Also write seeds, z and w to OUTDIR/latents.npz')
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@cli_common.user_errors
def main(network_pkl, seeds, truncation_psi, truncation_cutoff, noise_mode, outdir, version,
         class_idx, translate, rotate, device, batch_size, write_latents, trust_embedded_code):
    device = cli_common.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    found = version_of(G)
    if version is not None and version != found and {version, found} != {2, 3}:
        print(f'Note: --version {version} given, but the file holds a StyleGAN{found} network; using that.')
    try:
        samples = generate_images(G, seeds, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                  noise_mode=noise_mode, class_idx=class_idx, translate=translate, rotate=rotate,
                                  batch_size=batch_size, device=device, progress=True)
    except ValueError as err:
        raise cli_common.UserError(str(err)) from None
    os.makedirs(outdir, exist_ok=True)
    for sample in samples:
        save_image(sample.image, os.path.join(outdir, f'seed{sample.seed:04d}.png'))
    if write_latents:
        save_latents(samples, os.path.join(outdir, 'latents.npz'))
    print(f'Wrote {len(samples)} image(s) to {outdir}')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
