"""Upsample, pad, FIR-filter and downsample batches of 2-D images.

Same API and numbers as NVIDIA's ``torch_utils.ops.upfirdn2d``. The reference runs on
every device; when ``impl`` asks for the fast path (``'fast'``, or the default ``'auto'`` in
the fast ops mode; see ``ops_mode``) CUDA tensors run a Triton kernel (``triton_ops``; also
for ``impl='cuda'``), float32 CPU tensors with a 2-D filter the faster path below, and
other devices the polyphase ops of ``polyphase`` (no zero-inserted copies).
"""

import numpy as np
import torch

from .. import misc
from . import conv2d_gradfix
from . import cpu_kernels
from . import ops_mode
from . import polyphase
from . import triton_ops

# ---------------------------------------------------------------------------
# Argument parsing shared with conv2d_resample.


def _parse_scaling(scaling):
    """int or [x, y] -> (sx, sy), both >= 1."""
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    assert isinstance(scaling, (list, tuple))
    assert all(isinstance(s, int) for s in scaling)
    sx, sy = scaling
    assert sx >= 1 and sy >= 1
    return sx, sy


def _parse_padding(padding):
    """int, [x, y] or [x0, x1, y0, y1] -> (padx0, padx1, pady0, pady1)."""
    if isinstance(padding, int):
        padding = [padding, padding]
    assert isinstance(padding, (list, tuple))
    assert all(isinstance(p, int) for p in padding)
    if len(padding) == 2:
        padx, pady = padding
        padding = [padx, padx, pady, pady]
    padx0, padx1, pady0, pady1 = padding
    return padx0, padx1, pady0, pady1


def _get_filter_size(f):
    """Filter -> (width, height); None counts as 1x1, a 1-D filter as taps x taps."""
    if f is None:
        return 1, 1
    assert isinstance(f, torch.Tensor) and f.ndim in [1, 2]
    fw = f.shape[-1]
    fh = f.shape[0]
    with misc.suppress_tracer_warnings():  # Sizes become constants when tracing.
        fw = int(fw)
        fh = int(fh)
    misc.assert_shape(f, [fh, fw][:f.ndim])
    assert fw >= 1 and fh >= 1
    return fw, fh


# ---------------------------------------------------------------------------


