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

Each image is written as soon as it is made; Ctrl-C (or kill) finishes the image in
hand and stops, keeping every image written so far (and their latents).

From a notebook: ``stylegan_human.sampling.generate_images(G, seeds=[0, 1])`` returns the images.
"""

import os

import click

from dnnlib.atomic import save_image
import legacy
from stylegan_human import commands, runtime, sampling
from stylegan_human.latent_files import LatentStream
# The sampling library's names, for code and notebooks written against this module.
from stylegan_human.latent_files import load_latent, save_latents  # noqa: F401
from stylegan_human.sampling import (  # noqa: F401
    Sample, generate_images, input_transform, make_labels, make_transform, seed_to_z, to_uint8, version_of)


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--seeds', type=commands.SEEDS, help='List of random seeds, e.g. 0-10,15', required=True)
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=1, show_default=True)
@click.option('--trunc-cutoff', 'truncation_cutoff', type=int, help='Truncate only the first N ws (default: all for StyleGAN2/3, 8 for StyleGAN1)')
@click.option('--noise-mode', help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir', help='Where to save the output images', default='outputs/generate/', type=str, show_default=True, metavar='DIR')
@click.option('--version', help='StyleGAN version, 1, 2 or 3 (default: read from the file)', type=click.IntRange(1, 3))
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--translate', type=commands.VEC2, default='0,0', show_default=True, help='StyleGAN3 input translation, e.g. 0.3,1')
@click.option('--rotate', type=float, default=0, show_default=True, help='StyleGAN3 input rotation in degrees')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--batch', 'batch_size', type=click.IntRange(min=1), default=None, help='Images per forward pass  [default: 1 on CPU; on a GPU as many as half its free memory holds, at most 32]')
@click.option('--latents/--no-latents', 'write_latents', default=True, show_default=True, help='Also write seeds, z and w to OUTDIR/latents.npz')
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@commands.user_errors
def main(network_pkl, seeds, truncation_psi, truncation_cutoff, noise_mode, outdir, version,
         class_idx, translate, rotate, device, batch_size, write_latents, trust_embedded_code):
    device = commands.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    found = sampling.version_of(G)
    if version is not None and version != found and {version, found} != {2, 3}:
        print(f'Note: --version {version} given, but the file holds a StyleGAN{found} network; using that.')
    samples = sampling.iter_samples(G, seeds, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                    noise_mode=noise_mode, class_idx=class_idx, translate=translate, rotate=rotate,
                                    batch_size=batch_size, device=device)
    first = next(samples)   # options the network cannot honour fail here, before any folder is made
    os.makedirs(outdir, exist_ok=True)
    latents = LatentStream(os.path.join(outdir, 'latents.npz')) if write_latents else None
    written = 0
    try:
        with commands.stop_between_items() as interrupt:
            for sample in sampling.with_progress(_chain(first, samples), len(seeds)):
                save_image(sample.image, os.path.join(outdir, f'seed{sample.seed:04d}.png'))
                if latents is not None:
                    latents.add(sample)
                written += 1
                if interrupt.requested:
                    break
    finally:
        if latents is not None:
            latents.close()   # the latents of every image written, also after an interrupt
    if written < len(seeds):
        commands.report_interrupted(written, len(seeds), 'image(s)', outdir, interrupt.exit_code)
    print(f'Wrote {written} image(s) to {outdir}')


def _chain(first, rest):
    yield first
    yield from rest


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
