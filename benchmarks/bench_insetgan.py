"""InsetGAN speed: seconds per face step and per body step, at the published sizes.

\b
python benchmarks/bench_insetgan.py            # StyleGAN2 body 1024x512 + StyleGAN2 face 1024x1024
python benchmarks/bench_insetgan.py --small    # 512x256 body + 512x512 face

Random weights in the published configurations, and LPIPS-AlexNet as insetgan.py uses
by default (speed does not depend on the values); the face box is where an aligned
person's face sits. Each configuration (reference ops in fp32, this project's fast ops
in fp32, and in bf16 where the CPU has native bfloat16; all with the allocator
insetgan.py uses) runs the face stage and then the body stage of ``joint_optimize``
for one warm-up step and ``--steps`` timed ones; a step's time is the interval between
two of its per-step callbacks, and the median is reported. The configurations take
turns over ``--rounds`` rounds, each speed-up is the median over rounds of the ratio
within a round, and the GEMM rate is measured around each run with the CPU flags and
load printed: a busy machine is flagged.
"""

import pathlib
import resource
import sys
import time

import click
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))
import machine  # noqa: E402

from aligner.face import FaceBox  # noqa: E402
from inset.optimize import InsetConfig, joint_optimize  # noqa: E402
from stylegan_human.features.lpips import LPIPS  # noqa: E402
from torch_utils import allocator  # noqa: E402
from training import networks_stylegan2  # noqa: E402

DEFAULT_SCHEDULE = dict(face=InsetConfig().face_steps + InsetConfig().joint_steps // 2,
                        body=InsetConfig().body_steps + InsetConfig().joint_steps // 2)


def generator(resolution, square):
    return networks_stylegan2.Generator(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, square=square,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256)).eval()


def seconds_per_step(run, steps):
    """{stage: median seconds per step} of ``run(steps + 1, on_step)``, which calls
    ``on_step(stage, ...)`` after every step: the intervals between two callbacks of the
    same stage, so each stage's first (warm-up) step and the setup are left out."""
    stamps = []
    run(steps + 1, lambda stage, *_: stamps.append((stage, time.perf_counter())))
    intervals = {}
    for (stage, end), (previous_stage, start) in zip(stamps[1:], stamps):
        if stage == previous_stage:
            intervals.setdefault(stage, []).append(end - start)
    return {stage: float(np.median(seconds)) for stage, seconds in intervals.items()}


@click.command()
@click.option('--small', is_flag=True, help='512x256 body and 512 face instead of 1024')
@click.option('--steps', type=click.IntRange(min=1), default=3, show_default=True, help='Timed steps per stage')
@click.option('--rounds', type=click.IntRange(min=1), default=2, show_default=True,
              help='Rounds over the configurations; times are medians over them')
@click.option('--bf16/--no-bf16', 'with_bf16', default=None,
              help='Also time bf16  [default: where the CPU has native bf16]')
def main(small, steps, rounds, with_bf16):
    allocator.reuse_freed_memory()   # as insetgan.py runs, for every configuration
    torch.manual_seed(0)
    res = 512 if small else 1024
    body_G, face_G = generator(res, square=False), generator(res, square=True)
    lpips = LPIPS('alex').eval().requires_grad_(False)
    scale = res / 1024
    box = FaceBox(int(200 * scale), int(60 * scale), int(312 * scale), int(172 * scale))
    face_w, body_w = (G.mapping(torch.randn(1, G.z_dim), None)[:, :1].detach() for G in (face_G, body_G))

    def run(n, on_step):
        joint_optimize(face_G, body_G, face_w, body_w, box, lpips,
                       InsetConfig(face_steps=n, body_steps=n, joint_steps=0), on_step=on_step)

    print(machine.describe())
    print(f'body {res}x{res // 2}, face {res}x{res}, {torch.get_num_threads()} threads, '
          f'median of {steps} steps per stage; {rounds} rounds, each configuration once per round')
    runs, per_round, limits = machine.configurations_in_turns(lambda: seconds_per_step(run, steps), rounds,
                                                              with_bf16)
    for number_format, ops in runs:
        times = per_round[number_format, ops]
        face, body = (float(np.median([r[stage] for r in times])) for stage in ('face', 'body'))
        minutes = (DEFAULT_SCHEDULE['face'] * face + DEFAULT_SCHEDULE['body'] * body) / 60
        note = ''
        if (number_format, ops) != ('fp32', 'ref'):
            # fp32 fast against the reference; bf16 against fp32 fast
            baseline = ('fp32', 'ref') if number_format == 'fp32' else ('fp32', 'fast')
            ratios = [machine.paired_speedup([b[stage] for b in per_round[baseline]], [r[stage] for r in times])
                      for stage in ('face', 'body')]
            note = f' ({ratios[0]:.2f}x / {ratios[1]:.2f}x {baseline[0]} {baseline[1]})'
        print(f'{number_format} {ops:4} ops: face step {face:.2f} s, body step {body:.2f} s{note}; '
              f'the default schedule about {minutes:.0f} min  (last round: {limits[number_format, ops].summary()})')
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'peak RSS {peak:.0f} MB')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
