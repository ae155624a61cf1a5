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

\b
# Render saved codes: projector.py's projected_w.npz, a PTI pivot or a latents.npz (NVIDIA's option)
python generate.py --network=stylegan_human_v2_512 --projected-w=out/projected_w.npz --outdir=out

\b
# Several processes (GPUs, or machines) share the seeds; each image is made once
torchrun --nproc-per-node=4 generate.py --network=stylegan_human_v2_512 --seeds=0-49999 --outdir=out

Each image is written as soon as it is made; Ctrl-C (or kill) finishes the image in
hand and stops, keeping every image written so far (and their latents).

From a notebook: ``stylegan_human.sampling.generate_images(G, seeds=[0, 1])`` returns the images.
"""

import itertools
import os

import click
import torch

from dnnlib.atomic import save_image
import legacy
from stylegan_human import commands, processes, runtime, sampling
from stylegan_human.latent_files import LatentStream, load_latents, merge_latent_files
# The sampling library's names, for code and notebooks written against this module.
from stylegan_human.latent_files import load_latent, save_latents  # noqa: F401
from stylegan_human.sampling import (  # noqa: F401
    Sample, generate_images, input_transform, make_labels, make_transform, seed_to_z, to_uint8, version_of)


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--seeds', type=commands.SEEDS, help='List of random seeds, e.g. 0-10,15')
@click.option('--projected-w', 'projected_w', metavar='FILE',
              help='Render the codes in FILE instead of seeds: projector.py\'s projected_w.npz, a PTI pivot (.pt) or a latents.npz')
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
@commands.precision_option
@commands.user_errors
def main(network_pkl, seeds, projected_w, truncation_psi, truncation_cutoff, noise_mode, outdir, version,
         class_idx, translate, rotate, device, batch_size, write_latents, trust_embedded_code):
    if seeds is None and projected_w is None:
        raise commands.UserError('Missing option --seeds (or give --projected-w FILE)')
    job = processes.torchrun_environment()
    device = commands.choose_device(device)
    if job is not None and device.type == 'cuda':
        device = torch.device('cuda', job.local_rank)   # one GPU per process on each machine
    first_process = job is None or job.rank == 0
    if first_process:
        print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    found = sampling.version_of(G)
    if version is not None and version != found and {version, found} != {2, 3} and first_process:
        print(f'Note: --version {version} given, but the file holds a StyleGAN{found} network; using that.')
    if projected_w is not None:
        if seeds is not None and first_process:
            print('Note: --seeds is ignored with --projected-w')
        _render_codes(G, projected_w, outdir, noise_mode, device, job)
        return
    group = processes.ProcessGroup(job) if job is not None else None
    try:
        _generate(G, seeds, outdir, dict(truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                         noise_mode=noise_mode, class_idx=class_idx, translate=translate,
                                         rotate=rotate, batch_size=batch_size, device=device),
                  write_latents, group)
    finally:
        if group is not None:
            group.close()


def _generate(G, seeds, outdir, sample_options, write_latents, group):
    """Write seedNNNN.png for this process's seeds and, once all processes are done, latents.npz."""
    mine = seeds if group is None else processes.share(seeds, group.env.rank, group.env.world_size)
    samples = sampling.iter_samples(G, mine, **sample_options)
    first = next(samples, None)   # options the network cannot honour fail here, before any folder is made
    os.makedirs(outdir, exist_ok=True)
    latents_path = os.path.join(outdir, 'latents.npz')
    part_path = latents_path if group is None else os.path.join(outdir, f'.latents.part{group.env.rank:05d}.npz')
    latents = LatentStream(part_path) if write_latents else None
    written = 0
    interrupt = None
    try:
        with commands.stop_between_items() as interrupt:
            items = itertools.chain([first], samples) if first is not None else iter(())
            for sample in sampling.with_progress(items, len(mine), enabled=group is None or group.is_first):
                save_image(sample.image, os.path.join(outdir, f'seed{sample.seed:04d}.png'))
                if latents is not None:
                    latents.add(sample)
                written += 1
                if interrupt.requested:
                    break
    finally:
        if latents is not None:
            latents.close()   # the latents of every image written, also after an interrupt
    if group is not None:
        written, total = _join_processes(group, written, len(seeds), outdir, write_latents, latents_path)
    else:
        total = len(seeds)
    if written < total:
        if group is not None and not group.is_first:
            raise click.exceptions.Exit(interrupt.exit_code)   # the first process reports for all
        commands.report_interrupted(written, total, 'image(s)', outdir, interrupt.exit_code)
    if group is None or group.is_first:
        print(f'Wrote {written} image(s) to {outdir}')


def _join_processes(group, written, total, outdir, write_latents, latents_path):
    """Wait for every process; the first joins their latents in seed order. Returns (written, total) of all."""
    written = group.sum(written)
    if group.is_first and write_latents:
        parts = [os.path.join(outdir, f'.latents.part{rank:05d}.npz') for rank in range(group.env.world_size)]
        merge_latent_files(parts, latents_path)
        for part in parts:
            if os.path.exists(part):
                os.remove(part)
    group.barrier()
    return written, total


def _render_codes(G, path, outdir, noise_mode, device, job):
    """NVIDIA's --projected-w: every code in the file as projNN.png (this process's share under torchrun)."""
    ws = load_latents(path, G, device)
    indices = list(range(ws.shape[0]))
    if job is not None:
        indices = processes.share(indices, job.rank, job.world_size)
    os.makedirs(outdir, exist_ok=True)
    with torch.no_grad():
        for idx in sampling.with_progress(indices, len(indices), enabled=job is None or job.rank == 0):
            image = sampling.to_uint8(sampling.synthesize(G, ws[idx:idx + 1], noise_mode=noise_mode,
                                                          force_fp32=True))[0].cpu().numpy()
            save_image(image, os.path.join(outdir, f'proj{idx:02d}.png'))
    if job is None or job.rank == 0:
        print(f'Wrote {len(indices) if job is None else ws.shape[0]} image(s) to {outdir}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
