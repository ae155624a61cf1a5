"""The Triton kernels of bias_act, upfirdn2d and filtered_lrelu against the reference ops,
run on CPU tensors by Triton's interpreter (see tests/triton_interpreter.py): values,
first and second derivatives, odd and 2:1 sizes, batches, channel counts that are not
powers of two, several tiles per image; and how the ops choose them."""

import pathlib
import types

import numpy as np
import pytest
import scipy.signal
import torch

import triton_interpreter
from triton_interpreter import interpreter, kernels  # noqa: F401  (fixtures)
from dnnlib.errors import UnavailableError
from torch_utils.ops import bias_act as ba
from torch_utils.ops import filtered_lrelu as fl
from torch_utils.ops import ops_mode
from torch_utils.ops import polyphase
from torch_utils.ops import triton_ops
from torch_utils.ops import upfirdn2d as ud
from helpers import assert_close_scaled as _close, fir_filter as _filter, seeded_randn as _rand

pytestmark = triton_interpreter.module_marks
test_in_a_fresh_process = triton_interpreter.fresh_process_test(pathlib.Path(__file__))


def derivatives(fn, inputs, weights_seed=9):
    """fn(*inputs), its first derivatives (of a weighted sum) and second ones (of a penalty on them)."""
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    y = fn(*inputs)
    weights = torch.sin(torch.arange(y.numel(), dtype=y.dtype) + weights_seed).reshape(y.shape)
    first = torch.autograd.grad((y * weights).sum(), inputs, create_graph=True)
    penalty = sum(g.square().sum() for g in first) + y.square().sum()
    second = torch.autograd.grad(penalty, inputs, allow_unused=True)
    return [y, *first, *[torch.zeros_like(t) if g is None else g for g, t in zip(second, inputs)]]


# ---------------------------------------------------------------------------
# bias_act


@pytest.mark.parametrize('act', sorted(ba.activation_funcs))
def test_bias_act_every_activation(kernels, act):
    x = _rand(2, 5, 3, 7) * 3
    b = _rand(5, seed=1)
    for kwargs in [{}, dict(alpha=0.3, gain=2.5, clamp=1.5)]:
        got = derivatives(lambda x, b: ba.bias_act(x, b, act=act, **kwargs), [x, b])
        with ops_mode.reference_ops():
            want = derivatives(lambda x, b: ba.bias_act(x, b, act=act, **kwargs), [x, b])
        for g, w in zip(got, want):
            _close(g, w, 1e-12)
    assert kernels['bias_act'] >= 2


def test_bias_act_layouts_dims_and_dtypes(kernels):
    x = _rand(2, 6, 5, 3).contiguous(memory_format=torch.channels_last)
    b = _rand(6, seed=1)
    y = ba.bias_act(x, b, act='lrelu', clamp=0.9)
    _close(y, ba._bias_act_ref(x, b, act='lrelu', clamp=0.9), 1e-14)
    assert y.is_contiguous(memory_format=torch.channels_last)
    x3 = _rand(3, 4, 7)
    b3 = _rand(7, seed=2)
    _close(ba.bias_act(x3, b3, dim=2, act='swish'), ba._bias_act_ref(x3, b3, dim=2, act='swish'), 1e-14)
    _close(ba.bias_act(x3[:, ::2], act='sigmoid', gain=3), ba._bias_act_ref(x3[:, ::2], act='sigmoid', gain=3), 1e-14)
    assert ba.bias_act(x3) is x3   # nothing to do, as the reference
    for dtype, tol in [(torch.float32, 1e-6), (torch.float16, 2e-3), (torch.bfloat16, 1e-2)]:
        got = ba.bias_act(x.to(dtype), b.to(dtype), act='tanh', gain=2)
        assert got.dtype == dtype
        _close(got.double(), ba._bias_act_ref(x, b, act='tanh', gain=2), tol)


def test_bias_act_gradcheck(kernels):
    x = _rand(1, 2, 3).requires_grad_(True)
    b = _rand(2, seed=1).requires_grad_(True)
    fn = lambda x, b: ba.bias_act(x, b, act='swish', gain=1.3, clamp=10)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, b), fast_mode=True)


