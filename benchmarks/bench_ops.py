"""bias_act, upfirdn2d and filtered_lrelu: the fused paths against the reference ops, op by op and in whole networks.

\b
python benchmarks/bench_ops.py                        # ops, generation, training steps (CPU: long)
python benchmarks/bench_ops.py --only ops             # the ops alone, at StyleGAN3-R / StyleGAN2 512x256 shapes
python benchmarks/bench_ops.py --device cuda --batch 4 --out results.json
python benchmarks/bench_ops.py --quick                # tiny sizes: a smoke test of the script

Paths, on the device of the run:
  ref        the reference compositions (ops_mode.reference_ops());
  fast       what the ops choose by default there: the Triton kernels on CUDA, the CPU fast
             paths on CPU (float32 inference; with gradients the tiled filtered_lrelu records
             its tiles), the polyphase ops on other devices;
  polyphase  the plain-PyTorch fused upfirdn2d / filtered_lrelu (2-bit derivative codes for
             the backward pass), forced wherever the networks call them.
Each (section, path) runs in a fresh process. Times are the best of --reps (after a warm-up).
Peak memory: on CUDA torch.cuda.max_memory_allocated over the tensors already there; on CPU
the peak resident memory over the baseline (reset through /proc/self/clear_refs), measured in
a separate pass in which glibc hands every freed block back (so the peak is the live
tensors', not the allocator's cache). Bytes moved per op are computed from the shapes: for
PyTorch paths, every aten op reads its inputs and writes its output (views excluded); a fused
Triton kernel reads each input once and writes each output once (the derivative codes
included), which is what its tiles do by construction (halo overlaps aside, read from cache).
The load average and CPU flags are printed with the figures.
"""

import ctypes
import ctypes.util
import gc
import json
import pathlib
import subprocess
import sys
import time

import click
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))
import machine  # noqa: E402

PATHS = ('ref', 'fast', 'polyphase')
SECTIONS = ('ops', 'generate', 'train')
GENERATE = ('sg2_1024', 'sg2_512', 'sg3r_512')   # bench_generate.NETWORKS
QUICK_GENERATE = ('sg2_quick', 'sg3r_quick')
TRAIN = {'sg3r_512': dict(pl_weight=0, r1_gamma=2), 'sg2_512': dict(pl_weight=2, r1_gamma=1)}
QUICK_TRAIN = {'sg3r_quick': dict(pl_weight=0, r1_gamma=2), 'sg2_quick': dict(pl_weight=2, r1_gamma=1)}


QUICK = {   # Tiny networks of the same kinds, for --quick.
    'sg2_quick': dict(version=2, img_resolution=32, channel_base=512, channel_max=32),
    'sg3r_quick': dict(version=3, img_resolution=32, channel_base=1024, channel_max=32, conv_kernel=1,
                       use_radial_filters=True, num_layers=4, num_critical=1, margin_size=4),
}


def _specs(quick):
    import bench_generate
    return QUICK if quick else bench_generate.NETWORKS


def _build(name, quick):
    import bench_generate
    return bench_generate.build(_specs(quick)[name])   # published configuration, random weights


# ---------------------------------------------------------------------------
# Measuring (inside the child processes).


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def best_time(fn, device, reps):
    fn()  # warm-up (and Triton's compilation)
    _sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return None


def _status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def peak_mb(fn, device):
    """Peak memory of ``fn()`` over what was allocated before it, in MiB (NaN where it cannot be measured)."""
    gc.collect()
    if device.type == 'cuda':
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    libc = _libc()
    try:
        if libc is not None:
            libc.mallopt(-3, 1 << 16)   # M_MMAP_THRESHOLD: freed blocks go back to the system ...
            libc.mallopt(-1, 0)         # M_TRIM_THRESHOLD ... and so does the heap's top
            libc.malloc_trim(0)
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')                # resets VmHWM to the current resident size
        base = _status_kb('VmRSS')
        fn()
        return (_status_kb('VmHWM') - base) / 1024
    except OSError:
        return float('nan')
    finally:
        from torch_utils import allocator
        allocator.reuse_freed_memory()  # back to what the scripts use, for the timings


class TrafficCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Bytes every aten op reads (its tensor inputs) and writes (its outputs); views move nothing."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view or func.__name__.split('.')[0] in ('empty', 'empty_like', 'empty_strided', 'detach',
                                                             'lift_fresh', 'alias', '_to_copy_view'):
            return out
        seen = set()
        for t in torch.utils._pytree.tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor) and id(t) not in seen:
                seen.add(id(t))
                expanded = any(s == 0 for s, n in zip(t.stride(), t.shape) if n > 1)
                self.bytes += t.untyped_storage().nbytes() if expanded else t.numel() * t.element_size()
        return out


