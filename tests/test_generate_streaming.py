"""generate.py writes each image as it is made: Ctrl-C keeps every finished file, memory stays flat."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest
import torch

import legacy
from conftest import ROOT


@pytest.fixture(scope='module')
def small_network(tmp_path_factory):
    """A tiny 2:1 StyleGAN2 export: 16x8 images, so thousands of seeds take seconds, and 512-wide latents
    (16 kB of z and w per seed), so keeping every seed's data would show in the memory."""
    from training.networks_stylegan2 import Generator
    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=16, img_channels=3, square=False,
                  mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=64, channel_max=8)).eval()
    path = tmp_path_factory.mktemp('net') / 'small.safetensors'
    legacy.export_network(G, path)
    return path


def _generate(network, outdir, seeds, **popen):
    command = [sys.executable, str(ROOT / 'generate.py'), '--network', str(network), '--seeds', seeds,
               '--outdir', str(outdir), '--device', 'cpu']
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize('signum, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_keeps_every_finished_image_and_their_latents(small_network, tmp_path, signum, status):
    outdir = tmp_path / 'out'
    proc = _generate(small_network, outdir, '0-20000')
    deadline = time.time() + 120
    while time.time() < deadline and len(list(outdir.glob('seed*.png'))) < 20:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith('Interrupted: wrote ') and last.endswith(f'of 20001 image(s) to {outdir}'), last
    written = int(last.split()[2])
    images = sorted(outdir.glob('seed*.png'))
    assert 20 <= written < 20001 and len(images) == written
    assert [p.name for p in images] == [f'seed{s:04d}.png' for s in range(written)]
    for path in images:
        with PIL.Image.open(path) as image:
            image.load()   # complete files only: a truncated PNG fails here
            assert image.size == (8, 16)
    latents = np.load(outdir / 'latents.npz')
    assert list(latents['seed']) == list(range(written))
    assert latents['w'].shape[0] == latents['z'].shape[0] == written
    assert sorted(os.listdir(outdir)) == sorted([p.name for p in images] + ['latents.npz'])   # no scratch left


def test_files_follow_the_umask(small_network, tmp_path):
    proc = _generate(small_network, tmp_path / 'out', '0-1', preexec_fn=lambda: os.umask(0o027))
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    for name in ('seed0000.png', 'seed0001.png', 'latents.npz'):
        assert (tmp_path / 'out' / name).stat().st_mode & 0o777 == 0o640, name


def _peak_rss_kb(network, outdir, seeds):
    probe = ('import resource, subprocess, sys\n'
             'r = subprocess.run(sys.argv[1:], capture_output=True)\n'
             'assert r.returncode == 0, r.stderr\n'
             'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n')
    out = subprocess.run([sys.executable, '-c', probe, sys.executable, str(ROOT / 'generate.py'), '--network',
                          str(network), '--seeds', seeds, '--outdir', str(outdir), '--device', 'cpu'],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_memory_is_flat_in_the_number_of_seeds(small_network, tmp_path):
    few = _peak_rss_kb(small_network, tmp_path / 'few', '0-99')
    many = _peak_rss_kb(small_network, tmp_path / 'many', '0-2999')
    assert len(list((tmp_path / 'many').glob('seed*.png'))) == 3000
    # Keeping every seed's image and latents would add about 50 MB for 3000 seeds; allow 8 MB of noise.
    assert many - few < 8 * 1024, (few, many)
