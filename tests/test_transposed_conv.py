"""The upsampling layers' transposed convolution as a matrix product and a scatter of its taps,
against PyTorch's own: values and gradients, float32 and bfloat16, and which one runs where."""

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import transposed_conv

CL = torch.channels_last


def _inputs(in_channels, out_channels, height, width, dtype=torch.float32, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, in_channels, height, width, generator=g).to(dtype).contiguous(memory_format=CL)
    kernel = (torch.randn(in_channels, out_channels, k, k, generator=g) / (k * in_channels ** 0.5))
    return x.requires_grad_(True), kernel.to(dtype).contiguous(memory_format=CL).requires_grad_(True)


@pytest.mark.parametrize('k, stride', [(3, 2), (4, 2), (3, 1), (1, 2)])   # (1, 2): taps leave gaps
def test_values_and_gradients_equal_pytorch(k, stride):
    x, kernel = _inputs(6, 5, 4, 3, k=k)
    ours = transposed_conv.TapScatter.apply(x, kernel, stride)
    reference = F.conv_transpose2d(x, kernel, stride=stride)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert ours.is_contiguous(memory_format=CL)
    weights = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    ours_grads = torch.autograd.grad((ours * weights).sum(), (x, kernel))
    reference_grads = torch.autograd.grad((reference * weights).sum(), (x, kernel))
    for a, b in zip(ours_grads, reference_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_double_precision_gradcheck():
    x = torch.randn(1, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: transposed_conv.TapScatter.apply(a, b, 2), (x, kernel))


def test_bfloat16_stays_within_its_rounding():
    x, kernel = _inputs(64, 8, 6, 4, dtype=torch.bfloat16)
    ours = transposed_conv.TapScatter.apply(x, kernel, 2).float()
    exact = F.conv_transpose2d(x.float(), kernel.float(), stride=2)
    assert float((ours - exact).abs().max() / exact.abs().max()) < 2e-2
    assert transposed_conv.TapScatter.apply(x, kernel, 2).dtype == torch.bfloat16


@pytest.mark.parametrize('dtype, channels, expected', [
    (torch.float32, 512, True), (torch.float32, 256, False),
    (torch.bfloat16, 256, True), (torch.bfloat16, 128, False), (torch.float64, 1024, False)])
def test_the_product_runs_only_where_it_pays(monkeypatch, dtype, channels, expected):
    used = []
    original = transposed_conv.TapScatter.apply
    monkeypatch.setattr(transposed_conv.TapScatter, 'apply', lambda *args: used.append(1) or original(*args))
    x, kernel = _inputs(channels, 2, 2, 2, dtype=dtype)
    with torch.no_grad():
        out = transposed_conv.conv_transpose2d(x, kernel, 2)
        reference = F.conv_transpose2d(x, kernel, stride=2)
    assert bool(used) == expected
    torch.testing.assert_close(out.float(), reference.float(), rtol=2e-2, atol=2e-2)


@pytest.fixture
def tap_scatter_calls(monkeypatch):
    used = []
    original = transposed_conv.TapScatter.apply
    monkeypatch.setattr(transposed_conv.TapScatter, 'apply', lambda *args: used.append(1) or original(*args))
    return used


@pytest.mark.parametrize('needs_grad', [False, True])   # generation; PTI and training
def test_a_wide_upsampling_layer_equals_the_reference_ops(tap_scatter_calls, needs_grad):
    from torch_utils.ops.ops_mode import fast_ops, reference_ops
    from training import networks_stylegan2
    torch.manual_seed(5)
    layer = networks_stylegan2.SynthesisLayer(512, 6, w_dim=5, resolution=8, up=2, conv_clamp=256)
    layer.requires_grad_(needs_grad)
    x, w = torch.randn(1, 512, 4, 2), torch.randn(1, 5)

    def run():
        layer.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        out = layer(x, w, noise_mode='const')
        if needs_grad:
            (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        return out.detach(), layer.weight.grad
    with fast_ops():
        fast, fast_grad = run()
    assert tap_scatter_calls
    with reference_ops():
        reference, reference_grad = run()
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)
    if needs_grad:
        torch.testing.assert_close(fast_grad, reference_grad, rtol=1e-4, atol=1e-5)
