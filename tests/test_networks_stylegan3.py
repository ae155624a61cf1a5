"""training/networks_stylegan3.py: names, shapes and numbers of official StyleGAN3-T/R
networks (StyleGAN-Human's 2:1 ``square=False`` and square ones), and the behaviour
callers rely on (user transform, truncation, conditioning, EMAs, gradients, pickling)."""

import ast
import pathlib
import pickle

import numpy as np
import pytest
import torch

import legacy
from helpers import check_against_refs, load_refs, rewrite_pickle
from training import networks_stylegan3 as nets

FIXTURES = ['sg3t_rect64', 'sg3r_rect64']
_cache = {}


def _record(fixtures_dir, name):
    key = ('record', name)
    if key not in _cache:
        _cache[key] = legacy.read_pickle_safely(fixtures_dir / 'networks' / f'{name}.pkl')['G_ema']
    return _cache[key]


def _fixture_G(fixtures_dir, name):
    """Our Generator from the fixture's stored init args, tensors copied in strictly by name."""
    key = ('G', name)
    if key not in _cache:
        record = _record(fixtures_dir, name)
        G = nets.Generator(*record.init_args, **record.init_kwargs)
        ours = dict(G.named_parameters())
        ours.update(G.named_buffers())
        theirs = record.tensors
        assert sorted(ours) == sorted(theirs)
        with torch.no_grad():
            for tensor_name, tensor in ours.items():
                assert tuple(tensor.shape) == tuple(theirs[tensor_name].shape), tensor_name
                tensor.copy_(theirs[tensor_name])
        _cache[key] = G.eval().requires_grad_(False)
    return _cache[key]


def _tiny_G(**kwargs):
    """A 16x8 (or 16x16 with square=True) StyleGAN3-T generator with few channels."""
    args = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, square=False,
                mapping_kwargs=dict(num_layers=2), channel_base=256, channel_max=16, num_layers=4,
                num_critical=2, margin_size=4, num_fp16_res=0)
    args.update(kwargs)
    torch.manual_seed(0)
    return nets.Generator(**args).eval()


def _z(seed, n=1, dim=16):
    return torch.from_numpy(np.random.RandomState(seed).randn(n, dim)).float()


def _make_transform(translate, angle_deg):
    """The image-space translate/rotate matrix of NVIDIA's gen_images.py (written here anew)."""
    a = np.deg2rad(angle_deg)
    return np.array([[np.cos(a), np.sin(a), translate[0]],
                     [-np.sin(a), np.cos(a), translate[1]],
                     [0, 0, 1]])


def _set_transform(G, m):
    with torch.no_grad():
        G.synthesis.input.transform.copy_(torch.from_numpy(np.linalg.inv(m)))


# ----------------------------------------------------------------------------
# Official fixtures


@pytest.mark.parametrize('name', FIXTURES)
def test_fixture_reproduces_upstream(fixtures_dir, name):
    info, refs, seeds = load_refs(fixtures_dir, name)
    G = _fixture_G(fixtures_dir, name)
    assert (G.z_dim, G.w_dim, G.c_dim, G.num_ws) == (info['z_dim'], info['w_dim'], info['c_dim'], info['num_ws'])
    assert G.square is False and G.img_resolution == 64 and G.img_channels == 3
    with torch.no_grad():
        img = G(_z(0, dim=G.z_dim), torch.zeros([1, 0]), noise_mode='const', force_fp32=True)
    assert list(img.shape[1:]) == info['img_shape'] == [3, 64, 32]
    assert check_against_refs(G, refs, seeds) == len(seeds) * 4


@pytest.mark.parametrize('name', FIXTURES)
def test_fixture_attributes_and_filters_match_upstream(fixtures_dir, name):
    """Every plain attribute upstream pickled (sizes, paddings, rates...) and every filter agree."""
    record = _record(fixtures_dir, name)
    G = nets.Generator(*record.init_args, **record.init_kwargs)

    def compare(rec, module, path):
        for key, value in rec.state.items():
            if key.startswith('_') or key == 'training':
                continue
            ours = getattr(module, key)
            if value is None or isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], str)):
                assert ours == value, f'{path}.{key}'
            else:
                assert np.allclose(np.asarray(ours, dtype=np.float64), np.asarray(value, dtype=np.float64),
                                   rtol=1e-12, atol=0), f'{path}.{key}'
        assert sorted(rec.state['_init_kwargs']) == sorted(module.init_kwargs), path
        for key, tensor in rec.state['_buffers'].items():
            if key.endswith('_filter'):
                ours = getattr(module, key)
                if tensor is None:
                    assert ours is None, f'{path}.{key}'
                else:
                    assert torch.allclose(ours, tensor, rtol=0, atol=1e-7), f'{path}.{key}'
        for key, child in rec.state['_modules'].items():
            if child is not None:
                compare(child, getattr(module, key), f'{path}.{key}')

    compare(record, G, 'G')
    radial = [n for n in G.synthesis.layer_names if getattr(G.synthesis, n).down_filter is not None
              and getattr(G.synthesis, n).down_filter.ndim == 2]
    assert bool(radial) == (name == 'sg3r_rect64')


