"""StyleGAN2's modulated convolution + noise + bias + activation on the CPU, with gradients.

The inference path (``modulated_conv_fast``) writes in place into tensors autograd would
need, so it cannot run when gradients are wanted. PTI, projection, InsetGAN, dragging and
training all want them, and the reference spends about as much time moving memory as
computing there: convolutions on contiguous activations (the CPU kernels run the large
maps at half speed that way), and a new tensor for every step of the epilogue (noise,
bias, activation, gain, clamp), each kept for the backward pass and each costing a pass
over the largest maps there and back.

This path computes the same function with the memory traffic cut down:

- activations stay channels-last;
- on the large maps each image's kernel is modulated (styles, demodulation, activation
  gain) before the convolution, a pass over the small kernel instead of two over the
  activations; on the small maps of many channels the activations are scaled instead
  (upstream's non-fused modulation), which leaves the large kernel alone; so they are
  wherever a 3x3 weight is frozen (projection), where a modulated kernel would make the
  convolution compute its kernel's gradient to reach the styles; the gain g > 0 moves
  in front of the activation (lrelu(x) * g == lrelu(g * x));
- noise, bias, activation and clamp run in place on the convolution's output inside
  one autograd node (``NoiseBiasActClamp``) that keeps only its output, as NVIDIA's CUDA
  kernel does, and computes its gradient from it; demodulation (``Demodulation``) writes
  its weight gradient in one pass.

Used for CPU float32 (or bfloat16 under ``--precision bf16``) work that needs gradients
in the fast ops mode; the reference runs everywhere else.
"""

import torch
import torch.nn.functional as F

from .. import layout
from . import cpu_kernels, modulated_conv_fast, ops_mode, winograd_conv
from .upfirdn2d import _get_filter_size

_ACTIVATIONS = ('lrelu', 'linear')


def applies(x, *tensors, activation='linear'):
    """True when this path may replace the reference for these inputs (gradients needed)."""
    return activation in _ACTIVATIONS and ops_mode.fast_cpu(x) and ops_mode.needs_grad(x, *tensors)


def modulated_conv_bias_act(x, weight, styles, bias, noise=None, up=1, padding=0, resample_filter=None,
                            flip_weight=True, demodulate=True, activation='lrelu', alpha=0.2, gain=1.0,
                            clamp=None):
    """``clamp(act(modconv(x) + noise + bias) * gain)``, differentiable w.r.t. every tensor.

    Arguments as ``modulated_conv_fast.modulated_conv_bias_act``; any batch size. Returns a
    channels-last tensor [N, O, H * up, W * up] of x's dtype. A weight laid out by
    ``lay_out_for_gradients`` saves copies of it on every call when it needs a gradient.
    """
    assert gain > 0
    dtype = x.dtype
    x = x.contiguous(memory_format=torch.channels_last)
    out_scale = torch.full_like(styles[:, :1], float(gain)).expand(-1, weight.shape[0])    # [N, O]
    if demodulate:
        dcoefs, weight_for_conv = Demodulation.apply(weight, styles)
        out_scale = out_scale * dcoefs
        if torch.is_grad_enabled() and weight.requires_grad:   # a frozen weight stays itself: its caches
            weight = weight_for_conv
    bias = (bias * gain).to(dtype)
    # Where the epilogue is one C pass, it adds the bias and its gradient pass sums the bias's
    # gradient as well; elsewhere the convolution adds it for free (after upsampling, the epilogue).
    fused_epilogue = x.shape[0] == 1 and weight.shape[0] >= cpu_kernels.MIN_EPILOGUE_CHANNELS and \
        cpu_kernels.available()
    conv_bias = bias if up == 1 and not fused_epilogue else None
    weight_needs_grad = torch.is_grad_enabled() and weight.requires_grad
    styles_need_grad = torch.is_grad_enabled() and styles.requires_grad

    if modulated_conv_fast._modulating_activations_is_cheaper(x, weight, up) or (
            styles_need_grad and not weight_needs_grad and _kernel_gradient_outweighs_scaling(weight, up)):
        # Small maps, many channels: scale the activations in and out, one shared kernel.
        # Also for a frozen 3x3 weight (projection, dragging, InsetGAN): through a modulated
        # kernel the styles' gradient would cost the kernel's, a third convolution; this way
        # the convolution computes its input gradient only, and the styles' gradient costs
        # a few passes over the maps.
        kernel = _oriented(weight, up, flip_weight) if weight_needs_grad else _cached(weight, up, flip_weight)
        y = _conv(x * styles.to(dtype)[:, :, None, None], kernel.to(dtype), None, up, padding, resample_filter)
        y = y * out_scale.to(dtype)[:, :, None, None]
        conv_bias = None
    else:
        # Large maps: one modulated kernel per image. A weight that needs a gradient is scaled in
        # its own layout and then oriented, so that its gradient comes back in that layout.
        scales = out_scale[:, :, None] * styles[:, None, :]                               # [N, O, I]
        images = []
        # x itself for one image: a slice's gradient would come back contiguous, and so would
        # every gradient below it.
        for image, scale in zip([x] if x.shape[0] == 1 else x.split(1), scales):
            if weight_needs_grad:
                kernel = _oriented(weight * scale[:, :, None, None], up, flip_weight)
            else:
                kernel = _cached(weight, up, flip_weight) * (scale if up == 1 else scale.t())[:, :, None, None]
            images.append(_conv(image, kernel.to(dtype), conv_bias, up, padding, resample_filter))
        y = images[0] if len(images) == 1 else torch.cat(images)
    noise = None if noise is None else (noise * gain).to(dtype)
    return NoiseBiasActClamp.apply(y, None if conv_bias is not None else bias, noise, activation, float(alpha),
                                   None if clamp is None else float(clamp))


