"""The fast filtered_lrelu path against the reference, the dispatch between them,
and a tiny StyleGAN3 (T and R) giving the same images either way."""

import itertools
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import torch

from torch_utils.ops import filtered_lrelu as fl
from torch_utils.ops import ops_mode
from training import networks_stylegan3 as nets


def _rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _filter(kind, taps, seed):
    """None, a 1-D (separable) filter or a 2-D one, float32 as the op expects."""
    if kind is None:
        return None
    if kind == '1d':
        return _rand(taps, seed=seed, dtype=torch.float32)
    return _rand(taps, max(taps - 1, 1), seed=seed, dtype=torch.float32)  # Not square.


def _compare(x, tol, **kwargs):
    ref = fl._filtered_lrelu_ref(x, **kwargs)
    fast = fl._filtered_lrelu_fast(x, **kwargs)
    assert fast.shape == ref.shape and fast.dtype == ref.dtype
    scale = max(ref.abs().max().item(), 1.0)
    assert (fast - ref).abs().max().item() <= tol * scale
    return ref


# ----------------------------------------------------------------------------
# Agreement with the reference


_CASES = list(itertools.product(
    [1, 2, 4],                                          # up
    [1, 2, 4],                                          # down
    [None, '1d', '2d'],                                 # filter kind
    [0, [3, 1, 2, 4], [-2, 5, 1, -3]],                  # padding (per side, negative = crop)
))


@pytest.mark.parametrize('up,down,kind,padding', _CASES)
def test_matches_reference(up, down, kind, padding):
    seed = up * 100 + down * 10 + len(str(padding))
    fu = _filter(kind, 3 * up, seed) if kind else None
    fd = _filter(kind, 2 * down + 1, seed + 1) if kind else None
    for dtype, tol in [(torch.float64, 1e-10), (torch.float32, 1e-4)]:  # Random, unnormalised filters.
        x = _rand(2, 3, 15, 17, seed=seed, dtype=dtype)
        b = _rand(3, seed=seed + 2, dtype=dtype)
        for flip_filter, clamp, bias in [(False, None, b), (True, 0.7, None)]:
            _compare(x, tol, fu=fu, fd=fd, b=bias, up=up, down=down, padding=padding, gain=1.3, slope=0.25,
                     clamp=clamp, flip_filter=flip_filter)


def test_short_filters_and_odd_sizes():
    """Fewer taps than the up factor, 1-tap filters, 1-pixel-wide inputs, numpy paddings."""
    for up, taps, shape in [(4, 2, [1, 2, 5, 1]), (2, 1, [1, 1, 1, 6]), (4, 3, [2, 1, 3, 4])]:
        fu = _rand(taps, seed=taps, dtype=torch.float32)
        fd = _rand(5, seed=7, dtype=torch.float32)
        padding = [np.int64(4), np.int64(2), np.int64(5), np.int64(-1)]
        _compare(_rand(*shape, seed=up), 1e-10, fu=fu, fd=fd, up=up, down=2, padding=padding, gain=1, slope=0)
    # A filter that does not fit: the same error as the reference.
    with pytest.raises(AssertionError):
        fl._filtered_lrelu_fast(_rand(1, 1, 3, 3), fd=_rand(5, dtype=torch.float32))


def test_stylegan3_filters_float32(monkeypatch):
    """SG3-like layers (12/24-tap up filters, radial 12x12 or 12-tap down filters), several tiles."""
    taps = scipy.signal.firwin(12, 0.3)
    radial = np.outer(scipy.signal.windows.kaiser(12, 4), scipy.signal.windows.kaiser(12, 4))
    radial[2, 3] += 0.05  # Not exactly separable.
    fd_radial = torch.tensor(radial / radial.sum(), dtype=torch.float32)
    for up, fu, fd, padding in [
        (2, torch.tensor(taps, dtype=torch.float32), fd_radial, [11, 10, 11, 10]),
        (4, torch.tensor(scipy.signal.firwin(24, 0.15), dtype=torch.float32), fd_radial, [8, 5, -2, -5]),
        (2, torch.tensor(taps, dtype=torch.float32), torch.tensor(taps, dtype=torch.float32), [1, 0, -9, -10]),
    ]:
        x = _rand(1, 21, 30, 11, seed=up, dtype=torch.float32) * 20  # 21 channels: a partial chunk.
        b = _rand(21, seed=3, dtype=torch.float32)
        for tile_bytes in [16 << 10, 64 << 10]:  # Small tiles: many row bands (1 row, then several).
            monkeypatch.setattr(fl, '_TILE_BYTES', tile_bytes)
            ref = _compare(x, 1e-5, fu=fu, fd=fd, b=b, up=up, down=2, padding=padding, clamp=256)
            assert ref.shape[2] >= 8
    # The ToRGB layer: no filters, no resampling, linear.
    x = _rand(2, 3, 16, 8, seed=5, dtype=torch.float32) * 300
    _compare(x, 1e-6, b=_rand(3, seed=6, dtype=torch.float32), gain=1, slope=1, clamp=256)


