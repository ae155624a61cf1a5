"""2-D convolution fused with FIR up/downsampling.

Same API and numbers as NVIDIA's ``torch_utils.ops.conv2d_resample``, including
which composition of conv and ``upfirdn2d`` is chosen for each case.
"""

import torch

from .. import misc
from . import conv2d_gradfix
from . import upfirdn2d
from .upfirdn2d import _get_filter_size, _parse_padding


def _get_weight_shape(w):
    with misc.suppress_tracer_warnings():  # Sizes become constants when tracing.
        shape = [int(sz) for sz in w.shape]
    misc.assert_shape(w, shape)
    return shape


def _conv2d_wrapper(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """conv2d / conv_transpose2d through conv2d_gradfix, optionally as true convolution."""
    _out_channels, _in_channels_per_group, kh, kw = _get_weight_shape(w)
    # torch's conv2d is a correlation; flip_weight=False asks for a convolution.
    if not flip_weight and (kw > 1 or kh > 1):
        w = w.flip([2, 3])
    if _is_channels_last(x):
        w = w.contiguous(memory_format=torch.channels_last)  # a mismatched layout drops to a slow kernel
    op = conv2d_gradfix.conv_transpose2d if transpose else conv2d_gradfix.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def _is_channels_last(x):
    return x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


@misc.profiled_function
def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """Convolve ``x`` ([N, Cin, H, W]) with ``w`` ([Cout, Cin/groups, kh, kw]), resampling on the way.

    f:           FIR filter from ``upfirdn2d.setup_filter()`` used for resampling, or None.
    up, down:    integer up/downsampling factors.
    padding:     padding of the upsampled image (int, [x, y] or [x0, x1, y0, y1]),
                 applied once at the start.
    groups:      grouped convolution.
    flip_weight: True = correlation with ``w`` (torch's conv2d), False = convolution.
    flip_filter: True = correlation with ``f``, False = convolution.
    """
    assert isinstance(x, torch.Tensor) and (x.ndim == 4)
    assert isinstance(w, torch.Tensor) and (w.ndim == 4) and (w.dtype == x.dtype)
    assert f is None or (isinstance(f, torch.Tensor) and f.ndim in [1, 2] and f.dtype == torch.float32)
    assert isinstance(up, int) and (up >= 1)
    assert isinstance(down, int) and (down >= 1)
    assert isinstance(groups, int) and (groups >= 1)
    out_channels, in_channels_per_group, kh, kw = _get_weight_shape(w)
    fw, fh = _get_filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Padding the resampling filter needs, on top of the user's.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    pad = [px0, px1, py0, py1]

    # 1x1 kernel, down only: shrink first, then the (cheap) convolution.
    if kw == 1 and kh == 1 and (down > 1 and up == 1):
        x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv2d_wrapper(x=x, w=w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, up only: convolve at low resolution, then upsample.
    if kw == 1 and kh == 1 and (up > 1 and down == 1):
        x = _conv2d_wrapper(x=x, w=w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x=x, f=f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)

    # Down only: filter at full resolution, then a strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, padding=pad, flip_filter=flip_filter)
        return _conv2d_wrapper(x=x, w=w, stride=down, groups=groups, flip_weight=flip_weight)

    # Up (maybe also down): a strided transposed convolution does the zero
    # insertion and the conv in one go; the filter follows.
    if up > 1:
        # conv_transpose2d wants [Cin, Cout/groups, kh, kw]: swap in/out within each group.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        # The transposed conv already "pads" by kernel size - 1; move the rest to upfirdn2d,
        # keeping only the part both sides share inside the conv (it must be >= 0 there).
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d_wrapper(x=x, w=w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True,
                            flip_weight=(not flip_weight))
        x = upfirdn2d.upfirdn2d(x=x, f=f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                                flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric non-negative padding: one plain conv2d.
    if up == 1 and down == 1:
        if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
            return _conv2d_wrapper(x=x, w=w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case: pad/crop with upfirdn2d, then convolve.
    x = upfirdn2d.upfirdn2d(x=x, f=(f if up > 1 else None), up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)
    x = _conv2d_wrapper(x=x, w=w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d.upfirdn2d(x=x, f=f, down=down, flip_filter=flip_filter)
    return x
