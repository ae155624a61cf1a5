"""Train a StyleGAN2-ADA or StyleGAN3 network on full-body (2:1) or square images.

Both of StyleGAN-Human's training command lines work unchanged:

\b
  # StyleGAN2-ADA flags (training_scripts/sg2/train.py):
  python train.py --outdir=training_results/sg2/ --data=data/SHHQ-1.0/ \\
      --gpus=8 --aug=noaug --mirror=1 --snap=250 --cfg=shhq --square=False
\b
  # StyleGAN3 flags (training_scripts/sg3/train.py):
  python train.py --outdir=training_results/sg3/ --cfg=stylegan3-r --gpus=8 --batch=32 --gamma=12.4 \\
      --mirror=1 --aug=noaug --data=data/SHHQ-1.0/ --square=False --snap=250

\b
Which command line is meant (override with --flavour):
  StyleGAN3      --cfg=stylegan3-t|stylegan3-r, or any of --batch-gpu --cbase --cmax
                 --glr --dlr --map-depth --mbstd-group --tick --desc;
                 --cfg, --batch and --gamma are then required.
  StyleGAN2-ADA  --cfg=auto|shhq|paper256|paper512|paper1024|cifar, or any of
                 --subset --nhwc --allow-tf32; also no --cfg, or --cfg=stylegan2 alone.
  Signs of both are an error. Every derived value (batch per GPU, capacity, learning
  rates, R1 gamma, EMA, mapping depth, regularisation) follows the upstream script.

\b
StyleGAN2-ADA presets (--cfg):
  auto, shhq  batch, gamma, learning rate, capacity and EMA from the dataset height and
              the GPU count (shhq: 8 mapping layers instead of 2)
  stylegan2   StyleGAN2 config F at 1024x1024
  paper256, paper512, paper1024, cifar: the ADA paper's setups

\b
--square=False (the default) trains 2:1 networks on 2:1 images (e.g. 1024x512); the
resolution is the dataset's image height. --resume takes a path, a URL, a model-zoo
name (stylegan_human_v2_1024, ...) or ffhq256|ffhq512|ffhq1024|celebahq256|lsundog256.

\b
--gpus N starts N processes here (on the CPU with --device=cpu or without CUDA). Under
torchrun (several machines) the processes are torchrun's: RANK, WORLD_SIZE and
LOCAL_RANK decide, and the batch is split across WORLD_SIZE processes:
  torchrun --nnodes=2 --nproc-per-node=8 ... train.py --cfg=shhq --data=... --outdir=...

Each run goes to <outdir>/<5-digit id>-<description> (next free id) and starts with
training_options.json; -n/--dry-run prints the options and creates nothing.
"""

import json
import os

import click

from stylegan_human import commands, runtime
from training import launch
from training import train_config
from training.train_config import OptionsError


def _kimg_type():
    return click.FloatRange(min=0, min_open=True)


# ----------------------------------------------------------------------------


def prepare_run(flags, environ=None, cuda_available=None):
    """(c, desc, env, device_type) for these flags; OptionsError / LaunchError on a user mistake.

    Nothing is written: the dataset is opened to read its size, and the devices are checked.
    """
    flags = train_config.normalize_flags(flags)
    env = launch.torchrun_environment(environ)
    device_type = launch.resolve_device_type(flags.device, cuda_available=cuda_available)
    if env is not None:
        if flags.gpus is not None and flags.gpus != env.world_size:
            print(f'Note: torchrun runs {env.world_size} processes (WORLD_SIZE); --gpus={flags.gpus} is not used')
        flags.gpus = env.world_size
        if not flags.dry_run:
            launch.check_device_count(device_type, env.local_world_size, highest_local_rank=env.local_rank)
    elif not flags.dry_run:
        launch.check_device_count(device_type, flags.gpus or 1)
    requested_device, flags.device = flags.device, device_type
    train_config.detect_flavour(flags)  # Flag conflicts before the dataset is read.
    bf16 = _synthesis_in_bf16(flags.precision, device_type)
    dataset = train_config.open_dataset(flags.data, square=bool(flags.square))
    c, desc = train_config.build_training_options(flags, dataset)
    if bf16:
        c.precision = 'bf16'   # fp32 runs keep upstream's options file
    if not flags.dry_run:
        if env is None:   # under torchrun the processes were started by the user's own command
            launch.check_cpu_processes_asked_for(requested_device, device_type, flags.gpus or 1)
        check_resume_network(c)
    return c, desc, env, device_type


def _synthesis_in_bf16(name, device_type):
    """--precision: True for bf16 (native only; an OptionsError otherwise), False for fp32."""
    import torch
    from dnnlib.errors import InputError
    from torch_utils import precision
    try:
        dtype = precision.resolve(name or 'fp32', device_type)
    except InputError as err:
        raise OptionsError(f'--precision: {err}') from None
    if name == 'auto' and dtype != torch.bfloat16:
        print(f'Note: --precision auto: no native bfloat16 on {device_type}; training in fp32')
    return dtype == torch.bfloat16


