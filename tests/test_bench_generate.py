"""benchmarks/bench_generate.py runs end to end on tiny networks (no timing assertions)."""

import json

from click.testing import CliRunner

from helpers import load_benchmark



def _bench():
    return load_benchmark('bench_generate')


def test_quick_run_writes_a_complete_table(tmp_path):
    bench = _bench()
    out = tmp_path / 'bench.json'
    result = CliRunner().invoke(bench.main, ['--quick', '--only', 'sg2_quick', '--reps', '1', '--batch', '2', '--bf16',
                                             '--psnr-seeds', '2',
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
