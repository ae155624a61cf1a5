"""StyleGAN2's fused CPU path with gradients (PTI, projection, InsetGAN, dragging, training)
against the reference ops: the values, every gradient, second-order gradients, bf16."""

import pytest
import torch

from test_fast_stylegan2 import _generator
from torch_utils import precision
from torch_utils.ops import cpu_kernels, modulated_conv_grad, winograd_conv
from torch_utils.ops.ops_mode import fast_ops, reference_ops
from torch_utils.layout import same_layout
from training import networks_stylegan2


def _relative(a, b):
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def _run_both(fn):
    """``fn()`` -> (output, {name: gradient}) under the fast ops and under the reference."""
    with fast_ops():
        fast = fn()
    with reference_ops():
        ref = fn()
    return fast, ref


@pytest.fixture
def calls(monkeypatch):
    """Counts the calls to the gradient path, so that a test knows it ran."""
    counter = []
    original = modulated_conv_grad.modulated_conv_bias_act

    def counted(*args, **kwargs):
        counter.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(modulated_conv_grad, 'modulated_conv_bias_act', counted)
    return counter


@pytest.fixture(params=['direct', 'winograd'])
def convolution(request, monkeypatch):
    """Runs a test with the 3x3 convolutions direct at every size (None), and again as Winograd
    at every size: then a list that counts its calls."""
    thresholds = ('MIN_CHANNELS', 'MIN_PIXELS', 'INFERENCE_MIN_CHANNELS', 'INFERENCE_MIN_PIXELS')
    if request.param == 'direct':
        for name in thresholds:
            monkeypatch.setattr(winograd_conv, name, 10 ** 9)
        return None
    if not cpu_kernels.available():
        pytest.skip('no C compiler for the CPU kernels')
    for name in thresholds:
        monkeypatch.setattr(winograd_conv, name, 1)   # frozen kernels take the inference thresholds
    counter = []
    original = winograd_conv._Winograd3x3.apply
    monkeypatch.setattr(winograd_conv._Winograd3x3, 'apply', lambda *a: counter.append(1) or original(*a))
    return counter


