"""StyleGAN2's fused CPU inference path and fast upfirdn2d against the reference ops."""

import numpy as np
import pytest
import torch

from torch_utils import precision
from torch_utils.ops import conv2d_resample, cpu_kernels, modulated_conv_fast, upfirdn2d
from torch_utils.ops.ops_mode import reference_ops
from training import networks_stylegan2


def _generator(seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs = {**dict(img_resolution=32, channel_base=512, channel_max=32, num_fp16_res=0, conv_clamp=256,
                     square=False), **kwargs}
    G = networks_stylegan2.Generator(z_dim=16, c_dim=0, w_dim=16, img_channels=3,
                                     mapping_kwargs=dict(num_layers=2), **kwargs).eval()
    with torch.no_grad():  # random, not zero, noise strengths and biases so every term counts
        for name, p in G.named_parameters():
            if 'noise_strength' in name or name.endswith('bias'):
                p.copy_(torch.randn_like(p) * 0.3)
    return G


def _both(fn):
    with torch.no_grad():
        fast = fn()
        with reference_ops():
            ref = fn()
    return fast, ref


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(square=True),
    dict(architecture='orig'),
    dict(architecture='resnet'),
    dict(img_resolution=64, channel_max=16),
])
def test_generator_fast_equals_reference(kwargs):
    G = _generator(**kwargs)
    z = torch.randn(3, G.z_dim)
    fast, ref = _both(lambda: G(z, None, noise_mode='const', force_fp32=True))
    assert fast.shape == ref.shape
    assert float((fast - ref).abs().max()) < 1e-3 * max(1.0, float(ref.abs().max()))
    assert float((fast - ref).abs().max()) > 0    # the fast path did run (different rounding)


def test_sampling_layer_gives_the_images_of_batch_one():
    from stylegan_human.sampling import synthesize
    G = _generator()
    with torch.no_grad():
        ws = G.mapping(torch.randn(3, G.z_dim), None)
        together = synthesize(G, ws, noise_mode='const')
        alone = torch.cat([G.synthesis(ws[i:i + 1], noise_mode='const') for i in range(3)])
    assert torch.equal(together, alone)


def test_a_batch_gives_each_image_as_generated_alone(fixtures_dir):
    # The dense layers too (mapping, styles): a matrix product rounded a batch's rows unlike a
    # single row, and one pixel of a style-mixing video's frame came out one level off.
    import legacy
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')['G_ema']
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        together = G.mapping(z, None)
        assert torch.equal(together, torch.cat([G.mapping(z[i:i + 1], None) for i in range(4)]))
        images = G(z, None, noise_mode='const', force_fp32=True)
        assert torch.equal(images, torch.cat([G(z[i:i + 1], None, noise_mode='const', force_fp32=True)
                                              for i in range(4)]))


