"""benchmarks/bench_ops.py runs end to end on tiny sizes (no timing assertions)."""

import json

from click.testing import CliRunner

from helpers import load_benchmark



def _bench():
    return load_benchmark('bench_ops')


def test_quick_run_writes_every_table(tmp_path):
    bench = _bench()
    out = tmp_path / 'bench.json'
    result = CliRunner().invoke(bench.main, ['--quick', '--reps', '1', '--in-process', '--out', str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert 'CPU:' in data['machine'] and 'flags:' in data['machine'] and 'load average' in data['machine']
    assert data['device'] == 'cpu' and data['batch'] == 1
    ops = data['ops']
    names = sorted({r['op'] for r in ops})
    assert any(n.startswith('filtered_lrelu up4 radial') for n in names)
    assert any(n.startswith('bias_act') for n in names) and any(n.startswith('upsample2d') for n in names)
    for row in ops:
        assert row['forward_s'] > 0 and row['train_s'] > 0 and row['train_traffic_mb'] > 0
    # The fused kernels read and write each tensor once: far less than the reference composition.
    for row in ops:
        if row['path'] == 'ref' and row['op'].startswith('filtered_lrelu'):
            assert row['forward_traffic_mb'] > 10 * row['fused_forward_mb']
            assert row['train_traffic_mb'] > 10 * row['fused_train_mb']
    assert {(r['network'], r['path']) for r in data['generate']} == {
        (n, p) for n in ('sg2_quick', 'sg3r_quick') for p in ('ref', 'fast', 'polyphase')}
    assert all(r['seconds'] > 0 and r['regularisation'].startswith('R1') for r in data['train'])
    assert 'bytes moved, from the shapes' in result.output and 'one training step' in result.output
    assert 'load average at the end' in result.output


def test_bad_section_is_one_line():
    result = CliRunner().invoke(_bench().main, ['--only', 'ops,nope'])
    assert result.exit_code == 2 and "nope: expected some of ops, generate, train" in result.output


def test_traffic_counts_reads_and_writes_but_not_views():
    import torch
    bench = _bench()
    x = torch.zeros(1000)
    with bench.TrafficCounter() as counter:
        y = x.view(10, 100)          # a view: nothing moves
        z = y + 1                    # reads 4000 bytes, writes 4000
    assert counter.bytes == 8000 and z.shape == (10, 100)
