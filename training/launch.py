"""Starting a training run: run directory, processes, torch.distributed, then ``training_loop``.

Two ways to get several processes:

* ``train.py --gpus N`` on one machine: N processes started here with
  ``torch.multiprocessing.spawn``, meeting through a ``file://`` rendezvous in a
  temporary folder. On CUDA process i uses ``cuda:i`` and NCCL; on the CPU
  (``--device cpu``, or no GPU) the N processes share the cores and use gloo.
* ``torchrun ... train.py ...`` (one or several machines): torchrun starts the
  processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
  ``MASTER_PORT``; every process joins through ``env://``, uses ``cuda:LOCAL_RANK``
  (or the CPU), and the total batch is split across ``WORLD_SIZE`` processes. Rank 0
  creates the run directory and tells the others its name.

Every process then calls ``training.training_loop.training_loop(rank=..., num_gpus=
world_size, **c)``. Run directories are ``<outdir>/<5-digit id>-<desc>`` with the
next free id; an existing directory is never reused.
"""

import inspect
import json
import os
import re
import tempfile

import dnnlib
from dnnlib.atomic import atomic_write
# torchrun parsing is the library's (generate.py uses it too); these names stay importable from here.
from stylegan_human.processes import TORCHRUN_VARS, DistributedEnv, LaunchError, torchrun_environment  # noqa: F401

OPTIONS_FILE = 'training_options.json'
# In training_options.json for the reader; not training_loop arguments. ('precision' is the
# number-format scope that train_in_this_process enters around the loop, in every process.)
RECORD_ONLY_KEYS = ('flavour', 'precision')
_RUN_ID = re.compile(r'^\d+')


# ----------------------------------------------------------------------------
# Environment and devices.


def resolve_device_type(name, cuda_available=None):
    """'auto' -> 'cuda' when CUDA is available, else 'cpu'; 'cuda' without CUDA is an error."""
    name = (name or 'auto').strip().lower()
    if name not in ('auto', 'cpu', 'cuda'):
        raise LaunchError(f'--device={name}: use auto, cpu or cuda')
    if cuda_available is None:
        import torch
        cuda_available = torch.cuda.is_available()
    if name == 'auto':
        return 'cuda' if cuda_available else 'cpu'
    if name == 'cuda' and not cuda_available:
        raise LaunchError('--device=cuda: CUDA is not available here; use --device=cpu (or auto)')
    return name


def check_device_count(device_type, processes_here, highest_local_rank=None, cuda_count=None):
    """Each process on this machine needs its own GPU."""
    if device_type != 'cuda':
        return
    if cuda_count is None:
        import torch
        cuda_count = torch.cuda.device_count()
    needed = processes_here if highest_local_rank is None else max(processes_here, highest_local_rank + 1)
    if needed > cuda_count:
        raise LaunchError(f'{needed} processes need {needed} GPUs on this machine, but it has {cuda_count}; '
                          'lower --gpus (or --nproc-per-node), or use --device=cpu')


def check_cpu_processes_asked_for(requested_device, device_type, processes):
    """Several processes that fell back to the CPU only because no GPU is here: a mistake unless asked for.

    Upstream's command lines say ``--gpus=8``; on a machine without CUDA that would start eight
    CPU processes on however many cores there are. ``--device=cpu`` says that is meant.
    """
    if processes > 1 and device_type == 'cpu' and (requested_device or 'auto').strip().lower() == 'auto':
        raise LaunchError(f'--gpus={processes}: this machine has no CUDA device; to train with {processes} '
                          'processes on the CPU anyway, add --device=cpu')


def process_device(device_type, local_rank):
    """This process's device: cuda:local_rank, or the CPU."""
    import torch
    return torch.device('cuda', local_rank) if device_type == 'cuda' else torch.device('cpu')


def backend_for(device_type):
    return 'nccl' if device_type == 'cuda' else 'gloo'


def file_init_method(folder):
    """A file:// rendezvous in ``folder`` (works for NCCL and gloo, on Linux and Windows)."""
    path = os.path.abspath(os.path.join(folder, '.torch_distributed_init'))
    if os.name == 'nt':
        return 'file:///' + path.replace('\\', '/')
    return 'file://' + path


# ----------------------------------------------------------------------------
# Run directories.


def next_run_id(outdir):
    """One more than the highest numbered run in ``outdir`` (0 when there is none)."""
    if not os.path.isdir(outdir):
        return 0
    ids = [int(m.group()) for m in (_RUN_ID.match(name) for name in os.listdir(outdir)
                                    if os.path.isdir(os.path.join(outdir, name))) if m is not None]
    return max(ids, default=-1) + 1


def run_dir_path(outdir, run_id, desc):
    return os.path.join(outdir, f'{run_id:05d}-{desc}')


