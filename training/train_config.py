"""train.py's flags -> the keyword arguments of ``training_loop`` (no training, no torch).

``train.py`` accepts two command lines, StyleGAN-Human's copies of NVIDIA's:

* **StyleGAN2-ADA** (``training_scripts/sg2/train.py``): ``--cfg`` is a preset
  (``auto``, ``shhq``, ``stylegan2``, ``paper256``, ``paper512``, ``paper1024``,
  ``cifar``) that fixes batch, learning rate, R1 gamma, capacity and EMA; ``auto``
  and ``shhq`` compute them from the dataset resolution and the GPU count, and every
  other flag is an optional override (``--gamma``, ``--kimg``, ``--batch``, ...).
* **StyleGAN3** (``training_scripts/sg3/train.py``): ``--cfg`` is an architecture
  (``stylegan3-t``, ``stylegan3-r``, ``stylegan2``); ``--batch`` and ``--gamma`` are
  required and the rest comes from explicit flags with fixed defaults
  (``--cbase``, ``--cmax``, ``--glr``, ``--dlr``, ``--map-depth``, ...).

Which one a command line means (:func:`detect_flavour`):

1. ``--flavour stylegan2-ada|stylegan3`` says it outright;
2. otherwise ``--cfg=stylegan3-t|stylegan3-r`` or a flag only StyleGAN3 has
   (``--batch-gpu --cbase --cmax --glr --dlr --map-depth --mbstd-group --tick
   --desc``) means StyleGAN3;
3. ``--cfg=auto|shhq|paper256|paper512|paper1024|cifar`` or a flag only
   StyleGAN2-ADA has (``--subset --nhwc --allow-tf32``) means StyleGAN2-ADA;
4. signs of both are an error; no sign at all (no ``--cfg``, or ``--cfg=stylegan2``
   alone) means StyleGAN2-ADA, the script whose ``--cfg`` defaults to ``auto``.

:func:`build_training_options` derives every hyper-parameter the way the upstream
script does for the same flags. Values that the StyleGAN2-ADA script left to its own
``training_loop`` and loss defaults (lazy G regularisation every 4 steps, path-length
weight 2, style mixing 0.9, no EMA ramp-up for the fixed presets) are written out,
because this project's loop and loss have StyleGAN3's defaults. Both flavours also
accept ``--augpipe`` and ``--resume`` with a model-zoo name; ``--kimg`` and
``--tick`` may be fractions of a kimg (short test runs).

User mistakes raise :class:`OptionsError`, whose message is one line.
"""

import dataclasses
import os
import re

import dnnlib
from dnnlib.errors import InputError

STYLEGAN2_ADA = 'stylegan2-ada'
STYLEGAN3 = 'stylegan3'
FLAVOURS = (STYLEGAN2_ADA, STYLEGAN3)

SG3_CFGS = ('stylegan3-t', 'stylegan3-r')
SG2ADA_ONLY_CFGS = ('auto', 'shhq', 'paper256', 'paper512', 'paper1024', 'cifar')
ALL_CFGS = SG2ADA_ONLY_CFGS + ('stylegan2',) + SG3_CFGS

# Flags that exist in only one of the two upstream scripts: they decide the flavour.
SG3_ONLY_FLAGS = {'batch_gpu': '--batch-gpu', 'cbase': '--cbase', 'cmax': '--cmax', 'glr': '--glr',
                  'dlr': '--dlr', 'map_depth': '--map-depth', 'mbstd_group': '--mbstd-group',
                  'tick': '--tick', 'desc': '--desc'}
SG2ADA_ONLY_FLAGS = {'subset': '--subset', 'nhwc': '--nhwc', 'allow_tf32': '--allow-tf32'}

FLAG_NAMES = ('outdir', 'data', 'gpus', 'snap', 'metrics', 'seed', 'dry_run', 'cond', 'subset', 'mirror',
              'square', 'cfg', 'gamma', 'kimg', 'batch', 'aug', 'p', 'target', 'augpipe', 'resume',
              'freezed', 'fp32', 'nhwc', 'allow_tf32', 'nobench', 'workers', 'batch_gpu', 'cbase', 'cmax',
              'glr', 'dlr', 'map_depth', 'mbstd_group', 'desc', 'tick', 'device', 'flavour', 'grid', 'precision')

