"""Quality metrics: the formulas against independent computations, the feature-network
files read without running them, and calc_metric end to end on a tiny 2:1 generator.

The end-to-end runs use a small stand-in feature network (injected through
``detectors=``) instead of Inception-v3 / VGG16, so that they take seconds on a CPU.
"""

import json
import os
import pickle
import warnings

import numpy as np
import PIL.Image
import pytest
import scipy.linalg
import scipy.stats
import torch

import dnnlib
from metrics import detector_files
from metrics import frechet_inception_distance as fid_module
from stylegan_human.features import inception
from metrics import inception_score as is_module
from metrics import kernel_inception_distance as kid_module
from metrics import metric_main
from metrics import metric_utils
from metrics import perceptual_path_length as ppl_module
from metrics import precision_recall as pr_module
from torch_utils import persistence
from training import launch
from training import networks_stylegan2

HEIGHT, WIDTH = 32, 16
THIS = __name__


# ----------------------------------------------------------------------------
# Shared helpers (also used by test_calc_metrics.py).


class StandInDetector(torch.nn.Module):
    """A small fixed network with the detectors' call signatures; counts the images it sees.

    Features: 4x2 average-pooled pixels (24 values) through a fixed random linear
    map and tanh. ``return_features=False`` gives a softmax over 10 classes (IS);
    ``return_lpips=True`` gives the pixels at 8x4 scaled down (PPL).
    """

    def __init__(self, seed=0, num_features=16):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.proj = torch.nn.Parameter(torch.randn([24, num_features], generator=gen) / 3, requires_grad=False)
        self.logits = torch.nn.Parameter(torch.randn([num_features, 10], generator=gen), requires_grad=False)
        self.images_seen = 0

    def forward(self, img, return_features=False, use_fp16=False, no_output_bias=False, resize_images=True,
                return_lpips=False):
        x = img.to(torch.float32)
        self.images_seen += x.shape[0]
        if return_lpips:
            return torch.nn.functional.adaptive_avg_pool2d(x, (8, 4)).flatten(1) / 255
        pooled = torch.nn.functional.adaptive_avg_pool2d(x / 127.5 - 1, (4, 2)).flatten(1)
        features = torch.tanh(pooled @ self.proj) * 10
        if return_features:
            return features
        return torch.softmax(features @ self.logits, dim=1)


def tiny_generator(seed=0):
    torch.manual_seed(seed)
    G = networks_stylegan2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=HEIGHT, img_channels=3,
                                     square=False, mapping_kwargs=dict(num_layers=2), channel_base=512,
                                     channel_max=32, num_fp16_res=0, conv_clamp=256).eval()
    return G


def write_dataset(folder, num_images=24, seed=0):
    """PNG images of soft coloured blobs, HEIGHT x WIDTH."""
    rnd = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for i in range(num_images):
        cx, cy = rnd.uniform(0.3, 0.7) * WIDTH, rnd.uniform(0.3, 0.7) * HEIGHT
        blob = np.exp(-((xx - cx) / (0.2 * WIDTH)) ** 2 - ((yy - cy) / (0.3 * HEIGHT)) ** 2)
        colour = rnd.uniform(0, 255, size=3)
        img = 255 * (1 - blob[..., None]) + colour * blob[..., None]
        PIL.Image.fromarray(np.rint(img).clip(0, 255).astype(np.uint8)).save(os.path.join(folder, f'{i:03d}.png'))
    return str(folder)


def dataset_kwargs(folder):
    return dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=str(folder), resolution=HEIGHT,
                           square=False, use_labels=False, xflip=False, max_size=None)


class _Holder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _add_tensors(root, tensors, make_child):
    """Register ``tensors`` under their dotted names below ``root``, making missing children by name."""
    for name, value in tensors.items():
        *parents, leaf = name.split('.')
        node = root
        for part in parents:
            if part not in node._modules:
                node.add_module(part, make_child(part))
            node = node._modules[part]
        node.register_parameter(leaf, torch.nn.Parameter(value.detach().clone(), requires_grad=False))


