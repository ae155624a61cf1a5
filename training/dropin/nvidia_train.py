"""Train StyleGAN-Human's 2:1 (or square) networks with NVIDIA's own training loop.

\b
StyleGAN-Human's command lines work unchanged:
  # in a checkout of NVlabs/stylegan2-ada-pytorch
  python train.py --outdir=training_results/sg2/ --data=data/SHHQ-1.0/ --gpus=8 --aug=noaug \\
      --mirror=1 --snap=250 --cfg=shhq --square=False
  # in a checkout of NVlabs/stylegan3
  python train.py --outdir=training_results/sg3/ --cfg=stylegan3-r --gpus=8 --batch=32 --gamma=12.4 \\
      --mirror=1 --aug=noaug --data=data/SHHQ-1.0/ --square=False --snap=250

The options are this checkout's own, plus --square (False, the default: images twice as
tall as wide, the resolution is their height; True: square) and, with StyleGAN2-ADA,
--cfg=shhq (auto with 8 mapping layers) and --cbase/--cmax (capacity, for small trials);
--augpipe=body (no rotations) works in both. --kimg and --tick take fractions. Every
hyper-parameter is derived as StyleGAN-Human's copies of NVIDIA's scripts derive it.
"""

# StyleGAN-Human's exporter (python -m training.dropin) writes this file as train.py into a
# checkout of NVIDIA's code, beside its training/dataset.py, training/train_config.py and
# network files; NVIDIA's training/training_loop.py, loss.py and augment.py run unchanged.

import inspect
import json
import os
import re
import tempfile

import click
import torch

import dnnlib
from training import train_config

STYLEGAN2_ADA = train_config.STYLEGAN2_ADA
STYLEGAN3 = train_config.STYLEGAN3
BOTH = (STYLEGAN2_ADA, STYLEGAN3)

# Which checkout this is: StyleGAN3 keeps its networks in two files, StyleGAN2-ADA in training/networks.py.
_ROOT = os.path.dirname(os.path.abspath(__file__))
TREE = STYLEGAN3 if os.path.isfile(os.path.join(_ROOT, 'training', 'networks_stylegan3.py')) else STYLEGAN2_ADA

CFGS = {STYLEGAN2_ADA: ('auto', 'shhq', 'stylegan2', 'paper256', 'paper512', 'paper1024', 'cifar'),
        STYLEGAN3: ('stylegan3-t', 'stylegan3-r', 'stylegan2')}

# Loss arguments NVIDIA's StyleGAN2-ADA loss takes no flag for: it always does what they ask.
IMPLIED_BY_ADA_LOSS = ('pl_no_weight_grad',)


def _parse_metrics(text):
    if text is None:
        return None
    names = [name.strip() for name in text.split(',') if name.strip()]
    return [] if names in ([], ['none']) else names


def _kimg():
    return click.FloatRange(min=0, min_open=True)


def _per_tree(stylegan2_ada, stylegan3):
    return stylegan3 if TREE == STYLEGAN3 else stylegan2_ada


