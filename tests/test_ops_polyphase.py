"""The plain-PyTorch polyphase upfirdn2d / filtered_lrelu (for devices without Triton) against the
reference: values, first and second derivatives, what the backward pass keeps, and the dispatch."""

import itertools

import numpy as np
import pytest
import torch

from torch_utils.ops import filtered_lrelu as fl
from torch_utils.ops import ops_mode
from torch_utils.ops import polyphase
from torch_utils.ops import resample_plan
from torch_utils.ops import upfirdn2d as ud
from helpers import assert_close_scaled as _close, fir_filter as _filter, seeded_randn as _rand


def derivatives(fn, x, b, **kwargs):
    """Output, first derivatives (x, b) of a weighted sum, and second ones of a penalty on them."""
    x, b = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
    y = fn(x, b=b, **kwargs)
    weights = torch.sin(torch.arange(y.numel(), dtype=y.dtype)).reshape(y.shape)
    gx, gb = torch.autograd.grad((y * weights).sum(), [x, b], create_graph=True)
    ggx, ggb = torch.autograd.grad(gx.square().sum() + (gb * y.sum()).sum(), [x, b])
    return [y, gx, gb, ggx, ggb]


# ---------------------------------------------------------------------------
# Agreement with the reference (float64, random unnormalised filters, odd 2:1-ish sizes)


@pytest.mark.parametrize('up,down,kind', list(itertools.product([1, 2, 4], [1, 2], [None, '1d', '2d'])))
@pytest.mark.parametrize('padding,clamp,flip', [(0, None, False), ([3, 1, 2, 4], 0.7, True),
                                                ([-2, 5, 1, -3], None, True)])
def test_filtered_lrelu_matches_reference_with_derivatives(up, down, kind, padding, clamp, flip):
    kwargs = dict(fu=_filter(kind, 3 * up, up), fd=_filter(kind, 2 * down + 1, down + 7), up=up, down=down,
                  padding=padding, gain=1.3, slope=0.25, clamp=clamp, flip_filter=flip)
    x, b = _rand(2, 3, 11, 8, seed=up), _rand(3, seed=down)
    want = derivatives(fl._filtered_lrelu_ref, x, b, **kwargs)
    got = derivatives(polyphase.filtered_lrelu, x, b, **kwargs)
    for g, w in zip(got, want):
        _close(g, w, 1e-10)


@pytest.mark.parametrize('up,down,padding', [(1, 1, 0), (2, 1, [2, 1]), (1, 2, [1, 2, 0, 3]), (3, 2, [-1, 2, 4, -2]),
                                              ([2, 1], [1, 2], [3, 0, -1, 2])])
@pytest.mark.parametrize('kind', [None, '1d', '2d'])
def test_upfirdn2d_matches_reference(up, down, padding, kind):
    f = _filter(kind, 4, 3)
    x = _rand(2, 5, 9, 5)
    for flip in (False, True):
        kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip, gain=1.7)
        _close(polyphase.upfirdn2d(x, f, **kwargs), ud._upfirdn2d_ref(x, f, **kwargs), 1e-12)


def test_upfirdn2d_gradients_to_any_order():
    x = _rand(1, 2, 4, 5).requires_grad_(True)
    for f, kwargs in [(_filter('2d', 4, 1), dict(up=2, padding=[1, 2, 0, 1])),
                      (_filter('1d', 5, 2), dict(down=2, padding=2))]:
        fn = lambda x: polyphase.upfirdn2d(x, f, **kwargs)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


def test_filtered_lrelu_gradcheck():
    x = _rand(1, 2, 5, 4).requires_grad_(True)
    b = _rand(2, seed=1).requires_grad_(True)
    fu = ud.setup_filter([1, 3, 3, 1])
    fn = lambda x, b: polyphase.filtered_lrelu(x, fu, fu, b, up=2, down=2, padding=3, clamp=5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_float32_stylegan3_layer():
    """A StyleGAN3-R layer's filters (12-tap up, radial 12x12 down) in float32, 2:1 image."""
    import scipy.signal
    taps = scipy.signal.firwin(12, 0.3)
    radial = np.outer(scipy.signal.windows.kaiser(12, 4), scipy.signal.windows.kaiser(12, 4))
    fu = torch.tensor(taps, dtype=torch.float32)
    fd = torch.tensor(radial / radial.sum(), dtype=torch.float32)
    kwargs = dict(fu=fu, fd=fd, up=2, down=2, padding=[11, 10, 11, 10], gain=np.sqrt(2), slope=0.2, clamp=256)
    x, b = _rand(2, 5, 24, 12, dtype=torch.float32) * 20, _rand(5, seed=1, dtype=torch.float32)
    for g, w in zip(derivatives(polyphase.filtered_lrelu, x, b, **kwargs),
                    derivatives(fl._filtered_lrelu_ref, x, b, **kwargs)):
        _close(g, w, 2e-5)


# ---------------------------------------------------------------------------
# What the backward pass keeps


def _saved_bytes(fn, *args, **kwargs):
    saved = []

    def pack(t):
        saved.append(t)
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args, **kwargs)
    return saved


