"""Invert real photos into a StyleGAN-Human generator with Pivotal Tuning Inversion (PTI).

\b
Examples:
python run_pti.py --network pretrained_models/stylegan_human_v2_1024.pkl --input aligned_image/
python run_pti.py --network stylegan_human_v2_512 --input aligned_512/me.png --inversion w --device cuda
python run_pti.py --network stylegan_human_v2_1024 --input aligned_image/ --multi-id --run-name family

First a pivot: W+ from the e4e encoder (--inversion w+, needs e4e_w+.pt) or a W
projection with NVIDIA's VGG16 loss (--inversion w). Then the generator is
fine-tuned so its image at the pivot matches the photo (L2 + LPIPS, optional
locality regularisation, early stop at --lpips-threshold).

\b
Writes, for each photo NAME (upstream's layout, so edit.py --real_w_path works):
  OUTDIR/embeddings/RUN/PTI/NAME/0.pt       the pivot, w+ [1, num_ws, w_dim]
  OUTDIR/checkpoints/model_RUN_NAME.pkl     the tuned generator (official pickle; G_ema)
  OUTDIR/NAME.png                           photo | pivot image | tuned image
  OUTDIR/results/RUN/NAME/{target,before,after}.png and metrics.json
With --multi-id one generator is tuned on all photos: checkpoints/model_RUN_multi_id.pkl.
"""

import json
import os
import time

import click
import numpy as np
import torch

from stylegan_human import commands, runtime
import legacy
from stylegan_human.batch_report import BatchReport, output_stems, PHOTO_FAILURES
from stylegan_human.photos import list_photos, IMAGE_SUFFIXES
from dnnlib.atomic import atomic_write, save_image
from pti import images as pti_images
from pti import losses
from pti.projector import ProjectionConfig, project_w
from pti.tuning import TuningConfig, synthesize, tune_generator


def save_tensor(tensor, path):
    atomic_write(path, lambda f: torch.save(tensor.detach().cpu(), f))


def save_json(data, path):
    text = json.dumps(data, indent=1)
    atomic_write(path, lambda f: f.write(text), mode='w')


class Inverter:
    """Holds the networks and settings of one run; ``pivot(target, name)`` and ``tune(...)``."""

    def __init__(self, G, device, inversion, projection_cfg, tuning_cfg, seed, weights, outdir, run_name,
                 reuse_pivots=False, progress=True):
        self.G = G
        self.device = device
        self.inversion = inversion
        self.projection_cfg = projection_cfg
        self.tuning_cfg = tuning_cfg
        self.seed = seed
        self.outdir = outdir
        self.run_name = run_name
        self.reuse_pivots = reuse_pivots
        self.progress = progress
        self.lpips = losses.load_lpips(weights['lpips_type'], weights['lpips_lin'], weights['lpips_backbone'], device)
        if inversion == 'w+':
            self.encoder = losses.load_encoder(weights['e4e'], G.num_ws, device)
        else:
            self.vgg16 = losses.load_vgg16(weights['vgg16'], device)

    def pivot_path(self, name):
        return os.path.join(self.outdir, 'embeddings', self.run_name, 'PTI', name, '0.pt')

    def pivot(self, target, name):
        """w+ [1, num_ws, w_dim] for the target: reused, encoded (w+) or projected (w)."""
        path = self.pivot_path(name)
        if self.reuse_pivots and os.path.isfile(path):
            return torch.load(path, map_location=self.device, weights_only=True).float()
        target = target.to(self.device)
        if self.inversion == 'w+':
            with torch.no_grad():
                pivot = self.encoder(target)
        else:
            bar = _bar(self.projection_cfg.steps, f'{name}: projecting', self.progress)
            pivot, _ = project_w(self.G, target, self.vgg16, self.projection_cfg, seed=self.seed,
                                 device=self.device, progress=_tick(bar, self.projection_cfg.log_every, 'dist'))
            bar.close()
        save_tensor(pivot, path)
        return pivot

    def tune(self, pivots, targets, label):
        bar = _bar(self.tuning_cfg.steps, f'{label}: tuning', self.progress)
        tuned, stats = tune_generator(self.G, pivots, targets, self.lpips, self.tuning_cfg, seed=self.seed,
                                      device=self.device, progress=_tick(bar, self.tuning_cfg.check_every, 'lpips'))
        bar.close()
        return tuned, stats

    def measure(self, G, pivot, target):
        """(uint8 image at the pivot, PSNR dB, LPIPS) against the target."""
        with torch.no_grad():
            synth = synthesize(G, pivot.to(self.device))
            distance = float(self.lpips(synth, target.to(self.device)).mean())
        image = pti_images.tensor_to_uint8(synth)
        return image, pti_images.psnr(image, pti_images.tensor_to_uint8(target)), distance