def check_resume_network(c):
    """A local --resume file must load (safely) and fit the dataset: fail now, not in every process."""
    path = c.get('resume_pkl')
    if not path or not os.path.isfile(path):
        return  # none, or a URL / zoo name: fetched and checked by the loader at the start of training
    import legacy
    try:
        with open(path, 'rb') as f:
            data = legacy.load_network_pkl(f)
    except legacy.NetworkFileError as err:
        raise OptionsError(f'--resume={path}: {err}') from None
    G = data.get('G_ema') or data.get('G')
    if G is None:
        raise OptionsError(f'--resume={path}: holds no generator (G_ema or G)')
    dataset = c.training_set_kwargs
    want = (dataset.resolution, bool(dataset.square))
    synthesis = getattr(G, 'synthesis', G)
    have = (getattr(G, 'img_resolution', None), bool(getattr(synthesis, 'square', True)))
    if have != want:
        raise OptionsError(f'--resume={path}: its generator makes {_shape(*have)} images, the dataset has '
                           f'{_shape(*want)}')


def _shape(resolution, square):
    return f'{resolution}x{resolution if square else resolution // 2}'


def print_options(c):
    print()
    print('Training options:')
    print(json.dumps(c, indent=2))
    print()
    print(f'Output directory:    {c.run_dir}')
    print(f'Flavour:             {c.flavour}')
    print(f'Device:              {c.device} x {c.num_gpus} process(es)')
    print(f'Batch size:          {c.batch_size} images ({c.batch_gpu} per pass)')
    print(f'Training duration:   {c.total_kimg} kimg')
    print(f'Dataset path:        {c.training_set_kwargs.path}')
    print(f'Dataset size:        {c.training_set_kwargs.max_size} images')
    print(f'Dataset resolution:  {c.training_set_kwargs.resolution} ({"square" if c.training_set_kwargs.square else "2:1"})')
    print(f'Dataset labels:      {c.training_set_kwargs.use_labels}')
    print(f'Dataset x-flips:     {c.training_set_kwargs.xflip}')
    print()


def run_training(**flags):
    """Check the flags, print the options, make the run directory and train (the command's work)."""
    outdir = flags.get('outdir')
    if not outdir:
        raise OptionsError('--outdir: no output folder given')
    c, desc, env, device_type = prepare_run(flags)
    is_rank0 = env is None or env.rank == 0
    c.run_dir = launch.run_dir_path(outdir, launch.next_run_id(outdir), desc)
    if is_rank0:
        print_options(c)
    if flags.get('dry_run'):
        if is_rank0:
            print('Dry run; exiting.')
        return None
    _check_metrics_available(c.metrics)

    if env is not None:
        launch.launch_torchrun(c, env, device_type, outdir, desc)
        return c.run_dir
    launch.create_run_dir(outdir, desc, c)
    print(f'Created {c.run_dir}')
    print('Launching processes...')
    launch.launch_local(c, c.num_gpus, device_type)
    return c.run_dir


def _check_metrics_available(metrics):
    """Metrics run at every snapshot: fail now, not hours in, when their module is missing."""
    _is_valid, _names, available = train_config.metric_registry()
    if metrics and not available:
        raise OptionsError(f'--metrics={",".join(metrics)}: metrics/metric_main.py is not available here; '
                           'pass --metrics=none')


# ----------------------------------------------------------------------------


@click.command(cls=commands.Command, help=__doc__)
# General options.
@click.option('--outdir', help='Where to save the results', required=True, metavar='DIR')
@click.option('--gpus', help='Number of GPUs (processes) to use  [default: 1]', type=click.IntRange(min=1), metavar='INT')
@click.option('--snap', help='How often to save snapshots  [default: 50 ticks]', type=click.IntRange(min=1), metavar='TICKS')
@click.option('--metrics', help='Quality metrics: comma-separated list or "none"  [default: fid50k_full]',
              type=commands.NAME_LIST, metavar='[NAME|A,B,C|none]')
@click.option('--seed', help='Random seed  [default: 0]', type=click.IntRange(min=0), metavar='INT')
@click.option('-n', '--dry-run', help='Print training options and exit', is_flag=True)
# Dataset.
@click.option('--data', help='Training data (directory or zip)', metavar='PATH', required=True)
@click.option('--cond', help='Train conditional model based on dataset labels  [default: false]', type=bool, metavar='BOOL')
@click.option('--subset', help='Train with only N images (StyleGAN2-ADA)  [default: all]', type=click.IntRange(min=1), metavar='INT')
@click.option('--mirror', help='Enable dataset x-flips  [default: false]', type=bool, metavar='BOOL')
@click.option('--square', help='True for square, False for 2:1 (rectangle) images and networks  [default: false]',
              type=bool, metavar='BOOL')
