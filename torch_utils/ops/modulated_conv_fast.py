"""StyleGAN2's modulated convolution + noise + bias + activation, fused for CPU inference.

The reference (``networks_stylegan2.modulated_conv2d`` followed by ``bias_act``)
builds a per-sample kernel, runs a grouped convolution when the batch is larger
than one, upsamples with a transposed convolution plus ``.contiguous()`` copies,
and allocates a new tensor for every step of the epilogue. This path computes
the same function with fewer, cheaper steps:

- activations stay channels-last, which the CPU convolution kernels run at
  close to matrix-product speed for every channel count here;
- demodulation coefficients come from one small matrix product
  (``styles**2 @ sum_k weight**2``) instead of a per-sample kernel;
- styles, demodulation and the activation gain are folded into the kernel,
  so each layer is one plain convolution per image: a batch is computed image by
  image inside the op, so it gives each image's pixels exactly as batch 1 does;
- the activation gain g > 0 is folded in before the activation
  (lrelu(x) * g == lrelu(g * x)), and bias, noise, activation and clamp run
  in place on the convolution's output;
- where the fused C kernels are built (``cpu_kernels``): that epilogue is one pass, the
  upsampling filter runs with it (on large maps reading the transposed convolution as
  four phase convolutions), and float32 3x3 layers of 64+ channels run as Winograd
  F(4x4, 3x3) with the styles and the epilogue inside its transforms.

Used only when nothing needs gradients (``torch.is_grad_enabled()`` false or
no input requires grad), for float32 on the CPU (or bfloat16 activations under
``--precision bf16``: the kernel is folded in float32 and then rounded, the
convolution accumulates in float32), in the fast ops mode; every other case
runs the reference.
"""

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from .. import layout
from . import cpu_kernels, derived, ops_mode, transposed_conv, upfirdn2d, winograd_conv
from .upfirdn2d import _get_filter_size

_FOLDABLE_ACTIVATIONS = ('lrelu', 'linear')  # act(x) * g == act(g * x) for g > 0


def applies(x, *tensors, activation='linear'):
    """True when the fused path may replace the reference for these inputs."""
    return activation in _FOLDABLE_ACTIVATIONS and ops_mode.fast_cpu_inference(x, *tensors)


def demodulation(weight, styles):
    """1 / ||weight * style||_2 per (sample, output channel): [N, O]."""
    return (styles.square() @ _prepared(weight, 'weight_sq').t() + 1e-8).rsqrt()