def _bar(total, desc, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='step', disable=not enabled, leave=False)


def _tick(bar, every, label):
    def update(step, value):
        bar.update(step - bar.n)
        bar.set_postfix({label: f'{float(value):.4f}'})  # reads the device once per `every` steps
    return update


def write_results(inverter, name, target, pivot, tuned, stats, seconds, note):
    """Images, metrics.json and the side-by-side picture for one photo; returns the metrics."""
    before, psnr_before, lpips_before = inverter.measure(inverter.G, pivot, target)
    after, psnr_after, lpips_after = inverter.measure(tuned, pivot, target)
    photo = pti_images.tensor_to_uint8(target)
    folder = os.path.join(inverter.outdir, 'results', inverter.run_name, name)
    for label, image in (('target', photo), ('before', before), ('after', after)):
        save_image(image, os.path.join(folder, f'{label}.png'))
    save_image(np.concatenate([photo, before, after], axis=1), os.path.join(inverter.outdir, f'{name}.png'))
    metrics = {'image': name, 'inversion': inverter.inversion, 'psnr_after_inversion': round(psnr_before, 3),
               'lpips_after_inversion': round(lpips_before, 5), 'psnr_after_tuning': round(psnr_after, 3),
               'lpips_after_tuning': round(lpips_after, 5), 'projection_steps':
               inverter.projection_cfg.steps if inverter.inversion == 'w' else 0,
               'tuning_steps': stats['steps'], 'seconds': round(seconds, 2), 'note': note}
    save_json(metrics, os.path.join(folder, 'metrics.json'))
    return metrics


def invert_each(inverter, items, report, checkpoints):
    """Single-id PTI: a pivot and a tuned generator per photo."""
    for path, name in items:
        try:
            start = time.perf_counter()
            target, note = pti_images.load_target(path, pti_images.network_size(inverter.G))
            if note:
                print(f'{name}: {note}')
            pivot = inverter.pivot(target, name)
            tuned, stats = inverter.tune([pivot], [target], name)
            legacy.save_network_pkl({'G_ema': tuned}, os.path.join(checkpoints, f'model_{inverter.run_name}_{name}.pkl'))
            m = write_results(inverter, name, target, pivot, tuned, stats, time.perf_counter() - start, note)
            print(f'{name}: PSNR {m["psnr_after_inversion"]:.2f} -> {m["psnr_after_tuning"]:.2f} dB, '
                  f'LPIPS {m["lpips_after_inversion"]:.4f} -> {m["lpips_after_tuning"]:.4f}')
            report.done += 1
        except PHOTO_FAILURES as err:
            report.failures.append((name, str(err)))
            print(f'{name}: skipped: {err}')


def invert_together(inverter, items, report, checkpoints):
    """Multi-id PTI: pivots for all photos, then one generator tuned on all of them."""
    start = time.perf_counter()
    done = []
    for path, name in items:
        try:
            target, note = pti_images.load_target(path, pti_images.network_size(inverter.G))
            if note:
                print(f'{name}: {note}')
            done.append((name, target, inverter.pivot(target, name), note))
        except PHOTO_FAILURES as err:
            report.failures.append((name, str(err)))
            print(f'{name}: skipped: {err}')
    if not done:
        return
    tuned, stats = inverter.tune([d[2] for d in done], [d[1] for d in done], 'all photos')
    legacy.save_network_pkl({'G_ema': tuned}, os.path.join(checkpoints, f'model_{inverter.run_name}_multi_id.pkl'))
    for name, target, pivot, note in done:
        write_results(inverter, name, target, pivot, tuned, stats, time.perf_counter() - start, note)
        report.done += 1


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', default='pretrained_models/stylegan_human_v2_1024.pkl', show_default=True,
              help='Generator pickle path, URL or model-zoo name')
@click.option('--input', 'input_path', default='aligned_image/', show_default=True, metavar='PATH',
              help='An aligned photo or a folder of them (alignment.py output)')
@click.option('--outdir', default='outputs/pti/', show_default=True, metavar='DIR', help='Where to write everything')
@click.option('--run-name', default='test', show_default=True, help='Run id in the output paths (upstream input_data_id)')
@click.option('--inversion', type=click.Choice(['w', 'w+']), default='w+', show_default=True,
              help='Pivot from a W projection (w) or the e4e encoder (w+)')
@click.option('--e4e', 'e4e_path', default='./pti/e4e_w+.pt', show_default=True, metavar='FILE',
              help="StyleGAN-Human's e4e_w+.pt (for --inversion w+)")
@click.option('--vgg16', 'vgg16_weights', default='vgg16_nvidia', show_default=True, metavar='NAME|FILE',
              help="NVIDIA's vgg16.pt for the W projection")
