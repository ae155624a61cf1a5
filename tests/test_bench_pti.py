"""benchmarks/bench_pti.py: its per-step timing leaves the setup out, its PSNR is the usual one
(no timing assertions; the whole benchmark needs a published-size generator and minutes)."""

import math

import pytest
import torch

from helpers import load_benchmark


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
