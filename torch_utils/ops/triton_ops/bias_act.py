"""bias_act as one elementwise Triton kernel, with first and second derivatives.

Forward: ``clamp(act(x + b) * gain)``. The backward pass saves only ``x`` (and ``b``) and
recomputes ``z = x + b`` in the kernel, which then gives ``act'(z)`` and ``act''(z)`` in
closed form; the clamp passes the gradient where ``|act(z) * gain| <= clamp``, as
``torch.clamp`` does. Second derivatives (R1, path length) are exact; a third derivative
through ``x`` is refused with an error rather than silently wrong.
"""

import dataclasses
from typing import Optional

import torch
import triton
import triton.language as tl

from ... import misc
from .launch import device_guard

_ACTIVATIONS = ('linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu', 'selu', 'softplus', 'swish')
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@triton.jit
def _activation(z, alpha, selu_scale, selu_alpha, ACT: tl.constexpr, ORDER: tl.constexpr):
    """act(z) (ORDER 0), its first (1) or second (2) derivative; ACT indexes _ACTIVATIONS."""
    zero = z * 0
    one = zero + 1
    if ACT == 0:  # linear
        if ORDER == 0:
            r = z
        elif ORDER == 1:
            r = one
        else:
            r = zero
    elif ACT == 1:  # relu
        if ORDER == 0:
            r = tl.where(z > 0, z, zero)
        elif ORDER == 1:
            r = tl.where(z > 0, one, zero)
        else:
            r = zero
    elif ACT == 2:  # lrelu
        if ORDER == 0:
            r = tl.where(z > 0, z, z * alpha)
        elif ORDER == 1:
            r = tl.where(z > 0, one, one * alpha)
        else:
            r = zero
    elif ACT == 3:  # tanh, written with exp (saturates cleanly: exp overflow gives +-1)
        t = 1 - 2 / (tl.exp(2 * z) + 1)
        if ORDER == 0:
            r = t
        elif ORDER == 1:
            r = 1 - t * t
        else:
            r = -2 * t * (1 - t * t)
    elif ACT == 4:  # sigmoid
        s = 1 / (1 + tl.exp(-z))
        if ORDER == 0:
            r = s
        elif ORDER == 1:
            r = s * (1 - s)
        else:
            r = s * (1 - s) * (1 - 2 * s)
    elif ACT == 5 or ACT == 6:  # elu (scale 1, alpha 1), selu (its constants, loaded in the compute dtype)
        if ACT == 5:
            scale = one
            neg = one
        else:
            scale = selu_scale
            neg = selu_alpha
        e = tl.exp(tl.minimum(z, zero))
        if ORDER == 0:
            r = scale * tl.where(z > 0, z, neg * (e - 1))
        elif ORDER == 1:
            r = scale * tl.where(z > 0, one, neg * e)
        else:
            r = scale * tl.where(z > 0, zero, neg * e)
    elif ACT == 7:  # softplus, linear above 20 as torch's
        s = 1 / (1 + tl.exp(-z))
        if ORDER == 0:
            r = tl.where(z > 20, z, tl.maximum(z, zero) + tl.log(1 + tl.exp(-tl.abs(z))))
        elif ORDER == 1:
            r = tl.where(z > 20, one, s)
        else:
            r = tl.where(z > 20, zero, s * (1 - s))
    else:  # swish
        s = 1 / (1 + tl.exp(-z))
        if ORDER == 0:
            r = z * s
        elif ORDER == 1:
            r = s * (1 + z * (1 - s))
        else:
            r = s * (1 - s) * (2 + z * (1 - 2 * s))
    return r


@triton.jit
def _bias_act_kernel(x_ptr, b_ptr, g_ptr, g2_ptr, out_ptr, params_ptr, numel, bias_step, bias_len,
                     ACT: tl.constexpr, ORDER: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_CLAMP: tl.constexpr,
                     BLOCK: tl.constexpr):
    """ORDER 0: clamp(act(z) * gain); 1: g * act'(z) * gain; 2: g * g2 * act''(z) * gain (both masked by the clamp).

    params: [alpha, gain, clamp, SELU's scale, SELU's alpha] in the compute dtype; the bias index of element ``i`` (in
    memory order) is ``(i // bias_step) % bias_len``.
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    alpha = tl.load(params_ptr)
    gain = tl.load(params_ptr + 1)
    clamp = tl.load(params_ptr + 2)
    selu_scale = tl.load(params_ptr + 3)   # Loaded, not literals: literals are float32, these exact in float64 too.
    selu_alpha = tl.load(params_ptr + 4)
    z = tl.load(x_ptr + offs, mask=mask, other=0).to(alpha.dtype)
    if HAS_BIAS:
        z += tl.load(b_ptr + (offs // bias_step) % bias_len, mask=mask, other=0).to(alpha.dtype)
    if ORDER == 0:
        r = _activation(z, alpha, selu_scale, selu_alpha, ACT, 0) * gain
        if HAS_CLAMP:
            r = tl.minimum(tl.maximum(r, -clamp), clamp)
    else:
        r = tl.load(g_ptr + offs, mask=mask, other=0).to(alpha.dtype) * gain
        r *= _activation(z, alpha, selu_scale, selu_alpha, ACT, ORDER)
        if ORDER == 2:
            r *= tl.load(g2_ptr + offs, mask=mask, other=0).to(alpha.dtype)
        if HAS_CLAMP:
            r = tl.where(tl.abs(_activation(z, alpha, selu_scale, selu_alpha, ACT, 0) * gain) <= clamp, r, r * 0)
    tl.store(out_ptr + offs, r.to(out_ptr.dtype.element_ty), mask=mask)


@dataclasses.dataclass(frozen=True)
class _Spec:
    act: int
    alpha: float
    gain: float
    clamp: Optional[float]
    dim: int

    @property
    def has_second_derivative(self):
        return _ACTIVATIONS[self.act] not in ('linear', 'relu', 'lrelu')

    @property
    def constant_derivative(self):
        return _ACTIVATIONS[self.act] == 'linear' and self.clamp is None


def supports(x, b):
    """Inputs the kernel takes: floating point, a bias of x's dtype, at least one element."""
    return (x.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) and x.numel() > 0
            and (b is None or b.dtype == x.dtype))


