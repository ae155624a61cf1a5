"""A looping latent-walk video through seeds, with StyleGAN3's gen_video.py options.

Examples:

\b
# A 2x1 grid, each cell through 4 people and back, 120 frames between people
python gen_video.py --output=walk.mp4 --trunc=1 --seeds=0-7 --grid=2x1 --network=stylegan_human_v3_512

\b
# One cell through 3 keyframes made from 2 seeds, shuffled
python gen_video.py --output=walk.mp4 --seeds=3,9 --num-keyframes=3 --shuffle-seed=1 --network=net.pkl

Works on every network (StyleGAN1, 2 and 3). Frames stream into the video as they are
made (60 per second, as NVIDIA's); Ctrl-C finishes the frame in hand and keeps the
video made so far.
"""

import itertools

import click

import legacy
from stylegan_human import commands, runtime
from stylegan_human.loop_video import keyframe_seeds, loop_frames
from stylegan_human.sampling import with_progress
from stylegan_human.video import FORMATS, FrameWriter

FPS = 60


def _parse_grid(text):
    parts = str(text).lower().split('x')
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f'{text!r} is not a grid: use WxH with whole numbers above 0, e.g. 2x1')
    return int(parts[0]), int(parts[1])


GRID = commands.ParsedType('WxH', _parse_grid)


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--seeds', type=commands.SEEDS, help='List of random seeds, e.g. 0-7', required=True)
@click.option('--shuffle-seed', type=int, help='Random seed to use for shuffling seed order')
@click.option('--grid', type=GRID, default='1x1', show_default=True, help='Grid width x height, e.g. 2x1')
@click.option('--num-keyframes', type=click.IntRange(min=1),
              help='Number of seeds to interpolate through; default: the seeds divided by the grid cells')
@click.option('--w-frames', type=click.IntRange(min=1), default=120, show_default=True,
              help='Number of frames to interpolate between latents')
@click.option('--trunc', 'truncation_psi', type=float, default=1, show_default=True, help='Truncation psi')
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--output', help='Output video file (.mp4, or .gif)', required=True, metavar='FILE')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@commands.precision_option
@commands.user_errors
def main(network_pkl, seeds, shuffle_seed, grid, num_keyframes, w_frames, truncation_psi, class_idx, output,
         device, trust_embedded_code):
    if not output.lower().endswith(FORMATS):
        raise commands.UserError(f'--output: {output}: use a .mp4 (or .gif) file name')
    seed_grid = keyframe_seeds(seeds, grid, num_keyframes, shuffle_seed)
    device = commands.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    total = seed_grid.shape[2] * w_frames
    frames = loop_frames(G, seed_grid, w_frames, truncation_psi, class_idx=class_idx, device=device)
    first = next(frames)   # a network that cannot take these options fails here, before the file is started
    written = 0
    with commands.stop_between_items() as interrupt, FrameWriter(output, fps=FPS) as video:
        for frame in with_progress(itertools.chain([first], frames), total, unit='frame', desc='Rendering'):
            video.append(frame)
            written += 1
            if interrupt.requested:
                break
    if written < total:
        commands.report_interrupted(written, total, 'frame(s)', output, interrupt.exit_code)
    print(f'Wrote {written} frames to {output}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