# (checkouts that have the option, the option); in the order --help lists them.
OPTIONS = [
    (BOTH, click.option('--outdir', help='Where to save the results', required=True, metavar='DIR')),
    (BOTH, click.option('--data', help='Training data (directory or zip)', required=True, metavar='PATH')),
    (BOTH, click.option('--square', help='True: square images; False: 2:1 (height = 2 x width)  [default: False]',
                        type=bool, metavar='BOOL')),
    (BOTH, click.option('--cfg', help=_per_tree('Base config  [default: auto]', 'Base configuration'),
                        type=click.Choice(CFGS[TREE]))),
    (BOTH, click.option('--gpus', help='Number of GPUs to use  [default: 1]', type=click.IntRange(min=1),
                        metavar='INT')),
    (BOTH, click.option('--batch', help=_per_tree('Override batch size', 'Total batch size  [required]'),
                        type=click.IntRange(min=1), metavar='INT')),
    (BOTH, click.option('--gamma', help=_per_tree('Override R1 gamma', 'R1 regularization weight  [required]'),
                        type=click.FloatRange(min=0), metavar='FLOAT')),
    (BOTH, click.option('--kimg', help='Total training duration  [default: 25000]', type=_kimg(), metavar='KIMG')),
    (BOTH, click.option('--snap', help='How often to save snapshots  [default: 50 ticks]',
                        type=click.IntRange(min=1), metavar='TICKS')),
    (BOTH, click.option('--metrics', help='Quality metrics, comma-separated, or "none"  [default: fid50k_full]',
                        metavar='[NAME|A,B,C|none]')),
    (BOTH, click.option('--seed', help='Random seed  [default: 0]', type=click.IntRange(min=0), metavar='INT')),
    (BOTH, click.option('--cond', help='Train a conditional model on dataset.json labels  [default: False]',
                        type=bool, metavar='BOOL')),
    (STYLEGAN2_ADA, click.option('--subset', help='Train with only N images  [default: all]',
                                 type=click.IntRange(min=1), metavar='INT')),
    (BOTH, click.option('--mirror', help='Enable dataset x-flips  [default: False]', type=bool, metavar='BOOL')),
    (BOTH, click.option('--aug', help='Augmentation mode  [default: ada]',
                        type=click.Choice(['noaug', 'ada', 'fixed']))),
    (BOTH, click.option('--p', help='Augmentation probability for --aug=fixed', type=click.FloatRange(min=0, max=1),
                        metavar='FLOAT')),
    (BOTH, click.option('--target', help='ADA target value for --aug=ada  [default: 0.6]',
                        type=click.FloatRange(min=0, max=1), metavar='FLOAT')),
    (BOTH, click.option('--augpipe', help='Augmentation pipeline  [default: bgc]',
                        type=click.Choice(list(train_config.AUGPIPE_SPECS)))),
    (BOTH, click.option('--resume', help='Resume from a network pickle (path or URL)  [default: noresume]',
                        metavar='[PATH|URL]')),
    (BOTH, click.option('--freezed', help='Freeze-D: number of layers of D to freeze  [default: 0]',
                        type=click.IntRange(min=0), metavar='INT')),
    (STYLEGAN3, click.option('--batch-gpu', help='Limit batch size per GPU', type=click.IntRange(min=1),
                             metavar='INT')),
    (BOTH, click.option('--cbase', help=_per_tree('Override the capacity multiplier of --cfg',
                                                  'Capacity multiplier  [default: 32768]'),
                        type=click.IntRange(min=1), metavar='INT')),
    (BOTH, click.option('--cmax', help=_per_tree('Override the max. feature maps of --cfg',
                                                 'Max. feature maps  [default: 512]'),
                        type=click.IntRange(min=1), metavar='INT')),
    (STYLEGAN3, click.option('--glr', help='G learning rate  [default: 0.0025, stylegan2: 0.002]',
                             type=click.FloatRange(min=0), metavar='FLOAT')),
    (STYLEGAN3, click.option('--dlr', help='D learning rate  [default: 0.002]', type=click.FloatRange(min=0),
                             metavar='FLOAT')),
    (STYLEGAN3, click.option('--map-depth', help='Mapping network depth  [default: 2, stylegan2: 8]',
                             type=click.IntRange(min=1), metavar='INT')),
    (STYLEGAN3, click.option('--mbstd-group', help='Minibatch std group size  [default: 4]',
                             type=click.IntRange(min=1), metavar='INT')),
    (STYLEGAN3, click.option('--desc', help='String to include in the result folder name', metavar='STR')),
    (STYLEGAN3, click.option('--tick', help='How often to print progress  [default: 4]', type=_kimg(),
                             metavar='KIMG')),
    (BOTH, click.option('--fp32', help='Disable mixed-precision training  [default: False]', type=bool,
                        metavar='BOOL')),
    (STYLEGAN2_ADA, click.option('--nhwc', help='Use NHWC memory format with FP16', type=bool, metavar='BOOL')),
    (BOTH, click.option('--nobench', help='Disable cuDNN benchmarking  [default: False]', type=bool,
                        metavar='BOOL')),
    (STYLEGAN2_ADA, click.option('--allow-tf32', help='Allow PyTorch to use TF32 internally', type=bool,
                                 metavar='BOOL')),
    (BOTH, click.option('--workers', help='DataLoader worker processes  [default: 3]', type=click.IntRange(min=1),
                        metavar='INT')),
    (BOTH, click.option('-n', '--dry-run', help='Print training options and exit', is_flag=True)),
]