def _kernel_gradient_outweighs_scaling(weight, up):
    """Per input pixel: the kernel gradient's multiply-adds against the elements that scaling the
    activations passes over (input and output), a hundred multiply-adds each. Measured with a
    frozen weight (layer forward + backward, the two ways alternated): scaling is 1.24x-1.47x
    faster for StyleGAN2's layers of 64 to 256 channels, even at 32 (the 1024 model's top,
    either way); toRGB's 1x1 kernel gradient is cheaper than any pass."""
    out_channels, in_channels = weight.shape[:2]
    return weight[0].numel() * out_channels > 100 * (in_channels + out_channels * up * up)


def lay_out_for_gradients(module: torch.nn.Module) -> torch.nn.Module:
    """Lays ``module``'s convolution weights out in memory as this path reads them, in place.

    Channels-last, and for upsampling layers channels-last as [I, O, k, k] (the transposed
    convolution's orientation): then neither the forward pass's orientation nor the
    accumulation of the weight's gradient copies the weight. Values are unchanged.
    """
    module.to(memory_format=torch.channels_last)
    for layer in module.modules():
        weight = getattr(layer, 'weight', None)
        if getattr(layer, 'up', 1) != 1 and isinstance(weight, torch.Tensor) and weight.ndim == 4:
            weight.data = weight.data.transpose(0, 1).contiguous(memory_format=torch.channels_last).transpose(0, 1)
    return module


def _oriented(kernel, up, flip_weight):
    """An [O, I, k, k] kernel (float32, channels-last) in the orientation the convolution runs:
    as it is to correlate, [I, O, k, k] for the transposed convolution; taps flipped as asked."""
    if up != 1:
        kernel = kernel.transpose(0, 1)
    if flip_weight != (up == 1):
        kernel = kernel.flip([2, 3])
    return kernel.float().contiguous(memory_format=torch.channels_last)


def _cached(weight, up, flip_weight):
    """``_oriented(weight)`` for a weight that needs no gradient, made once per weight version."""
    kind, flip = ('conv', not flip_weight) if up == 1 else ('conv_transposed', flip_weight)
    return modulated_conv_fast._prepared(weight, kind, torch.float32, flip=flip)


class Demodulation(torch.autograd.Function):
    """``1 / ||weight * styles[n]||`` per image and output channel [N, O], and the weight again,
    for the layer to convolve with. The gradient that comes back through that second output
    gets the demodulation's weight gradient added in one pass: autograd would write that
    gradient on its own and then add the two, two more passes over the weight per step."""

    @staticmethod
    def forward(ctx, weight, styles):
        # A weight that is not being optimised (projection, dragging) is summed once per version.
        weight_sq = _tap_square_sum(weight) if weight.requires_grad else \
            modulated_conv_fast._prepared(weight, 'weight_sq')                           # [O, I]
        dcoefs = (styles.square() @ weight_sq.t() + 1e-8).rsqrt()                        # [N, O]
        ctx.save_for_backward(weight, styles, weight_sq, dcoefs)
        ctx.set_materialize_grads(False)
        return dcoefs, weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad, grad_through_weight):
        weight, styles, weight_sq, dcoefs = ctx.saved_tensors
        if torch.is_grad_enabled():   # a second-order gradient: weight_sq must carry its dependence on weight
            weight_sq = _tap_square_sum(weight)
        if grad is None:   # only the weight's own gradient came back
            return grad_through_weight, None
        # d = (sum_i s_i^2 q_oi + eps)^(-1/2): dd/dq_oi = -d^3 s_i^2 / 2, dd/ds_i = -d^3 s_i q_oi.
        grad_sum = grad * dcoefs.pow(3) * -0.5                                             # [N, O]
        grad_weight = grad_styles = None
        if ctx.needs_input_grad[0]:
            coefficient = (2 * (grad_sum.t() @ styles.square()))[:, :, None, None]       # [O, I, 1, 1]
            grad_weight = weight * coefficient if grad_through_weight is None else \
                torch.addcmul(grad_through_weight, weight, coefficient)
        if ctx.needs_input_grad[1]:
            grad_styles = 2 * styles * (grad_sum @ weight_sq)
        return grad_weight, grad_styles


