"""Calculate quality metrics for a training run's snapshot or a pretrained network pickle.

Examples:

\b
# Snapshot of a training run: dataset options read from the pickle, results
# appended to metric-<name>.jsonl in the run folder.
python calc_metrics.py --metrics=fid50k_full,kid50k_full \\
    --network=training-runs/00000-stylegan2-body-gpus1-batch32/network-snapshot-001000.pkl

\b
# Pretrained network: name the dataset; the result is printed as a JSON line.
python calc_metrics.py --metrics=fid50k_full --data=datasets/body-512x256.zip --mirror=1 \\
    --network=pretrained_models/stylegan_human_v2_512.pkl

\b
# Feature networks given as files (offline machines): NVIDIA's inception-2015-12-05.pkl
# or .pt, and vgg16.pkl or .pt for precision/recall and PPL.
python calc_metrics.py --metrics=pr50k3_full --data=datasets/body.zip --network=net.pkl \\
    --detector=inception-2015-12-05.pt --vgg16=vgg16.pt

\b
Recommended metrics:
  fid50k_full  Frechet inception distance against the full dataset.
  kid50k_full  Kernel inception distance against the full dataset.
  pr50k3_full  Precision and recall against the full dataset.
  ppl2_wend    Perceptual path length in W, endpoints, full image.
  is50k        Inception score.

\b
Legacy metrics:
  fid50k       Frechet inception distance against 50k real images.
  kid50k       Kernel inception distance against 50k real images.
  pr50k3       Precision and recall against 50k real images.
  ppl_zfull, ppl_wfull, ppl_zend, ppl_wend
               Perceptual path length of the face crop (square images only).

The feature networks are read from --detector / --vgg16, from the files named by
METRICS_INCEPTION_FILE / METRICS_VGG16_FILE, from the download cache, or
downloaded from NVIDIA once. The networks in the files are never executed.
"""

import copy
import json
import logging
import os
import sys
import tempfile

import click
import torch

import dnnlib
import legacy
from metrics import detector_files
from metrics import metric_main
from metrics import metric_utils
from stylegan_human import commands, runtime
from torch_utils import precision as number_format
from training.dataset import DatasetError

# ----------------------------------------------------------------------------


def image_shape_of(G):
    """[C, H, W] of the network's images (2:1 unless it says it is square)."""
    height = G.img_resolution
    return [G.img_channels, height, height if getattr(G, 'square', True) else height // 2]


def dataset_options(G, network_dict, data, mirror):
    """NVIDIA's dataset_kwargs for --data (or the pickle's training set), fitted to the network."""
    if data is not None:
        kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=data)
    elif network_dict.get('training_set_kwargs') is not None:
        kwargs = dnnlib.EasyDict(network_dict['training_set_kwargs'])
    else:
        raise commands.UserError('could not look up the dataset options in the pickle; please specify --data')
    kwargs.resolution = G.img_resolution
    kwargs.use_labels = (G.c_dim != 0)
    kwargs.square = bool(getattr(G, 'square', True))
    if mirror is not None:
        kwargs.xflip = mirror
    return kwargs


def check_dataset(dataset_kwargs, G):
    """Open the dataset once, so that a bad one fails now, in one line."""
    try:
        dataset = metric_utils.construct_class_by_name(**dataset_kwargs)
    except (ValueError, OSError) as err:
        raise commands.UserError(f'--data {dataset_kwargs.get("path")}: {err}') from None
    if list(dataset.image_shape) != image_shape_of(G):
        raise commands.UserError(f'--data {dataset_kwargs.get("path")}: images are {dataset.image_shape} (CHW) '
                                   f'but the network makes {image_shape_of(G)}')
    if len(dataset) == 0:
        raise commands.UserError(f'--data {dataset_kwargs.get("path")}: no images')


def run_dir_of(network_pkl):
    """The training run folder holding this snapshot, if it is one (results go there)."""
    if os.path.isfile(network_pkl):
        pkl_dir = os.path.dirname(os.path.abspath(network_pkl))
        if os.path.isfile(os.path.join(pkl_dir, 'training_options.json')):
            return pkl_dir
    return None


# ----------------------------------------------------------------------------

# Errors a user can cause while the metrics run: reported in one line.
USER_ERRORS = (metric_utils.MetricError, detector_files.DetectorError, legacy.NetworkFileError,
               dnnlib.util.DownloadError, DatasetError)


def _init_distributed(rank, args, temp_dir):
    init_file = os.path.abspath(os.path.join(temp_dir, '.torch_distributed_init'))
    backend = 'nccl' if args.device.type == 'cuda' and os.name != 'nt' else 'gloo'
    init_method = ('file:///' + init_file.replace('\\', '/')) if os.name == 'nt' else f'file://{init_file}'
    torch.distributed.init_process_group(backend=backend, init_method=init_method, rank=rank,
                                         world_size=args.num_gpus)


