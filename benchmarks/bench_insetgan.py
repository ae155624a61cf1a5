"""InsetGAN speed: seconds per optimisation step and peak memory, at the published sizes.

\b
python benchmarks/bench_insetgan.py            # StyleGAN2 body 1024x512 + StyleGAN2 face 1024x1024
python benchmarks/bench_insetgan.py --small    # 512x256 body + 512x512 face

Random weights in the published configurations; the face box is where an aligned
person's face sits. Face steps and body steps are timed separately (each renders
the generator it optimises, forward and backward; the other one's image is reused).
"""

import pathlib
import resource
import sys
import time

import click
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.face import FaceBox  # noqa: E402
from inset.optimize import InsetConfig, joint_optimize  # noqa: E402
from training import networks_stylegan2  # noqa: E402


def generator(resolution, square):
    return networks_stylegan2.Generator(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, square=square,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256)).eval()


def seconds_per_step(face_G, body_G, box, face_steps, body_steps):
    w = lambda G: G.mapping(torch.randn(1, G.z_dim), None)[:, :1].detach()  # noqa: E731
    start = time.perf_counter()
    joint_optimize(face_G, body_G, w(face_G), w(body_G), box, None,
                   InsetConfig(face_steps=face_steps, body_steps=body_steps, joint_steps=0))
    return time.perf_counter() - start


@click.command()
@click.option('--small', is_flag=True, help='512x256 body and 512 face instead of 1024')
@click.option('--steps', type=click.IntRange(min=1), default=3, show_default=True)
def main(small, steps):
    torch.manual_seed(0)
    res = 512 if small else 1024
    body_G, face_G = generator(res, square=False), generator(res, square=True)
    scale = res / 1024
    box = FaceBox(int(200 * scale), int(60 * scale), int(312 * scale), int(172 * scale))
    base = seconds_per_step(face_G, body_G, box, 1, 1)                      # setup + one of each
    face = (seconds_per_step(face_G, body_G, box, 1 + steps, 1) - base) / steps
    body = (seconds_per_step(face_G, body_G, box, 1, 1 + steps) - base) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = 25 * face + 150 * body + 250 * face + 250 * body
    print(f'body {res}x{res // 2}, face {res}x{res}, {torch.get_num_threads()} threads')
    print(f'face step {face:.2f} s, body step {body:.2f} s ({1 / face:.3f} and {1 / body:.3f} steps/s)')
    print(f'peak RSS {peak:.0f} MB; the default schedule (25 + 150 + 500 steps) takes about {total / 60:.0f} min')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