def _tap_square_sum(weight):
    """``weight.square().sum(dim=[2, 3])`` [O, I], reduced in the order the weight lies in memory
    (a channels-last [I, O, k, k] weight summed across its strides takes six times as long);
    in one C pass where no graph is recorded (PyTorch's square and sum take two)."""
    if not torch.is_grad_enabled():
        sums = cpu_kernels.tap_square_sum(weight)
        if sums is not None:
            return sums
    memory_order = sorted(range(4), key=lambda dim: -weight.stride(dim))   # stable: size-1 dims keep their place
    sums = weight.permute(memory_order).square().sum(dim=[memory_order.index(2), memory_order.index(3)])
    return sums if memory_order.index(0) < memory_order.index(1) else sums.t()


def _conv(x, kernel, bias, up, padding, resample_filter):
    """The layer's convolution with an oriented kernel (differentiable w.r.t. input, kernel and bias)."""
    if up == 1 and kernel.shape[2:] == (1, 1):
        # A product over channels. As a convolution (few output channels: toRGB) the CPU takes a
        # slow path whose gradient comes back contiguous, and every layer below would follow it.
        pixels = x.permute(0, 2, 3, 1)                                    # [N, H, W, I], no copy
        matrix = kernel[:, :, 0, 0].t()
        y = pixels @ matrix if bias is None else torch.addmm(
            bias, pixels.reshape(-1, pixels.shape[-1]), matrix).reshape(*pixels.shape[:3], -1)
        return y.permute(0, 3, 1, 2)                                      # [N, O, H, W], channels-last
    if up == 1:
        return winograd_conv.conv3x3(x, kernel, bias) if padding == 1 else F.conv2d(x, kernel, bias, padding=padding)
    assert bias is None and _get_filter_size(resample_filter) != (1, 1)
    return modulated_conv_fast._upsample_conv(x, kernel, up, padding, resample_filter)


class NoiseBiasActClamp(torch.autograd.Function):
    """``clamp(act(y + bias + noise), -clamp, clamp)`` for lrelu/linear, in place on ``y``.

    ``y`` must be a tensor nothing else keeps (a convolution's fresh output); only the
    result is kept for the gradient: zero where the clamp cut (the reference's clamp
    passes nothing there either), 1 where the result is positive, ``alpha`` elsewhere.
    """

    @staticmethod
    def forward(ctx, y, bias, noise, activation, alpha, clamp):
        slope = alpha if activation == 'lrelu' else None
        # One pass where the C kernel runs; then the backward masks the clamp wherever it is
        # set, which the C gradient does within its own single pass.
        if not cpu_kernels.epilogue_(y.detach(), None, noise, 1.0, bias, slope, clamp):
            modulated_conv_fast._add_noise_and_bias(y, noise, bias, 1.0)
            if slope is not None:
                F.leaky_relu_(y, slope)
            if clamp is not None:
                # Usually nothing reaches the clamp: one read here then saves a pass in the backward.
                low, high = torch.aminmax(layout.storage_order_view(y))   # aminmax(y) would copy it first
                if high > clamp or low < -clamp:
                    y.clamp_(-clamp, clamp)
                else:
                    clamp = None
        ctx.mark_dirty(y)
        ctx.save_for_backward(y)
        ctx.settings = (activation, alpha, clamp, None if noise is None else noise.shape)
        return y

    @staticmethod
    def backward(ctx, grad):
        # Detached: the masks below have zero derivative, and a second-order gradient (path
        # length regularisation) then reaches bias and noise as None, as with NVIDIA's kernel.
        out = ctx.saved_tensors[0].detach()
        activation, alpha, clamp, noise_shape = ctx.settings
        # The image's gradient arrives contiguous; channels-last from here on keeps every
        # convolution's backward pass (and the ones below) in the layout they run fastest in.
        grad = grad.contiguous(memory_format=torch.channels_last)
        needs_bias, needs_noise = ctx.needs_input_grad[1:3]
        fused = None if torch.is_grad_enabled() else cpu_kernels.act_backward(
            grad, out, alpha if activation == 'lrelu' else None, clamp, needs_bias, needs_noise)
        if fused is not None:   # one pass over the maps
            grad, grad_bias, grad_noise = fused
            return grad, grad_bias, None if grad_noise is None else grad_noise.sum_to_size(noise_shape), \
                None, None, None
        if clamp is not None:
            grad = torch.ops.aten.hardtanh_backward(grad, out, -clamp, clamp)
        if activation == 'lrelu':
            grad = torch.ops.aten.leaky_relu_backward(grad, out, alpha, True)
        grad_bias = grad.sum(dim=[0, 2, 3]) if needs_bias else None
        grad_noise = grad.sum_to_size(noise_shape) if needs_noise else None
        return grad, grad_bias, grad_noise, None, None, None
