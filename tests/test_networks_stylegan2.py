"""training/networks_stylegan2.py: names, shapes and numbers of official StyleGAN2-ADA
networks (square and StyleGAN-Human's 2:1 ``square=False``), and the behaviour callers
rely on (truncation, noise modes, conditioning, fp16 blocks, w_avg tracking, gradients)."""

import copy
import io
import pickle

import numpy as np
import pytest
import torch

import legacy
from helpers import check_against_refs, load_refs
from training import networks_stylegan2 as nets

FIXTURES = {'sg2_rect64': False, 'sg2_square64': True}  # name -> square

# Logits of each fixture's D for np.random.RandomState(123).randn(4, 3, 64, W) as float32,
# computed on CPU by StyleGAN-Human's own networks (its ADA and StyleGAN3-era versions agree).
D_REFERENCE_LOGITS = {
    'sg2_rect64': [-0.12908396, -0.14116029, -0.14570920, -0.12090898],
    'sg2_square64': [-0.21816896, -0.18176587, -0.16303638, -0.21117374],
}
_cache = {}


def _build(record, cls):
    """Our class from a pickle record: stored init args, then a strict copy by name."""
    module = cls(*record.init_args, **record.init_kwargs)
    ours = dict(module.named_parameters())
    ours.update(module.named_buffers())
    theirs = record.tensors
    assert sorted(ours) == sorted(theirs)
    with torch.no_grad():
        for name, tensor in ours.items():
            assert tuple(tensor.shape) == tuple(theirs[name].shape), name
            tensor.copy_(theirs[name])
    return module.eval().requires_grad_(False)


def _networks(fixtures_dir, name):
    if name not in _cache:
        data = legacy.read_pickle_safely(fixtures_dir / 'networks' / f'{name}.pkl')
        _cache[name] = dict(
            records={k: data[k] for k in ('G', 'G_ema', 'D')},
            G_ema=_build(data['G_ema'], nets.Generator),
            D=_build(data['D'], nets.Discriminator),
        )
    return _cache[name]


def _tiny_G(synthesis_kwargs=None, **kwargs):
    """A 16x8 (or 16x16) generator; ``synthesis_kwargs`` are added to the small defaults."""
    synthesis = dict(channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=None)
    synthesis.update(synthesis_kwargs or {})
    args = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, square=False,
                mapping_kwargs=dict(num_layers=2), synthesis_kwargs=synthesis)
    args.update(kwargs)
    return nets.Generator(**args)


def _tiny_D(**kwargs):
    args = dict(c_dim=0, img_resolution=16, img_channels=3, square=False, channel_base=256, channel_max=16,
                num_fp16_res=0, conv_clamp=None)
    args.update(kwargs)
    return nets.Discriminator(**args)


def _z(seed, n=1, dim=16):
    return torch.from_numpy(np.random.RandomState(seed).randn(n, dim)).float()


# ----------------------------------------------------------------------------
# Official fixtures