def write_torchscript_archive(tensors, path):
    """A genuine TorchScript file whose module tree holds ``tensors`` under their dotted names."""
    root = _Holder()
    _add_tensors(root, tensors, lambda part: _Holder())
    with warnings.catch_warnings():  # torch.jit is deprecated, yet it is how the published .pt files were made
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.jit.script(root).save(str(path))


@persistence.persistent_class
class PickledNetwork(torch.nn.Module):
    """Top-level persistent object of a network pickle; its children are plain torch.nn modules."""


def write_network_pickle(tensors, path):
    """A pickle in the format of NVIDIA's network pickles holding ``tensors`` under their dotted names."""
    root = PickledNetwork()
    _add_tensors(root, tensors, lambda part: torch.nn.Sequential() if part == 'layers' else torch.nn.Module())
    with open(path, 'wb') as f:
        pickle.dump(root, f, protocol=4)


def random_inception(seed=0):
    """InceptionV3 with random weights scaled to keep activations in range."""
    gen = torch.Generator().manual_seed(seed)
    model = inception.InceptionV3()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('.weight'):
                t.copy_(torch.randn(t.shape, generator=gen) * (2 / t[0].numel()) ** 0.5)
            elif name.endswith('.beta') or name.endswith('.bias') or name.endswith('.mean'):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif name.endswith('.var'):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    return model.eval()


# ----------------------------------------------------------------------------
# Fréchet distance


def _spd(rnd, d):
    a = rnd.randn(d, d)
    return a @ a.T + d * np.eye(d) * 0.1


def test_frechet_distance_matches_the_closed_form():
    rnd = np.random.RandomState(0)
    mu1, mu2 = rnd.randn(6), rnd.randn(6)
    s1, s2 = _spd(rnd, 6), _spd(rnd, 6)
    # Symmetric form of the trace term: Tr sqrt(S1^1/2 S2 S1^1/2), independent of the metric's sqrtm(S1 S2).
    r1 = scipy.linalg.sqrtm(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(r1 @ s2 @ r1))
    assert fid_module.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(float(np.real(expected)), rel=1e-9)
    # NVIDIA's form, sqrtm of the product, also on rank-deficient covariances (fewer samples than features).
    for a, b in ((s1, s2), (np.cov(rnd.randn(4, 6), rowvar=False), np.cov(rnd.randn(5, 6), rowvar=False))):
        nvidia = np.sum((mu1 - mu2) ** 2) + np.trace(a + b - 2 * scipy.linalg.sqrtm(a @ b))
        assert fid_module.frechet_distance(mu1, a, mu2, b) == pytest.approx(float(np.real(nvidia)), rel=1e-6)

    # Diagonal covariances: sum((sqrt(a) - sqrt(b))^2), no matrix square root at all.
    a, b = rnd.uniform(0.5, 3, 5), rnd.uniform(0.5, 3, 5)
    m1, m2 = np.zeros(5), np.full(5, 0.5)
    expected = 5 * 0.25 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid_module.frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    assert fid_module.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-8)