def traffic_mb(fn):
    with TrafficCounter() as counter:
        fn()
    return counter.bytes / 2 ** 20


def _path_context(path):
    """The ops mode for ``path``, plus the polyphase ops forced where the networks call them."""
    import contextlib
    from torch_utils.ops import filtered_lrelu, ops_mode, polyphase, upfirdn2d
    stack = contextlib.ExitStack()
    stack.enter_context(ops_mode.use_ops('ref' if path == 'ref' else 'fast'))
    if path == 'polyphase':
        originals = filtered_lrelu.filtered_lrelu, upfirdn2d.upfirdn2d

        def restore():
            filtered_lrelu.filtered_lrelu, upfirdn2d.upfirdn2d = originals
        stack.callback(restore)
        def forced(fused, original):
            def op(x, *args, impl='auto', **kwargs):
                y = fused(x, *args, **kwargs)
                return original(x, *args, impl=impl, **kwargs) if y is None else y
            return op
        filtered_lrelu.filtered_lrelu = forced(polyphase.filtered_lrelu, originals[0])
        upfirdn2d.upfirdn2d = forced(polyphase.upfirdn2d, originals[1])
    return stack


# ---------------------------------------------------------------------------
# The cases.


def op_cases(quick, batch, device):
    """(name, function of the inputs, inputs, bytes of derivative codes a fused backward keeps) per op."""
    from torch_utils.ops import bias_act, filtered_lrelu, resample_plan, upfirdn2d
    G = _build('sg3r_quick' if quick else 'sg3r_512', quick)
    layers = [getattr(G.synthesis, n) for n in G.synthesis.layer_names[:-1]]

    def mid_pixels(layer):
        return int(layer.in_size[0] * layer.in_size[1]) * layer.up_factor ** 2 * layer.out_channels
    picks = [max((l for l in layers if l.up_factor == 4), key=mid_pixels, default=None),
             max((l for l in layers if l.up_factor == 2 and l.down_filter is not None and l.down_filter.ndim == 2),
                 key=mid_pixels, default=None),
             layers[-1]]
    gen = torch.Generator().manual_seed(0)
    cases = []
    for layer in dict.fromkeys(p for p in picks if p is not None):
        x = torch.randn([batch, layer.out_channels, int(layer.in_size[1]), int(layer.in_size[0])], generator=gen)
        b = torch.randn([layer.out_channels], generator=gen)
        fu, fd = layer.up_filter, layer.down_filter
        kwargs = dict(fu=fu.to(device) if fu is not None else None, fd=fd.to(device) if fd is not None else None,
                      up=layer.up_factor, down=layer.down_factor, padding=layer.padding, gain=np.sqrt(2),
                      slope=0.2, clamp=layer.conv_clamp)
        name = (f'filtered_lrelu up{layer.up_factor} {"radial" if fd is not None and fd.ndim == 2 else "separable"}'
                f' {list(x.shape)}')
        plan = resample_plan.filtered_lrelu_plan(x.shape, fu, fd, layer.up_factor, layer.down_factor,
                                                 filtered_lrelu._parse_padding(layer.padding), np.sqrt(2), 0.2,
                                                 layer.conv_clamp, False)
        codes = int(np.prod(plan.sign_shape(batch * layer.out_channels)))
        cases.append((name, lambda x, b, kw=kwargs: filtered_lrelu.filtered_lrelu(x, b=b, **kw),
                      [x.to(device), b.to(device)], codes))
    # StyleGAN2 at 512x256: the top layer's bias + lrelu + clamp, and resampling in G and D.
    channels, side = (16, 64) if quick else (64, 512)
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).to(device)
    big = torch.randn([batch, channels, side, side // 2], generator=gen).to(device)
    half = torch.randn([batch, 2 * channels, side // 2, side // 4], generator=gen).to(device)
    bias = torch.randn([channels], generator=gen).to(device)
    cases += [
        (f'bias_act lrelu clamp {list(big.shape)}', lambda x, b: bias_act.bias_act(x, b, act='lrelu', clamp=256),
         [big, bias], 0),
        (f'upsample2d [1,3,3,1] {list(half.shape)}', lambda x: upfirdn2d.upsample2d(x, f), [half], 0),
        (f'downsample2d [1,3,3,1] {list(big.shape)}', lambda x: upfirdn2d.downsample2d(x, f), [big], 0),
    ]
    return cases


def fused_bytes_mb(inputs, output, codes, backward):
    """One fused kernel's traffic, each tensor once. Forward: the inputs, the output and (with
    gradients) the codes. Backward: the output's gradient and the codes in, the input gradients out."""
    size = lambda t: t.numel() * t.element_size()  # noqa: E731
    forward = sum(size(t) for t in inputs) + size(output) + (codes if backward else 0)
    if not backward:
        return forward / 2 ** 20
    return (forward + size(output) + codes + sum(size(t) for t in inputs)) / 2 ** 20


def run_ops(path, quick, batch, reps, device):
    rows = []
    for name, fn, inputs, codes in op_cases(quick, batch, device):
        if path == 'polyphase' and name.startswith('bias_act'):
            continue   # bias_act has no polyphase form: it is elementwise already
        grads = [t.clone().requires_grad_(True) for t in inputs]
        with _path_context(path):
            with torch.no_grad():
                y = fn(*inputs)
            dy = torch.randn_like(y)

            def forward():
                with torch.no_grad():
                    fn(*inputs)

            def forward_backward():
                out = fn(*grads)
                torch.autograd.grad(out, grads, dy)
            row = dict(op=name, path=path, forward_s=best_time(forward, device, reps),
                       train_s=best_time(forward_backward, device, reps), forward_mb=peak_mb(forward, device),
                       train_mb=peak_mb(forward_backward, device))
            if device.type == 'cpu' or path != 'fast':
                row['forward_traffic_mb'] = traffic_mb(forward)
                row['train_traffic_mb'] = traffic_mb(forward_backward)
            row['fused_forward_mb'] = fused_bytes_mb(inputs, y, codes, backward=False)
            row['fused_train_mb'] = fused_bytes_mb(inputs, y, codes, backward=True)
        rows.append(row)
    return rows


def run_generate(path, quick, batch, reps, device):
    rows = []
    for name in (QUICK_GENERATE if quick else GENERATE):
        G = _build(name, quick).to(device)
        z = torch.from_numpy(np.random.RandomState(0).randn(batch, G.z_dim)).float().to(device)

        def images():
            with torch.no_grad():
                return G(z, None, noise_mode='const', force_fp32=True)
        with _path_context(path):
            seconds = best_time(images, device, reps)
            memory = peak_mb(images, device)
        rows.append(dict(network=name, path=path, batch=batch, seconds_per_image=seconds / batch, peak_mb=memory,
                         size=f'{G.img_resolution}x{G.img_resolution // 2}'))
    return rows


def run_train(path, quick, batch, reps, device):
    from training import networks_stylegan2
    from training.loss import StyleGAN2Loss
    rows = []
    specs = _specs(quick)
    for name, options in (QUICK_TRAIN if quick else TRAIN).items():
        spec = specs[name]
        torch.manual_seed(0)
        G = _build(name, quick).train().requires_grad_(True).to(device)
        D = networks_stylegan2.Discriminator(c_dim=0, img_resolution=G.img_resolution, img_channels=3, square=False,
                                             channel_base=min(spec['channel_base'], 32768),
                                             channel_max=min(spec['channel_max'], 512), num_fp16_res=4,
                                             conv_clamp=256).to(device)
        loss = StyleGAN2Loss(device, G, D, pl_batch_shrink=1, **options)
        real = torch.randn([batch, 3, G.img_resolution, G.img_resolution // 2], device=device)
        z = torch.randn([batch, G.z_dim], device=device)
        c = torch.zeros([batch, 0], device=device)

        def step():
            for p in [*G.parameters(), *D.parameters()]:
                p.grad = None
            for phase in ('Gboth', 'Dboth'):
                loss.accumulate_gradients(phase, real, c, z, c, gain=1, cur_nimg=0)
        with _path_context(path):
            seconds = best_time(step, device, reps)
            memory = peak_mb(step, device)
        rows.append(dict(network=name, path=path, batch=batch, seconds=seconds, peak_mb=memory,
                         regularisation=('R1 + path length' if options['pl_weight'] else 'R1'),
                         size=f'{G.img_resolution}x{G.img_resolution // 2}'))
    return rows


def measure(section, path, quick, batch, reps, device):
    """One section on one path -> its rows."""
    from torch_utils import allocator
    from torch_utils.ops import triton_ops
    allocator.reuse_freed_memory()
    device = torch.device(device)
    rows = {'ops': run_ops, 'generate': run_generate, 'train': run_train}[section](path, quick, batch, reps, device)
    kernels = device.type == 'cuda' and triton_ops.runs_on(device)
    for row in rows:
        row['triton'] = bool(kernels and path == 'fast')
    return rows


def child(section, path, quick, batch, reps, device):
    """Runs in a subprocess: prints the rows of ``measure`` as JSON (the last line)."""
    print(json.dumps(measure(section, path, quick, batch, reps, device)))


def _run_child(section, path, quick, batch, reps, device, in_process=False):
    if in_process:
        return measure(section, path, quick, batch, reps, device)
    code = (f'import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "benchmarks")!r}); '
            f'import bench_ops; bench_ops.child({section!r}, {path!r}, {quick!r}, {batch}, {reps}, {device!r})')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    if result.returncode != 0:
        raise click.ClickException(f'{section}/{path} failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Report.


def _ratio(a, b):
    return a / b if b else float('nan')


def print_ops(rows):
    print(f'\n{"op":58} {"path":9} {"fwd ms":>8} {"fwd+bwd ms":>10} {"fwd MB":>8} {"fwd+bwd MB":>10} '
          f'{"moved fwd MB":>12} {"moved fwd+bwd MB":>16}')
    for r in rows:
        moved = (f'{r["forward_traffic_mb"]:12.0f} {r["train_traffic_mb"]:16.0f}' if 'forward_traffic_mb' in r
                 else f'{"":12} {"":16}')
        print(f'{r["op"][:58]:58} {r["path"]:9} {1e3 * r["forward_s"]:8.1f} {1e3 * r["train_s"]:10.1f} '
              f'{r["forward_mb"]:8.0f} {r["train_mb"]:10.0f} {moved}')
    print('\nbytes moved, from the shapes: reference composition vs one fused kernel (each tensor once)')
    print(f'{"op":58} {"ref fwd MB":>10} {"fused fwd MB":>12} {"ratio":>6} {"ref fwd+bwd MB":>14} '
          f'{"fused fwd+bwd MB":>16} {"ratio":>6}')
    for r in rows:
        if r['path'] == 'ref' and 'forward_traffic_mb' in r:
            print(f'{r["op"][:58]:58} {r["forward_traffic_mb"]:10.0f} {r["fused_forward_mb"]:12.0f} '
                  f'{_ratio(r["forward_traffic_mb"], r["fused_forward_mb"]):5.1f}x {r["train_traffic_mb"]:14.0f} '
                  f'{r["fused_train_mb"]:16.0f} {_ratio(r["train_traffic_mb"], r["fused_train_mb"]):5.1f}x')


def print_networks(title, rows, seconds_key):
    print(f'\n{title}')
    ref = {r['network']: r for r in rows if r['path'] == 'ref'}
    for r in rows:
        base = ref.get(r['network'])
        speed = f'{_ratio(base[seconds_key], r[seconds_key]):5.2f}x' if base and r['path'] != 'ref' else ''
        memory = f'{_ratio(r["peak_mb"], base["peak_mb"]):5.2f}' if base and r['path'] != 'ref' else ''
        print(f'  {r["network"]:11} {r["size"]:>9} {r["path"]:9} {r[seconds_key]:9.3f} s  peak {r["peak_mb"]:8.0f} MB'
              f'  {"speed-up " + speed if speed else "":16} {"memory x" + memory if memory else ""}'
              f'{"  (Triton)" if r.get("triton") else ""}')


@click.command()
@click.option('--only', default=','.join(SECTIONS), show_default=True, help='Sections: ops, generate, train')
@click.option('--paths', default=','.join(PATHS), show_default=True, help='Paths to compare')
@click.option('--device', default='auto', show_default=True, help='auto (CUDA if present), cpu, cuda, cuda:N')
@click.option('--batch', type=click.IntRange(min=1), default=None, help='Images per call  [default: 1 on CPU, 4 on GPU]')
@click.option('--reps', type=click.IntRange(min=1), default=3, show_default=True, help='Timed runs (best counts)')
@click.option('--quick', is_flag=True, help='Tiny networks and tensors: a smoke test of the script')
@click.option('--out', 'out_json', default=None, help='Also write the results as JSON')
@click.option('--in-process', is_flag=True, hidden=True, help='No child processes (a quick smoke test; memory figures '
              'then include what earlier measurements left)')
def main(only, paths, device, batch, reps, quick, out_json, in_process):
    sections = [s for s in only.split(',') if s]
    paths = [p for p in paths.split(',') if p]
    for value, allowed, option in [(sections, SECTIONS, '--only'), (paths, PATHS, '--paths')]:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise click.BadParameter(f'{", ".join(bad)}: expected some of {", ".join(allowed)}', param_hint=option)
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    batch = batch or (1 if device == 'cpu' else 4)
    where = torch.cuda.get_device_name(torch.device(device)) if device.startswith('cuda') else 'CPU'
    print(f'{machine.describe()}; device {device} ({where}); batch {batch}; best of {reps}')
    results = {'machine': machine.describe(), 'device': device, 'batch': batch}
    for section in sections:
        rows = []
        for path in paths:
            rows += _run_child(section, path, quick, batch, reps, device, in_process)
        results[section] = rows
        if section == 'ops':
            print_ops(rows)
        elif section == 'generate':
            print_networks('generation (G(z), per image)', rows, 'seconds_per_image')
        else:
            print_networks('one training step (G: main loss [+ path length]; D: main loss + R1)', rows, 'seconds')
    print(f'\nload average at the end: {machine.load_average():.2f}')
    if out_json:
        with open(out_json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
