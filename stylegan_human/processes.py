"""One script as several processes (``torchrun``): this process's place, its share of the work.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
in each process it starts (on one machine or several). A script asks
:func:`torchrun_environment` whether it runs under torchrun, takes its :func:`share` of the
items, and meets the others at :meth:`ProcessGroup.barrier`.
"""

import dataclasses
import datetime
import os
from typing import Mapping, Optional, Sequence, TypeVar

from dnnlib.errors import InputError

TORCHRUN_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')
T = TypeVar('T')


class LaunchError(InputError):
    """A launch the user has to fix (devices, environment, output folder); one-line message."""


@dataclasses.dataclass(frozen=True)
class DistributedEnv:
    """This process's place in a torchrun job."""
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: str


def torchrun_environment(environ: Optional[Mapping[str, str]] = None) -> Optional[DistributedEnv]:
    """The torchrun job this process belongs to (from its environment), or None when not under torchrun.

    Any of RANK / WORLD_SIZE / LOCAL_RANK set means torchrun (or a launcher like it);
    then all of TORCHRUN_VARS must be there and consistent.
    """
    env = os.environ if environ is None else environ
    if not any(name in env for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')):
        return None
    missing = [name for name in TORCHRUN_VARS if not str(env.get(name, '')).strip()]
    if missing:
        raise LaunchError(f'torch.distributed environment is incomplete: {", ".join(missing)} not set '
                          '(start the processes with torchrun, or unset RANK/WORLD_SIZE/LOCAL_RANK)')
    numbers = {}
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE'):
        if name == 'LOCAL_WORLD_SIZE' and name not in env:
            continue
        try:
            numbers[name] = int(env[name])
        except ValueError:
            raise LaunchError(f'{name}={env[name]!r} is not a whole number') from None
    world, rank, local_rank = numbers['WORLD_SIZE'], numbers['RANK'], numbers['LOCAL_RANK']
    local_world = numbers.get('LOCAL_WORLD_SIZE', world)
    if world < 1 or not 0 <= rank < world:
        raise LaunchError(f'RANK={rank} is not in [0, WORLD_SIZE={world})')
    if local_world < 1 or not 0 <= local_rank < local_world or local_world > world:
        raise LaunchError(f'LOCAL_RANK={local_rank} does not fit LOCAL_WORLD_SIZE={local_world} '
                          f'and WORLD_SIZE={world}')
    return DistributedEnv(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                          master_addr=str(env['MASTER_ADDR']), master_port=str(env['MASTER_PORT']))


def share(items: Sequence[T], rank: int, world_size: int) -> Sequence[T]:
    """Process ``rank``'s contiguous part of ``items``: the parts are in order, differ in size by at
    most one, and together hold every item once (so results can be joined part after part)."""
    start = len(items) * rank // world_size
    stop = len(items) * (rank + 1) // world_size
    return items[start:stop]


class ProcessGroup:
    """The job's processes joined through torch.distributed (gloo: it carries only barriers)."""

    def __init__(self, env: DistributedEnv, timeout_minutes: float = 60):
        import torch.distributed as dist
        self.env = env
        if not dist.is_initialized():
            dist.init_process_group('gloo', init_method='env://', rank=env.rank, world_size=env.world_size,
                                    timeout=datetime.timedelta(minutes=timeout_minutes))

    @property
    def is_first(self) -> bool:
        return self.env.rank == 0

    def barrier(self) -> None:
        import torch.distributed as dist
        dist.barrier()

    def sum(self, value: int) -> int:
        """``value`` added up over all processes (every process gets the total)."""
        import torch
        import torch.distributed as dist
        total = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(total)
        return int(total.item())

    def close(self) -> None:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()