# Preview grids (reals.png, fakes*.png), (columns, rows). Upstream's fills about 7680x4320
# pixels, up to 32x32 images: on a GPU a moment, on a CPU minutes before the first tick.
CPU_GRID = (4, 4)
MAX_GRID_SIDE = 32

# StyleGAN2-ADA's presets. ref_gpus None: filled in from resolution and GPU count.
CFG_SPECS = {
    'auto':      dict(ref_gpus=None, kimg=25000, mb=None, mbstd=None, fmaps=None, lrate=None, gamma=None,
                      ema=None, ramp=0.05, map=2),
    'shhq':      dict(ref_gpus=None, kimg=25000, mb=None, mbstd=None, fmaps=None, lrate=None, gamma=None,
                      ema=None, ramp=0.05, map=8),
    'stylegan2': dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10, ema=10,
                      ramp=None, map=8),
    'paper256':  dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20,
                      ramp=None, map=8),
    'paper512':  dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20,
                      ramp=None, map=8),
    'paper1024': dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2, ema=10,
                      ramp=None, map=8),
    'cifar':     dict(ref_gpus=2, kimg=100000, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500,
                      ramp=0.05, map=2),
}

# Augmentation presets (--augpipe): which of AugmentPipe's augmentations are on.
_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
AUGPIPE_SPECS = {
    'blit': dict(_BLIT),
    'geom': dict(_GEOM),
    'color': dict(_COLOR),
    'filter': dict(imgfilter=1),
    'noise': dict(noise=1),
    'cutout': dict(cutout=1),
    'bg': {**_BLIT, **_GEOM},
    'bgc': {**_BLIT, **_GEOM, **_COLOR},
    'bgcf': {**_BLIT, **_GEOM, **_COLOR, 'imgfilter': 1},
    'bgcfn': {**_BLIT, **_GEOM, **_COLOR, 'imgfilter': 1, 'noise': 1},
    'bgcfnc': {**_BLIT, **_GEOM, **_COLOR, 'imgfilter': 1, 'noise': 1, 'cutout': 1},
    # StyleGAN-Human: people stay upright, so no 90-degree or arbitrary rotations.
    'body': {**_BLIT, **_GEOM, **_COLOR, 'rotate90': 0, 'rotate': 0},
}

# StyleGAN2-ADA's named transfer-learning sources (--resume).
_TL_BASE = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/'
RESUME_SPECS = {
    'ffhq256': _TL_BASE + 'ffhq-res256-mirror-paper256-noaug.pkl',
    'ffhq512': _TL_BASE + 'ffhq-res512-mirror-stylegan2-noaug.pkl',
    'ffhq1024': _TL_BASE + 'ffhq-res1024-mirror-stylegan2-noaug.pkl',
    'celebahq256': _TL_BASE + 'celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl',
    'lsundog256': _TL_BASE + 'lsundog-res256-paper256-kimg100000-noaug.pkl',
}

# Metric names of NVIDIA's two metric_main modules: checked against when
# metrics/metric_main.py is not importable (its own list wins when it is).
UPSTREAM_METRICS = ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'ppl2_wend', 'eqt50k_int', 'eqt50k_frac',
                    'eqr50k', 'fid50k', 'kid50k', 'pr50k3', 'is50k', 'ppl_zfull', 'ppl_wfull', 'ppl_zend',
                    'ppl_wend')

G_STYLEGAN2 = 'training.networks_stylegan2.Generator'
G_STYLEGAN3 = 'training.networks_stylegan3.Generator'
D_STYLEGAN2 = 'training.networks_stylegan2.Discriminator'


class OptionsError(InputError):
    """A flag combination the user has to fix; the message is one line."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the options need to know about the training data."""
    path: str
    name: str
    resolution: int     # Image height (the width is half of it unless square).
    size: int           # Number of images (before x-flips).
    has_labels: bool
    square: bool = False


# ----------------------------------------------------------------------------
# Flags, flavour, dataset.


