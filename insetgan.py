"""InsetGAN: put a face model's face on a body model's person, optimising both latents together.

\b
Examples:
python insetgan.py --body_network=pretrained_models/stylegan_human_v2_1024.pkl --face_network=pretrained_models/ffhq.pkl \\
    --body_seed=82 --face_seed=43 --trunc=0.6 --outdir=outputs/insetgan/ --video 1
python insetgan.py --body_network stylegan_human_v2_1024 --face_network ffhq.pkl --body-latent outputs/pti/embeddings/test/PTI/me/0.pt
python insetgan.py ... --face-box 200,80,310,190     # where the face is, when it cannot be found

The face is found in the body image with MediaPipe (or dlib with your model
files); its FFHQ-style square is where the face generator's image goes.

\b
Writes to OUTDIR, for TAG = FACESEED_BODYSEED:
  TAG.png            before (face pasted on the starting body) | after
  TAG_final.png      the result, face blended in with a feathered edge
  TAG_latents.npz    face_ws, body_ws (w+ codes) and the face box
  TAG.mp4            the optimisation, with --video 1
"""

import os
import time

import click
import numpy as np
import torch

from stylegan_human import commands, runtime
import legacy
from aligner.backends import BackendUnavailable
from aligner.face import DlibFaceFinder, FaceNotFound, MediaPipeFaceFinder, parse_box
from dnnlib.atomic import atomic_write, save_image
from stylegan_human.latent_files import load_latent
from stylegan_human.sampling import seed_to_z, to_uint8
from inset.optimize import InsetConfig, feathered_paste, fit_to_box, joint_optimize


def start_latent(G, seed, latent_path, truncation_psi, device):
    """w [1, 1, w_dim] from a seed (truncated toward the mean), or w+ [1, num_ws, w_dim] from a file."""
    if latent_path is None:
        z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device, torch.float32)
        c = torch.zeros([1, G.c_dim], device=device)
        with torch.no_grad():
            return G.mapping(z, c, truncation_psi=truncation_psi)[:, :1]
    try:
        return load_latent(latent_path, G, device)
    except ValueError as err:
        raise commands.UserError(str(err)) from None


def make_face_finder(kind, dlib_detector, dlib_predictor):
    if kind == 'dlib':
        return DlibFaceFinder(dlib_detector, dlib_predictor)
    return MediaPipeFaceFinder()


def locate(finder, image):
    return finder.find(to_uint8(image)[0].cpu().numpy())


def load_perceptual(kind, device):
    if kind == 'none':
        return None
    from pti import losses
    try:
        return losses.load_lpips(kind, None, None, device)
    except losses.WeightsError as err:
        raise commands.UserError(f'{err} (or run with --lpips none for L1 losses only)') from None


@click.command(cls=commands.Command, help=__doc__)
@click.option('--face_network', '--face-network', 'face_network', default='./pretrained_models/ffhq.pkl',
              show_default=True, help='Face generator: pickle path, URL or zoo name')
@click.option('--body_network', '--body-network', 'body_network', default='./pretrained_models/stylegan2_1024.pkl',
              show_default=True, help='Body generator: pickle path, URL or zoo name')
