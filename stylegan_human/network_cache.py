"""Loaded networks kept for reuse, bounded by count and by memory, least recently used out first.

A long-running server (the web app) that kept every network it was ever asked for would
grow without end; :class:`NetworkCache` keeps at most ``max_networks`` of them, holding at
most ``max_bytes`` of parameters and buffers together::

    cache = NetworkCache(max_networks=2, max_bytes=2 << 30)
    G = cache.get('stylegan_human_v2_512', load=lambda: load_my_network(), place=lambda G: G.to('cuda'))

On a miss the least recently used networks are dropped before the new one is loaded until
there is room for one more, and again after it is loaded (when its size is known) until
its bytes fit, before ``place`` moves it to its device. A network bigger than the whole
cap is refused with a one-line error; nothing is kept of it.
"""

import collections
import threading
from typing import Callable, List, Optional

import torch

from dnnlib.errors import InputError

MIB = 1 << 20


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes held by ``module``'s parameters and buffers (each storage counted once)."""
    seen = set()
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        key = (tensor.device, tensor.data_ptr()) if tensor.numel() else id(tensor)
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


class NetworkCache:
    """Networks by key, least recently used first out; thread-safe (one load at a time)."""

    def __init__(self, max_networks: int = 2, max_bytes: Optional[int] = None):
        if max_networks < 1:
            raise InputError(f'max_networks must be at least 1, not {max_networks}', param='max_networks')
        if max_bytes is not None and max_bytes < 1:
            raise InputError(f'max_bytes must be positive, not {max_bytes}', param='max_bytes')
        self.max_networks = max_networks
        self.max_bytes = max_bytes
        self._entries = collections.OrderedDict()   # key -> (module, bytes); the last is the most recent
        self._lock = threading.RLock()

    def get(self, key: str, load: Callable[[], torch.nn.Module],
            place: Optional[Callable[[torch.nn.Module], torch.nn.Module]] = None) -> torch.nn.Module:
        """The network under ``key``: the kept one, or ``place(load())`` kept from now on."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            self._evict(lambda: len(self._entries) >= self.max_networks)   # room for one more before loading
            module = load()
            size = module_bytes(module)
            if self.max_bytes is not None and size > self.max_bytes:
                raise InputError(f'the network holds {size / MIB:.1f} MiB of weights, more than the '
                                 f'{self.max_bytes / MIB:.1f} MiB kept in memory at most')
            if self.max_bytes is not None:
                self._evict(lambda: self.total_bytes + size > self.max_bytes)
            if place is not None:
                module = place(module)
            self._entries[key] = (module, size)
            return module

    def keys(self) -> List[str]:
        """Kept keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    @property
    def total_bytes(self) -> int:
        """Bytes of parameters and buffers of every kept network."""
        return sum(size for _, size in self._entries.values())

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, over: Callable[[], bool]):
        while self._entries and over():
            self._entries.popitem(last=False)
