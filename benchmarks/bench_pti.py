"""PTI speed: projection and pivotal-tuning steps per second, and peak memory.

\b
python benchmarks/bench_pti.py                  # StyleGAN2 512x256, published config, random weights
python benchmarks/bench_pti.py --resolution 1024 --steps 3

Random weights in the published shapes (generator, LPIPS-AlexNet, NVIDIA's
VGG16): speed does not depend on the values. Each phase runs one warm-up step
and then ``--steps`` steps through the same functions run_pti.py uses, and the
median step is reported: with this project's fast ops and with the reference ops
in fp32, and with the fast ops in bf16 where the CPU has native bfloat16, all with the
allocator run_pti.py uses (freed memory kept for reuse). The configurations take turns
over ``--rounds`` rounds, and each speed-up is the median over rounds of the ratio
within a round, so that both sides of a ratio meet the same machine. The GEMM
rate (4096 products) is measured before and after each and printed with the
machine's CPU flags; a busy machine is flagged. Last, each configuration runs a
short projection and tuning toward the same target, and its PSNR and LPIPS are
printed next to the reference ops' (fp32 fast must reach the same result).

\b
python benchmarks/bench_pti.py --against a79a67a   # also: this tree's steps against that revision's

``--against REV`` times the code, not just the ops: the fp32 steps of this tree and of git
revision REV (exported to a temporary folder), each run by ``pti_steps.py`` in a fresh
process with its own defaults, the two in turns; the speed-up is the median of the ratios
within a round. a79a67a is the code from before the gradient work of issue 20.
"""

import contextlib
import io
import json
import pathlib
import resource
import subprocess
import sys
import tarfile
import tempfile
import time

import click
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))
import machine  # noqa: E402
import pti_steps  # noqa: E402

from pti.projector import ProjectionConfig, project_w  # noqa: E402
from pti.tuning import TuningConfig, tune_generator  # noqa: E402
from stylegan_human.features.lpips import LPIPS  # noqa: E402
from stylegan_human.features.vgg16_nvidia import VGG16Features  # noqa: E402
from torch_utils import allocator, precision  # noqa: E402
from torch_utils.ops import ops_mode  # noqa: E402
from training import networks_stylegan2  # noqa: E402


def published_generator(resolution):
    return pti_steps.published_generator(networks_stylegan2, resolution)


def seconds_per_step(run, steps):
    """Median wall time of ``steps`` steps of ``run(steps, stop)``, the first (warm-up) step left out.

    ``stop`` is the loop's own per-step callback, so the per-call setup (copying the
    generator, NVIDIA's w statistics) is not counted."""
    stamps = []

    def stop(_):
        stamps.append(time.perf_counter())
        return False
    run(steps + 1, stop)
    stamps.append(time.perf_counter())
    return float(np.median(np.diff(stamps)[1:]))


def psnr(a, b):
    """PSNR in dB of images in [-1, 1]."""
    return float(10 * torch.log10(4 / (a - b).square().mean()))


@click.command()
@click.option('--resolution', type=click.Choice(['512', '1024']), default='512', show_default=True)
@click.option('--steps', type=click.IntRange(min=1), default=5, show_default=True, help='Timed steps per round')
@click.option('--rounds', type=click.IntRange(min=1), default=2, show_default=True,
              help='Rounds over the configurations; times are medians over them')
@click.option('--threads', type=int, default=None, help='torch threads (default: all cores)')
@click.option('--bf16/--no-bf16', 'with_bf16', default=None,
              help='Also time bf16  [default: where the CPU has native bf16]')
@click.option('--quality-steps', type=click.IntRange(min=0), default=20, show_default=True,
              help='Projection and tuning steps toward a fixed target in each timed configuration, '
                   'to compare their PSNR and LPIPS with the reference ops\' (0: skip)')
@click.option('--against', metavar='REV', default=None,
              help='Also time the fp32 steps of this tree against those of git revision REV (the code '
                   'before a change), each side in a fresh process with its own defaults, in turns')
