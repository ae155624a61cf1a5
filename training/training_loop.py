"""The GAN training loop: NVIDIA's StyleGAN3 ``training_loop`` for 2:1 (and square) data.

``training_loop(**c)`` takes the keyword arguments NVIDIA's ``train.py`` builds
(``training_set_kwargs``, ``G_kwargs``, ``D_kwargs``, ``G_opt_kwargs``, ``loss_kwargs``,
``batch_size``, ``batch_gpu``, ``total_kimg``, ...) and runs in every process of a
run, after ``torch.distributed`` is initialised when ``num_gpus > 1``. What it does,
as upstream:

* networks, optimizers, loss, dataset and augmentation are built from
  ``class_name`` dicts; ``resume_pkl`` is read with the safe loader
  (``legacy.load_network``) and copied into fresh G, D and G_ema;
* each step runs the phases Gmain, Greg, Dmain, Dreg (lazy regularisation every
  ``G_reg_interval`` / ``D_reg_interval`` steps, Adam's lr and betas adjusted for the
  skipped steps) or Gboth, Dboth; gradients are averaged across processes by one
  all-reduce of the flattened gradients (no DDP wrapper), NaN/inf cleaned;
* G_ema follows G with a half-life of ``ema_kimg`` (ramped up by ``ema_rampup``);
* ADA moves the augmentation probability toward ``ada_target`` from the sign of
  D's scores on reals;
* once per tick (``kimg_per_tick``): a status line (stdout and ``log.txt``), a line
  of ``stats.jsonl``, an image grid ``fakes{kimg:06d}.png``, a network snapshot
  ``network-snapshot-{kimg:06d}.pkl`` in the official pickle format, and metrics.

Only rank 0 writes files. Every file is written atomically, so a crash or Ctrl-C
never leaves a truncated snapshot or image. Runs on CUDA (``cuda:rank``) or, when
there is none, on the CPU (multi-process through gloo); ``device`` overrides that.
"""

import contextlib
import copy
import io
import json
import os
import time

import numpy as np
import torch

import dnnlib
from dnnlib.atomic import save_image
from torch_utils import misc
from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import grid_sample_gradfix

# Buffers that legitimately differ between processes (running averages of each
# process's own batches); skipped by the cross-process consistency check.
PER_PROCESS_BUFFERS = r'.*\.[^.]+_(avg|ema)'


# ----------------------------------------------------------------------------
# Small utilities.


construct_class_by_name = dnnlib.util.construct_class_by_name
format_time = dnnlib.util.format_time


def default_device(rank=0):
    """cuda:rank when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device('cuda', rank)
    return torch.device('cpu')


def _cpu_mem_gb():
    """Resident memory of this process in GiB (psutil when installed, else /proc, else peak RSS)."""
    try:
        import psutil
        return psutil.Process(os.getpid()).memory_info().rss / 2**30
    except ImportError:
        pass
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class RunLog:
    """Status lines: printed and appended to ``run_dir/log.txt`` by rank 0, dropped elsewhere."""

    def __init__(self, run_dir, rank):
        self.path = os.path.join(run_dir, 'log.txt') if rank == 0 else None

    def __call__(self, *lines):
        if self.path is None:
            return
        text = '\n'.join(str(line) for line in lines)
        print(text, flush=True)
        with open(self.path, 'a', encoding='utf-8') as f:
            f.write(text + '\n')


@contextlib.contextmanager
def _training_settings(cudnn_benchmark, allow_tf32=False):
    """Upstream's global switches for training, restored afterwards (tests share the process)."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32, conv2d_gradfix.enabled, grid_sample_gradfix.enabled)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32  # Off by default: accuracy over speed, as upstream.
    torch.backends.cudnn.allow_tf32 = allow_tf32
    conv2d_gradfix.enabled = True        # Differentiable twice, and no_weight_gradients() works.
    grid_sample_gradfix.enabled = True   # The augmentation pipe needs second derivatives.
    try:
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32, conv2d_gradfix.enabled, grid_sample_gradfix.enabled) = saved