def test_output_is_fresh_contiguous_and_input_untouched():
    x = _rand(1, 4, 6, 5)
    b = _rand(4, seed=1)
    x_before, b_before = x.clone(), b.clone()
    y = fl.filtered_lrelu(x, fu=_filter('1d', 4, 2), fd=_filter('1d', 4, 3), b=b, up=2, down=2, padding=2)
    assert y.is_contiguous()
    assert torch.equal(x, x_before) and torch.equal(b, b_before)
    # Without filters, resampling or padding the tile buffer is returned as is: still a copy.
    y = fl.filtered_lrelu(x, gain=1, slope=1)
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()


# ----------------------------------------------------------------------------
# Dispatch


def _spy(monkeypatch):
    calls = []
    for name in ['_filtered_lrelu_fast', '_filtered_lrelu_ref']:
        original = getattr(fl, name)

        def wrapper(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)
        monkeypatch.setattr(fl, name, wrapper)
    return calls


def test_dispatch(monkeypatch):
    calls = _spy(monkeypatch)
    x = _rand(1, 2, 5, 5, dtype=torch.float32)
    args = dict(fu=_filter('1d', 4, 1), fd=_filter('2d', 3, 2), up=2, down=2, padding=1)
    with ops_mode.fast_ops():
        fast = fl.filtered_lrelu(x, **args)
        assert calls == ['_filtered_lrelu_fast']
        calls.clear()
        ref = fl.filtered_lrelu(x, impl='ref', **args)
        assert calls == ['_filtered_lrelu_ref']
        calls.clear()
        fl.filtered_lrelu(x.half(), **{**args, 'fu': None, 'fd': None})  # Other dtypes: the reference.
        assert calls == ['_filtered_lrelu_ref']
        calls.clear()
    with ops_mode.reference_ops():
        assert torch.equal(fl.filtered_lrelu(x, **args), ref)
        assert calls == ['_filtered_lrelu_ref']
        calls.clear()
        fl.filtered_lrelu(x, impl='fast', **args)       # 'fast' asks for the fast path whatever the mode
        assert calls == ['_filtered_lrelu_fast']
        calls.clear()
    fl.filtered_lrelu(x, impl='cuda', **args)           # NVIDIA's meaning: a CUDA kernel, so not for CPU tensors
    assert calls == ['_filtered_lrelu_ref']
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)


def test_the_mode_is_scoped_to_the_block_and_the_thread():
    import threading
    seen = {}
    with ops_mode.reference_ops():
        assert ops_mode.get_mode() == 'ref'
        worker = threading.Thread(target=lambda: seen.update(other=ops_mode.get_mode()))
        worker.start()
        worker.join()
        with ops_mode.fast_ops():
            assert ops_mode.get_mode() == 'fast'
        assert ops_mode.get_mode() == 'ref'
    assert ops_mode.get_mode() == 'fast' and seen == {'other': 'fast'}