def main(resolution, steps, rounds, threads, with_bf16, quality_steps, against):
    with contextlib.ExitStack() as stack:
        other_tree = export_revision(against, stack) if against else None   # a bad REV stops before the timing
        times = benchmark(resolution, steps, rounds, threads, with_bf16, quality_steps)
        if other_tree:
            compare_trees(against, other_tree, resolution, steps, rounds, threads)
    return times


def benchmark(resolution, steps, rounds, threads, with_bf16, quality_steps):
    if threads:
        torch.set_num_threads(threads)
    allocator.reuse_freed_memory()   # as run_pti.py runs, for every configuration
    torch.manual_seed(0)
    G = published_generator(int(resolution))
    vgg = VGG16Features().eval().requires_grad_(False)
    lpips = LPIPS('alex').eval().requires_grad_(False)
    with torch.no_grad():   # the published linear layers weigh channels by non-negative numbers
        for name, param in lpips.named_parameters():
            if name.startswith('lin'):
                param.abs_()
    features = lambda images: vgg(images, return_lpips=True)  # noqa: E731
    with torch.no_grad():
        pivot = G.mapping(torch.randn(1, G.z_dim), None)
        # A target the generator can reach (another person's image), so the losses fall.
        target = G.synthesis(G.mapping(torch.randn(1, G.z_dim), None), noise_mode='const', force_fp32=True)

    def project(n, stop):
        return project_w(G, target, features, ProjectionConfig(steps=n, w_avg_samples=600), stop=stop)

    def tune(n, stop, pivot=pivot):
        return tune_generator(G, [pivot], [target], lpips,
                              TuningConfig(steps=n, lpips_threshold=-1, check_every=n), stop=stop)

    phases = (('W projection (VGG16 loss)', project), ('pivotal tuning (L2 + LPIPS)', tune))
    size = f'{G.img_resolution}x{G.img_resolution // 2}'
    print(machine.describe())
    print(f'StyleGAN2 {size}, {torch.get_num_threads()} threads, median of {steps} steps per phase and round')
    print(f'{rounds} rounds, each configuration once per round; speed-ups: median over the rounds of the '
          'ratio within a round (this machine drifts too much for ratios of separate runs)')
    times = {}
    for phase, fn in phases:
        runs, per_round, limits = machine.configurations_in_turns(lambda: seconds_per_step(fn, steps), rounds,
                                                                  with_bf16)
        for number_format, ops in runs:
            seconds = float(np.median(per_round[number_format, ops]))
            times[(phase, number_format, ops)] = seconds
            note = ''
            if (number_format, ops) == ('fp32', 'fast'):
                speedup = machine.paired_speedup(per_round['fp32', 'ref'], per_round['fp32', 'fast'])
                note = f'  {speedup:.2f}x the reference ops'
            print(f'{phase + ":":30} {number_format} {ops:4} ops {seconds:.2f} s/step{note}  '
                  f'(last round: {limits[number_format, ops].summary()})')
        if ('bf16', 'fast') in runs:
            speedup = machine.paired_speedup(per_round['fp32', 'fast'], per_round['bf16', 'fast'])
            print(f'{"":30} bf16 fast: {speedup:.2f}x fp32 fast')
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'peak RSS: {peak:.0f} MB')
    defaults = ProjectionConfig().steps * times[(phases[0][0], 'fp32', 'fast')] + \
        TuningConfig().steps * times[(phases[1][0], 'fp32', 'fast')]
    print(f'one photo at the defaults in fp32 (450 + up to 350 steps): about {defaults / 60:.0f} min')

    if quality_steps:
        print(f'Quality after {quality_steps} projection + {quality_steps} tuning steps toward a fixed target:')
        quality = {}
        for number_format, ops in runs:
            dtype = torch.bfloat16 if number_format == 'bf16' else torch.float32
            with ops_mode.use_ops(ops), precision.use_precision(dtype):
                w, _ = project(quality_steps, None)
                tuned, _ = tune(quality_steps, None, pivot=w)
            with torch.no_grad():   # judged in fp32 whatever it was optimised in
                image = tuned.synthesis(w, noise_mode='const', force_fp32=True)
                quality[number_format, ops] = (psnr(image, target), float(lpips(image, target).mean()))
        reference = quality['fp32', 'ref']
        for (number_format, ops), (db, distance) in quality.items():
            print(f'  {number_format} {ops:4} ops: PSNR {db:.2f} dB ({db - reference[0]:+.3f}), '
                  f'LPIPS {distance:.4f} ({distance - reference[1]:+.4f})')
    return times