@click.option('--face_seed', '--face-seed', 'face_seed', type=int, default=82, show_default=True)
@click.option('--body_seed', '--body-seed', 'body_seed', type=int, default=43, show_default=True)
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
@click.option('--coarse-weight', type=float, default=1.0, show_default=True, help='Scale of the coarse face/body loss')
@click.option('--border-weight', type=float, default=1.0, show_default=True, help='Scale of the seam loss')
@click.option('--body-weight', type=float, default=1.0, show_default=True, help='Scale of the keep-the-body loss')
@click.option('--face-weight', type=float, default=1.0, show_default=True, help='Scale of the keep-the-face loss')
@click.option('--reg-weight', type=float, default=1.0, show_default=True, help='Scale of the body w regulariser')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@commands.user_errors
def main(face_network, body_network, face_seed, body_seed, face_latent, body_latent, joint_steps, face_steps,
         body_steps, truncation_psi, outdir, video, face_box, face_detector, dlib_detector, dlib_predictor,
         lpips_kind, coarse_weight, border_weight, body_weight, face_weight, reg_weight, device):
    device = commands.choose_device(device)
    try:
        manual_box = parse_box(face_box) if face_box else None
    except ValueError as err:
        raise commands.UserError(f'--face-box: {err}') from None
    face_G = legacy.load_network(face_network)['G_ema'].eval().requires_grad_(False).to(device).float()
    body_G = legacy.load_network(body_network)['G_ema'].eval().requires_grad_(False).to(device).float()
    perceptual = load_perceptual(lpips_kind, device)
    face_w = start_latent(face_G, face_seed, face_latent, truncation_psi, device)
    body_w = start_latent(body_G, body_seed, body_latent, truncation_psi, device)
    with torch.no_grad():
        body_start = body_G.synthesis(body_w.repeat([1, body_G.num_ws // body_w.shape[1], 1]),
                                      noise_mode='const', force_fp32=True)
        face_start = face_G.synthesis(face_w.repeat([1, face_G.num_ws // face_w.shape[1], 1]),
                                      noise_mode='const', force_fp32=True)

    finder = None
    if manual_box is None:
        try:
            finder = make_face_finder(face_detector, dlib_detector, dlib_predictor)
            box = locate(finder, body_start)
        except BackendUnavailable as err:
            raise commands.UserError(str(err)) from None
        except FaceNotFound as err:
            raise commands.UserError(f'{err}; pass --face-box X0,Y0,X1,Y1 to say where the face is') from None
    else:
        box = manual_box
    height, width = body_start.shape[2:]
    box = box.clipped(width, height)
    if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
        raise commands.UserError(f'face box {box.x0},{box.y0},{box.x1},{box.y1} does not fit in the '
                                   f'{width}x{height} body image')
    print(f'Face box in the body image: {box.x0},{box.y0},{box.x1},{box.y1}')
    start_box = box

    tag = f'{face_seed:04d}_{body_seed:04d}'
    os.makedirs(outdir, exist_ok=True)
    cfg = InsetConfig(joint_steps=joint_steps, face_steps=face_steps, body_steps=body_steps,
                      coarse_scale=coarse_weight, border_scale=border_weight, body_scale=body_weight,
                      face_scale=face_weight, reg_scale=reg_weight)
    relocate = (lambda image: locate(finder, image)) if finder is not None else None
    total = face_steps + body_steps + joint_steps
    start = time.perf_counter()
    with _progress(total) as bar, _frames(outdir, tag, video) as frames:
        def on_step(stage, step, body_image, face_in_box, current_box):
            bar.update(1)
            if frames is not None:
                with torch.no_grad():
                    frames.append(to_uint8(feathered_paste(body_image, face_in_box, current_box))[0].cpu().numpy())
        try:
            face, body, box, history = joint_optimize(face_G, body_G, face_w, body_w, box, perceptual, cfg,
                                                      relocate=_tolerant(relocate), on_step=on_step)
        finally:
            if finder is not None:
                finder.close()
    seconds = time.perf_counter() - start

    with torch.no_grad():
        before = feathered_paste(body_start, fit_to_box(face_start, start_box), start_box)
        final = feathered_paste(body.image(), fit_to_box(face.image(), box), box)
    final_uint8 = to_uint8(final)[0].cpu().numpy()
    save_image(np.concatenate([to_uint8(before)[0].cpu().numpy(), final_uint8], axis=1),
               os.path.join(outdir, f'{tag}.png'))
    save_image(final_uint8, os.path.join(outdir, f'{tag}_final.png'))
    latents = {'face_ws': face.ws().detach().cpu().numpy(), 'body_ws': body.ws().detach().cpu().numpy(),
               'face_box': np.array([box.x0, box.y0, box.x1, box.y1])}
    atomic_write(os.path.join(outdir, f'{tag}_latents.npz'), lambda f: np.savez(f, **latents))
    if history:
        print(f'Seam L1: {history[0][1]:.4f} -> {history[-1][1]:.4f}; coarse L1: {history[0][2]:.4f} -> '
              f'{history[-1][2]:.4f}; {total / max(seconds, 1e-9):.2f} steps/s')
    print(f'Wrote {os.path.join(outdir, tag)}.png')


def _tolerant(relocate):
    """Re-finding the face may fail on an intermediate body: keep the old box then."""
    if relocate is None:
        return None

    def find(image):
        try:
            return relocate(image)
        except FaceNotFound:
            return None
    return find


def _progress(total):
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