def test_bias_act_third_derivative_is_refused(kernels):
    x = _rand(4).requires_grad_(True)
    y = ba.bias_act(x, act='tanh', dim=0)
    g, = torch.autograd.grad(y.sum(), x, create_graph=True)
    gg, = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="impl='ref'"):
        torch.autograd.grad(gg.sum(), x)


# ---------------------------------------------------------------------------
# upfirdn2d


_UPFIRDN_CASES = [  # up, down, padding
    (1, 1, 0), (2, 1, [2, 1]), (1, 2, [1, 2, 0, 3]), (3, 2, [-1, 2, 4, -2]), ([2, 1], [1, 2], [3, 0, -1, 2]),
    (4, 1, [5, 2, 1, 6]), (1, 3, [-2, 4, 2, 0]),
]


@pytest.mark.parametrize('up,down,padding', _UPFIRDN_CASES)
@pytest.mark.parametrize('kind', [None, '1d', '2d'])
def test_upfirdn2d_matches_reference(kernels, up, down, padding, kind):
    f = _filter(kind, 4 if kind == '2d' else 5, 3)
    x = _rand(2, 3, 11, 6)   # batch 2, 3 channels, odd 2:1-ish image
    for flip in (False, True):
        kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip, gain=1.7)
        _close(ud.upfirdn2d(x, f, **kwargs), ud._upfirdn2d_ref(x, f, **kwargs), 1e-12)
    assert kernels['resample'] == 2


def test_upfirdn2d_many_tiles(kernels, monkeypatch):
    from torch_utils.ops.triton_ops import resample
    monkeypatch.setattr(resample, '_INTERPRETER_BLOCK_SIZES', (16,))
    x = _rand(2, 5, 41, 20, dtype=torch.float32)
    f = ud.setup_filter([1, 3, 3, 1])
    for fn, kwargs in [(ud.upsample2d, {}), (ud.downsample2d, {}), (ud.filter2d, dict(padding=[1, 2, 3, 0])),
                       (ud.upfirdn2d, dict(up=2, down=3, padding=[5, -1, 2, 7]))]:
        got = fn(x, f, **kwargs)
        with ops_mode.reference_ops():
            want = fn(x, f, **kwargs)
        _close(got, want, 1e-6)


def test_upfirdn2d_gradients(kernels):
    x = _rand(1, 2, 4, 5).requires_grad_(True)
    for f, kwargs in [(_filter('2d', 4, 1), dict(up=2, padding=[1, 2, 0, 1])),
                      (_filter('1d', 5, 2), dict(down=2, padding=2))]:
        fn = lambda x: ud.upfirdn2d(x, f, **kwargs)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)
    # float32, the way StyleGAN2 trains (upsample, then the gradient through it).
    x32 = _rand(2, 3, 9, 5, dtype=torch.float32)
    f = ud.setup_filter([1, 3, 3, 1])
    got = derivatives(lambda x: ud.upsample2d(x, f), [x32])
    with ops_mode.reference_ops():
        want = derivatives(lambda x: ud.upsample2d(x, f), [x32])
    for g, w in zip(got, want):
        _close(g, w, 1e-5)


# ---------------------------------------------------------------------------
# filtered_lrelu


_FL_CASES = [  # up, down, filters, padding, clamp, flip_filter
    (2, 2, '1d', [7, 6, 8, 5], None, False),
    (2, 1, '2d', [5, 6, 4, 7], 0.8, True),
    (1, 2, '1d', [6, 7, 5, 8], 0.5, False),
    (1, 1, None, [-1, 3, 2, 0], None, False),
    (4, 2, '2d', [3, 1, 2, 4], 0.7, False),
    (2, 4, '1d', [-2, 5, 1, -3], None, True),
    (1, 1, '1d', 0, None, True),
]


@pytest.mark.parametrize('up,down,kind,padding,clamp,flip', _FL_CASES)
def test_filtered_lrelu_matches_reference(kernels, up, down, kind, padding, clamp, flip):
    kwargs = dict(fu=_filter(kind, 3 * up, up), fd=_filter(kind, 2 * down + 1, down + 7), up=up, down=down,
                  padding=padding, gain=1.3, slope=0.25, clamp=clamp, flip_filter=flip)
    x, b = _rand(2, 3, 13, 7, seed=up), _rand(3, seed=down)
    _close(fl.filtered_lrelu(x, b=b, **kwargs), fl._filtered_lrelu_ref(x, b=b, **kwargs), 1e-12)
    assert kernels['resample'] == 1


