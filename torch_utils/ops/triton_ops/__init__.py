"""Triton kernels for bias_act, upfirdn2d and filtered_lrelu (compiled at run time, no C++ toolchain).

The ops choose these kernels for CUDA tensors when Triton imports and runs on the GPU (see
``use_triton``); everything else keeps the PyTorch paths. Triton decides once per
process, when it is imported, whether ``@triton.jit`` kernels are compiled for the GPU or
run by its interpreter on CPU tensors (``TRITON_INTERPRET=1``; torch._dynamo imports Triton
too). Tests call ``enable_interpreter()`` before anything imports Triton and run the kernels
on CPU tensors inside ``triton_kernels()``.
"""

import contextlib
import os
import sys
import warnings

from .. import ops_mode

_triton = None          # The module once imported; False if it cannot be.
_works_on = {}          # CUDA device -> whether the kernels ran there.


def _import():
    global _triton
    if _triton is None:
        try:
            import triton
            _triton = triton
        except Exception:  # Not installed, or a broken install: the PyTorch paths run.
            _triton = False
    return _triton


def enable_interpreter():
    """Make Triton run kernels in its interpreter (on CPU tensors); True if it does.

    Only possible before Triton is imported in this process. The environment variable is set
    for the import and put back afterwards, so child processes are not affected.
    """
    if 'triton' not in sys.modules:
        previous = os.environ.get('TRITON_INTERPRET')
        os.environ['TRITON_INTERPRET'] = '1'
        triton = _import()
        if triton and hasattr(triton, 'knobs'):
            triton.knobs.runtime.interpret = True  # Kept after the variable is restored.
            if previous is None:
                os.environ.pop('TRITON_INTERPRET', None)
            else:
                os.environ['TRITON_INTERPRET'] = previous
        # (A Triton without knobs reads the variable itself, so it stays set.)
    return interpreter_active()


def interpreter_active():
    """True when Triton is imported (or importable) and interprets kernels instead of compiling them."""
    triton = _import()
    if not triton:
        return False
    knobs = getattr(triton, 'knobs', None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def runs_on(device):
    """Whether the kernels run tensors on ``device``: CPU ones in the interpreter, CUDA ones compiled.

    The first CUDA use runs a small case of each kernel; if Triton cannot compile or launch
    there (an unsupported GPU, a broken toolchain) that is one warning and the PyTorch paths.
    """
    if device.type == 'cpu':
        return interpreter_active()
    if device.type != 'cuda' or not _import() or interpreter_active():
        return False
    key = (device.type, device.index)
    if key not in _works_on:
        _works_on[key] = _probe(device)
    return _works_on[key]


def _probe(device):
    import torch
    from . import bias_act
    from .. import polyphase
    try:
        x = torch.ones([1, 1, 4, 4], device=device)
        y = bias_act.bias_act(x, None, 1, 'lrelu', alpha=0.2, gain=2.0)
        z = polyphase.filtered_lrelu(x, fu=torch.ones([2], device=device), up=2, padding=[1, 0, 1, 0],
                                     backend='triton')
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if not (bool((y == 2).all()) and z.shape == (1, 1, 8, 8)):
            raise RuntimeError('wrong results')
    except Exception as error:  # pylint: disable=broad-except
        warnings.warn(f'Triton kernels do not run on {device} ({type(error).__name__}: {error}); '
                      f'using the PyTorch implementations of bias_act, upfirdn2d and filtered_lrelu')
        return False
    return True


def use_triton(x, impl='auto'):
    """True when an op called with ``impl`` should run its Triton kernel on ``x``: CUDA tensors
    (Triton importable and working there; also for NVIDIA's ``impl='cuda'``), or CPU ones inside
    ``triton_kernels()``. Never for ``impl='ref'`` or ``'auto'`` in the reference mode."""
    assert impl in ops_mode.IMPLS, f'impl={impl!r}: expected one of {", ".join(ops_mode.IMPLS)}'
    if impl == 'ref' or (impl == 'auto' and ops_mode.get_mode() == 'ref'):
        return False
    kind = x.device.type
    if kind != 'cuda' and not (kind == 'cpu' and ops_mode.triton_on_cpu()):
        return False
    return runs_on(x.device)


def fused_backend(x, impl='auto'):
    """Which fused path ``upfirdn2d`` / ``filtered_lrelu`` take for ``x``: 'triton' (these kernels),
    'torch' (``polyphase``, for fast ops on devices other than the CPU: MPS, CUDA without Triton)
    or None (the CPU paths or the reference)."""
    if use_triton(x, impl):
        return 'triton'
    if ops_mode.use_fast(impl) and x.device.type != 'cpu':
        return 'torch'
    return None


@contextlib.contextmanager
def triton_kernels():
    """Run the Triton kernels for CPU tensors too (in Triton's interpreter) in the enclosed code.

    Slow, for tests: the interpreter must have been chosen before Triton was imported
    (``enable_interpreter()``), else this raises ``UnavailableError``. The CPU fast paths
    stand aside inside the block, so whole networks run through the kernels.
    """
    if not interpreter_active():
        from dnnlib.errors import UnavailableError
        raise UnavailableError("Triton kernels on CPU tensors need Triton's interpreter, chosen before triton is "
                               'imported: call torch_utils.ops.triton_ops.enable_interpreter() first '
                               '(or set TRITON_INTERPRET=1)')
    with ops_mode.triton_on_cpu_scope():
        yield
