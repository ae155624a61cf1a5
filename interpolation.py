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

from dnnlib.atomic import save_image
import legacy
from stylegan_human import commands, runtime
from stylegan_human.interpolation import interpolate_latents, render
from stylegan_human.sampling import generate_images, with_progress
from stylegan_human.video import FrameWriter


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--seeds', type=commands.SEEDS, help='Two or more seeds, e.g. 85,100', required=True)
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
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--batch', 'batch_size', type=click.IntRange(min=1), default=1, show_default=True, help='Frames per forward pass')
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@commands.precision_option
@commands.user_errors
def main(network_pkl, seeds, truncation_psi, noise_mode, outdir, save_mid_image, fps, num_interps, video_format,
         space, method, loop, class_idx, device, batch_size, trust_embedded_code):
    if fps <= 0:
        raise commands.UserError(f'--fps must be positive, got {fps}')
    device = commands.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    ws = interpolate_latents(G, seeds, num_interps, space, method, loop, truncation_psi, class_idx, device)
    first, last = next(render(G, ws[:1], noise_mode)), next(render(G, ws[-1:], noise_mode))
    name = 'latent_space_traversal.' + video_format
    with FrameWriter(os.path.join(outdir, name), fps) as video, commands.stop_between_items() as interrupt:
        frames = render(G, ws, noise_mode, batch_size)
        for index, image in enumerate(with_progress(frames, len(ws), unit='frame', desc='Rendering')):
            if save_mid_image:
                save_image(image, os.path.join(outdir, 'img', f'seed{index:04d}.png'))
            video.append(np.concatenate([last, image, first], axis=1))
            if interrupt.requested:
                break   # the video is closed with the frames so far
    if video.count < len(ws):
        commands.report_interrupted(video.count, len(ws), 'frame(s)', os.path.join(outdir, name),
                                    interrupt.exit_code)
    for sample in generate_images(G, seeds, truncation_psi=truncation_psi, noise_mode=noise_mode,
                                  class_idx=class_idx, device=device):
        save_image(sample.image, os.path.join(outdir, f'seed{sample.seed:04d}.png'))
    print(f'Wrote {video.count} frames to {os.path.join(outdir, name)}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
