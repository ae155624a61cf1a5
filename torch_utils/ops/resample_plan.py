"""upfirdn2d and filtered_lrelu as one shape of computation, shared by their fused implementations.

Both ops are, per image plane, two resampling stages around a pointwise step:

    mid[m] = sum_k filter1[k] * up(src)[m + k - pad1]      (stage 1: upsample by `up`, filter)
    mid    = pointwise(mid)                                (nothing, leaky ReLU, or stored derivatives)
    out[o] = sum_k filter2[k] * mid[o * down + k - pad2]   (stage 2: filter, keep every `down`-th)

per axis, where ``up(src)[j]`` is ``src[j / up]`` when ``up`` divides ``j`` and 0 otherwise, ``mid``
is zero outside ``[0, mid)`` and filters are correlation taps (the convolution filter flipped,
gains folded in). A ``Plan`` holds the sizes of each axis and the two filters. The gradient of a
plan is again a plan (``transposed``): the stages swap, each filter is flipped, and the
pointwise step becomes a multiplication by the derivatives the forward pass stored (2 bits
per ``mid`` pixel, see ``SIGN_*``). The plain-PyTorch executor (``polyphase``) and the Triton
kernel (``triton_ops.resample``) both run plans.
"""

import dataclasses
from typing import Optional

import numpy as np
import torch

# Derivative codes of the leaky ReLU step, 2 bits per mid pixel, 4 pixels per byte
# (pixel x in bits 2*(x%4)..): the positive side, the negative side, clamped (no gradient).
SIGN_POSITIVE, SIGN_NEGATIVE, SIGN_CLAMPED = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Axis:
    """One axis of a plan: lengths, factors, paddings (start side) and filter lengths."""
    src: int
    up: int
    pad1: int
    taps1: int
    mid: int
    down: int
    pad2: int
    taps2: int
    out: int

    def transposed(self):
        return Axis(src=self.out, up=self.down, pad1=self.taps2 - 1 - self.pad2, taps1=self.taps2, mid=self.mid,
                    down=self.up, pad2=self.taps1 - 1 - self.pad1, taps2=self.taps1, out=self.src)

    @property
    def stage1_is_identity(self):
        return self.up == 1 and self.taps1 == 1 and self.pad1 == 0 and self.mid == self.src

    @property
    def stage2_is_identity(self):
        return self.down == 1 and self.taps2 == 1 and self.pad2 == 0 and self.out == self.mid


@dataclasses.dataclass(frozen=True)
class Filter:
    """A stage's filter as the caller gave it: ``taps`` (float32 [n] separable or [h, w]), whether
    it is applied as a correlation already (``flip_filter``) and the gain it carries."""
    taps: torch.Tensor
    flip_filter: bool = False
    gain: float = 1.0

    def correlation(self):
        """The float32 correlation taps, gain folded in (spread over the dimensions), as the reference computes them."""
        f = self.taps * (self.gain ** (self.taps.ndim / 2))
        return f if self.flip_filter else f.flip(list(range(f.ndim)))

    def flipped(self):
        return dataclasses.replace(self, flip_filter=not self.flip_filter)

    def size(self, axis):
        """Length along axis 0 (rows) or 1 (columns); a 1-D filter applies along both."""
        return int(self.taps.shape[0] if self.taps.ndim == 1 else self.taps.shape[axis])


@dataclasses.dataclass(frozen=True)
class Plan:
    """Both axes, the two filters (None: a single tap of 1) and the pointwise step.

    pointwise: 'none'; 'lrelu' (``clamp(lrelu(v, slope) * gain)``); or 'signs' (``v`` times the
    derivative the codes of a forward 'lrelu' pass give: ``gain``, ``gain * slope`` or 0).
    """
    y: Axis
    x: Axis
    filter1: Optional[Filter]
    filter2: Optional[Filter]
    pointwise: str = 'none'
    gain: float = 1.0
    slope: float = 1.0
    clamp: Optional[float] = None

    def transposed(self):
        return dataclasses.replace(self, y=self.y.transposed(), x=self.x.transposed(),
                                   filter1=_flipped(self.filter2), filter2=_flipped(self.filter1),
                                   pointwise='none' if self.pointwise == 'none' else 'signs')

    @property
    def stage1_is_identity(self):
        return self.filter1 is None and self.y.stage1_is_identity and self.x.stage1_is_identity

    @property
    def stage2_is_identity(self):
        return self.filter2 is None and self.y.stage2_is_identity and self.x.stage2_is_identity

    def sign_shape(self, planes):
        """Shape of the uint8 buffer holding the derivative codes: [planes, mid rows, bytes per row]."""
        return planes, self.y.mid, (self.x.mid + 3) // 4


def _flipped(f):
    return None if f is None else f.flipped()