@pytest.mark.parametrize('up,down,kind,padding,clamp,flip', _FL_CASES[:4])
def test_filtered_lrelu_derivatives(kernels, up, down, kind, padding, clamp, flip):
    kwargs = dict(fu=_filter(kind, 3 * up, up), fd=_filter(kind, 2 * down + 1, down + 7), up=up, down=down,
                  padding=padding, gain=1.3, slope=0.25, clamp=clamp, flip_filter=flip)
    x, b = _rand(2, 3, 9, 6, seed=up), _rand(3, seed=down)
    got = derivatives(lambda x, b: fl.filtered_lrelu(x, b=b, **kwargs), [x, b])
    want = derivatives(lambda x, b: fl._filtered_lrelu_ref(x, b=b, **kwargs), [x, b])
    for g, w in zip(got, want):
        _close(g, w, 1e-10)


def test_filtered_lrelu_gradcheck(kernels):
    x = _rand(1, 2, 4, 4).requires_grad_(True)
    b = _rand(2, seed=11).requires_grad_(True)
    fu = ud.setup_filter([1, 3, 3, 1])
    fn = lambda x, b: fl.filtered_lrelu(x, fu, fu, b, up=2, down=2, padding=3, clamp=5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b), fast_mode=True)


def _stylegan3_filters():
    taps = scipy.signal.firwin(12, 0.3)
    radial = np.outer(scipy.signal.windows.kaiser(12, 4), scipy.signal.windows.kaiser(12, 4))
    radial[2, 3] += 0.01  # not symmetric: full rank
    return (torch.tensor(taps, dtype=torch.float32), torch.tensor(scipy.signal.firwin(24, 0.15), dtype=torch.float32),
            torch.tensor(radial / radial.sum(), dtype=torch.float32))


def _compare_derivatives(x, b, tol, **kwargs):
    got = derivatives(lambda x, b: fl.filtered_lrelu(x, b=b, **kwargs), [x, b])
    want = derivatives(lambda x, b: fl._filtered_lrelu_ref(x, b=b, **kwargs), [x, b])
    for g, w in zip(got, want):
        _close(g, w, tol)


def test_stylegan3_layers_float32(kernels):
    """StyleGAN3-R's filters (12/24-tap up, a radial 12x12 down), float32, 21 channels: values and gradients,
    with the interpreter's tiles and with a GPU's."""
    fu12, fu24, radial = _stylegan3_filters()
    x = _rand(1, 21, 30, 15, seed=1, dtype=torch.float32) * 20
    b = _rand(21, seed=2, dtype=torch.float32)
    _compare_derivatives(x, b, 2e-5, fu=fu24, fd=radial, up=4, down=2, padding=[8, 5, -2, -5], clamp=256)
    from torch_utils.ops.triton_ops import resample
    with pytest.MonkeyPatch.context() as patch:   # the tiles a GPU gets
        patch.setattr(resample, '_INTERPRETER_BLOCK_SIZES', resample._BLOCK_SIZES)
        _compare_derivatives(x, b, 2e-5, fu=fu12, fd=radial, up=2, down=2, padding=[11, 10, 11, 10], clamp=256)


def test_filtered_lrelu_many_tiles(kernels, monkeypatch):
    """The smallest tiles: each 2-3 outputs across, so tile borders (and shared sign bytes) are everywhere."""
    from torch_utils.ops.triton_ops import resample
    monkeypatch.setattr(resample, '_INTERPRETER_BLOCK_SIZES', (16,))
    fu12, _, radial = _stylegan3_filters()
    x = _rand(2, 3, 12, 7, seed=1, dtype=torch.float32) * 20
    b = _rand(3, seed=2, dtype=torch.float32)
    _compare_derivatives(x, b, 2e-5, fu=fu12, fd=radial, up=2, down=2, padding=[11, 10, 11, 10], clamp=25)
    _compare_derivatives(x, b, 2e-5, fu=fu12, fd=fu12, up=2, down=1, padding=[11, 10, 3, 4])