def test_the_network_computes_the_batch_it_is_given_in_one_call():
    G = _generator()
    calls = []
    handle = G.synthesis.b8.conv1.register_forward_hook(lambda module, args, out: calls.append(out.shape[0]))
    try:
        with torch.no_grad():
            ws = G.mapping(torch.randn(3, G.z_dim), None)
            together = G.synthesis(ws, noise_mode='const')
            alone = torch.cat([G.synthesis(ws[i:i + 1], noise_mode='const') for i in range(3)])
    finally:
        handle.remove()
    assert calls == [3, 1, 1, 1]   # one call with the whole batch, then the three single images
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('up', [1, 2])
@pytest.mark.parametrize('noise_mode', ['const', 'none'])
def test_synthesis_layer_fast_equals_reference(up, noise_mode):
    torch.manual_seed(1)
    layer = networks_stylegan2.SynthesisLayer(8, 6, w_dim=5, resolution=16, up=up, conv_clamp=0.5).eval()
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
        layer.bias.normal_()
    x, w = torch.randn(1, 8, 16 // up, 8 // up), torch.randn(1, 5)
    fast, ref = _both(lambda: layer(x, w, noise_mode=noise_mode, gain=0.8))
    assert fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert float(ref.abs().max()) == pytest.approx(0.4)   # the clamp (0.5 * gain) is in effect


def test_torgb_fast_equals_reference():
    torch.manual_seed(2)
    layer = networks_stylegan2.ToRGBLayer(8, 3, w_dim=5, conv_clamp=256).eval()
    with torch.no_grad():
        layer.bias.normal_()
    x, w = torch.randn(1, 8, 8, 4), torch.randn(1, 5)
    fast, ref = _both(lambda: layer(x, w))
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


def test_an_image_computed_with_gradients_is_the_reference_image():
    G = _generator()
    ws = G.mapping(torch.randn(1, G.z_dim), None).detach().requires_grad_(True)
    assert not modulated_conv_fast.applies(ws, ws)      # the in-place path stands aside
    with_grad = G.synthesis(ws, noise_mode='const')
    with torch.no_grad(), reference_ops():
        ref = G.synthesis(ws, noise_mode='const')
    torch.testing.assert_close(with_grad.detach(), ref, rtol=1e-5, atol=1e-5)
    with_grad.square().sum().backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all()


def test_demodulation_equals_the_per_sample_kernel_norm():
    weight, styles = torch.randn(6, 4, 3, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    per_sample = weight[None] * styles[:, None, :, None, None]
    want = 1 / (per_sample.square().sum(dim=[2, 3, 4]) + 1e-8).sqrt()
    torch.testing.assert_close(modulated_conv_fast.demodulation(weight, styles), want)


@pytest.mark.skipif(not modulated_conv_fast._packing_works(), reason='this torch cannot pack oneDNN weights')
@pytest.mark.parametrize('up', [1, 2])
def test_bf16_small_maps_give_the_same_numbers_with_packed_weights(monkeypatch, up):
    """bfloat16 layers on small maps convolve with weights packed once for oneDNN (and upsample
    through four packed phase convolutions): the numbers of the plain convolutions."""
    torch.manual_seed(0)
    x = torch.randn([1, 512, 4, 2]).bfloat16()
    weight, styles, bias = torch.randn([512, 512, 3, 3]), torch.randn([1, 512]), torch.randn([512])
    noise = torch.randn([4 * up, 2 * up])
    f = upfirdn2d.setup_filter([1, 3, 3, 1])

    def layer():
        with torch.no_grad():
            return modulated_conv_fast.modulated_conv_bias_act(x, weight, styles, bias, noise=noise, up=up, padding=1,
                                                               resample_filter=f, flip_weight=(up == 1), clamp=256)
    packed = layer()
    monkeypatch.setattr(modulated_conv_fast, '_packing', False)
    plain = layer()
    torch.testing.assert_close(packed.float(), plain.float(), atol=0.02 * float(plain.float().abs().max()), rtol=0.02)


def test_applies_only_to_float32_cpu_inference_in_fast_mode():
    x = torch.zeros(1, 2, 4, 4)
    assert modulated_conv_fast.applies(x)
    assert modulated_conv_fast.applies(torch.zeros(2, 2, 4, 4))
    assert not modulated_conv_fast.applies(x.requires_grad_(True))
    x = x.detach()
    assert not modulated_conv_fast.applies(x.double())
    assert not modulated_conv_fast.applies(x, activation='tanh')
    with reference_ops():
        assert not modulated_conv_fast.applies(x)


_FILTERS = {
    'blur4': upfirdn2d.setup_filter([1, 3, 3, 1]),
    'asym3x2': torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.25]]),
    'box2': upfirdn2d.setup_filter([1, 1]),
}


@pytest.mark.parametrize('name', sorted(_FILTERS))
@pytest.mark.parametrize('up, down, padding', [
    (1, 1, 0), (1, 1, 2), (1, 1, [1, 1, 2, 2]), (1, 1, [2, 0, 1, 3]), (1, 2, 1), (1, 1, -1),
    (2, 1, 0), (2, 1, [2, 1, 2, 1]), (2, 1, [3, -1, 0, 2]), (4, 1, 1), ([2, 1], 1, [1, 0, 2, 0]), (2, 2, 1),
])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_upfirdn2d_fast_equals_reference(name, up, down, padding, flip_filter):
    f = _FILTERS[name]
    x = torch.randn(2, 3, 9, 7)
    fast = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=1.5)
    want = upfirdn2d._upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=1.5)
    assert fast.shape == want.shape
    torch.testing.assert_close(fast, want, rtol=1e-5, atol=1e-5)