def _check_fresh_run_dir(run_dir):
    """Refuse to write a run over an earlier one: its snapshots and stats would be overwritten."""
    if not os.path.isdir(run_dir):
        return
    names = os.listdir(run_dir)
    earlier = [n for n in names if n == 'stats.jsonl' or (n.startswith('network-snapshot-') and n.endswith('.pkl'))]
    if earlier:
        raise FileExistsError(f'{run_dir}: already holds a training run ({sorted(earlier)[0]}); '
                              'write the new run to another directory')


# ----------------------------------------------------------------------------
# Image grids.


def setup_snapshot_image_grid(training_set, random_seed=0, grid_size=None):
    """Pick reals for a preview grid: ((gw, gh), uint8 images [N, C, H, W], labels [N, c_dim]).

    The default grid fills about 7680x4320 pixels (7-32 columns, 4-32 rows). Without
    labels the images are a random selection; with labels each row shows one label.
    """
    rnd = np.random.RandomState(random_seed)
    _channels, height, width = training_set.image_shape
    if grid_size is None:
        grid_size = (int(np.clip(7680 // width, 7, 32)), int(np.clip(4320 // height, 4, 32)))
    gw, gh = grid_size

    if not training_set.has_labels:
        order = np.arange(len(training_set))
        rnd.shuffle(order)
        indices = [int(order[i % len(order)]) for i in range(gw * gh)]
    else:
        indices = _indices_by_label(training_set, rnd, gw, gh)

    images, labels = zip(*[training_set[i] for i in indices])
    return (gw, gh), np.stack(images), np.stack(labels)


def _indices_by_label(training_set, rnd, gw, gh):
    """Rows cycle through the sorted labels; each row shows gw images of its label."""
    groups = dict()
    for idx in range(len(training_set)):
        key = tuple(training_set.get_details(idx).raw_label.flat[::-1])
        groups.setdefault(key, []).append(idx)
    keys = sorted(groups)
    for key in keys:
        rnd.shuffle(groups[key])
    indices = []
    for row in range(gh):
        group = groups[keys[row % len(keys)]]
        indices += [group[col % len(group)] for col in range(gw)]
        groups[keys[row % len(keys)]] = group[gw % len(group):] + group[:gw % len(group)]  # Next row: next images.
    return indices


def save_image_grid(img, fname, drange, grid_size):
    """Tile NCHW images (values in ``drange``) into a gh x gw grid and write it atomically."""
    lo, hi = drange
    img = np.asarray(img, dtype=np.float32)
    img = np.rint((img - lo) * (255 / (hi - lo))).clip(0, 255).astype(np.uint8)
    gw, gh = grid_size
    _n, channels, height, width = img.shape
    assert channels in (1, 3), 'image grids need 1 or 3 channels'
    img = img.reshape(gh, gw, channels, height, width).transpose(0, 3, 1, 4, 2)
    img = img.reshape(gh * height, gw * width, channels)
    save_image(img[:, :, 0] if channels == 1 else img, fname)


@torch.no_grad()
def generate_grid_images(G, grid_z, grid_c):
    """G's images for the preview latents (constant noise), as a CPU numpy array."""
    return torch.cat([G(z=z, c=c, noise_mode='const').cpu() for z, c in zip(grid_z, grid_c)]).numpy()


# ----------------------------------------------------------------------------
# Networks, resume, distribution.


def build_networks(G_kwargs, D_kwargs, training_set, device):
    """G, D (training mode, frozen until their phase) and G_ema, shaped for the dataset."""
    common = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution,
                  img_channels=training_set.num_channels)
    square = getattr(training_set, 'square', None)  # StyleGAN-Human datasets say whether they are 2:1.
    G_kwargs, D_kwargs = dict(G_kwargs), dict(D_kwargs)
    if square is not None:
        G_kwargs.setdefault('square', square)
        D_kwargs.setdefault('square', square)
    G = construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False).to(device)
    D = construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    return G, D, G_ema


def resume_networks(resume_pkl, G, D, G_ema, log):
    """Copy G, D and G_ema from a network pickle (read safely) into the fresh networks.

    A pickle holding only G_ema (a released model) seeds G from it too; without D,
    D starts from scratch.
    """
    from stylegan_human.network_files import load_network
    log(f'Resuming from "{resume_pkl}"')
    data = load_network(resume_pkl, verbose=False)
    sources = {'G': data.get('G', data['G_ema']), 'D': data.get('D'), 'G_ema': data['G_ema']}
    for name, module in (('G', G), ('D', D), ('G_ema', G_ema)):
        if sources[name] is None:
            log(f'{resume_pkl} holds no {name}; it starts from scratch')
            continue
        misc.copy_params_and_buffers(sources[name], module, require_all=False)


def broadcast_from_rank0(modules, num_gpus):
    """Give every process rank 0's parameters and buffers."""
    if num_gpus <= 1:
        return
    for module in modules:
        if module is None:
            continue
        for tensor in misc.params_and_buffers(module):
            torch.distributed.broadcast(tensor, src=0)


def setup_augment_pipe(augment_kwargs, augment_p, ada_target, device):
    """The augmentation pipe (None when off) and the ADA statistics collector (None when p is fixed)."""
    if augment_kwargs is None or (augment_p <= 0 and ada_target is None):
        return None, None
    augment_pipe = construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(device)
    augment_pipe.p.copy_(torch.as_tensor(augment_p))
    ada_stats = training_stats.Collector(regex='Loss/signs/real') if ada_target is not None else None
    return augment_pipe, ada_stats


# ----------------------------------------------------------------------------
# Training phases and updates.


def lazy_regularization_opt_kwargs(opt_kwargs, reg_interval):
    """Adam settings for a module regularised every ``reg_interval`` steps.

    The regulariser's steps are extra optimizer steps, so lr and betas are scaled to
    keep the per-minibatch behaviour of a plain run (StyleGAN2 paper, appendix B).
    """
    mb_ratio = reg_interval / (reg_interval + 1)
    opt_kwargs = dnnlib.EasyDict(opt_kwargs)
    opt_kwargs.lr = opt_kwargs.lr * mb_ratio
    opt_kwargs.betas = [beta ** mb_ratio for beta in opt_kwargs.betas]
    return opt_kwargs


def _float_betas(opt_kwargs):
    """Recent torch refuses betas=[0, 0.99] (an int beside a float), upstream's default: make them floats."""
    opt_kwargs = dnnlib.EasyDict(opt_kwargs)
    if 'betas' in opt_kwargs:
        opt_kwargs.betas = [float(beta) for beta in opt_kwargs.betas]
    return opt_kwargs


def build_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval):
    """[Gmain, Greg, Dmain, Dreg] with lazy regularisation, or [Gboth] / [Dboth] without."""
    phases = []
    for name, module, opt_kwargs, reg_interval in (('G', G, G_opt_kwargs, G_reg_interval),
                                                   ('D', D, D_opt_kwargs, D_reg_interval)):
        opt_kwargs = _float_betas(opt_kwargs)
        if reg_interval is None:
            opt = construct_class_by_name(module.parameters(), **opt_kwargs)
            phases.append(dnnlib.EasyDict(name=name + 'both', module=module, opt=opt, interval=1))
        else:
            opt = construct_class_by_name(module.parameters(), **lazy_regularization_opt_kwargs(opt_kwargs, reg_interval))
            phases.append(dnnlib.EasyDict(name=name + 'main', module=module, opt=opt, interval=1))
            phases.append(dnnlib.EasyDict(name=name + 'reg', module=module, opt=opt, interval=reg_interval))
    return phases


