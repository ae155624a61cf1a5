"""The strided transposed convolution of StyleGAN2's upsampling layers, as a matrix product.

A transposed convolution multiplies every input pixel by every kernel tap and adds
each product into the output at ``stride * pixel + tap``. On low-resolution maps
with many channels the CPU's transposed convolution runs far below its matrix-product
speed (bfloat16 at a fifth of a plain convolution's rate here), while one product
``pixels [N*H*W, I] @ kernel [I, k*k*O]`` runs at full speed and leaves a scatter of
k*k strided additions over a small output. On large maps with few channels the
scatter's memory traffic costs more than the product saves, so there the CPU's own
convolution stays: ``conv_transpose2d`` picks, by the input's channel count.
"""

import torch
import torch.nn.functional as F

# Input channels from which the product and scatter beat the CPU's transposed convolution
# (measured on 512x256 to 1024x512 StyleGAN2 layers, AVX-512/AMX, 2 threads).
_MIN_CHANNELS = {torch.bfloat16: 256, torch.float32: 512}


def conv_transpose2d(x: torch.Tensor, kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """``F.conv_transpose2d(x, kernel, stride=stride)`` (no padding), differentiable; ``kernel``
    [I, O, k, k]. Channels-last input and kernel avoid copies; the result is channels-last."""
    if x.device.type == 'cpu' and x.shape[1] >= _MIN_CHANNELS.get(x.dtype, float('inf')):
        return TapScatter.apply(x, kernel, stride)
    return F.conv_transpose2d(x, kernel, stride=stride)


def _pixels(x):
    """[N, C, H, W] -> [N*H*W, C] (a view for channels-last x)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _tap_matrix(kernel):
    """[I, O, k, k] -> [I, k*k*O], taps outer, output channels inner (a view for a channels-last kernel)."""
    return kernel.permute(0, 2, 3, 1).reshape(kernel.shape[0], -1)


def _tap_slices(stride, k, height, width):
    """For each tap (ky, kx): the output rows and columns its products land in."""
    return [(ky, kx, slice(ky, ky + stride * height, stride), slice(kx, kx + stride * width, stride))
            for ky in range(k) for kx in range(k)]


class TapScatter(torch.autograd.Function):
    """The transposed convolution as ``taps = pixels @ kernel`` and a scatter-add of the taps."""

    @staticmethod
    def forward(ctx, x, kernel, stride):
        n, _, height, width = x.shape
        out_channels, k = kernel.shape[1], kernel.shape[-1]
        taps = (_pixels(x) @ _tap_matrix(kernel.to(x.dtype))).view(n, height, width, k, k, out_channels)
        out = x.new_empty(n, stride * (height - 1) + k, stride * (width - 1) + k, out_channels)
        # The taps (ky, kx) < stride land on every output pixel above and left of
        # (stride * height, stride * width) exactly once: they are written, not added to zeros.
        writes = k >= stride
        if writes:
            out[:, stride * height:].zero_()
            out[:, :stride * height, stride * width:].zero_()
        else:
            out.zero_()
        for ky, kx, rows, cols in _tap_slices(stride, k, height, width):
            if writes and ky < stride and kx < stride:
                out[:, rows, cols].copy_(taps[:, :, :, ky, kx])
            else:
                out[:, rows, cols].add_(taps[:, :, :, ky, kx])
        ctx.save_for_backward(x, kernel)
        ctx.stride = stride
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        x, kernel = ctx.saved_tensors
        n, in_channels, height, width = x.shape
        out_channels, k = kernel.shape[1], kernel.shape[-1]
        grad_pixels = grad.permute(0, 2, 3, 1)                                      # [N, Ho, Wo, O]
        # Each tap's products went to one strided window of the output: gather the windows back.
        grad_taps = grad.new_empty(n, height, width, k, k, out_channels)
        for ky, kx, rows, cols in _tap_slices(ctx.stride, k, height, width):
            grad_taps[:, :, :, ky, kx] = grad_pixels[:, rows, cols]
        grad_taps = grad_taps.view(-1, k * k * out_channels)
        grad_x = grad_kernel = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad_taps @ _tap_matrix(kernel.to(grad.dtype)).t()).view(n, height, width, in_channels)
            grad_x = grad_x.permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            grad_kernel = (_pixels(x).t() @ grad_taps.to(x.dtype)).view(in_channels, k, k, out_channels)
            grad_kernel = grad_kernel.permute(0, 3, 1, 2).to(kernel.dtype)
        return grad_x, grad_kernel, None
