"""upfirdn2d and filtered_lrelu without zero-inserted intermediates, with compact gradients.

The fused implementations run a ``resample_plan.Plan``: stage 1 upsamples and filters
(here a strided ``conv_transpose2d``: the inserted zeros are never stored or multiplied),
the pointwise step, stage 2 filters and decimates (a strided ``conv2d``: only the kept
pixels are computed). Any device PyTorch runs convolutions on can run this executor (MPS,
CUDA without Triton, ROCm); ``triton_ops.resample`` runs the same plans as one Triton kernel.

Gradients are plans too (``Plan.transposed``), so both executors share the autograd
functions below. The forward pass of ``filtered_lrelu`` keeps only the leaky ReLU's
derivative codes, 2 bits per upsampled pixel (the reference keeps several full-size float
tensors); the backward pass is a filtered_lrelu-shaped pass over the output gradient that
multiplies by those codes instead of taking the activation. That pass is linear, so its
own gradient (second order, e.g. R1 through a generator's output) is again a plan; as for
the reference, the activation's second derivative is zero almost everywhere.
"""

import torch
import torch.nn.functional as F

from . import resample_plan
from .resample_plan import SIGN_CLAMPED, SIGN_NEGATIVE, SIGN_POSITIVE

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def applies(x):
    """Inputs this path takes on the devices it is chosen for (see the ops' dispatch)."""
    return isinstance(x, torch.Tensor) and x.ndim == 4 and x.dtype in _FLOATS


# ---------------------------------------------------------------------------
# Entry points: the public ops' arguments; None where this path does not apply (then the
# caller runs the reference, which also raises the usual errors for bad arguments).


def _filter_ok(f):
    return f is None or (isinstance(f, torch.Tensor) and f.dtype == torch.float32 and f.ndim in (1, 2)
                         and not f.requires_grad)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, backend='torch'):
    """``upfirdn2d.upfirdn2d`` on the fused path; differentiable to any order w.r.t. ``x``."""
    up, down, padding = resample_plan.parse_scaling(up), resample_plan.parse_scaling(down), \
        resample_plan.parse_padding(padding)
    if not applies(x) or not _filter_ok(f) or None in (up, down, padding):
        return None
    plan = resample_plan.upfirdn2d_plan(x.shape, f, up, down, padding, flip_filter, gain)
    return None if plan is None else _Resample.apply(x, plan, None, _executor(backend, x))


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=2 ** 0.5, slope=0.2, clamp=None,
                   flip_filter=False, backend='torch'):
    """``filtered_lrelu.filtered_lrelu`` on the fused path; gradients w.r.t. ``x`` and ``b``."""
    padding = resample_plan.parse_padding(padding)
    if not applies(x) or not (_filter_ok(fu) and _filter_ok(fd)) or padding is None:
        return None
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1 and gain > 0 and slope >= 0
            and (clamp is None or clamp >= 0)):
        return None
    if b is not None and not (isinstance(b, torch.Tensor) and b.shape == (x.shape[1],) and b.dtype == x.dtype):
        return None
    plan = resample_plan.filtered_lrelu_plan(x.shape, fu, fd, up, down, padding, gain, slope, clamp, flip_filter)
    return None if plan is None else _FilteredLRelu.apply(x, b, plan, _executor(backend, x))


def _executor(backend, x):
    """'torch' or 'triton' (where the kernel takes x's dtype; the PyTorch executor otherwise)."""
    assert backend in ('torch', 'triton'), backend
    if backend == 'triton':
        from .triton_ops import resample
        if resample.supports(x):
            return resample.TritonExecutor
    return TorchExecutor


# ---------------------------------------------------------------------------
# Autograd, shared by the executors.