def _layer_gradients(layer, x, w, seed, **kwargs):
    layer.zero_grad(set_to_none=True)
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    torch.manual_seed(seed)                      # the same random noise for both paths
    out = layer(x, w, **kwargs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    (out * weights).sum().backward()
    grads = {'x': x.grad, 'w': w.grad}
    grads.update({name: p.grad for name, p in layer.named_parameters() if p.grad is not None})
    return out.detach(), grads


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('up', [1, 2])
@pytest.mark.parametrize('noise_mode', ['const', 'random', 'none'])
@pytest.mark.parametrize('size', ['large', 'small', 'large, frozen weight'])
def test_synthesis_layer_gradients_equal_the_reference(calls, convolution, batch, up, noise_mode, size):
    # 'large' maps modulate the kernel, 'small' maps of many channels the activations, and so
    # does a frozen 3x3 weight of enough channels (projection).
    channels, resolution = {'small': (64, 4), 'large': (4, 16), 'large, frozen weight': (64, 32)}[size]
    torch.manual_seed(3)
    layer = networks_stylegan2.SynthesisLayer(channels, channels + 2, w_dim=5, resolution=resolution, up=up,
                                              conv_clamp=0.5)
    layer.weight.requires_grad_('frozen' not in size)
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
        layer.bias.normal_()
    x = torch.randn(batch, channels, resolution // up, resolution // up // 2)
    w = torch.randn(batch, 5)
    (fast, fast_grads), (ref, ref_grads) = _run_both(
        lambda: _layer_gradients(layer, x, w, seed=4, noise_mode=noise_mode, gain=0.8))
    assert calls, 'the gradient path did not run'
    assert convolution is None or bool(convolution) == (up == 1)
    tolerance = 1e-5 if convolution is None else 1e-4   # Winograd F(4x4, 3x3) keeps about 4 bits fewer
    torch.testing.assert_close(fast, ref, rtol=tolerance, atol=tolerance)
    assert float(ref.abs().max()) == pytest.approx(0.4)   # the clamp (0.5 * gain) is in effect
    assert sorted(fast_grads) == sorted(ref_grads)
    for name in ref_grads:
        assert _relative(fast_grads[name], ref_grads[name]) < 1e-4, name


@pytest.mark.parametrize('up', [1, 2])
def test_a_frozen_3x3_weight_leaves_the_convolution_its_input_gradient_only(monkeypatch, up):
    # Reaching the styles through a modulated kernel would cost the kernel's gradient too.
    kernels = []
    original = modulated_conv_grad._conv

    def recorded(x, kernel, *args):
        kernels.append(kernel)
        return original(x, kernel, *args)
    monkeypatch.setattr(modulated_conv_grad, '_conv', recorded)
    layer = networks_stylegan2.SynthesisLayer(64, 64, w_dim=5, resolution=64, up=up).requires_grad_(False)
    to_rgb = networks_stylegan2.ToRGBLayer(64, 3, w_dim=5).requires_grad_(False)
    w = torch.randn(1, 5, requires_grad=True)
    with fast_ops():
        x = layer(torch.randn(1, 64, 64 // up, 32 // up), w)
        assert len(kernels) == 1 and not kernels[0].requires_grad
        # toRGB's 1x1 kernel gradient is cheaper than passes over the maps: it stays modulated.
        to_rgb(x, w).sum().backward()
    assert len(kernels) == 2 and kernels[1].requires_grad
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_torgb_gradients_equal_the_reference(calls):
    torch.manual_seed(2)
    layer = networks_stylegan2.ToRGBLayer(8, 3, w_dim=5, conv_clamp=1.0)
    with torch.no_grad():
        layer.bias.normal_()
    x, w = torch.randn(2, 8, 8, 4), torch.randn(2, 5)
    (fast, fast_grads), (ref, ref_grads) = _run_both(lambda: _layer_gradients(layer, x, w, seed=5))
    assert calls
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert float(ref.abs().max()) == pytest.approx(1.0)
    assert sorted(fast_grads) == sorted(ref_grads)
    for name in ref_grads:
        assert _relative(fast_grads[name], ref_grads[name]) < 1e-4, name


def _generator_gradients(G, ws, weights_need_grad=True):
    G.zero_grad(set_to_none=True)
    G.requires_grad_(weights_need_grad)
    ws = ws.clone().requires_grad_(True)
    img = G.synthesis(ws, noise_mode='const')
    loss = (img * torch.randn(img.shape, generator=torch.Generator().manual_seed(6))).sum()
    loss.backward()
    grads = {'ws': ws.grad}
    grads.update({name: p.grad for name, p in G.synthesis.named_parameters() if p.grad is not None})
    return img.detach(), grads


@pytest.mark.parametrize('kwargs', [dict(), dict(square=True), dict(architecture='resnet')])
@pytest.mark.parametrize('weights_need_grad', [True, False])   # tuning and training; projection and dragging
def test_generator_gradients_equal_the_reference(calls, convolution, kwargs, weights_need_grad):
    G = _generator(**kwargs)
    ws = G.mapping(torch.randn(2, G.z_dim), None).detach()
    (fast, fast_grads), (ref, ref_grads) = _run_both(lambda: _generator_gradients(G, ws, weights_need_grad))
    assert calls
    assert convolution is None or convolution
    assert float((fast - ref).abs().max()) < 1e-4 * float(ref.abs().max())
    assert sorted(fast_grads) == sorted(ref_grads)
    assert weights_need_grad or list(fast_grads) == ['ws']
    for name in ref_grads:
        assert _relative(fast_grads[name], ref_grads[name]) < 2e-3, name


@pytest.mark.parametrize('lay_out', [lambda G: G.to(memory_format=torch.channels_last),
                                     modulated_conv_grad.lay_out_for_gradients])
def test_weights_laid_out_otherwise_give_the_same_gradients(calls, lay_out):
    G = _generator()
    ws = G.mapping(torch.randn(1, G.z_dim), None).detach()
    plain_image, plain = _generator_gradients(G, ws)
    G = lay_out(G)
    image, laid_out = _generator_gradients(G, ws)
    assert calls
    torch.testing.assert_close(image, plain_image, rtol=1e-5, atol=1e-5)
    for name in plain:
        assert _relative(laid_out[name], plain[name]) < 1e-4, name   # summed in another order


def test_weights_laid_out_for_gradients_get_gradients_in_their_own_layout():
    G = modulated_conv_grad.lay_out_for_gradients(_generator())
    upsampling = G.synthesis.b16.conv0.weight
    assert upsampling.transpose(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert G.synthesis.b16.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with fast_ops():
        _, grads = _generator_gradients(G, G.mapping(torch.randn(1, G.z_dim), None).detach())
    weights = {name: p for name, p in G.synthesis.named_parameters() if p.ndim == 4}
    assert weights
    for name, weight in weights.items():   # autograd then keeps them as they come: no copy per step
        assert same_layout(grads[name], weight), name


def test_second_order_gradients_equal_the_reference(calls, convolution):
    # Path-length regularisation differentiates the gradient w.r.t. w again.
    G = _generator().requires_grad_(True)
    ws = G.mapping(torch.randn(2, G.z_dim), None).detach()

    def path_length_gradients():
        G.zero_grad(set_to_none=True)
        w = ws.clone().requires_grad_(True)
        img = G.synthesis(w, noise_mode='const')
        weights = torch.randn(img.shape, generator=torch.Generator().manual_seed(7))
        grad_w, = torch.autograd.grad((img * weights).sum(), w, create_graph=True)
        grad_w.square().sum().backward()
        return grad_w.detach(), {n: p.grad for n, p in G.synthesis.named_parameters() if p.grad is not None}

    (fast_w, fast_grads), (ref_w, ref_grads) = _run_both(path_length_gradients)
    assert calls
    assert convolution is None or convolution
    assert _relative(fast_w, ref_w) < 1e-5
    for name, grad in ref_grads.items():
        assert _relative(fast_grads[name], grad) < 1e-3, name
    for name in set(fast_grads) - set(ref_grads):      # only where the reference's are zero by construction
        assert float(fast_grads[name].abs().max()) == 0, name


def test_a_weight_changed_in_place_is_not_served_from_the_cache(calls, convolution):
    G = _generator().requires_grad_(False)
    ws = G.mapping(torch.randn(1, G.z_dim), None).detach().requires_grad_(True)
    before = G.synthesis(ws, noise_mode='const').detach()
    with torch.no_grad():
        G.synthesis.b16.conv1.weight.mul_(-1)
    after = G.synthesis(ws, noise_mode='const').detach()
    with torch.no_grad(), reference_ops():
        want = G.synthesis(ws, noise_mode='const')
    assert calls
    assert convolution is None or convolution
    assert float((before - want).abs().max()) > 1e-2
    torch.testing.assert_close(after, want, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not precision.native_bf16(), reason='no native bf16 on this CPU')
def test_bf16_gradients_point_the_way_fp32_ones_do(calls):
    G = _generator()
    ws = G.mapping(torch.randn(1, G.z_dim), None).detach()
    _, fp32 = _generator_gradients(G, ws)
    with precision.use_precision(torch.bfloat16):
        _, bf16 = _generator_gradients(G, ws)
    assert calls
    for name in ('ws', 'b32.conv1.weight', 'b8.conv0.affine.weight'):
        cosine = torch.nn.functional.cosine_similarity(bf16[name].flatten().float(), fp32[name].flatten(), dim=0)
        assert float(cosine) > 0.99, name


def test_applies_only_where_gradients_are_wanted():
    x = torch.zeros(1, 2, 4, 4)
    assert not modulated_conv_grad.applies(x)                       # inference: the in-place path
    x.requires_grad_(True)
    assert modulated_conv_grad.applies(x)
    assert not modulated_conv_grad.applies(x, activation='tanh')
    assert not modulated_conv_grad.applies(x.double())
    with torch.no_grad():
        assert not modulated_conv_grad.applies(x)
    with reference_ops():
        assert not modulated_conv_grad.applies(x)
