"""generate.py: the importable function and the command line."""

import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan_human import commands
import generate
import legacy
from conftest import ROOT
from helpers import load_refs


def run_cli(*args):
    result = CliRunner().invoke(generate.main, [str(a) for a in args])
    return result


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg2_square64', 'sg3t_rect64', 'sg3r_rect64'])
@pytest.mark.parametrize('noise', ['const', 'none'])
def test_cli_reproduces_upstream_images(fixtures_dir, tmp_path, name, noise):
    _, refs, seeds = load_refs(fixtures_dir, name)
    for psi in (1.0, 0.7):
        outdir = tmp_path / f'psi{psi}'
        result = run_cli('--network', fixtures_dir / 'networks' / f'{name}.pkl', '--seeds',
                         ','.join(map(str, seeds)), '--trunc', psi, '--noise-mode', noise,
                         '--outdir', outdir, '--device', 'cpu', '--batch', 2)
        assert result.exit_code == 0, result.output
        latents = np.load(outdir / 'latents.npz')
        assert list(latents['seed']) == seeds
        for i, seed in enumerate(seeds):
            image = np.asarray(PIL.Image.open(outdir / f'seed{seed:04d}.png'))
            ref = refs[f'img_seed{seed}_psi{psi}_{noise}']
            assert np.abs(image.astype(int) - ref.astype(int)).max() <= 1
            np.testing.assert_allclose(latents['w'][i], refs[f'w_seed{seed}_psi{psi}'], atol=1e-4)
            np.testing.assert_array_equal(latents['z'][i], np.random.RandomState(seed).randn(latents['z'].shape[1]))


def test_batch_matches_single_and_noise_none(fixtures_dir):
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')['G_ema']
    _, refs, _ = load_refs(fixtures_dir, 'sg2_rect64')
    single = generate.generate_images(G, [0, 1, 7], truncation_psi=0.7, noise_mode='none')
    batched = generate.generate_images(G, [0, 1, 7], truncation_psi=0.7, noise_mode='none', batch_size=2)
    for a, b in zip(single, batched):
        assert a.seed == b.seed
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    assert np.abs(single[1].image.astype(int) - refs['img_seed1_psi0.7_none'].astype(int)).max() <= 1


def test_truncation_cutoff(fixtures_dir):
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')['G_ema']
    full = generate.generate_images(G, [5], truncation_psi=0.5)[0].w
    none = generate.generate_images(G, [5], truncation_psi=1.0)[0].w
    cut = generate.generate_images(G, [5], truncation_psi=0.5, truncation_cutoff=4)[0].w
    np.testing.assert_allclose(cut[:4], full[:4], atol=1e-6)
    np.testing.assert_allclose(cut[4:], none[4:], atol=1e-6)
    assert not np.allclose(cut[4:], full[4:])


def test_stylegan3_translate_rotate(fixtures_dir, tmp_path):
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg3t_rect64.pkl')['G_ema']
    before = G.synthesis.input.transform.clone()
    plain = generate.generate_images(G, [0])[0].image
    moved = generate.generate_images(G, [0], translate=(0.2, 0), rotate=15)[0].image
    assert np.abs(plain.astype(int) - moved.astype(int)).mean() > 1
    assert torch.equal(G.synthesis.input.transform, before)   # Restored afterwards.
    result = run_cli('--network', fixtures_dir / 'networks' / 'sg3t_rect64.pkl', '--seeds', '0',
                     '--translate', '0.2,0', '--rotate', '15', '--outdir', tmp_path)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / 'seed0000.png')), moved)


def test_conditional_network_needs_class(tmp_path):
    from training.networks_stylegan2 import Generator
    G = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3, square=False,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=256, channel_max=16))
    legacy.save_network_pkl(G, tmp_path / 'cond.pkl')
    a = generate.generate_images(G, [1], class_idx=0)[0].image
    b = generate.generate_images(G, [1], class_idx=2)[0].image
    assert a.shape == (16, 8, 3) and not np.array_equal(a, b)
    result = run_cli('--network', tmp_path / 'cond.pkl', '--seeds', '1', '--outdir', tmp_path / 'o')
    assert result.exit_code != 0 and '--class' in result.output
    result = run_cli('--network', tmp_path / 'cond.pkl', '--seeds', '1', '--class', '2', '--outdir', tmp_path / 'o')
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / 'o' / 'seed0001.png')), b)


def _assert_user_error(result, needle, outdir):
    assert result.exit_code != 0
    assert 'Traceback' not in result.output
    assert needle.lower() in result.output.lower(), result.output
    assert not outdir.exists() or not any(outdir.iterdir())


