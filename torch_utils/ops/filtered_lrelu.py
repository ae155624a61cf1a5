"""Filtered leaky ReLU (StyleGAN3): upsample, activate, downsample.

Same API and numbers as NVIDIA's ``torch_utils.ops.filtered_lrelu``. Only the
pure-PyTorch reference exists here; both ``impl='ref'`` and ``impl='cuda'``
run it, on any device.
"""

import numpy as np
import torch

from .. import misc
from . import bias_act
from . import upfirdn2d


def _get_filter_size(f):
    """Filter -> (width, height); None counts as 1x1."""
    if f is None:
        return 1, 1
    assert isinstance(f, torch.Tensor)
    assert 1 <= f.ndim <= 2
    return f.shape[-1], f.shape[0]


def _parse_padding(padding):
    """Like upfirdn2d's, but also accepts numpy integers (StyleGAN3 computes padding with numpy)."""
    if isinstance(padding, int):
        padding = [padding, padding]
    assert isinstance(padding, (list, tuple))
    assert all(isinstance(p, (int, np.integer)) for p in padding)
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None,
                   flip_filter=False, impl='cuda'):
    """Per channel of ``x`` ([N, C, H, W]):

    add bias ``b``; upsample by ``up`` with filter ``fu`` (zero insertion, ``padding``
    relative to the upsampled image, negative = crop); multiply by ``gain``; leaky
    ReLU with negative ``slope``; clip to [-clamp, clamp] if ``clamp`` is given;
    filter with ``fd`` and keep every ``down``-th pixel. Filters are float32,
    [fh, fw], separable [taps] or None; ``flip_filter=True`` means correlation.
    Output size: ``(in * up + pad0 + pad1 - (fu_size - 1) - (fd_size - 1) + down - 1) // down``.
    """
    assert isinstance(x, torch.Tensor)
    assert impl in ['ref', 'cuda']
    # No compiled kernel in this build: every impl and device uses the reference.
    return _filtered_lrelu_ref(x, fu=fu, fd=fd, b=b, up=up, down=down, padding=padding, gain=gain, slope=slope,
                               clamp=clamp, flip_filter=flip_filter)


@misc.profiled_function
def _filtered_lrelu_ref(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None,
                        flip_filter=False):
    """Reference implementation composed of ``bias_act`` and ``upfirdn2d``."""
    assert isinstance(x, torch.Tensor) and x.ndim == 4
    fu_w, fu_h = _get_filter_size(fu)
    fd_w, fd_h = _get_filter_size(fd)
    if b is not None:
        assert isinstance(b, torch.Tensor) and b.dtype == x.dtype
        misc.assert_shape(b, [x.shape[1]])
    assert isinstance(up, int) and up >= 1
    assert isinstance(down, int) and down >= 1
    px0, px1, py0, py1 = _parse_padding(padding)
    assert gain == float(gain) and gain > 0
    assert slope == float(slope) and slope >= 0
    assert clamp is None or (clamp == float(clamp) and clamp >= 0)

    batch_size, channels, in_h, in_w = x.shape
    in_dtype = x.dtype
    out_w = (in_w * up + (px0 + px1) - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (in_h * up + (py0 + py1) - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down

    x = bias_act.bias_act(x=x, b=b)
    # up**2 restores the magnitude lost to the inserted zeros.
    x = upfirdn2d.upfirdn2d(x=x, f=fu, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    x = bias_act.bias_act(x=x, act='lrelu', alpha=slope, gain=gain, clamp=clamp)
    x = upfirdn2d.upfirdn2d(x=x, f=fd, down=down, flip_filter=flip_filter)

    misc.assert_shape(x, [batch_size, channels, out_h, out_w])
    assert x.dtype == in_dtype
    return x
