"""legacy.py: safe loading of official pickles, saving, export, the trusted opt-in."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import generate
import legacy
from conftest import ROOT
from helpers import check_against_refs, load_refs, rewrite_pickle

NETWORKS = ['sg2_rect64', 'sg2_square64', 'sg3t_rect64', 'sg3r_rect64']


@pytest.mark.parametrize('name', NETWORKS)
def test_fixture_reproduces_upstream(fixtures_dir, name):
    data = legacy.load_network(fixtures_dir / 'networks' / f'{name}.pkl')
    assert set(data) >= {'G', 'D', 'G_ema'}
    G = data['G_ema']
    info, refs, seeds = load_refs(fixtures_dir, name)
    assert (G.img_channels, *G.synthesis(torch.zeros([1, G.num_ws, G.w_dim]), noise_mode='none').shape[2:]) \
        == tuple(info['img_shape'])
    assert check_against_refs(G, refs, seeds) == len(seeds) * 4


def test_embedded_code_is_not_run_by_default(fixtures_dir, tmp_path):
    marker = tmp_path / 'marker'
    evil_src = f'open({str(marker)!r}, "w").write("ran")\n'
    path = tmp_path / 'evil_src.pkl'
    rewrite_pickle(fixtures_dir / 'networks' / 'sg2_rect64.pkl', path, module_src=evil_src)

    G = legacy.load_network(path)['G_ema']          # Safe path: rebuilds our classes.
    assert type(G).__module__ == 'training.networks_stylegan2'
    assert not marker.exists()

    with pytest.raises(Exception):                  # The trusted path would run it (and then fail).
        legacy.load_network(path, trust_embedded_code=True)
    assert marker.exists()


class _ShellPayload:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_shell_payload_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'payload.pkl'
    with open(path, 'wb') as f:
        pickle.dump({'G_ema': _ShellPayload(f'touch {marker}')}, f)
    with pytest.raises(legacy.NetworkFileError, match='posix.system|os.system|nt.system'):
        legacy.load_network(path)
    assert not marker.exists()


def test_missing_square_is_inferred(fixtures_dir, tmp_path):
    for name, square in (('sg2_rect64', False), ('sg2_square64', True)):
        path = tmp_path / f'{name}_nosquare.pkl'
        rewrite_pickle(fixtures_dir / 'networks' / f'{name}.pkl', path,
                       edit_kwargs=lambda kwargs: kwargs.pop('square', None))
        data = legacy.load_network(path)
        assert data['G_ema'].init_kwargs['square'] is square
        assert data['D'].init_kwargs['square'] is square
        _, refs, seeds = load_refs(fixtures_dir, name)
        check_against_refs(data['G_ema'], refs, seeds[:1])


def test_pickle_with_only_g_ema(fixtures_dir, tmp_path):
    path = tmp_path / 'g_ema_only.pkl'
    rewrite_pickle(fixtures_dir / 'networks' / 'sg3t_rect64.pkl', path, keep=['G_ema'])
    data = legacy.load_network(path)
    assert list(data) == ['G_ema']
    _, refs, seeds = load_refs(fixtures_dir, 'sg3t_rect64')
    check_against_refs(data['G_ema'], refs, seeds[:1])


def _images(G, seeds=(0, 3)):
    return np.stack([s.image for s in generate.generate_images(G, seeds, truncation_psi=0.7)])


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg3t_rect64'])
def test_save_load_export_round_trip(fixtures_dir, tmp_path, name):
    data = legacy.load_network(fixtures_dir / 'networks' / f'{name}.pkl')
    G = data['G_ema']
    expected = _images(G)

    legacy.save_network_pkl({k: data[k] for k in ('G', 'D', 'G_ema')}, tmp_path / 'saved.pkl')
    reloaded = legacy.load_network(tmp_path / 'saved.pkl')
    assert set(reloaded) == {'G', 'D', 'G_ema'}
    np.testing.assert_array_equal(_images(reloaded['G_ema']), expected)

    legacy.export_network(reloaded['G_ema'], tmp_path / 'g.safetensors')
    assert (tmp_path / 'g.json').exists()
    exported = legacy.load_exported_network(tmp_path / 'g.safetensors')
    for (n1, t1), (n2, t2) in zip(G.state_dict().items(), exported.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2)
    np.testing.assert_array_equal(_images(exported), expected)

    D = reloaded['D']
    legacy.export_network(D, tmp_path / 'd.safetensors')
    D2 = legacy.load_exported_network(tmp_path / 'd.safetensors')
    img = torch.randn([2, G.img_channels, *expected.shape[1:3]])
    torch.testing.assert_close(D(img, None), D2(img, None), rtol=0, atol=0)


TRUSTED_SCRIPT = '''
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import legacy, generate
G = legacy.load_network(sys.argv[2], trust_embedded_code=True)['G_ema']
assert type(G).__module__.startswith('_imported_module_'), type(G).__module__
np.save(sys.argv[3], np.stack([s.image for s in generate.generate_images(G, [0, 3], truncation_psi=0.7)]))
'''


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg3r_rect64'])
def test_trusted_path_loads_our_pickle_in_fresh_process(fixtures_dir, tmp_path, name):
    G = legacy.load_network(fixtures_dir / 'networks' / f'{name}.pkl')['G_ema']
    legacy.save_network_pkl(G, tmp_path / 'ours.pkl')
    out = tmp_path / 'images.npy'
    subprocess.run([sys.executable, '-c', TRUSTED_SCRIPT, str(ROOT), str(tmp_path / 'ours.pkl'), str(out)],
                   check=True, cwd=tmp_path)
    # The same images, up to float rounding: in about one run in seven a few StyleGAN3-R pixels
    # (3 of 12288) lying on a rounding edge came out one level apart between the two processes.
    got, want = np.load(out).astype(np.int16), _images(G).astype(np.int16)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1
    assert np.count_nonzero(got != want) <= got.size // 1000


@pytest.mark.parametrize('content, message', [
    (b'', 'empty'),
    (b'\x80\x04\x95', 'truncated or corrupt'),
    (bytes(range(256)) * 4, 'not a pickle'),
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 64, 'PNG image'),
])
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / 'bad.pkl'
    path.write_bytes(content)
    with pytest.raises(legacy.NetworkFileError, match=message) as info:
        legacy.load_network(path)
    assert '\n' not in str(info.value) and 'bad.pkl' in str(info.value)


def test_truncated_real_pickle(fixtures_dir, tmp_path):
    data = (fixtures_dir / 'networks' / 'sg2_rect64.pkl').read_bytes()
    path = tmp_path / 'cut.pkl'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(legacy.NetworkFileError, match='truncated or corrupt'):
        legacy.load_network(path)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(legacy.NetworkFileError, match='is a directory'):
        legacy.load_network(tmp_path)
    with pytest.raises(legacy.NetworkFileError, match='not found|no such|unknown'):
        legacy.load_network(tmp_path / 'nope.pkl')


def test_force_fp16_rebuilds_with_fp16_layers(fixtures_dir):
    data = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl', force_fp16=True)
    assert data['G_ema'].init_kwargs['synthesis_kwargs']['num_fp16_res'] == 4
    assert data['D'].init_kwargs['num_fp16_res'] == 4
    _, refs, seeds = load_refs(fixtures_dir, 'sg2_rect64')
    check_against_refs(data['G_ema'], refs, seeds[:1])   # force_fp32 output is unchanged.


# ----------------------------------------------------------------------------
# --trust-embedded-code: the file's own code and references failing are one line.


def _raw_pickle_asking_for(module, name):
    """{'G_ema': module.name()} as pickle opcodes, without needing the class to exist here."""
    return (b'\x80\x02}X\x05\x00\x00\x00G_ema' + b'c' + module.encode() + b'\n' + name.encode() + b'\n'
            + b')\x81s.')


@pytest.mark.parametrize('make, words', [
    (dict(module_src='from torch_utils.ops import no_such_op\n'), ['embedded', 'ImportError', 'no_such_op']),
    (dict(module_src='raise RuntimeError("written for other code")\n'), ['RuntimeError: written for other code']),
    (dict(module_src='def broken(:\n'), ['embedded', 'SyntaxError', 'line 1']),
    (dict(module_src='x = 1\n'), ['embedded', 'does not define class']),
    (_raw_pickle_asking_for('dnnlib.tflib.network', 'Network'), ['dnnlib.tflib.network.Network', 'dnnlib.tflib']),
    (_raw_pickle_asking_for('training.networks_stylegan2', 'NoSuchClass'),
     ['training.networks_stylegan2.NoSuchClass', 'does not define']),
    ('cut', ['truncated or corrupt']),
])
def test_trusted_loading_failures_are_one_line(fixtures_dir, tmp_path, make, words):
    from helpers import one_line_failure
    path = tmp_path / 'net.pkl'
    source = fixtures_dir / 'networks' / 'sg2_rect64.pkl'
    if isinstance(make, dict):
        rewrite_pickle(source, path, **make)
    elif make == 'cut':
        path.write_bytes(source.read_bytes()[:300])
    else:
        path.write_bytes(make)
    result = CliRunner().invoke(generate.main, ['--network', str(path), '--seeds', '0', '--outdir',
                                                str(tmp_path / 'out'), '--trust-embedded-code'])
    one_line_failure(result, 'net.pkl', *words)
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def test_trusted_loading_does_not_hide_a_bug_in_our_code(fixtures_dir, tmp_path, monkeypatch):
    """Our persistence code failing is a bug to see (a traceback), not the file's fault."""
    import torch_utils.persistence
    path = tmp_path / 'net.pkl'
    rewrite_pickle(fixtures_dir / 'networks' / 'sg2_rect64.pkl', path, module_src='x = 2\n')
    monkeypatch.setattr(torch_utils.persistence, 'types', None)       # _src_to_module breaks
    result = CliRunner().invoke(generate.main, ['--network', str(path), '--seeds', '0', '--outdir',
                                                str(tmp_path / 'out'), '--trust-embedded-code'])
    assert isinstance(result.exception, AttributeError), result.output
    with pytest.raises(AttributeError, match='ModuleType'):
        legacy.load_network(path, trust_embedded_code=True)