def _with_options(command):
    for trees, option in reversed(OPTIONS):
        if TREE in trees:
            command = option(command)
    return command


# ----------------------------------------------------------------------------


def nvidia_training_loop():
    """NVIDIA's training_loop module; a one-line error for what its code needs and this Python lacks."""
    try:
        from torch_utils import misc
        from training import training_loop
    except ModuleNotFoundError as err:
        if err.name != 'pkg_resources':
            raise
        raise click.ClickException("NVIDIA's torch_utils imports pkg_resources, which setuptools 81 and later "
                                   "no longer have: pip install 'setuptools<81'") from None
    try:
        misc.InfiniteSampler(dataset=[0])
    except TypeError:
        raise click.ClickException(f"NVIDIA's torch_utils/misc.py passes its dataset to torch.utils.data.Sampler(), "
                                   f"which PyTorch {torch.__version__} no longer takes: use an older PyTorch, or "
                                   "drop that argument of super().__init__() in InfiniteSampler") from None
    return training_loop


def training_options(flags):
    """(c, desc): this checkout's training_loop arguments for the command line ``flags``."""
    training_loop = nvidia_training_loop()   # first: what NVIDIA's code lacks here, before any option
    flags = dict(flags)
    capacity = {}
    if TREE == STYLEGAN2_ADA:   # its presets fix the capacity; --cbase and --cmax override them
        capacity = {'channel_base': flags.pop('cbase', None), 'channel_max': flags.pop('cmax', None)}
    flags['flavour'] = TREE
    flags['metrics'] = _parse_metrics(flags.get('metrics'))
    train_config.detect_flavour(flags)   # options of the other code base: one line before the data is read
    dataset = train_config.open_dataset(flags['data'], square=bool(flags.get('square')))
    c, desc = train_config.build_training_options(flags, dataset)

    if TREE == STYLEGAN2_ADA:
        # This checkout's networks live in training/networks.py.
        c.G_kwargs.class_name = 'training.networks.Generator'
        c.D_kwargs.class_name = 'training.networks.Discriminator'
        for kwargs in (c.G_kwargs.synthesis_kwargs, c.D_kwargs):
            kwargs.update({key: value for key, value in capacity.items() if value is not None})
    return _loop_arguments(c, training_loop), desc


def _loop_arguments(c, training_loop):
    """Drop what this checkout's training_loop and loss do not take (the two differ a little)."""
    c = dnnlib.EasyDict(c)
    c.pop('device', None)    # the toolkit's own loop runs on the CPU too; NVIDIA's on CUDA
    c.pop('flavour', None)
    for opt_kwargs in (c.G_opt_kwargs, c.D_opt_kwargs):
        opt_kwargs.betas = [float(beta) for beta in opt_kwargs.betas]   # newer Adam refuses [0, 0.99]: int and float
    accepted = inspect.signature(training_loop.training_loop).parameters
    for key in [key for key in c if key not in accepted]:
        print(f'Note: {key}={c[key]!r} is not used: this checkout\'s training loop has no such argument')
        del c[key]
    loss_class = dnnlib.util.get_obj_by_name(c.loss_kwargs.class_name)
    accepted = inspect.signature(loss_class.__init__).parameters
    for key in [key for key in c.loss_kwargs if key != 'class_name' and key not in accepted]:
        if key not in IMPLIED_BY_ADA_LOSS:
            print(f'Note: {key}={c.loss_kwargs[key]!r} is not used: this checkout\'s loss has no such argument')
        del c.loss_kwargs[key]
    return c