def create_run_dir(outdir, desc, c):
    """Make the next free ``<outdir>/<id>-<desc>`` and write training_options.json into it.

    Sets ``c.run_dir`` and returns it. A directory taken meanwhile (another run started
    at the same moment) makes it try the next id; nothing existing is written into.
    An unusable ``outdir`` raises LaunchError.
    """
    try:
        os.makedirs(outdir, exist_ok=True)
        run_id = next_run_id(outdir)
        while True:
            run_dir = run_dir_path(outdir, run_id, desc)
            try:
                os.mkdir(run_dir)
                break
            except FileExistsError:
                run_id = max(run_id + 1, next_run_id(outdir))
    except OSError as err:
        raise LaunchError(f'--outdir={outdir}: {err.strerror or err}') from None
    c.run_dir = run_dir
    try:
        write_training_options(run_dir, c)
    except BaseException as err:
        if not os.listdir(run_dir):  # Leave nothing behind for a run that never started.
            os.rmdir(run_dir)
        if isinstance(err, OSError):
            raise LaunchError(f'{run_dir}: {err.strerror or err}') from None
        raise
    return run_dir


def write_training_options(run_dir, c):
    text = json.dumps(c, indent=2) + '\n'
    atomic_write(os.path.join(run_dir, OPTIONS_FILE), lambda f: f.write(text), mode='w')


# ----------------------------------------------------------------------------
# Processes.


def training_loop_kwargs(c, loop_fn, log=print):
    """The entries of ``c`` that ``loop_fn`` takes; the others are reported once and left out."""
    params = inspect.signature(loop_fn).parameters
    c = {key: value for key, value in c.items() if key not in RECORD_ONLY_KEYS}
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return c
    skipped = sorted(key for key in c if key not in params)
    if skipped and log is not None:
        log(f'Note: training_loop takes no {", ".join(skipped)}; left out')
    return {key: value for key, value in c.items() if key in params}


def train_in_this_process(c, rank, world_size, device_type, local_rank, local_world_size, loop_fn=None):
    """Device, threads, statistics sync, then the training loop (torch.distributed already set up).

    ``loop_fn`` defaults to ``training.training_loop.training_loop``.
    """
    import torch
    from torch_utils import precision, training_stats

    if loop_fn is None:
        from training import training_loop
        loop_fn = training_loop.training_loop
    device = process_device(device_type, local_rank)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    elif local_world_size > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world_size))  # Share the cores.
    if world_size > 1:  # A single process keeps the defaults (and may have synced stats before).
        training_stats.init_multiprocessing(rank=rank, sync_device=device)
    kwargs = training_loop_kwargs(dict(c, device=str(device)), loop_fn, log=print if rank == 0 else None)
    kwargs.update(rank=rank, num_gpus=world_size)
    with precision.use_precision(torch.bfloat16 if c.get('precision') == 'bf16' else torch.float32):
        return loop_fn(**kwargs)


def _spawned_process(rank, c, world_size, device_type, init_method, loop_fn):
    """Entry point of a process started by launch_local."""
    import torch
    if device_type == 'cuda':
        torch.cuda.set_device(rank)  # Before NCCL picks a device.
    torch.distributed.init_process_group(backend=backend_for(device_type), init_method=init_method,
                                         rank=rank, world_size=world_size)
    try:
        train_in_this_process(c, rank=rank, world_size=world_size, device_type=device_type,
                              local_rank=rank, local_world_size=world_size, loop_fn=loop_fn)
        torch.distributed.barrier()  # Nobody tears down its connections while a peer still uses them.
    finally:
        torch.distributed.destroy_process_group()


def launch_local(c, num_processes, device_type, loop_fn=None):
    """Train in this process (one) or in ``num_processes`` spawned ones on this machine.

    ``loop_fn`` (default: the training loop) must be picklable by reference for spawned processes.
    """
    if num_processes == 1:
        train_in_this_process(c, rank=0, world_size=1, device_type=device_type, local_rank=0, local_world_size=1,
                              loop_fn=loop_fn)
        return
    import torch
    with tempfile.TemporaryDirectory() as temp_dir:
        torch.multiprocessing.spawn(fn=_spawned_process, nprocs=num_processes,
                                    args=(dnnlib.EasyDict(c), num_processes, device_type,
                                          file_init_method(temp_dir), loop_fn))


def launch_torchrun(c, env, device_type, outdir, desc, loop_fn=None):
    """Join the torchrun job; rank 0 makes the run directory; everyone trains."""
    import torch
    if env.world_size == 1:
        create_run_dir(outdir, desc, c)
        train_in_this_process(c, rank=0, world_size=1, device_type=device_type, local_rank=env.local_rank,
                              local_world_size=1, loop_fn=loop_fn)
        return
    if device_type == 'cuda':
        torch.cuda.set_device(env.local_rank)
    torch.distributed.init_process_group(backend=backend_for(device_type), init_method='env://',
                                         rank=env.rank, world_size=env.world_size)
    try:
        c.run_dir = _shared_run_dir(c, env, outdir, desc)
        train_in_this_process(c, rank=env.rank, world_size=env.world_size, device_type=device_type,
                              local_rank=env.local_rank, local_world_size=env.local_world_size, loop_fn=loop_fn)
        torch.distributed.barrier()  # Nobody tears down its connections while a peer still uses them.
    finally:
        torch.distributed.destroy_process_group()


def _shared_run_dir(c, env, outdir, desc):
    """Rank 0 creates the run directory and broadcasts its path (or its failure) to every rank."""
    import torch
    message = [None]
    if env.rank == 0:
        try:
            message[0] = ('ok', create_run_dir(outdir, desc, c))
        except LaunchError as err:
            message[0] = ('error', str(err))
    torch.distributed.broadcast_object_list(message, src=0)
    status, value = message[0]
    if status != 'ok':
        raise LaunchError(value)
    return value
