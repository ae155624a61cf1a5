"""Style-mixing video: a smoothly wandering source person mixed into column seeds.

Examples:

\b
# The upstream command line, unchanged
python stylemixing_video.py --network=pretrained_models/stylegan_human_v2_1024.pkl --row-seed=3859 \\
    --col-seeds=3098,31759,3791 --col-styles=8-12 --trunc=0.8 --outdir=outputs/stylemixing_video

Layout as upstream: destination images across the top, the source at the lower left,
each mixed image below its destination, columns indented by --indent-range pixels.
Frames are rendered in batches and streamed to the MP4, so memory stays flat with duration.
"""

import os

import click
import numpy as np

import legacy
from stylegan_human import commands, runtime
from stylegan_human.sampling import with_progress
from stylegan_human.style_mixing import mixing_frames
from stylegan_human.video import FrameWriter


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--row-seed', 'src_seed', type=commands.SEEDS, help='Seed of the wandering source', required=True)
@click.option('--col-seeds', 'dst_seeds', type=commands.SEEDS, help='Seeds of the destination columns', required=True)
@click.option('--col-styles', 'styles', type=commands.SEEDS, help='Style layers taken from the source', default='0-6', show_default=True)
@click.option('--only-stylemix', 'only_stylemix', type=bool, default=False, show_default=True, help='Show only the mixed images')
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=1, show_default=True)
@click.option('--duration-sec', 'duration_sec', type=float, help='Video length in seconds', default=10, show_default=True)
@click.option('--fps', 'mp4_fps', type=int, help='Frames per second', default=10, show_default=True)
@click.option('--indent-range', 'indent_range', type=int, default=30, show_default=True, help='Column overlap in pixels')
@click.option('--outdir', default='outputs/stylemixing_video', show_default=True, metavar='DIR')
@click.option('--noise-mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--batch', 'batch_size', type=click.IntRange(min=1), default=8, show_default=True, help='Frames per forward pass')
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@commands.precision_option
@commands.user_errors
def main(network_pkl, src_seed, dst_seeds, styles, only_stylemix, truncation_psi, duration_sec, mp4_fps,
         indent_range, outdir, noise_mode, batch_size, class_idx, device, trust_embedded_code):
    if mp4_fps <= 0:
        raise commands.UserError(f'--fps must be positive, got {mp4_fps}')
    num_frames = int(np.rint(duration_sec * mp4_fps))
    device = commands.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    name = f'{len(dst_seeds)}x1-style-mixing_{min(styles)}_{max(styles)}.mp4'
    frames = mixing_frames(G, src_seed[0], dst_seeds, styles, num_frames, mp4_fps, truncation_psi,
                           noise_mode, indent_range, only_stylemix, batch_size=batch_size,
                           class_idx=class_idx, device=device)
    with FrameWriter(os.path.join(outdir, name), mp4_fps) as video:
        for frame in with_progress(frames, num_frames, unit='frame', desc='Rendering'):
            video.append(frame)
    print(f'Wrote {video.count} frames to {os.path.join(outdir, name)}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
