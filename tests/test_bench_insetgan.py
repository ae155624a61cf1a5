"""benchmarks/bench_insetgan.py: its per-step timing counts steps within a stage only
(no timing assertions; the whole benchmark needs published-size generators and minutes)."""

from helpers import load_benchmark


def test_seconds_per_step_times_each_stage_without_its_first_step(monkeypatch):
    bench = load_benchmark('bench_insetgan')
    clock = iter(range(1000))
    monkeypatch.setattr(bench.time, 'perf_counter', lambda: float(next(clock)) ** 2)

    def run(steps, on_step):       # as joint_optimize: the face stage, then the body stage
        for stage in ('face', 'body'):
            for step in range(steps):
                on_step(stage, step, None, None, None)
    # Stamps at t = 0, 1, 4 (face) and 9, 16, 25 (body): intervals 1, 3 and 7, 9; the
    # warm-up steps (0 -> face, 4 -> 9 into body) are left out.
    assert bench.seconds_per_step(run, 2) == {'face': 2.0, 'body': 8.0}


def test_the_default_schedule_counts_every_step():
    bench = load_benchmark('bench_insetgan')
    config = bench.InsetConfig()
    assert sum(bench.DEFAULT_SCHEDULE.values()) == config.face_steps + config.body_steps + config.joint_steps
