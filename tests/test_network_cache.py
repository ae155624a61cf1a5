"""stylegan_human.network_cache: at most N networks and M bytes of weights, least recently used out first."""

import pytest
import torch

from dnnlib.errors import InputError
from stylegan_human.network_cache import NetworkCache, module_bytes


def _net(n):
    """A module of exactly 4 * (n * n + n) bytes of parameters plus 4 * n of buffers."""
    module = torch.nn.Linear(n, n)
    module.register_buffer('stat', torch.zeros(n))
    return module


class Loads:
    """Load functions that record what was loaded and what the cache held at that moment."""

    def __init__(self, cache):
        self.cache = cache
        self.loaded = []
        self.held_at_load = []

    def __call__(self, key, n=4):
        def load():
            self.loaded.append(key)
            self.held_at_load.append(self.cache.keys())
            return _net(n)
        return self.cache.get(key, load)


def test_module_bytes_counts_parameters_and_buffers_once():
    assert module_bytes(_net(4)) == 4 * (16 + 4 + 4)
    shared = torch.nn.Sequential(_net(4))
    shared.append(shared[0])                         # the same layer twice: its storage counts once
    assert module_bytes(shared) == 4 * (16 + 4 + 4)
    half = torch.nn.Linear(4, 4).half()
    assert module_bytes(half) == 2 * (16 + 4)


def test_count_bound_drops_the_least_recently_used_before_loading():
    cache = NetworkCache(max_networks=2)
    get = Loads(cache)
    a = get('a')
    get('b')
    assert get('a') is a                             # a hit: not loaded again, now the most recent
    get('c')
    assert get.loaded == ['a', 'b', 'c']
    assert get.held_at_load[-1] == ['a']             # b went before c was loaded
    assert cache.keys() == ['a', 'c']
    get('b')
    assert cache.keys() == ['c', 'b'] and len(cache) == 2


def test_memory_bound_drops_the_least_recently_used_until_the_new_one_fits():
    size = module_bytes(_net(4))                     # 96 bytes
    cache = NetworkCache(max_networks=10, max_bytes=3 * size)
    get = Loads(cache)
    for key in 'abc':
        get(key)
    get('a')                                         # a is now the most recent
    get('d')
    assert cache.keys() == ['c', 'a', 'd'] and cache.total_bytes == 3 * size
    get('big', n=6)                                  # 4 * (36 + 12) = 192 bytes: two small ones must go
    assert cache.keys() == ['d', 'big'] and cache.total_bytes == size + 192


def test_a_network_bigger_than_the_cap_is_refused_and_not_kept():
    cache = NetworkCache(max_networks=3, max_bytes=100)
    get = Loads(cache)
    get('small')
    with pytest.raises(InputError, match='more than the 0.0 MiB kept in memory at most'):
        get('huge', n=16)
    assert cache.keys() == ['small']


def test_place_runs_after_eviction_and_is_what_is_kept():
    cache = NetworkCache(max_networks=1)
    cache.get('a', lambda: _net(2))
    placed = []

    def place(module):
        placed.append(cache.keys())
        return module.double()
    module = cache.get('b', lambda: _net(2), place=place)
    assert placed == [[]] and module.weight.dtype == torch.float64
    assert cache.get('b', lambda: pytest.fail('loaded again')) is module


def test_bad_bounds_are_input_errors():
    with pytest.raises(InputError, match='max_networks'):
        NetworkCache(max_networks=0)
    with pytest.raises(InputError, match='max_bytes'):
        NetworkCache(max_bytes=0)