def sync_gradients(module, num_gpus):
    """Average the gradients of ``module`` across processes (one all-reduce); NaN -> 0, inf -> +-1e5."""
    params = [param for param in module.parameters() if param.grad is not None]
    if not params:
        return
    flat = torch.cat([param.grad.flatten() for param in params])
    if num_gpus > 1:
        torch.distributed.all_reduce(flat)
        flat /= num_gpus
    torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    for param, grad in zip(params, flat.split([param.numel() for param in params])):
        param.grad = grad.reshape(param.shape)


def run_phase(phase, loss, real_img, real_c, gen_z, gen_c, cur_nimg, num_gpus):
    """Accumulate the phase's gradients over its batch_gpu chunks, sync them, step the optimizer."""
    phase.opt.zero_grad(set_to_none=True)
    phase.module.requires_grad_(True)
    for chunk in zip(real_img, real_c, gen_z, gen_c):
        loss.accumulate_gradients(phase=phase.name, real_img=chunk[0], real_c=chunk[1], gen_z=chunk[2],
                                  gen_c=chunk[3], gain=phase.interval, cur_nimg=cur_nimg)
    phase.module.requires_grad_(False)
    sync_gradients(phase.module, num_gpus)
    phase.opt.step()


def ema_beta(cur_nimg, batch_size, ema_kimg, ema_rampup):
    """Weight of the old G_ema per step: half-life ema_kimg, shorter early on with ema_rampup."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema, G, beta):
    """G_ema parameters <- lerp(G, G_ema, beta); buffers copied from G."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def ada_adjustment(signs_real_mean, ada_target, batch_size, ada_interval, ada_kimg):
    """Change of p after ada_interval steps: +-(images seen) / (ada_kimg * 1000), by the sign of the overfit."""
    return float(np.sign(signs_real_mean - ada_target)) * (batch_size * ada_interval) / (ada_kimg * 1000)


