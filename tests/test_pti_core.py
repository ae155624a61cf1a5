"""PTI building blocks: targets, W projection, pivotal tuning, locality regulariser.

The perceptual networks here are small stand-ins (fixed random convolutions)
so these tests are about the optimisation itself; tests/test_run_pti.py runs
the command line with our LPIPS / VGG16 / e4e modules in their published
layouts and random weights.
"""

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

import legacy
from conftest import FIXTURES
from stylegan_human.photos import PhotoError
from pti import images as pti_images
from pti.projector import ProjectionConfig, learning_rate, noise_regularization, project_w, w_statistics
from pti.tuning import LocalityRegularizer, TuningConfig, synthesize, tune_generator


class RandomFeatures(torch.nn.Module):
    """A fixed random conv net: a stand-in perceptual feature extractor."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(16, 3, 3, 3, generator=g) / 5
        self.w2 = torch.randn(16, 16, 3, 3, generator=g) / 12

    def forward(self, images_0_255):
        x = images_0_255 / 127.5 - 1
        a = F.leaky_relu(F.conv2d(x, self.w1, padding=1), 0.2)
        b = F.leaky_relu(F.conv2d(F.avg_pool2d(a, 2), self.w2, padding=1), 0.2)
        return torch.cat([x.flatten(1), a.flatten(1) / 4, b.flatten(1) / 4], dim=1)


def stand_in_lpips(x, y):
    features = RandomFeatures(1)
    return (features((x + 1) * 127.5) - features((y + 1) * 127.5)).square().mean(dim=1) * 0.5


@pytest.fixture(scope='module')
def G():
    return legacy.load_network(FIXTURES / 'networks' / 'sg2_rect64.pkl', verbose=False)['G_ema'].eval()


def _target(G, seed=5, psi=0.7):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    with torch.no_grad():
        w = G.mapping(z, None, truncation_psi=psi)
        return w, synthesize(G, w)


def _psnr(G, w, target):
    with torch.no_grad():
        return pti_images.psnr(pti_images.tensor_to_uint8(synthesize(G, w)), pti_images.tensor_to_uint8(target))


def test_projection_then_tuning_gains_at_least_3_db(G):
    w_true, target = _target(G)
    pivot, losses = project_w(G, target, RandomFeatures(), ProjectionConfig(steps=120), seed=0)
    assert pivot.shape == (1, G.num_ws, G.w_dim)
    assert torch.equal(pivot[:, 0], pivot[:, -1])                       # a W code: every layer alike
    assert losses[-10:].mean() < 0.5 * losses[:10].mean()
    psnr_projected = _psnr(G, pivot, target)
    tuned, stats = tune_generator(G, [pivot], [target], stand_in_lpips, TuningConfig(steps=80, lpips_threshold=-1))
    psnr_tuned = _psnr(tuned, pivot, target)
    print(f'sg2_rect64: projection PSNR {psnr_projected:.2f} dB, after tuning {psnr_tuned:.2f} dB')
    assert psnr_projected > 18
    assert psnr_tuned >= psnr_projected + 3
    assert stats['steps'] == 80
    assert not any(p.requires_grad for p in tuned.parameters())
    # The original generator is untouched.
    assert _psnr(G, pivot, target) == psnr_projected


def test_projection_is_repeatable_and_leaves_the_generator_alone(G):
    _, target = _target(G, seed=9)
    noise_before = {k: v.clone() for k, v in G.synthesis.named_buffers() if 'noise_const' in k}
    a, _ = project_w(G, target, RandomFeatures(), ProjectionConfig(steps=5), seed=3)
    b, _ = project_w(G, target, RandomFeatures(), ProjectionConfig(steps=5), seed=3)
    assert torch.equal(a, b)
    for k, v in G.synthesis.named_buffers():
        if k in noise_before:
            assert torch.equal(v, noise_before[k])


def test_tuning_stops_at_the_lpips_threshold(G):
    w, target = _target(G)
    _, stats = tune_generator(G, [w], [target], stand_in_lpips, TuningConfig(steps=50, lpips_threshold=10.0,
                                                                               check_every=5))
    assert stats['steps'] == 5
    _, stats = tune_generator(G, [w], [target], stand_in_lpips, TuningConfig(steps=7, lpips_threshold=-1,
                                                                               check_every=5))
    assert stats['steps'] == 7


def test_multi_id_tuning_fits_several_photos(G):
    pairs = [_target(G, seed) for seed in (1, 2)]
    pivots = [w + 0.3 * torch.randn_like(w) for w, _ in pairs]          # pivots a little off
    before = [_psnr(G, p, t) for p, (_, t) in zip(pivots, pairs)]
    tuned, stats = tune_generator(G, pivots, [t for _, t in pairs], stand_in_lpips,
                                  TuningConfig(steps=40, lpips_threshold=10.0))
    assert stats['steps'] == 40                                          # no early stop with several photos
    after = [_psnr(tuned, p, t) for p, (_, t) in zip(pivots, pairs)]
    assert all(a > b + 1 for a, b in zip(after, before))


def test_locality_regularizer(G):
    w, target = _target(G)
    cfg = TuningConfig(locality=True, locality_alpha=30.0, locality_samples=2)
    regularizer = LocalityRegularizer(G, stand_in_lpips, cfg, seed=0, device='cpu')
    codes = regularizer.nearby_codes(w)
    assert len(codes) == 2 and all(float((c - w).norm()) == pytest.approx(30.0, rel=1e-4) for c in codes)
    assert float(regularizer.loss(G, w)) == pytest.approx(0.0, abs=1e-6)    # unchanged generator: no penalty
    tuned, _ = tune_generator(G, [w], [target.flip(3)], stand_in_lpips,
                              TuningConfig(steps=3, lpips_threshold=-1, locality=True))
    assert float(LocalityRegularizer(G, stand_in_lpips, cfg, seed=0, device='cpu').loss(tuned, w)) > 0


def test_schedule_statistics_and_noise_penalty(G):
    cfg = ProjectionConfig(steps=100, learning_rate=0.01)
    assert learning_rate(0, cfg) == 0
    assert learning_rate(50, cfg) == pytest.approx(0.01)
    assert learning_rate(99, cfg) < 0.001
    w_avg, w_std = w_statistics(G, 50, 123, 'cpu')
    assert w_avg.shape == (1, 1, G.w_dim) and w_std > 0
    g = torch.Generator().manual_seed(0)
    white = [torch.randn(64, 32, generator=g)]
    smooth = [torch.ones(64, 32)]
    assert float(noise_regularization(white)) < 0.01 < float(noise_regularization(smooth))


def test_load_target(tmp_path):
    rgba = np.zeros((128, 64, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:64, :, 3] = 255
    PIL.Image.fromarray(rgba, 'RGBA').save(tmp_path / 'cutout.png')
    target, note = pti_images.load_target(tmp_path / 'cutout.png', (32, 64))
    assert target.shape == (1, 3, 64, 32) and note == 'resized from 64x128 to 32x64'
    image = pti_images.tensor_to_uint8(target)
    assert (image[-5:] >= 254).all()                                   # transparent -> white
    PIL.Image.fromarray(np.full((64, 32), 90, np.uint8), 'L').save(tmp_path / 'grey.png')
    target, note = pti_images.load_target(tmp_path / 'grey.png', (32, 64))
    assert note is None and torch.allclose(target, torch.full_like(target, 90 / 127.5 - 1))
    PIL.Image.new('RGB', (64, 64)).save(tmp_path / 'square.png')
    with pytest.raises(PhotoError, match='is 64x64, but the network makes 32x64'):
        pti_images.load_target(tmp_path / 'square.png', (32, 64))


def test_psnr():
    a = np.zeros((4, 4, 3), np.uint8)
    assert pti_images.psnr(a, a) == float('inf')
    assert pti_images.psnr(a, a + 1) == pytest.approx(48.13, abs=0.01)


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg2_square64', 'sg3t_rect64', 'sg3r_rect64'])
def test_tuning_other_networks_lowers_the_loss_and_returns_plain_weights(name):
    """The CPU tuning lays weights out for the gradient path and steps Adam over their memory:
    that must work for every generator it may be given, and hand back ordinary tensors."""
    G = legacy.load_network(FIXTURES / 'networks' / f'{name}.pkl', verbose=False)['G_ema'].eval()
    w, target = _target(G, seed=3)
    start, _ = _target(G, seed=4)
    before = float(stand_in_lpips(synthesize(G, start), target).mean())
    tuned, stats = tune_generator(G, [start], [target], stand_in_lpips, TuningConfig(steps=15, lpips_threshold=-1))
    with torch.no_grad():
        after = float(stand_in_lpips(synthesize(tuned, start), target).mean())
    assert stats['steps'] == 15 and after < 0.8 * before
    assert all(p.is_contiguous() for p in tuned.parameters())
