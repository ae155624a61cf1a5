"""The number format the networks compute in: float32, or bfloat16 where the hardware has it.

``fp32`` (the default) gives the same pixels as always. ``bf16`` multiplies in bfloat16
and accumulates in float32 (the matrix units of recent CPUs and GPUs do exactly this):
several times faster where the hardware executes it natively (CPUs with AMX or AVX-512
BF16, GPUs with bf16 tensor cores), and close to fp32 (the README gives the PSNR). ``auto``
takes bf16 where it is native and fp32 elsewhere.

The choice is scoped like the ops mode: ``with use_precision(torch.bfloat16): ...`` sets
it for the enclosed code in this thread or task (a ``contextvars`` variable). The synthesis
networks' blocks read it as the dtype of their activations, the way NVIDIA's code runs its
top resolutions in float16 on GPUs: every path (the fused CPU inference path, the reference
ops, gradients) then runs in that format, while parameters, mapping networks, styles, the
accumulated image and losses stay in float32.
"""

import contextlib
import contextvars
import functools
from typing import Iterator, Union

import torch

from dnnlib.errors import InputError

PRECISIONS = ('fp32', 'bf16', 'auto')
_NATIVE_BF16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')
_scoped = contextvars.ContextVar('stylegan_human_precision', default=torch.float32)


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('flags', 'Features'):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: Union[str, torch.device] = 'cpu') -> bool:
    """True when ``device`` multiplies bfloat16 in hardware (AMX / AVX-512 BF16 CPUs, bf16 GPUs)."""
    device = torch.device(device)
    if device.type == 'cpu':
        return any(flag in cpu_flags() for flag in _NATIVE_BF16_CPU_FLAGS)
    if device.type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return False


def _hardware_name(device):
    return 'CPU has neither AMX nor AVX-512 BF16' if device.type == 'cpu' else f'{device.type} device has no bf16 units'


def resolve(name: str, device: Union[str, torch.device]) -> torch.dtype:
    """``'fp32'`` / ``'bf16'`` / ``'auto'`` -> the dtype to compute in on ``device``.

    ``bf16`` where the hardware does not execute it natively is a one-line error (it would be
    slower than fp32, not faster); ``auto`` then takes fp32.
    """
    device = torch.device(device)
    name = (name or 'fp32').strip().lower()
    if name not in PRECISIONS:
        raise InputError(f'{name!r}: use fp32, bf16 or auto', param='precision')
    if name == 'fp32':
        return torch.float32
    if native_bf16(device):
        return torch.bfloat16
    if name == 'auto':
        return torch.float32
    raise InputError(f'bf16: this {_hardware_name(device)}, so bfloat16 would be slower, not faster; '
                     'use fp32 (or auto, which picks bf16 only where it is native)', param='precision')


def compute_dtype() -> torch.dtype:
    """The dtype the enclosing :func:`use_precision` block asked for (float32 outside any)."""
    return _scoped.get()


@contextlib.contextmanager
def use_precision(dtype: torch.dtype) -> Iterator[None]:
    """Compute the synthesis networks' activations in ``dtype`` (float32 or bfloat16) inside the block."""
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f'precision {dtype}: expected torch.float32 or torch.bfloat16')
    token = _scoped.set(dtype)
    try:
        yield
    finally:
        _scoped.reset(token)