def adjust_augment_p(augment_pipe, ada_stats, ada_target, batch_size, ada_interval, ada_kimg):
    """One ADA update of ``augment_pipe.p`` (kept >= 0) from the collected Loss/signs/real."""
    ada_stats.update()
    signs = ada_stats['Loss/signs/real']
    if not np.isfinite(signs):  # Nothing reported (no D main phase yet): leave p alone.
        return
    adjust = ada_adjustment(signs, ada_target, batch_size, ada_interval, ada_kimg)
    augment_pipe.p.copy_((augment_pipe.p + adjust).clamp(min=0))


# ----------------------------------------------------------------------------
# Per-tick output.


def _tick_fields(cur_tick, cur_nimg, start_time, tick_start_time, tick_end_time, tick_start_nimg,
                 maintenance_time, device, augment_pipe):
    """The status line's fields; each value is also reported to training_stats (rank 0's)."""
    report0 = training_stats.report0
    on_cuda = device.type == 'cuda'
    tick_sec = tick_end_time - tick_start_time
    fields = [
        f"tick {report0('Progress/tick', cur_tick):<5d}",
        f"kimg {report0('Progress/kimg', cur_nimg / 1e3):<8.1f}",
        f"time {format_time(report0('Timing/total_sec', tick_end_time - start_time)):<12s}",
        f"sec/tick {report0('Timing/sec_per_tick', tick_sec):<7.1f}",
        f"sec/kimg {report0('Timing/sec_per_kimg', tick_sec / max(cur_nimg - tick_start_nimg, 1) * 1e3):<7.2f}",
        f"maintenance {report0('Timing/maintenance_sec', maintenance_time):<6.1f}",
        f"cpumem {report0('Resources/cpu_mem_gb', _cpu_mem_gb()):<6.2f}",
        f"gpumem {report0('Resources/peak_gpu_mem_gb', torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else 0):<6.2f}",
        f"reserved {report0('Resources/peak_gpu_mem_reserved_gb', torch.cuda.max_memory_reserved(device) / 2**30 if on_cuda else 0):<6.2f}",
        f"augment {report0('Progress/augment', float(augment_pipe.p.cpu()) if augment_pipe is not None else 0):.3f}",
    ]
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    report0('Timing/total_hours', (tick_end_time - start_time) / (60 * 60))
    report0('Timing/total_days', (tick_end_time - start_time) / (24 * 60 * 60))
    return fields


