"""InsetGAN: put a face model's face on a body model's person, optimising both latents together.

\b
Examples:
python insetgan.py --body_network=pretrained_models/stylegan_human_v2_1024.pkl --face_network=pretrained_models/ffhq.pkl \\
    --body_seed=82 --face_seed=43 --trunc=0.6 --outdir=outputs/insetgan/ --video 1
python insetgan.py --body_network stylegan_human_v2_1024 --face_network ffhq.pkl --body-latent outputs/pti/embeddings/test/PTI/me/0.pt
python insetgan.py ... --face-box 200,80,310,190     # where the face is, when it cannot be found

The face is found in the body image with MediaPipe (or dlib with your model
files); its FFHQ-style square is where the face generator's image goes. A
--face-box must lie inside the body image. Conditional networks take a class
(--body-class / --face-class, as generate.py's --class). The LPIPS term reads
the same weight files as run_pti.py (--lpips-weights, --lpips-backbone).

\b
Writes to OUTDIR, for TAG = FACESEED_BODYSEED:
  TAG.png            before (face pasted on the starting body) | after
  TAG_final.png      the result, face blended in with a feathered edge
  TAG_latents.npz    face_ws, body_ws (w+ codes) and the face box
  TAG.mp4            the optimisation, with --video 1
"""

import os

import click
import numpy as np

from aligner.face import parse_box
from dnnlib.atomic import atomic_write, save_image
from dnnlib.errors import InputError
from inset import compose
from inset.optimize import InsetConfig
import legacy
from stylegan_human import commands, runtime


@click.command(cls=commands.Command, help=__doc__)
@click.option('--face_network', '--face-network', 'face_network', default='./pretrained_models/ffhq.pkl',
              show_default=True, help='Face generator: pickle path, URL or zoo name')
@click.option('--body_network', '--body-network', 'body_network', default='./pretrained_models/stylegan2_1024.pkl',
              show_default=True, help='Body generator: pickle path, URL or zoo name')
@click.option('--face_seed', '--face-seed', 'face_seed', type=int, default=82, show_default=True)
@click.option('--body_seed', '--body-seed', 'body_seed', type=int, default=43, show_default=True)
@click.option('--body-class', '--class', 'body_class', type=int, default=None,
              help="Class of a conditional body network (as generate.py's --class)")
@click.option('--face-class', type=int, default=None, help='Class of a conditional face network')
@click.option('--face-latent', default=None, metavar='FILE', help='Start the face from a w/w+ file (.pt or .npz) instead of a seed')
@click.option('--body-latent', default=None, metavar='FILE', help='Start the body from a w/w+ file, e.g. a PTI pivot 0.pt')
@click.option('--joint_steps', '--joint-steps', 'joint_steps', type=click.IntRange(min=0), default=500, show_default=True)
@click.option('--face-steps', type=click.IntRange(min=0), default=25, show_default=True, help='Stage 1: face only')
@click.option('--body-steps', type=click.IntRange(min=0), default=150, show_default=True, help='Stage 2: body only')
@click.option('--trunc', 'truncation_psi', type=float, default=0.6, show_default=True, help='Truncation psi')
@click.option('--outdir', default='outputs/insetgan/', show_default=True, metavar='DIR')
@click.option('--video', type=click.IntRange(0, 1), default=0, show_default=True, help='1: also write an MP4 of the optimisation')
@click.option('--face-box', default=None, metavar='X0,Y0,X1,Y1', help='The face square in the body image (skips face finding)')
@click.option('--face-detector', type=click.Choice(['mediapipe', 'dlib']), default='mediapipe', show_default=True)
@click.option('--dlib-detector', default='pretrained_models/mmod_human_face_detector.dat', show_default=True)
@click.option('--dlib-predictor', default='pretrained_models/shape_predictor_68_face_landmarks.dat', show_default=True)
@click.option('--lpips', 'lpips_kind', type=click.Choice(['alex', 'vgg', 'none']), default='alex', show_default=True,
              help='Perceptual term of the losses (LPIPS weights needed; none = L1 only)')
@click.option('--lpips-weights', default=None, metavar='NAME|FILE',
              help='LPIPS linear layers, as in run_pti.py (default: lpips_<kind>_lin from the download cache)')
@click.option('--lpips-backbone', default=None, metavar='NAME|FILE',
              help='LPIPS backbone weights (default: alexnet_torchvision / vgg16_torchvision from the download cache)')
