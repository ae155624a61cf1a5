"""StyleGAN1 TensorFlow pickles: conversion reproduces the original, errors are one line."""

import json
import pickle
import sys
import types

import numpy as np
import pytest
import torch

import legacy
from training import networks_stylegan1

FIXTURES = ['sg1_square64', 'sg1_square128auto']
RAW_TOL = 1e-3
W_TOL = 1e-4


def _paths(fixtures_dir, name):
    folder = fixtures_dir / 'networks'
    return folder / f'{name}.pkl', folder / f'{name}_ref.npz', folder / f'{name}_ref.json'


def _uint8_nhwc(img):
    """The original's convert_images_to_uint8: saturate_cast(x * 127.5 + 128), i.e. clamp then truncate."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()


def _max_diff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


_CACHE = {}


def _load(fixtures_dir, name):
    if name not in _CACHE:
        pkl, npz, _ = _paths(fixtures_dir, name)
        _CACHE[name] = (legacy.load_network(pkl), dict(np.load(npz)))
    return _CACHE[name]


# ----------------------------------------------------------------------------
# Against the original's outputs


@pytest.mark.parametrize('name', FIXTURES)
def test_reproduces_every_listed_output(fixtures_dir, name):
    data, refs = _load(fixtures_dir, name)
    info = json.loads(_paths(fixtures_dir, name)[2].read_text())
    assert set(data) == {'G', 'D', 'G_ema'}
    G, G_train = data['G_ema'], data['G']
    assert isinstance(G, networks_stylegan1.Generator) and isinstance(G_train, networks_stylegan1.Generator)
    assert G.c_dim == 0 and G.z_dim == 128 and G.w_dim == 128

    checked = set()
    seeds = sorted({int(k.split('seed')[1]) for k in refs if k.startswith('z_seed')})
    assert seeds == [0, 1, 5]
    with torch.no_grad():
        for seed in seeds:
            z = torch.from_numpy(refs[f'z_seed{seed}'])
            assert np.array_equal(refs[f'z_seed{seed}'], np.random.RandomState(seed).randn(1, G.z_dim))

            w = G.mapping(z, None, truncation_psi=1)
            assert _max_diff(w, refs[f'dlatents_seed{seed}']) <= W_TOL, seed
            img = G.synthesis(w, noise_mode='const', force_fp32=True)
            assert _max_diff(img, refs[f'synth_from_dlatents_seed{seed}']) <= RAW_TOL, seed
            checked |= {f'dlatents_seed{seed}', f'synth_from_dlatents_seed{seed}', f'z_seed{seed}'}

            for psi, cut in ((1.0, 'default8'), (0.7, '8'), (0.5, '4'), (0.7, 'None')):
                kwargs = {} if cut == 'default8' else {'truncation_cutoff': None if cut == 'None' else int(cut)}
                img = G(z, None, truncation_psi=psi, noise_mode='const', **kwargs)
                key = f'seed{seed}_psi{psi}_cut{cut}'
                assert img.shape == refs[f'img_{key}'].shape
                assert _max_diff(img, refs[f'img_{key}']) <= RAW_TOL, key
                assert _max_diff(_uint8_nhwc(img), refs[f'u8_{key}']) <= 1, key
                checked |= {f'img_{key}', f'u8_{key}'}

        z = torch.from_numpy(np.concatenate([refs[f'z_seed{s}'] for s in (0, 1, 5)]))
        img = G(z, None, truncation_psi=0.7, truncation_cutoff=8, noise_mode='const')
        assert _max_diff(img, refs['img_batch_seeds0_1_5_psi0.7_cut8']) <= RAW_TOL
        img = G_train(torch.from_numpy(refs['z_seed0']), None, truncation_psi=1.0, noise_mode='const')
        assert _max_diff(img, refs['G_not_Gs_img_seed0_psi1.0']) <= RAW_TOL
        checked |= {'img_batch_seeds0_1_5_psi0.7_cut8', 'G_not_Gs_img_seed0_psi1.0'}

    assert checked == set(refs) == set(info['ref_arrays'])


def test_truncation_semantics_of_the_original(fixtures_dir):
    """G_style truncates only when psi != 1 and the cutoff is not None; the default cutoff is 8."""
    data, refs = _load(fixtures_dir, 'sg1_square128auto')
    G = data['G_ema']
    z = torch.from_numpy(refs['z_seed1'])
    assert G.num_ws == 12
    with torch.no_grad():
        w_plain = G.mapping(z, None)
        w_default = G.mapping(z, None, truncation_psi=0.7)
        w_none = G.mapping(z, None, truncation_psi=0.7, truncation_cutoff=None)
        w_all = G.mapping(z, None, truncation_psi=0.7, truncation_cutoff=G.num_ws)
    avg = G.mapping.w_avg
    assert torch.equal(w_none, w_plain)                                 # None disables truncation.
    assert torch.allclose(w_default[:, :8], avg + (w_plain[:, :8] - avg) * 0.7, atol=1e-6)
    assert torch.allclose(w_default[:, 8:], w_plain[:, 8:], atol=1e-6)   # lerp with 1, as the original.
    assert torch.allclose(w_all, avg + (w_plain - avg) * 0.7, atol=1e-6)
    # The reference for cutoff=None is the untruncated image, as the original computes it.
    assert np.array_equal(refs['img_seed1_psi0.7_cutNone'], refs['img_seed1_psi1.0_cutdefault8'])


def test_layout_and_fused_upsampling(fixtures_dir):
    G64 = _load(fixtures_dir, 'sg1_square64')[0]['G_ema']
    G128 = _load(fixtures_dir, 'sg1_square128auto')[0]['G_ema']
    assert G64.synthesis.structure == 'fixed' and G128.synthesis.structure == 'recursive'
    # The fused transposed convolution is used where the input's smaller side x 2 >= 128 only.
    assert [i for i in range(G128.num_ws) if getattr(G128.synthesis, f'layer{i}').fused] == [10]
    assert not any(getattr(G64.synthesis, f'layer{i}').fused for i in range(G64.num_ws))
    names = dict(G128.named_parameters())
    assert 'synthesis.layer0.const' in names and 'synthesis.b4.const' not in names
    assert {f'synthesis.torgb{2 ** r}.weight' for r in range(2, 8)} <= set(names)
    assert float(G128.synthesis.lod) == 0


def test_discriminator_converted(fixtures_dir):
    for name in FIXTURES:
        D = _load(fixtures_dir, name)[0]['D']
        assert isinstance(D, networks_stylegan1.Discriminator)
        img = torch.randn([4, 3, D.img_resolution, D.img_resolution], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            scores = D(img, None)
        assert scores.shape == (4, 1) and torch.isfinite(scores).all()


# ----------------------------------------------------------------------------
# Noise modes, saving and loading back


def test_noise_modes(fixtures_dir):
    G = _load(fixtures_dir, 'sg1_square64')[0]['G_ema']
    w = G.mapping(torch.from_numpy(np.random.RandomState(3).randn(2, G.z_dim)), None)
    with torch.no_grad():
        const = G.synthesis(w, noise_mode='const')
        none1 = G.synthesis(w, noise_mode='none')
        none2 = G.synthesis(w, noise_mode='none')
        torch.manual_seed(0)
        rand1 = G.synthesis(w, noise_mode='random')
        rand2 = G.synthesis(w, noise_mode='random')
    assert torch.equal(none1, none2)
    assert _max_diff(none1, const) > 1e-2
    assert _max_diff(rand1, const) > 1e-2 and _max_diff(rand1, rand2) > 1e-2
    with pytest.raises(ValueError):
        G.synthesis(w, noise_mode='bogus')


def test_save_and_load_back(fixtures_dir, tmp_path):
    G = _load(fixtures_dir, 'sg1_square128auto')[0]['G_ema']
    z = torch.from_numpy(np.random.RandomState(7).randn(2, G.z_dim))
    with torch.no_grad():
        expected = G(z, None, truncation_psi=0.6, noise_mode='const')
    path = tmp_path / 'sg1.pkl'
    legacy.save_network_pkl({'G_ema': G}, path)

    # The file is the official persistent format; its record rebuilds our class exactly.
    record = legacy.read_pickle_safely(path)['G_ema']
    assert isinstance(record, legacy.PersistentRecord) and record.class_name == 'Generator'
    json.dumps(record.init_kwargs)                                      # Plain JSON-able config.
    rebuilt = legacy.rebuild_network(record)
    assert isinstance(rebuilt, networks_stylegan1.Generator)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(z, None, truncation_psi=0.6, noise_mode='const'), expected)

    # The trusted path runs the embedded source, as NVIDIA's loaders do.
    trusted = legacy.load_network_pkl(path, trust_embedded_code=True)['G_ema']
    with torch.no_grad():
        assert torch.equal(trusted(z, None, truncation_psi=0.6, noise_mode='const'), expected)

    # The safe loader rebuilds our StyleGAN1 classes without running the embedded source.
    loaded = legacy.load_network(path)['G_ema']
    assert isinstance(loaded, networks_stylegan1.Generator)
    with torch.no_grad():
        assert torch.equal(loaded(z, None, truncation_psi=0.6, noise_mode='const'), expected)


def test_export_round_trip(fixtures_dir, tmp_path):
    pytest.importorskip('safetensors')
    G = _load(fixtures_dir, 'sg1_square64')[0]['G_ema']
    path = tmp_path / 'sg1.safetensors'
    legacy.export_network(G, path)
    loaded = legacy.load_exported_network(path)
    w = G.mapping(torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim)), None, truncation_psi=0.8)
    with torch.no_grad():
        assert torch.equal(loaded.synthesis(w, noise_mode='const'), G.synthesis(w, noise_mode='const'))


# ----------------------------------------------------------------------------
# Architecture without fixtures: tall images, progressive growing


def test_tall_generator_and_discriminator():
    torch.manual_seed(0)
    G = networks_stylegan1.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3, square=False,
                                     synthesis_kwargs=dict(channels=[16, 8, 8, 4]))
    D = networks_stylegan1.Discriminator(c_dim=0, img_resolution=32, img_channels=3, square=False,
                                         channels=[16, 8, 8, 4], dense_features=8)
    assert G.synthesis.layer0.const.shape == (16, 4, 2)
    assert G.synthesis.layer7.noise_const.shape == (32, 16)
    with torch.no_grad():
        img = G(torch.randn([2, 16]), None, noise_mode='const')
        assert img.shape == (2, 3, 32, 16)
        assert D(img, None).shape == (2, 1)
    assert D.epilogue.dense0.weight.shape == (8, 4 * 16 * 2)


def _progressive_pair(cls, **kwargs):
    torch.manual_seed(1)
    a = cls(structure='recursive', **kwargs)
    b = cls(structure='linear', **kwargs)
    b.load_state_dict(a.state_dict())
    return a.eval(), b.eval()


def test_level_of_detail_blending():
    """Recursive and linear structures agree for lod within range; integer lod = a lower resolution."""
    kwargs = dict(w_dim=8, img_resolution=32, img_channels=3, channels=[8, 8, 4, 4])
    Gr, Gl = _progressive_pair(networks_stylegan1.SynthesisNetwork, **kwargs)
    Dr, Dl = _progressive_pair(networks_stylegan1.Discriminator, c_dim=0, img_resolution=32, img_channels=3,
                               channels=[8, 8, 4, 4], dense_features=8)
    ws = torch.randn([2, Gr.num_ws, 8])
    images = torch.randn([4, 3, 32, 32])
    with torch.no_grad():
        for lod in (0.0, 0.3, 1.0, 1.5, 2.7, 3.0):
            for net in (Gr, Gl, Dr, Dl):
                net.lod.fill_(lod)
            out_r, out_l = Gr(ws, noise_mode='none'), Gl(ws, noise_mode='none')
            assert out_r.shape == (2, 3, 32, 32)
            assert _max_diff(out_r, out_l) < 1e-5, lod
            assert _max_diff(Dr(images), Dl(images)) < 1e-5, lod
        Gr.lod.fill_(2.0)
        x = Gr.layer1(Gr.layer0(None, ws[:, 0], noise_mode='none'), ws[:, 1], noise_mode='none')
        x = Gr._block(x, ws, 3, 'none')
        expected = Gr.torgb8(x).repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
        assert _max_diff(Gr(ws, noise_mode='none'), expected) < 1e-6


# ----------------------------------------------------------------------------
# Bad TensorFlow pickles


class _FakeNetwork:
    """Stands in for dnnlib.tflib.network.Network when writing test pickles."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return (_FakeNetwork.network_class, (), self.state)