def test_feature_stats_mean_and_covariance_of_known_gaussians():
    rnd = np.random.RandomState(1)
    cov = _spd(rnd, 4)
    x = rnd.multivariate_normal(mean=[1, -2, 0.5, 3], cov=cov, size=5000).astype(np.float32)
    stats = metric_utils.FeatureStats(capture_mean_cov=True, capture_all=True, max_items=4500)
    for batch in np.array_split(x, 7):
        stats.append(batch)
    mean, sigma = stats.get_mean_cov()
    kept = x[:4500].astype(np.float64)
    assert stats.num_items == 4500 and stats.is_full()
    np.testing.assert_allclose(mean, kept.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(sigma, np.cov(kept, rowvar=False, bias=True), rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(stats.get_all(), x[:4500])
    # Samples of the same Gaussian: the estimated FID is near zero, far below a shifted one's.
    y = rnd.multivariate_normal(mean=[1, -2, 0.5, 3], cov=cov, size=5000)
    shifted = fid_module.frechet_distance(mean, sigma, np.mean(y, 0) + 1, np.cov(y, rowvar=False, bias=True))
    same = fid_module.frechet_distance(mean, sigma, np.mean(y, 0), np.cov(y, rowvar=False, bias=True))
    assert same < 0.1 and shifted == pytest.approx(4 + same, abs=0.1)


def test_feature_stats_round_trip_through_the_cache_file(tmp_path):
    stats = metric_utils.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=10)
    stats.append(np.arange(36, dtype=np.float32).reshape(12, 3))
    stats.save(tmp_path / 'stats.npz')
    back = metric_utils.FeatureStats.load(tmp_path / 'stats.npz')
    assert (back.num_items, back.max_items, back.num_features) == (10, 10, 3)
    np.testing.assert_array_equal(back.get_all(), stats.get_all())
    for a, b in zip(back.get_mean_cov(), stats.get_mean_cov()):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ['stats.npz']  # Written atomically: no temporary left.


# ----------------------------------------------------------------------------
# KID, precision/recall, IS, PPL


def _unbiased_mmd2(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, by explicit sums over pairs."""
    d = x.shape[1]
    m = x.shape[0]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_mean_unbiased_mmd_over_subsets():
    rnd = np.random.RandomState(2)
    gen, real = rnd.randn(30, 5) + 0.5, rnd.randn(40, 5)
    np.random.seed(123)
    kid = kid_module.kernel_distance(gen, real, num_subsets=3, max_subset_size=12)
    np.random.seed(123)  # The same subsets, drawn in the metric's order: generated, then real.
    expected = np.mean([_unbiased_mmd2(gen[np.random.choice(30, 12, replace=False)],
                                       real[np.random.choice(40, 12, replace=False)]) for _ in range(3)])
    assert kid == pytest.approx(expected, rel=1e-9)
    # One subset holding every sample: the MMD of the whole sets, whatever the draw.
    x, y = rnd.randn(15, 4), rnd.randn(15, 4) * 2
    assert kid_module.kernel_distance(x, y, num_subsets=1, max_subset_size=1000) == pytest.approx(
        _unbiased_mmd2(x, y), rel=1e-9)


def test_precision_recall_on_points_with_known_answers():
    real = torch.tensor([[float(i), 0.0] for i in range(20)])
    gen = torch.tensor([[float(i), 0.0] for i in range(10)] + [[1000.0 + i, 0.0] for i in range(10)])
    # Precision: the 10 copies lie in the real manifold, the far 10 do not -> 0.5.
    # Recall: reals 0..9 are copies; 10, 11, 12 lie within 3 (gen 9's 3rd-neighbour radius) of 9; 13+ do not.
    for row_batch, col_batch in ((10000, 10000), (7, 5)):
        precision, recall = pr_module.precision_recall(real.half(), gen.half(), nhood_size=3,
                                                       row_batch_size=row_batch, col_batch_size=col_batch)
        assert (precision, recall) == pytest.approx((0.5, 0.65), abs=1e-6)


def _brute_force_pr(real, gen, k):
    def covered(manifold, probes):
        d_mm = np.linalg.norm(manifold[:, None] - manifold[None], axis=2)
        radius = np.sort(d_mm, axis=1)[:, k]  # k-th neighbour, the point itself being the 0th
        d_pm = np.linalg.norm(probes[:, None] - manifold[None], axis=2)
        return np.mean(np.any(d_pm <= radius[None], axis=1))
    return covered(real, gen), covered(gen, real)


def test_precision_recall_match_a_brute_force_computation():
    rnd = np.random.RandomState(3)
    real = rnd.randn(60, 8).astype(np.float16).astype(np.float64)
    gen = (rnd.randn(50, 8) * 1.5 + 0.7).astype(np.float16).astype(np.float64)
    got = pr_module.precision_recall(torch.from_numpy(real).half(), torch.from_numpy(gen).half(), nhood_size=3,
                                     row_batch_size=16, col_batch_size=9)
    assert got == pytest.approx(_brute_force_pr(real, gen, 3), abs=1e-6)


def test_inception_score_against_scipy_entropy():
    rnd = np.random.RandomState(4)
    logits = rnd.randn(40, 7) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mean, std = is_module.inception_score(probs, num_splits=4)
    scores = []
    for part in np.split(probs, 4):
        marginal = part.mean(axis=0)
        scores.append(np.exp(np.mean([scipy.stats.entropy(p, marginal) for p in part])))
    assert (mean, std) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-9)
    # Confident predictions spread evenly over 5 classes score 5.
    confident = np.full([50, 5], 1e-9) + np.eye(5)[np.arange(50) % 5]
    assert is_module.inception_score(confident / confident.sum(1, keepdims=True), 1)[0] == pytest.approx(5, rel=1e-5)
    # Probabilities that underflowed to zero count as 0 log 0 = 0, not nan.
    assert is_module.inception_score(np.eye(5)[np.arange(50) % 5], 1)[0] == pytest.approx(5, rel=1e-12)


class LinearGenerator(torch.nn.Module):
    """w = z repeated; image = a linear map of w: PPL has a closed form per sample."""

    def __init__(self, z_dim=3, num_ws=2):
        super().__init__()
        gen = torch.Generator().manual_seed(5)
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, 0, z_dim, num_ws
        self.img_resolution, self.img_channels, self.square = 8, 3, False
        self.A = torch.nn.Parameter(torch.randn([num_ws * z_dim, 3 * 8 * 4], generator=gen).to(torch.get_default_dtype()))

    def mapping(self, z, c):
        return z.unsqueeze(1).repeat([1, self.num_ws, 1])

    def synthesis(self, ws, noise_mode='const', force_fp32=True):
        return (ws.flatten(1) @ self.A).reshape([-1, 3, 8, 4])


class PixelLPIPS(torch.nn.Module):
    """'LPIPS' features = the pixels themselves: the distance is a plain squared norm."""

    def forward(self, img, resize_images=False, return_lpips=False):
        assert return_lpips and not resize_images
        return img.flatten(1)


def test_ppl_of_a_linear_generator_matches_its_closed_form():
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # epsilon = 1e-4 differences need more than float32 to check tightly
    try:
        G = LinearGenerator()
        opts = metric_utils.MetricOptions(G=G, device='cpu', detectors={'vgg16': PixelLPIPS()})
        torch.manual_seed(7)
        ppl = ppl_module.compute_ppl(opts, num_samples=40, epsilon=1e-4, space='w', sampling='end', crop=False,
                                     batch_size=2)
        # The same draws as the sampler: t (unused at the end points), then z0 and z1 for each pair.
        torch.manual_seed(7)
        dist = []
        A = G.A.detach().numpy()
        for _ in range(20):
            torch.rand([2])
            z0, z1 = torch.randn([4, 3]).numpy().reshape(2, 2, 3)
            step = np.concatenate([z1 - z0, z1 - z0], axis=1) @ A  # d image / d t, per pair
            dist.extend(np.sum((step * 127.5) ** 2, axis=1))
    finally:
        torch.set_default_dtype(default_dtype)
    dist = np.array(dist)
    lo, hi = np.percentile(dist, 1, method='lower'), np.percentile(dist, 99, method='higher')
    assert ppl == pytest.approx(dist[(dist >= lo) & (dist <= hi)].mean(), rel=1e-6)


def test_ppl_face_crop_is_refused_for_2to1_images():
    opts = metric_utils.MetricOptions(G=LinearGenerator(), device='cpu', detectors={'vgg16': PixelLPIPS()})
    with pytest.raises(metric_utils.MetricError, match='ppl2_wend'):
        metric_main.calc_metric('ppl_zfull', G=LinearGenerator(), device='cpu', detectors={'vgg16': PixelLPIPS()})
    assert opts.sized(num_samples=50000) == {'num_samples': 50000}


# ----------------------------------------------------------------------------
# The Inception-v3 module and the files


# Names and shapes of the published file, written out from the ports' layout (not from our module).
PUBLISHED_SAMPLES = {
    'layers.conv.weight': (32, 3, 3, 3), 'layers.conv.beta': (32,), 'layers.conv.mean': (32,),
    'layers.conv.var': (32,), 'layers.conv_2.weight': (64, 32, 3, 3), 'layers.conv_4.weight': (192, 80, 3, 3),
    'layers.mixed.conv.weight': (64, 192, 1, 1), 'layers.mixed.tower.conv_1.weight': (64, 48, 5, 5),
    'layers.mixed.tower_2.conv.weight': (32, 192, 1, 1), 'layers.mixed_2.tower_1.conv_2.weight': (96, 96, 3, 3),
    'layers.mixed_3.conv.weight': (384, 288, 3, 3), 'layers.mixed_3.tower.conv_2.weight': (96, 96, 3, 3),
    'layers.mixed_4.tower.conv_1.weight': (128, 128, 1, 7), 'layers.mixed_4.tower_1.conv_4.weight': (192, 128, 1, 7),
    'layers.mixed_7.tower_1.conv_1.weight': (192, 192, 7, 1), 'layers.mixed_8.tower.conv_1.weight': (320, 192, 3, 3),
    'layers.mixed_8.tower_1.conv_3.weight': (192, 192, 3, 3), 'layers.mixed_9.conv.weight': (320, 1280, 1, 1),
    'layers.mixed_9.tower_mixed_conv.weight': (384, 384, 1, 3),
    'layers.mixed_9.tower_1_conv_1.weight': (384, 448, 3, 3),
    'layers.mixed_10.tower_1_mixed_conv_1.weight': (384, 384, 3, 1),
    'layers.mixed_10.tower_2_conv.weight': (192, 2048, 1, 1), 'output.weight': (1008, 2048), 'output.bias': (1008,),
}


@pytest.fixture(scope='module')
def inception_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('inception')
    model = random_inception()
    write_torchscript_archive(model.state_dict(), folder / 'inception-2015-12-05.pt')
    write_network_pickle(model.state_dict(), folder / 'inception-2015-12-05.pkl')
    return model, folder


def test_inception_has_the_published_layout():
    shapes = inception.published_shapes()
    assert len(shapes) == 94 * 4 + 2  # 94 convolutions with weight/beta/mean/var, and the softmax layer
    for name, shape in PUBLISHED_SAMPLES.items():
        assert shapes[name] == shape, name


def test_inception_loads_from_a_torchscript_archive_without_running_it(inception_files):
    model, folder = inception_files
    loaded = detector_files.load_detector('inception', path=folder / 'inception-2015-12-05.pt')
    assert isinstance(loaded, inception.InceptionV3)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    img = torch.from_numpy(np.random.RandomState(0).randint(0, 256, [1, 3, 64, 32]).astype(np.uint8))
    with torch.no_grad():  # Two forward passes only: each takes seconds on a CPU.
        probs = loaded(img, no_output_bias=True)
        features = model(img, return_features=True)
    assert features.shape == (1, 2048) and probs.shape == (1, 1008) and features.std() > 0
    expected = torch.softmax(features @ model.output.weight.T, dim=1)  # no bias, as IS asks
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(loaded.class_probabilities(features), model.class_probabilities(features))


def test_inception_tensors_load_from_a_network_pickle(inception_files):
    model, folder = inception_files
    tensors = detector_files.read_detector_tensors(folder / 'inception-2015-12-05.pkl')
    assert list(tensors) == list(model.state_dict())
    assert all(torch.equal(tensors[k], v) for k, v in model.state_dict().items())
    assert isinstance(detector_files.build_detector(tensors), inception.InceptionV3)


def test_inception_resizes_as_tensorflow_does():
    # TF1 resize_bilinear samples source pixel i * (in / out): an image at 299 passes unchanged (up to
    # the float32 rounding of the sampling grid, as NVIDIA's affine grid),
    # and upsampling a horizontal ramp 2x keeps exact midpoints.
    x = torch.rand([1, 3, 299, 299]) * 255
    from stylegan_human.features.resize import tf_bilinear_resize
    torch.testing.assert_close(tf_bilinear_resize(x, 299, 299), x, rtol=0, atol=1e-2)
    ramp = torch.arange(4.0).view(1, 1, 1, 4).repeat(1, 1, 2, 1)
    assert tf_bilinear_resize(ramp, 2, 8)[0, 0, 0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3]


def test_a_pickle_asking_for_other_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ('echo should-not-run > ' + str(tmp_path / 'ran'),))
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps({'G': Evil()}, protocol=4))
    with pytest.raises(detector_files.DetectorError, match='refusing to load'):
        detector_files.read_detector_tensors(path)
    assert not (tmp_path / 'ran').exists()
    (tmp_path / 'junk.pt').write_bytes(b'not a network')
    with pytest.raises(detector_files.DetectorError, match='neither a TorchScript'):
        detector_files.read_detector_tensors(tmp_path / 'junk.pt')


def test_missing_detector_file_is_one_line_naming_file_url_and_option(tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.delenv('METRICS_INCEPTION_FILE', raising=False)
    with pytest.raises(detector_files.DetectorMissing) as info:
        detector_files.resolve('inception', allow_download=False)
    message = str(info.value)
    assert '\n' not in message
    for part in ('inception-2015-12-05', 'https://', '--detector', 'METRICS_INCEPTION_FILE'):
        assert part in message

    def offline(url, **_kwargs):
        raise dnnlib.util.DownloadError(url, 'no network (cannot resolve host)')
    monkeypatch.setattr(dnnlib.util, 'open_url', offline)
    with pytest.raises(detector_files.DetectorMissing, match='could not be downloaded .no network') as info:
        detector_files.resolve('vgg16')
    assert '--vgg16' in str(info.value) and 'vgg16.pt' in str(info.value) and '\n' not in str(info.value)

    monkeypatch.setenv('METRICS_VGG16_FILE', str(tmp_path / 'nope.pt'))
    with pytest.raises(detector_files.DetectorMissing, match='nope.pt: no such file .* METRICS_VGG16_FILE'):
        detector_files.resolve('vgg16')


def test_detector_file_from_the_environment_and_the_download_cache(tmp_path, monkeypatch, inception_files):
    _model, folder = inception_files
    monkeypatch.setenv('METRICS_INCEPTION_FILE', str(folder / 'inception-2015-12-05.pt'))
    assert detector_files.resolve('inception') == str(folder / 'inception-2015-12-05.pt')
    monkeypatch.delenv('METRICS_INCEPTION_FILE')
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path))
    cached = tmp_path / 'downloads' / 'x_vgg16.pt'
    cached.parent.mkdir()
    cached.write_bytes(b'x')
    monkeypatch.setattr(dnnlib.util, 'find_cached', lambda url: str(cached) if url.endswith('vgg16.pt') else None)
    assert detector_files.resolve('vgg16', allow_download=False) == str(cached)


# ----------------------------------------------------------------------------
# calc_metric end to end


def _standin_features(detector, images):
    with torch.no_grad():
        return detector(images, return_features=True).double().numpy()


def test_fid_end_to_end_matches_an_independent_computation_and_reuses_the_cache(tmp_path):
    data = write_dataset(tmp_path / 'data')
    G = tiny_generator()
    detector = StandInDetector()
    kwargs = dict(G=G, dataset_kwargs=dataset_kwargs(data), device='cpu', detectors={'inception': detector},
                  cache_dir=tmp_path / 'cache', G_kwargs=dict(noise_mode='const'), num_gen=12)
    torch.manual_seed(3)
    result = metric_main.calc_metric('fid50k_full', **kwargs)
    assert set(result) == {'results', 'metric', 'total_time', 'total_time_str', 'num_gpus'}
    assert result.metric == 'fid50k_full' and result.num_gpus == 1
    seen_first = detector.images_seen
    assert seen_first >= 24 + 12

    # Independently: every dataset image and the same 12 generated images through the stand-in.
    reals = np.stack([np.array(PIL.Image.open(os.path.join(data, f))) for f in sorted(os.listdir(data))])
    real_f = _standin_features(detector, torch.from_numpy(reals).permute(0, 3, 1, 2))
    torch.manual_seed(3)
    with torch.no_grad():
        imgs = [G(torch.randn([4, 16]), torch.zeros([4, 0]), noise_mode='const') for _ in range(3)]
    imgs = (torch.cat(imgs) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    gen_f = _standin_features(detector, imgs)
    expected = np.sum((real_f.mean(0) - gen_f.mean(0)) ** 2) + np.trace(
        np.cov(real_f, rowvar=False, bias=True) + np.cov(gen_f, rowvar=False, bias=True)
        - 2 * np.real(scipy.linalg.sqrtm(np.cov(real_f, rowvar=False, bias=True) @ np.cov(gen_f, rowvar=False,
                                                                                          bias=True))))
    assert result.results.fid50k_full == pytest.approx(expected, rel=1e-4)

    # Second run: the dataset features come from the cache file; only generated images are seen.
    cache_files = list((tmp_path / 'cache').iterdir())
    assert len(cache_files) == 1 and cache_files[0].name.startswith('data-inception-2015-12-05-')
    stamp = cache_files[0].stat().st_mtime_ns
    detector.images_seen = 0
    torch.manual_seed(3)
    again = metric_main.calc_metric('fid50k_full', **kwargs)
    assert detector.images_seen == 12  # Generated images only; no dataset image.
    assert again.results.fid50k_full == pytest.approx(result.results.fid50k_full, rel=1e-9)
    assert cache_files[0].stat().st_mtime_ns == stamp

    # Another detector (other weights) does not reuse those features.
    metric_main.calc_metric('fid50k_full', **dict(kwargs, detectors={'inception': StandInDetector(seed=1)}))
    assert len(list((tmp_path / 'cache').iterdir())) == 2


def test_other_metrics_end_to_end_with_small_counts(tmp_path):
    data = write_dataset(tmp_path / 'data', num_images=20)
    common = dict(G=tiny_generator(), dataset_kwargs=dataset_kwargs(data), device='cpu', cache=False,
                  detectors={'inception': StandInDetector(), 'vgg16': StandInDetector(seed=2)})
    torch.manual_seed(0)
    kid = metric_main.calc_metric('kid50k_full', **common, num_gen=16, num_subsets=5).results.kid50k_full
    pr = metric_main.calc_metric('pr50k3_full', **common, num_gen=16).results
    is_ = metric_main.calc_metric('is50k', **common, num_gen=16, num_splits=2).results
    ppl = metric_main.calc_metric('ppl2_wend', **common, num_samples=8).results.ppl2_wend
    assert np.isfinite(kid)
    assert 0 <= pr.pr50k3_full_precision <= 1 and 0 <= pr.pr50k3_full_recall <= 1
    assert 1 <= is_.is50k_mean <= 10 and is_.is50k_std >= 0
    assert np.isfinite(ppl) and ppl > 0
    # The real images against themselves: a network that copies the dataset is perfect.
    real = metric_utils.compute_feature_stats_for_dataset(
        metric_utils.MetricOptions(**common), detector_url=pr_module.DETECTOR_URL,
        detector_kwargs=dict(return_features=True), capture_all=True).get_all_torch().half()
    assert pr_module.precision_recall(real, real, 3, 100, 100) == (1.0, 1.0)


def test_calc_metric_rejects_unknown_names_and_options():
    with pytest.raises(metric_utils.MetricError, match='unknown metric .fid5k.*fid50k_full'):
        metric_main.calc_metric('fid5k', G=None)
    with pytest.raises(metric_utils.MetricError, match='unknown metric option num_gens'):
        metric_main.calc_metric('fid50k_full', G=None, num_gens=3)
    with pytest.raises(metric_utils.MetricError, match='unknown detector'):
        metric_utils.MetricOptions(detectors={'resnet': None})


def test_report_metric_appends_a_json_line(tmp_path, capsys):
    result = dnnlib.EasyDict(results=dnnlib.EasyDict(fid50k_full=12.5), metric='fid50k_full', total_time=3.0,
                             total_time_str='3s', num_gpus=1)
    snapshot = tmp_path / 'network-snapshot-000100.pkl'
    metric_main.report_metric(result, run_dir=str(tmp_path), snapshot_pkl=str(snapshot))
    metric_main.report_metric(result, run_dir=str(tmp_path), snapshot_pkl=str(snapshot))
    lines = (tmp_path / 'metric-fid50k_full.jsonl').read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record['results'] == {'fid50k_full': 12.5} and record['snapshot_pkl'] == 'network-snapshot-000100.pkl'
    assert record['metric'] == 'fid50k_full' and 'timestamp' in record
    assert json.loads(capsys.readouterr().out.splitlines()[0])['results'] == {'fid50k_full': 12.5}


# ----------------------------------------------------------------------------
# Several ranks (torch.distributed on CPU, gloo)


def _rank_worker(rank, init_method, data, out):
    torch.distributed.init_process_group('gloo', init_method=init_method, rank=rank, world_size=2)
    try:
        opts = metric_utils.MetricOptions(dataset_kwargs=dataset_kwargs(data), num_gpus=2, rank=rank, device='cpu',
                                          cache=False, detectors={'inception': StandInDetector()})
        stats = metric_utils.compute_feature_stats_for_dataset(
            opts, detector_url=fid_module.DETECTOR_URL, detector_kwargs=dict(return_features=True), capture_all=True,
            capture_mean_cov=True, batch_size=4)
        torch.manual_seed(rank)
        result = metric_main.calc_metric('fid50k_full', G=tiny_generator(), dataset_kwargs=dataset_kwargs(data),
                                         num_gpus=2, rank=rank, device='cpu', cache=False,
                                         detectors={'inception': StandInDetector()}, num_gen=8)
        np.savez(os.path.join(out, f'rank{rank}.npz'), features=stats.get_all(), fid=result.results.fid50k_full)
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_share_the_work_and_agree(tmp_path):
    data = write_dataset(tmp_path / 'data', num_images=11)
    # The same rendezvous as train.py's spawned processes (a file store: no server thread to outlive).
    init_method = launch.file_init_method(str(tmp_path))
    torch.multiprocessing.spawn(_rank_worker, args=(init_method, data, str(tmp_path)), nprocs=2)
    single = metric_utils.compute_feature_stats_for_dataset(
        metric_utils.MetricOptions(dataset_kwargs=dataset_kwargs(data), device='cpu', cache=False,
                                   detectors={'inception': StandInDetector()}),
        detector_url=fid_module.DETECTOR_URL, detector_kwargs=dict(return_features=True), capture_all=True)
    r0, r1 = np.load(tmp_path / 'rank0.npz'), np.load(tmp_path / 'rank1.npz')
    # Gathered from both ranks, interleaved: the same 11 features in the same order as one process.
    np.testing.assert_allclose(r0['features'], single.get_all(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(r0['features'], r1['features'])
    assert np.isfinite(r0['fid']) and float(r0['fid']) == float(r1['fid'])