def snapshot_networks(G, D, G_ema, augment_pipe, training_set_kwargs, num_gpus):
    """Frozen CPU copies of the networks for a snapshot, identical on every process."""
    data = dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe, training_set_kwargs=dict(training_set_kwargs))
    for key, value in data.items():
        if isinstance(value, torch.nn.Module):
            value = copy.deepcopy(value).eval().requires_grad_(False)
            if num_gpus > 1:
                misc.check_ddp_consistency(value, ignore_regex=PER_PROCESS_BUFFERS)
                broadcast_from_rank0([value], num_gpus)  # Running averages: rank 0's.
            data[key] = value.cpu()
    return data


def save_snapshot(snapshot_data, path):
    """Write the official pickle atomically: an interrupted write leaves any earlier file intact."""
    from stylegan_human.network_files import save_network_pkl
    save_network_pkl(snapshot_data, path)


def evaluate_metrics(metrics, snapshot_data, snapshot_pkl, training_set_kwargs, run_dir, num_gpus, rank, device,
                     log):
    """Compute each metric on the snapshot's G_ema; rank 0 appends the results to the run's metric files."""
    from metrics import metric_main
    log('Evaluating metrics...')
    results = dict()
    for metric in metrics:
        result_dict = metric_main.calc_metric(metric=metric, G=snapshot_data['G_ema'],
                                              dataset_kwargs=training_set_kwargs, num_gpus=num_gpus, rank=rank,
                                              device=device)
        if rank == 0:
            metric_main.report_metric(result_dict, run_dir=run_dir, snapshot_pkl=snapshot_pkl)
        results.update(result_dict.results)
    return results


class StatsWriter:
    """stats.jsonl (one line of averaged statistics per tick) and TensorBoard events when available."""

    def __init__(self, run_dir, rank, start_time, log):
        self.jsonl = None
        self.tfevents = None
        self.start_time = start_time
        if rank != 0:
            return
        self.jsonl = open(os.path.join(run_dir, 'stats.jsonl'), 'at', encoding='utf-8')
        try:
            import torch.utils.tensorboard as tensorboard
            self.tfevents = tensorboard.SummaryWriter(run_dir)
        except ImportError as err:
            log(f'Skipping tfevents export: {err}')

    def write(self, stats_dict, stats_metrics, cur_nimg):
        timestamp = time.time()
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(dict(stats_dict, timestamp=timestamp)) + '\n')
            self.jsonl.flush()
        if self.tfevents is not None:
            step = int(cur_nimg / 1e3)
            walltime = timestamp - self.start_time
            for name, value in stats_dict.items():
                self.tfevents.add_scalar(name, value.mean, global_step=step, walltime=walltime)
            for name, value in stats_metrics.items():
                self.tfevents.add_scalar(f'Metrics/{name}', value, global_step=step, walltime=walltime)
            self.tfevents.flush()

    def close(self):
        if self.jsonl is not None:
            self.jsonl.close()
        if self.tfevents is not None:
            self.tfevents.close()


# ----------------------------------------------------------------------------
# The loop.


