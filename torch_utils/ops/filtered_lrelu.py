"""Filtered leaky ReLU (StyleGAN3): upsample, activate, downsample.

Same API and numbers as NVIDIA's ``torch_utils.ops.filtered_lrelu``. There is no
compiled kernel: ``_filtered_lrelu_ref`` composes ``bias_act`` and ``upfirdn2d``
(zero-stuffed upsampling, full filters at the upsampled rate, the whole
intermediate in memory); ``_filtered_lrelu_fast`` computes the same thing on CPU
in small tiles, polyphase (see the comment above it), about 10x faster on
StyleGAN3-R. ``filtered_lrelu`` takes the fast path for float32/float64 CPU tensors
(see ``_fast_supported``) when ``impl`` asks for it (``'fast'``, or the default
``'auto'`` in the fast ops mode; see ``ops_mode``). Both are differentiable. CUDA tensors
run a fused Triton kernel instead (``triton_ops``; also for ``impl='cuda'``), other devices
the plain-PyTorch polyphase path of ``polyphase``; both keep only 2-bit derivative codes
for the backward pass.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .. import misc
from . import bias_act
from . import polyphase
from . import triton_ops
from . import upfirdn2d
from .ops_mode import use_fast


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


def _check_args(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    """Validate the arguments both implementations take; return the filter sizes and the padding."""
    assert isinstance(x, torch.Tensor) and x.ndim == 4
    if b is not None:
        assert isinstance(b, torch.Tensor) and b.dtype == x.dtype
        misc.assert_shape(b, [x.shape[1]])
    assert isinstance(up, int) and up >= 1
    assert isinstance(down, int) and down >= 1
    assert gain == float(gain) and gain > 0
    assert slope == float(slope) and slope >= 0
    assert clamp is None or (clamp == float(clamp) and clamp >= 0)
    return _get_filter_size(fu), _get_filter_size(fd), _parse_padding(padding)


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None,
                   flip_filter=False, impl='auto'):
    """Per channel of ``x`` ([N, C, H, W]):

    add bias ``b``; upsample by ``up`` with filter ``fu`` (zero insertion, ``padding``
    relative to the upsampled image, negative = crop); multiply by ``gain``; leaky
    ReLU with negative ``slope``; clip to [-clamp, clamp] if ``clamp`` is given;
    filter with ``fd`` and keep every ``down``-th pixel. Filters are float32,
    [fh, fw], separable [taps] or None; ``flip_filter=True`` means correlation.
    Output size: ``(in * up + pad0 + pad1 - (fu_size - 1) - (fd_size - 1) + down - 1) // down``.
    Runs ``_filtered_lrelu_fast`` for float32/float64 CPU tensors when ``impl`` asks for the fast
    path (``'fast'``, or ``'auto'`` in the fast ops mode), the Triton kernel for CUDA tensors,
    ``polyphase`` on other devices, ``_filtered_lrelu_ref`` otherwise.
    """
    assert isinstance(x, torch.Tensor)
    kwargs = dict(fu=fu, fd=fd, b=b, up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp,
                  flip_filter=flip_filter)
    backend = triton_ops.fused_backend(x, impl)
    if backend:
        _check_args(x, fu, fd, b, up, down, padding, gain, slope, clamp)
        fused = polyphase.filtered_lrelu(x, **kwargs, backend=backend)   # None where it does not apply
        if fused is not None:
            return fused
    if use_fast(impl) and _fast_supported(x, fu, fd, b):
        return _filtered_lrelu_fast(x, **kwargs)
    return _filtered_lrelu_ref(x, **kwargs)


@misc.profiled_function
def _filtered_lrelu_ref(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None,
                        flip_filter=False):
    """Reference implementation composed of ``bias_act`` and ``upfirdn2d``."""
    (fu_w, fu_h), (fd_w, fd_h), (px0, px1, py0, py1) = _check_args(x, fu, fd, b, up, down, padding, gain, slope,
                                                                   clamp)

    batch_size, channels, in_h, in_w = x.shape
    in_dtype = x.dtype
    out_w = (in_w * up + (px0 + px1) - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (in_h * up + (py0 + py1) - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down

    # The parts run their references too (impl='ref' means the reference composition, all of it).
    x = bias_act.bias_act(x=x, b=b, impl='ref')
    # up**2 restores the magnitude lost to the inserted zeros.
    x = upfirdn2d.upfirdn2d(x=x, f=fu, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter,
                            impl='ref')
    x = bias_act.bias_act(x=x, act='lrelu', alpha=slope, gain=gain, clamp=clamp, impl='ref')
    x = upfirdn2d.upfirdn2d(x=x, f=fd, down=down, flip_filter=flip_filter, impl='ref')

    misc.assert_shape(x, [batch_size, channels, out_h, out_w])
    assert x.dtype == in_dtype
    return x


# ---------------------------------------------------------------------------
# Fast CPU path.
#
# The reference materialises the zero-stuffed, padded image for all channels,
# filters it with the full filters at the upsampled rate and keeps the whole
# intermediate; with StyleGAN3's 12- and 24-tap filters that is slow (most taps
# hit inserted zeros) and needs GBs. Here the same result is computed per tile
# (a few channels x a band of output rows, a few MB):
#   1. copy the tile's input, plus bias, into a channels-last buffer (zeros
#      where the window leaves the image: that is the padding);
#   2. upsample with conv_transpose2d, stride `up` (polyphase: no multiplies by
#      inserted zeros), a 1-D filter as a row pass then a column pass; its
#      `padding`/`output_padding` crop the result to exactly the rows and columns
#      the tile needs, so nothing extra is computed and the result is contiguous;
#   3. leaky ReLU and clamp, in place (the gain is folded into the up filter);
#   4. filter and decimate with a strided conv2d (only kept outputs computed);
#   5. copy into the NCHW output.
# Channels-last depthwise convolutions run on oneDNN's vectorised kernels
# (several times faster than NCHW here), and tiles small enough to be recycled
# by the allocator avoid the page faults of fresh large tensors.

_TILE_BYTES = 4 << 20  # Target size of one tile's intermediate (upsampled) image.
_TILE_CHANNELS = 16    # Channels per tile (one AVX-512 vector of float32); more if the images are small.


def _fast_supported(x, fu, fd, b):
    """Cases the fast path handles: float32/float64 on the CPU (what it is tuned and
    tested for); everything else runs the reference."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.device.type != 'cpu':
        return False
    if x.dtype not in (torch.float32, torch.float64):
        return False
    for f in (fu, fd):
        if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.requires_grad):
            return False
    return True