def normalize_flags(flags):
    """An EasyDict with every flag name; a flag that was not given is None."""
    unknown = set(flags) - set(FLAG_NAMES)
    if unknown:
        raise TypeError(f'unknown flag names: {sorted(unknown)}')
    return dnnlib.EasyDict({name: flags.get(name) for name in FLAG_NAMES})


def _given(flags, names):
    return [option for name, option in names.items() if flags.get(name) is not None]


def detect_flavour(flags):
    """STYLEGAN2_ADA or STYLEGAN3 for these flags (rule in the module docstring)."""
    f = normalize_flags(flags)
    if f.cfg is not None and f.cfg not in ALL_CFGS:
        raise OptionsError(f'--cfg={f.cfg}: unknown; use one of {", ".join(ALL_CFGS)}')
    sg3_signs = ([f'--cfg={f.cfg}'] if f.cfg in SG3_CFGS else []) + _given(f, SG3_ONLY_FLAGS)
    sg2_signs = ([f'--cfg={f.cfg}'] if f.cfg in SG2ADA_ONLY_CFGS else []) + _given(f, SG2ADA_ONLY_FLAGS)
    requested = f.flavour if f.flavour not in (None, 'auto') else None
    if requested is not None and requested not in FLAVOURS:
        raise OptionsError(f'--flavour={requested}: unknown; use auto, {STYLEGAN2_ADA} or {STYLEGAN3}')
    if requested == STYLEGAN3 and sg2_signs:
        raise OptionsError(f'{sg2_signs[0]} is a StyleGAN2-ADA option; --flavour={STYLEGAN3} does not take it')
    if requested == STYLEGAN2_ADA and sg3_signs:
        raise OptionsError(f'{sg3_signs[0]} is a StyleGAN3 option; --flavour={STYLEGAN2_ADA} does not take it')
    if requested is not None:
        return requested
    if sg3_signs and sg2_signs:
        raise OptionsError(f'{sg3_signs[0]} (StyleGAN3 command line) cannot be combined with {sg2_signs[0]} '
                           '(StyleGAN2-ADA command line)')
    return STYLEGAN3 if sg3_signs else STYLEGAN2_ADA


def open_dataset(path, square=False):
    """DatasetInfo of the images at ``path``, or OptionsError('--data: ...') saying what is wrong."""
    from training.dataset import ImageFolderDataset  # Lazy: config derivation works without it.
    if path is None or str(path).strip() == '':
        raise OptionsError('--data: no dataset given')
    try:
        dataset = ImageFolderDataset(path=path, use_labels=True, max_size=None, xflip=False, square=bool(square))
    except OSError as err:  # DatasetError is an OSError too, as NVIDIA's loader's IOError.
        message = str(err).replace('use square=', 'use --square=').replace('; square=', '; --square=')
        raise OptionsError(f'--data: {message}') from None
    try:
        name = dataset.name or os.path.basename(os.path.normpath(str(path)))
        return DatasetInfo(path=str(path), name=name, resolution=int(dataset.resolution), size=len(dataset),
                           has_labels=bool(dataset.has_labels), square=bool(square))
    finally:
        dataset.close()


def metric_registry():
    """(is_valid_metric, list_valid_metrics, available): metrics/metric_main.py's, or upstream's names."""
    try:
        from metrics import metric_main
    except ModuleNotFoundError as err:
        if err.name not in ('metrics', 'metrics.metric_main'):
            raise
        return (lambda name: name in UPSTREAM_METRICS), (lambda: list(UPSTREAM_METRICS)), False
    return metric_main.is_valid_metric, metric_main.list_valid_metrics, True


def _check_metrics(metrics):
    metrics = [] if metrics is None else list(metrics)
    is_valid, list_valid, _available = metric_registry()
    bad = [name for name in metrics if not is_valid(name)]
    if bad:
        raise OptionsError(f'--metrics: unknown metric {bad[0]!r}; use "none" or any of: '
                           f'{", ".join(list_valid())}')
    return metrics


def snapshot_kimg(path):
    """The kimg in a snapshot's file name (``network-snapshot-001234.pkl`` -> 1234); 0 for other names."""
    match = re.fullmatch(r'network-snapshot-(\d+)\.pkl', os.path.basename(str(path)))
    return int(match.group(1)) if match else 0