def test_filtered_lrelu_half_precision(kernels):
    x = _rand(2, 3, 10, 5) * 4
    fu, fd = ud.setup_filter([1, 3, 3, 1]), ud.setup_filter([1, 2, 1])
    want = fl._filtered_lrelu_ref(x, fu, fd, up=2, down=2, padding=3, clamp=2)
    for dtype, tol in [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)]:
        got = fl.filtered_lrelu(x.to(dtype), fu, fd, up=2, down=2, padding=3, clamp=2)
        assert got.dtype == dtype
        _close(got.double(), want, tol)


def test_backward_keeps_two_bits_per_upsampled_pixel(kernels):
    saved = []
    x = _rand(2, 3, 9, 6, dtype=torch.float32).requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fl.filtered_lrelu(x, _filter('1d', 6, 1), _filter('1d', 5, 2), up=2, down=2, padding=[3, 2, 1, 4])
    mid_h, mid_w = 9 * 2 + 5 - 5, 6 * 2 + 5 - 5
    assert [(t.dtype, tuple(t.shape)) for t in saved] == [(torch.uint8, (6, mid_h, (mid_w + 3) // 4))]


# ---------------------------------------------------------------------------
# Dispatch


def test_which_tensors_take_the_kernels(interpreter, monkeypatch):
    cuda, cpu = (types.SimpleNamespace(device=torch.device(d)) for d in ('cuda', 'cpu'))
    monkeypatch.setattr(triton_ops, 'runs_on', lambda device: True)
    assert triton_ops.use_triton(cuda) and triton_ops.use_triton(cuda, 'cuda') and triton_ops.use_triton(cuda, 'fast')
    assert not triton_ops.use_triton(cuda, 'ref') and not triton_ops.use_triton(cpu)
    with ops_mode.reference_ops():
        assert not triton_ops.use_triton(cuda) and triton_ops.use_triton(cuda, 'cuda')
    with triton_ops.triton_kernels():
        assert triton_ops.use_triton(cpu) and not triton_ops.use_triton(cpu, 'ref')
        assert not ops_mode.fast_cpu_inference(torch.zeros(1))   # the CPU fast paths stand aside
        assert triton_ops.fused_backend(cpu) == 'triton' and triton_ops.fused_backend(cpu, 'ref') is None
    assert ops_mode.fast_cpu_inference(torch.zeros(1)) and triton_ops.fused_backend(cpu) is None
    assert triton_ops.fused_backend(types.SimpleNamespace(device=torch.device('mps'))) == 'torch'
    assert not triton_ops.use_triton(cpu)
    monkeypatch.setattr(triton_ops, 'runs_on', lambda device: False)  # Triton missing or broken on the GPU
    assert not triton_ops.use_triton(cuda)


def test_kernels_on_cpu_need_the_interpreter(interpreter, monkeypatch):
    monkeypatch.setattr(triton_ops, 'interpreter_active', lambda: False)
    with pytest.raises(UnavailableError, match='enable_interpreter'):
        with triton_ops.triton_kernels():
            pass


def test_probe_warns_and_falls_back(interpreter, monkeypatch):
    assert triton_ops._probe(torch.device('cpu'))
    monkeypatch.setattr(polyphase, 'filtered_lrelu', lambda *a, **k: 1 / 0)
    with pytest.warns(UserWarning, match='Triton kernels do not run on cpu .ZeroDivisionError'):
        assert not triton_ops._probe(torch.device('cpu'))


def test_reference_mode_and_impl_ref_skip_the_kernels(kernels):
    x = _rand(1, 2, 6, 5, dtype=torch.float32)
    f = ud.setup_filter([1, 3, 3, 1])
    with ops_mode.reference_ops():
        ud.upsample2d(x, f)
        ba.bias_act(x, act='lrelu')
        fl.filtered_lrelu(x, f, f, up=2, down=2, padding=3)
    ud.upsample2d(x, f, impl='ref')
    ba.bias_act(x, act='lrelu', impl='ref')
    fl.filtered_lrelu(x, f, f, up=2, down=2, padding=3, impl='ref')
    assert kernels == {'bias_act': 0, 'resample': 0}
    fl.filtered_lrelu(x, f, f, up=2, down=2, padding=3, impl='cuda')   # NVIDIA's compiled path: the kernel
    assert kernels['resample'] == 1
