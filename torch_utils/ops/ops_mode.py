"""Which implementation the ops run: the fast paths (default) or the references.

The reference functions (``_..._ref``) are the plain compositions that the
fast paths are tested against. Pick them for a whole process with the
environment variable ``STYLEGAN_HUMAN_OPS=ref``, or for a block of code with
``with reference_ops(): ...``. An op called with ``impl='ref'`` always runs
its reference, whatever the mode.
"""

import contextlib
import os

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
