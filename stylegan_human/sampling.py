"""From seeds to images: the project-wide sampling conventions and the loop that applies them.

seed -> ``z = RandomState(seed).randn(1, z_dim)`` -> ``G.mapping(z, c, truncation_psi,
truncation_cutoff)`` -> w ``[N, num_ws, w_dim]`` -> ``G.synthesis(w, noise_mode,
force_fp32=True)`` -> NCHW in [-1, 1] -> ``(x * 127.5 + 128).clamp(0, 255)`` truncated to
uint8 HWC. These exact steps make a seed give the same person here, upstream and in
published results.

Nothing here writes files: :func:`iter_samples` yields one :class:`Sample` at a time, so
a caller can write each as it comes and keep memory flat in the number of seeds.
"""

import contextlib
import dataclasses
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from dnnlib.errors import InputError
from torch_utils import memory
from torch_utils.ops import ops_mode

Device = Union[str, torch.device, None]


@dataclasses.dataclass
class Sample:
    """One generated image with the latents that made it."""
    seed: int
    image: np.ndarray   # uint8 [H, W, C]
    z: np.ndarray       # float64 [z_dim], exactly what the seed gives
    w: np.ndarray       # float32 [num_ws, w_dim], after truncation


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The project-wide seed convention (same as upstream and NVIDIA's scripts): float64 [1, z_dim]."""
    return np.random.RandomState(seed).randn(1, z_dim)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """NCHW in [-1, 1] -> NHWC uint8, with upstream's rounding (x * 127.5 + 128, truncated)."""
    return (images.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def make_labels(G: torch.nn.Module, class_idx: Optional[int], batch_size: int, device: Device) -> torch.Tensor:
    """One-hot class labels; a conditional network needs a class, an unconditional one refuses it."""
    c = torch.zeros([batch_size, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            raise InputError(f'this network is unconditional and takes no class (got {class_idx})', param='class_idx')
        return c
    if class_idx is None:
        raise InputError(f'this network is conditional ({G.c_dim} classes): give a class index', param='class_idx')
    if not 0 <= class_idx < G.c_dim:
        raise InputError(f'class {class_idx} does not exist: this network has classes 0-{G.c_dim - 1}', param='class_idx')
    c[:, class_idx] = 1
    return c


def make_transform(translate: Tuple[float, float] = (0, 0), angle: float = 0) -> np.ndarray:
    """StyleGAN3 input transform: rotate by ``angle`` degrees, then translate."""
    m = np.eye(3)
    s = np.sin(angle / 360.0 * np.pi * 2)
    c = np.cos(angle / 360.0 * np.pi * 2)
    m[0][0], m[0][1], m[0][2] = c, s, translate[0]
    m[1][0], m[1][1], m[1][2] = -s, c, translate[1]
    return m


@contextlib.contextmanager
def input_transform(G: torch.nn.Module, translate: Tuple[float, float] = (0, 0), rotate: float = 0) -> Iterator[None]:
    """Temporarily set a StyleGAN3 generator's input translation/rotation."""
    wants = tuple(translate) != (0, 0) or rotate != 0
    synthesis_input = getattr(G.synthesis, 'input', None)
    if synthesis_input is None or not hasattr(synthesis_input, 'transform'):
        if wants:
            raise InputError('moving or rotating the input needs a StyleGAN3 network', param='translate')
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


def synthesize(G: torch.nn.Module, ws: torch.Tensor, **synthesis_kwargs) -> torch.Tensor:
    """``G.synthesis(ws, ...)``, image by image where that is fastest (CPU inference, fast ops).

    The CPU fast paths are tuned for one image: a larger batch there buys no speed, only
    memory, and running each image alone gives exactly the pixels of batch 1. Elsewhere
    (GPU, gradients, reference ops) the batch goes through in one call.
    """
    if ws.shape[0] > 1 and ops_mode.fast_cpu_inference(ws):
        return torch.cat([G.synthesis(ws[i:i + 1], **synthesis_kwargs) for i in range(ws.shape[0])])
    return G.synthesis(ws, **synthesis_kwargs)


def map_seeds(G: torch.nn.Module, seeds: Sequence[int], truncation_psi: float = 1.0,
              truncation_cutoff: Optional[int] = None, class_idx: Optional[int] = None,
              device: Device = None) -> Tuple[np.ndarray, torch.Tensor]:
    """z (float64 numpy [N, z_dim]) and w ([N, num_ws, w_dim] on ``device``) for ``seeds``.

    The cutoff is passed only when given, so each network keeps its own default (all layers
    for StyleGAN2/3, the first 8 for StyleGAN1, as upstream).
    """
    device = torch.device(device) if device is not None else next(G.parameters()).device
    z_np = np.concatenate([seed_to_z(seed, G.z_dim) for seed in seeds])
    mapping_kwargs = dict(truncation_psi=truncation_psi)
    if truncation_cutoff is not None:
        mapping_kwargs['truncation_cutoff'] = truncation_cutoff
    c = make_labels(G, class_idx, len(seeds), device)
    return z_np, G.mapping(torch.from_numpy(z_np).to(device), c, **mapping_kwargs)


def iter_samples(G: torch.nn.Module, seeds: Iterable[int], truncation_psi: float = 1.0,
                 truncation_cutoff: Optional[int] = None, noise_mode: str = 'const',
                 class_idx: Optional[int] = None, translate: Tuple[float, float] = (0, 0), rotate: float = 0,
                 batch_size: Optional[int] = None, device: Device = None) -> Iterator[Sample]:
    """Yield one :class:`Sample` per seed, in order, as soon as its batch is made.

    ``batch_size=None`` runs one image first, measures its widest layer, then takes what
    the memory free on ``device`` allows (1 on CPU). Only one batch is held at a time.
    """
    device = torch.device(device) if device is not None else next(G.parameters()).device
    G = G.to(device)
    seeds = list(seeds)
    with input_transform(G, translate, rotate), torch.no_grad():
        done = 0
        while done < len(seeds):
            batch = seeds[done:done + (batch_size or 1)]
            z_np, w = map_seeds(G, batch, truncation_psi, truncation_cutoff, class_idx, device)
            probe = memory.widest_output(G.synthesis) if batch_size is None else contextlib.nullcontext([0])
            with probe as widest:
                images = to_uint8(synthesize(G, w, noise_mode=noise_mode, force_fp32=True)).cpu().numpy()
            if batch_size is None:
                batch_size = memory.pick_batch_size(widest[0], device, len(seeds) - len(batch))
            done += len(batch)
            w_np = w.float().cpu().numpy()
            for i, seed in enumerate(batch):
                yield Sample(seed=seed, image=images[i], z=z_np[i], w=w_np[i])


def generate_images(G: torch.nn.Module, seeds: Iterable[int], truncation_psi: float = 1.0,
                    truncation_cutoff: Optional[int] = None, noise_mode: str = 'const',
                    class_idx: Optional[int] = None, translate: Tuple[float, float] = (0, 0), rotate: float = 0,
                    batch_size: Optional[int] = None, device: Device = None, progress: bool = False) -> List[Sample]:
    """Every seed's :class:`Sample` as a list (nothing is written). For many seeds, iterate
    :func:`iter_samples` instead and handle each sample as it comes.

    ``G`` is a generator as returned by ``legacy.load_network(...)['G_ema']``.
    """
    seeds = list(seeds)
    samples = iter_samples(G, seeds, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                           noise_mode=noise_mode, class_idx=class_idx, translate=translate, rotate=rotate,
                           batch_size=batch_size, device=device)
    return list(with_progress(samples, len(seeds), enabled=progress))


def with_progress(items: Iterable, total: int, enabled: bool = True, unit: str = 'img',
                  desc: str = 'Generating') -> Iterator:
    """``items`` passed through a tqdm progress bar (on stderr) when ``enabled``."""
    from tqdm import tqdm
    with tqdm(total=total, unit=unit, disable=not enabled, desc=desc) as bar:
        for item in items:
            yield item
            bar.update(1)


def version_of(G: torch.nn.Module) -> int:
    """1, 2 or 3, from the generator's own module."""
    module = type(G).__module__
    for version in (1, 2, 3):
        if module.endswith(f'stylegan{version}'):
            return version
    return 3 if hasattr(G.synthesis, 'input') else 2