@click.option('--coarse-weight', type=float, default=1.0, show_default=True, help='Scale of the coarse face/body loss')
@click.option('--border-weight', type=float, default=1.0, show_default=True, help='Scale of the seam loss')
@click.option('--body-weight', type=float, default=1.0, show_default=True, help='Scale of the keep-the-body loss')
@click.option('--face-weight', type=float, default=1.0, show_default=True, help='Scale of the keep-the-face loss')
@click.option('--reg-weight', type=float, default=1.0, show_default=True, help='Scale of the body w regulariser')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@commands.precision_option
@commands.user_errors
def main(face_network, body_network, face_seed, body_seed, body_class, face_class, face_latent, body_latent, joint_steps, face_steps,
         body_steps, truncation_psi, outdir, video, face_box, face_detector, dlib_detector, dlib_predictor,
         lpips_kind, lpips_weights, lpips_backbone, coarse_weight, border_weight, body_weight, face_weight, reg_weight, device):
    device = commands.choose_device(device)
    try:
        manual_box = parse_box(face_box) if face_box else None
    except ValueError as err:
        raise commands.UserError(f'--face-box: {err}') from None
    face_G = legacy.load_network(face_network)['G_ema'].eval().requires_grad_(False).to(device).float()
    body_G = legacy.load_network(body_network)['G_ema'].eval().requires_grad_(False).to(device).float()
    perceptual = _load_perceptual(lpips_kind, lpips_weights, lpips_backbone, device)
    face_w = _start_latent(face_G, face_seed, face_latent, truncation_psi, device, face_class, '--face-class')
    body_w = _start_latent(body_G, body_seed, body_latent, truncation_psi, device, body_class, '--body-class')
    finder = compose.make_face_finder(face_detector, dlib_detector, dlib_predictor) if manual_box is None else None
    try:
        box = compose.find_face_box(compose.start_image(body_G, body_w), finder, manual_box)
        print(f'Face box in the body image: {box.x0},{box.y0},{box.x1},{box.y1}')
        _check_box_for_lpips(box, lpips_kind)
        tag = f'{face_seed:04d}_{body_seed:04d}'
        os.makedirs(outdir, exist_ok=True)
        cfg = InsetConfig(joint_steps=joint_steps, face_steps=face_steps, body_steps=body_steps,
                          coarse_scale=coarse_weight, border_scale=border_weight, body_scale=body_weight,
                          face_scale=face_weight, reg_scale=reg_weight)
        total = face_steps + body_steps + joint_steps
        with with_bar(total) as bar, _frames(outdir, tag, video) as frames:
            result = compose.compose(face_G, body_G, face_w, body_w, box, perceptual, cfg, finder,
                                     on_frame=frames.append if frames is not None else None,
                                     on_step=lambda: bar.update(1))
    finally:
        if finder is not None:
            finder.close()

    save_image(np.concatenate([result.before, result.final], axis=1), os.path.join(outdir, f'{tag}.png'))
    save_image(result.final, os.path.join(outdir, f'{tag}_final.png'))
    box = result.box
    latents = {'face_ws': result.face_ws, 'body_ws': result.body_ws,
               'face_box': np.array([box.x0, box.y0, box.x1, box.y1])}
    atomic_write(os.path.join(outdir, f'{tag}_latents.npz'), lambda f: np.savez(f, **latents))
    history = result.history
    if history:
        print(f'Seam L1: {history[0][1]:.4f} -> {history[-1][1]:.4f}; coarse L1: {history[0][2]:.4f} -> '
              f'{history[-1][2]:.4f}; {total / max(result.seconds, 1e-9):.2f} steps/s')
    print(f'Wrote {os.path.join(outdir, tag)}.png')


def _start_latent(G, seed, latent, truncation_psi, device, class_idx, class_option):
    """compose.start_latent, a class error naming this network's class option."""
    try:
        return compose.start_latent(G, seed, latent, truncation_psi, device, class_idx=class_idx)
    except InputError as err:
        if err.param != 'class_idx':
            raise
        raise commands.UserError(f'{class_option}: {err}') from None


# The smallest image side each LPIPS backbone takes (AlexNet's strided first layers need 31 px).
MIN_LPIPS_SIDE = {'alex': 31, 'vgg': 16}


def _check_box_for_lpips(box, kind):
    """The seam loss compares box-sized images: too small a box for the LPIPS backbone is one line."""
    side = min(box.width, box.height)
    if kind != 'none' and side < MIN_LPIPS_SIDE[kind]:
        raise commands.UserError(f'--face-box: the face box is {box.width}x{box.height} px, too small for the '
                                 f'{kind} LPIPS loss (at least {MIN_LPIPS_SIDE[kind]} px a side); use a larger '
                                 'body image or --lpips none')


def _load_perceptual(kind, lin, backbone, device):
    if kind == 'none':
        return None
    from pti import losses
    try:
        return losses.load_lpips(kind, lin, backbone, device)
    except losses.WeightsError as err:
        raise commands.UserError(f'{err} (or run with --lpips none for L1 losses only)') from None


def with_bar(total):
    from tqdm import tqdm
    return tqdm(total=total, desc='Optimising', unit='step')


def _frames(outdir, tag, video):
    import contextlib
    if not video:
        return contextlib.nullcontext(None)
    from stylegan_human.video import FrameWriter
    return FrameWriter(os.path.join(outdir, f'{tag}.mp4'), fps=30)


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
