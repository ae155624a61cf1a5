"""torch_utils.ops checked against independent formulations (numpy/scipy or plain torch)."""

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import conv2d_resample
from torch_utils.ops import filtered_lrelu
from torch_utils.ops import fma
from torch_utils.ops import grid_sample_gradfix
from torch_utils.ops import upfirdn2d

DT = torch.float64


def _rand(*shape, seed=0, dtype=DT):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _pad4(p):
    if isinstance(p, int):
        return p, p, p, p
    return (p[0], p[0], p[1], p[1]) if len(p) == 2 else tuple(p)


def _as_2d(f):
    """None -> 1x1 identity; 1-D (separable) -> outer product."""
    if f is None:
        return np.ones([1, 1])
    f = f.double().numpy()
    return np.outer(f, f) if f.ndim == 1 else f


def ref_upfirdn(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """upfirdn2d by the book, one image at a time with numpy/scipy."""
    ux, uy = _pair(up)
    dx, dy = _pair(down)
    x0, x1, y0, y1 = _pad4(padding)
    f2 = _as_2d(f) * gain
    x = x.detach().double().numpy()
    out = []
    for img in x.reshape(-1, *x.shape[2:]):
        u = np.zeros([img.shape[0] * uy, img.shape[1] * ux])
        u[::uy, ::ux] = img                                   # zero insertion
        u = np.pad(u, ((max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))))
        u = u[max(-y0, 0): u.shape[0] - max(-y1, 0), max(-x0, 0): u.shape[1] - max(-x1, 0)]  # negative = crop
        conv = scipy.signal.correlate2d if flip_filter else scipy.signal.convolve2d
        out.append(conv(u, f2, mode='valid')[::dy, ::dx])
    out = np.stack(out)
    return torch.from_numpy(out.reshape(*x.shape[:2], *out.shape[1:]))


# ---------------------------------------------------------------------------
# setup_filter and friends


def test_setup_filter_conventions():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert f.dtype == torch.float32 and f.shape == (4, 4)
    np.testing.assert_allclose(f.numpy(), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64, rtol=1e-6)
    # Gain scales the 2-D response; a separable filter carries sqrt(gain) per axis.
    assert abs(float(upfirdn2d.setup_filter([1, 2, 1], gain=4).sum()) - 4) < 1e-5
    fs = upfirdn2d.setup_filter([1, 2, 1], separable=True, gain=4)
    assert fs.shape == (3,) and abs(float(fs.sum()) - 2) < 1e-6
    # Separable is chosen automatically from 8 taps on.
    assert upfirdn2d.setup_filter(np.ones(7)).ndim == 2
    assert upfirdn2d.setup_filter(np.ones(8)).ndim == 1
    assert upfirdn2d.setup_filter(None).tolist() == [[1.0]]
    assert upfirdn2d.setup_filter(2.0, normalize=False).tolist() == [[4.0]]
    ff = upfirdn2d.setup_filter([[1, 2], [3, 4]], normalize=False, flip_filter=True)
    assert ff.tolist() == [[4, 3], [2, 1]]
    src = torch.tensor([1.0, 2.0, 1.0])
    upfirdn2d.setup_filter(src)
    assert src.tolist() == [1.0, 2.0, 1.0]  # the caller's tensor is left alone


def test_parse_helpers():
    assert upfirdn2d._parse_padding(2) == (2, 2, 2, 2)
    assert upfirdn2d._parse_padding([1, 2]) == (1, 1, 2, 2)
    assert upfirdn2d._parse_padding([1, 2, 3, 4]) == (1, 2, 3, 4)
    assert upfirdn2d._parse_scaling(3) == (3, 3)
    assert upfirdn2d._parse_scaling([2, 1]) == (2, 1)
    with pytest.raises(AssertionError):
        upfirdn2d._parse_scaling(0)
    assert upfirdn2d._get_filter_size(None) == (1, 1)
    assert upfirdn2d._get_filter_size(torch.zeros(3, 5)) == (5, 3)
    assert upfirdn2d._get_filter_size(torch.zeros(6)) == (6, 6)
    assert filtered_lrelu._parse_padding([np.int64(1), 2, np.int32(3), 4]) == (1, 2, 3, 4)