# Base config.
@click.option('--cfg', help='Base config: StyleGAN2-ADA preset or StyleGAN3 architecture (see above)  '
              '[StyleGAN2-ADA default: auto]', type=click.Choice(train_config.ALL_CFGS))
@click.option('--gamma', help='R1 regularization weight (required by StyleGAN3)', type=click.FloatRange(min=0), metavar='FLOAT')
@click.option('--kimg', help='Total training duration  [default: 25000, cifar 100000]', type=_kimg_type(), metavar='KIMG')
@click.option('--batch', help='Total batch size (required by StyleGAN3)', type=click.IntRange(min=1), metavar='INT')
# Discriminator augmentation.
@click.option('--aug', help='Augmentation mode  [default: ada]', type=click.Choice(['noaug', 'ada', 'fixed']))
@click.option('--p', help='Augmentation probability for --aug=fixed  [StyleGAN3 default: 0.2]',
              type=click.FloatRange(min=0, max=1), metavar='FLOAT')
@click.option('--target', help='ADA target value for --aug=ada  [default: 0.6]', type=click.FloatRange(min=0, max=1), metavar='FLOAT')
@click.option('--augpipe', help='Augmentation pipeline  [default: bgc]', type=click.Choice(list(train_config.AUGPIPE_SPECS)))
# Transfer learning.
@click.option('--resume', help='Resume from a network pickle: path, URL, model-zoo or ADA source name; a network-snapshot-NNNNNN.pkl goes on counting from its kimg (--kimg is the total)  [default: noresume]',
              metavar='[PATH|URL|NAME]')
@click.option('--freezed', help='Freeze-D: first layers of D to freeze  [default: 0]', type=click.IntRange(min=0), metavar='INT')
# StyleGAN3 hyper-parameters.
@click.option('--batch-gpu', help='Limit batch size per GPU (StyleGAN3)', type=click.IntRange(min=1), metavar='INT')
@click.option('--cbase', help='Capacity multiplier (StyleGAN3)  [default: 32768]', type=click.IntRange(min=1), metavar='INT')
@click.option('--cmax', help='Max. feature maps (StyleGAN3)  [default: 512]', type=click.IntRange(min=1), metavar='INT')
@click.option('--glr', help='G learning rate (StyleGAN3)  [default: 0.0025, stylegan2 0.002]', type=click.FloatRange(min=0), metavar='FLOAT')
@click.option('--dlr', help='D learning rate (StyleGAN3)  [default: 0.002]', type=click.FloatRange(min=0), metavar='FLOAT')
@click.option('--map-depth', help='Mapping network depth (StyleGAN3)  [default: 2, stylegan2 8]', type=click.IntRange(min=1), metavar='INT')
@click.option('--mbstd-group', help='Minibatch std group size (StyleGAN3)  [default: 4]', type=click.IntRange(min=1), metavar='INT')
@click.option('--desc', help='String to include in result dir name (StyleGAN3)', metavar='STR')
@click.option('--tick', help='How often to print progress (StyleGAN3)  [default: 4]', type=_kimg_type(), metavar='KIMG')
# Performance options.
@click.option('--fp32', help='Disable mixed-precision training  [default: false]', type=bool, metavar='BOOL')
@click.option('--nhwc', help='Use NHWC memory format with FP16 (StyleGAN2-ADA)', type=bool, metavar='BOOL')
@click.option('--nobench', help='Disable cuDNN benchmarking  [default: false]', type=bool, metavar='BOOL')
@click.option('--allow-tf32', help='Allow PyTorch to use TF32 internally (StyleGAN2-ADA)', type=bool, metavar='BOOL')
@click.option('--workers', help='DataLoader worker processes  [default: 3]', type=click.IntRange(min=1), metavar='INT')
# This project's additions.
@click.option('--device', help='Where to train: auto (CUDA when available), cpu or cuda', default='auto',
              show_default=True, type=click.Choice(['auto', 'cpu', 'cuda']))
@click.option('--flavour', help='Which upstream command line the flags follow', default='auto', show_default=True,
              type=click.Choice(['auto', train_config.STYLEGAN2_ADA, train_config.STYLEGAN3]))
@click.option('--precision', type=click.Choice(['fp32', 'bf16', 'auto']), default=None,
              help='Number format of the generator\'s synthesis: fp32, bf16 where the hardware has it natively '
                   '(AMX / AVX-512 BF16 CPUs, bf16 GPUs; the discriminator stays fp32), or auto  [default: fp32]')
@click.option('--grid', help='Preview grids (reals.png, fakes*.png): COLUMNSxROWS such as 4x2, or auto  '
              '[default: auto (about 7680x4320 pixels, up to 32x32 images) on GPUs, 4x4 on the CPU]',
              metavar='COLSxROWS')
def main(**flags):
    try:
        run_training(**flags)
    except (OptionsError, launch.LaunchError) as err:
        raise commands.UserError(str(err)) from None


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
