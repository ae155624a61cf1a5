"""One Triton kernel for every ``resample_plan.Plan``: upfirdn2d, filtered_lrelu and their gradients.

Each program computes one output tile of one image plane, entirely in registers: it loads
the input window the tile needs, upsamples and filters it (stage 1), applies the pointwise
step, then filters and decimates (stage 2), and writes the tile. Nothing of the upsampled
image goes to global memory except, when a gradient will be needed, its 2-bit derivative
codes. Each stage is matrix products: along an axis, resampling with a filter is a banded
matrix (``R[m, i] = taps[i * up + pad - m]``), so a separable filter is ``Ry @ tile @ Rx^T``
(``tl.dot``, tensor cores on the GPU); a 2-D filter is a short sum of separable ones
(``resample_plan.separable_factors``). The band matrices are built from the taps in the
kernel; their zeros are the polyphase structure, never stored.
"""

import functools
import math
import weakref

import torch
import triton
import triton.language as tl

from ... import misc
from .. import resample_plan
from .launch import device_guard

_POINTWISE = {'none': 0, 'lrelu': 1, 'signs': 2}
_BLOCK_SIZES = (16, 32, 64, 128)   # Tile edges (powers of two, >= 16 for tl.dot).
_INTERPRETER_BLOCK_SIZES = (16, 32, 64, 128, 256)   # The interpreter pays per program: fewer, larger tiles.