@click.option('--lpips-type', type=click.Choice(['alex', 'vgg']), default='alex', show_default=True)
@click.option('--lpips-weights', default=None, metavar='NAME|FILE', help='LPIPS linear layers (default: lpips_<type>_lin)')
@click.option('--lpips-backbone', default=None, metavar='NAME|FILE',
              help='LPIPS backbone weights (default: alexnet_torchvision / vgg16_torchvision)')
@click.option('--first-inv-steps', type=click.IntRange(min=1), default=450, show_default=True)
@click.option('--first-inv-lr', type=float, default=8e-3, show_default=True)
@click.option('--pti-steps', type=click.IntRange(min=0), default=350, show_default=True)
@click.option('--pti-lr', type=float, default=5e-4, show_default=True)
@click.option('--lpips-threshold', type=float, default=0.04, show_default=True)
@click.option('--l2-lambda', type=float, default=1.0, show_default=True)
@click.option('--lpips-lambda', type=float, default=1.0, show_default=True)
@click.option('--locality-reg', is_flag=True, help='Locality regularisation of the PTI paper (off, as upstream)')
@click.option('--locality-l2-lambda', type=float, default=0.1, show_default=True)
@click.option('--locality-lpips-lambda', type=float, default=0.1, show_default=True)
@click.option('--locality-alpha', type=float, default=30.0, show_default=True)
@click.option('--locality-samples', type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--locality-interval', type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--multi-id', is_flag=True, help='Tune one generator on all photos')
@click.option('--max-images', type=click.IntRange(min=1), default=30, show_default=True,
              help='Invert at most this many photos (upstream max_images_to_invert)')
@click.option('--use-last-pivots', is_flag=True, help="Reuse a photo's saved pivot (0.pt) instead of computing it")
@click.option('--check-every', type=click.IntRange(min=1), default=10, show_default=True,
              help='Read the loss from the device every N steps (early stop granularity)')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--seed', type=int, default=0, show_default=True, help='Seed for noise and sampling')
@commands.user_errors
def main(network_pkl, input_path, outdir, run_name, inversion, e4e_path, vgg16_weights, lpips_type, lpips_weights,
         lpips_backbone, first_inv_steps, first_inv_lr, pti_steps, pti_lr, lpips_threshold, l2_lambda, lpips_lambda,
         locality_reg, locality_l2_lambda, locality_lpips_lambda, locality_alpha, locality_samples, locality_interval,
         multi_id, max_images, use_last_pivots, check_every, device, seed):
    if os.path.isfile(input_path):
        if not input_path.lower().endswith(IMAGE_SUFFIXES):
            raise commands.UserError(f'--input {input_path}: not an image file')
        paths, root = [input_path], os.path.dirname(input_path) or '.'
    elif os.path.isdir(input_path):
        paths, root = list_photos(input_path), input_path
    else:
        raise commands.UserError(f'--input {input_path}: no such file or folder')
    if not paths:
        raise commands.UserError(f'--input {input_path}: no images found')
    if len(paths) > max_images:
        print(f'Inverting the first {max_images} of {len(paths)} photos (--max-images)')
        paths = paths[:max_images]
    device = commands.choose_device(device)
    torch.manual_seed(seed)

    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl)['G_ema'].eval().requires_grad_(False).to(device).float()
    weights = {'lpips_type': lpips_type, 'lpips_lin': lpips_weights, 'lpips_backbone': lpips_backbone,
               'e4e': e4e_path, 'vgg16': vgg16_weights}
    projection_cfg = ProjectionConfig(steps=first_inv_steps, learning_rate=first_inv_lr)
    tuning_cfg = TuningConfig(steps=pti_steps, learning_rate=pti_lr, lpips_threshold=lpips_threshold,
                              l2_lambda=l2_lambda, lpips_lambda=lpips_lambda, locality=locality_reg,
                              locality_l2_lambda=locality_l2_lambda, locality_lpips_lambda=locality_lpips_lambda,
                              locality_alpha=locality_alpha, locality_samples=locality_samples,
                              locality_interval=locality_interval, check_every=check_every)
    try:
        inverter = Inverter(G, device, inversion, projection_cfg, tuning_cfg, seed, weights, outdir, run_name,
                            reuse_pivots=use_last_pivots)
    except losses.WeightsError as err:
        raise commands.UserError(str(err)) from None

    stems = output_stems(paths, root)
    items = [(p, stems[p].replace(os.sep, '_')) for p in paths]
    checkpoints = os.path.join(outdir, 'checkpoints')
    report = BatchReport()
    (invert_together if multi_id else invert_each)(inverter, items, report, checkpoints)
    report.finish('inverted', outdir)


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
