"""torch_utils.misc and torch_utils.training_stats."""

import uuid
import warnings

import numpy as np
import pytest
import torch

from torch_utils import misc
from torch_utils import training_stats

# ---------------------------------------------------------------------------
# misc


def test_constant_is_cached_and_broadcast():
    a = misc.constant([1.0, 2.0], shape=[3, 2])
    assert a.shape == (3, 2) and a.dtype == torch.get_default_dtype() and a.device.type == 'cpu'
    assert a.tolist() == [[1.0, 2.0]] * 3
    assert a.is_contiguous()
    assert misc.constant([1.0, 2.0], shape=[3, 2]) is a          # cache hit
    assert misc.constant([1.0, 2.0], shape=[3, 2], dtype=torch.float64) is not a
    assert misc.constant(7, dtype=torch.int64).item() == 7
    src = np.array([5.0])
    c = misc.constant(src)
    src[0] = 6.0                                                  # no aliasing with the caller's array
    assert c.item() == 5.0


def test_assert_shape():
    t = torch.zeros(2, 3, 4)
    misc.assert_shape(t, [2, 3, 4])
    misc.assert_shape(t, [None, 3, None])
    with pytest.raises(AssertionError, match='dimensions'):
        misc.assert_shape(t, [2, 3])
    with pytest.raises(AssertionError, match='dimension 1'):
        misc.assert_shape(t, [2, 5, 4])


def test_suppress_tracer_warnings():
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with misc.suppress_tracer_warnings():
            warnings.warn('hidden', torch.jit.TracerWarning)
            warnings.warn('shown', UserWarning)
        warnings.warn('shown again', torch.jit.TracerWarning)
    assert [str(w.message) for w in caught] == ['shown', 'shown again']
    assert warnings.filters == before


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_assert_shape_under_trace():
    def fn(x):
        misc.assert_shape(x, [None, 3])
        return x * 2
    traced = torch.jit.trace(fn, torch.zeros(2, 3))
    assert traced(torch.ones(4, 3)).shape == (4, 3)


def test_profiled_function():
    @misc.profiled_function
    def scaled(x, k=2):
        return x * k
    assert scaled.__name__ == 'scaled'
    assert scaled(torch.ones(2), k=3).tolist() == [3.0, 3.0]
    with torch.autograd.profiler.profile() as prof:
        scaled(torch.ones(2))
    assert any(e.name == 'scaled' for e in prof.function_events)


def _take(sampler, n):
    it = iter(sampler)
    return [int(next(it)) for _ in range(n)]


def test_infinite_sampler():
    data = list(range(10))
    # Without shuffling: dataset order, repeated forever.
    assert _take(misc.InfiniteSampler(data, shuffle=False), 25) == [i % 10 for i in range(25)]
    # With shuffling it starts from the seed's permutation, which keeps drifting
    # (an item may come back before the others have all been seen).
    perm = np.arange(10)
    np.random.RandomState(3).shuffle(perm)
    seq = _take(misc.InfiniteSampler(data, seed=3), 40)
    assert seq[0] == perm[0]
    assert _take(misc.InfiniteSampler(data, seed=3, window_size=0), 20) == perm.tolist() * 2
    assert seq == _take(misc.InfiniteSampler(data, seed=3), 40)  # deterministic
    assert seq != _take(misc.InfiniteSampler(data, seed=4), 40)
    assert seq[10:20] != seq[:10]
    assert set(seq) <= set(data)
    # Replicas take interleaved turns of the same global sequence.
    parts = [_take(misc.InfiniteSampler(data, rank=r, num_replicas=3, seed=3), 10) for r in range(3)]
    assert [parts[i % 3][i // 3] for i in range(30)] == _take(misc.InfiniteSampler(data, seed=3), 30)
    # Regression pin: the exact sequence NVIDIA's sampler gives for these arguments.
    assert _take(misc.InfiniteSampler(range(6), seed=0, window_size=0.5), 14) == PINNED_SEQUENCE
    with pytest.raises(AssertionError):
        misc.InfiniteSampler(data, rank=3, num_replicas=3)


PINNED_SEQUENCE = [5, 2, 1, 3, 0, 2, 4, 3, 1, 5, 0, 3, 4, 5]


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)
        self.head = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Tanh())
        self.register_buffer('stat', torch.arange(5.0))

    def forward(self, x):
        return self.head(self.fc(x))