class _Resample(torch.autograd.Function):
    """A linear plan (pointwise 'none' or 'signs'); its gradient is the transposed plan."""

    @staticmethod
    def forward(ctx, x, plan, signs, executor):
        ctx.plan, ctx.executor = plan, executor
        ctx.save_for_backward(signs)
        return executor.run(x, plan, signs=signs)[0]

    @staticmethod
    def backward(ctx, dy):
        signs, = ctx.saved_tensors
        return _Resample.apply(dy, ctx.plan.transposed(), signs, ctx.executor), None, None, None


class _FilteredLRelu(torch.autograd.Function):
    """The forward plan ('lrelu'); keeps the derivative codes when a gradient will be asked for."""

    @staticmethod
    def forward(ctx, x, b, plan, executor):
        keep = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        y, signs = executor.run(x, plan, bias=b, store_signs=keep)
        ctx.plan, ctx.executor = plan, executor
        ctx.save_for_backward(signs)
        return y

    @staticmethod
    def backward(ctx, dy):
        signs, = ctx.saved_tensors
        dx = _Resample.apply(dy, ctx.plan.transposed(), signs, ctx.executor)
        db = dx.sum([0, 2, 3]) if ctx.needs_input_grad[1] else None
        return dx, db, None, None


# ---------------------------------------------------------------------------
# The plain-PyTorch executor.


class TorchExecutor:
    """Runs plans with depthwise (transposed) convolutions, on any device.

    float32 on CPUs runs channels-last grouped convolutions (oneDNN's depthwise kernels);
    elsewhere the planes are folded into the batch, so every convolution is a plain
    single-channel one (supported everywhere; grouped transposed ones are slow off oneDNN).
    """

    @staticmethod
    def run(src, plan, bias=None, signs=None, store_signs=False):
        """-> (output, derivative codes [planes, mid rows, bytes] when ``store_signs``, else None)."""
        batch, channels = src.shape[:2]
        x = src if bias is None else src + bias.reshape(1, -1, 1, 1)
        if x.device.type == 'cpu' and x.dtype in (torch.float32, torch.bfloat16):
            x = x.contiguous(memory_format=torch.channels_last)
        else:   # (contiguous: expanded gradients, stride 0, take convolutions' slow paths)
            x = x.contiguous().reshape(batch * channels, 1, *x.shape[2:])
        mid = _stage1(x, plan)
        fresh = mid.untyped_storage().data_ptr() != src.untyped_storage().data_ptr()   # not the caller's tensor
        mid, codes = _pointwise(mid, plan, signs, store_signs, in_place=fresh)
        out = _stage2(mid, plan)
        if out.untyped_storage().data_ptr() == src.untyped_storage().data_ptr():
            out = out.clone()   # Nothing to compute: still a new tensor, as the reference returns.
        # detach(): the same memory but not a view (autograd forbids modifying views of a Function's output).
        return out.reshape(batch, channels, *out.shape[2:]).detach(), codes


def _window(t, y0, rows, x0, cols):
    """Rows [y0, y0 + rows) x columns [x0, x0 + cols) of ``t``; zeros outside it (F.pad crops when negative)."""
    h, w = t.shape[-2:]
    pads = [-x0, x0 + cols - w, -y0, y0 + rows - h]
    return t if not any(pads) else F.pad(t, pads)


def _depthwise(taps, channels, dtype, device):
    """Depthwise weights for correlation taps: [C, 1, h, w] (2-D), or a (columns, rows) pair of 1-D passes."""
    taps = taps.to(dtype=dtype, device=device)
    if taps.ndim == 2:
        return taps[None, None].repeat(channels, 1, 1, 1)
    return taps.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1), taps.reshape(1, 1, -1, 1).repeat(channels, 1, 1, 1)