def test_upfirdn2d_fast_is_differentiable():
    x = torch.randn(1, 2, 6, 5, requires_grad=True)
    f = _FILTERS['blur4']
    (g_fast,) = torch.autograd.grad(upfirdn2d.upsample2d(x, f).square().sum(), x)
    with reference_ops():
        (g_ref,) = torch.autograd.grad(upfirdn2d.upsample2d(x, f).square().sum(), x)
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-5)


def test_conv2d_resample_channels_last_input_gives_the_same_numbers():
    torch.manual_seed(3)
    x, w, f = torch.randn(1, 8, 6, 5), torch.randn(4, 8, 3, 3), _FILTERS['blur4']
    plain = conv2d_resample.conv2d_resample(x, w, f=f, up=2, padding=1)
    last = conv2d_resample.conv2d_resample(x.contiguous(memory_format=torch.channels_last), w, f=f, up=2, padding=1)
    torch.testing.assert_close(plain, last, rtol=1e-5, atol=1e-5)


def test_fast_path_does_not_touch_its_inputs():
    torch.manual_seed(4)
    layer = networks_stylegan2.SynthesisLayer(4, 4, w_dim=3, resolution=8).eval()
    x, w = torch.randn(1, 4, 8, 4), torch.randn(1, 3)
    x_copy, weight_copy = x.clone(), layer.weight.detach().clone()
    with torch.no_grad():
        layer(x, w, noise_mode='const')
    assert torch.equal(x, x_copy) and torch.equal(layer.weight, weight_copy)
    assert np.isfinite(x.numpy()).all()


@pytest.mark.parametrize('module', ['networks_stylegan2', 'networks_stylegan3'])
def test_networks_still_work_with_nvidias_torch_utils(module, tmp_path):
    """Dropped into NVIDIA's repositories, whose torch_utils has no fast path, the networks still run."""
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parents[1]
    code = f'''
import sys
sys.path.insert(0, {str(root)!r})
class Block:
    def find_spec(self, name, path=None, target=None):
        if name in ('torch_utils.ops.ops_mode', 'torch_utils.ops.modulated_conv_fast'):
            raise ImportError(name)
import torch
import torch_utils.ops
from torch_utils.ops import bias_act, conv2d_resample, filtered_lrelu, upfirdn2d  # these exist in NVIDIA's too
for name in ('ops_mode', 'modulated_conv_fast'):  # these do not
    sys.modules.pop('torch_utils.ops.' + name, None)
    if hasattr(torch_utils.ops, name):
        delattr(torch_utils.ops, name)
sys.meta_path.insert(0, Block())
from training import {module} as nets
assert getattr(nets, 'ops_mode', None) is None
kwargs = dict(channel_base=256, channel_max=16) if {module!r} == 'networks_stylegan2' else dict(channel_base=512, channel_max=16)
G = nets.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, square=False,
                   mapping_kwargs=dict(num_layers=1), **kwargs).eval()
with torch.no_grad():
    print(tuple(G(torch.randn(2, 8), None).shape))
'''
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == '(2, 3, 16, 8)'