def test_params_and_buffers_and_copy():
    src, dst = _Net(), _Net()
    names = [n for n, _ in misc.named_params_and_buffers(src)]
    assert names == ['fc.weight', 'fc.bias', 'head.0.weight', 'head.0.bias', 'stat']
    assert len(misc.params_and_buffers(src)) == 5
    with torch.no_grad():
        src.stat.mul_(3)
    dst.head[0].weight.requires_grad_(False)
    misc.copy_params_and_buffers(src, dst, require_all=True)
    for (n, a), (_, b) in zip(misc.named_params_and_buffers(src), misc.named_params_and_buffers(dst)):
        assert torch.equal(a, b), n
    assert dst.fc.weight.requires_grad and not dst.head[0].weight.requires_grad  # flags kept
    small = torch.nn.Module()
    small.fc = torch.nn.Linear(3, 4)
    misc.copy_params_and_buffers(small, dst)                     # partial copy is fine...
    with pytest.raises(AssertionError):
        misc.copy_params_and_buffers(small, dst, require_all=True)  # ...unless all are required


def test_ddp_sync_plain_module():
    net = _Net()
    for sync in [True, False]:
        with misc.ddp_sync(net, sync):
            net(torch.zeros(1, 3)).sum().backward()
    assert net.fc.weight.grad is not None


def test_check_ddp_consistency(monkeypatch):
    net = _Net()
    with torch.no_grad():
        net.fc.bias[0] = float('nan')                            # NaN must not count as a mismatch
    monkeypatch.setattr(torch.distributed, 'broadcast', lambda tensor, src: tensor)
    misc.check_ddp_consistency(net)

    def tamper(tensor, src):  # rank 0 holds a different stat buffer
        if tensor.numel() == 5:
            tensor.add_(1)
        return tensor
    monkeypatch.setattr(torch.distributed, 'broadcast', tamper)
    with pytest.raises(AssertionError, match='_Net.stat'):
        misc.check_ddp_consistency(net)
    misc.check_ddp_consistency(net, ignore_regex=r'.*\.stat')


def test_print_module_summary(capsys):
    net = _Net()
    x = torch.zeros(2, 3)
    out = misc.print_module_summary(net, [x])
    torch.testing.assert_close(out, net(x))
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert rows['_Net'][1:] == ['Parameters', 'Buffers', 'Output', 'shape', 'Datatype']
    assert rows['fc'][1:] == ['16', '-', '[2,', '4]', 'float32']
    assert rows['Total'][1:3] == ['26', '5']
    assert rows['<top-level>'][2] == '5'


# ---------------------------------------------------------------------------
# training_stats


def _name(tag):
    # Statistics live in module globals: unique names keep tests independent.
    return f'test/{tag}/{uuid.uuid4().hex[:8]}'


def test_report_and_collect():
    name = _name('loss')
    training_stats.report(name, [99.0])                          # before the collector: ignored
    coll = training_stats.Collector(regex=r'test/loss/.*')
    vals = [1.0, 2.5, -3.0, 4.0]
    assert training_stats.report(name, torch.tensor(vals[:2])) is not None
    training_stats.report(name, np.array(vals[2:]))
    training_stats.report(name, [])                              # nothing to add
    coll.update()
    assert name in coll.names()
    assert coll.num(name) == 4
    assert coll.mean(name) == pytest.approx(np.mean(vals))
    assert coll.std(name) == pytest.approx(np.std(vals), rel=1e-6)
    assert coll[name] == coll.mean(name)
    d = coll.as_dict()
    assert d[name].num == 4 and d[name]['mean'] == pytest.approx(1.125)
    # Next interval: only what was reported since the last update.
    training_stats.report(name, 10.0)
    coll.update()
    assert (coll.num(name), coll.mean(name), coll.std(name)) == (1, 10.0, 0.0)


def test_collector_keep_previous_and_regex():
    name = _name('acc')
    other = _name('misc')
    keep = training_stats.Collector(regex=r'test/acc/.*')
    drop = training_stats.Collector(regex=r'test/acc/.*', keep_previous=False)
    training_stats.report(name, [1.0, 3.0])
    training_stats.report(other, 5.0)
    keep.update()
    drop.update()
    assert keep.mean(name) == drop.mean(name) == 2.0
    assert other not in keep.names()
    keep.update()
    drop.update()                                                # nothing new this round
    assert keep.mean(name) == 2.0
    assert np.isnan(drop.mean(name)) and np.isnan(drop.std(name)) and drop.num(name) == 0


def test_report0_and_multiprocess_sync(monkeypatch):
    name = _name('sync')
    coll = training_stats.Collector(regex=r'test/sync/.*')
    monkeypatch.setattr(training_stats, '_rank', 1)
    assert training_stats.report0(name, 7.0) == 7.0              # rank 1: ignored
    monkeypatch.setattr(training_stats, '_rank', 0)
    training_stats.report0(name, [2.0, 4.0])
    # Pretend to be one of two identical ranks: all_reduce doubles every sum.
    monkeypatch.setattr(training_stats, '_sync_device', torch.device('cpu'))
    monkeypatch.setattr(torch.distributed, 'all_reduce', lambda t: t.mul_(2))
    coll.update()
    assert coll.num(name) == 4 and coll.mean(name) == 3.0
    assert training_stats._sync([]) == []