def resolve_resume(resume):
    """(resume_pkl, name) for --resume: NVIDIA's named sources, model-zoo names, URLs, existing files.

    ``name`` is the short name used in the run description, None for a path or URL.
    """
    text = str(resume).strip()
    if text in RESUME_SPECS:
        return RESUME_SPECS[text], text
    if '://' in text:
        if text.startswith('file://'):
            _check_resume_file(text[len('file://'):], resume)
        return text, None
    if not os.path.exists(text):
        entry = _zoo_entry(text)
        if entry is not None:
            if entry.version == 1:
                raise OptionsError(f'--resume={resume}: a StyleGAN1 (TensorFlow) network cannot be trained further '
                                   'here; resume from a StyleGAN2 or StyleGAN3 network')
            return entry.name, entry.name
    _check_resume_file(text, resume)
    return text, None


def _zoo_entry(name):
    """The model-zoo entry called ``name``, or None (no zoo or no such name)."""
    looks_like_path = '/' in name or os.sep in name
    if looks_like_path:
        return None
    try:
        from stylegan_human import zoo
    except ImportError:   # this file dropped into NVIDIA's tree, which has no zoo
        return None
    try:
        return zoo.get_model(name)
    except Exception:  # Its error for an unknown name: fall through to the file check.
        return None


def _check_resume_file(path, given):
    if os.path.isdir(path):
        raise OptionsError(f'--resume={given}: is a folder; give a network pickle (.pkl)')
    if not os.path.isfile(path):
        names = ', '.join(RESUME_SPECS)
        raise OptionsError(f'--resume={given}: no such file (nor a URL, a model-zoo name or one of {names})')


# ----------------------------------------------------------------------------
# Derivation.


def build_training_options(flags, dataset):
    """(c, desc): ``training_loop`` keyword arguments for these flags, and the run's description.

    ``flags`` maps click's parameter names to values (None = not given); ``gpus`` is the
    number of processes (WORLD_SIZE under torchrun); ``device`` is 'cpu' or 'cuda'
    (already resolved). ``dataset`` is a :class:`DatasetInfo`.
    """
    f = normalize_flags(flags)
    flavour = detect_flavour(f)
    if flavour == STYLEGAN3:
        c, desc = _stylegan3_options(f, dataset)
    else:
        c, desc = _stylegan2_ada_options(f, dataset)
    c.device = f.device or 'cuda'
    grid = _grid_size(f.grid, c.device)
    if grid is not None:   # None: the loop's own default, upstream's size
        c.image_grid_size = grid
    c.flavour = flavour
    _check_batch_split(c)
    return c, desc


def _grid_size(grid, device):
    """--grid as [columns, rows]; None for upstream's size ('auto', or not given on a GPU)."""
    if grid is None:
        return list(CPU_GRID) if device == 'cpu' else None
    if isinstance(grid, str):
        if grid.strip().lower() == 'auto':
            return None
        match = re.fullmatch(r'\s*(\d+)\s*[xX*]\s*(\d+)\s*', grid)
        sides = [int(match.group(1)), int(match.group(2))] if match else None
    else:
        sides = [int(v) for v in grid] if len(grid) == 2 and all(_is_int(v) for v in grid) else None
    if sides is None or not all(1 <= side <= MAX_GRID_SIDE for side in sides):
        raise OptionsError(f'--grid={grid if isinstance(grid, str) else "x".join(map(str, grid))}: expected '
                           f'COLUMNSxROWS such as 4x2, each 1 to {MAX_GRID_SIDE}, or auto')
    return sides


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _square(f):
    return bool(f.square)


def _is_power_of_two(n):
    return n >= 1 and (n & (n - 1)) == 0