@pytest.mark.skipif(not cpu_kernels.amx_available(), reason='no AMX tile units here (or no C compiler)')
def test_bf16_narrow_upsampling_layers_take_their_phases_from_amx(monkeypatch):
    """A 64 -> 32 channel bfloat16 upsampling layer on a large map computes its four phase
    convolutions in one AMX pass, as close to float32 as oneDNN's four convolutions."""
    torch.manual_seed(4)
    layer = networks_stylegan2.SynthesisLayer(64, 32, w_dim=5, resolution=64, up=2, conv_clamp=256).eval()
    x, w = torch.randn(1, 64, 32, 16), torch.randn(1, 5)
    calls = []
    original = cpu_kernels.amx_phases
    monkeypatch.setattr(cpu_kernels, 'amx_phases', lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        fp32 = layer(x, w, noise_mode='const')
        with precision.use_precision(torch.bfloat16):
            amx = layer(x.bfloat16(), w, noise_mode='const').float()
            assert calls == [1]
            monkeypatch.setattr(modulated_conv_fast, 'AMX_PHASES_MAX_CHANNELS', 0)
            onednn = layer(x.bfloat16(), w, noise_mode='const').float()
            assert calls == [1]
            monkeypatch.setattr(modulated_conv_fast, 'AMX_PHASES_MAX_CHANNELS', 128)
            monkeypatch.setattr(cpu_kernels, 'amx_phases', lambda *a: None)   # where the kernel says no
            torch.testing.assert_close(layer(x.bfloat16(), w, noise_mode='const').float(), onednn)
    scale = float(fp32.abs().max())
    assert 0 < float((amx - fp32).abs().max()) <= float((onednn - fp32).abs().max()) + 2 ** -8 * scale


@pytest.mark.skipif(not cpu_kernels.amx_available(), reason='no AMX tile units here (or no C compiler)')
def test_bf16_torgb_sums_on_amx_into_a_float32_image(monkeypatch):
    """In bfloat16 ToRGB gives the float32 contiguous image the block adds, summed on the AMX
    tiles: closer to float32 than oneDNN's bfloat16 output; other formats keep the old path."""
    torch.manual_seed(3)
    layer = networks_stylegan2.ToRGBLayer(64, 3, w_dim=5, conv_clamp=0.5).eval()
    with torch.no_grad():
        layer.bias.normal_()
    x, w = torch.randn(2, 64, 32, 16), torch.randn(2, 5)
    with torch.no_grad():
        fp32 = layer(x, w)
        with precision.use_precision(torch.bfloat16):
            amx = layer(x.bfloat16(), w)
            monkeypatch.setattr(modulated_conv_fast, 'to_rgb', lambda *a, **k: None)
            onednn = layer(x.bfloat16(), w)
    assert fp32.dtype == torch.float32 and amx.dtype == torch.float32 and onednn.dtype == torch.bfloat16
    assert amx.is_contiguous() and amx.shape == fp32.shape
    assert float(fp32.abs().max()) == 0.5                             # the clamp is in effect
    assert 0 < float((amx - fp32).abs().max()) <= float((onednn.float() - fp32).abs().max())


@pytest.mark.skipif(not cpu_kernels.amx_available(), reason='no AMX tile units here (or no C compiler)')
def test_bf16_narrow_large_layers_run_on_amx_with_the_numbers_of_onednn(monkeypatch):
    """A 32-channel bfloat16 layer on a large map convolves on the AMX kernel, its epilogue
    inside; rounded once instead of twice, it is as close to float32 as oneDNN's."""
    torch.manual_seed(0)
    x = torch.randn([1, 32, 256, 128])
    weight, styles, bias = torch.randn([32, 32, 3, 3]), torch.randn([1, 32]), torch.randn([32])
    noise = torch.randn([256, 128])
    calls = []
    original = cpu_kernels.amx_conv3x3
    monkeypatch.setattr(cpu_kernels, 'amx_conv3x3', lambda *a: calls.append(1) or original(*a))

    def layer(x):
        with torch.no_grad():
            return modulated_conv_fast.modulated_conv_bias_act(x, weight, styles, bias, noise=noise, padding=1,
                                                               clamp=256).float()
    fp32 = layer(x)
    amx = layer(x.bfloat16())
    assert calls == [1]
    monkeypatch.setattr(modulated_conv_fast, 'AMX_MAX_CHANNELS', 0)
    onednn = layer(x.bfloat16())
    assert calls == [1]
    scale = float(fp32.abs().max())
    assert float((amx - fp32).abs().max()) <= float((onednn - fp32).abs().max()) + 2 ** -8 * scale
    assert float((amx - fp32).abs().max()) > 0   # bfloat16, not float32 under another name