# ---------------------------------------------------------------------------
# upfirdn2d


_ASYM = upfirdn2d.setup_filter(torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) + 0.1)
_SEP = upfirdn2d.setup_filter([1, -2, 5, 3, 2], separable=True)


@pytest.mark.parametrize('f', [_ASYM, _SEP, None], ids=['2d', 'separable', 'none'])
@pytest.mark.parametrize('up,down,padding', [
    (1, 1, 0),
    (2, 1, [2, 1]),
    (1, 2, [1, 2, 0, 3]),
    (3, 2, [-1, 2, 4, -2]),     # negative padding crops
    ([2, 1], [1, 2], [3, 0, -1, 2]),
])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_upfirdn2d_matches_scipy(f, up, down, padding, flip_filter):
    x = _rand(2, 3, 7, 6)
    gain = 1.7
    got = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    want = ref_upfirdn(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    assert got.shape == want.shape
    # The gain is folded into the float32 filter (as upstream), hence ~1e-7 differences.
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_upfirdn2d_impl_and_dtype():
    x = _rand(1, 2, 5, 5, dtype=torch.float32)
    a = upfirdn2d.upfirdn2d(x, _ASYM, up=2, padding=1, impl='ref')
    b = upfirdn2d.upfirdn2d(x, _ASYM, up=2, padding=1, impl='cuda')
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    with pytest.raises(AssertionError):
        upfirdn2d.upfirdn2d(x, _ASYM, impl='triton')
    with pytest.raises(AssertionError):   # filters must be float32
        upfirdn2d.upfirdn2d(x, _ASYM.double())


def test_resample_wrappers_known_results():
    x = _rand(2, 3, 6, 8)
    box = upfirdn2d.setup_filter([1, 1])
    # Box filter: upsampling = nearest neighbour, downsampling = 2x2 average.
    up = upfirdn2d.upsample2d(x, box)
    torch.testing.assert_close(up, x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    torch.testing.assert_close(upfirdn2d.downsample2d(x, box), F.avg_pool2d(x, 2))
    # Odd filter: filter2d is scipy's 'same' convolution.
    f = upfirdn2d.setup_filter(torch.rand(3, 3, generator=torch.Generator().manual_seed(2)))
    got = upfirdn2d.filter2d(x, f)
    want = np.stack([scipy.signal.convolve2d(im, f.double().numpy(), mode='same')
                     for im in x.numpy().reshape(-1, 6, 8)]).reshape(2, 3, 6, 8)
    torch.testing.assert_close(got, torch.from_numpy(want))
    # Default StyleGAN filter: sizes follow the factor, DC is preserved away from borders.
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    c = torch.full([1, 1, 8, 8], 3.0, dtype=DT)
    u = upfirdn2d.upsample2d(c, f)
    d = upfirdn2d.downsample2d(c, f)
    assert u.shape == (1, 1, 16, 16) and d.shape == (1, 1, 4, 4)
    torch.testing.assert_close(u[..., 2:-2, 2:-2], torch.full_like(u[..., 2:-2, 2:-2], 3.0))
    torch.testing.assert_close(d[..., 1:-1, 1:-1], torch.full_like(d[..., 1:-1, 1:-1], 3.0))
    assert upfirdn2d.filter2d(c, f, padding=[1, 2, 0, 1]).shape == (1, 1, 9, 11)


# ---------------------------------------------------------------------------
# bias_act

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_PLAIN = {
    'linear': lambda x, a: x,
    'relu': lambda x, a: torch.where(x > 0, x, torch.zeros_like(x)),
    'lrelu': lambda x, a: torch.where(x >= 0, x, x * a),
    'tanh': lambda x, a: (torch.exp(2 * x) - 1) / (torch.exp(2 * x) + 1),
    'sigmoid': lambda x, a: 1 / (1 + torch.exp(-x)),
    'elu': lambda x, a: torch.where(x > 0, x, torch.exp(x) - 1),
    'selu': lambda x, a: _SELU_SCALE * torch.where(x > 0, x, _SELU_ALPHA * (torch.exp(x) - 1)),
    'softplus': lambda x, a: torch.log(1 + torch.exp(x)),
    'swish': lambda x, a: x / (1 + torch.exp(-x)),
}
_DEFAULT_GAIN = {'relu': np.sqrt(2), 'lrelu': np.sqrt(2), 'swish': np.sqrt(2)}


def test_activation_table():
    assert set(bias_act.activation_funcs) == set(_PLAIN)
    for name, spec in bias_act.activation_funcs.items():
        assert spec.def_gain == _DEFAULT_GAIN.get(name, 1), name
        assert spec.def_alpha == (0.2 if name == 'lrelu' else 0), name
        assert {'func', 'def_alpha', 'def_gain', 'cuda_idx', 'ref', 'has_2nd_grad'} <= set(spec)


@pytest.mark.parametrize('act', sorted(_PLAIN))
def test_bias_act_matches_plain_torch(act):
    x = _rand(3, 4, 5) * 3
    b = _rand(4, seed=1)
    xb = x + b[None, :, None]
    # Defaults: default alpha and gain, no clamp.
    a0 = 0.2 if act == 'lrelu' else 0
    want = _PLAIN[act](xb, a0) * _DEFAULT_GAIN.get(act, 1)
    torch.testing.assert_close(bias_act.bias_act(x, b, act=act), want)
    # Explicit alpha, gain and clamp; the clamp applies after the gain.
    want = (_PLAIN[act](xb, 0.3) * 2.5).clamp(-1.5, 1.5)
    got = bias_act.bias_act(x, b, act=act, alpha=0.3, gain=2.5, clamp=1.5, impl='cuda')
    torch.testing.assert_close(got, want)
    assert got.abs().max() <= 1.5


def test_bias_act_dim_and_no_bias():
    x = _rand(2, 3, 5)
    b = _rand(5, seed=3)
    torch.testing.assert_close(bias_act.bias_act(x, b, dim=2), x + b)
    torch.testing.assert_close(bias_act.bias_act(x), x)
    torch.testing.assert_close(bias_act.bias_act(x, act='lrelu', gain=1), torch.where(x >= 0, x, 0.2 * x))
    assert bias_act.bias_act(x.float(), b.float(), dim=2).dtype == torch.float32
    with pytest.raises(AssertionError):
        bias_act.bias_act(x, b, dim=1)     # wrong length for dim 1
    with pytest.raises(KeyError):
        bias_act.bias_act(x, act='gelu')


@pytest.mark.parametrize('act', ['lrelu', 'tanh', 'swish', 'softplus'])
def test_bias_act_gradcheck(act):
    x = _rand(2, 3, 4)
    x = (x + 0.1 * torch.sign(x)).requires_grad_()   # keep away from the lrelu kink
    b = _rand(3, seed=4).requires_grad_()
    fn = lambda x, b: bias_act.bias_act(x, b, act=act, gain=1.3, clamp=10)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


# ---------------------------------------------------------------------------
# conv2d_resample


def ref_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """Pad once, upsample-filter, convolve (valid), filter-downsample, step by step."""
    fw, fh = (1, 1) if f is None else (f.shape[-1], f.shape[0])
    x0, x1, y0, y1 = _pad4(padding)
    if up > 1:   # the margins a filter of this size needs for this factor
        x0, x1, y0, y1 = x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2, y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2
    if down > 1:
        x0, x1 = x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2
        y0, y1 = y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2
    h = ref_upfirdn(x, f if up > 1 else None, up=up, padding=[x0, x1, y0, y1], gain=up ** 2, flip_filter=flip_filter)
    h = F.conv2d(h, w if flip_weight else w.flip([2, 3]), groups=groups)
    if down > 1:
        h = ref_upfirdn(h, f, down=down, flip_filter=flip_filter)
    return h


_F4 = upfirdn2d.setup_filter([1, 3, 3, 1])


@pytest.mark.parametrize('k', [1, 3])
@pytest.mark.parametrize('up,down', [(1, 1), (2, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize('groups', [1, 2])
@pytest.mark.parametrize('flip_weight', [True, False])
@pytest.mark.parametrize('padding', [1, [0, 2, 1, 0]])
def test_conv2d_resample_matches_composition(k, up, down, groups, flip_weight, padding):
    x = _rand(2, 4, 6, 5)
    w = _rand(6, 4 // groups, k, k + (k > 1), seed=5)      # non-square kernel when k > 1
    f = _F4 if (up > 1 or down > 1) else None
    kw = dict(up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight, flip_filter=False)
    got = conv2d_resample.conv2d_resample(x, w, f=f, **kw)
    want = ref_conv2d_resample(x, w, f, **kw)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_conv2d_resample_plain_and_flip_filter():
    x = _rand(1, 3, 7, 7)
    w = _rand(5, 3, 3, 3, seed=6)
    torch.testing.assert_close(conv2d_resample.conv2d_resample(x, w, padding=1), F.conv2d(x, w, padding=1))
    torch.testing.assert_close(conv2d_resample.conv2d_resample(x, w, padding=1, flip_weight=False),
                               F.conv2d(x, w.flip([2, 3]), padding=1))
    f = upfirdn2d.setup_filter(torch.rand(4, 4, generator=torch.Generator().manual_seed(7)))
    for up, down in [(2, 1), (1, 2)]:
        got = conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=1, flip_filter=True)
        want = ref_conv2d_resample(x, w, f, up, down, 1, 1, True, True)
        torch.testing.assert_close(got, want)
    # StyleGAN shapes: up=2 doubles, down=2 halves, with padding = kernel // 2.
    assert conv2d_resample.conv2d_resample(x[..., :6, :6], w, _F4, up=2, padding=1).shape == (1, 5, 12, 12)
    assert conv2d_resample.conv2d_resample(x[..., :6, :6], w, _F4, down=2, padding=1).shape == (1, 5, 3, 3)


@pytest.mark.parametrize('up,down', [(2, 1), (1, 2), (1, 1)])
def test_conv2d_resample_gradcheck(up, down):
    x = _rand(1, 2, 4, 4).requires_grad_()
    w = _rand(2, 2, 3, 3, seed=8).requires_grad_()
    fn = lambda x, w: conv2d_resample.conv2d_resample(x, w, f=_F4, up=up, down=down, padding=1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))


# ---------------------------------------------------------------------------
# filtered_lrelu


def ref_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    h = x + b[None, :, None, None] if b is not None else x
    h = ref_upfirdn(h, fu, up=up, padding=[int(p) for p in _pad4(padding)], gain=up ** 2, flip_filter=flip_filter)
    h = torch.where(h >= 0, h, h * slope) * gain
    if clamp is not None:
        h = h.clamp(-clamp, clamp)
    return ref_upfirdn(h, fd, down=down, flip_filter=flip_filter)


_FU = upfirdn2d.setup_filter(np.hanning(14)[1:-1])   # 12 taps -> separable, like StyleGAN3's
_FD = upfirdn2d.setup_filter(torch.rand(4, 5, generator=torch.Generator().manual_seed(9)) + 0.2)


@pytest.mark.parametrize('up,down,padding,clamp', [
    (2, 2, [np.int64(7), np.int64(6), 8, 5], None),
    (2, 1, [5, 6, 4, 7], 0.8),
    (1, 2, [6, 7, 5, 8], 0.5),
    (1, 1, [-1, 12, 6, 7], None),
])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_filtered_lrelu_matches_composition(up, down, padding, clamp, flip_filter):
    x = _rand(2, 3, 6, 7)
    b = _rand(3, seed=10)
    kw = dict(up=up, down=down, padding=padding, gain=1.6, slope=0.15, clamp=clamp, flip_filter=flip_filter)
    got = filtered_lrelu.filtered_lrelu(x, _FU, _FD, b, **kw)
    want = ref_filtered_lrelu(x, _FU, _FD, b, **kw)
    # The output size formula from the docs.
    p = [int(v) for v in padding]
    assert got.shape[2] == (6 * up + p[2] + p[3] - 11 - 3 + down - 1) // down
    assert got.shape[3] == (7 * up + p[0] + p[1] - 11 - 4 + down - 1) // down
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_filtered_lrelu_defaults_and_impls():
    x = _rand(1, 2, 5, 5)
    # No filters, default gain sqrt(2) and slope 0.2: an elementwise scaled leaky ReLU.
    torch.testing.assert_close(filtered_lrelu.filtered_lrelu(x), torch.where(x >= 0, x, 0.2 * x) * np.sqrt(2))
    a = filtered_lrelu.filtered_lrelu(x.float(), _FU, _FD, up=2, down=2, padding=10, impl='ref')
    c = filtered_lrelu.filtered_lrelu(x.float(), _FU, _FD, up=2, down=2, padding=10, impl='cuda')
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, c)


def test_filtered_lrelu_gradcheck():
    x = _rand(1, 2, 4, 4).requires_grad_()
    b = _rand(2, seed=11).requires_grad_()
    fu = upfirdn2d.setup_filter([1, 3, 3, 1])
    fn = lambda x, b: filtered_lrelu.filtered_lrelu(x, fu, fu, b, up=2, down=2, padding=3, clamp=5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))


def test_upfirdn2d_gradcheck():
    x = _rand(1, 2, 4, 5).requires_grad_()
    for f, kw in [(_ASYM, dict(up=2, down=1, padding=[1, 2, 0, 1])), (_SEP, dict(up=1, down=2, padding=2))]:
        fn = lambda x: upfirdn2d.upfirdn2d(x, f, **kw)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


# ---------------------------------------------------------------------------
# fma


@pytest.mark.parametrize('shapes', [
    ([2, 3, 4], [2, 3, 4], [2, 3, 4]),
    ([2, 1, 4], [3, 1], [4]),
    ([1], [5, 2], [5, 1]),
])
def test_fma_matches_mul_add(shapes):
    a, b, c = (_rand(*s, seed=i).requires_grad_() for i, s in enumerate(shapes))
    out = fma.fma(a, b, c)
    want = a * b + c
    torch.testing.assert_close(out, want)
    g = _rand(*out.shape, seed=9)
    got_grads = torch.autograd.grad(out, [a, b, c], g)
    want_grads = torch.autograd.grad(want, [a, b, c], g)
    for got, ref in zip(got_grads, want_grads):
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref)


# ---------------------------------------------------------------------------
# conv2d_gradfix


@pytest.fixture
def gradfix_enabled(monkeypatch):
    monkeypatch.setattr(conv2d_gradfix, 'enabled', True)


@pytest.mark.parametrize('transpose,stride,padding,groups', [
    (False, 1, 1, 1),
    (False, 2, 1, 2),
    (True, 2, 1, 1),
    (True, 2, 0, 2),
])
def test_conv2d_gradfix_matches_torch(gradfix_enabled, transpose, stride, padding, groups):
    x = _rand(2, 4, 7, 6).requires_grad_()
    # conv2d weights are [out, in/groups, kh, kw]; conv_transpose2d's are [in, out/groups, kh, kw].
    w_shape = [4, 6 // groups, 3, 3] if transpose else [6, 4 // groups, 3, 3]
    w = _rand(*w_shape, seed=1).requires_grad_()
    b = _rand(6, seed=2).requires_grad_()
    if transpose:
        ours = conv2d_gradfix.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=1, groups=groups)
        theirs = F.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=1, groups=groups)
    else:
        ours = conv2d_gradfix.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
        theirs = F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
    assert ours.grad_fn is not None and 'Conv2d' in type(ours.grad_fn).__name__   # the custom op ran
    torch.testing.assert_close(ours, theirs)

    # First and second order (a gradient penalty), w.r.t. input, weight and bias.
    def penalty(y):
        gx, gw = torch.autograd.grad(y.square().sum(), [x, w], create_graph=True)
        return gx.square().sum() + (gw * gw.flip(0)).sum()
    got = torch.autograd.grad(penalty(ours), [x, w, b])
    want = torch.autograd.grad(penalty(theirs), [x, w, b])
    for g1, g2 in zip(got, want):
        torch.testing.assert_close(g1, g2)


