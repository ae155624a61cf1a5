"""A training process killed (SIGKILL) while writing a snapshot leaves the previous one intact."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import torch

import legacy
from training import networks_stylegan2, training_loop

ROOT = pathlib.Path(__file__).resolve().parents[1]

_WRITER = '''
import sys, torch
sys.path.insert(0, {root!r})
from training import networks_stylegan2, training_loop
torch.manual_seed(1)
G = networks_stylegan2.Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=64, img_channels=3,
                                 channel_base=16384, channel_max=256, square=False)
while True:
    print('writing', flush=True)
    training_loop.save_snapshot(dict(G=G, G_ema=G, D=None, augment_pipe=None, training_set_kwargs={{}}), {path!r})
'''


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')
@pytest.mark.parametrize('delay', [0.05, 0.2, 0.5])
def test_sigkill_during_snapshot_write_keeps_the_previous_snapshot(tmp_path, delay):
    torch.manual_seed(0)
    G = networks_stylegan2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                                     channel_base=128, channel_max=16, square=False)
    path = tmp_path / 'network-snapshot-000000.pkl'
    training_loop.save_snapshot(dict(G=G, G_ema=G, D=None, augment_pipe=None, training_set_kwargs={}), str(path))
    before = path.read_bytes()

    proc = subprocess.Popen([sys.executable, '-c', _WRITER.format(root=str(ROOT), path=str(path))],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'writing'   # inside the first (large) write now
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()

    data = legacy.load_network_pkl(open(path, 'rb'))          # whatever is there loads in full
    assert set(data) >= {'G', 'G_ema'}
    if path.read_bytes() != before:                           # a later write finished: it is complete
        assert data['G_ema'].img_resolution == 64
    leftovers = [name for name in os.listdir(tmp_path) if name != path.name]
    assert all(name.startswith('.' + path.name) and name.endswith('.tmp') for name in leftovers)