@pytest.fixture
def write_tf_pickle(monkeypatch):
    """Returns write(records, path): pickles TFNetworkRecord-like states under the original global name."""
    module = types.ModuleType('dnnlib.tflib.network')

    class Network:
        pass
    Network.__module__ = 'dnnlib.tflib.network'
    Network.__qualname__ = Network.__name__ = 'Network'
    module.Network = Network
    monkeypatch.setitem(sys.modules, 'dnnlib.tflib', types.ModuleType('dnnlib.tflib'))
    monkeypatch.setitem(sys.modules, 'dnnlib.tflib.network', module)
    monkeypatch.setattr(_FakeNetwork, 'network_class', Network, raising=False)

    def wrap(state):
        state = dict(state)
        state['components'] = {k: wrap(v.state) for k, v in state.get('components', {}).items()}
        return _FakeNetwork(state)

    def write(states, path):
        with open(path, 'wb') as f:
            pickle.dump(tuple(wrap(s) for s in states), f, protocol=4)
        return path
    return write


def _states(fixtures_dir):
    return [r.state for r in legacy.read_pickle_safely(_paths(fixtures_dir, 'sg1_square64')[0])]


def _one_line_error(path, match):
    with pytest.raises(legacy.NetworkFileError, match=match) as info:
        legacy.load_network(path)
    assert '\n' not in str(info.value)
    return str(info.value)