def _filter(f, flip_filter, gain):
    """Filter for a stage; None (one tap of 1) when there is neither a filter nor a gain."""
    if f is None:
        if gain == 1:
            return None
        f = torch.ones([1, 1], dtype=torch.float32)
    assert isinstance(f, torch.Tensor) and f.ndim in (1, 2) and f.dtype == torch.float32
    return Filter(f, bool(flip_filter), gain)


def _size(f, axis):
    return 1 if f is None else f.size(axis)


def parse_scaling(scaling):
    """int or [x, y] -> (x, y), both >= 1; None if invalid (the reference then raises)."""
    if isinstance(scaling, (int, np.integer)):
        scaling = [scaling, scaling]
    if not isinstance(scaling, (list, tuple)) or len(scaling) != 2:
        return None
    if not all(isinstance(s, (int, np.integer)) and s >= 1 for s in scaling):
        return None
    return int(scaling[0]), int(scaling[1])


def parse_padding(padding):
    """int, [x, y] or [x0, x1, y0, y1] (numpy integers too) -> (x0, x1, y0, y1); None if invalid."""
    if isinstance(padding, (int, np.integer)):
        padding = [padding, padding]
    if not isinstance(padding, (list, tuple)) or len(padding) not in (2, 4):
        return None
    if not all(isinstance(p, (int, np.integer)) for p in padding):
        return None
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    return tuple(padding)


def upfirdn2d_plan(x_shape, f, up, down, padding, flip_filter, gain):
    """The plan of ``upfirdn2d`` (arguments already parsed: up/down (x, y), padding (x0, x1, y0, y1)).

    Upsampling (or plain filtering) is stage 1 and any decimation stage 2 with a 1-tap filter;
    without upsampling, the filter and the padding move to stage 2 (stage 1 is then nothing).
    Returns None where the reference would raise (the filter does not fit).
    """
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, padding
    taps = _filter(f if f is not None else torch.ones([1, 1], dtype=torch.float32), flip_filter, gain)
    upsampling = upx > 1 or upy > 1
    axes = []
    for size, u, d, p0, p1, axis in [(x_shape[2], upy, downy, py0, py1, 0), (x_shape[3], upx, downx, px0, px1, 1)]:
        k = taps.size(axis)
        padded = size * u + p0 + p1
        if padded < k:
            return None
        if upsampling:
            mid = padded - k + 1
            axes.append(Axis(src=size, up=u, pad1=p0, taps1=k, mid=mid, down=d, pad2=0, taps2=1,
                             out=(mid - 1) // d + 1))
        else:
            axes.append(Axis(src=size, up=1, pad1=0, taps1=1, mid=size, down=d, pad2=p0, taps2=k,
                             out=(padded - k) // d + 1))
    if upsampling:
        return Plan(y=axes[0], x=axes[1], filter1=taps, filter2=None)
    return Plan(y=axes[0], x=axes[1], filter1=None, filter2=taps)


def filtered_lrelu_plan(x_shape, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
    """The plan of ``filtered_lrelu`` (padding parsed: x0, x1, y0, y1); None where the reference would raise."""
    px0, px1, py0, py1 = padding
    filter1 = _filter(fu, flip_filter, up ** 2)   # up**2: the level lost to the inserted zeros
    filter2 = _filter(fd, flip_filter, 1)
    axes = []
    for size, p0, p1, axis in [(x_shape[2], py0, py1, 0), (x_shape[3], px0, px1, 1)]:
        k1, k2 = _size(filter1, axis), _size(filter2, axis)
        if size * up + p0 + p1 < k1:
            return None
        mid = size * up + p0 + p1 - k1 + 1
        if mid < k2:
            return None
        axes.append(Axis(src=size, up=up, pad1=p0, taps1=k1, mid=mid, down=down, pad2=0, taps2=k2,
                         out=(mid - k2) // down + 1))
    return Plan(y=axes[0], x=axes[1], filter1=filter1, filter2=filter2, pointwise='lrelu', gain=float(gain),
                slope=float(slope), clamp=None if clamp is None else float(clamp))


def separable_factors(f, dtype):
    """Filter (or None) -> (row factors [rank, h], column factors [rank, w]), the correlation
    taps being ``sum_r outer(rows[r], cols[r])``.

    A 1-D filter is its own factor (rank 1); a 2-D one is split by its singular values in
    float64, dropping the components that are zero to rounding (symmetric filters such as
    StyleGAN3's radial ones have half rank), so each stage runs as a few pairs of 1-D passes.
    """
    if f is None:
        one = torch.ones([1, 1], dtype=dtype)
        return one, one
    taps = f.correlation()
    if taps.ndim == 1:
        taps = taps.detach().to(dtype).reshape(1, -1)
        return taps, taps
    u, s, vh = np.linalg.svd(taps.detach().cpu().double().numpy())
    keep = max(1, int((s > s[0] * 1e-12).sum()))
    root = np.sqrt(s[:keep])
    rows = torch.from_numpy((u[:, :keep] * root).T.copy()).to(dtype)
    cols = torch.from_numpy((vh[:keep] * root[:, None]).copy()).to(dtype)
    return rows, cols
