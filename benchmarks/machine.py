"""What the machine can do while a benchmark runs: matrix-product rate, load, CPU features.

A benchmark's speed means little without the machine's own limit measured next to it:
:func:`roofline` measures the GEMM rate (large products, best of several) before and after
the timed block, and :func:`describe` prints the load average and CPU flags beside the
figures. A busy machine is reported as such, so its numbers are not taken as facts: busy
means the GEMM rate moved between the two measurements, or stayed well below the best rate
the same run measured (a neighbour on the matrix units for the whole block), or other
processes used the CPU during the block (from /proc/stat, less this process and its children:
the load average would count the benchmark's own threads).
"""

import contextlib
import os
import time

import numpy as np
import torch

GEMM_SIZE = 4096           # large enough that the product runs at the machine's peak
FLAGS_OF_INTEREST = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_tile', 'amx_bf16', 'amx_fp16', 'neon', 'asimd')
RATE_DRIFT = 0.10          # GEMM rates before and after differing by more than this: the machine was busy
OTHERS_LIMIT = 0.2         # cores used on average by other processes during a block: the machine was busy
BELOW_BEST = 0.15          # a rate this much below the best this process measured: the machine was busy

_best_rates = {}           # the best GEMM rate measured so far in this process, per number format


def gemm_rate(dtype: torch.dtype = torch.float32, size: int = GEMM_SIZE, reps: int = 3) -> float:
    """Best matrix-product rate over ``reps`` products of two ``size`` x ``size`` matrices, FLOP/s."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b                                          # first call: thread pool, packing buffers
    best = float('inf')
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def cpu_model_and_flags():
    """(model name, the flags of FLAGS_OF_INTEREST this CPU has) from /proc/cpuinfo ('' and () elsewhere)."""
    model, flags = '', set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and not model:
                    model = value.strip()
                elif key in ('flags', 'Features') and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, tuple(flag for flag in FLAGS_OF_INTEREST if flag in flags)


def bf16_native() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (AMX or AVX-512 BF16)."""
    return bool({'amx_bf16', 'avx512_bf16'} & set(cpu_model_and_flags()[1]))


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')


def describe() -> str:
    """One line: CPU model, its flags, threads, load average."""
    model, flags = cpu_model_and_flags()
    return (f'CPU: {model or "unknown"}; flags: {" ".join(flags) or "none of interest"}; '
            f'{torch.get_num_threads()} threads; load average {load_average():.2f}')


def _cpu_seconds():
    """(CPU seconds used by every process, by this process and its waited-for children), now."""
    try:
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal: all but idle and iowait are work
        total = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError):
        total = float('nan')
    own = os.times()
    return total, own.user + own.system + own.children_user + own.children_system


def configurations_in_turns(measure, rounds: int, with_bf16: bool = None):
    """``measure()`` under each configuration, the configurations taking turns ``rounds`` times.

    Configurations are (number format, ops): ('fp32', 'ref'), ('fp32', 'fast') and, where the
    CPU has native bf16 (or ``with_bf16`` says so), ('bf16', 'fast'). Returns (configurations,
    {configuration: [result per round]}, {configuration: its last round's :class:`Roofline`}).
    """
    from torch_utils import precision
    from torch_utils.ops import ops_mode
    runs = [('fp32', 'ref'), ('fp32', 'fast')]    # the reference first: the others give speed-ups against it
    if bf16_native() if with_bf16 is None else with_bf16:
        runs.append(('bf16', 'fast'))
    per_round, limits = {run: [] for run in runs}, {}
    for _ in range(rounds):
        for number_format, ops in runs:
            dtype = torch.bfloat16 if number_format == 'bf16' else torch.float32
            with roofline(with_bf16=number_format == 'bf16') as limit, \
                    precision.use_precision(dtype), ops_mode.use_ops(ops):
                per_round[number_format, ops].append(measure())
            limits[number_format, ops] = limit
    return runs, per_round, limits


def paired_speedup(baseline, contender) -> float:
    """Median over rounds of baseline / contender time, each pair timed in the same round (this
    machine's speed drifts by tens of percent within minutes; both sides of a pair meet the same)."""
    return float(np.median([b / c for b, c in zip(baseline, contender)]))


class Roofline:
    """The GEMM rates measured around a timed block (fp32, and bf16 where the CPU has it)."""

    def __init__(self, with_bf16: bool, size: int = GEMM_SIZE):
        self.with_bf16 = with_bf16
        self.size = size
        self.before, self.after = {}, {}
        self.others = float('nan')     # cores used on average by other processes during the block

    def _measure(self):
        rates = {'fp32': gemm_rate(torch.float32, self.size)}
        if self.with_bf16:
            rates['bf16'] = gemm_rate(torch.bfloat16, self.size)
        for kind, rate in rates.items():
            _best_rates[kind] = max(_best_rates.get(kind, 0.0), rate)
        return rates

    @property
    def fp32(self) -> float:
        """The better of the two fp32 rates: efficiency against it is never flattered."""
        return max(self.before['fp32'], self.after['fp32'])

    @property
    def bf16(self) -> float:
        return max(self.before['bf16'], self.after['bf16']) if self.with_bf16 else float('nan')

    @property
    def busy(self) -> bool:
        """A rate (fp32, and bf16 where measured) moved between before and after, or stayed well
        below the best this process measured (a neighbour on the CPU all along), or other
        processes used the CPU."""
        drifts = [abs(self.before[kind] - self.after[kind]) / max(self.before[kind], self.after[kind])
                  for kind in self.before]
        below_best = [min(self.before[kind], self.after[kind]) < (1 - BELOW_BEST) * _best_rates.get(kind, 0.0)
                      for kind in self.before]
        return max(drifts) > RATE_DRIFT or any(below_best) or self.others > OTHERS_LIMIT

    def summary(self) -> str:
        parts = [f'fp32 GEMM {self.before["fp32"] / 1e9:.0f} -> {self.after["fp32"] / 1e9:.0f} GFLOP/s']
        if self.with_bf16:
            parts.append(f'bf16 GEMM {self.before["bf16"] / 1e9:.0f} -> {self.after["bf16"] / 1e9:.0f} GFLOP/s')
        parts.append(f'other processes used {self.others:.2f} cores')
        if self.busy:
            parts.append('WARNING: the machine was busy, these figures are not reliable')
        return '; '.join(parts)


@contextlib.contextmanager
def roofline(with_bf16: bool = None, size: int = GEMM_SIZE):
    """``with roofline() as r: <timed block>`` -> ``r.fp32``, ``r.bf16``, ``r.busy``, ``r.summary()``.
    (A smaller ``size`` is only for smoke tests: small products do not reach the peak.)"""
    r = Roofline(bf16_native() if with_bf16 is None else with_bf16, size)
    r.before = r._measure()
    start, (total0, own0) = time.perf_counter(), _cpu_seconds()
    yield r
    (total1, own1), wall = _cpu_seconds(), time.perf_counter() - start
    r.others = max(0.0, ((total1 - total0) - (own1 - own0)) / wall)
    r.after = r._measure()