def _num(value):
    """An integral float as int (25000.0 -> 25000): the options JSON reads as upstream's."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _data_loader_kwargs(f):
    # Pinned memory only helps copies to a GPU (and warns without one).
    workers = 3 if f.workers is None else f.workers
    if workers < 1:
        raise OptionsError('--workers must be at least 1')
    return dnnlib.EasyDict(pin_memory=(f.device or 'cuda') != 'cpu', prefetch_factor=2, num_workers=workers)


def _dataset_kwargs(dataset, f):
    return dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=dataset.path, use_labels=True,
                           max_size=dataset.size, xflip=False, square=_square(f), resolution=dataset.resolution)


def _apply_cond(c, f, dataset):
    """--cond: labels on (they must exist) or off. Returns whether they are on."""
    if f.cond:
        if not dataset.has_labels:
            raise OptionsError('--cond=True requires labels specified in dataset.json')
        c.training_set_kwargs.use_labels = True
        return True
    c.training_set_kwargs.use_labels = False
    return False


def _common_general(f):
    snap = 50 if f.snap is None else f.snap
    if snap < 1:
        raise OptionsError('--snap must be at least 1')
    seed = 0 if f.seed is None else f.seed
    if seed < 0:
        raise OptionsError('--seed must be non-negative')
    return snap, seed


def _stylegan2_ada_options(f, dataset):
    """StyleGAN2-ADA's setup_training_loop_kwargs, with StyleGAN-Human's shhq preset and square flag."""
    gpus = 1 if f.gpus is None else f.gpus
    if not _is_power_of_two(gpus):
        raise OptionsError(f'--gpus={gpus}: must be a power of two with the StyleGAN2-ADA configs')
    snap, seed = _common_general(f)
    c = dnnlib.EasyDict(num_gpus=gpus, image_snapshot_ticks=snap, network_snapshot_ticks=snap)
    c.metrics = _check_metrics(['fid50k_full'] if f.metrics is None else f.metrics)
    c.random_seed = seed

    # Dataset.
    square = _square(f)
    c.training_set_kwargs = _dataset_kwargs(dataset, f)
    c.data_loader_kwargs = _data_loader_kwargs(f)
    desc = f'{dataset.name}-{"square" if square else "rectangle"}'
    if _apply_cond(c, f, dataset):
        desc += '-cond'
    if f.subset is not None:
        if not 1 <= f.subset <= dataset.size:
            raise OptionsError(f'--subset must be between 1 and {dataset.size}')
        desc += f'-subset{f.subset}'
        if f.subset < dataset.size:
            c.training_set_kwargs.max_size = f.subset
            c.training_set_kwargs.random_seed = seed
    if f.mirror:
        desc += '-mirror'
        c.training_set_kwargs.xflip = True

    # Base config.
    cfg = f.cfg or 'auto'
    desc += f'-{cfg}'
    spec = dnnlib.EasyDict(CFG_SPECS[cfg])
    if spec.ref_gpus is None:
        desc += f'{gpus:d}'
        spec.update(resolution_spec(dataset.resolution, gpus))

    c.G_kwargs = dnnlib.EasyDict(class_name=G_STYLEGAN2, z_dim=512, w_dim=512, square=square,
                                 mapping_kwargs=dnnlib.EasyDict(num_layers=spec.map),
                                 synthesis_kwargs=dnnlib.EasyDict())
    c.D_kwargs = dnnlib.EasyDict(class_name=D_STYLEGAN2, square=square, block_kwargs=dnnlib.EasyDict(),
                                 mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict())
    syn, D = c.G_kwargs.synthesis_kwargs, c.D_kwargs
    syn.channel_base = D.channel_base = int(spec.fmaps * 32768)
    syn.channel_max = D.channel_max = 512
    syn.num_fp16_res = D.num_fp16_res = 4  # Mixed precision (used on CUDA only).
    syn.conv_clamp = D.conv_clamp = 256    # Keeps float16 activations finite.
    syn.fused_modconv_default = 'inference_only'  # ADA's networks use grouped convolutions only outside training.
    D.epilogue_kwargs.mbstd_group_size = spec.mbstd

    c.G_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=spec.lrate, betas=[0, 0.99], eps=1e-8)
    c.D_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', lr=spec.lrate, betas=[0, 0.99], eps=1e-8)
    # ADA's loss defaults, written out (this project's loss has StyleGAN3's, which are off).
    c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=spec.gamma,
                                    style_mixing_prob=0.9, pl_weight=2, pl_no_weight_grad=True)
    c.total_kimg = spec.kimg
    c.batch_size = spec.mb
    c.batch_gpu = spec.mb // spec.ref_gpus
    c.ema_kimg = spec.ema
    c.ema_rampup = spec.ramp
    c.G_reg_interval = 4  # ADA's training_loop defaults.
    c.D_reg_interval = 16
    c.kimg_per_tick = 4
    c.ada_kimg = 500
    if cfg == 'cifar':
        c.loss_kwargs.pl_weight = 0
        c.loss_kwargs.style_mixing_prob = 0
        c.D_kwargs.architecture = 'orig'

    # Overrides.
    if f.gamma is not None:
        if not f.gamma >= 0:
            raise OptionsError('--gamma must be non-negative')
        desc += f'-gamma{f.gamma:g}'
        c.loss_kwargs.r1_gamma = f.gamma
    if f.kimg is not None:
        if not f.kimg > 0:
            raise OptionsError('--kimg must be positive')
        desc += f'-kimg{f.kimg:g}'
        c.total_kimg = _num(f.kimg)
    if f.batch is not None:
        if not (f.batch >= 1 and f.batch % gpus == 0):
            raise OptionsError('--batch must be at least 1 and divisible by --gpus')
        desc += f'-batch{f.batch}'
        c.batch_size = f.batch
        c.batch_gpu = f.batch // gpus
    elif c.batch_size % gpus != 0:
        raise OptionsError(f'--cfg={cfg} trains on batches of {c.batch_size}, which {gpus} GPUs cannot split '
                           'evenly; give --batch')
    # A preset's per-GPU batch assumes ref_gpus GPUs; with more, each GPU gets fewer
    # images than that and ADA's loop ran them as one smaller chunk.
    c.batch_gpu = min(c.batch_gpu, c.batch_size // gpus)

    desc += _augment_options(c, f, STYLEGAN2_ADA)
    desc += _resume_options(c, f, STYLEGAN2_ADA)
    if f.freezed is not None:
        if not f.freezed >= 0:
            raise OptionsError('--freezed must be non-negative')
        desc += f'-freezed{f.freezed:d}'
        c.D_kwargs.block_kwargs.freeze_layers = f.freezed

    # Performance.
    if f.fp32:
        syn.num_fp16_res = D.num_fp16_res = 0
        syn.conv_clamp = D.conv_clamp = None
    if f.nhwc:
        syn.fp16_channels_last = D.block_kwargs.fp16_channels_last = True
    c.cudnn_benchmark = not f.nobench
    if f.allow_tf32:
        c.allow_tf32 = True
    return c, desc


def resolution_spec(resolution, gpus):
    """The 'auto' / 'shhq' preset's values for a dataset height and a GPU count (ADA's heuristics)."""
    mb = max(min(gpus * min(4096 // resolution, 32), 64), gpus)  # Bounded GPU memory per GPU.
    return dict(
        ref_gpus=gpus,
        mb=mb,
        mbstd=min(mb // gpus, 4),  # A fixed group size keeps the other values predictable.
        fmaps=1 if resolution >= 512 else 0.5,
        lrate=0.002 if resolution >= 1024 else 0.0025,
        gamma=0.0002 * (resolution ** 2) / mb,
        ema=mb * 10 / 32,
    )


def _stylegan3_options(f, dataset):
    """StyleGAN3's train.py main(), with StyleGAN-Human's square flag."""
    missing = [name for name, value in (('--cfg', f.cfg), ('--batch', f.batch), ('--gamma', f.gamma))
               if value is None]
    if missing:
        raise OptionsError(f'the StyleGAN3 command line needs {", ".join(missing)} '
                           '(e.g. --cfg=stylegan3-r --batch=32 --gamma=12.4)')
    cfg = f.cfg
    gpus = 1 if f.gpus is None else f.gpus
    if gpus < 1:
        raise OptionsError('--gpus must be at least 1')
    if f.batch < 1:
        raise OptionsError('--batch must be at least 1')
    if f.gamma < 0:
        raise OptionsError('--gamma must be non-negative')
    snap, seed = _common_general(f)
    square = _square(f)
    cbase = _at_least(f.cbase, 32768, 1, '--cbase')
    cmax = _at_least(f.cmax, 512, 1, '--cmax')
    mbstd_group = _at_least(f.mbstd_group, 4, 1, '--mbstd-group')
    map_depth = _at_least(f.map_depth, 8 if cfg == 'stylegan2' else 2, 1, '--map-depth')
    freezed = _at_least(f.freezed, 0, 0, '--freezed')

    c = dnnlib.EasyDict()
    c.G_kwargs = dnnlib.EasyDict(class_name=None, z_dim=512, w_dim=512, square=square,
                                 mapping_kwargs=dnnlib.EasyDict(num_layers=map_depth))
    c.D_kwargs = dnnlib.EasyDict(class_name=D_STYLEGAN2, square=square,
                                 block_kwargs=dnnlib.EasyDict(freeze_layers=freezed),
                                 mapping_kwargs=dnnlib.EasyDict(),
                                 epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=mbstd_group))
    glr = (0.002 if cfg == 'stylegan2' else 0.0025) if f.glr is None else f.glr
    dlr = 0.002 if f.dlr is None else f.dlr
    if glr < 0 or dlr < 0:
        raise OptionsError('--glr and --dlr must be non-negative')
    c.G_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', betas=[0, 0.99], eps=1e-8, lr=glr)
    c.D_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', betas=[0, 0.99], eps=1e-8, lr=dlr)
    c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=f.gamma)
    c.data_loader_kwargs = _data_loader_kwargs(f)

    c.training_set_kwargs = _dataset_kwargs(dataset, f)
    _apply_cond(c, f, dataset)
    c.training_set_kwargs.xflip = bool(f.mirror)

    c.num_gpus = gpus
    c.batch_size = f.batch
    c.batch_gpu = f.batch_gpu or f.batch // gpus
    c.G_kwargs.channel_base = c.D_kwargs.channel_base = cbase
    c.G_kwargs.channel_max = c.D_kwargs.channel_max = cmax
    c.metrics = _check_metrics(['fid50k_full'] if f.metrics is None else f.metrics)
    c.total_kimg = _num(_positive(f.kimg, 25000, '--kimg'))
    c.kimg_per_tick = _num(_positive(f.tick, 4, '--tick'))
    c.image_snapshot_ticks = c.network_snapshot_ticks = snap
    c.random_seed = c.training_set_kwargs.random_seed = seed

    if c.batch_size % c.num_gpus != 0:
        raise OptionsError('--batch must be a multiple of --gpus')
    if c.batch_gpu < 1 or c.batch_size % (c.num_gpus * c.batch_gpu) != 0:
        raise OptionsError('--batch must be a multiple of --gpus times --batch-gpu')
    if c.batch_gpu < mbstd_group:
        raise OptionsError(f'--batch-gpu ({c.batch_gpu}) cannot be smaller than --mbstd-group ({mbstd_group})')

    # Base configuration.
    c.ema_kimg = c.batch_size * 10 / 32
    c.ema_rampup = 0.05  # StyleGAN3's training_loop defaults, written out.
    c.G_reg_interval = None
    c.D_reg_interval = 16
    c.ada_kimg = 500
    c.loss_kwargs.style_mixing_prob = 0
    c.loss_kwargs.pl_weight = 0
    if cfg == 'stylegan2':
        c.G_kwargs.class_name = G_STYLEGAN2
        c.loss_kwargs.style_mixing_prob = 0.9
        c.loss_kwargs.pl_weight = 2
        c.G_reg_interval = 4
        c.G_kwargs.fused_modconv_default = 'inference_only'  # Plain convolutions are faster in training.
        c.loss_kwargs.pl_no_weight_grad = True
    else:
        c.G_kwargs.class_name = G_STYLEGAN3
        c.G_kwargs.magnitude_ema_beta = 0.5 ** (c.batch_size / (20 * 1e3))
        if cfg == 'stylegan3-r':
            c.G_kwargs.conv_kernel = 1           # 1x1 convolutions,
            c.G_kwargs.channel_base *= 2         # twice the feature maps,
            c.G_kwargs.channel_max *= 2
            c.G_kwargs.use_radial_filters = True  # radially symmetric downsampling,
            c.loss_kwargs.blur_init_sigma = 10   # and D sees blurred images at first.
            c.loss_kwargs.blur_fade_kimg = c.batch_size * 200 / 32

    _augment_options(c, f, STYLEGAN3)
    _resume_options(c, f, STYLEGAN3)
    if f.fp32:
        c.G_kwargs.num_fp16_res = c.D_kwargs.num_fp16_res = 0
        c.G_kwargs.conv_clamp = c.D_kwargs.conv_clamp = None
    c.cudnn_benchmark = not f.nobench

    desc = f'{cfg:s}-{dataset.name:s}-gpus{c.num_gpus:d}-batch{c.batch_size:d}-gamma{c.loss_kwargs.r1_gamma:g}'
    if f.desc is not None:
        desc += f'-{f.desc}'
    return c, desc


def _at_least(value, default, minimum, option):
    value = default if value is None else value
    if value < minimum:
        raise OptionsError(f'{option} must be at least {minimum}')
    return value


def _positive(value, default, option):
    value = default if value is None else value
    if not value > 0:
        raise OptionsError(f'{option} must be positive')
    return value


def _augment_options(c, f, flavour):
    """--aug, --p, --target, --augpipe -> augment_kwargs, augment_p, ada_target; returns the desc part."""
    aug = f.aug or 'ada'
    if aug not in ('ada', 'noaug', 'fixed'):
        raise OptionsError(f'--aug={aug} not supported; use ada, noaug or fixed')
    if f.p is not None and aug != 'fixed':
        raise OptionsError('--p can only be specified with --aug=fixed')
    if f.target is not None and aug != 'ada':
        raise OptionsError('--target can only be specified with --aug=ada')
    if f.augpipe is not None and aug == 'noaug':
        raise OptionsError('--augpipe cannot be specified with --aug=noaug')
    if f.augpipe is not None and f.augpipe not in AUGPIPE_SPECS:
        raise OptionsError(f'--augpipe={f.augpipe}: unknown; use one of {", ".join(AUGPIPE_SPECS)}')
    p = f.p
    if aug == 'fixed' and p is None:
        if flavour == STYLEGAN2_ADA:
            raise OptionsError('--aug=fixed requires specifying --p')
        p = 0.2  # StyleGAN3's default.
    for value, option in ((p, '--p'), (f.target, '--target')):
        if value is not None and not 0 <= value <= 1:
            raise OptionsError(f'{option} must be between 0 and 1')

    augpipe = f.augpipe or 'bgc'
    if aug != 'noaug':
        c.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', **AUGPIPE_SPECS[augpipe])
    if aug == 'ada':
        c.ada_target = 0.6 if f.target is None else f.target
    if aug == 'fixed':
        c.augment_p = p

    desc = ''
    if f.aug is not None:
        desc += f'-{aug}'
    if f.p is not None:
        desc += f'-p{f.p:g}'
    if f.target is not None:
        desc += f'-target{f.target:g}'
    if f.augpipe is not None:
        desc += f'-{f.augpipe}'
    return desc


def _resume_options(c, f, flavour):
    """--resume -> resume_pkl and the transfer-learning adjustments; returns the desc part."""
    if f.resume is None:
        return ''
    if f.resume == 'noresume':
        return '-noresume'
    c.resume_pkl, name = resolve_resume(f.resume)
    c.resume_kimg = snapshot_kimg(c.resume_pkl)  # a training snapshot: counting goes on from its kimg
    c.ada_kimg = 100        # ADA reacts faster at first.
    c.ema_rampup = None     # The resumed G_ema is already good.
    if flavour == STYLEGAN3:
        c.loss_kwargs.blur_init_sigma = 0
    return f'-resume{name}' if name is not None else '-resumecustom'


def _check_batch_split(c):
    """The loop splits each step into num_gpus x (batch_size / num_gpus / batch_gpu) passes."""
    per_gpu = c.batch_size // c.num_gpus
    if c.batch_gpu < 1 or c.batch_size % c.num_gpus != 0 or per_gpu % c.batch_gpu != 0:
        raise OptionsError(f'a batch of {c.batch_size} cannot be split into {c.num_gpus} GPU(s) x passes of '
                           f'{c.batch_gpu}; change --batch or --batch-gpu')
