"""Fused bias + activation + gain + clamp.

Same API and numbers as NVIDIA's ``torch_utils.ops.bias_act``. CUDA tensors run a Triton
kernel (``triton_ops.bias_act``) when Triton works there and ``impl`` allows it (see
``ops_mode``); everything else runs the pure-PyTorch reference.
"""

import numpy as np
import torch

import dnnlib

from .. import misc
from . import ops_mode
from . import triton_ops


def _spec(func, def_alpha, def_gain, cuda_idx, ref, has_2nd_grad):
    return dnnlib.EasyDict(func=func, def_alpha=def_alpha, def_gain=def_gain, cuda_idx=cuda_idx, ref=ref,
                           has_2nd_grad=has_2nd_grad)


_F = torch.nn.functional

# Per activation: the function, its default alpha and default gain (sqrt(2) for
# the ReLU family keeps the signal variance), plus the fields NVIDIA's table
# carries for its CUDA kernel (kernel index, whether the gradient is computed
# from the input 'x' or the output 'y', and whether a 2nd-order gradient exists).
activation_funcs = {
    'linear':   _spec(lambda x, **_: x,                          0,   1,          1, '',  False),
    'relu':     _spec(lambda x, **_: _F.relu(x),                 0,   np.sqrt(2), 2, 'y', False),
    'lrelu':    _spec(lambda x, alpha, **_: _F.leaky_relu(x, alpha), 0.2, np.sqrt(2), 3, 'y', False),
    'tanh':     _spec(lambda x, **_: torch.tanh(x),              0,   1,          4, 'y', True),
    'sigmoid':  _spec(lambda x, **_: torch.sigmoid(x),           0,   1,          5, 'y', True),
    'elu':      _spec(lambda x, **_: _F.elu(x),                  0,   1,          6, 'y', True),
    'selu':     _spec(lambda x, **_: _F.selu(x),                 0,   1,          7, 'y', True),
    'softplus': _spec(lambda x, **_: _F.softplus(x),             0,   1,          8, 'y', True),
    'swish':    _spec(lambda x, **_: torch.sigmoid(x) * x,       0,   np.sqrt(2), 9, 'x', True),
}


def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='auto'):
    """Return ``clamp(act(x + b) * gain)``; each step is optional.

    x:     tensor of any shape.
    b:     1-D bias of length ``x.shape[dim]`` and x's dtype, or None.
    dim:   the dimension of ``x`` that ``b`` runs along (ignored without ``b``).
    act:   a key of ``activation_funcs`` ('linear' for none).
    alpha: activation shape parameter (lrelu slope); None = the activation's default.
    gain:  output scale; None = the activation's default (sqrt(2) for relu/lrelu/swish).
    clamp: clip the result to [-clamp, clamp]; None = no clipping.
    impl:  'auto', 'fast', 'ref' or 'cuda' (see ``ops_mode``): the Triton kernel or the reference.
    Returns a tensor of x's shape and dtype.
    """
    assert isinstance(x, torch.Tensor)
    assert impl in ops_mode.IMPLS
    if triton_ops.use_triton(x, impl):
        from .triton_ops import bias_act as kernel
        spec = activation_funcs[act]
        if kernel.supports(x, b):
            return kernel.bias_act(x, b, dim, act, spec.def_alpha if alpha is None else alpha,
                                   spec.def_gain if gain is None else gain, clamp)
    return _bias_act_ref(x=x, b=b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)


@misc.profiled_function
def _bias_act_ref(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None):
    """Reference implementation with standard PyTorch ops."""
    assert isinstance(x, torch.Tensor)
    assert clamp is None or clamp >= 0
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)  # Negative = no clamping.

    if b is not None:
        assert isinstance(b, torch.Tensor) and b.ndim == 1
        assert 0 <= dim < x.ndim
        assert b.shape[0] == x.shape[dim]
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])

    x = spec.func(x, alpha=alpha)

    if gain != 1:
        x = x * gain

    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