def next_run_dir(outdir, desc):
    """``<outdir>/<next free 5-digit id>-<desc>``."""
    ids = []
    if os.path.isdir(outdir):
        for name in os.listdir(outdir):
            match = re.match(r'\d+', name)
            if match and os.path.isdir(os.path.join(outdir, name)):
                ids.append(int(match.group()))
    return os.path.join(outdir, f'{max(ids, default=-1) + 1:05d}-{desc}')


def print_options(c):
    data = c.training_set_kwargs
    print()
    print('Training options:')
    print(json.dumps(c, indent=2))
    print()
    print(f'Output directory:    {c.run_dir}')
    print(f'Code base:           NVIDIA {TREE} with StyleGAN-Human\'s drop-in')
    print(f'Number of GPUs:      {c.num_gpus}')
    print(f'Batch size:          {c.batch_size} images')
    print(f'Training duration:   {c.total_kimg} kimg')
    print(f'Dataset path:        {data.path}')
    print(f'Dataset size:        {data.max_size} images')
    print(f'Dataset resolution:  {data.resolution} ({"square" if data.square else "2:1, height x width/2"})')
    print(f'Dataset labels:      {data.use_labels}')
    print(f'Dataset x-flips:     {data.xflip}')
    print()


def run_process(rank, c, temp_dir):
    """One training process: log file, torch.distributed, statistics, then NVIDIA's training loop."""
    from torch_utils import custom_ops, training_stats
    from training import training_loop
    dnnlib.util.Logger(file_name=os.path.join(c.run_dir, 'log.txt'), file_mode='a', should_flush=True)
    if c.num_gpus > 1:
        init_file = os.path.abspath(os.path.join(temp_dir, '.torch_distributed_init'))
        if os.name == 'nt':   # no NCCL on Windows
            torch.distributed.init_process_group(backend='gloo', init_method='file:///' + init_file.replace('\\', '/'),
                                                 rank=rank, world_size=c.num_gpus)
        else:
            torch.distributed.init_process_group(backend='nccl', init_method=f'file://{init_file}', rank=rank,
                                                 world_size=c.num_gpus)
    training_stats.init_multiprocessing(rank=rank, sync_device=torch.device('cuda', rank) if c.num_gpus > 1 else None)
    if rank != 0:
        custom_ops.verbosity = 'none'
    training_loop.training_loop(rank=rank, **c)


def create_run_dir(c):
    """The run's folder (never an existing one), with the options it was started with."""
    os.makedirs(c.run_dir)
    with open(os.path.join(c.run_dir, 'training_options.json'), 'wt') as f:
        json.dump(c, f, indent=2)


def launch(c):
    """One training process per GPU."""
    print('Launching processes...')
    torch.multiprocessing.set_start_method('spawn', force=True)   # no fork of a process that holds CUDA
    with tempfile.TemporaryDirectory() as temp_dir:
        if c.num_gpus == 1:
            run_process(0, c, temp_dir)
        else:
            torch.multiprocessing.spawn(fn=run_process, args=(c, temp_dir), nprocs=c.num_gpus)


@click.command(help=__doc__)
@_with_options
def main(outdir, dry_run, **flags):
    try:
        c, desc = training_options(dict(flags, outdir=outdir))
        c.run_dir = next_run_dir(outdir, desc)
    except train_config.OptionsError as err:
        raise click.ClickException(str(err)) from None
    print_options(c)
    if dry_run:
        print('Dry run; exiting.')
        return
    try:
        create_run_dir(c)
    except OSError as err:
        raise click.ClickException(f'--outdir: {err.filename}: {err.strerror}') from None
    launch(c)


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
