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
  OUTDIR/checkpoints/model_NAME.pkl         the tuned generator (official pickle; G_ema)
  OUTDIR/NAME.png                           photo | pivot image | tuned image
  OUTDIR/results/RUN/NAME/{target,before,after}.png and metrics.json
With --multi-id one generator is tuned on all photos: checkpoints/model_RUN_multi_id.pkl.
"""

import os

import click
import torch

import legacy
from pti.invert import Inverter, WeightFiles, invert_each, invert_together
from pti.projector import ProjectionConfig
from pti.tuning import TuningConfig
from stylegan_human import commands, runtime
from stylegan_human.batch_report import BatchReport, output_stems
from stylegan_human.photos import IMAGE_SUFFIXES, list_photos


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
@commands.precision_option
@commands.user_errors
def main(network_pkl, input_path, outdir, run_name, inversion, multi_id, max_images, use_last_pivots, device, seed,
         **settings):
    """``settings``: the weight files, projection and tuning options, grouped below."""
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
    weights, projection_cfg, tuning_cfg = _grouped(settings)
    weights.check(inversion)            # every missing file in one message, before any work
    device = commands.choose_device(device)
    torch.manual_seed(seed)

    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl)['G_ema'].eval().requires_grad_(False).to(device).float()
    inverter = Inverter(G, device, inversion, projection_cfg, tuning_cfg, seed, weights, outdir, run_name,
                        reuse_pivots=use_last_pivots)

    stems = output_stems(paths, root)
    items = [(p, stems[p].replace(os.sep, '_')) for p in paths]
    checkpoints = os.path.join(outdir, 'checkpoints')
    report = BatchReport()
    with commands.stop_between_items() as interrupt:
        (invert_together if multi_id else invert_each)(inverter, items, report, checkpoints,
                                                       stop=lambda: interrupt.requested)
    report.finish('inverted', outdir, interrupt.exit_code)


def _grouped(s):
    """The command's remaining options as (WeightFiles, ProjectionConfig, TuningConfig)."""
    weights = WeightFiles(lpips_type=s['lpips_type'], lpips_lin=s['lpips_weights'], lpips_backbone=s['lpips_backbone'],
                          e4e=s['e4e_path'], vgg16=s['vgg16_weights'])
    projection = ProjectionConfig(steps=s['first_inv_steps'], learning_rate=s['first_inv_lr'])
    tuning = TuningConfig(steps=s['pti_steps'], learning_rate=s['pti_lr'], lpips_threshold=s['lpips_threshold'],
                          l2_lambda=s['l2_lambda'], lpips_lambda=s['lpips_lambda'], locality=s['locality_reg'],
                          locality_l2_lambda=s['locality_l2_lambda'], locality_lpips_lambda=s['locality_lpips_lambda'],
                          locality_alpha=s['locality_alpha'], locality_samples=s['locality_samples'],
                          locality_interval=s['locality_interval'], check_every=s['check_every'])
    return weights, projection, tuning


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
