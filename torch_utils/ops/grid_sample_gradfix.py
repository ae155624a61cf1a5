"""Drop-in ``grid_sample`` (bilinear, zero padding, align_corners=False).

By default a plain ``torch.nn.functional.grid_sample`` call. With
``enabled = True`` (set by NVIDIA's training loop) a custom autograd function is
used whose backward can itself be differentiated with respect to the output
gradient, to any order; the augmentation pipeline needs this for the R1 penalty.
Second-order gradients with respect to the grid are not supported (as upstream).
"""

import torch

# pylint: disable=redefined-builtin,arguments-differ

enabled = False  # Use the custom op? (set by the training loop)


def grid_sample(input, grid):
    if _should_use_custom_op():
        return _GridSample2dForward.apply(input, grid)
    return torch.nn.functional.grid_sample(input=input, grid=grid, mode='bilinear', padding_mode='zeros',
                                           align_corners=False)


def _should_use_custom_op():
    return bool(enabled)


class _GridSample2dForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, grid):
        assert input.ndim == 4
        assert grid.ndim == 4
        ctx.save_for_backward(input, grid)
        return torch.nn.functional.grid_sample(input=input, grid=grid, mode='bilinear', padding_mode='zeros',
                                               align_corners=False)

    @staticmethod
    def backward(ctx, grad_output):
        input, grid = ctx.saved_tensors
        grad_input, grad_grid = _GridSample2dBackward.apply(grad_output, input, grid)
        return grad_input, grad_grid


class _GridSample2dBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_output, input, grid):
        # interpolation 0 = bilinear, padding 0 = zeros, align_corners False.
        mask = (ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        grad_input, grad_grid = torch.ops.aten.grid_sampler_2d_backward(grad_output, input, grid, 0, 0, False, mask)
        ctx.save_for_backward(grid)
        return grad_input, grad_grid

    @staticmethod
    def backward(ctx, grad2_grad_input, grad2_grad_grid):
        _ = grad2_grad_grid  # Second order through the grid is not supported.
        grid, = ctx.saved_tensors
        grad2_grad_output = None
        # grad_input is linear in grad_output (the adjoint of sampling), so its
        # derivative with respect to grad_output is sampling again.
        if ctx.needs_input_grad[0]:
            grad2_grad_output = _GridSample2dForward.apply(grad2_grad_input, grid)
        assert not ctx.needs_input_grad[2]
        return grad2_grad_output, None, None
