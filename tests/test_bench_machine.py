"""benchmarks/machine.py: when a timed block counts as busy, and how speed-ups are paired."""

from helpers import load_benchmark


def _roofline(machine, before, after, others=0.0):
    r = machine.Roofline(with_bf16='bf16' in before)
    r.before, r.after, r.others = before, after, others
    return r


def test_a_block_is_busy_when_any_measured_rate_drifts_or_others_ran():
    machine = load_benchmark('machine')
    assert not _roofline(machine, {'fp32': 300e9}, {'fp32': 290e9}).busy
    assert _roofline(machine, {'fp32': 300e9}, {'fp32': 250e9}).busy
    assert _roofline(machine, {'fp32': 300e9}, {'fp32': 300e9}, others=0.5).busy
    # A bf16 rate that halves is a busy machine too, though fp32 held.
    steady = {'fp32': 300e9, 'bf16': 1700e9}
    assert not _roofline(machine, steady, dict(steady)).busy
    assert _roofline(machine, steady, {'fp32': 300e9, 'bf16': 714e9}).busy
    assert 'WARNING' in _roofline(machine, steady, {'fp32': 300e9, 'bf16': 714e9}).summary()


def test_a_block_is_busy_when_its_rate_stays_well_below_the_best_this_run_measured(monkeypatch):
    machine = load_benchmark('machine')
    monkeypatch.setattr(machine, '_best_rates', {'fp32': 400e9, 'bf16': 2400e9})
    steady = {'fp32': 390e9, 'bf16': 1700e9}    # no drift, but the matrix units at 71% all along
    assert _roofline(machine, steady, dict(steady)).busy
    assert not _roofline(machine, {'fp32': 390e9, 'bf16': 2300e9}, {'fp32': 380e9, 'bf16': 2250e9}).busy
    assert _roofline(machine, {'fp32': 330e9}, {'fp32': 320e9}).busy


def test_measured_rates_raise_the_best_seen(monkeypatch):
    machine = load_benchmark('machine')
    monkeypatch.setattr(machine, '_best_rates', {'fp32': 1.0})
    with machine.roofline(with_bf16=False, size=64) as limit:
        pass
    assert machine._best_rates['fp32'] == max(limit.before['fp32'], limit.after['fp32']) > 1.0


def test_speed_ups_pair_the_runs_of_each_round():
    machine = load_benchmark('machine')
    # The machine halves its speed in round 2: both sides slow down, the ratio stays 2.
    assert machine.paired_speedup([2.0, 4.0], [1.0, 2.0]) == 2.0
    assert machine.paired_speedup([3.0, 2.0, 9.0], [1.0, 1.0, 1.0]) == 3.0