@pytest.mark.parametrize('content, needle', [
    (b'', 'empty'),
    (b'\x80\x04\x95\x00', 'truncated or corrupt'),
    (bytes(range(256)), 'not a pickle'),
])
def test_cli_bad_network_files(tmp_path, content, needle):
    path = tmp_path / 'bad.pkl'
    path.write_bytes(content)
    _assert_user_error(run_cli('--network', path, '--seeds', '0', '--outdir', tmp_path / 'o'), needle, tmp_path / 'o')


def test_cli_other_mistakes(fixtures_dir, tmp_path):
    out = tmp_path / 'o'
    image = tmp_path / 'photo.png'
    PIL.Image.new('RGB', (8, 8)).save(image)
    _assert_user_error(run_cli('--network', image, '--seeds', '0', '--outdir', out), 'PNG image', out)
    _assert_user_error(run_cli('--network', tmp_path, '--seeds', '0', '--outdir', out), 'directory', out)
    _assert_user_error(run_cli('--network', tmp_path / 'missing.pkl', '--seeds', '0', '--outdir', out),
                       'not found', out)
    network = fixtures_dir / 'networks' / 'sg2_rect64.pkl'
    _assert_user_error(run_cli('--network', network, '--seeds', '1-x', '--outdir', out), '--seeds', out)
    _assert_user_error(run_cli('--network', network, '--seeds', '0', '--class', '1', '--outdir', out),
                       'unconditional', out)
    _assert_user_error(run_cli('--network', network, '--seeds', '0', '--rotate', '5', '--outdir', out),
                       'StyleGAN3', out)


def test_real_command_line_one_line_error(tmp_path):
    path = tmp_path / 'empty.pkl'
    path.write_bytes(b'')
    proc = subprocess.run([sys.executable, str(ROOT / 'generate.py'), '--network', str(path), '--seeds', '0',
                           '--outdir', str(tmp_path / 'o')], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'empty' in lines[0]
    assert not (tmp_path / 'o').exists()


def test_parse_range():
    assert commands.parse_range('0-3,7,10-11') == [0, 1, 2, 3, 7, 10, 11]
    for bad in ('', 'a', '3-1', '1-2-3'):
        with pytest.raises(ValueError):
            commands.parse_range(bad)


def test_parse_name_list():
    assert commands.parse_name_list('fid50k_full, kid50k_full,') == ['fid50k_full', 'kid50k_full']
    assert commands.parse_name_list('None') == [] and commands.parse_name_list(' ') == []


def test_choose_device():
    assert commands.choose_device('cpu').type == 'cpu'
    assert commands.choose_device('auto').type in ('cpu', 'cuda', 'mps')
    if not torch.cuda.is_available():
        with pytest.raises(commands.UserError, match='CUDA is not available'):
            commands.choose_device('cuda')
    with pytest.raises(commands.UserError):
        commands.choose_device('tpu')


# ----------------------------------------------------------------------------
# Exact uint8 conversion: upstream truncates x * 127.5 + 128, and so must we.


def test_to_uint8_is_upstreams_truncated_conversion():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.001, 0.5, 0.996, 1.0, 2.0, -3.0]).reshape(1, 1, 3, 3)
    got = generate.to_uint8(x)[0, :, :, 0].flatten().tolist()
    # 0 -> 128.0 -> 128; 0.001 -> 128.13 -> 128; 0.5 -> 191.75 -> 191; -0.5 -> 64.25 -> 64; 0.996 -> 254.99 -> 254
    assert got == [0, 64, 128, 128, 191, 254, 255, 255, 0]


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg3r_rect64'])
def test_images_equal_upstreams_exactly_away_from_rounding_edges(fixtures_dir, name):
    """Where upstream's float value is clear of an integer boundary, our uint8 is exactly upstream's.

    (Our raw output differs from upstream's by up to ~1e-5, i.e. 0.002 levels: only pixels within
    that of a boundary may round the other way.)"""
    G = legacy.load_network(fixtures_dir / 'networks' / f'{name}.pkl')['G_ema']
    _, refs, seeds = load_refs(fixtures_dir, name)
    compared = 0
    for psi in (1.0, 0.7):
        for sample in generate.generate_images(G, seeds, truncation_psi=psi):
            raw = refs[f'raw_seed{sample.seed}_psi{psi}_const'].transpose(1, 2, 0).astype(np.float64)
            level = raw * 127.5 + 128
            clear = np.abs(level - np.rint(level)) > 0.02
            expected = refs[f'img_seed{sample.seed}_psi{psi}_const']
            np.testing.assert_array_equal(sample.image[clear], expected[clear])
            compared += int(clear.sum())
    assert compared > 1000
