"""Interpolate between seeds and write the traversal as a GIF (or MP4).

Examples:

\b
# The upstream command line, unchanged
python interpolation.py --network=pretrained_models/stylegan_human_v2_1024.pkl --seeds=85,100 --outdir=outputs/inter_gifs

\b
# A looping path through four people, in W, as an MP4
python interpolation.py --network=stylegan_human_v2_512 --seeds=1,2,3,4 --loop --space=w --format=mp4 --outdir=out

Each frame shows: last seed's image | interpolated image | first seed's image.
The first and last interpolated frames are the seeds' own images (as generate.py makes them).
"""

import os

import click
import numpy as np
import torch

import cli_common
from stylegan_human import runtime
import legacy
from dnnlib.atomic import save_image
from generate import generate_images, make_labels, seed_to_z, to_uint8
from video_io import FrameWriter


def lerp(a, b, t):
    return a + (b - a) * t


def slerp(a, b, t, dot_threshold=0.9995):
    """Spherical interpolation along the great circle; falls back to lerp for near-parallel codes."""
    a_unit = a / np.linalg.norm(a)
    b_unit = b / np.linalg.norm(b)
    dot = float(np.sum(a_unit * b_unit))
    if abs(dot) > dot_threshold:
        return lerp(a, b, t)
    theta = np.arccos(dot)
    return (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)


def path_points(num_keys, num_interps, loop):
    """(segment, t) for every frame: num_interps per segment, plus the final key frame."""
    segments = num_keys if loop else num_keys - 1
    points = [(k, i / num_interps) for k in range(segments) for i in range(num_interps)]
    points.append((segments - 1, 1.0))
    return points


def interpolate_latents(G, seeds, num_interps=100, space='z', method='lerp', loop=False,
                        truncation_psi=0.8, class_idx=None, device='cpu'):
    """w for every frame of the path through ``seeds`` ([frames, num_ws, w_dim])."""
    if len(seeds) < 2:
        raise ValueError('--seeds: interpolation needs at least two seeds, e.g. 85,100')
    if num_interps < 1:
        raise ValueError('--num_interps must be at least 1')
    mix = slerp if method == 'slerp' else lerp
    c = make_labels(G, class_idx, 1, device)

    def to_w(z):
        z = torch.from_numpy(np.asarray(z)[None]).to(device)
        return G.mapping(z, c, truncation_psi=truncation_psi)[0]

    keys = [seed_to_z(s, G.z_dim)[0] for s in seeds]
    if space == 'w':
        keys = [to_w(z).double().cpu().numpy() for z in keys]
    keys = keys + keys[:1]
    frames = []
    with torch.no_grad():
        for k, t in path_points(len(seeds), num_interps, loop):
            code = keys[k] if t == 0 else keys[k + 1] if t == 1 else mix(keys[k], keys[k + 1], t)
            if space == 'w':
                frames.append(torch.from_numpy(code).float().to(device))
            else:
                frames.append(to_w(code))
    return torch.stack(frames)


def render(G, ws, noise_mode='const', batch_size=1):
    """Yield uint8 HWC images for ws, ``batch_size`` at a time (bounded memory)."""
    with torch.no_grad():
        for i in range(0, len(ws), batch_size):
            images = to_uint8(G.synthesis(ws[i:i + batch_size], noise_mode=noise_mode, force_fp32=True))
            yield from images.cpu().numpy()


@click.command(cls=cli_common.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--seeds', type=cli_common.SEEDS, help='Two or more seeds, e.g. 85,100', required=True)
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=0.8, show_default=True)
@click.option('--noise-mode', 'noise_mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir', default='outputs/inter_gifs', show_default=True, type=str, metavar='DIR')
@click.option('--save_mid_image', default=True, type=bool, show_default=True, help='Also save every interpolated image')
@click.option('--fps', default=15, type=int, show_default=True, help='Frames per second')
@click.option('--num_interps', default=100, type=int, show_default=True, help='Frames between two seeds')
@click.option('--format', 'video_format', type=click.Choice(['gif', 'mp4']), default='gif', show_default=True)
@click.option('--space', type=click.Choice(['z', 'w']), default='z', show_default=True, help='Interpolate in Z or in W')
@click.option('--method', type=click.Choice(['lerp', 'slerp']), default='lerp', show_default=True)
@click.option('--loop', is_flag=True, help='Return to the first seed at the end')
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--device', default='auto', show_default=True, help=cli_common.DEVICE_OPTION_HELP)
@click.option('--batch', 'batch_size', type=click.IntRange(min=1), default=1, show_default=True, help='Frames per forward pass')
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@cli_common.user_errors
def main(network_pkl, seeds, truncation_psi, noise_mode, outdir, save_mid_image, fps, num_interps, video_format,
         space, method, loop, class_idx, device, batch_size, trust_embedded_code):
    if fps <= 0:
        raise cli_common.UserError(f'--fps must be positive, got {fps}')
    if len(seeds) < 2:
        raise cli_common.UserError('--seeds: interpolation needs at least two seeds, e.g. 85,100')
    device = cli_common.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    try:
        ws = interpolate_latents(G, seeds, num_interps, space, method, loop, truncation_psi, class_idx, device)
        first, last = next(render(G, ws[:1], noise_mode)), next(render(G, ws[-1:], noise_mode))
        name = 'latent_space_traversal.' + video_format
        from tqdm import tqdm
        with FrameWriter(os.path.join(outdir, name), fps) as video:
            frames = render(G, ws, noise_mode, batch_size)
            for index, image in enumerate(tqdm(frames, total=len(ws), unit='frame')):
                if save_mid_image:
                    save_image(image, os.path.join(outdir, 'img', f'seed{index:04d}.png'))
                video.append(np.concatenate([last, image, first], axis=1))
    except (ValueError, OSError) as err:
        raise cli_common.UserError(str(err)) from None
    for sample in generate_images(G, seeds, truncation_psi=truncation_psi, noise_mode=noise_mode,
                                  class_idx=class_idx, device=device):
        save_image(sample.image, os.path.join(outdir, f'seed{sample.seed:04d}.png'))
    print(f'Wrote {video.count} frames to {os.path.join(outdir, name)}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