def subprocess_fn(rank, args, temp_dir):
    """One rank: compute every metric (its share of the samples); rank 0 reports."""
    try:
        if args.num_gpus > 1:
            _init_distributed(rank, args, temp_dir)
        device = torch.device('cuda', rank) if args.device.type == 'cuda' and args.num_gpus > 1 else args.device
        G = args.G if args.G is not None else legacy.load_network(args.network_pkl, verbose=False)['G_ema']
        G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
        if rank == 0 and args.verbose:
            from torch_utils import misc
            z = torch.zeros([1, G.z_dim], device=device)
            c = torch.zeros([1, G.c_dim], device=device)
            with torch.no_grad():
                misc.print_module_summary(G, [z, c])

        for metric in args.metrics:
            if rank == 0 and args.verbose:
                print(f'Calculating {metric}...')
            progress = metric_utils.ProgressMonitor(verbose=args.verbose)
            # Entered here, in every rank: a spawned process does not inherit the parent's scope.
            # A bf16 result says so ("precision": "bf16").
            with number_format.use_precision(args.precision):
                result_dict = metric_main.calc_metric(metric=metric, G=G, dataset_kwargs=args.dataset_kwargs,
                                                      num_gpus=args.num_gpus, rank=rank, device=device,
                                                      progress=progress, detectors=args.detectors)
            if rank == 0:
                metric_main.report_metric(result_dict, run_dir=args.run_dir, snapshot_pkl=args.network_pkl)
    except USER_ERRORS as err:
        if args.num_gpus == 1:
            raise
        # A spawned process would print a traceback: leave the line for the parent instead.
        with open(os.path.join(temp_dir, f'error-{rank}.txt'), 'w') as f:
            f.write(str(err))
        sys.exit(1)
    finally:
        if args.num_gpus > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def launch(args):
    with tempfile.TemporaryDirectory() as temp_dir:
        if args.num_gpus == 1:
            subprocess_fn(rank=0, args=args, temp_dir=temp_dir)
            return
        spawn_log = logging.getLogger('torch.multiprocessing.spawn')
        level = spawn_log.level
        spawn_log.setLevel(logging.ERROR)  # Its "terminating process" warning would add a line to our one.
        try:
            torch.multiprocessing.spawn(fn=subprocess_fn, args=(args, temp_dir), nprocs=args.num_gpus)
        except Exception:
            for rank in range(args.num_gpus):
                path = os.path.join(temp_dir, f'error-{rank}.txt')
                if os.path.isfile(path):
                    with open(path) as f:
                        raise commands.UserError(f.read().strip()) from None
            raise
        finally:
            spawn_log.setLevel(level)


def check_gpus(gpus, device):
    if gpus < 1:
        raise commands.UserError('--gpus must be at least 1')
    if gpus > 1 and device.type == 'cuda' and torch.cuda.device_count() < gpus:
        raise commands.UserError(f'--gpus {gpus}: only {torch.cuda.device_count()} CUDA device(s) present')
    if gpus > 1 and device.type not in ('cuda', 'cpu'):
        raise commands.UserError(f'--gpus {gpus} runs one process per CUDA device (or per CPU share); '
                                   f'not available with --device {device.type}')


# ----------------------------------------------------------------------------


@click.command(cls=commands.Command, help=__doc__)
@click.option('network_pkl', '--network', help='Network pickle filename, URL or model-zoo name', metavar='PATH',
              required=True)
@click.option('--metrics', help='Quality metrics', metavar='[NAME|A,B,C|none]', type=commands.NAME_LIST,
              default='fid50k_full', show_default=True)
@click.option('--data', help='Dataset to evaluate against  [default: look up]', metavar='[ZIP|DIR]')
@click.option('--mirror', help='Enable dataset x-flips  [default: look up]', type=bool, metavar='BOOL')
@click.option('--gpus', help='Number of GPUs to use (processes; with --device cpu, CPU processes)', type=int,
              default=1, metavar='INT', show_default=True)
@click.option('--verbose', help='Print optional information', type=bool, default=True, metavar='BOOL',
              show_default=True)
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--detector', 'inception_file', metavar='PATH',
              help='Inception-v3 file: NVIDIA\'s inception-2015-12-05.pkl or .pt  [default: $METRICS_INCEPTION_FILE, '
                   'the download cache, or download]')
@click.option('--vgg16', 'vgg16_file', metavar='PATH',
              help='VGG16 file for precision/recall and PPL: NVIDIA\'s vgg16.pkl or .pt  [default: '
                   '$METRICS_VGG16_FILE, the download cache, or download]')
@click.option('--precision', type=click.Choice(number_format.PRECISIONS), default='fp32', show_default=True,
              help=commands.PRECISION_OPTION_HELP + '; a bf16 result is recorded with "precision": "bf16"')
@commands.user_errors
def calc_metrics(network_pkl, metrics, data, mirror, gpus, verbose, device, inception_file, vgg16_file, precision):
    try:
        metric_main.check_metric_names(metrics)
    except metric_utils.MetricError as err:
        raise commands.UserError(f'--metrics: {err}') from None
    device = commands.choose_device(device)
    check_gpus(gpus, device)
    precision = commands.precision_dtype(precision, device)
    for option, path in (('--detector', inception_file), ('--vgg16', vgg16_file)):
        if path is not None and not dnnlib.util.is_url(path) and not os.path.isfile(path):
            raise commands.UserError(f'{option} {path}: file not found')

    args = dnnlib.EasyDict(metrics=metrics, num_gpus=gpus, network_pkl=network_pkl, verbose=verbose, device=device,
                           detectors=dict(inception=inception_file, vgg16=vgg16_file), precision=precision)
    if verbose:
        print(f'Loading network from "{network_pkl}"...')
    network_dict = legacy.load_network(network_pkl, verbose=verbose)
    G = network_dict['G_ema']
    args.G = G if gpus == 1 else None  # Spawned processes load the file themselves.

    args.dataset_kwargs = dataset_options(G, network_dict, data, mirror)
    check_dataset(args.dataset_kwargs, G)
    if verbose:
        print('Dataset options:')
        print(json.dumps(args.dataset_kwargs, indent=2))

    args.run_dir = run_dir_of(network_pkl)
    if verbose:
        print('Launching processes...')
    try:
        launch(args)
    except USER_ERRORS as err:
        raise commands.UserError(str(err)) from None


if __name__ == '__main__':
    runtime.start_script()
    calc_metrics()  # pylint: disable=no-value-for-parameter
