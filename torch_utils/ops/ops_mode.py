"""Which implementation the ops run: the fast paths (default) or the references.

The reference functions (``_..._ref``) are the plain compositions that the
fast paths are tested against. Pick them for a whole process with the
environment variable ``STYLEGAN_HUMAN_OPS=ref``, or for a block of code with
``with reference_ops(): ...``. An op called with ``impl='ref'`` always runs
its reference, whatever the mode.
"""

import contextlib
import os

import torch

_MODES = ('fast', 'ref')
_mode = os.environ.get('STYLEGAN_HUMAN_OPS', 'fast').strip().lower() or 'fast'
if _mode not in _MODES:
    raise ValueError(f'STYLEGAN_HUMAN_OPS={_mode!r}: expected one of {", ".join(_MODES)}')


def get_mode():
    return _mode


def set_mode(mode):
    """Set the process-wide mode ('fast' or 'ref'); returns the previous one."""
    global _mode
    if mode not in _MODES:
        raise ValueError(f'ops mode {mode!r}: expected one of {", ".join(_MODES)}')
    previous, _mode = _mode, mode
    return previous


def use_fast(impl='cuda'):
    """True when an op called with ``impl`` should take its fast path."""
    return impl != 'ref' and _mode == 'fast'


def fast_cpu_inference(x, *tensors):
    """True for float32 CPU work that needs no gradients, in the fast mode.

    The networks then run a batch image by image: the fast CPU paths are tuned
    for one image, a larger batch only adds memory, and each image comes out
    exactly as it does alone.
    """
    if not use_fast() or x.device.type != 'cpu' or x.dtype != torch.float32:
        return False
    return not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x,) + tensors))


@contextlib.contextmanager
def reference_ops():
    """Run the enclosed code on the reference ops."""
    previous = set_mode('ref')
    try:
        yield
    finally:
        set_mode(previous)


@contextlib.contextmanager
def fast_ops():
    """Run the enclosed code on the fast ops."""
    previous = set_mode('fast')
    try:
        yield
    finally:
        set_mode(previous)