def test_backward_keeps_only_two_bits_per_upsampled_pixel():
    x = _rand(2, 8, 30, 15, dtype=torch.float32).requires_grad_(True)
    b = _rand(8, dtype=torch.float32).requires_grad_(True)
    kwargs = dict(fu=_filter('1d', 12, 1), fd=_filter('1d', 12, 2), up=2, down=2, padding=[11, 10, 11, 10], clamp=1.0)
    saved = _saved_bytes(polyphase.filtered_lrelu, x, b=b, **kwargs)
    mid_h, mid_w = 30 * 2 + 21 - 11, 15 * 2 + 21 - 11
    assert [(t.dtype, tuple(t.shape)) for t in saved] == [(torch.uint8, (2 * 8, mid_h, (mid_w + 3) // 4))]
    reference = _saved_bytes(fl._filtered_lrelu_ref, x, b=b, **kwargs)
    ours = sum(t.numel() * t.element_size() for t in saved)
    theirs = sum(t.numel() * t.element_size() for t in reference)
    assert ours * 16 < theirs   # the reference keeps several float32 tensors of the upsampled size


def test_no_codes_without_gradients():
    x = _rand(1, 2, 6, 5)
    plan = resample_plan.filtered_lrelu_plan(x.shape, None, None, 1, 1, (0, 0, 0, 0), 1.0, 0.2, None, False)
    out, codes = polyphase.TorchExecutor.run(x, plan)
    assert codes is None and torch.equal(out, torch.where(x > 0, x, 0.2 * x))
    assert _saved_bytes(polyphase.filtered_lrelu, x) == []


def test_sign_packing_round_trip():
    codes = torch.randint(0, 3, (2, 3, 5, 7), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    packed = polyphase.pack_signs(codes)
    assert packed.shape == (6, 5, 2) and packed.dtype == torch.uint8
    assert int(packed[0, 0, 0]) == sum(int(codes[0, 0, 0, i]) << (2 * i) for i in range(4))
    assert torch.equal(polyphase.unpack_signs(packed, codes.shape), codes)


def test_plan_transposes_back():
    x_shape = (1, 1, 9, 7)
    for plan in [resample_plan.filtered_lrelu_plan(x_shape, torch.ones(4), torch.ones(3, 2), 2, 2, (3, 1, 2, 4),
                                                   1.0, 0.2, None, False),
                 resample_plan.upfirdn2d_plan(x_shape, torch.ones(3), (2, 1), (1, 2), (1, 2, 0, 3), True, 2.0)]:
        back = plan.transposed().transposed()
        assert (back.y, back.x) == (plan.y, plan.x)
        assert back.filter1.flip_filter == plan.filter1.flip_filter if plan.filter1 else back.filter1 is None


# ---------------------------------------------------------------------------
# Dispatch: other devices take this path (the meta device stands in for MPS here)


def test_other_devices_take_the_polyphase_path(monkeypatch):
    calls = []
    for name in ['filtered_lrelu', 'upfirdn2d']:
        original = getattr(polyphase, name)
        monkeypatch.setattr(polyphase, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    x = torch.empty(2, 3, 10, 5, device='meta')
    kwargs = dict(fu=_filter('1d', 4, 1), fd=_filter('1d', 4, 2), up=2, down=2, padding=2)
    y = fl.filtered_lrelu(x, **kwargs)
    assert y.device.type == 'meta' and y.shape == fl._filtered_lrelu_ref(_rand(2, 3, 10, 5).float(), **kwargs).shape
    assert ud.upsample2d(x, ud.setup_filter([1, 3, 3, 1])).shape == (2, 3, 20, 10)
    assert calls == ['filtered_lrelu', 'upfirdn2d']
    calls.clear()
    with ops_mode.reference_ops():
        fl.filtered_lrelu(x, up=1)
        ud.upsample2d(x, ud.setup_filter([1, 3, 3, 1]))
    fl.filtered_lrelu(x, up=1, impl='ref')
    assert calls == []
    # CPU tensors keep the CPU fast paths.
    fl.filtered_lrelu(_rand(1, 1, 4, 4).float(), up=1)
    assert calls == []


def test_inputs_are_left_alone():
    x = _rand(1, 2, 5, 4)
    before = x.clone()
    y = polyphase.filtered_lrelu(x, gain=2, slope=0.1, clamp=0.5)   # no filters, no bias: all pointwise
    assert torch.equal(x, before) and not torch.equal(y, x)
    torch.testing.assert_close(y, (torch.where(x > 0, x, 0.1 * x) * 2).clamp(-0.5, 0.5))


def test_outputs_can_be_modified_in_place():
    """The networks add noise in place to what the ops return (also under autograd)."""
    x = _rand(1, 2, 5, 4).requires_grad_(True)
    f = ud.setup_filter([1, 3, 3, 1])
    for y in [polyphase.upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1]), polyphase.upfirdn2d(x, None),
              polyphase.filtered_lrelu(x, f, f, up=2, down=2, padding=3)]:
        y.add_(1)
        y.sum().backward()
    assert x.grad is not None
