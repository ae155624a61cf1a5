"""Cheap reporting of training statistics, averaged across devices and processes.

Same API as NVIDIA's ``torch_utils.training_stats``. Code anywhere calls
``report(name, values)``; this only adds to per-device running sums
(count, sum, sum of squares), with no synchronisation. A ``Collector`` in the
training loop calls ``update()`` now and then, which gathers the sums (one
``all_reduce`` when multi-process) and exposes mean/std/count of the values
reported since its previous ``update()``.
"""

import re

import numpy as np
import torch

import dnnlib

from . import misc

_num_moments = 3                # [count, sum, sum of squares]
_reduce_dtype = torch.float32   # Dtype of the per-call reduction.
_counter_dtype = torch.float64  # Dtype of the running sums (avoids drift over long runs).
_rank = 0                       # This process's rank.
_sync_device = None             # Device for all_reduce; None = single process.
_sync_called = False            # Set by the first _sync(); init_multiprocessing must come before.
_counters = dict()              # name -> device -> running moments since the last _sync().
_cumulative = dict()            # name -> moments summed over all devices/ranks since start (CPU).


def init_multiprocessing(rank, sync_device):
    """Enable cross-process statistics.

    Call after ``torch.distributed.init_process_group()`` and before the first
    ``Collector.update()``. ``sync_device`` is the device used for the
    all_reduce (typically ``torch.device('cuda', rank)``), or None to stay
    single-process.
    """
    global _rank, _sync_device
    assert not _sync_called
    _rank = rank
    _sync_device = sync_device


@misc.profiled_function
def report(name, value):
    """Add the scalars in ``value`` (number, list, array or tensor) to statistic ``name``.

    Returns ``value`` unchanged, so it can wrap an expression. Every process
    must report every name at least once, in the same order; a process with
    nothing to add reports ``[]``.
    """
    if name not in _counters:
        _counters[name] = dict()

    elems = torch.as_tensor(value)
    if elems.numel() == 0:
        return value

    elems = elems.detach().flatten().to(_reduce_dtype)
    moments = torch.stack([
        torch.ones_like(elems).sum(),
        elems.sum(),
        elems.square().sum(),
    ])
    assert moments.ndim == 1 and moments.shape[0] == _num_moments
    moments = moments.to(_counter_dtype)

    # One counter per device, so reporting never forces a device transfer.
    device = moments.device
    if device not in _counters[name]:
        _counters[name][device] = torch.zeros_like(moments)
    _counters[name][device].add_(moments)
    return value


def report0(name, value):
    """Like ``report()``, but only rank 0's values count (other ranks report nothing)."""
    report(name, value if _rank == 0 else [])
    return value


class Collector:
    """Averages of reported statistics between consecutive ``update()`` calls.

    regex:         which statistic names to collect (full match); default all.
    keep_previous: if a statistic got no new values since the last update,
                   keep showing its previous averages instead of none.
    """

    def __init__(self, regex='.*', keep_previous=True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._cumulative = dict()  # name -> global cumulative moments at our last update().
        self._moments = dict()     # name -> moments between the last two update() calls.
        # Start counting from now: values reported before construction are ignored.
        self.update()
        self._moments.clear()

    def names(self):
        """Names of all statistics reported so far that match the regex."""
        return [name for name in _counters if self._regex.fullmatch(name)]

    def update(self):
        """Take the values reported since the previous call as the current averages."""
        if not self._keep_previous:
            self._moments.clear()
        for name, cumulative in _sync(self.names()):
            if name not in self._cumulative:
                self._cumulative[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
            delta = cumulative - self._cumulative[name]
            self._cumulative[name].copy_(cumulative)
            if float(delta[0]) != 0:
                self._moments[name] = delta

    def _get_delta(self, name):
        assert self._regex.fullmatch(name)
        if name not in self._moments:
            self._moments[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
        return self._moments[name]

    def num(self, name):
        """Number of values reported for ``name`` in the last interval."""
        return int(self._get_delta(name)[0])

    def mean(self, name):
        """Mean of the values for ``name`` in the last interval (NaN if none)."""
        delta = self._get_delta(name)
        if int(delta[0]) == 0:
            return float('nan')
        return float(delta[1] / delta[0])

    def std(self, name):
        """Population standard deviation for ``name`` in the last interval (NaN if none)."""
        delta = self._get_delta(name)
        if int(delta[0]) == 0 or not np.isfinite(float(delta[1])):
            return float('nan')
        if int(delta[0]) == 1:
            return float(0)
        mean = float(delta[1] / delta[0])
        raw_var = float(delta[2] / delta[0])
        # Rounding can make E[x^2] - E[x]^2 slightly negative.
        return np.sqrt(max(raw_var - np.square(mean), 0))

    def as_dict(self):
        """``EasyDict(name=EasyDict(num=..., mean=..., std=...), ...)`` for every collected name."""
        stats = dnnlib.EasyDict()
        for name in self.names():
            stats[name] = dnnlib.EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name))
        return stats

    def __getitem__(self, name):
        """``collector[name]`` is ``collector.mean(name)``."""
        return self.mean(name)


def _sync(names):
    """Fold the per-device counters of ``names`` into the global cumulative sums.

    Sums over devices here and over processes with one all_reduce; resets the
    per-device counters. Returns ``[(name, cumulative_moments), ...]``.
    """
    if len(names) == 0:
        return []
    global _sync_called
    _sync_called = True

    device = _sync_device if _sync_device is not None else torch.device('cpu')
    deltas = []
    for name in names:
        delta = torch.zeros([_num_moments], dtype=_counter_dtype, device=device)
        for counter in _counters[name].values():
            delta.add_(counter.to(device))
            counter.zero_()
        deltas.append(delta)
    deltas = torch.stack(deltas)

    if _sync_device is not None:
        torch.distributed.all_reduce(deltas)

    deltas = deltas.cpu()
    for idx, name in enumerate(names):
        if name not in _cumulative:
            _cumulative[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
        _cumulative[name].add_(deltas[idx])
    return [(name, _cumulative[name]) for name in names]