def bias_act(x, b, dim, act, alpha, gain, clamp=None):
    """``bias_act.bias_act`` on the Triton kernel; ``alpha`` and ``gain`` given (the caller knows the defaults)."""
    assert act in _ACTIVATIONS, act
    assert clamp is None or clamp >= 0
    if b is not None:
        assert isinstance(b, torch.Tensor) and b.ndim == 1
        assert 0 <= dim < x.ndim
        assert b.shape[0] == x.shape[dim]
    spec = _Spec(act=_ACTIVATIONS.index(act), alpha=float(alpha), gain=float(gain),
                 clamp=None if clamp is None else float(clamp), dim=dim)
    if b is None and spec.act == 0 and spec.gain == 1 and spec.clamp is None:
        return x  # Nothing to do (as the reference).
    return _BiasAct.apply(x, b, spec)


def _dense(t):
    """t if its elements fill its memory in some order (contiguous or channels_last), else a contiguous copy."""
    if t.is_contiguous() or (t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last)):
        return t
    return t.contiguous()


def _like(t, x):
    """t with x's memory layout (the kernel walks both in memory order)."""
    return t if t.stride() == x.stride() else torch.empty_like(x).copy_(t)


def _launch(spec, x, b, order, g=None, g2=None):
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    params = misc.constant([spec.alpha, spec.gain, spec.clamp or 0.0, _SELU_SCALE, _SELU_ALPHA], dtype=compute,
                           device=x.device)
    out = torch.empty_like(x)
    numel = x.numel()
    block = 1 << 16 if x.device.type == 'cpu' else 1024  # The interpreter pays per block.
    with device_guard(x.device):
        _bias_act_kernel[(triton.cdiv(numel, block),)](
            x, b if b is not None else x, g if g is not None else x, g2 if g2 is not None else x, out, params,
            numel, x.stride(spec.dim) if b is not None else 1, x.shape[spec.dim] if b is not None else 1,
            ACT=spec.act, ORDER=order, HAS_BIAS=b is not None, HAS_CLAMP=spec.clamp is not None, BLOCK=block)
    return out


def _bias_grad(spec, dx, b):
    return dx.sum([i for i in range(dx.ndim) if i != spec.dim]) if b is not None else None


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, spec):
        x = _dense(x)
        ctx.spec = spec
        ctx.save_for_backward(None if spec.constant_derivative else x, b)
        return _launch(spec, x, b, 0)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        spec = ctx.spec
        dx = dy * spec.gain if spec.constant_derivative else _BiasActGrad.apply(dy, x, b, spec)
        return dx, _bias_grad(spec, dx, b) if ctx.needs_input_grad[1] else None, None


class _BiasActGrad(torch.autograd.Function):
    """dy -> dy * act'(x + b) * gain (masked by the clamp): linear in dy, nonlinear in x and b."""

    @staticmethod
    def forward(ctx, dy, x, b, spec):
        dy = _like(dy, x)
        ctx.spec = spec
        ctx.save_for_backward(dy, x, b)
        return _launch(spec, x, b, 1, g=dy)

    @staticmethod
    def backward(ctx, d_dx):
        dy, x, b = ctx.saved_tensors
        spec = ctx.spec
        d_dy = _BiasActGrad.apply(d_dx, x, b, spec) if ctx.needs_input_grad[0] else None
        d_x = None
        if spec.has_second_derivative and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _BiasActGrad2.apply(d_dx, dy, x, b, spec)
        d_b = _bias_grad(spec, d_x, b) if d_x is not None and ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_b, None


class _BiasActGrad2(torch.autograd.Function):
    """The second derivative's term through x: d_dx * dy * act''(x + b) * gain."""

    @staticmethod
    def forward(ctx, d_dx, dy, x, b, spec):
        return _launch(spec, x, b, 2, g=_like(d_dx, x), g2=dy)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("bias_act's Triton kernel has derivatives up to the second order; "
                           "use impl='ref' for higher ones")