@pytest.mark.parametrize('name', sorted(FIXTURES))
def test_fixture_reproduces_upstream(fixtures_dir, name):
    square = FIXTURES[name]
    nets_ = _networks(fixtures_dir, name)
    G = nets_['G_ema']
    info, refs, seeds = load_refs(fixtures_dir, name)
    assert (G.z_dim, G.w_dim, G.c_dim, G.num_ws) == (info['z_dim'], info['w_dim'], info['c_dim'], info['num_ws'])
    assert G.img_resolution == info['res'] and G.square == square == info['square']
    assert G.mapping.num_ws == G.synthesis.num_ws == G.num_ws

    width = 4 if square else 2
    assert tuple(G.synthesis.b4.const.shape) == (64, 4, width)
    for layer_name, layer in G.synthesis.named_modules():
        if isinstance(layer, nets.SynthesisLayer):
            r = layer.resolution
            assert tuple(layer.noise_const.shape) == (r, r if square else r // 2), layer_name

    assert check_against_refs(G, refs, seeds) == len(seeds) * 4
    with torch.no_grad():
        img = G(_z(seeds[0], dim=G.z_dim), torch.zeros([1, 0]), noise_mode='const', force_fp32=True)
    assert list(img.shape[1:]) == info['img_shape']


@pytest.mark.parametrize('name', sorted(FIXTURES))
def test_fixture_generator_G_also_loads(fixtures_dir, name):
    records = _networks(fixtures_dir, name)['records']
    G = _build(records['G'], nets.Generator)
    names = {n for n, _ in G.named_buffers()}
    assert 'mapping.w_avg' in names and 'synthesis.b8.conv0.noise_const' in names
    assert 'synthesis.b4.const' in dict(G.named_parameters())


@pytest.mark.parametrize('name', sorted(FIXTURES))
def test_fixture_discriminator(fixtures_dir, name):
    square = FIXTURES[name]
    D = _networks(fixtures_dir, name)['D']
    assert D.b4.fc.in_features == 64 * 4 * (4 if square else 2)
    shape = (64, 64) if square else (64, 32)
    fixed = torch.from_numpy(np.random.RandomState(123).randn(4, 3, *shape).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(D(fixed, None)[:, 0].numpy(), D_REFERENCE_LOGITS[name], rtol=0, atol=2e-5)
    img = torch.randn([8, 3, *shape], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = D(img, None)
        again = D(img, None)
        # The minibatch-std layer groups samples i, i+n, i+2n, ... (n = N / group size):
        # the even samples form groups of their own.
        even = D(img[0::2], None)
    assert logits.shape == (8, 1) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all() and logits.std() > 0
    assert torch.equal(logits, again)
    torch.testing.assert_close(even, logits[0::2], rtol=1e-5, atol=1e-5)

    wrong = (64, 32) if square else (64, 64)
    with pytest.raises(AssertionError):
        D(torch.zeros([4, 3, *wrong]), None)

    G = _networks(fixtures_dir, name)['G_ema']
    with torch.no_grad():
        fake = G(_z(3, n=4, dim=G.z_dim), None, noise_mode='const')
        assert D(fake, None).shape == (4, 1)


def test_fixture_truncation_cutoff(fixtures_dir):
    G = _networks(fixtures_dir, 'sg2_rect64')['G_ema']
    z = _z(5, n=2, dim=G.z_dim)
    with torch.no_grad():
        full = G.mapping(z, None)
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=4)
        every = G.mapping(z, None, truncation_psi=0.5)
    w_avg = G.mapping.w_avg
    assert torch.equal(cut[:, 4:], full[:, 4:])
    torch.testing.assert_close(cut[:, :4], w_avg + 0.5 * (full[:, :4] - w_avg))
    torch.testing.assert_close(every, w_avg + 0.5 * (full - w_avg))
    # psi = 1 leaves w alone whatever the cutoff.
    with torch.no_grad():
        assert torch.equal(G.mapping(z, None, truncation_psi=1, truncation_cutoff=2), full)


def test_fixture_noise_modes(fixtures_dir):
    G = copy.deepcopy(_networks(fixtures_dir, 'sg2_rect64')['G_ema'])
    for name, p in G.named_parameters():
        if name.endswith('noise_strength'):
            p.fill_(0.2)
    with torch.no_grad():
        w = G.mapping(_z(0, dim=G.z_dim), None)
        const = G.synthesis(w, noise_mode='const')
        none = G.synthesis(w, noise_mode='none')
        torch.manual_seed(1)
        rand1 = G.synthesis(w, noise_mode='random')
        torch.manual_seed(1)
        rand2 = G.synthesis(w, noise_mode='random')
        rand3 = G.synthesis(w, noise_mode='random')
    assert torch.equal(const, G.synthesis(w, noise_mode='const'))
    assert not torch.allclose(const, none, atol=1e-3)
    assert not torch.allclose(rand1, const, atol=1e-3)
    assert torch.equal(rand1, rand2) and not torch.allclose(rand1, rand3, atol=1e-3)
    assert rand1.shape == (1, 3, 64, 32)
    with pytest.raises(AssertionError):
        G.synthesis(w, noise_mode='bogus')


def test_fixture_pickles_with_init_kwargs(fixtures_dir):
    G = _networks(fixtures_dir, 'sg2_rect64')['G_ema']
    record = _networks(fixtures_dir, 'sg2_rect64')['records']['G_ema']
    assert dict(G.init_kwargs) == dict(record.init_kwargs)
    data = legacy.read_pickle_safely(io.BytesIO(pickle.dumps(G)))
    assert data.class_name == 'Generator'
    assert sorted(data.tensors) == sorted(record.tensors)


# ----------------------------------------------------------------------------
# Constructed networks


@pytest.mark.parametrize('square', [False, True])
@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
def test_architectures(square, architecture):
    torch.manual_seed(0)
    G = _tiny_G(square=square, synthesis_kwargs=dict(architecture=architecture))
    D = _tiny_D(square=square, architecture=architecture)
    assert G.num_ws == 6  # blocks 4, 8, 16: 1 + 2 + 2 convs and the last ToRGB
    names = dict(G.named_parameters())
    assert ('synthesis.b8.skip.weight' in names) == (architecture == 'resnet')
    assert ('synthesis.b8.torgb.weight' in names) == (architecture == 'skip')
    assert 'synthesis.b16.torgb.weight' in names
    d_names = dict(D.named_parameters())
    assert ('b8.skip.weight' in d_names) == (architecture == 'resnet')
    assert ('b8.fromrgb.weight' in d_names) == (architecture == 'skip')
    assert ('b4.fromrgb.weight' in d_names) == (architecture == 'skip')
    with torch.no_grad():
        img = G(_z(0, n=2), None)
        assert img.shape == (2, 3, 16, 16 if square else 8)
        assert D(img, None).shape == (2, 1)


def test_generator_accepts_stylegan3_style_kwargs():
    torch.manual_seed(0)
    a = _tiny_G()
    torch.manual_seed(0)
    b = nets.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, square=False,
                       mapping_kwargs=dict(num_layers=2), channel_base=256, channel_max=16, num_fp16_res=0,
                       conv_clamp=None)
    assert sorted(a.state_dict()) == sorted(b.state_dict())
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_defaults_match_upstream():
    G = nets.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3)
    assert G.square is False and G.synthesis.b4.const.shape[1:] == (4, 2)
    assert G.mapping.w_avg_beta == 0.998 and G.mapping.num_layers == 8
    assert G.synthesis.b8.conv1.conv_clamp == 256 and G.synthesis.num_fp16_res == 4
    assert G.synthesis.b8.architecture == 'skip'
    D = nets.Discriminator(c_dim=0, img_resolution=8, img_channels=3)
    assert D.square is False and D.b8.architecture == 'resnet' and D.b8.conv0.conv_clamp == 256
    assert D.b4.mbstd.group_size == 4 and D.b4.mbstd.num_channels == 1


