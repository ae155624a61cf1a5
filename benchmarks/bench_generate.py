"""Generation speed against this machine's limit: fast ops vs the reference ops, in one run.

\b
python benchmarks/bench_generate.py                 # all three networks (several minutes)
python benchmarks/bench_generate.py --only sg3r_512 --reps 2
python benchmarks/bench_generate.py --quick         # tiny networks, small GEMMs: a smoke test of the script

For each network (published configurations, random weights: z = w = 512, 8
mapping layers, channel_base 32768 (65536 for StyleGAN3-R), channel_max 512
(1024), num_fp16_res 4, conv_clamp 256, 2:1 images, noise const) and each path
(fast ops, the reference ops) a fresh subprocess times G(z) per image at batch 1
and at a batch of 4, and reports its peak RSS. Both keep freed memory for reuse
(torch_utils/allocator.py), as the scripts do in either ops mode. The table gives seconds per image,
roofline efficiency (the reference forward's FLOPs / this machine's fp32 GEMM rate
/ time; the rate of 4096x4096 products, measured right before and after each timed
run, the better of the two), the speed-up over the reference path, and max |fast - reference| of the
raw output. The speed-up comes from a third process that alternates the two paths
run by run and takes the median over those pairs: this machine's speed drifts too much
between processes for a ratio of separate runs. Where the CPU has native bfloat16, a second table times the fast path in
fp32 and in bf16 alternately in one process (batch 1), so that both meet the same
machine, and gives the median speed-up over those pairs, the bf16 roofline and the PSNR
of bf16 images against fp32 over --psnr-seeds seeds. Also the cold start, as a user meets it: `python generate.py --seeds 0`
from start to exit, on a pickle in the published layout (a training snapshot: G, D
and G_ema) vs the same G_ema exported to .safetensors; the loading step alone; and
starting Python + importing torch, which both pay.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import click
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))
import machine  # noqa: E402

NETWORKS = {
    'sg2_1024': dict(version=2, img_resolution=1024, channel_base=32768, channel_max=512),
    'sg2_512': dict(version=2, img_resolution=512, channel_base=32768, channel_max=512),
    'sg3r_512': dict(version=3, img_resolution=512, channel_base=65536, channel_max=1024, conv_kernel=1,
                     use_radial_filters=True),
    'sg3t_512': dict(version=3, img_resolution=512, channel_base=32768, channel_max=512),
}
QUICK = {'sg2_quick': dict(version=2, img_resolution=64, channel_base=1024, channel_max=64),
         'sg3r_quick': dict(version=3, img_resolution=64, channel_base=2048, channel_max=128, conv_kernel=1,
                            use_radial_filters=True)}


def build(spec, seed=0):
    """A generator in the published configuration, random weights (fixed by ``seed``)."""
    from training import networks_stylegan2, networks_stylegan3
    spec = dict(spec)
    version = spec.pop('version')
    module = networks_stylegan2 if version == 2 else networks_stylegan3
    torch.manual_seed(seed)
    dims = 512 if spec['img_resolution'] >= 256 else 64
    return module.Generator(z_dim=dims, c_dim=0, w_dim=dims, img_channels=3, square=False,
                            mapping_kwargs=dict(num_layers=8), num_fp16_res=4, conv_clamp=256, **spec).eval()


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def reference_flops(G):
    """FLOPs of one image through the reference ops (torch.utils.flop_counter: convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode
    from torch_utils.ops.ops_mode import reference_ops
    z = torch.randn(1, G.z_dim)
    with torch.no_grad(), reference_ops(), FlopCounterMode(display=False) as counter:
        G(z, None, noise_mode='const', force_fp32=True)
    return counter.get_total_flops()


def measure_child(name, spec, mode, batch, reps, out_path):
    """Runs in a subprocess: time per image, peak RSS, raw output of seed 0 (saved for the diff).

    Images are made as the scripts make them (freed memory kept for reuse, in either ops
    mode): mapping, then the sampling layer's synthesis (image by image on the CPU fast
    path, the whole batch otherwise), in fp32.
    """
    from stylegan_human.sampling import synthesize
    from torch_utils import allocator
    from torch_utils.ops import ops_mode
    allocator.reuse_freed_memory()
    G = build(spec)
    z = torch.from_numpy(np.random.RandomState(0).randn(batch, G.z_dim)).float()

    def images():
        return synthesize(G, G.mapping(z, None), noise_mode='const', force_fp32=True)
    with torch.no_grad(), ops_mode.use_ops(mode):
        first = images()          # warm-up, and the output to compare
        times = [_time(images) for _ in range(reps)]
    np.save(out_path, first[:1].float().numpy())
    print(json.dumps({'seconds_per_image': min(times) / batch, 'peak_mb': peak_rss_mb()}))


def paired_child(spec, reps, batch, baseline, contender):
    """Runs in a subprocess: two ways of making images ('ref', 'fast' or 'fast-bf16'), alternated
    run by run so that both meet the same machine (its speed drifts by tens of percent within
    a minute here). Best seconds per image of each, and the median of the per-pair speed-ups
    of ``contender`` over ``baseline``."""
    from stylegan_human.sampling import synthesize
    from torch_utils import allocator, precision
    from torch_utils.ops import ops_mode
    allocator.reuse_freed_memory()
    G = build(spec)
    z = torch.from_numpy(np.random.RandomState(0).randn(batch, G.z_dim)).float()
    times = {baseline: [], contender: []}
    with torch.no_grad():
        for run in range(reps + 1):
            for way in times:
                dtype = torch.bfloat16 if way.endswith('-bf16') else torch.float32
                with ops_mode.use_ops(way.split('-')[0]), precision.use_precision(dtype):
                    seconds = _time(lambda: synthesize(G, G.mapping(z, None), noise_mode='const', force_fp32=True))
                if run:   # the first pair warms up
                    times[way].append(seconds / batch)
    ratios = [slow / fast for slow, fast in zip(times[baseline], times[contender])]
    print(json.dumps({baseline: min(times[baseline]), contender: min(times[contender]),
                      'speedup': float(np.median(ratios))}))


def peak_rss_mb():
    """This process's peak resident memory. VmHWM, not getrusage: after fork + exec, Linux's
    ru_maxrss still counts the parent's peak, and the parent ran the big reference forward."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def psnr_child(spec, seeds, figure=None):
    """Runs in a subprocess: mean and lowest PSNR (dB) of bf16 images against fp32 over ``seeds``;
    with ``figure`` (a file name), also the lowest one's images side by side there."""
    from stylegan_human.sampling import generate_images
    from torch_utils import allocator, precision
    allocator.reuse_freed_memory()
    G = build(spec)
    values, worst = [], None
    for seed in range(seeds):
        exact = generate_images(G, [seed])[0].image
        with precision.use_precision(torch.bfloat16):
            rounded = generate_images(G, [seed])[0].image
        error = np.mean((exact.astype(np.float64) - rounded) ** 2)
        values.append(10 * np.log10(255 ** 2 / max(error, 1e-12)))
        if worst is None or values[-1] < worst[0]:
            worst = (values[-1], seed, exact, rounded)
    if figure:   # written whole or not at all
        from PIL import Image
        partial = figure + '.part'
        Image.fromarray(side_by_side(worst[2], worst[3])).save(partial, format='JPEG', quality=90)
        os.replace(partial, figure)
    print(json.dumps({'psnr_mean': float(np.mean(values)), 'psnr_min': float(np.min(values)), 'worst_seed': worst[1]}))


FIGURE_HEIGHT = 512   # panels taller than this are shrunk by a whole factor
DIFFERENCE_GAIN = 20  # one uint8 level of difference shows as 20


def side_by_side(exact, rounded):
    """[fp32 | bf16 | difference] of two uint8 images [H, W, 3]: the difference is the largest of
    the three channels' |fp32 - bf16|, times DIFFERENCE_GAIN, in grey. Shrunk to FIGURE_HEIGHT
    or less: the images by averaging, the difference by its maximum, so no pixel's is lost."""
    factor = max(1, exact.shape[0] // FIGURE_HEIGHT)
    height, width = exact.shape[0] // factor * factor, exact.shape[1] // factor * factor

    def blocks(image):   # [H / f, W / f, f * f, C]
        image = image[:height, :width]
        return image.reshape(height // factor, factor, width // factor, factor, -1).transpose(0, 2, 1, 3, 4) \
            .reshape(height // factor, width // factor, factor * factor, -1)
    difference = np.abs(exact.astype(np.int16) - rounded).max(axis=2, keepdims=True)
    difference = np.clip(blocks(difference).max(axis=2) * DIFFERENCE_GAIN, 0, 255).repeat(3, axis=2)
    panels = [blocks(image).mean(axis=2).round() for image in (exact, rounded)] + [difference]
    return np.concatenate(panels, axis=1).astype(np.uint8)


def _python(call):
    """Run ``bench_generate.<call>`` in a fresh interpreter; its last stdout line is JSON."""
    code = (f'import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "benchmarks")!r}); '
            f'import bench_generate as b; b.{call}')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_child(name, spec, mode, batch, reps, workdir):
    out = os.path.join(workdir, f'{name}_{mode}_{batch}.npy')
    return _python(f'measure_child({name!r}, {spec!r}, {mode!r}, {batch}, {reps}, {out!r})'), \
        np.load(out)


def published_layout(G, spec):
    """What a published StyleGAN-Human pickle holds: a training snapshot (G, D, G_ema, ...)."""
    import copy
    from training import networks_stylegan2
    D = networks_stylegan2.Discriminator(c_dim=0, img_resolution=G.img_resolution, img_channels=3,
                                         channel_base=spec['channel_base'], channel_max=spec['channel_max'],
                                         num_fp16_res=4, conv_clamp=256,
                                         square=False)
    return {'G': copy.deepcopy(G), 'D': D, 'G_ema': G, 'augment_pipe': None,
            'training_set_kwargs': {'resolution': G.img_resolution}}


def cold_start(spec, workdir, reps):
    """What a user waits for, pickle vs .safetensors export (best of ``reps``).

    ``pickle`` / ``safetensors``: from starting ``python generate.py --network FILE --seeds 0``
    to its exit, the image written. ``*_load``: legacy.load_network alone, in a fresh process.
    ``import_torch``: starting Python and importing torch, which both pay.
    """
    import legacy
    G = build(spec)
    pkl, st = os.path.join(workdir, 'g.pkl'), os.path.join(workdir, 'g.safetensors')
    legacy.save_network_pkl(published_layout(G, spec) if spec['version'] == 2 else {'G_ema': G}, pkl)
    legacy.export_network(G, st)
    out = os.path.join(workdir, 'images')

    def best_wall_time(command, before=lambda: None):
        times = []
        for _ in range(reps):
            before()
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - start)
        return min(times), result.stdout

    # The scripts freeze their objects out of the exit-time garbage collection; so does this.
    timings = {'import_torch': best_wall_time([sys.executable, '-c', 'import gc, torch; gc.freeze()'])[0]}
    for label, path in (('pickle', pkl), ('safetensors', st)):
        generate = [sys.executable, str(ROOT / 'generate.py'), '--network', path, '--seeds', '0', '--outdir', out]
        timings[label] = best_wall_time(generate, before=lambda: shutil.rmtree(out, ignore_errors=True))[0]
        load = (f'import sys, time; sys.path.insert(0, {str(ROOT)!r}); import torch, legacy; '
                f't = time.perf_counter(); legacy.load_network({path!r}, verbose=False); '
                f'print(time.perf_counter() - t)')
        timings[label + '_load'] = float(best_wall_time([sys.executable, '-c', load])[1].split()[-1])
    timings['pickle_mb'] = os.path.getsize(pkl) / 2 ** 20
    timings['safetensors_mb'] = os.path.getsize(st) / 2 ** 20
    return timings


@click.command()
@click.option('--only', default=None, help='Comma-separated network names (sg2_1024, sg2_512, sg3r_512, sg3t_512)')
@click.option('--reps', type=click.IntRange(min=1), default=3, show_default=True, help='Timed runs (best counts)')
@click.option('--batch', type=click.IntRange(min=2), default=4, show_default=True, help='The larger batch size')
@click.option('--quick', is_flag=True, help='Tiny networks instead of the published ones')
@click.option('--cold-reps', type=click.IntRange(min=1), default=3, show_default=True,
              help='Cold starts per file (best counts)')
@click.option('--psnr-seeds', type=click.IntRange(min=1), default=100, show_default=True,
              help='Seeds over which bf16 images are compared with fp32')
@click.option('--bf16/--no-bf16', 'with_bf16', default=None,
              help='Also time --precision bf16  [default: where the CPU has native bf16]')
@click.option('--out', 'out_json', default=None, help='Also write the results as JSON')
@click.option('--figure', 'figure_dir', type=click.Path(file_okay=False), default=None,
              help='Also write, per network, the bf16 image furthest from fp32 beside it and their difference '
                   '(FIGURE_DIR/bf16_vs_fp32_NETWORK.jpg)')
def main(only, reps, batch, quick, cold_reps, psnr_seeds, with_bf16, out_json, figure_dir):
    networks = QUICK if quick else NETWORKS
    if only:
        networks = {k: v for k, v in networks.items() if k in only.split(',')}
    with_bf16 = machine.bf16_native() if with_bf16 is None else with_bf16
    if figure_dir:
        try:
            os.makedirs(figure_dir, exist_ok=True)
        except OSError as error:
            raise click.BadParameter(f'cannot make {figure_dir}: {error.strerror}', param_hint='--figure') from None
    gemm_size = 1024 if quick else machine.GEMM_SIZE
    print(machine.describe())
    print('speed-up: the two alternated in one process, median over the pairs; the times and memory: '
          'each alone in a fresh process')
    print(f'{"network":10} {"batch":>5} {"GFLOP":>7} {"ref s/img":>10} {"fast s/img":>11} {"speed-up":>9} '
          f'{"roofline":>9} {"ref MB":>7} {"fast MB":>8} {"max diff":>9}  GEMM around the fast run')
    rows = []
    busy = False
    with tempfile.TemporaryDirectory() as workdir:
        for name, spec in networks.items():
            flops = reference_flops(build(spec))
            for b in (1, batch):
                ref, ref_out = run_child(name, spec, 'ref', b, reps, workdir)
                with machine.roofline(with_bf16=False, size=gemm_size) as limit:
                    fast, fast_out = run_child(name, spec, 'fast', b, reps, workdir)
                busy = busy or limit.busy
                paired = _python(f'paired_child({spec!r}, {reps}, {b}, "ref", "fast")')
                row = dict(network=name, batch=b, gflop=flops / 1e9, ref=ref['seconds_per_image'],
                           fast=fast['seconds_per_image'], ref_mb=ref['peak_mb'], fast_mb=fast['peak_mb'],
                           max_diff=float(np.abs(fast_out - ref_out).max()), gemm_gflops=limit.fp32 / 1e9,
                           busy=limit.busy)
                row['speedup'] = paired['speedup']
                row['roofline'] = flops / limit.fp32 / row['fast']
                rows.append(row)
                print(f'{name:10} {b:5d} {row["gflop"]:7.1f} {row["ref"]:10.2f} {row["fast"]:11.2f} '
                      f'{row["speedup"]:8.2f}x {100 * row["roofline"]:8.0f}% {row["ref_mb"]:7.0f} '
                      f'{row["fast_mb"]:8.0f} {row["max_diff"]:9.1e}  {limit.summary()}')
        bf16_rows = []
        if with_bf16:
            print('\n--precision bf16, batch 1, fp32 and bf16 alternated in one process '
                  '(speed-up: median over the pairs)')
            print(f'{"":27}{"network":10} {"fp32 s/img":>10} {"bf16 s/img":>10} {"speed-up":>9} '
                  f'{"bf16 roofline":>13} {"PSNR mean / min":>16}  GEMM around the bf16 run')
            for name, spec in networks.items():
                flops = reference_flops(build(spec))
                with machine.roofline(with_bf16=True, size=gemm_size) as limit:
                    paired = _python(f'paired_child({spec!r}, {reps}, 1, "fast", "fast-bf16")')
                busy = busy or limit.busy
                figure = os.path.join(figure_dir, f'bf16_vs_fp32_{name}.jpg') if figure_dir else None
                quality = _python(f'psnr_child({spec!r}, {psnr_seeds}, {figure!r})')
                row = dict(network=name, fp32=paired['fast'], bf16=paired['fast-bf16'], speedup=paired['speedup'],
                           busy=limit.busy, bf16_gemm_gflops=limit.bf16 / 1e9, psnr_seeds=psnr_seeds, **quality)
                row['roofline'] = flops / limit.bf16 / row['bf16']
                bf16_rows.append(row)
                print(f'{"":27}{name:10} {row["fp32"]:10.3f} {row["bf16"]:10.3f} {row["speedup"]:8.2f}x '
                      f'{100 * row["roofline"]:12.0f}% {row["psnr_mean"]:8.1f} / {row["psnr_min"]:4.1f} dB  '
                      f'{limit.summary()}')
                if figure:
                    print(f'{"":27}seed {row["worst_seed"]} (the lowest PSNR): fp32, bf16 and their difference '
                          f'x{DIFFERENCE_GAIN} in {figure}')
        first = next(iter(networks.values()))
        starts = cold_start(first, workdir, cold_reps)
        print(f'cold start to the first image, generate.py ({next(iter(networks))}): '
              f'pickle ({starts["pickle_mb"]:.0f} MB, G + D + G_ema) {starts["pickle"]:.2f} s, '
              f'.safetensors ({starts["safetensors_mb"]:.0f} MB, G_ema) {starts["safetensors"]:.2f} s '
              f'(ratio {starts["safetensors"] / starts["pickle"]:.2f}); loading alone {starts["pickle_load"]:.2f} s '
              f'vs {starts["safetensors_load"]:.2f} s (ratio {starts["safetensors_load"] / starts["pickle_load"]:.2f}); '
              f'starting Python + importing torch, paid by both: {starts["import_torch"]:.2f} s')
    if out_json:
        with open(out_json, 'w') as f:
            json.dump({'machine': machine.describe(), 'busy': busy, 'rows': rows, 'bf16_rows': bf16_rows,
                       'cold_start': starts}, f, indent=1)


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
