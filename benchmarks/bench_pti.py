"""PTI speed: projection and pivotal-tuning steps per second, and peak memory.

\b
python benchmarks/bench_pti.py                  # StyleGAN2 512x256, published config, random weights
python benchmarks/bench_pti.py --resolution 1024 --steps 3

Random weights in the published shapes (generator, LPIPS-AlexNet, NVIDIA's
VGG16): speed does not depend on the values. Each phase runs one warm-up step
(not timed) and then ``--steps`` timed steps through the same functions
run_pti.py uses, in fp32 and, where the CPU has native bfloat16, in bf16 too. The
GEMM rate (4096 products) is measured before and after each phase and printed with
the machine's CPU flags; a busy machine is flagged.
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

from pti.projector import ProjectionConfig, project_w  # noqa: E402
from pti.tuning import TuningConfig, tune_generator  # noqa: E402
from stylegan_human.features.lpips import LPIPS  # noqa: E402
from stylegan_human.features.vgg16_nvidia import VGG16Features  # noqa: E402
from torch_utils import precision  # noqa: E402
from training import networks_stylegan2  # noqa: E402


def published_generator(resolution):
    return networks_stylegan2.Generator(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, square=False,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256)).eval()


def timed(fn, steps):
    fn(1)                                   # warm-up (allocations, first-call costs)
    start = time.perf_counter()
    fn(steps)
    return steps / (time.perf_counter() - start)


@click.command()
@click.option('--resolution', type=click.Choice(['512', '1024']), default='512', show_default=True)
@click.option('--steps', type=click.IntRange(min=1), default=5, show_default=True)
@click.option('--threads', type=int, default=None, help='torch threads (default: all cores)')
@click.option('--bf16/--no-bf16', 'with_bf16', default=None,
              help='Also time bf16  [default: where the CPU has native bf16]')
def main(resolution, steps, threads, with_bf16):
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    G = published_generator(int(resolution))
    vgg = VGG16Features().eval().requires_grad_(False)
    lpips = LPIPS('alex').eval().requires_grad_(False)
    target = torch.rand(1, 3, G.img_resolution, G.img_resolution // 2) * 2 - 1
    features = lambda images: vgg(images, return_lpips=True)  # noqa: E731
    with torch.no_grad():
        pivot = G.mapping(torch.randn(1, G.z_dim), None)

    def project(n):
        project_w(G, target, features, ProjectionConfig(steps=n, w_avg_samples=600))

    def tune(n):
        tune_generator(G, [pivot], [target], lpips, TuningConfig(steps=n, lpips_threshold=-1, check_every=n))

    size = f'{G.img_resolution}x{G.img_resolution // 2}'
    print(machine.describe())
    print(f'StyleGAN2 {size}, {torch.get_num_threads()} threads, {steps} timed steps per phase')
    formats = ['fp32'] + (['bf16'] if (machine.bf16_native() if with_bf16 is None else with_bf16) else [])
    rates = {}
    for number_format in formats:
        dtype = torch.bfloat16 if number_format == 'bf16' else torch.float32
        for phase, fn in (('W projection (VGG16 loss)', project), ('pivotal tuning (L2 + LPIPS)', tune)):
            with machine.roofline(with_bf16=number_format == 'bf16') as limit, precision.use_precision(dtype):
                rate = timed(fn, steps)
            rates[(number_format, phase)] = rate
            print(f'{number_format} {phase + ":":30} {rate:.3f} steps/s  ({1 / rate:.2f} s/step)  {limit.summary()}')
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'peak RSS: {peak:.0f} MB')
    project_rate, tune_rate = (rates[('fp32', phase)] for phase in ('W projection (VGG16 loss)',
                                                                    'pivotal tuning (L2 + LPIPS)'))
    defaults = ProjectionConfig().steps / project_rate + TuningConfig().steps / tune_rate
    print(f'one photo at the defaults in fp32 (450 + up to 350 steps): about {defaults / 60:.0f} min')
    return np.array([project_rate, tune_rate])


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
