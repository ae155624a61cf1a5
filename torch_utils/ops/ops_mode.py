"""Which implementation the ops run: our fast paths or the plain reference compositions.

The choice is explicit and scoped: ``with reference_ops(): ...`` (or ``fast_ops()``, or
``use_ops('ref')``) sets it for the enclosed code in the current thread or task only
(a ``contextvars`` variable). Outside any such block the default is ``fast``, or what the
environment variable ``STYLEGAN_HUMAN_OPS`` says (``fast`` or ``ref``), read the first
time an op asks; a bad value there is a warning, never an import error.

The ``impl`` argument of each op keeps NVIDIA's meaning and adds two values:

- ``'ref'``: the reference composition, always;
- ``'cuda'``: NVIDIA's compiled-kernel path: here the Triton kernels (``triton_ops``) for
  CUDA tensors when Triton runs there, the reference otherwise;
- ``'fast'``: this project's fast path where it applies to the inputs, whatever the mode
  (the Triton kernels on CUDA, the CPU fast paths, the plain-PyTorch polyphase ops elsewhere);
- ``'auto'`` (the default): ``'fast'`` in the fast mode, ``'ref'`` in the reference mode.

``triton_ops.triton_kernels()`` makes the Triton kernels take CPU tensors too, in Triton's
interpreter (for tests); the flag it sets lives here, so that the CPU fast paths stand aside.
"""

import contextlib
import contextvars
import os
import warnings

import torch

from torch_utils import precision

MODES = ('fast', 'ref')
IMPLS = ('auto', 'fast', 'ref', 'cuda')
_ENV = 'STYLEGAN_HUMAN_OPS'
_scoped = contextvars.ContextVar('stylegan_human_ops_mode', default=None)
_triton_on_cpu = contextvars.ContextVar('stylegan_human_triton_on_cpu', default=False)
_env_default = None


def _default_mode():
    global _env_default
    if _env_default is None:
        value = os.environ.get(_ENV, 'fast').strip().lower() or 'fast'
        if value not in MODES:
            warnings.warn(f'{_ENV}={value!r} is not one of {", ".join(MODES)}; using fast')
            value = 'fast'
        _env_default = value
    return _env_default


def get_mode():
    """The ops mode in effect here: the innermost ``use_ops`` block's, else the default."""
    return _scoped.get() or _default_mode()


@contextlib.contextmanager
def use_ops(mode):
    """Run the enclosed code with the ops in ``mode`` ('fast' or 'ref')."""
    if mode not in MODES:
        raise ValueError(f'ops mode {mode!r}: expected one of {", ".join(MODES)}')
    token = _scoped.set(mode)
    try:
        yield
    finally:
        _scoped.reset(token)


def reference_ops():
    """Run the enclosed code on the reference ops."""
    return use_ops('ref')


def fast_ops():
    """Run the enclosed code on the fast ops."""
    return use_ops('fast')


def use_fast(impl='auto'):
    """True when an op called with ``impl`` should take its fast path (if it applies to the inputs)."""
    assert impl in IMPLS, f'impl={impl!r}: expected one of {", ".join(IMPLS)}'
    return impl == 'fast' or (impl == 'auto' and get_mode() == 'fast')


def triton_on_cpu():
    """True inside ``triton_ops.triton_kernels()``: the Triton kernels take CPU tensors too."""
    return _triton_on_cpu.get()


@contextlib.contextmanager
def triton_on_cpu_scope():
    """Set ``triton_on_cpu()`` for the enclosed code (use ``triton_ops.triton_kernels()``, which
    also checks that Triton interprets)."""
    token = _triton_on_cpu.set(True)
    try:
        yield
    finally:
        _triton_on_cpu.reset(token)


def fast_cpu(x, impl='auto'):
    """True for CPU work in float32 (or in bfloat16 inside a bf16 precision block) when ``impl``
    allows the fast path (not inside ``triton_on_cpu_scope()``), with or without gradients."""
    if not use_fast(impl) or x.device.type != 'cpu' or x.dtype not in (torch.float32, precision.compute_dtype()):
        return False
    return not _triton_on_cpu.get()


def needs_grad(*tensors):
    """True when autograd records here and one of ``tensors`` requires a gradient."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def fast_cpu_inference(x, *tensors, impl='auto'):
    """``fast_cpu(x)`` for work that needs no gradients (none of ``x, *tensors`` needs one)."""
    return fast_cpu(x, impl) and not needs_grad(x, *tensors)