def test_conditional_networks_embed_c():
    torch.manual_seed(0)
    G = _tiny_G(c_dim=3)
    D = _tiny_D(c_dim=3)
    assert tuple(G.mapping.embed.weight.shape) == (16, 3)
    assert D.mapping.w_dim == D.b4.cmap_dim == 16 and D.b4.out.out_features == 16
    z = _z(1, n=2)
    c0 = torch.eye(3)[[0, 0]]
    c2 = torch.eye(3)[[2, 2]]
    with torch.no_grad():
        w0, w2 = G.mapping(z, c0), G.mapping(z, c2)
        assert not torch.allclose(w0, w2)
        img = G.synthesis(w0)
        assert img.shape == (2, 3, 16, 8)
        l0, l2 = D(img, c0), D(img, c2)
    assert l0.shape == (2, 1) and not torch.allclose(l0, l2)
    with pytest.raises(AssertionError):
        D(img, torch.zeros([2, 2]))  # wrong label width
    D_custom = _tiny_D(c_dim=3, cmap_dim=5)
    assert D_custom.b4.out.out_features == 5 and D_custom.mapping.w_dim == 5


def test_fp16_blocks_run_on_cpu():
    torch.manual_seed(0)
    G = _tiny_G(synthesis_kwargs=dict(num_fp16_res=2, conv_clamp=256)).eval()
    D = _tiny_D(num_fp16_res=2, conv_clamp=256)
    assert [G.synthesis.b16.use_fp16, G.synthesis.b8.use_fp16, G.synthesis.b4.use_fp16] == [True, True, False]
    assert D.b16.use_fp16 and D.b8.use_fp16
    with torch.no_grad():
        w = G.mapping(_z(2), None)
        mixed = G.synthesis(w, noise_mode='const')
        exact = G.synthesis(w, noise_mode='const', force_fp32=True)
        assert mixed.dtype == torch.float32
        torch.testing.assert_close(mixed, exact, rtol=0, atol=1e-2)
        torch.testing.assert_close(D(mixed, None), D(mixed, None, force_fp32=True), rtol=0, atol=1e-2)


