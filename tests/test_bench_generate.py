"""benchmarks/bench_generate.py runs end to end on tiny networks (no timing assertions)."""

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from helpers import load_benchmark



def _bench():
    return load_benchmark('bench_generate')


def test_quick_run_writes_a_complete_table(tmp_path):
    bench = _bench()
    out = tmp_path / 'bench.json'
    result = CliRunner().invoke(bench.main, ['--quick', '--only', 'sg2_quick', '--reps', '1', '--batch', '2', '--bf16',
                                             '--psnr-seeds', '2', '--figure', str(tmp_path / 'figures'),
                                             '--cold-reps', '1', '--out', str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert 'CPU:' in data['machine'] and all(r['gemm_gflops'] > 0 for r in data['rows'])
    rows = data['rows']
    assert [(r['network'], r['batch']) for r in rows] == [('sg2_quick', 1), ('sg2_quick', 2)]
    for row in rows:
        assert row['gflop'] > 0 and row['ref'] > 0 and row['fast'] > 0 and row['fast_mb'] > 0
        assert row['max_diff'] < 1e-3 and row['speedup'] > 0
    (bf16,) = data['bf16_rows']
    assert bf16['network'] == 'sg2_quick' and bf16['bf16'] > 0 and bf16['bf16_gemm_gflops'] > 0
    assert bf16['fp32'] > 0 and bf16['speedup'] > 0   # fp32 timed beside bf16 in the same process
    assert 'alternated in one process' in result.output and 'median over the pairs' in result.output
    assert 20 < bf16['psnr_min'] <= bf16['psnr_mean'] < 100 and bf16['psnr_seeds'] == 2
    assert [f.name for f in (tmp_path / 'figures').iterdir()] == ['bf16_vs_fp32_sg2_quick.jpg']   # no leftovers
    with Image.open(tmp_path / 'figures' / 'bf16_vs_fp32_sg2_quick.jpg') as figure:
        assert figure.size == (3 * 32, 64)                  # 64x32 images: fp32, bf16, difference
    assert f'seed {bf16["worst_seed"]} (the lowest PSNR)' in result.output
    starts = data['cold_start']
    assert starts['pickle'] > starts['pickle_load'] > 0 and starts['safetensors'] > starts['safetensors_load'] > 0
    assert starts['import_torch'] > 0
    assert starts['pickle_mb'] > starts['safetensors_mb']      # the pickle also holds G and D
    assert 'cold start to the first image' in result.output


def test_reference_flops_grow_with_the_network():
    bench = _bench()
    small = bench.reference_flops(bench.build(dict(bench.QUICK['sg2_quick'], img_resolution=32)))
    large = bench.reference_flops(bench.build(bench.QUICK['sg2_quick']))
    assert 0 < small < large


def test_side_by_side_shrinks_the_images_and_keeps_every_difference():
    bench = _bench()
    exact = np.full([2 * bench.FIGURE_HEIGHT, 4, 3], 100, dtype=np.uint8)
    rounded = exact.copy()
    rounded[5, 1, 2] = 103                     # one channel of one pixel, 3 levels off
    figure = bench.side_by_side(exact, rounded)
    assert figure.shape == (bench.FIGURE_HEIGHT, 3 * 2, 3)          # shrunk by 2: three 2-wide panels
    assert figure[2, 0, 0] == 100 and figure[2, 2, 2] == 101         # fp32, then bf16 averaged over 2x2
    difference = figure[:, 4:]
    assert difference[2, 0].tolist() == [3 * bench.DIFFERENCE_GAIN] * 3   # the block's largest difference
    assert difference.sum() == 3 * 3 * bench.DIFFERENCE_GAIN            # and nothing anywhere else


def test_a_figure_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / 'file').write_text('')
    result = CliRunner().invoke(_bench().main, ['--quick', '--figure', str(tmp_path / 'file' / 'figures')])
    assert result.exit_code == 2 and 'cannot make' in result.output and 'Traceback' not in result.output