def modulated_conv_bias_act(x, weight, styles, bias, noise=None, up=1, padding=0, resample_filter=None,
                            flip_weight=True, demodulate=True, activation='lrelu', alpha=0.2, gain=1.0,
                            clamp=None):
    """``clamp(act(modconv(x) + noise + bias) * gain)`` in the reference's order of meaning.

    x [N, I, H, W]; weight [O, I, k, k]; styles [N, I]; bias [O]; noise broadcastable to
    the output ([N or 1, 1, H', W'] or [H', W']) or None. ``gain`` must be positive.
    Returns a channels-last tensor [N, O, H * up, W * up] of x's dtype.
    """
    assert gain > 0
    if x.shape[0] > 1:
        per_image_noise = noise is not None and noise.ndim == 4 and noise.shape[0] > 1
        return torch.cat([
            modulated_conv_bias_act(x[i:i + 1], weight, styles[i:i + 1], bias,
                                    noise=noise[i:i + 1] if per_image_noise else noise, up=up, padding=padding,
                                    resample_filter=resample_filter, flip_weight=flip_weight, demodulate=demodulate,
                                    activation=activation, alpha=alpha, gain=gain, clamp=clamp)
            for i in range(x.shape[0])]).contiguous(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    out_scale = torch.full([weight.shape[0]], float(gain), dtype=styles.dtype)
    if demodulate:
        out_scale = out_scale * demodulation(weight, styles)[0]
    slope = float(alpha) if activation == 'lrelu' else None   # None: linear
    clamp = None if clamp is None else float(clamp)

    if _winograd_pays(x, weight, up, padding):
        out = cpu_kernels.winograd_conv3x3(x, _prepared(weight, 'winograd', torch.float32, flip=not flip_weight),
                                           styles[0], out_scale, noise, float(gain), bias * gain, slope, clamp)
        if out is not None:
            return out

    conv_bias = None
    kernel_scale = None
    scale = None   # per output channel, applied by the epilogue
    packed = x.dtype == torch.bfloat16 and _packing_works()
    if _modulating_activations_is_cheaper(x, weight, up, output_scaling_is_free=packed):
        # Small feature maps, many channels: scale the activations and the output instead
        # of writing a whole modulated kernel (the plain kernel is prepared once).
        x = x * styles.reshape(1, -1, 1, 1).to(x.dtype)
        scale = out_scale
    else:
        kernel_scale = out_scale.reshape(-1, 1) * styles.reshape(1, -1)    # [O, I], folded into the kernel
        if up == 1:   # the convolution adds the bias as it writes: one pass less over the output
            conv_bias = (bias * gain).to(x.dtype)
    epilogue = _Epilogue(scale, noise, float(gain), None if conv_bias is not None else bias * gain, slope, clamp)

    if up == 1 and kernel_scale is not None and _amx_pays(x, weight, padding):
        kernel = _kernel(_prepared(weight, 'conv', torch.float32, flip=not flip_weight), kernel_scale, torch.float32)
        out = cpu_kernels.amx_conv3x3(x, cpu_kernels.amx_kernel(kernel), weight.shape[0], None, noise, float(gain),
                                      conv_bias.float(), slope, clamp)
        if out is not None:
            return out
    if up == 1:
        return _finish_(_conv(x, weight, kernel_scale, up, padding, flip_weight, bias=conv_bias), epilogue)
    crop, filter_padding = _upsampling_plan(weight.shape[-1], up, padding, resample_filter)
    taps = cpu_kernels.separable_taps(resample_filter, gain=up ** 2)
    if _phases_pay(x, weight, kernel_scale, up, crop, taps):
        # The transposed convolution as four ordinary ones, one per output phase, which
        # the filter kernel reads as they are: nothing interleaved, no taps that meet zeros.
        phases = None
        if kernel_scale is None:   # small maps, bfloat16: the four kernels packed once per input size
            packed = _prepared(weight, ('packed_phases', tuple(x.shape)), x.dtype, flip=flip_weight)
            phases = [_packed_conv(x, kernel, pad) for kernel, pad in zip(packed, _PHASE_PADDING)]
        elif _amx_phases_pay(x, weight):   # large maps, narrow bfloat16 layers: all four in one pass
            kernels = _phase_kernels(weight, kernel_scale, flip_weight, torch.float32)
            phases = cpu_kernels.amx_phases(x, cpu_kernels.amx_phase_kernel(kernels), weight.shape[0])
        if phases is None:
            phases = [F.conv2d(x, kernel, padding=pad)
                      for kernel, pad in zip(_phase_kernels(weight, kernel_scale, flip_weight, x.dtype), _PHASE_PADDING)]
        out = cpu_kernels.fir_epilogue_phases(phases, *taps, filter_padding, *epilogue)
        if out is not None:
            return out
    y = _conv(x, weight, kernel_scale, up, padding, flip_weight, crop)
    return _filter_and_finish(y, resample_filter, filter_padding, up, taps, epilogue)


def to_rgb(x, weight, styles, bias, clamp=None):
    """ToRGB's ``clamp(modconv(x) + bias)`` (a 1x1 kernel, no demodulation) of a bfloat16 map, summed
    in float32 on the AMX tiles into a new float32 contiguous [N, O, H, W]: the image's layout and
    format, with no bfloat16 map in between (one pass where the convolution, the clamp's check
    and the cast to float32 were three; 1.9x faster at 1024x512, measured). None where that does
    not apply (float32, no AMX kernel, more than 16 outputs or channels not a multiple of 32)."""
    if (x.dtype != torch.bfloat16 or weight.shape[-2:] != (1, 1) or weight.shape[1] % cpu_kernels.AMX_BLOCK
            or weight.shape[0] > cpu_kernels.AMX_MAX_PROJECTIONS or not cpu_kernels.amx_available()):
        return None
    images = []
    for image, style in zip(x.split(1), styles):
        kernel = weight[:, :, 0, 0].float() * style.float()[None, :]
        rgb = cpu_kernels.amx_project(image.contiguous(memory_format=torch.channels_last),
                                      cpu_kernels.amx_projection(kernel), weight.shape[0], bias, clamp)
        if rgb is None:
            return None
        images.append(rgb)
    return images[0] if len(images) == 1 else torch.cat(images)


def _winograd_pays(x, weight, up, padding):
    """Whether a 3x3 layer without upsampling runs as Winograd F(4x4, 3x3) (float32): where
    ``winograd_conv.pays`` for inference (32 or more channels both sides, 8x4 pixels or more)."""
    return up == 1 and padding == 1 and winograd_conv.pays(x, weight, inference=True) and cpu_kernels.applies(x)


# Largest channel count the AMX kernel takes; from how many pixels it runs (see _amx_pays).
AMX_MAX_CHANNELS = 64
AMX_MIN_PIXELS = 256 * 128


def _amx_pays(x, weight, padding):
    """Whether a bfloat16 3x3 layer with a modulated kernel runs on the AMX kernel, its epilogue
    included: narrow layers on large maps, where oneDNN's tile products wait on their loads."""
    in_channels, out_channels = weight.shape[1], weight.shape[0]
    return (x.dtype == torch.bfloat16 and padding == 1 and weight.shape[-2:] == (3, 3)
            and max(in_channels, out_channels) <= AMX_MAX_CHANNELS and x.shape[2] * x.shape[3] >= AMX_MIN_PIXELS
            and in_channels % cpu_kernels.AMX_BLOCK == 0 and out_channels % cpu_kernels.AMX_BLOCK == 0
            and cpu_kernels.amx_available())


# Largest input channel count for which the AMX kernel computes an upsampling layer's phases.
AMX_PHASES_MAX_CHANNELS = 128


def _amx_phases_pay(x, weight):
    """Whether a bfloat16 upsampling layer's four phase convolutions run as one pass of the AMX
    kernel: up to 128 input channels, where oneDNN's four convolutions (each reading the input)
    take longer (measured: 64 -> 32 channels at 512x256 0.68x the time, 128 -> 64 at 256x128
    0.77x; from 256 channels oneDNN is faster)."""
    in_channels, out_channels = weight.shape[1], weight.shape[0]
    return (x.dtype == torch.bfloat16 and in_channels <= AMX_PHASES_MAX_CHANNELS
            and in_channels % cpu_kernels.AMX_BLOCK == 0 and out_channels % cpu_kernels.AMX_BLOCK == 0
            and cpu_kernels.amx_available())


def _phases_pay(x, weight, kernel_scale, up, crop, taps):
    """Whether the upsampling layer runs as four phase convolutions read by the fused filter
    kernel: StyleGAN2's 3x3 stride-2 case, on the large maps where the kernel is modulated per
    image (measured: 3-19% faster per image in both formats). On small maps four convolutions
    cost more than one, each reordering its weight, unless the weights are packed once
    (bfloat16: 10-20% faster a layer than the tap-scatter product)."""
    packed = kernel_scale is None and x.dtype == torch.bfloat16 and _packing_works()
    return ((kernel_scale is not None or packed) and taps is not None and taps[0].numel() == cpu_kernels.TAPS and up == 2
            and weight.shape[-1] == 3 and crop == [0, 0] and cpu_kernels.applies(x))


class _Epilogue(NamedTuple):
    """What follows the convolution: ``clamp(act(y * scale + noise * noise_gain + bias))``."""
    scale: Optional[torch.Tensor]       # [O] or None
    noise: Optional[torch.Tensor]       # broadcastable to the map, or None
    noise_gain: float
    bias: Optional[torch.Tensor]        # [O] (gain included) or None
    alpha: Optional[float]              # leaky ReLU slope; None: linear
    clamp: Optional[float]


def _finish_(y, epilogue):
    """Applies ``epilogue`` to ``y`` in place: one pass of the fused kernel where it is
    available, else PyTorch's ops one after another."""
    if cpu_kernels.epilogue_(y, *epilogue):
        return y
    if epilogue.scale is not None:
        y.mul_(epilogue.scale.reshape(1, -1, 1, 1).to(y.dtype))
    _add_noise_and_bias(y, epilogue.noise, epilogue.bias, epilogue.noise_gain, bias_has_gain=True)
    if epilogue.alpha is not None:
        F.leaky_relu_(y, epilogue.alpha)
    if epilogue.clamp is not None:
        _clamp_(y, epilogue.clamp)
    return y


def _filter_and_finish(y, resample_filter, filter_padding, up, taps, epilogue):
    """The upsampling layer's filter (gain ``up**2``), then ``epilogue``: both in one pass where
    the fused kernel takes the filter (``taps``: its separable factors, gain included), else
    ``upfirdn2d`` and ``_finish_``."""
    if taps is not None:
        out = cpu_kernels.fir_epilogue(y, *taps, filter_padding, *epilogue)
        if out is not None:
            return out
    y = upfirdn2d.upfirdn2d(y, resample_filter, padding=filter_padding, gain=up ** 2)
    return _finish_(y.contiguous(memory_format=torch.channels_last), epilogue)


def _add_noise_and_bias(y, noise, bias, gain, bias_has_gain=False):
    """``y += gain * (noise + bias)`` in place (either may be None) on one channels-last image;
    ``y += gain * noise + bias`` when ``bias_has_gain``.

    In bfloat16 the CPU's element-wise kernels are slow where an operand repeats along the
    innermost (channel) dimension, as noise does, and each is a pass of its own. Both terms
    are a rank-2 matrix [H*W, 2] @ [2, C] added to the image's [H*W, C] view, which one
    ``addmm_`` does in one pass at a third of the time (float32 gains nothing that way).
    """
    if noise is None and bias is None:
        return
    channels = y.shape[1]
    if y.dtype == torch.bfloat16 and y.shape[0] == 1 and y.is_contiguous(memory_format=torch.channels_last):
        pixels = y.permute(0, 2, 3, 1).view(-1, channels)                   # [H*W, C], the image itself
        columns, rows = [], []
        if noise is not None:
            columns.append(noise.reshape(-1).float())
            rows.append(torch.full([channels], gain))
        if bias is not None:
            columns.append(torch.ones(pixels.shape[0]))
            rows.append(bias.float() * (1.0 if bias_has_gain else gain))
        pixels.addmm_(torch.stack(columns, 1).to(y.dtype), torch.stack(rows).to(y.dtype))
        return
    if noise is not None:
        y.add_(noise.to(y.dtype), alpha=gain)
    if bias is not None:
        y.add_(bias.reshape(1, -1, 1, 1).to(y.dtype), alpha=1.0 if bias_has_gain else gain)


def _clamp_(y, clamp):
    """``y.clamp_(-clamp, clamp)``; in bfloat16, after one read that usually finds nothing to clamp
    (bf16 clamping writes the whole map at twice the time of the read; float32 clamps faster)."""
    if y.dtype == torch.bfloat16 and layout.is_dense(y):
        low, high = torch.aminmax(layout.storage_order_view(y))
        if low >= -clamp and high <= clamp:
            return
    y.clamp_(-clamp, clamp)


def _modulating_activations_is_cheaper(x, weight, up, output_scaling_is_free=False):
    """Elements written: the input and output scaled, against a modulated kernel written.

    ``output_scaling_is_free``: the output is scaled by a pass that runs anyway (the fused
    epilogue) and the fixed kernel is packed once (bfloat16), where a modulated one would be
    reordered by oneDNN on every call; measured, the 1024 model's 64x32 upsampling layer
    then runs 15% faster with its activations scaled."""
    out_elements = 0 if output_scaling_is_free else weight.shape[0] * x.shape[2] * x.shape[3] * up * up
    return x.numel() + out_elements < weight.numel()


def _prepared(weight, kind, dtype=None, flip=False):
    """``weight``'s ``kind`` form: 'weight_sq' (sum of squares over the taps, [O, I], float32),
    'conv' ([O, I, k, k]), 'conv_transposed' ([I, O, k, k]), 'phases' (the four kernels of
    ``_phase_kernels``), 'winograd' (``cpu_kernels.winograd_kernel``, float32), ('packed',
    input shape) ('conv' packed for oneDNN) or ('packed_phases', input shape), taps flipped
    if ``flip``, channels-last in ``dtype``."""
    return derived.derived(weight, (kind, dtype, flip), lambda: _derive(weight, kind, dtype, flip))


def _derive(weight, kind, dtype, flip):
    if kind == 'weight_sq':
        return weight.square().sum(dim=[2, 3])
    if isinstance(kind, tuple) and kind[0] == 'packed':
        kernel = _prepared(weight, 'conv', dtype, flip=flip)
        return _packed_kernel(kernel, kind[1], [kernel.shape[-1] // 2] * 2)
    if isinstance(kind, tuple) and kind[0] == 'packed_phases':
        return [_packed_kernel(kernel, kind[1], pad)
                for kernel, pad in zip(_prepared(weight, 'phases', dtype, flip=flip), _PHASE_PADDING)]
    if kind == 'winograd':
        return cpu_kernels.winograd_kernel(weight.flip([2, 3]) if flip else weight).contiguous()
    if kind == 'phases':
        taps = weight.flip([2, 3]) if flip else weight
        return [taps[:, :, rows][:, :, :, columns].to(dtype=dtype, memory_format=torch.channels_last)
                for rows in _PHASE_TAPS for columns in _PHASE_TAPS]
    value = weight if kind == 'conv' else weight.transpose(0, 1)
    return (value.flip([2, 3]) if flip else value).to(dtype=dtype, memory_format=torch.channels_last)


_packing = None   # whether oneDNN takes weights packed once (checked at first use)


def _packing_works():
    """Whether this torch build convolves with a weight packed once for oneDNN
    (``torch.ops.mkldnn._reorder_convolution_weight``, as torch.compile's CPU code does).
    Used for the fixed bfloat16 kernels of the small maps, where a plain call reorders the
    weight every time: 0.4-0.5 ms of a 0.6-1.1 ms 512-channel convolution. Checked once on a
    small convolution; any failure keeps the plain calls."""
    global _packing
    if _packing is None:
        try:
            x = torch.randn([1, 16, 4, 2]).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            kernel = torch.randn([8, 16, 3, 3]).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            packed = _packed_kernel(kernel, list(x.shape), [1, 1])
            got = _packed_conv(x, packed, [1, 1])
            _packing = bool(torch.allclose(got.float(), F.conv2d(x, kernel, padding=1).float(), rtol=1e-2, atol=1e-2))
        except Exception:   # an older or differently built torch: plain convolutions
            _packing = False
    return _packing


def _packed_kernel(kernel, input_shape, padding):
    return torch.ops.mkldnn._reorder_convolution_weight(kernel, list(padding), [1, 1], [1, 1], 1, list(input_shape))


def _packed_conv(x, packed, padding, bias=None):
    return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, list(padding), [1, 1], [1, 1], 1, 'none', [], '')


# A 3x3 transposed convolution with stride 2 puts tap (a, b) of the kernel at output pixel
# (2i + a, 2j + b) for input pixel (i, j). Output phase (even/odd row, even/odd column) thus
# gets the taps [2, 0] or [1] of each axis, applied as an ordinary convolution (correlation)
# of the input with this padding (rows, columns).
_PHASE_TAPS = ([2, 0], [1])
_PHASE_PADDING = ((1, 1), (1, 0), (0, 1), (0, 0))   # phases 00, 01, 10, 11


def _phase_kernels(weight, kernel_scale, flip_weight, dtype):
    """The four phase convolutions' kernels [O, I, kh, kw] of the upsampling layer's transposed
    convolution (``weight`` [O, I, 3, 3] scaled by ``kernel_scale`` [O, I], None: unscaled)."""
    if kernel_scale is None:
        return _prepared(weight, 'phases', dtype, flip=flip_weight)
    return [_kernel(taps, kernel_scale, dtype) for taps in _prepared(weight, 'phases', torch.float32, flip=flip_weight)]


def _conv(x, weight, kernel_scale, up, padding, flip_weight, crop=None, bias=None):
    """The convolution of the layer, with the kernel scaled by ``kernel_scale`` [O, I] (None: unscaled),
    plus ``bias`` (without upsampling only). With ``up`` > 1, the transposed convolution before
    the resampling filter, cropped by ``crop`` (see ``_upsampling_plan``)."""
    k = weight.shape[-1]
    if up == 1:
        assert padding == k // 2
        if kernel_scale is None:
            if x.dtype == torch.bfloat16 and _packing_works():
                packed = _prepared(weight, ('packed', tuple(x.shape)), x.dtype, flip=not flip_weight)
                return _packed_conv(x, packed, [padding] * 2, bias)
            kernel = _prepared(weight, 'conv', x.dtype, flip=not flip_weight)
        else:
            kernel = _kernel(_prepared(weight, 'conv', torch.float32, flip=not flip_weight), kernel_scale, x.dtype)
        return F.conv2d(x, kernel, bias, padding=padding)
    assert bias is None
    # The transposed convolution wants [I, O, k, k] and applies it as a true convolution.
    if kernel_scale is None:
        kernel = _prepared(weight, 'conv_transposed', x.dtype, flip=flip_weight)
    else:
        kernel = _kernel(_prepared(weight, 'conv_transposed', torch.float32, flip=flip_weight), kernel_scale.t(), x.dtype)
    return _transposed_conv(x, kernel, up, crop)


def _kernel(weight, scale, dtype):
    """``weight * scale[:, :, None, None]`` computed in float32, channels-last in ``dtype``.

    ``weight`` is a float32 channels-last form from ``_prepared``: a product in one layout
    followed by a plain cast is 3x faster than one product writing another layout and dtype."""
    kernel = weight * scale[:, :, None, None]
    return kernel if dtype == torch.float32 else kernel.to(dtype)


def _upsample_conv(x, kernel, up, padding, resample_filter):
    """conv2d_resample(up=up): a strided transposed convolution, then the resampling filter.

    Same steps and padding arithmetic as conv2d_resample; ``kernel`` is already in
    the [in, out, k, k] channels-last layout the CPU transposed convolution is fastest with.
    """
    crop, filter_padding = _upsampling_plan(kernel.shape[-1], up, padding, resample_filter)
    y = _transposed_conv(x, kernel, up, crop)
    y = upfirdn2d.upfirdn2d(y, resample_filter, padding=filter_padding, gain=up ** 2)
    return y.contiguous(memory_format=torch.channels_last)


def _upsampling_plan(k, up, padding, resample_filter):
    """conv2d_resample's padding arithmetic: how much the transposed convolution crops itself
    ([y, x]), and how the resampling filter then pads what it returns ([x0, x1, y0, y1])."""
    fw, fh = _get_filter_size(resample_filter)
    assert (fw, fh) != (1, 1)
    pad_x0 = padding + (fw + up - 1) // 2 - (k - 1)
    pad_x1 = padding + (fw - up) // 2 - (k - up)
    pad_y0 = padding + (fh + up - 1) // 2 - (k - 1)
    pad_y1 = padding + (fh - up) // 2 - (k - up)
    crop_x, crop_y = max(min(-pad_x0, -pad_x1), 0), max(min(-pad_y0, -pad_y1), 0)
    return [crop_y, crop_x], [pad_x0 + crop_x, pad_x1 + crop_x, pad_y0 + crop_y, pad_y1 + crop_y]


def _transposed_conv(x, kernel, up, crop):
    if crop == [0, 0]:
        return transposed_conv.conv_transpose2d(x, kernel, up)
    return F.conv_transpose2d(x, kernel, stride=up, padding=crop)