@pytest.mark.parametrize('name', FIXTURES)
def test_square_is_readable_from_tensor_names(fixtures_dir, name):
    tensors = _record(fixtures_dir, name).tensors
    assert nets.infer_square_from_tensors(tensors, img_resolution=64) is False
    assert nets.infer_square_from_tensors(tensors) is False
    # A square network of the same config has different layer names, same buffer shapes.
    kwargs = dict(_record(fixtures_dir, name).init_kwargs, square=True)
    square_G = nets.Generator(**kwargs)
    square_tensors = dict(square_G.state_dict())
    assert nets.infer_square_from_tensors(square_tensors, img_resolution=64) is True
    assert nets.infer_square_from_tensors(square_tensors) is True
    assert sorted(square_tensors) != sorted(tensors)
    for suffix in ('transform', 'freqs', 'phases'):
        key = f'synthesis.input.{suffix}'
        assert square_tensors[key].shape == tensors[key].shape


@pytest.mark.parametrize('name', FIXTURES)
def test_legacy_loader_rebuilds_fixture(fixtures_dir, name):
    """The safe loader picks this module's Generator and reproduces the reference."""
    data = legacy.load_network_pkl(fixtures_dir / 'networks' / f'{name}.pkl')
    G = data['G_ema']
    assert isinstance(G, nets.Generator) and G.square is False
    _, refs, seeds = load_refs(fixtures_dir, name)
    assert check_against_refs(G.eval(), refs, seeds[:1]) == 4


def test_legacy_loader_infers_missing_square(fixtures_dir, tmp_path):
    """Older pickles lack ``square``: the loader reads it off the layer names."""
    path = tmp_path / 'no_square.pkl'
    rewrite_pickle(fixtures_dir / 'networks' / 'sg3t_rect64.pkl', path, keep=['G_ema'],
                   edit_kwargs=lambda kwargs: kwargs.pop('square', None))
    assert 'square' not in legacy.read_pickle_safely(path)['G_ema'].init_kwargs
    G = legacy.load_network_pkl(path)['G_ema']
    assert isinstance(G, nets.Generator) and G.square is False
    with torch.no_grad():
        assert G(_z(0, dim=G.z_dim), None).shape == (1, 3, 64, 32)


def test_fixture_transform_translate_and_rotate(fixtures_dir):
    G = _fixture_G(fixtures_dir, 'sg3t_rect64')
    ws = G.mapping(_z(1, dim=G.z_dim), torch.zeros([1, 0]))
    base = G.synthesis(ws, noise_mode='const', force_fp32=True)
    try:
        _set_transform(G, _make_transform((0.0, 0.0), 0.0))
        assert torch.equal(G.synthesis(ws, force_fp32=True), base)
        # Translations are in units where the image is 1 high: 64 output pixels per unit.
        # Down by 4 pixels: the content follows almost exactly (config T is translation-equivariant).
        rate = getattr(G.synthesis, G.synthesis.layer_names[-1]).out_sampling_rate
        _set_transform(G, _make_transform((0.0, 4 / rate), 0.0))
        shifted = G.synthesis(ws, force_fp32=True)
        change = (shifted - base).abs().mean()
        assert change > 0.01
        assert (shifted[:, :, 4:] - base[:, :, :-4]).abs().mean() < 0.05 * change
        # Right by 4 pixels: the narrower side margin of 2:1 networks leaves more edge effects.
        _set_transform(G, _make_transform((4 / rate, 0.0), 0.0))
        shifted = G.synthesis(ws, force_fp32=True)
        change = (shifted - base).abs().mean()
        assert change > 0.01
        assert (shifted[..., 8:-4] - base[..., 4:-8]).abs().mean() < 0.3 * change
        _set_transform(G, _make_transform((0.0, 0.0), 20.0))
        assert (G.synthesis(ws, force_fp32=True) - base).abs().max() > 0.05
    finally:
        _set_transform(G, np.eye(3))


# ----------------------------------------------------------------------------
# Tiny networks (no fixtures needed)