def training_loop(
    run_dir                 = '.',      # Output directory.
    training_set_kwargs     = {},       # Dataset: class_name and its arguments.
    data_loader_kwargs      = {},       # Arguments of torch.utils.data.DataLoader.
    G_kwargs                = {},       # Generator: class_name and its arguments.
    D_kwargs                = {},       # Discriminator: class_name and its arguments.
    G_opt_kwargs            = {},       # Generator optimizer: class_name and its arguments.
    D_opt_kwargs            = {},       # Discriminator optimizer: class_name and its arguments.
    augment_kwargs          = None,     # Augmentation pipe: class_name and its arguments; None = none.
    loss_kwargs             = {},       # Loss: class_name and its arguments.
    metrics                 = [],       # Metrics evaluated at each network snapshot.
    random_seed             = 0,        # Global random seed.
    num_gpus                = 1,        # Number of processes taking part.
    rank                    = 0,        # This process's rank in [0, num_gpus).
    batch_size              = 4,        # Images per step, all processes together.
    batch_gpu               = 4,        # Images per forward/backward pass of one process.
    ema_kimg                = 10,       # Half-life of G_ema, in thousands of images.
    ema_rampup              = 0.05,     # Early half-life = cur_nimg * ema_rampup; None = no ramp-up.
    G_reg_interval          = None,     # Lazy regularisation interval of G; None = regularise every step.
    D_reg_interval          = 16,       # Lazy regularisation interval of D; None = regularise every step.
    augment_p               = 0,        # Initial augmentation probability.
    ada_target              = None,     # ADA target for E[sign(D(reals))]; None = fixed p.
    ada_interval            = 4,        # Steps between ADA adjustments.
    ada_kimg                = 500,      # Thousands of images for p to move by one.
    total_kimg              = 25000,    # Length of training in thousands of real images.
    kimg_per_tick           = 4,        # Progress interval.
    image_snapshot_ticks    = 50,       # Image grid every this many ticks; None = never.
    network_snapshot_ticks  = 50,       # Network snapshot every this many ticks; None = never.
    resume_pkl              = None,     # Network pickle (path, URL or model-zoo name) to start from.
    resume_kimg             = 0,        # Images (in thousands) already trained: counting goes on from here.
    cudnn_benchmark         = True,     # torch.backends.cudnn.benchmark.
    allow_tf32              = False,    # TF32 matmuls and convolutions on Ampere+ (StyleGAN2-ADA's option).
    abort_fn                = None,     # Returns True to stop; must agree across processes.
    progress_fn             = None,     # Called as progress_fn(cur_kimg, total_kimg) in every process.
    device                  = None,     # Where to train; None = cuda:rank if CUDA is available, else CPU.
    image_grid_size         = None,     # (columns, rows) of the preview grids; None = about 7680x4320 pixels.
):
    start_time = time.time()
    device = default_device(rank) if device is None else torch.device(device)
    np.random.seed(random_seed * num_gpus + rank)
    torch.manual_seed(random_seed * num_gpus + rank)
    _check_fresh_run_dir(run_dir)
    if rank == 0:
        os.makedirs(run_dir, exist_ok=True)
    log = RunLog(run_dir, rank)
    if num_gpus > 1:
        _init_stats_multiprocessing(rank, device)

    with _training_settings(cudnn_benchmark, allow_tf32):
        _train(**locals())  # Every argument above, plus start_time, device and log.
    log('', 'Exiting...')


def _init_stats_multiprocessing(rank, device):
    """training_stats all-reduce across processes, unless the caller (train.py) already set it up."""
    if training_stats._sync_device is not None:
        return
    backend = torch.distributed.get_backend()
    sync_device = device if (device.type == 'cuda' and backend == 'nccl') else torch.device('cpu')
    training_stats.init_multiprocessing(rank=rank, sync_device=sync_device)