@triton.jit
def _resample_kernel(
        src_ptr, bias_ptr, out_ptr, sign_ptr, params_ptr, f1y_ptr, f1x_ptr, f2y_ptr, f2x_ptr,
        planes, channels, tiles_x, tiles_per_plane, src_h, src_w, mid_h, mid_w, out_h, out_w,
        src_sn, src_sc, src_sy, src_sx, out_sn, out_sc, out_sy, out_sx, sign_plane, sign_row,
        up_y, up_x, pad1_y, pad1_x, taps1_y, taps1_x, rank1,
        down_y, down_x, pad2_y, pad2_x, taps2_y, taps2_x, rank2,
        shift_y, shift_x, lift_y, lift_x, tile_y, tile_x,
        PLANES: tl.constexpr, SRC_BY: tl.constexpr, SRC_BX: tl.constexpr, MID_BY: tl.constexpr,
        MID_BX: tl.constexpr, OUT_BY: tl.constexpr, OUT_BX: tl.constexpr, STAGE1: tl.constexpr, STAGE2: tl.constexpr,
        POINTWISE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_CLAMP: tl.constexpr, STORE_SIGNS: tl.constexpr,
        PRECISION: tl.constexpr):
    # One output tile of PLANES image planes (1 on GPUs; more in the interpreter, which pays per program).
    pid = tl.program_id(0)
    tile = pid % tiles_per_plane
    p = (pid // tiles_per_plane) * PLANES + tl.arange(0, PLANES)
    p_ok = p < planes
    c = p % channels
    src_off = (p // channels).to(tl.int64) * src_sn + c.to(tl.int64) * src_sc
    o0y = (tile // tiles_x) * tile_y
    o0x = (tile % tiles_x) * tile_x
    gain = tl.load(params_ptr)
    slope = tl.load(params_ptr + 1)
    clamp = tl.load(params_ptr + 2)

    # The mid (upsampled) window this tile reads: rows m0y + [0, span_y), columns likewise.
    if STAGE2:
        m0y = o0y * down_y - pad2_y
        m0x = o0x * down_x - pad2_x
        span_y = (tile_y - 1) * down_y + taps2_y
        span_x = (tile_x - 1) * down_x + taps2_x
    else:
        m0y = o0y
        m0x = o0x
        span_y = tile_y
        span_x = tile_x
    mi = tl.arange(0, MID_BY)
    mj = tl.arange(0, MID_BX)
    my = m0y + mi
    mx = m0x + mj
    my_ok = (mi < span_y) & (my >= 0) & (my < mid_h)
    mx_ok = (mj < span_x) & (mx >= 0) & (mx < mid_w)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + c, mask=p_ok, other=0).to(gain.dtype)[:, None, None]

    # Stage 1, per rank r: a row pass then a column pass, each one product with the planes
    # stacked: [P*SX, SY] @ Ry^T, then [P*MY, SX] @ Rx^T -> mid [P, MY, MX]. The input window
    # starts at row ceil((m0 - pad1) / up), computed on non-negative numbers (shift, lift: host).
    if STAGE1:
        iy = (o0y * down_y + shift_y) // up_y - lift_y + tl.arange(0, SRC_BY)
        ix = (o0x * down_x + shift_x) // up_x - lift_x + tl.arange(0, SRC_BX)
        s_ok = (p_ok[:, None, None] & ((ix >= 0) & (ix < src_w))[None, :, None]
                & ((iy >= 0) & (iy < src_h))[None, None, :])
        s = tl.load(src_ptr + src_off[:, None, None] + ix[None, :, None] * src_sx + iy[None, None, :] * src_sy,
                    mask=s_ok, other=0).to(gain.dtype)   # [P, SX, SY]: columns first
        if HAS_BIAS:
            s = tl.where(s_ok, s + bias, 0)
        s = tl.reshape(s, [PLANES * SRC_BX, SRC_BY])
        ky = iy[:, None] * up_y + pad1_y - my[None, :]     # [SY, MY]
        ky_ok = (ky >= 0) & (ky < taps1_y) & my_ok[None, :]
        kx = ix[:, None] * up_x + pad1_x - mx[None, :]     # [SX, MX]
        kx_ok = (kx >= 0) & (kx < taps1_x) & mx_ok[None, :]
        mid = tl.zeros([PLANES, MID_BY, MID_BX], dtype=gain.dtype)
        for r in range(rank1):
            fy = tl.load(f1y_ptr + r * taps1_y + ky, mask=ky_ok, other=0)
            fx = tl.load(f1x_ptr + r * taps1_x + kx, mask=kx_ok, other=0)
            t = tl.reshape(tl.dot(s, fy, input_precision=PRECISION), [PLANES, SRC_BX, MID_BY])
            t = tl.reshape(tl.permute(t, (0, 2, 1)), [PLANES * MID_BY, SRC_BX])
            mid += tl.reshape(tl.dot(t, fx, input_precision=PRECISION), [PLANES, MID_BY, MID_BX])
    else:
        m_ok = p_ok[:, None, None] & my_ok[None, :, None] & mx_ok[None, None, :]
        mid = tl.load(src_ptr + src_off[:, None, None] + my[None, :, None] * src_sy + mx[None, None, :] * src_sx,
                      mask=m_ok, other=0).to(gain.dtype)
        if HAS_BIAS:
            mid = tl.where(m_ok, mid + bias, 0)

    # Pointwise step, on [P, MY, MX].
    sign_off = p.to(tl.int64) * sign_plane
    if POINTWISE == 1:
        a = tl.where(mid > 0, mid, mid * slope) * gain
        if STORE_SIGNS:
            code = tl.where(mid > 0, 0, 1)
            if HAS_CLAMP:
                code = tl.where(tl.abs(a) > clamp, 2, code)
            # Each tile writes the rows and columns from its first output's to the next tile's
            # (multiples of 4 columns, so no byte is shared); the last tiles to the end.
            own_y1 = tl.where(o0y + tile_y >= out_h, mid_h, (o0y + tile_y) * down_y)
            own_x1 = tl.where(o0x + tile_x >= out_w, mid_w, (o0x + tile_x) * down_x)
            w_y = my_ok & (my >= o0y * down_y) & (my < own_y1)
            w_x = mx_ok & (mx >= o0x * down_x) & (mx < own_x1)
            code = tl.where(w_y[None, :, None] & w_x[None, None, :], code, 0) << ((mj % 4) * 2)[None, None, :]
            packed = tl.sum(tl.reshape(code, [PLANES, MID_BY, MID_BX // 4, 4]), axis=3)
            bx = m0x // 4 + tl.arange(0, MID_BX // 4)
            b_ok = (bx * 4 >= o0x * down_x) & (bx * 4 < own_x1) & (bx * 4 < mid_w)
            tl.store(sign_ptr + sign_off[:, None, None] + my[None, :, None] * sign_row + bx[None, None, :],
                     packed.to(tl.uint8), mask=p_ok[:, None, None] & w_y[None, :, None] & b_ok[None, None, :])
        if HAS_CLAMP:
            a = tl.minimum(tl.maximum(a, -clamp), clamp)
    elif POINTWISE == 2:
        m_ok = p_ok[:, None, None] & my_ok[None, :, None] & mx_ok[None, None, :]
        byte = tl.load(sign_ptr + sign_off[:, None, None] + my[None, :, None] * sign_row + (mx // 4)[None, None, :],
                       mask=m_ok, other=0)
        code = (byte.to(tl.int32) >> ((mx % 4) * 2)[None, None, :]) & 3
        a = mid * tl.where(code == 0, gain, tl.where(code == 1, gain * slope, 0))
    else:
        a = mid

    # Stage 2, per rank: [P*MY, MX] @ Qx^T, then [P*OX, MY] @ Qy^T -> out [P, OX, OY] (columns first).
    if STAGE2:
        oi = tl.arange(0, OUT_BY)
        oj = tl.arange(0, OUT_BX)
        oy = o0y + oi
        ox = o0x + oj
        oy_ok = (oi < tile_y) & (oy < out_h)
        ox_ok = (oj < tile_x) & (ox < out_w)
        ky2 = my[:, None] + pad2_y - oy[None, :] * down_y   # [MY, OY]
        ky2_ok = (ky2 >= 0) & (ky2 < taps2_y) & my_ok[:, None] & oy_ok[None, :]
        kx2 = mx[:, None] + pad2_x - ox[None, :] * down_x   # [MX, OX]
        kx2_ok = (kx2 >= 0) & (kx2 < taps2_x) & mx_ok[:, None] & ox_ok[None, :]
        a = tl.reshape(a, [PLANES * MID_BY, MID_BX])
        out = tl.zeros([PLANES, OUT_BX, OUT_BY], dtype=gain.dtype)
        for r in range(rank2):
            gy = tl.load(f2y_ptr + r * taps2_y + ky2, mask=ky2_ok, other=0)
            gx = tl.load(f2x_ptr + r * taps2_x + kx2, mask=kx2_ok, other=0)
            t = tl.reshape(tl.dot(a, gx, input_precision=PRECISION), [PLANES, MID_BY, OUT_BX])
            t = tl.reshape(tl.permute(t, (0, 2, 1)), [PLANES * OUT_BX, MID_BY])
            out += tl.reshape(tl.dot(t, gy, input_precision=PRECISION), [PLANES, OUT_BX, OUT_BY])
        out_ok = p_ok[:, None, None] & ox_ok[None, :, None] & oy_ok[None, None, :]
        out_ptrs = out_ptr + ((p // channels).to(tl.int64) * out_sn + c.to(tl.int64) * out_sc)[:, None, None] \
            + ox[None, :, None] * out_sx + oy[None, None, :] * out_sy
    else:
        out = a
        out_ok = p_ok[:, None, None] & my_ok[None, :, None] & mx_ok[None, None, :]
        out_ptrs = out_ptr + ((p // channels).to(tl.int64) * out_sn + c.to(tl.int64) * out_sc)[:, None, None] \
            + my[None, :, None] * out_sy + mx[None, None, :] * out_sx
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=out_ok)


def supports(x):
    """float16/bfloat16/float32 everywhere; float64 only in the interpreter (tl.dot has no float64 on GPUs)."""
    return x.dtype in (torch.float16, torch.bfloat16, torch.float32) or (
        x.dtype == torch.float64 and x.device.type == 'cpu')


class TritonExecutor:
    """Runs plans with ``_resample_kernel`` (see ``polyphase.TorchExecutor`` for the contract)."""

    @staticmethod
    def run(src, plan, bias=None, signs=None, store_signs=False):
        batch, channels = src.shape[:2]
        ay, ax = plan.y, plan.x
        device = src.device
        compute = torch.float64 if src.dtype == torch.float64 else torch.float32
        f1y, f1x = _factors(plan.filter1, compute, device)
        f2y, f2x = _factors(plan.filter2, compute, device)
        stage1, stage2 = not plan.stage1_is_identity, not plan.stage2_is_identity
        store_signs = store_signs and plan.pointwise == 'lrelu'
        interpreted = device.type == 'cpu'
        by, bx = _blocks(ay, ax, f1y.shape[0], f2y.shape[0], stage1, stage2, store_signs, interpreted,
                         _INTERPRETER_BLOCK_SIZES if interpreted else _BLOCK_SIZES)
        out = torch.empty([batch, channels, ay.out, ax.out], dtype=src.dtype, device=device)
        codes = None
        if store_signs:
            codes = torch.empty(plan.sign_shape(batch * channels), dtype=torch.uint8, device=device)
        sign_buffer = codes if codes is not None else signs
        params = misc.constant([plan.gain, plan.slope, plan.clamp or 0.0], dtype=compute, device=device)
        tiles_y, tiles_x = -(-ay.out // by.tile), -(-ax.out // bx.tile)
        shift_y, lift_y = _shift(ay)
        shift_x, lift_x = _shift(ax)
        precision = 'ieee' if compute == torch.float64 or device.type == 'cpu' or torch.version.hip else 'tf32x3'
        planes = batch * channels
        per_program = _planes_per_program(planes, by, bx, interpreted)
        grid = (-(-planes // per_program) * tiles_y * tiles_x,)
        with device_guard(device):
            _resample_kernel[grid](
                src, bias if bias is not None else src, out, sign_buffer if sign_buffer is not None else out, params,
                f1y, f1x, f2y, f2x,
                planes, channels, tiles_x, tiles_y * tiles_x, ay.src, ax.src, ay.mid, ax.mid, ay.out, ax.out,
                *src.stride(), *out.stride(),
                ay.mid * ((ax.mid + 3) // 4), (ax.mid + 3) // 4,
                ay.up, ax.up, ay.pad1, ax.pad1, f1y.shape[1], f1x.shape[1], f1y.shape[0],
                ay.down, ax.down, ay.pad2, ax.pad2, f2y.shape[1], f2x.shape[1], f2y.shape[0],
                shift_y, shift_x, lift_y, lift_x, by.tile, bx.tile,
                PLANES=per_program, SRC_BY=by.src, SRC_BX=bx.src, MID_BY=by.mid, MID_BX=bx.mid, OUT_BY=by.out,
                OUT_BX=bx.out,
                STAGE1=stage1, STAGE2=stage2, POINTWISE=_POINTWISE[plan.pointwise], HAS_BIAS=bias is not None,
                HAS_CLAMP=plan.clamp is not None, STORE_SIGNS=store_signs, PRECISION=precision,
                num_warps=8 if by.mid * bx.mid > 4096 else 4)
        return out, codes


def _planes_per_program(planes, by, bx, interpreted):
    """1 on GPUs; in the interpreter as many as keep each block under 2**20 elements."""
    if not interpreted:
        return 1
    largest = max(by.mid * bx.mid, by.src * bx.src, by.out * bx.out, by.src * by.mid, bx.src * bx.mid)
    count = 1
    while count < planes and count * 2 * largest <= 1 << 20:
        count *= 2
    return count


def _shift(axis):
    """(shift, lift) with ``(o0 * down + shift) // up - lift == ceil((o0 * down - pad2 - pad1) / up)``, shift >= 0."""
    lift = max(0, -(-(axis.pad1 + axis.pad2) // axis.up))
    return axis.up - 1 - axis.pad1 - axis.pad2 + axis.up * lift, lift


# ---------------------------------------------------------------------------
# Filters as separable factors, cached per filter tensor (a 2-D filter's factors come from an
# SVD on the host: done once per filter, not on every call, which would wait for the GPU).

_factor_cache = {}


def _factors(f, dtype, device):
    if f is None:
        one = misc.constant([[1.0]], dtype=dtype, device=device)
        return one, one
    key = id(f.taps)
    entry = _factor_cache.get(key)
    if entry is None or entry[0]() is not f.taps:
        def forget(ref, key=key):
            if _factor_cache.get(key, (None,))[0] is ref:
                del _factor_cache[key]
        entry = (weakref.ref(f.taps, forget), {})
        _factor_cache[key] = entry
    variants = entry[1]
    version = (f.taps._version, f.flip_filter, f.gain, dtype, device)
    if version not in variants:
        rows, cols = resample_plan.separable_factors(f, dtype)
        variants[version] = (rows.to(device).contiguous(), cols.to(device).contiguous())
    return variants[version]


# ---------------------------------------------------------------------------
# Tile shapes.


class _AxisBlocks:
    """Block edges along one axis: source window, mid window, output tile (all powers of two) and
    ``tile``, the outputs a program writes along this axis."""

    def __init__(self, src, mid, out, tile):
        self.src, self.mid, self.out, self.tile = src, mid, out, tile


def _axis_choices(axis, stage1, stage2, align4, sizes):
    choices = []
    for out_block in (sizes[:3] if stage2 else (None,)):
        for mid_block in sizes:
            for src_block in (sizes if stage1 else (mid_block,)):
                tile = min(out_block or mid_block, axis.out)
                if stage2:
                    tile = min(tile, (mid_block - axis.taps2) // axis.down + 1)

                def src_rows(t):
                    span = (t - 1) * axis.down + axis.taps2 if stage2 else t
                    return (span - 1 + axis.taps1 - 1) // axis.up + 1
                while stage1 and tile >= 1 and src_rows(tile) > src_block:
                    tile -= 1
                # Sign bytes hold 4 columns: tiles start on multiples of 4 mid columns.
                while align4 and 1 <= tile < axis.out and (tile * axis.down) % 4:
                    tile -= 1
                if tile >= 1:
                    choices.append(_AxisBlocks(src_block, mid_block, out_block or mid_block, tile))
    return choices


@functools.lru_cache(maxsize=1024)
def _blocks(ay, ax, rank1, rank2, stage1, stage2, store_signs, interpreted, sizes):
    """The block shapes with the least estimated work (multiply-adds of the products, plus a fixed
    cost per program, far larger in the interpreter) for the whole plane."""
    overhead = 1e7 if interpreted else 3e4
    limit = max(8192, sizes[-1] ** 2 // 2)    # Elements per block (registers, on a GPU).
    best, best_cost = None, math.inf
    for by in _axis_choices(ay, stage1, stage2, False, sizes):
        for bx in _axis_choices(ax, stage1, stage2, store_signs, sizes):
            if by.mid * bx.mid > limit or (stage1 and by.src * bx.src > limit) or by.out * bx.out > limit // 2:
                continue
            cost = overhead + 4 * by.mid * bx.mid
            if stage1:
                cost += rank1 * (by.mid * by.src * bx.src + by.mid * bx.src * bx.mid)
            if stage2:
                cost += rank2 * (by.out * by.mid * bx.mid + by.out * bx.mid * bx.out)
            cost *= -(-ay.out // by.tile) * -(-ax.out // bx.tile)
            if cost < best_cost:
                best, best_cost = (by, bx), cost
    if best is None:  # Long filters at a low rate: even the smallest tile needs larger blocks.
        return _blocks(ay, ax, rank1, rank2, stage1, stage2, store_signs, interpreted, sizes + (2 * sizes[-1],))
    return best