def test_conv2d_gradfix_gradgradcheck(gradfix_enabled):
    x = _rand(1, 2, 5, 4).requires_grad_()
    w = _rand(3, 2, 3, 2, seed=3).requires_grad_()
    fn = lambda x, w: conv2d_gradfix.conv2d(x, w, stride=2, padding=1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_conv2d_gradfix_no_weight_gradients(gradfix_enabled):
    x = _rand(1, 2, 5, 5).requires_grad_()
    w = _rand(3, 2, 3, 3, seed=4).requires_grad_()
    y = conv2d_gradfix.conv2d(x, w, padding=1)
    with conv2d_gradfix.no_weight_gradients():
        assert conv2d_gradfix.weight_gradients_disabled
        gx, gw = torch.autograd.grad(y.sum(), [x, w], retain_graph=True, allow_unused=True)
    assert gw is None
    assert not conv2d_gradfix.weight_gradients_disabled
    torch.testing.assert_close(gx, torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), x)[0])
    assert torch.autograd.grad(y.sum(), w)[0] is not None
    with conv2d_gradfix.no_weight_gradients(disable=False):
        assert not conv2d_gradfix.weight_gradients_disabled


def test_conv2d_gradfix_disabled_is_plain_torch():
    assert conv2d_gradfix.enabled is False
    x = _rand(1, 2, 5, 5, dtype=torch.float32)
    w = _rand(3, 2, 3, 3, seed=5, dtype=torch.float32)
    torch.testing.assert_close(conv2d_gradfix.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1))