def test_modulated_conv2d_float16_prenormalization():
    torch.manual_seed(0)
    x = torch.randn([2, 8, 8, 4])
    weight = torch.randn([6, 8, 3, 3]) * 30
    styles = torch.randn([2, 8]) * 30
    ref = nets.modulated_conv2d(x, weight, styles, padding=1)
    try:
        half = nets.modulated_conv2d(x.half(), weight.half(), styles.half(), padding=1)
    except RuntimeError as err:  # float16 convolution is missing on some CPU builds
        pytest.skip(f'no float16 convolution here: {err}')
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), ref, rtol=0, atol=2e-2)


def test_fused_and_unfused_modconv_agree():
    torch.manual_seed(0)
    G = _tiny_G().eval()
    with torch.no_grad():
        for p in G.parameters():
            if p.ndim == 0:
                p.fill_(0.3)  # noise strengths
        w = G.mapping(_z(4, n=3), None)
        fused = G.synthesis(w, noise_mode='const', fused_modconv=True)
        split = G.synthesis(w, noise_mode='const', fused_modconv=False)
    torch.testing.assert_close(fused, split, rtol=1e-4, atol=1e-4)
    G2 = _tiny_G(synthesis_kwargs=dict(fused_modconv_default='inference_only'))
    G2.load_state_dict(G.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(G2.eval().synthesis(w, noise_mode='const'), fused)
        torch.testing.assert_close(G2.train().synthesis(w, noise_mode='const'), split)


def test_w_avg_tracking():
    torch.manual_seed(0)
    G = _tiny_G()
    z = _z(6, n=4)
    start = G.mapping.w_avg.clone()

    def changed(**kwargs):
        G.mapping.w_avg.copy_(start)
        with torch.no_grad():
            G.mapping(z, None, **kwargs)
        return not torch.equal(G.mapping.w_avg, start)

    G.eval()
    assert not changed() and changed(update_emas=True) and not changed(update_emas=False)
    G.train()
    assert changed()                                  # StyleGAN2-ADA callers: training mode updates
    assert not changed(skip_w_avg_update=True)        # ... unless they ask not to
    assert not changed(update_emas=False) and changed(update_emas=True)  # StyleGAN3 callers decide
    G.mapping.w_avg.copy_(start)
    with torch.no_grad():
        w = G.mapping(z, None).mean(dim=0)[0]
        G.mapping.w_avg.copy_(start)
        G.mapping(z, None, update_emas=True)
    torch.testing.assert_close(G.mapping.w_avg, w.lerp(start, 0.998))
    # Generator.forward follows update_emas (StyleGAN3 signature).
    G.mapping.w_avg.copy_(start)
    with torch.no_grad():
        G(z, None)
    assert torch.equal(G.mapping.w_avg, start)
    with torch.no_grad():
        G(z, None, update_emas=True)
    assert not torch.equal(G.mapping.w_avg, start)


def test_backward_reaches_every_part():
    torch.manual_seed(0)
    G = _tiny_G(c_dim=3).train()
    D = _tiny_D(c_dim=3).train()
    c = torch.eye(3)[[0, 1]]
    img = G(_z(7, n=2), c)
    loss = torch.nn.functional.softplus(-D(img, c)).mean()
    loss.backward()
    for name in ('mapping.fc0.weight', 'mapping.embed.weight', 'synthesis.b4.const',
                 'synthesis.b16.conv1.affine.weight', 'synthesis.b16.torgb.weight'):
        grad = dict(G.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    for name in ('b16.fromrgb.weight', 'b4.fc.weight', 'mapping.fc0.weight'):
        grad = dict(D.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # R1-style gradient with respect to the real images.
    real = torch.randn([2, 3, 16, 8], requires_grad=True)
    (grad,) = torch.autograd.grad(D(real, c).sum(), [real], create_graph=True)
    assert grad.shape == real.shape and grad.abs().sum() > 0


def test_freeze_layers_makes_buffers():
    D = _tiny_D(block_kwargs=dict(freeze_layers=2))
    params = dict(D.named_parameters())
    buffers = dict(D.named_buffers())
    assert 'b16.fromrgb.weight' in buffers and 'b16.conv0.weight' in buffers
    assert 'b16.conv1.weight' in params and 'b8.conv0.weight' in params


def test_mapping_without_broadcast_and_normalize():
    M = nets.MappingNetwork(z_dim=8, c_dim=0, w_dim=8, num_ws=None, num_layers=2)
    assert M(torch.randn([3, 8]), None).shape == (3, 8)
    x = torch.randn([5, 7]) * 3
    y = nets.normalize_2nd_moment(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(5), rtol=1e-4, atol=1e-4)
