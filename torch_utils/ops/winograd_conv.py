"""A differentiable 3x3 convolution (padding 1) as Winograd F(4x4, 3x3), for float32 on the CPU.

Gradient steps (PTI's tuning and projection, InsetGAN, training) spend most of their time in
the wide 3x3 convolutions, forward and back. In the Winograd domain each of the three
products is 36 matrix products with 4x less arithmetic than the direct convolution:

- forward: y = output_transform(tiles(x) @ U), U the kernel's transform;
- input gradient: the same with the output gradient and the transform of the kernel with
  its taps reversed and its channel axes swapped;
- kernel gradient: tiles(x)^T @ adjoint(dy), carried back through the kernel transform.

The tile transforms are ``cpu_kernels``' C kernels; the products run there too, fused with
the transforms, up to 128 channels, the kernel gradient's included (``torch.bmm`` for wider layers). A second-order
gradient (training's regularisers) goes through PyTorch's differentiable convolution gradients.
"""

from typing import Optional

import torch
import torch.nn.functional as F
import torch.nn.grad

from . import cpu_kernels, derived

# Where Winograd pays, measured per layer against the direct convolution (2 threads, AVX-512):
# - in gradient steps (forward + backward, the kernel transformed on every call) from 64
#   channels either side and 32x16 pixels: 64 channels at 512x256 forward + both gradients
#   82 ms against 128 (the transforms and products fused, ``cpu_kernels``); at 32 channels
#   the kernel gradient loses what the other two gain;
# - in inference (the kernel transformed once) from 32 channels and 8x4 pixels: the 1024
#   model's 32-channel top layer 1.3x (6% of the whole image), 64 channels 1.9x, 128 and more
#   1.8x-3x.
MIN_CHANNELS, MIN_PIXELS = 64, 512
INFERENCE_MIN_CHANNELS, INFERENCE_MIN_PIXELS = 32, 32


def pays(x: torch.Tensor, kernel: torch.Tensor, inference: bool = False) -> bool:
    """Whether a 3x3 convolution (padding 1) of ``x`` with ``kernel`` runs as Winograd; ``inference``:
    without gradients, the kernel's transform made once."""
    channels, pixels = (INFERENCE_MIN_CHANNELS, INFERENCE_MIN_PIXELS) if inference else (MIN_CHANNELS, MIN_PIXELS)
    return (x.device.type == 'cpu' and x.dtype == kernel.dtype == torch.float32 and x.ndim == 4
            and tuple(kernel.shape[2:]) == (3, 3) and kernel.shape[1] == x.shape[1]
            and min(kernel.shape[:2]) >= channels and x.shape[2] * x.shape[3] >= pixels
            and cpu_kernels.available())


def conv3x3(x: torch.Tensor, kernel: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.conv2d(x, kernel, bias, padding=1)``, differentiable w.r.t. all three.

    As Winograd where that pays (``pays``), channels-last; a kernel that needs no gradient here
    (frozen, or under ``torch.no_grad``) has its transforms made once per version of it.
    Elsewhere ``F.conv2d``."""
    kernel_needs_grad = torch.is_grad_enabled() and kernel.requires_grad
    if not pays(x, kernel, inference=not (kernel_needs_grad or (torch.is_grad_enabled() and x.requires_grad))):
        return F.conv2d(x, kernel, bias, padding=1)
    transforms = None if kernel_needs_grad else derived.derived(kernel, 'winograd', lambda: _transforms(kernel))
    return _Winograd3x3.apply(x, kernel, bias, transforms)


def _transforms(kernel):
    """The kernel's transforms for the forward pass and for the input's gradient, contiguous."""
    return (cpu_kernels.winograd_kernel(kernel).contiguous(),
            cpu_kernels.winograd_kernel_for_input_gradient(kernel).contiguous())


def _per_image(function, *maps):
    """``function`` of each image's slice of ``maps`` (the C kernels take one image at a time)."""
    if maps[0].shape[0] == 1:
        return function(*maps)
    return torch.cat([function(*images) for images in zip(*(m.split(1) for m in maps))])


class _Winograd3x3(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, kernel, bias, transforms):
        ctx.save_for_backward(x, kernel)
        ctx.transforms = transforms
        x = x.detach().contiguous(memory_format=torch.channels_last)
        forward = transforms[0] if transforms else cpu_kernels.winograd_kernel(kernel.detach())
        values = None if bias is None else bias.detach()
        y = _per_image(lambda image: cpu_kernels.winograd_conv3x3(image, forward, None, None, None, 1.0, values,
                                                                  None, None), x)
        return y.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad):
        x, kernel = ctx.saved_tensors
        needs_x, needs_kernel, needs_bias = ctx.needs_input_grad[:3]
        grad_x = grad_kernel = None
        if torch.is_grad_enabled():
            # A second-order gradient (training's regularisers): differentiable ops on the saved
            # tensors, which carry their graph here.
            if needs_x:
                grad_x = torch.nn.grad.conv2d_input(x.shape, kernel, grad, padding=1)
            if needs_kernel:
                grad_kernel = torch.nn.grad.conv2d_weight(x, kernel.shape, grad, padding=1)
        else:
            x = x.detach().contiguous(memory_format=torch.channels_last)
            grad = grad.contiguous(memory_format=torch.channels_last)
            if needs_x:
                back = ctx.transforms[1] if ctx.transforms else \
                    cpu_kernels.winograd_kernel_for_input_gradient(kernel.detach())
                grad_x = _per_image(lambda g: cpu_kernels.winograd_conv3x3(g, back, None, None, None, 1.0, None,
                                                                           None, None), grad)
            if needs_kernel:
                # The kernel transform's gradient [36, O, I], summed over images: in C where the
                # fused products run, else the transforms written out and torch.bmm between them.
                products = cpu_kernels.winograd_transform_gradient(x, grad)
                if products is None:
                    products = _transform_gradient_by_bmm(x, grad)
                grad_kernel = cpu_kernels.winograd_kernel_gradient(products)
        grad_bias = grad.sum(dim=[0, 2, 3]) if needs_bias else None
        return grad_x, grad_kernel, grad_bias, None


def _transform_gradient_by_bmm(x, grad):
    """``cpu_kernels.winograd_transform_gradient`` with both transforms written out whole and
    ``torch.bmm`` between them (wide layers)."""
    products = None
    for image, g in zip(x.split(1), grad.split(1)):
        adjoint = cpu_kernels.winograd_output_adjoint(g).transpose(1, 2)
        if products is None:
            products = torch.bmm(adjoint, cpu_kernels.winograd_tiles(image))
        else:
            products.baddbmm_(adjoint, cpu_kernels.winograd_tiles(image))
    return products
