"""training.augment: the ADA augmentation pipeline on square and 2:1 images."""

import io
import math
import pickle

import numpy as np
import pytest
import scipy.special
import torch

import legacy
from torch_utils.ops import grid_sample_gradfix
from training import augment
from training.augment import AUGPIPE_SPECS, AugmentPipe

ALL_SWITCHES = ['xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac', 'brightness', 'contrast',
                'lumaflip', 'hue', 'saturation', 'imgfilter', 'noise', 'cutout']
SHAPES = [(2, 3, 32, 32), (2, 3, 64, 32)]   # Square and StyleGAN-Human's 2:1 (height = 2 x width).


def smooth_images(batch, channels, height, width, seed=0):
    """Low-frequency, asymmetric, zero-mean-ish test images in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    yy = (torch.arange(height, dtype=torch.float32)[:, None] + 0.5) / height
    xx = (torch.arange(width, dtype=torch.float32)[None, :] + 0.5) / width
    images = torch.zeros(batch, channels, height, width)
    for i in range(batch):
        for c in range(channels):
            a = torch.rand(4, generator=gen)
            wave = torch.sin(2 * math.pi * (a[0] * xx + a[1] * yy) * 0.8 + a[2] * 6)
            images[i, c] = 0.4 * wave + 0.8 * (xx - 0.5) * (a[3] + 0.2) + 0.3 * (yy - 0.5)
    return images


def noise_images(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def pipe(p=1.0, **kwargs):
    module = AugmentPipe(**kwargs)
    module.p.fill_(p)
    return module


# ----------------------------------------------------------------------------
# Construction, presets, state.


def test_presets():
    assert set(AUGPIPE_SPECS) == {'blit', 'geom', 'color', 'filter', 'noise', 'cutout',
                                  'bg', 'bgc', 'bgcf', 'bgcfn', 'bgcfnc', 'body'}
    enabled = {name: {k for k, v in spec.items() if v} for name, spec in AUGPIPE_SPECS.items()}
    assert enabled['bgcfnc'] == set(ALL_SWITCHES)
    assert enabled['bgc'] == enabled['blit'] | enabled['geom'] | enabled['color']
    assert enabled['bgcfn'] - enabled['bgcf'] == {'noise'}
    # StyleGAN-Human's body preset: bgc without 90-degree or arbitrary rotations.
    assert enabled['body'] == enabled['bgc'] - {'rotate90', 'rotate'}
    for spec in AUGPIPE_SPECS.values():
        AugmentPipe(**spec)


def test_defaults_and_state_names_match_upstream():
    module = AugmentPipe()
    assert all(getattr(module, name) == 0 for name in ALL_SWITCHES)
    assert (module.xint_max, module.scale_std, module.rotate_max, module.aniso_std, module.xfrac_std) == \
        (0.125, 0.2, 1, 0.2, 0.125)
    assert (module.brightness_std, module.contrast_std, module.hue_max, module.saturation_std) == (0.2, 0.5, 1, 1)
    assert (module.imgfilter_bands, module.imgfilter_std, module.noise_std, module.cutout_size) == \
        ([1, 1, 1, 1], 1, 0.1, 0.5)
    shapes = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    assert shapes == {'p': (), 'Hz_geom': (12,), 'Hz_fbank': (4, 43)}
    assert float(module.p) == 1.0


def test_geometry_filter_is_orthogonal_wavelet():
    # Perfect reconstruction needs sum_n h[n] h[n - 2k] = delta_k / 2 for the normalized filter.
    h = AugmentPipe().Hz_geom.double().numpy()
    assert h.sum() == pytest.approx(1.0, abs=1e-6)
    for shift in range(0, 6):
        dot = float(np.dot(h[2 * shift:], h[:h.size - 2 * shift]))
        assert dot == pytest.approx(0.5 if shift == 0 else 0.0, abs=1e-6)


def test_filter_bank_splits_the_spectrum():
    bank = AugmentPipe().Hz_fbank.double().numpy()
    impulse = np.zeros(bank.shape[1])
    impulse[bank.shape[1] // 2] = 1
    np.testing.assert_allclose(bank.sum(axis=0), impulse, atol=1e-6)   # Equal gains change nothing.
    np.testing.assert_allclose(bank.sum(axis=1), [1, 0, 0, 0], atol=1e-6)   # Only the low band passes DC.
    np.testing.assert_allclose(bank, bank[:, ::-1], atol=1e-7)   # Zero phase.
    nyquist = bank @ ((-1.0) ** np.arange(bank.shape[1]))
    np.testing.assert_allclose(np.abs(nyquist), [0, 0, 0, 1], atol=1e-6)   # Only the top band passes Nyquist.


def test_rebuilds_from_pickle_through_legacy():
    module = pipe(p=0.3, **AUGPIPE_SPECS['body'], xint_max=0.2)
    records = legacy.read_pickle_safely(io.BytesIO(pickle.dumps({'augment_pipe': module})))
    rebuilt = legacy.rebuild_network(records['augment_pipe'])
    assert isinstance(rebuilt, AugmentPipe)
    assert rebuilt.xint_max == 0.2 and rebuilt.rotate90 == 0 and rebuilt.aniso == 1
    for name, tensor in module.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor)


def test_reflect_pad_any_amount():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(1, 2, 5, 3)
    small = augment.reflect_pad(x, 1, 2, 2, 1)
    assert torch.equal(small, torch.nn.functional.pad(x, [1, 2, 2, 1], mode='reflect'))
    big = augment.reflect_pad(x, 7, 4, 9, 11)
    expected = np.pad(x.numpy(), [(0, 0), (0, 0), (9, 11), (7, 4)], mode='reflect')
    np.testing.assert_array_equal(big.numpy(), expected)


# ----------------------------------------------------------------------------
# Identity, shapes, determinism, gradients.


@pytest.mark.parametrize('preset', sorted(AUGPIPE_SPECS))
@pytest.mark.parametrize('shape', SHAPES)
def test_p_zero_is_identity(preset, shape):
    x = noise_images(shape)
    torch.manual_seed(0)
    y = pipe(p=0.0, **AUGPIPE_SPECS[preset])(x)
    assert (y - x).abs().max() <= 1e-6


@pytest.mark.parametrize('shape', [(1, 3, 64, 32), (5, 3, 64, 32), (1, 3, 32, 32), (5, 3, 32, 32)])
def test_shape_and_dtype(shape):
    torch.manual_seed(0)
    y = pipe(**AUGPIPE_SPECS['bgcfnc'])(noise_images(shape))
    assert y.shape == shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    grey = pipe(**AUGPIPE_SPECS['bgcfnc'])(noise_images(shape[:1] + (1,) + shape[2:]))
    assert grey.shape == shape[:1] + (1,) + shape[2:]
    double = pipe(**AUGPIPE_SPECS['bgc'])(noise_images(shape).double())
    assert double.dtype == torch.float64


def test_deterministic_given_seed():
    x = noise_images((3, 3, 64, 32))
    module = pipe(p=0.7, **AUGPIPE_SPECS['bgcfnc'])
    torch.manual_seed(5)
    first = module(x)
    torch.manual_seed(5)
    second = module(x)
    torch.manual_seed(6)
    other = module(x)
    assert torch.equal(first, second)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize('preset', ['bgc', 'body'])
@pytest.mark.parametrize('shape', SHAPES)
def test_gradients_flow(preset, shape):
    x = noise_images(shape).requires_grad_(True)
    torch.manual_seed(1)
    y = pipe(p=1.0, **AUGPIPE_SPECS[preset])(x)
    grad, = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_second_order_gradients_for_r1(monkeypatch):
    # R1 differentiates D(augment(x)) w.r.t. x and then the penalty w.r.t. D's weights.
    monkeypatch.setattr(grid_sample_gradfix, 'enabled', True)
    x = noise_images((2, 3, 32, 16)).requires_grad_(True)
    weight = torch.randn(3, 32, 16, requires_grad=True)
    torch.manual_seed(2)
    y = pipe(p=1.0, **AUGPIPE_SPECS['bgc'])(x)
    grad, = torch.autograd.grad((y * weight).sum(), x, create_graph=True)
    penalty_grad, = torch.autograd.grad(grad.square().sum(), weight)
    assert torch.isfinite(penalty_grad).all() and penalty_grad.abs().sum() > 0


# ----------------------------------------------------------------------------
# Each augmentation does what it says. debug_percentile q applies the augmentation
# to every image with the parameter at that percentile; upstream maps a percentile
# q to value erfinv(2q - 1) * std (not the normal quantile).


def percentile_value(q, std):
    return float(scipy.special.erfinv(2 * q - 1)) * std


# The blits go through the wavelet up/down-sampling: integer translations are exact,
# flips and 90-degree turns are exact only up to the filter's asymmetry (small on
# smooth images), as upstream.
BLIT_TOLERANCE = 0.02


@pytest.mark.parametrize('shape', SHAPES)
def test_xflip(shape):
    x = smooth_images(*shape)
    flipped = pipe(xflip=1)(x, debug_percentile=0.75)
    assert (flipped - x.flip(3)).abs().max() < BLIT_TOLERANCE
    assert (flipped - x).abs().max() > 0.5
    assert torch.equal(pipe(xflip=1)(x, debug_percentile=0.25), x)


@pytest.mark.parametrize('quarter', [0, 1, 2, 3])
def test_rotate90_square(quarter):
    x = smooth_images(2, 3, 32, 32)
    y = pipe(rotate90=1)(x, debug_percentile=(quarter + 0.5) / 4)
    assert (y - torch.rot90(x, quarter, dims=(2, 3))).abs().max() < BLIT_TOLERANCE


@pytest.mark.parametrize('quarter', [1, 2, 3])
def test_rotate90_tall(quarter):
    # On a 2:1 image the frame stays 2:1: a quarter turn rotates the centre square.
    x = smooth_images(2, 3, 64, 32)
    y = pipe(rotate90=1)(x, debug_percentile=(quarter + 0.5) / 4)
    assert y.shape == x.shape
    if quarter == 2:
        assert (y - torch.rot90(x, 2, dims=(2, 3))).abs().max() < BLIT_TOLERANCE
    centre = slice(16, 48)
    expected = torch.rot90(x[:, :, centre, :], quarter, dims=(2, 3))
    assert (y[:, :, centre, :] - expected).abs().max() < BLIT_TOLERANCE


def test_rotate90_small_tall_image_is_filled_by_reflection():
    # The narrow axis needs more padding than its own length: no zero holes.
    x = torch.ones(1, 3, 16, 8)
    y = pipe(rotate90=1)(x, debug_percentile=0.375)
    assert (y - 1).abs().max() < 1e-5


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('q', [0.1, 0.9])
def test_integer_translation(shape, q):
    height, width = shape[2:]
    x = noise_images(shape)
    y = pipe(xint=1)(x, debug_percentile=q)
    shift = (2 * q - 1) * 0.125                     # Fraction of each axis.
    dx, dy = round(shift * width), round(shift * height)
    assert dy == 2 * dx if height == 2 * width else dy == dx
    moved = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    rows = slice(max(dy, 0), height + min(dy, 0))
    cols = slice(max(dx, 0), width + min(dx, 0))
    assert (y[:, :, rows, cols] - moved[:, :, rows, cols]).abs().max() < 1e-4


def test_fractional_translation_is_relative_to_each_axis():
    # A smooth ramp along each axis moves by t * width and t * height pixels.
    height, width = 64, 32
    yy = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    xx = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    x = torch.stack([xx / width, yy / height, xx * 0]).unsqueeze(0)
    q = 0.8
    t = percentile_value(q, 0.125)
    y = pipe(xfrac=1)(x, debug_percentile=q)
    inner = (slice(None), slice(None), slice(20, 44), slice(12, 20))   # Away from reflected borders.
    assert (y[inner][:, 0] - (x[inner][:, 0] - t)).abs().max() < 1e-3
    assert (y[inner][:, 1] - (x[inner][:, 1] - t)).abs().max() < 1e-3


@pytest.mark.parametrize('shape', SHAPES)
def test_brightness(shape):
    x = noise_images(shape)
    q = 0.8
    y = pipe(brightness=1)(x, debug_percentile=q)
    torch.testing.assert_close(y, x + percentile_value(q, 0.2), atol=1e-6, rtol=0)


def test_contrast():
    x = noise_images((2, 3, 64, 32))
    x = x - x.mean(dim=(2, 3), keepdim=True)        # Zero-mean: scaling about 0 is about the mean.
    q = 0.2
    factor = 2 ** percentile_value(q, 0.5)
    y = pipe(contrast=1)(x, debug_percentile=q)
    torch.testing.assert_close(y, x * factor, atol=1e-6, rtol=1e-6)
    mean = y.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(y - mean, (x - x.mean(dim=(2, 3), keepdim=True)) * factor, atol=1e-6, rtol=1e-6)


def test_lumaflip_reflects_across_grey_plane():
    x = noise_images((2, 3, 32, 32))
    y = pipe(lumaflip=1)(x, debug_percentile=0.75)
    torch.testing.assert_close(y, x - 2 * x.mean(dim=1, keepdim=True), atol=1e-6, rtol=0)


def test_hue_rotates_chroma_about_grey():
    x = noise_images((2, 3, 32, 32))
    y = pipe(hue=1)(x, debug_percentile=0.75)                # Quarter turn.
    chroma_in = x - x.mean(dim=1, keepdim=True)
    chroma_out = y - y.mean(dim=1, keepdim=True)
    torch.testing.assert_close(y.mean(dim=1), x.mean(dim=1), atol=1e-6, rtol=0)
    torch.testing.assert_close(chroma_out.norm(dim=1), chroma_in.norm(dim=1), atol=1e-5, rtol=0)
    assert (chroma_in * chroma_out).sum(dim=1).abs().max() < 1e-5   # Perpendicular.


def test_saturation():
    x = noise_images((2, 3, 64, 32))
    grey = x.mean(dim=1, keepdim=True)
    q = 0.7
    factor = 2 ** percentile_value(q, 1)
    y = pipe(saturation=1)(x, debug_percentile=q)
    torch.testing.assert_close(y, grey + (x - grey) * factor, atol=1e-5, rtol=0)
    desaturated = pipe(saturation=1, saturation_std=10)(x, debug_percentile=1e-4)
    torch.testing.assert_close(desaturated, grey.expand_as(x), atol=1e-5, rtol=0)


def test_imgfilter():
    x = noise_images((2, 3, 64, 32))
    constant = torch.full((1, 3, 64, 32), 0.5)
    # Every band amplified by the same gain g: all gains normalize to g / sqrt(E[power]).
    q = 0.8
    g = 2 ** percentile_value(q, 1)
    expected_power = np.array([10, 1, 1, 1]) / 13
    band_gain = np.ones(4)
    for band in range(4):
        step = np.ones(4)
        step[band] = g
        band_gain *= step / np.sqrt((expected_power * step ** 2).sum())
    y = pipe(imgfilter=1)(constant, debug_percentile=q)
    # DC passes the low band only, once along x and once along y (separable filter).
    torch.testing.assert_close(y, constant * band_gain[0] ** 2, atol=1e-5, rtol=0)
    off = pipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 0])(x, debug_percentile=q)
    torch.testing.assert_close(off, x, atol=1e-5, rtol=0)
    assert (pipe(imgfilter=1)(x, debug_percentile=q) - x).abs().max() > 0.1


def test_noise_std():
    x = torch.zeros(4, 3, 64, 32)
    q = 0.5
    y = pipe(noise=1)(x, debug_percentile=q)
    sigma = float(scipy.special.erfinv(q)) * 0.1
    assert float(y.std()) == pytest.approx(sigma, rel=0.03)
    assert float(y.mean()) == pytest.approx(0, abs=0.003)


@pytest.mark.parametrize('shape', SHAPES)
def test_cutout(shape):
    height, width = shape[2:]
    x = noise_images(shape) * 0.5 + 1                # No natural zeros.
    y = pipe(cutout=1)(x, debug_percentile=0.5)     # Centred, half of each axis.
    region = (slice(None), slice(None), slice(height // 4, 3 * height // 4), slice(width // 4, 3 * width // 4))
    assert (y[region] == 0).all()
    assert int((y == 0).sum()) == shape[0] * shape[1] * (height // 2) * (width // 2)
    kept = y != 0
    assert torch.equal(y[kept], x[kept])


# ----------------------------------------------------------------------------
# Probabilities.


def count_flipped(p):
    # A horizontal ramp: flipped items have a falling ramp.
    ramp = torch.linspace(-1, 1, 8).expand(1, 3, 16, 8)
    x = ramp.repeat(400, 1, 1, 1)
    y = pipe(p=p, xflip=1)(x)
    slope = (y[:, :, :, -1] - y[:, :, :, 0]).mean(dim=(1, 2))
    assert ((slope - 2).abs() < 0.1).logical_or((slope + 2).abs() < 0.1).all()
    return int((slope < 0).sum())


def test_flip_probability():
    # Upstream's x-flip picks "flip or not" at random for each augmented image,
    # so an image is flipped with probability p / 2.
    torch.manual_seed(0)
    assert 160 <= count_flipped(1.0) <= 240     # Expected 200 of 400.
    assert 70 <= count_flipped(0.5) <= 130      # Expected 100 of 400.
    assert count_flipped(0.0) == 0
