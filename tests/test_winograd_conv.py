"""The differentiable Winograd 3x3 convolution (``winograd_conv``) against ``F.conv2d``."""

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import cpu_kernels, derived, ops_mode, winograd_conv

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason='no C compiler for the CPU kernels')


@pytest.fixture
def everywhere(monkeypatch):
    """Winograd at every size (the thresholds are for speed, not correctness)."""
    for name in ('MIN_CHANNELS', 'MIN_PIXELS', 'INFERENCE_MIN_CHANNELS', 'INFERENCE_MIN_PIXELS'):
        monkeypatch.setattr(winograd_conv, name, 1)


def _inputs(batch, in_channels, out_channels, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn([batch, in_channels, height, width], generator=generator)
    kernel = torch.randn([out_channels, in_channels, 3, 3], generator=generator) / (3 * in_channels ** 0.5)
    bias = torch.randn([out_channels], generator=generator)
    grad = torch.randn([batch, out_channels, height, width], generator=generator)
    return x.contiguous(memory_format=torch.channels_last), kernel, bias, grad


def _gradients(conv, x, kernel, bias, grad):
    x, kernel, bias = (t.detach().clone().requires_grad_(True) for t in (x, kernel, bias))
    y = conv(x, kernel, bias)
    return (y.detach(), *torch.autograd.grad(y, [x, kernel, bias], grad))


def _close(got, want, what):
    assert float((got - want).detach().abs().max()) <= 1e-4 * float(want.detach().abs().max()), what


@pytest.mark.parametrize('batch, in_channels, out_channels, height, width',
                         [(1, 16, 24, 8, 12), (2, 20, 16, 9, 7), (3, 5, 7, 4, 4), (1, 32, 32, 1, 2),
                          (2, 16, 32, 41, 38)])   # the kernel gradient in C: tile blocks, a partial one
def test_values_and_every_gradient_equal_the_direct_convolution(everywhere, batch, in_channels, out_channels,
                                                                height, width):
    args = _inputs(batch, in_channels, out_channels, height, width)
    got = _gradients(winograd_conv.conv3x3, *args)
    want = _gradients(lambda x, k, b: F.conv2d(x, k, b, padding=1), *args)
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert got[2].shape == want[2].shape and got[2].is_contiguous(memory_format=torch.channels_last)
    for name, g, w in zip(['output', 'input', 'kernel', 'bias'], got, want):
        _close(g, w, name)


def test_a_frozen_kernel_is_transformed_once_per_version(everywhere):
    x, kernel, _, grad = _inputs(1, 8, 8, 8, 8)
    x.requires_grad_(True)
    y = winograd_conv.conv3x3(x, kernel)
    transforms = derived.derived(kernel, 'winograd', lambda: pytest.fail('not made by the first call'))
    grad_x, = torch.autograd.grad(y, x, grad)
    _close(grad_x, torch.nn.grad.conv2d_input(x.shape, kernel, grad, padding=1), 'input')
    assert winograd_conv.conv3x3(x, kernel) is not None
    assert derived.derived(kernel, 'winograd', lambda: None) is transforms
    with torch.no_grad():
        kernel.mul_(-2)                                 # changed in place: transformed again
    _close(winograd_conv.conv3x3(x, kernel), F.conv2d(x, kernel, padding=1), 'after an in-place change')


def test_a_trainable_kernel_is_transformed_once_where_no_gradient_is_taken(everywhere):
    # Metrics run VGG16 under torch.no_grad with weights that still say requires_grad.
    x, kernel, _, _ = _inputs(1, 8, 8, 8, 8)
    kernel.requires_grad_(True)
    with torch.no_grad():
        y = winograd_conv.conv3x3(x, kernel)
    assert derived.derived(kernel, 'winograd', lambda: None) is not None
    _close(y, F.conv2d(x, kernel, padding=1), 'output')


def test_second_order_gradients_equal_the_direct_convolutions(everywhere):
    x, kernel, bias, grad = _inputs(2, 6, 5, 6, 5)

    def second_order(conv):
        inputs = [t.detach().clone().requires_grad_(True) for t in (x, kernel)]
        first = torch.autograd.grad((conv(*inputs, bias) * grad).sum(), inputs, create_graph=True)
        return torch.autograd.grad(sum(g.square().sum() for g in first), inputs)

    for got, want, name in zip(second_order(winograd_conv.conv3x3),
                               second_order(lambda x, k, b: F.conv2d(x, k, b, padding=1)), ['input', 'kernel']):
        _close(got, want, name)


def test_where_it_does_not_pay_the_direct_convolution_runs():
    x, kernel, bias, _ = _inputs(1, 16, 16, 32, 32)
    assert not winograd_conv.pays(x, kernel, inference=True)            # 16 channels: too few
    assert torch.equal(winograd_conv.conv3x3(x, kernel, bias), F.conv2d(x, kernel, bias, padding=1))
    wide = torch.zeros([1, 128, 32, 16]), torch.zeros([128, 128, 3, 3])
    assert winograd_conv.pays(*wide)
    assert not winograd_conv.pays(wide[0][:, :, :16, :16], wide[1])          # 256 pixels: too few to
    assert winograd_conv.pays(wide[0][:, :, :16, :16], wide[1], inference=True)   # transform each call
    assert winograd_conv.pays(wide[0][:, :64], wide[1][:64, :64])            # 64 channels: both ways
    assert winograd_conv.pays(wide[0][:, :64], wide[1][:64, :64], inference=True)
    assert not winograd_conv.pays(wide[0][:, :32], wide[1][:32, :32])        # 32: in inference only
    assert winograd_conv.pays(wide[0][:, :32], wide[1][:32, :32], inference=True)
    assert not winograd_conv.pays(wide[0].bfloat16(), wide[1].bfloat16())
    assert not winograd_conv.pays(wide[0], torch.zeros([128, 128, 1, 1]))


def test_vgg16_features_run_their_convolutions_as_winograd_in_the_fast_mode(everywhere, monkeypatch):
    from stylegan_human.features.vgg16_nvidia import VGG16Features
    torch.manual_seed(1)
    vgg = VGG16Features().eval().requires_grad_(False)
    image = torch.rand([1, 3, 32, 32]) * 255
    calls = []
    original = winograd_conv._Winograd3x3.apply
    monkeypatch.setattr(winograd_conv._Winograd3x3, 'apply', lambda *a: calls.append(1) or original(*a))
    with ops_mode.fast_ops():
        fast = vgg(image, return_lpips=True)
    assert len(calls) == 13
    with ops_mode.reference_ops():
        reference = vgg(image, return_lpips=True)
    _close(fast, reference, 'LPIPS features')
