"""Drop-in ``conv2d`` / ``conv_transpose2d`` with gradients of any order.

By default both functions are plain ``torch.nn.functional`` calls. Setting
``enabled = True`` (NVIDIA's training loop does) routes them through a custom
autograd function whose backward is again made of convolutions, so it can be
differentiated any number of times, and which skips the weight gradient inside
``no_weight_gradients()`` (used by the path-length regularizer, which only
needs gradients with respect to the input). Pure PyTorch; runs on any device.
"""

import contextlib

import torch

# pylint: disable=redefined-builtin,arguments-differ

enabled = False                    # Use the custom op? (set by the training loop)
weight_gradients_disabled = False  # Read at backward time, set by no_weight_gradients().


@contextlib.contextmanager
def no_weight_gradients(disable=True):
    """Inside the block, backward passes through the custom op return no weight gradient."""
    global weight_gradients_disabled
    old = weight_gradients_disabled
    if disable:
        weight_gradients_disabled = True
    try:
        yield
    finally:
        weight_gradients_disabled = old


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if _should_use_custom_op(input):
        op = _conv2d_gradfix(transpose=False, weight_shape=weight.shape, stride=stride, padding=padding,
                             output_padding=0, dilation=dilation, groups=groups)
        return op.apply(input, weight, bias)
    return torch.nn.functional.conv2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding,
                                      dilation=dilation, groups=groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    if _should_use_custom_op(input):
        op = _conv2d_gradfix(transpose=True, weight_shape=weight.shape, stride=stride, padding=padding,
                             output_padding=output_padding, dilation=dilation, groups=groups)
        return op.apply(input, weight, bias)
    return torch.nn.functional.conv_transpose2d(input=input, weight=weight, bias=bias, stride=stride, padding=padding,
                                                output_padding=output_padding, groups=groups, dilation=dilation)


def _should_use_custom_op(input):
    assert isinstance(input, torch.Tensor)
    return bool(enabled)


def _tuple_of_ints(xs, ndim):
    xs = tuple(xs) if isinstance(xs, (tuple, list)) else (xs,) * ndim
    assert len(xs) == ndim
    assert all(isinstance(x, int) for x in xs)
    return xs


# One autograd.Function class per configuration; the configuration is closed over.
_conv2d_gradfix_cache = dict()


def _conv2d_gradfix(transpose, weight_shape, stride, padding, output_padding, dilation, groups):
    ndim = 2
    weight_shape = tuple(weight_shape)
    stride = _tuple_of_ints(stride, ndim)
    padding = _tuple_of_ints(padding, ndim)
    output_padding = _tuple_of_ints(output_padding, ndim)
    dilation = _tuple_of_ints(dilation, ndim)

    key = (transpose, weight_shape, stride, padding, output_padding, dilation, groups)
    if key in _conv2d_gradfix_cache:
        return _conv2d_gradfix_cache[key]

    assert groups >= 1
    assert len(weight_shape) == ndim + 2
    assert all(s >= 1 for s in stride)
    assert all(p >= 0 for p in padding)
    assert all(d >= 0 for d in dilation)
    if transpose:
        assert all(0 <= output_padding[i] < max(stride[i], dilation[i]) for i in range(ndim))
    else:
        assert all(op == 0 for op in output_padding)

    common = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def input_grad_output_padding(input_shape, output_shape):
        # The input gradient of a strided conv2d is a conv_transpose2d whose
        # output size is ambiguous; output_padding picks the original input size.
        if transpose:
            return (0, 0)
        return tuple(input_shape[i + 2] - (output_shape[i + 2] - 1) * stride[i] + 2 * padding[i]
                     - dilation[i] * (weight_shape[i + 2] - 1) - 1 for i in range(ndim))

    class Conv2d(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, weight, bias):
            assert weight.shape == weight_shape
            ctx.save_for_backward(input, weight)
            ctx.input_shape = input.shape
            if transpose:
                return torch.nn.functional.conv_transpose2d(input=input, weight=weight, bias=bias,
                                                            output_padding=output_padding, **common)
            return torch.nn.functional.conv2d(input=input, weight=weight, bias=bias, **common)

        @staticmethod
        def backward(ctx, grad_output):
            input, weight = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None

            if ctx.needs_input_grad[0]:
                p = input_grad_output_padding(ctx.input_shape, grad_output.shape)
                op = _conv2d_gradfix(transpose=(not transpose), weight_shape=weight_shape, output_padding=p, **common)
                grad_input = op.apply(grad_output, weight, None)
                assert grad_input.shape == ctx.input_shape

            if ctx.needs_input_grad[1] and not weight_gradients_disabled:
                grad_weight = Conv2dGradWeight.apply(grad_output, input)
                assert grad_weight.shape == weight_shape

            if ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum([0, 2, 3])

            return grad_input, grad_weight, grad_bias

    class Conv2dGradWeight(torch.autograd.Function):
        # Weight gradient as its own function so that it, too, has a backward.
        @staticmethod
        def forward(ctx, grad_output, input):
            ctx.save_for_backward(grad_output, input)
            ctx.grad_output_shape = grad_output.shape
            ctx.input_shape = input.shape
            # For a transposed conv the roles swap: the "input" of the equivalent
            # plain conv is grad_output, and its "output gradient" is input.
            conv_in, conv_gout = (grad_output, input) if transpose else (input, grad_output)
            dummy = conv_gout.new_empty(1).expand(weight_shape)
            return torch.ops.aten.convolution_backward(
                conv_gout, conv_in, dummy, None, list(stride), list(padding), list(dilation),
                False, [0, 0], groups, [False, True, False])[1]

        @staticmethod
        def backward(ctx, grad2_grad_weight):
            grad_output, input = ctx.saved_tensors
            grad2_grad_output = grad2_input = None

            # grad_weight is bilinear in (grad_output, input): each partial
            # derivative is a convolution with grad2_grad_weight as the weight.
            if ctx.needs_input_grad[0]:
                grad2_grad_output = Conv2d.apply(input, grad2_grad_weight, None)
                assert grad2_grad_output.shape == ctx.grad_output_shape

            if ctx.needs_input_grad[1]:
                p = input_grad_output_padding(ctx.input_shape, ctx.grad_output_shape)
                op = _conv2d_gradfix(transpose=(not transpose), weight_shape=weight_shape, output_padding=p, **common)
                grad2_input = op.apply(grad_output, grad2_grad_weight, None)
                assert grad2_input.shape == ctx.input_shape

            return grad2_grad_output, grad2_input

    _conv2d_gradfix_cache[key] = Conv2d
    return Conv2d