def test_rectangular_and_square_shapes():
    rect = _tiny_G()
    square = _tiny_G(square=True)
    with torch.no_grad():
        assert rect(_z(0, 2), None).shape == (2, 3, 16, 8)
        assert square(_z(0, 2), None).shape == (2, 3, 16, 16)
    # Buffer shapes do not depend on square; layer names carry the width.
    assert rect.synthesis.input.transform.shape == square.synthesis.input.transform.shape == (3, 3)
    assert rect.synthesis.input.freqs.shape == square.synthesis.input.freqs.shape
    assert rect.synthesis.layer_names[-1] == 'L4_8_3' and square.synthesis.layer_names[-1] == 'L4_16_3'
    assert list(rect.synthesis.input.size) == [12, 24] and list(square.synthesis.input.size) == [24, 24]
    assert nets.infer_square_from_tensors(rect.state_dict(), img_resolution=16) is False
    assert nets.infer_square_from_tensors(square.state_dict(), img_resolution=16) is True
    with pytest.raises(ValueError):
        nets.infer_square_from_tensors(rect.state_dict(), img_resolution=64)


def test_synthesis_input_translation_shifts_features_by_whole_samples():
    layer = nets.SynthesisInput(w_dim=8, channels=6, size=20, sampling_rate=16, bandwidth=2, square=False)
    w = torch.randn([2, 8])
    with torch.no_grad():
        base = layer(w)
        assert base.shape == (2, 6, 20, 10)
        # One sample to the right and two down, in units of the sampling period.
        layer.transform.copy_(torch.from_numpy(np.linalg.inv(_make_transform((1 / 16, 2 / 16), 0.0))))
        moved = layer(w)
    torch.testing.assert_close(moved[:, :, 2:, 1:], base[:, :, :-2, :-1], rtol=0, atol=1e-5)
    assert (moved - base).abs().max() > 0.1


def test_transform_identity_translate_rotate_tiny():
    G = _tiny_G()
    ws = G.mapping(_z(3), None)
    with torch.no_grad():
        base = G.synthesis(ws)
        _set_transform(G, _make_transform((0, 0), 0))
        assert torch.equal(G.synthesis(ws), base)
        _set_transform(G, _make_transform((0.3, -0.1), 0))
        assert not torch.allclose(G.synthesis(ws), base, atol=1e-4)
        _set_transform(G, _make_transform((0, 0), 45))
        assert not torch.allclose(G.synthesis(ws), base, atol=1e-4)


def test_truncation_and_cutoff():
    G = _tiny_G()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn([16]))
        z = _z(5, 2)
        plain = G.mapping(z, None)
        assert plain.shape == (2, G.num_ws, 16)
        assert torch.equal(plain[:, 0], plain[:, -1])
        avg = G.mapping.w_avg
        full = G.mapping(z, None, truncation_psi=0.5)
        torch.testing.assert_close(full, avg.lerp(plain, 0.5))
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
        torch.testing.assert_close(cut[:, :2], avg.lerp(plain[:, :2], 0.5))
        assert torch.equal(cut[:, 2:], plain[:, 2:])
        assert torch.equal(G.mapping(z, None, truncation_psi=1, truncation_cutoff=2), plain)
        zero = G.mapping(z, None, truncation_psi=0)
        torch.testing.assert_close(zero, avg.expand_as(zero))
        # Generator.forward passes both on.
        torch.testing.assert_close(G(z, None, truncation_psi=0.5, truncation_cutoff=2), G.synthesis(cut))


def test_conditional_generator():
    G = _tiny_G(c_dim=3)
    assert G.mapping.embed is not None and G.mapping.fc0.in_features == 32
    z = _z(7).repeat(3, 1)
    c = torch.eye(3)
    with torch.no_grad():
        ws = G.mapping(z, c)
        img = G(z, c)
    assert img.shape == (3, 3, 16, 8)
    assert not torch.allclose(ws[0], ws[1]) and not torch.allclose(ws[1], ws[2])


def test_noise_mode_and_force_fp32_accepted_and_ignored():
    G = _tiny_G()
    ws = G.mapping(_z(2), None)
    with torch.no_grad():
        out = {mode: G.synthesis(ws, noise_mode=mode, force_fp32=True) for mode in ('random', 'const', 'none')}
        assert torch.equal(out['random'], out['const']) and torch.equal(out['const'], out['none'])
        assert torch.equal(G.synthesis(ws, force_fp32=False), out['none'])
        with pytest.raises(AssertionError):
            G.synthesis(ws, noise_mode='bogus')