def export_revision(revision, stack):
    """The files of git revision ``revision`` of this repository, in a temporary folder that
    ``stack`` removes; a revision git does not know is a one-line usage error."""
    try:
        archive = subprocess.run(['git', '-C', str(ROOT), 'archive', '--format=tar', revision],
                                 capture_output=True, check=True).stdout
    except FileNotFoundError:
        raise click.UsageError('--against needs git on the PATH') from None
    except subprocess.CalledProcessError as error:
        message = error.stderr.decode(errors='replace').strip().splitlines() or [f'exit status {error.returncode}']
        raise click.UsageError(f'--against {revision}: {message[-1]}') from None
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix='bench_pti_'))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
    return folder


def step_times_in(tree, phase, steps, resolution, threads):
    """``pti_steps.py``'s step times of ``phase`` run by ``tree``'s code in a fresh process."""
    command = [sys.executable, str(ROOT / 'benchmarks' / 'pti_steps.py'), str(tree), phase, str(steps + 1),
               '--resolution', str(resolution)] + (['--threads', str(threads)] if threads else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f'exit status {result.returncode}'])[-1]
        raise click.ClickException(f'{phase} steps of {tree} failed: {last}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare_trees(revision, other_tree, resolution, steps, rounds, threads):
    """This tree's fp32 step times against ``revision``'s, the two taking turns."""
    print(f'Against {revision}: each side in a fresh process with its own default ops, fp32, '
          f'{rounds} rounds in turns, median of {steps} steps')
    trees = {'this tree': ROOT, revision: other_tree}
    step_counts = {'project': ProjectionConfig().steps, 'tune': TuningConfig().steps}
    photo = {name: np.zeros(rounds) for name in trees}   # seconds per photo at the defaults, round by round
    for phase, label in (('project', 'W projection (VGG16 loss)'), ('tune', 'pivotal tuning (L2 + LPIPS)')):
        per_round = {name: [] for name in trees}
        for turn in range(rounds):
            for name in (list(trees) if turn % 2 == 0 else list(trees)[::-1]):
                with machine.roofline(with_bf16=False) as limit:
                    per_round[name].append(float(np.median(step_times_in(trees[name], phase, steps, resolution,
                                                                         threads))))
        ours, theirs = (float(np.median(per_round[name])) for name in trees)
        speedup = machine.paired_speedup(per_round[revision], per_round['this tree'])
        print(f'{label + ":":30} this tree {ours:.2f} s/step, {revision} {theirs:.2f} s/step: '
              f'{speedup:.2f}x  (last round: {limit.summary()})')
        for name in trees:
            photo[name] += step_counts[phase] * np.array(per_round[name])
    # A whole inversion, as run_pti.py runs it: the two phases' steps weighted by their default counts.
    ours, theirs = (float(np.median(photo[name])) / 60 for name in trees)
    speedup = machine.paired_speedup(list(photo[revision]), list(photo['this tree']))
    print(f'{"one photo at the defaults:":30} this tree {ours:.1f} min, {revision} {theirs:.1f} min: {speedup:.2f}x  '
          f'({step_counts["project"]} projection + up to {step_counts["tune"]} tuning steps)')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