def test_rewritten_pickle_still_loads(fixtures_dir, write_tf_pickle, tmp_path):
    path = write_tf_pickle(_states(fixtures_dir), tmp_path / 'same.pkl')
    data = legacy.load_network(path)
    refs = _load(fixtures_dir, 'sg1_square64')[1]
    with torch.no_grad():
        img = data['G_ema'](torch.from_numpy(refs['z_seed0']), None, noise_mode='const')
    assert _max_diff(img, refs['img_seed0_psi1.0_cutdefault8']) <= RAW_TOL


def test_other_state_version_is_refused(fixtures_dir, write_tf_pickle, tmp_path):
    states = _states(fixtures_dir)
    states[2] = dict(states[2], version=2)
    path = write_tf_pickle(states, tmp_path / 'v2.pkl')
    _one_line_error(path, r'Gs: TensorFlow network state version 2 is not supported')


def test_truncated_pickle_is_refused(fixtures_dir, tmp_path):
    data = _paths(fixtures_dir, 'sg1_square64')[0].read_bytes()
    path = tmp_path / 'truncated.pkl'
    path.write_bytes(data[:len(data) // 2])
    _one_line_error(path, r'truncated or corrupt')


def test_missing_variable_is_named(fixtures_dir, write_tf_pickle, tmp_path):
    states = _states(fixtures_dir)
    synthesis = states[2]['components']['synthesis']
    synthesis.state = dict(synthesis.state, variables=[(n, v) for n, v in synthesis.state['variables']
                                                       if n != '16x16/Conv1/StyleMod/bias'])
    path = write_tf_pickle(states, tmp_path / 'missing.pkl')
    _one_line_error(path, r"Gs/synthesis: variable '16x16/Conv1/StyleMod/bias' is missing")


def test_wrong_shape_is_named(fixtures_dir, write_tf_pickle, tmp_path):
    states = _states(fixtures_dir)
    synthesis = states[0]['components']['synthesis']
    synthesis.state = dict(synthesis.state, variables=[(n, v[:, :, :-1] if n == '8x8/Conv1/weight' else v)
                                                       for n, v in synthesis.state['variables']])
    path = write_tf_pickle(states, tmp_path / 'shape.pkl')
    _one_line_error(path, r"G/synthesis: variable '8x8/Conv1/weight' has shape")


def _tf_layout(G, D, scope):
    """Our tall networks written back in the original's variable layout (scope(res) names 'HxW')."""
    t = {k: v.detach().numpy() for k, v in list(G.named_parameters()) + list(G.named_buffers())}
    log2 = G.synthesis.resolution_log2
    synthesis = [('lod', np.float32(0))]
    for idx in range(G.num_ws):
        synthesis.append((f'noise{idx}', t[f'synthesis.layer{idx}.noise_const'][None, None]))

    def layer(prefix, idx):
        our = f'synthesis.layer{idx}'
        out = [(f'{prefix}/weight', t[f'{our}.weight'].transpose(2, 3, 1, 0))] if f'{our}.weight' in t else []
        return out + [(f'{prefix}/Noise/weight', t[f'{our}.noise_strength']), (f'{prefix}/bias', t[f'{our}.bias']),
                      (f'{prefix}/StyleMod/weight', t[f'{our}.affine.weight'].T),
                      (f'{prefix}/StyleMod/bias', t[f'{our}.affine.bias'])]
    synthesis.append((f'{scope(2)}/Const/const', t['synthesis.layer0.const'][None]))
    synthesis += layer(f'{scope(2)}/Const', 0) + layer(f'{scope(2)}/Conv', 1)
    for res in range(3, log2 + 1):
        synthesis += layer(f'{scope(res)}/Conv0_up', res * 2 - 4) + layer(f'{scope(res)}/Conv1', res * 2 - 3)
    synthesis += [('ToRGB_lod0/weight', t[f'synthesis.torgb{2 ** log2}.weight'].transpose(2, 3, 1, 0)),
                  ('ToRGB_lod0/bias', t[f'synthesis.torgb{2 ** log2}.bias'])]
    mapping = []
    for idx in range(G.mapping.num_layers):
        mapping += [(f'Dense{idx}/weight', t[f'mapping.fc{idx}.weight'].T),
                    (f'Dense{idx}/bias', t[f'mapping.fc{idx}.bias'])]
    kwargs = dict(structure='fixed')

    def net(name, func, variables, components={}):
        return types.SimpleNamespace(state=dict(version=3, name=name, static_kwargs=kwargs, components=components,
                                                build_module_src='', build_func_name=func, variables=variables))
    g = net('Gs', 'G_style', [('lod', np.float32(0)), ('dlatent_avg', t['mapping.w_avg'])],
            dict(synthesis=net('G_synthesis', 'G_synthesis', synthesis),
                 mapping=net('G_mapping', 'G_mapping', mapping)))
    d = {k: v.detach().numpy() for k, v in list(D.named_parameters()) + list(D.named_buffers())}
    dvars = [('lod', np.float32(0)), ('FromRGB_lod0/weight', d[f'fromrgb{2 ** log2}.weight'].transpose(2, 3, 1, 0)),
             ('FromRGB_lod0/bias', d[f'fromrgb{2 ** log2}.bias'])]
    for res in range(3, log2 + 1):
        for tf_name, ours in (('Conv0', 'conv0'), ('Conv1_down', 'conv1_down')):
            dvars += [(f'{scope(res)}/{tf_name}/weight', d[f'block{2 ** res}.{ours}.weight'].transpose(2, 3, 1, 0)),
                      (f'{scope(res)}/{tf_name}/bias', d[f'block{2 ** res}.{ours}.bias'])]
    dvars += [(f'{scope(2)}/Conv/weight', d['epilogue.conv.weight'].transpose(2, 3, 1, 0)),
              (f'{scope(2)}/Conv/bias', d['epilogue.conv.bias'])]
    for idx in (0, 1):
        dvars += [(f'{scope(2)}/Dense{idx}/weight', d[f'epilogue.dense{idx}.weight'].T),
                  (f'{scope(2)}/Dense{idx}/bias', d[f'epilogue.dense{idx}.bias'])]
    return g, net('D', 'D_basic', dvars), g


@pytest.mark.parametrize('scope', [lambda r: f'{2 ** r}x{2 ** r // 2}', lambda r: f'{2 ** r}x{2 ** r}'],
                         ids=['HxW', 'HxH'])
def test_tall_layout_is_read_from_shapes(scope):
    import legacy_tf
    torch.manual_seed(2)
    kwargs = dict(img_resolution=32, img_channels=3, square=False)
    G = networks_stylegan1.Generator(z_dim=16, c_dim=0, w_dim=16, mapping_kwargs=dict(num_layers=3),
                                     synthesis_kwargs=dict(channels=[16, 8, 8, 4]), **kwargs)
    G.mapping.w_avg.normal_()
    D = networks_stylegan1.Discriminator(c_dim=0, channels=[16, 8, 8, 4], dense_features=8, **kwargs)
    converted = legacy_tf.convert_tf_networks(_tf_layout(G, D, scope))
    G2, D2 = converted['G_ema'], converted['D']
    assert G2.square is False and G2.img_resolution == 32 and G2.synthesis.channels == [16, 8, 8, 4]
    z = torch.randn([2, 16])
    img = torch.randn([2, 3, 32, 16])
    with torch.no_grad():
        assert torch.equal(G2(z, None, truncation_psi=0.5, noise_mode='const'),
                           G(z, None, truncation_psi=0.5, noise_mode='const'))
        assert torch.equal(D2(img, None), D(img, None))
