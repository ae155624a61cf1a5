"""train.py under torchrun with two CPU processes: both ranks train, only rank 0 writes."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import PIL.Image

import legacy

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _dataset(folder, count=16):
    folder.mkdir()
    rng = np.random.RandomState(0)
    for i in range(count):
        img = np.full((32, 16, 3), 255, np.uint8)
        img[rng.randint(2, 8):rng.randint(20, 30), rng.randint(2, 6):rng.randint(9, 14)] = rng.randint(0, 200, 3)
        PIL.Image.fromarray(img).save(folder / f'img{i:02d}.png')


def test_torchrun_two_cpu_processes(tmp_path):
    _dataset(tmp_path / 'data')
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
               str(ROOT / 'train.py'), '--outdir', str(tmp_path / 'runs'), '--data', str(tmp_path / 'data'),
               '--cfg', 'stylegan2', '--flavour', 'stylegan3', '--cbase', '256', '--cmax', '16', '--map-depth', '1',
               '--batch', '4', '--mbstd-group', '2', '--gamma', '1', '--kimg', '0.024', '--tick', '0.012', '--snap', '1',
               '--metrics', 'none', '--device', 'cpu']
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = (tmp_path / 'runs').iterdir()
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['num_gpus'] == 2 and options['batch_size'] == 4 and options['batch_gpu'] == 2
    ticks = [json.loads(line) for line in (run_dir / 'stats.jsonl').read_text().splitlines()]
    assert len(ticks) == 3                                  # ticks 0, 1, 2: each written once (rank 0 only)
    assert all(np.isfinite(t['Loss/G/loss']['mean']) and np.isfinite(t['Loss/D/loss']['mean']) for t in ticks)
    # The snapshot is taken after the loop checked that every rank holds identical G, D and G_ema.
    snapshot = sorted(run_dir.glob('network-snapshot-*.pkl'))[-1]
    data = legacy.load_network_pkl(open(snapshot, 'rb'))
    assert {'G', 'D', 'G_ema'} <= set(data)
