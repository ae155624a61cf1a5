"""benchmarks/bench_pti.py: its per-step timing leaves the setup out, its PSNR is the usual one
(no timing assertions; the whole benchmark needs a published-size generator and minutes)."""

import contextlib
import math
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from helpers import load_benchmark

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_seconds_per_step_counts_the_steps_only(monkeypatch):
    bench = load_benchmark('bench_pti')
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr(bench.time, 'perf_counter', lambda: float(next(clock)) ** 2)

    def run(steps, stop):      # setup, then every step asks `stop` first, as the PTI loops do
        for step in range(steps):
            assert stop(step) is False
    # Stamps at t = 0, 1, 4, 9, 16 (4 steps + the end): steps 3, 5, 7 after the warm-up one.
    assert bench.seconds_per_step(run, 3) == 5.0


def test_psnr_of_images_in_minus_one_to_one():
    bench = load_benchmark('bench_pti')
    a = torch.zeros(1, 3, 4, 2)
    assert bench.psnr(a, a + 0.2) == pytest.approx(10 * math.log10(4 / 0.04))


needs_git_checkout = pytest.mark.skipif(shutil.which('git') is None or not (ROOT / '.git').exists(),
                                        reason='--against reads revisions from this git checkout')


@needs_git_checkout
def test_against_a_revision_times_both_trees_in_fresh_processes(monkeypatch, capsys):
    bench = load_benchmark('bench_pti')
    real_roofline = bench.machine.roofline
    monkeypatch.setattr(bench.machine, 'roofline', lambda with_bf16: real_roofline(with_bf16=with_bf16, size=256))
    with contextlib.ExitStack() as stack:
        tree = bench.export_revision('HEAD', stack)
        assert (pathlib.Path(tree) / 'pti' / 'tuning.py').is_file()
        bench.compare_trees('HEAD', tree, resolution=64, steps=2, rounds=1, threads=None)
    assert not pathlib.Path(tree).exists()
    out = capsys.readouterr().out
    for phase in ('W projection', 'pivotal tuning'):
        assert re.search(phase + r'.*: +this tree \d+\.\d\d s/step, HEAD \d+\.\d\d s/step: \d+\.\d\dx', out), out
    assert re.search(r'one photo at the defaults: +this tree \d+\.\d min, HEAD \d+\.\d min: \d+\.\d\dx', out), out


def test_a_whole_photo_weighs_each_phase_by_its_default_step_count(monkeypatch, capsys):
    bench = load_benchmark('bench_pti')
    real_roofline = bench.machine.roofline
    monkeypatch.setattr(bench.machine, 'roofline', lambda with_bf16: real_roofline(with_bf16=with_bf16, size=64))
    seconds = {('ours', 'project'): 1.0, ('ours', 'tune'): 2.0, ('old', 'project'): 3.0, ('old', 'tune'): 4.0}
    monkeypatch.setattr(bench, 'step_times_in', lambda tree, phase, *_: [seconds[str(tree), phase]] * 3)
    monkeypatch.setattr(bench, 'ROOT', 'ours')
    bench.compare_trees('REV', 'old', resolution=64, steps=3, rounds=2, threads=None)
    ours, old = 450 * 1.0 + 350 * 2.0, 450 * 3.0 + 350 * 4.0   # ProjectionConfig and TuningConfig steps
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith('one photo')][0]
    assert f'this tree {ours / 60:.1f} min, REV {old / 60:.1f} min: {old / ours:.2f}x' in line, line


@needs_git_checkout
def test_against_an_unknown_revision_is_one_line_before_any_timing():
    result = CliRunner().invoke(load_benchmark('bench_pti').main, ['--against', 'no-such-revision-here'])
    assert result.exit_code == 2
    assert '--against no-such-revision-here:' in result.output and 'Traceback' not in result.output


def test_pti_steps_imports_the_tree_it_is_given(tmp_path):
    """An editable install maps the packages to its own checkout: the driver must not time that one."""
    (tmp_path / 'pti').mkdir()
    (tmp_path / 'pti' / '__init__.py').write_text('')
    result = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'pti_steps.py'), str(tmp_path), 'tune', '2'],
                            capture_output=True, text=True)
    # The tree's own (empty) pti package is imported, so the driver fails on what it lacks,
    # not on running this checkout's code.
    assert result.returncode != 0 and "No module named 'pti." in result.stderr.splitlines()[-1]
