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
import PIL.Image
import scipy.ndimage
import torch

import cli_common
from stylegan_human import runtime
import legacy
from generate import make_labels, seed_to_z, to_uint8
from style_mixing import check_styles
from video_io import FrameWriter


def wandering_z(seed, num_frames, z_dim, smoothing_frames):
    """Seeded Gaussian noise, smoothed over time with wrap-around (so it loops), unit RMS."""
    z = np.random.RandomState(seed).randn(num_frames, z_dim).astype(np.float32)
    z = scipy.ndimage.gaussian_filter(z, [smoothing_frames, 0], mode='wrap')
    return z / np.sqrt(np.mean(np.square(z)))


def mixing_frames(G, src_seed, dst_seeds, styles, num_frames, fps, truncation_psi=1.0, noise_mode='const',
                  indent_range=30, only_stylemix=False, smoothing_sec=1.0, batch_size=8, class_idx=None,
                  device='cpu'):
    """The video's frames (uint8 HWC), rendered ``batch_size`` source frames at a time.

    Options are checked here, before any frame is rendered or file opened.
    """
    check_styles(G, styles)
    if num_frames < 1:
        raise ValueError('the video would have no frames; raise --duration-sec or --fps')
    return _frames(G, src_seed, dst_seeds, list(styles), num_frames, fps, truncation_psi, noise_mode,
                   indent_range, only_stylemix, smoothing_sec, batch_size, class_idx, device)


def _frames(G, src_seed, dst_seeds, styles, num_frames, fps, truncation_psi, noise_mode, indent_range,
            only_stylemix, smoothing_sec, batch_size, class_idx, device):
    c = make_labels(G, class_idx, 1, device)

    def mapping(z):
        return G.mapping(torch.from_numpy(z).to(device), c.expand(len(z), -1), truncation_psi=truncation_psi)

    def synthesis(w):
        return to_uint8(G.synthesis(w, noise_mode=noise_mode, force_fp32=True)).cpu().numpy()

    src_z = wandering_z(src_seed, num_frames, G.z_dim, smoothing_sec * fps)
    with torch.no_grad():
        dst_w = torch.cat([mapping(seed_to_z(s, G.z_dim)) for s in dst_seeds])
        dst_images = synthesis(dst_w)
        h, w = dst_images.shape[1:3]
        step = w - indent_range
        top = 0 if only_stylemix else h
        canvas = PIL.Image.new('RGB', (step * (len(dst_seeds) + (0 if only_stylemix else 1)), top + h), 'white')
        first_col = 0 if only_stylemix else 1
        if not only_stylemix:
            for j, image in enumerate(dst_images):
                canvas.paste(PIL.Image.fromarray(image), ((j + 1) * step, 0))
        for start in range(0, num_frames, batch_size):
            src_w = mapping(src_z[start:start + batch_size])
            src_images = synthesis(src_w)
            mixed = []
            for j in range(len(dst_seeds)):
                ws = dst_w[j:j + 1].repeat(len(src_w), 1, 1)
                ws[:, styles] = src_w[:, styles]
                mixed.append(synthesis(ws))
            for i in range(len(src_w)):
                if not only_stylemix:
                    canvas.paste(PIL.Image.fromarray(src_images[i]), (-indent_range, top))
                for j in range(len(dst_seeds)):
                    canvas.paste(PIL.Image.fromarray(mixed[j][i]), ((j + first_col) * step, top))
                yield np.asarray(canvas).copy()


@click.command(cls=cli_common.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--row-seed', 'src_seed', type=cli_common.SEEDS, help='Seed of the wandering source', required=True)
@click.option('--col-seeds', 'dst_seeds', type=cli_common.SEEDS, help='Seeds of the destination columns', required=True)
@click.option('--col-styles', 'col_styles', type=cli_common.SEEDS, help='Style layers taken from the source', default='0-6', show_default=True)
@click.option('--only-stylemix', 'only_stylemix', type=bool, default=False, show_default=True, help='Show only the mixed images')
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=1, show_default=True)
@click.option('--duration-sec', 'duration_sec', type=float, help='Video length in seconds', default=10, show_default=True)
@click.option('--fps', 'mp4_fps', type=int, help='Frames per second', default=10, show_default=True)
@click.option('--indent-range', 'indent_range', type=int, default=30, show_default=True, help='Column overlap in pixels')
@click.option('--outdir', default='outputs/stylemixing_video', show_default=True, metavar='DIR')
@click.option('--noise-mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--batch', 'batch_size', type=click.IntRange(min=1), default=8, show_default=True, help='Frames per forward pass')
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--device', default='auto', show_default=True, help=cli_common.DEVICE_OPTION_HELP)
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@cli_common.user_errors
def main(network_pkl, src_seed, dst_seeds, col_styles, only_stylemix, truncation_psi, duration_sec, mp4_fps,
         indent_range, outdir, noise_mode, batch_size, class_idx, device, trust_embedded_code):
    if mp4_fps <= 0:
        raise cli_common.UserError(f'--fps must be positive, got {mp4_fps}')
    num_frames = int(np.rint(duration_sec * mp4_fps))
    device = cli_common.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    name = f'{len(dst_seeds)}x1-style-mixing_{min(col_styles)}_{max(col_styles)}.mp4'
    try:
        frames = mixing_frames(G, src_seed[0], dst_seeds, col_styles, num_frames, mp4_fps, truncation_psi,
                               noise_mode, indent_range, only_stylemix, batch_size=batch_size,
                               class_idx=class_idx, device=device)
        from tqdm import tqdm
        with FrameWriter(os.path.join(outdir, name), mp4_fps) as video:
            for frame in tqdm(frames, total=num_frames, unit='frame'):
                video.append(frame)
    except (ValueError, OSError) as err:
        raise cli_common.UserError(str(err)) from None
    print(f'Wrote {video.count} frames to {os.path.join(outdir, name)}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