def _taps(f, flip_filter, dtype):
    """Filter -> correlation taps (what conv2d applies): flipped unless ``flip_filter``; None -> [1]."""
    if f is None:
        return torch.ones([1], dtype=dtype)
    f = f.to(dtype)
    return f if flip_filter else f.flip(list(range(f.ndim)))


def _up_window(m0, m1, taps, up, pad0):
    """Input window [i0, i1) and conv_transpose (padding, output_padding) giving upsampled rows [m0, m1).

    Upsampled row m (after padding and filtering) is row ``m + taps - 1 - pad0``
    of ``conv_transpose(x, flipped taps, stride=up)``, which sums the inputs
    ``i`` with ``m - pad0 <= up * i <= m - pad0 + taps - 1``. Starting the input
    at i0 shifts the transposed conv's rows by ``up * i0``; its ``padding``
    drops rows at both ends and ``output_padding`` (< up) adds some at the end.
    """
    # With fewer taps than `up` some rows get no input at all: the window then
    # reaches one input further on either side, so the transposed conv covers them.
    i0 = min(-((pad0 - m0) // up), (m0 + taps - 1 - pad0) // up)  # min(ceil(..), floor(..))
    i1 = (m1 - 1 - pad0 + max(taps, up) - 1) // up + 1
    before = m0 + taps - 1 - pad0 - up * i0            # Unwanted rows at the start ...
    after = (i1 - i0 - 1) * up + taps - before - (m1 - m0)  # ... and at the end.
    # Widen the window (inputs outside it do not reach rows [m0, m1)) until the two
    # can be cut with one symmetric padding plus an output_padding below `up`.
    if after > before:
        k = -((before - after) // up)
        i0, before = i0 - k, before + k * up
    elif before - after >= up:
        k = (before - after) // up
        i1, after = i1 + k, after + k * up
    return i0, i1, before, before - after


@misc.profiled_function
def _filtered_lrelu_fast(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2,
                         clamp=None, flip_filter=False):
    """Same result as ``_filtered_lrelu_ref`` (to rounding), computed tile by tile.

    Differentiable (to any order) w.r.t. ``x`` and ``b`` like the reference; when
    autograd records the call the tiles' intermediates are kept for the backward
    pass, so memory is then about the reference's (time still much less).
    """
    (fu_w, fu_h), (fd_w, fd_h), (px0, px1, py0, py1) = _check_args(x, fu, fd, b, up, down, padding, gain, slope,
                                                                   clamp)

    batch_size, channels, in_h, in_w = x.shape
    dtype = x.dtype
    # Size of the upsampled, filtered image (before the nonlinearity), then of the output.
    mid_w = in_w * up + px0 + px1 - (fu_w - 1)
    mid_h = in_h * up + py0 + py1 - (fu_h - 1)
    out_w = (mid_w - fd_w + down) // down
    out_h = (mid_h - fd_h + down) // down
    if mid_w < fd_w or mid_h < fd_h or in_w * up + px0 + px1 < fu_w or in_h * up + py0 + py1 < fu_h:
        # Degenerate sizes: let the reference raise its usual error.
        return _filtered_lrelu_ref(x, fu=fu, fd=fd, b=b, up=up, down=down, padding=padding, gain=gain,
                                   slope=slope, clamp=clamp, flip_filter=flip_filter)

    # Under autograd the same ops run out of place and the tiles are concatenated, so
    # that gradients (of any order) flow; otherwise tiles are written into `out`.
    record = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))

    # The up filter carries up**2 (the energy lost to the inserted zeros) and the
    # activation gain: gain * lrelu(v) == lrelu(gain * v) for gain > 0.
    tu = _taps(fu, flip_filter, dtype)
    tu = tu * (up * up * gain if tu.ndim == 2 else up * np.sqrt(gain))
    td = _taps(fd, flip_filter, dtype)
    skip_up = fu is None and up == 1  # Step 2 would be a multiplication by `gain`.
    skip_down = fd is None and down == 1

    # Every tile spans the full width: mid columns [0, mid_cols) make the output.
    mid_cols = (out_w - 1) * down + fd_w
    j0, j1, pad_x, opad_x = _up_window(0, mid_cols, fu_w, up, px0)

    # Tile shape: whole SIMD vectors of channels x as many output rows as fit in
    # _TILE_BYTES of mid image (tall tiles waste little on the filters' overlap).
    chan_bytes = mid_cols * x.element_size()
    chan_chunk = _TILE_BYTES // (mid_h * chan_bytes) // _TILE_CHANNELS * _TILE_CHANNELS
    chan_chunk = min(channels, max(_TILE_CHANNELS, chan_chunk))
    rows = (_TILE_BYTES // (chan_chunk * chan_bytes) - fd_h) // down + 1
    rows = max(1, min(out_h, rows))
    if record:
        rows = out_h  # Overlapping bands would make the backward pass add up many full-size gradients.

    out = None if record else x.new_empty([batch_size, channels, out_h, out_w])
    chunks = []
    x_chunks = x.split(chan_chunk, dim=1)  # split (not slicing) has a cheap backward.
    b_chunks = b.split(chan_chunk) if b is not None else [None] * len(x_chunks)
    for x_chunk, b_chunk, c0 in zip(x_chunks, b_chunks, range(0, channels, chan_chunk)):
        cc = x_chunk.shape[1]
        c1 = c0 + cc
        w_up = _depthwise(tu, cc, transposed=True)
        w_down = _depthwise(td, cc)
        bias = b_chunk.reshape(1, -1, 1, 1) if b is not None else None
        bands = []
        for o0 in range(0, out_h, rows):
            o1 = min(o0 + rows, out_h)
            m0, m1 = o0 * down, (o1 - 1) * down + fd_h  # Mid rows this band needs.
            i0, i1, pad_y, opad_y = _up_window(m0, m1, fu_h, up, py0)

            # 1. Input window [i0, i1) x [j0, j1) plus bias, channels-last.
            buf = _input_window(x_chunk, bias, i0, i1, j0, j1, record)

            # 2. Upsample and filter: exactly mid rows [m0, m1), columns [0, mid_cols).
            if skip_up:
                mid = buf if gain == 1 else (buf * gain if record else buf.mul_(gain))
            elif tu.ndim == 2:
                mid = F.conv_transpose2d(buf, w_up, stride=up, groups=cc, padding=(pad_y, pad_x),
                                         output_padding=(opad_y, opad_x))
            else:
                mid = F.conv_transpose2d(buf, w_up[1], stride=(1, up), groups=cc, padding=(0, pad_x),
                                         output_padding=(0, opad_x))
                mid = F.conv_transpose2d(mid, w_up[0], stride=(up, 1), groups=cc, padding=(pad_y, 0),
                                         output_padding=(opad_y, 0))

            # 3. Nonlinearity (in place unless recording).
            if slope != 1:
                mid = F.leaky_relu(mid, slope) if record else F.leaky_relu_(mid, slope)
            if clamp is not None:
                mid = mid.clamp(-clamp, clamp) if record else mid.clamp_(-clamp, clamp)

            # 4. Filter and decimate.
            if skip_down:
                res = mid
            elif td.ndim == 2:
                res = F.conv2d(mid, w_down, stride=down, groups=cc)
            else:
                res = F.conv2d(mid, w_down[0], stride=(down, 1), groups=cc)
                res = F.conv2d(res, w_down[1], stride=(1, down), groups=cc)

            # 5. Into the output.
            if record:
                bands.append(res)
            else:
                out[:, c0:c1, o0:o1].copy_(res)
        if record:
            chunks.append(torch.cat(bands, dim=2))
    if record:
        out = torch.cat(chunks, dim=1).contiguous()
    return out


def _input_window(x, bias, i0, i1, j0, j1, record):
    """Rows [i0, i1) x columns [j0, j1) of ``x + bias`` as a channels-last tensor; zeros outside ``x``."""
    batch_size, channels, in_h, in_w = x.shape
    vi0, vi1, vj0, vj1 = max(i0, 0), min(i1, in_h), max(j0, 0), min(j1, in_w)  # The part inside x.
    inside = vi1 > vi0 and vj1 > vj0
    src = x if (vi0, vi1, vj0, vj1) == (0, in_h, 0, in_w) else x[:, :, vi0:vi1, vj0:vj1]
    if record and inside:  # Differentiable ops.
        if bias is not None:
            src = src + bias
        src = F.pad(src, [vj0 - j0, j1 - vj1, vi0 - i0, i1 - vi1])
        return src.contiguous(memory_format=torch.channels_last)
    # One pass: write x + bias straight into a preallocated buffer.
    buf = torch.empty([batch_size, channels, i1 - i0, j1 - j0], dtype=x.dtype, memory_format=torch.channels_last)
    if not inside or (vi0, vi1, vj0, vj1) != (i0, i1, j0, j1):
        buf.zero_()
    if inside:
        dst = buf[:, :, vi0 - i0: vi1 - i0, vj0 - j0: vj1 - j0]
        if bias is not None:
            torch.add(src, bias, out=dst)
        else:
            dst.copy_(src)
    return buf


def _depthwise(taps, channels, transposed=False):
    """Depthwise weights [C, 1, kh, kw]: one 2-D kernel, or (column, row) kernels for 1-D taps.

    conv2d correlates with its weight, conv_transpose2d scatters it: the latter
    gets the taps flipped to apply the same correlation.
    """
    if transposed:
        taps = taps.flip(list(range(taps.ndim)))
    if taps.ndim == 2:
        return taps.expand(channels, 1, *taps.shape).contiguous()
    return (taps.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous(),
            taps.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous())