# ---------------------------------------------------------------------------
# grid_sample_gradfix


@pytest.mark.parametrize('enabled', [False, True])
def test_grid_sample_gradfix(monkeypatch, enabled):
    monkeypatch.setattr(grid_sample_gradfix, 'enabled', enabled)
    x = _rand(2, 3, 6, 5).requires_grad_()
    grid = (torch.rand(2, 4, 7, 2, generator=torch.Generator().manual_seed(1), dtype=DT) * 2.4 - 1.2)
    grid.requires_grad_()
    ours = grid_sample_gradfix.grid_sample(x, grid)
    theirs = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    torch.testing.assert_close(ours, theirs)
    g = _rand(*ours.shape, seed=2)
    for a, b in zip(torch.autograd.grad(ours, [x, grid], g), torch.autograd.grad(theirs, [x, grid], g)):
        torch.testing.assert_close(a, b)

    # R1-style double backward w.r.t. the image, grid held fixed.
    fixed = grid.detach()
    def r1(fn):
        y = fn(x, fixed)
        gx, = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), x)[0]
    ref = lambda a, b: F.grid_sample(a, b, mode='bilinear', padding_mode='zeros', align_corners=False)  # noqa: E731
    torch.testing.assert_close(r1(grid_sample_gradfix.grid_sample), r1(ref))