def test_environment_switch_selects_reference():
    """STYLEGAN_HUMAN_OPS sets the default mode (ref routes every call to the reference); a bad value
    is a warning when the first op runs, never an import error."""
    script = (
        'import torch\n'
        'from torch_utils.ops import filtered_lrelu as fl\n'
        'ran = []\n'
        'fl._filtered_lrelu_ref = lambda *a, _f=fl._filtered_lrelu_ref, **k: ran.append("ref") or _f(*a, **k)\n'
        'fl._filtered_lrelu_fast = lambda *a, _f=fl._filtered_lrelu_fast, **k: ran.append("fast") or _f(*a, **k)\n'
        'fl.filtered_lrelu(torch.zeros(1, 1, 4, 4), fu=torch.ones(4), up=2, padding=2)\n'
        'print(*ran)\n')
    root = pathlib.Path(__file__).resolve().parents[1]
    for mode, expected in [('ref', 'ref'), ('fast', 'fast'), ('bogus', 'fast')]:
        env = dict(os.environ, STYLEGAN_HUMAN_OPS=mode)
        done = subprocess.run([sys.executable, '-c', 'import training.networks_stylegan3\n' + script], cwd=root,
                              env=env, capture_output=True, text=True, check=True)
        assert done.stdout.split() == [expected]
        assert ("STYLEGAN_HUMAN_OPS='bogus' is not one of fast, ref; using fast" in done.stderr) == (mode == 'bogus')


@pytest.mark.parametrize('up,down,kind', [(2, 2, '1d'), (4, 2, '2d'), (1, 4, '2d'), (2, 1, None)])
def test_gradients_match_reference(monkeypatch, up, down, kind):
    """First and second derivatives w.r.t. x and b equal the reference's, across channel chunks."""
    monkeypatch.setattr(fl, '_TILE_CHANNELS', 2)
    monkeypatch.setattr(fl, '_TILE_BYTES', 1 << 10)
    args = dict(fu=_filter(kind, 3 * up, 1), fd=_filter(kind, 2 * down + 1, 2), up=up, down=down,
                padding=[3, -1, 2, 4], gain=1.5, slope=0.2, clamp=1.5)
    x0, b0 = _rand(2, 5, 9, 8, seed=up), _rand(5, seed=down)
    results = []
    for fn in [fl._filtered_lrelu_ref, fl._filtered_lrelu_fast]:
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = fn(x, b=b, **args)
        gx, gb = torch.autograd.grad((y * _rand(*y.shape, seed=9)).sum(), [x, b], create_graph=True)
        ggx, ggb = torch.autograd.grad(gx.square().sum() + (gb * y.sum()).sum(), [x, b])
        results.append([y, gx, gb, ggx, ggb])
    for ref, fast in zip(*results):
        torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-9)


def test_gradients_take_the_fast_path(monkeypatch):
    calls = _spy(monkeypatch)
    x = _rand(1, 3, 6, 5, dtype=torch.float32).requires_grad_(True)
    with ops_mode.fast_ops():
        y = fl.filtered_lrelu(x, fu=_filter('1d', 4, 1), fd=_filter('2d', 4, 2), up=2, down=2, padding=2)
    assert calls == ['_filtered_lrelu_fast'] and y.requires_grad
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# ----------------------------------------------------------------------------
# End to end: a tiny 32x16 StyleGAN3, configs T and R


@pytest.mark.parametrize('config', ['T', 'R'])
def test_tiny_stylegan3_same_images(config):
    extra = dict(conv_kernel=1, use_radial_filters=True) if config == 'R' else {}
    torch.manual_seed(0)
    G = nets.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3, square=False,
                       mapping_kwargs=dict(num_layers=2), channel_base=512, channel_max=32, num_layers=6,
                       num_critical=2, margin_size=4, num_fp16_res=0, **extra).eval()
    if config == 'R':
        assert any(getattr(G.synthesis, n).down_filter is not None and getattr(G.synthesis, n).down_filter.ndim == 2
                   for n in G.synthesis.layer_names)
    z = torch.from_numpy(np.random.RandomState(1).randn(2, 16)).float()
    with torch.no_grad():
        with ops_mode.reference_ops():
            ref = G(z, None, noise_mode='const', force_fp32=True)
        with ops_mode.fast_ops():
            fast = G(z, None, noise_mode='const', force_fp32=True)
    assert fast.shape == ref.shape == (2, 3, 32, 16)
    assert (fast - ref).abs().max().item() <= 1e-3
    assert ref.abs().max().item() > 1e-3  # A real image, not zeros.
