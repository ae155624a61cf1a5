"""generate.py --projected-w (NVIDIA's option), latent files of every kind, and torchrun generation."""

import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import generate
import legacy
from conftest import FIXTURES, ROOT
from stylegan_human import processes
from stylegan_human.latent_files import load_latents, merge_latent_files, save_latents
from stylegan_human.sampling import generate_images

NETWORK = FIXTURES / 'networks' / 'sg2_rect64.pkl'


@pytest.fixture(scope='module')
def G():
    return legacy.load_network(NETWORK)['G_ema'].eval()


def _run(*args):
    return CliRunner().invoke(generate.main, [str(a) for a in args])


def test_projected_w_renders_nvidias_file_layout(G, tmp_path):
    samples = generate_images(G, [3, 5], truncation_psi=0.7)
    ws = np.stack([s.w for s in samples])                    # [2, num_ws, w_dim], NVIDIA's projected_w layout
    np.savez(tmp_path / 'projected_w.npz', w=ws)
    result = _run('--network', NETWORK, '--projected-w', tmp_path / 'projected_w.npz', '--seeds', '1',
                  '--outdir', tmp_path / 'out', '--device', 'cpu')
    assert result.exit_code == 0, result.output
    assert '--seeds is ignored' in result.output
    for idx, sample in enumerate(samples):
        image = np.asarray(PIL.Image.open(tmp_path / 'out' / f'proj{idx:02d}.png'))
        np.testing.assert_array_equal(image, sample.image)
    assert sorted(os.listdir(tmp_path / 'out')) == ['proj00.png', 'proj01.png']


def test_projected_w_takes_pivots_latents_and_one_layer_codes(G, tmp_path):
    sample = generate_images(G, [7])[0]
    w_plus = torch.from_numpy(sample.w)[None]
    torch.save(w_plus, tmp_path / 'pivot.pt')
    save_latents([sample], tmp_path / 'latents.npz')
    np.savez(tmp_path / 'one_layer.npz', w=sample.w[None, :1])   # [1, 1, w_dim]: no truncation cutoff, so all rows equal
    for name in ('pivot.pt', 'latents.npz', 'one_layer.npz'):
        ws = load_latents(tmp_path / name, G)
        assert ws.shape == (1, G.num_ws, G.w_dim)
        torch.testing.assert_close(ws, w_plus)


@pytest.mark.parametrize('content, needle', [
    (np.zeros((2, 3, 4), np.float32), 'latents of shape [2, 3, 4]'),
    (np.zeros((2, 3), np.int64), 'latents of shape'),
])
def test_projected_w_of_the_wrong_shape_is_one_line(tmp_path, content, needle):
    np.savez(tmp_path / 'bad.npz', w=content)
    result = _run('--network', NETWORK, '--projected-w', tmp_path / 'bad.npz', '--outdir', tmp_path / 'out')
    assert result.exit_code == 1
    assert needle in result.output and str(tmp_path / 'bad.npz') in result.output
    assert 'Traceback' not in result.output and not (tmp_path / 'out').exists()


def test_seeds_or_projected_w_is_required(tmp_path):
    result = _run('--network', NETWORK, '--outdir', tmp_path / 'out')
    assert result.exit_code != 0 and '--seeds' in result.output and '--projected-w' in result.output


def test_merged_latent_files_equal_one_file(G, tmp_path):
    samples = generate_images(G, [0, 1, 2, 3, 4])
    save_latents(samples, tmp_path / 'all.npz')
    save_latents(samples[:2], tmp_path / 'a.npz')
    save_latents(samples[2:], tmp_path / 'b.npz')
    merge_latent_files([tmp_path / 'a.npz', tmp_path / 'missing.npz', tmp_path / 'b.npz'], tmp_path / 'merged.npz')
    assert (tmp_path / 'merged.npz').read_bytes() == (tmp_path / 'all.npz').read_bytes()
    with np.load(tmp_path / 'merged.npz') as merged:
        assert list(merged['seed']) == [0, 1, 2, 3, 4]
        assert merged['w'].shape == (5, G.num_ws, G.w_dim)


def test_share_covers_every_item_once_in_order():
    for count in range(0, 12):
        for world in range(1, 5):
            parts = [processes.share(list(range(count)), rank, world) for rank in range(world)]
            assert sum(parts, []) == list(range(count))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_torchrun_two_processes_write_the_files_of_one(tmp_path):
    common = ['--network', str(NETWORK), '--seeds', '0-6', '--trunc', '0.8', '--device', 'cpu']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    one = subprocess.run([sys.executable, str(ROOT / 'generate.py'), *common, '--outdir', str(tmp_path / 'one')],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node=2',
                          str(ROOT / 'generate.py'), *common, '--outdir', str(tmp_path / 'two')],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    assert 'Wrote 7 image(s)' in two.stdout
    names = sorted(os.listdir(tmp_path / 'one'))
    assert names == sorted(os.listdir(tmp_path / 'two')) and len(names) == 8      # 7 images + latents.npz
    for name in names:
        assert (tmp_path / 'one' / name).read_bytes() == (tmp_path / 'two' / name).read_bytes(), name