def test_batch_matches_single_samples():
    G = _tiny_G()
    z = _z(11, 3)
    with torch.no_grad():
        batch = G(z, None)
        single = torch.cat([G(z[i:i + 1], None) for i in range(3)])
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-5)


def test_backward_reaches_every_parameter():
    G = _tiny_G(c_dim=2).train()
    img = G(_z(4, 2), torch.eye(2))
    img.square().mean().backward()
    for name, param in G.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert G.synthesis.input.weight.grad.abs().sum() > 0
    assert G.mapping.fc0.weight.grad.abs().sum() > 0


def test_update_emas():
    G = _tiny_G()
    layers = [getattr(G.synthesis, name) for name in G.synthesis.layer_names]
    before = [layer.magnitude_ema.clone() for layer in layers]
    w_avg = G.mapping.w_avg.clone()
    with torch.no_grad():
        G(_z(9, 2), None)
    assert all(torch.equal(layer.magnitude_ema, b) for layer, b in zip(layers, before))
    assert torch.equal(G.mapping.w_avg, w_avg)
    with torch.no_grad():
        G(_z(9, 2), None, update_emas=True)
    assert all(not torch.equal(layer.magnitude_ema, b) for layer, b in zip(layers, before))
    assert not torch.equal(G.mapping.w_avg, w_avg)
    # The first layer's EMA moved toward the mean square of the Fourier features.
    ws = G.mapping(_z(9, 2), None)
    features = G.synthesis.input(ws[:, 0]).square().mean()
    beta = layers[0].magnitude_ema_beta
    torch.testing.assert_close(layers[0].magnitude_ema, features.lerp(before[0], beta), rtol=1e-4, atol=1e-6)


def test_radial_filters_and_kernel_one():
    G = _tiny_G(conv_kernel=1, use_radial_filters=True, channel_base=512, channel_max=32)
    synthesis = G.synthesis
    radial, critical = [], []
    for name in synthesis.layer_names:
        layer = getattr(synthesis, name)
        if layer.is_torgb:
            assert layer.up_filter is None and layer.down_filter is None
            continue
        assert layer.weight.shape[-2:] == (1, 1)
        (critical if layer.is_critically_sampled else radial).append(layer)
        if layer.is_critically_sampled:
            assert layer.down_filter.ndim == 1
        else:
            assert layer.down_filter.ndim == 2
            torch.testing.assert_close(layer.down_filter.sum(), torch.tensor(1.0))
            torch.testing.assert_close(layer.down_filter, layer.down_filter.t())
    assert radial and critical
    with torch.no_grad():
        assert G(_z(1), None).shape == (1, 3, 16, 8)


def test_explicit_sizes_and_design_lowpass_filter():
    taps = nets.SynthesisLayer.design_lowpass_filter(numtaps=12, cutoff=2, width=4, fs=16)
    assert taps.shape == (12,) and torch.allclose(taps, taps.flip(0))
    torch.testing.assert_close(taps.sum(), torch.tensor(1.0))
    assert nets.SynthesisLayer.design_lowpass_filter(numtaps=1, cutoff=2, width=4, fs=16) is None
    layer = nets.SynthesisInput(w_dim=4, channels=2, size=[10, 6], sampling_rate=8, bandwidth=2)
    assert layer(torch.randn([1, 4])).shape == (1, 2, 6, 10)


def test_pickle_round_trip_runs_embedded_source():
    """NVIDIA's code bases load our pickles by executing this module's source."""
    G = _tiny_G(square=True)
    z = _z(6)
    with torch.no_grad():
        expected = G(z, None)
        G2 = pickle.loads(pickle.dumps(G))
        torch.testing.assert_close(G2(z, None), expected, rtol=0, atol=0)
    assert G2.init_kwargs == G.init_kwargs


def test_module_imports_only_what_nvidia_code_bases_have():
    source = pathlib.Path(nets.__file__).read_text()
    allowed = {'numpy', 'scipy.signal', 'scipy.special', 'torch', 'torch_utils'}
    tree = ast.parse(source)
    # Optional imports guarded by try/except ImportError are this project's extras (tested
    # without them in test_fast_stylegan2.py); everything else must exist in NVIDIA's code.
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(getattr(h.type, 'id', None) == 'ImportError' for h in node.handlers):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {alias.name for alias in node.names} <= allowed
        elif isinstance(node, ast.ImportFrom):
            assert node.module in ('torch_utils', 'torch_utils.ops')
            assert {alias.name for alias in node.names} <= {
                'misc', 'persistence', 'conv2d_gradfix', 'filtered_lrelu', 'bias_act'}