def _stage1(x, plan):
    """Upsample and filter: a transposed convolution with stride ``up`` scatters each input pixel
    through the flipped taps, which equals filtering the zero-stuffed image, without the zeros."""
    if plan.stage1_is_identity:
        return x
    ay, ax, channels = plan.y, plan.x, x.shape[1]
    taps = torch.ones([1, 1]) if plan.filter1 is None else plan.filter1.correlation()
    w = _depthwise(taps.flip(list(range(taps.ndim))), channels, x.dtype, x.device)
    if taps.ndim == 2:
        t = F.conv_transpose2d(x, w, stride=(ay.up, ax.up), groups=channels)
    else:
        t = F.conv_transpose2d(x, w[0], stride=(1, ax.up), groups=channels)
        t = F.conv_transpose2d(t, w[1], stride=(ay.up, 1), groups=channels)
    # Row m of the result is row m + taps - 1 - pad of the transposed convolution's.
    return _window(t, ay.taps1 - 1 - ay.pad1, ay.mid, ax.taps1 - 1 - ax.pad1, ax.mid)


def _stage2(a, plan):
    """Filter and decimate: a strided convolution over the zero-padded window the outputs read."""
    if plan.stage2_is_identity:
        return a
    ay, ax, channels = plan.y, plan.x, a.shape[1]
    a = _window(a, -ay.pad2, (ay.out - 1) * ay.down + ay.taps2, -ax.pad2, (ax.out - 1) * ax.down + ax.taps2)
    if plan.filter2 is None:
        return a[:, :, ::ay.down, ::ax.down].clone()
    taps = plan.filter2.correlation()
    w = _depthwise(taps, channels, a.dtype, a.device)
    if taps.ndim == 2:
        return F.conv2d(a, w, stride=(ay.down, ax.down), groups=channels)
    a = F.conv2d(a, w[0], stride=(1, ax.down), groups=channels)
    return F.conv2d(a, w[1], stride=(ay.down, 1), groups=channels)


def _pointwise(v, plan, signs, store_signs, in_place):
    if plan.pointwise == 'none':
        return v, None
    if plan.pointwise == 'signs':
        codes = unpack_signs(signs, v.shape)
        # The derivative per code (clamped: 0), in v's dtype.
        deriv = (codes == SIGN_POSITIVE).to(v.dtype).mul_(plan.gain)
        deriv.add_((codes == SIGN_NEGATIVE).to(v.dtype), alpha=plan.gain * plan.slope)
        return deriv.mul_(v), None
    negative = (v <= 0) if store_signs else None
    v = F.leaky_relu_(v, plan.slope) if in_place else F.leaky_relu(v, plan.slope)
    if plan.gain != 1:
        v = v.mul_(plan.gain) if in_place else v * plan.gain
        in_place = True
    clamped = None
    if plan.clamp is not None:
        clamped = (v.abs() > plan.clamp) if store_signs else None
        v = v.clamp_(-plan.clamp, plan.clamp) if in_place else v.clamp(-plan.clamp, plan.clamp)
    if not store_signs:
        return v, None
    codes = negative.to(torch.uint8) * SIGN_NEGATIVE
    if clamped is not None:
        codes = torch.where(clamped, SIGN_CLAMPED, codes)
    return v, pack_signs(codes)


def pack_signs(codes):
    """uint8 codes [N, C, H, W] (values 0..3) -> [N * C, H, ceil(W / 4)], pixel x in bits 2 * (x % 4)."""
    n, c, h, w = codes.shape
    codes = F.pad(codes.reshape(n * c, h, w), [0, -w % 4]).reshape(n * c, h, -1, 4)
    weights = torch.tensor([1, 4, 16, 64], dtype=torch.uint8, device=codes.device)
    return (codes * weights).sum(-1, dtype=torch.uint8)


def unpack_signs(packed, shape):
    """The inverse of ``pack_signs`` for codes of ``shape`` [N, C, H, W]."""
    n, c, h, w = shape
    weights = torch.tensor([1, 4, 16, 64], dtype=torch.uint8, device=packed.device)
    codes = (packed[..., None] // weights) % 4
    return codes.reshape(n * c, h, -1)[:, :, :w].reshape(n, c, h, w)