def setup_filter(f, device=torch.device('cpu'), normalize=True, flip_filter=False, gain=1, separable=None):
    """Turn ``f`` into a float32 FIR filter tensor for ``upfirdn2d()``.

    ``f`` may be a tensor, array or list of shape ``[taps]`` or ``[height, width]``,
    a scalar (impulse) or None (identity). A 1-D filter stays 1-D (separable)
    only if ``separable`` is true, or, when ``separable`` is None, if it has at
    least 8 taps; otherwise it becomes the outer product with itself.
    ``normalize`` divides by the sum so constant signals keep their level; ``gain``
    scales the 2-D response (each 1-D factor gets its square root).
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    assert f.ndim in [0, 1, 2]
    assert f.numel() > 0
    if f.ndim == 0:
        f = f[np.newaxis]

    if separable is None:
        separable = (f.ndim == 1 and f.numel() >= 8)
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    assert f.ndim == (1 if separable else 2)

    if normalize:
        f = f / f.sum()  # Not in place: never modify a tensor the caller passed in.
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


# ---------------------------------------------------------------------------


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='auto'):
    """Upsample, pad, filter and downsample each channel of ``x`` ([N, C, H, W]).

    1. insert ``up - 1`` zeros after every pixel;
    2. pad with zeros by ``padding`` ([x0, x1, y0, y1], [x, y] or one int;
       negative values crop);
    3. convolve with ``f`` ([fh, fw], separable [taps], or None), keeping only
       outputs whose filter footprint lies fully inside the padded image;
       ``flip_filter=True`` means correlation instead of convolution;
    4. keep every ``down``-th pixel.
    The result is multiplied by ``gain``. ``up`` and ``down`` may be [x, y].
    Like ``scipy.signal.upfirdn`` in 2-D. Differentiable to any order w.r.t. ``x``.
    """
    assert isinstance(x, torch.Tensor)
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    backend = triton_ops.fused_backend(x, impl)
    if backend:
        fused = polyphase.upfirdn2d(x, f, **kwargs, backend=backend)   # None where it does not apply
        if fused is not None:
            return fused
    if ops_mode.use_fast(impl) and _fast_applies(x, f):
        return _upfirdn2d_fast(x, f, **kwargs)
    return _upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


def _fast_applies(x, f):
    return (x.ndim == 4 and x.device.type == 'cpu' and x.dtype in (torch.float32, torch.bfloat16)
            and isinstance(f, torch.Tensor) and f.ndim == 2 and f.dtype == torch.float32 and not f.requires_grad)


def _upfirdn2d_fast(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """The reference's numbers without its zero-inserted and padded copies (CPU, 2-D filters).

    Upsampling runs as a transposed convolution with stride ``up`` (the zeros are
    never stored), channels folded into the batch so the convolution is not
    grouped, or, for 2x with a separable 4-tap filter and no gradient, as the fused C
    kernel ``cpu_kernels.upsample2x`` where it is built; plain filtering passes
    symmetric padding to the convolution itself. Other cases go to the reference.
    """
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    batch_size, num_channels, in_height, in_width = x.shape
    fh, fw = f.shape
    if upx == upy == 2 and downx == downy == 1:
        # StyleGAN2's image upsampling: a fused kernel where one is built. It gets the filter
        # buffer itself and derives its taps once per buffer; a scaled copy, new on every
        # call, had them derived on every call.
        fused = cpu_kernels.upsample2x(x, f, [padx0, padx1, pady0, pady1], gain=float(gain), flip_filter=flip_filter)
        if fused is not None:
            return fused
    f = f * gain
    if upx > 1 or upy > 1:
        if downx > 1 or downy > 1:
            return _upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter)
        # A transposed convolution (no padding) puts x[i] * f at up * i; the reference's
        # output starts fh - 1 - pady0 into that and has the length below.
        kernel = (f.flip([0, 1]) if flip_filter else f)[None, None].to(x.dtype)
        crop_y, crop_x = fh - 1 - pady0, fw - 1 - padx0
        out_h = in_height * upy + pady0 + pady1 - fh + 1
        out_w = in_width * upx + padx0 + padx1 - fw + 1
        full_h, full_w = (in_height - 1) * upy + fh, (in_width - 1) * upx + fw
        planes = x.reshape(batch_size * num_channels, 1, in_height, in_width)
        if crop_y >= 0 and crop_x >= 0 and full_h - 2 * crop_y == out_h and full_w - 2 * crop_x == out_w:
            y = torch.nn.functional.conv_transpose2d(planes, kernel, stride=[upy, upx], padding=[crop_y, crop_x])
        else:
            y = torch.nn.functional.conv_transpose2d(planes, kernel, stride=[upy, upx])
            y = torch.nn.functional.pad(y, [-crop_x, crop_x + out_w - full_w, -crop_y, crop_y + out_h - full_h])
        return y.reshape(batch_size, num_channels, out_h, out_w)
    if padx0 == padx1 >= 0 and pady0 == pady1 >= 0:
        kernel = (f if flip_filter else f.flip([0, 1]))[None, None].to(x.dtype).repeat(num_channels, 1, 1, 1)
        return torch.nn.functional.conv2d(x, kernel, stride=[downy, downx], padding=[pady0, padx0],
                                          groups=num_channels)
    return _upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter)


@misc.profiled_function
def _upfirdn2d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Reference implementation with standard PyTorch ops (any device, any order of gradients)."""
    assert isinstance(x, torch.Tensor) and x.ndim == 4
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    assert isinstance(f, torch.Tensor) and f.ndim in [1, 2]
    assert f.dtype == torch.float32 and not f.requires_grad
    batch_size, num_channels, in_height, in_width = x.shape
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)

    # The filter must fit inside the upsampled, padded image.
    up_w = in_width * upx + padx0 + padx1
    up_h = in_height * upy + pady0 + pady1
    assert up_w >= f.shape[-1] and up_h >= f.shape[0]

    # 1. Zero insertion: give every pixel a (upy x upx) block with itself in the corner.
    if upx > 1 or upy > 1:
        x = x.reshape([batch_size, num_channels, in_height, 1, in_width, 1])
        x = torch.nn.functional.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape([batch_size, num_channels, in_height * upy, in_width * upx])

    # 2. Pad the positive sides, then crop the negative ones.
    x = torch.nn.functional.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0): x.shape[2] - max(-pady1, 0), max(-padx0, 0): x.shape[3] - max(-padx1, 0)]

    # 3. conv2d computes correlation, so flip the filter to get a true convolution.
    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[np.newaxis, np.newaxis].repeat([num_channels, 1] + [1] * f.ndim)

    # 3+4. Depthwise convolution; striding equals dropping pixels afterwards.
    if f.ndim == 4:
        x = conv2d_gradfix.conv2d(input=x, weight=f, stride=[downy, downx], groups=num_channels)
    else:
        x = conv2d_gradfix.conv2d(input=x, weight=f.unsqueeze(2), stride=[1, downx], groups=num_channels)
        x = conv2d_gradfix.conv2d(input=x, weight=f.unsqueeze(3), stride=[downy, 1], groups=num_channels)
    return x


# ---------------------------------------------------------------------------
# Convenience wrappers that choose the padding for the common cases.


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='auto'):
    """Filter ``x`` with ``f``; the output has the input's size plus ``padding``."""
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + fw // 2,
        padx1 + (fw - 1) // 2,
        pady0 + fh // 2,
        pady1 + (fh - 1) // 2,
    ]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='auto'):
    """Upsample ``x`` by ``up`` with filter ``f``; output is ``up`` times the input size plus ``padding``.

    The extra ``up**2`` gain compensates for the inserted zeros.
    """
    upx, upy = _parse_scaling(up)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + (fw + upx - 1) // 2,
        padx1 + (fw - upx) // 2,
        pady0 + (fh + upy - 1) // 2,
        pady1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='auto'):
    """Downsample ``x`` by ``down`` with filter ``f``; output is the input size (plus ``padding``) over ``down``."""
    downx, downy = _parse_scaling(down)
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        padx0 + (fw - downx + 1) // 2,
        padx1 + (fw - downx) // 2,
        pady0 + (fh - downy + 1) // 2,
        pady1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