def _train(start_time, device, log, run_dir, training_set_kwargs, data_loader_kwargs, G_kwargs, D_kwargs,
           G_opt_kwargs, D_opt_kwargs, augment_kwargs, loss_kwargs, metrics, random_seed, num_gpus, rank, batch_size,
           batch_gpu, ema_kimg, ema_rampup, G_reg_interval, D_reg_interval, augment_p, ada_target, ada_interval,
           ada_kimg, total_kimg, kimg_per_tick, image_snapshot_ticks, network_snapshot_ticks, resume_pkl,
           resume_kimg, cudnn_benchmark, allow_tf32, abort_fn, progress_fn, image_grid_size):
    assert batch_size % (batch_gpu * num_gpus) == 0, 'batch_size must be a multiple of batch_gpu * num_gpus'

    # Training set.
    log('Loading training set...')
    training_set = construct_class_by_name(**training_set_kwargs)
    sampler = misc.InfiniteSampler(dataset=training_set, rank=rank, num_replicas=num_gpus, seed=random_seed)
    training_set_iterator = iter(torch.utils.data.DataLoader(dataset=training_set, sampler=sampler,
                                                             batch_size=batch_size // num_gpus, **data_loader_kwargs))
    log('', f'Num images:  {len(training_set)}', f'Image shape: {training_set.image_shape}',
        f'Label shape: {training_set.label_shape}', '')

    # Networks.
    log('Constructing networks...')
    G, D, G_ema = build_networks(G_kwargs, D_kwargs, training_set, device)
    if resume_pkl is not None and rank == 0:
        resume_networks(resume_pkl, G, D, G_ema, log)
    if rank == 0:
        _log_module_summaries(G, D, batch_gpu, device, log)

    log('Setting up augmentation...')
    augment_pipe, ada_stats = setup_augment_pipe(augment_kwargs, augment_p, ada_target, device)

    log(f'Distributing across {num_gpus} processes...')
    broadcast_from_rank0([G, D, G_ema, augment_pipe], num_gpus)

    log('Setting up training phases...')
    loss = construct_class_by_name(device=device, G=G, D=D, augment_pipe=augment_pipe, **loss_kwargs)
    phases = build_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval)
    for phase in phases:
        phase.timer = PhaseTimer(device, enabled=(rank == 0))

    # Preview grids: the same latents at every snapshot.
    grid_size = grid_z = grid_c = None
    if rank == 0:
        log('Exporting sample images...')
        grid_size, images, labels = setup_snapshot_image_grid(training_set, grid_size=image_grid_size)
        save_image_grid(images, os.path.join(run_dir, 'reals.png'), drange=[0, 255], grid_size=grid_size)
        grid_z = torch.randn([labels.shape[0], G.z_dim], device=device).split(batch_gpu)
        grid_c = torch.from_numpy(labels).to(device).split(batch_gpu)
        save_image_grid(generate_grid_images(G_ema, grid_z, grid_c), os.path.join(run_dir, 'fakes_init.png'),
                        drange=[-1, 1], grid_size=grid_size)

    log('Initializing logs...')
    stats_collector = training_stats.Collector(regex='.*')
    stats_metrics = dict()
    stats_writer = StatsWriter(run_dir, rank, start_time, log)

    log(f'Training for {total_kimg} kimg...', '')
    cur_nimg = int(resume_kimg * 1000)
    cur_tick = 0
    tick_start_nimg = cur_nimg
    tick_start_time = time.time()
    maintenance_time = tick_start_time - start_time
    batch_idx = 0
    if progress_fn is not None:
        progress_fn(cur_nimg // 1000, total_kimg)

    try:
        while True:
            real_img, real_c, all_gen_z, all_gen_c = _fetch_batch(training_set, training_set_iterator, len(phases),
                                                                  batch_size, batch_gpu, G.z_dim, device)

            for phase, gen_z, gen_c in zip(phases, all_gen_z, all_gen_c):
                if batch_idx % phase.interval != 0:
                    continue
                phase.timer.start()
                run_phase(phase, loss, real_img, real_c, gen_z, gen_c, cur_nimg, num_gpus)
                phase.timer.stop()

            update_ema(G_ema, G, ema_beta(cur_nimg, batch_size, ema_kimg, ema_rampup))
            cur_nimg += batch_size
            batch_idx += 1

            if ada_stats is not None and batch_idx % ada_interval == 0:
                adjust_augment_p(augment_pipe, ada_stats, ada_target, batch_size, ada_interval, ada_kimg)

            # Maintenance once per tick (and after the last step).
            done = cur_nimg >= total_kimg * 1000
            if not done and cur_tick != 0 and cur_nimg < tick_start_nimg + kimg_per_tick * 1000:
                continue

            tick_end_time = time.time()
            log(' '.join(_tick_fields(cur_tick, cur_nimg, start_time, tick_start_time, tick_end_time,
                                      tick_start_nimg, maintenance_time, device, augment_pipe)))

            if not done and abort_fn is not None and abort_fn():
                done = True
                log('', 'Aborting...')

            if rank == 0 and image_snapshot_ticks is not None and (done or cur_tick % image_snapshot_ticks == 0):
                save_image_grid(generate_grid_images(G_ema, grid_z, grid_c),
                                os.path.join(run_dir, f'fakes{cur_nimg // 1000:06d}.png'),
                                drange=[-1, 1], grid_size=grid_size)

            snapshot_data = snapshot_pkl = None
            if network_snapshot_ticks is not None and (done or cur_tick % network_snapshot_ticks == 0):
                snapshot_data = snapshot_networks(G, D, G_ema, augment_pipe, training_set_kwargs, num_gpus)
                snapshot_pkl = os.path.join(run_dir, f'network-snapshot-{cur_nimg // 1000:06d}.pkl')
                if rank == 0:
                    save_snapshot(snapshot_data, snapshot_pkl)

            if snapshot_data is not None and len(metrics) > 0:
                stats_metrics.update(evaluate_metrics(metrics, snapshot_data, snapshot_pkl, training_set_kwargs,
                                                      run_dir, num_gpus, rank, device, log))
            del snapshot_data  # Free the copies before training goes on.

            for phase in phases:
                training_stats.report0('Timing/' + phase.name, phase.timer.elapsed_ms())
            stats_collector.update()
            stats_writer.write(stats_collector.as_dict(), stats_metrics, cur_nimg)
            if progress_fn is not None:
                progress_fn(cur_nimg // 1000, total_kimg)

            cur_tick += 1
            tick_start_nimg = cur_nimg
            tick_start_time = time.time()
            maintenance_time = tick_start_time - tick_end_time
            if done:
                break
    finally:
        stats_writer.close()


def _log_module_summaries(G, D, batch_gpu, device, log):
    """Upstream's parameter tables of G and D, into the log (runs each network once on zeros)."""
    z = torch.zeros([batch_gpu, G.z_dim], device=device)
    c = torch.zeros([batch_gpu, G.c_dim], device=device)
    text = io.StringIO()
    with torch.no_grad(), contextlib.redirect_stdout(text):
        img = misc.print_module_summary(G, [z, c])
        misc.print_module_summary(D, [img, c])
    log(text.getvalue().rstrip('\n'))


class PhaseTimer:
    """Duration of a phase's latest run: CUDA events (no synchronisation per step) or wall time on CPU."""

    def __init__(self, device, enabled=True):
        self.enabled = enabled
        self.cuda = enabled and device.type == 'cuda'
        self.device = device
        self.events = None
        self.seconds = None
        self._t0 = None
        if self.cuda:
            self.events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def start(self):
        if self.cuda:
            self.events[0].record(torch.cuda.current_stream(self.device))
        elif self.enabled:
            self._t0 = time.perf_counter()

    def stop(self):
        if self.cuda:
            self.events[1].record(torch.cuda.current_stream(self.device))
            self.seconds = 0  # Marks that the events hold a measurement.
        elif self.enabled:
            self.seconds = time.perf_counter() - self._t0

    def elapsed_ms(self):
        """Milliseconds of the latest run, or [] (nothing to report) before the first or when disabled."""
        if self.seconds is None:
            return []
        if self.cuda:
            self.events[1].synchronize()
            return self.events[0].elapsed_time(self.events[1])
        return self.seconds * 1e3


def _fetch_batch(training_set, iterator, num_phases, batch_size, batch_gpu, z_dim, device):
    """One step's data: reals in [-1, 1] and labels split by batch_gpu; fresh z and c per phase."""
    real_img, real_c = next(iterator)
    real_img = (real_img.to(device).to(torch.float32) / 127.5 - 1).split(batch_gpu)
    real_c = real_c.to(device).split(batch_gpu)
    all_gen_z = torch.randn([num_phases * batch_size, z_dim], device=device)
    all_gen_z = [phase_z.split(batch_gpu) for phase_z in all_gen_z.split(batch_size)]
    labels = [training_set.get_label(np.random.randint(len(training_set))) for _ in range(num_phases * batch_size)]
    all_gen_c = torch.from_numpy(np.stack(labels)).to(device)
    all_gen_c = [phase_c.split(batch_gpu) for phase_c in all_gen_c.split(batch_size)]
    return real_img, real_c, all_gen_z, all_gen_c
