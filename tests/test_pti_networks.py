"""LPIPS, NVIDIA's VGG16 and the e4e encoder, loaded from random weights in the published layouts."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pti import losses, weight_files
from stylegan_human.features.e4e import Encoder4Editing, load_e4e
from stylegan_human.features.lpips import LPIPS
from stylegan_human.features.vgg16_nvidia import TorchScriptFileError, load_vgg16, read_torchscript_tensors

# The tests write TorchScript files the way NVIDIA's was made; torch now calls that API deprecated.
pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')

ALEX_FEATURES = {'features.0.weight': (64, 3, 11, 11), 'features.3.weight': (192, 64, 5, 5),
                 'features.6.weight': (384, 192, 3, 3), 'features.8.weight': (256, 384, 3, 3),
                 'features.10.weight': (256, 256, 3, 3)}


def alexnet_file(path, seed=0):
    """torchvision's alexnet-owt file layout: features + classifier, random weights."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in ALEX_FEATURES.items():
        sd[key] = torch.randn(shape, generator=g) * (2 / np.prod(shape[1:])) ** 0.5
        sd[key.replace('weight', 'bias')] = torch.zeros(shape[0])
    sd['classifier.1.weight'] = torch.zeros(8, 9216)      # present in the real file, unused by LPIPS
    torch.save(sd, path)
    return path


def lin_file(path, channels=(64, 192, 384, 256, 256), seed=1):
    g = torch.Generator().manual_seed(seed)
    torch.save({f'lin{k}.model.1.weight': torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(channels)}, path)
    return path


@pytest.fixture(scope='module')
def lpips_alex(tmp_path_factory):
    folder = tmp_path_factory.mktemp('lpips')
    return losses.load_lpips('alex', str(lin_file(folder / 'alex.pth')), str(alexnet_file(folder / 'alexnet.pth')))


def test_lpips_layouts_and_properties(lpips_alex):
    sd = lpips_alex.state_dict()
    assert tuple(sd['net.features.0.weight'].shape) == (64, 3, 11, 11)
    assert tuple(sd['lin4.model.1.weight'].shape) == (1, 256, 1, 1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 128, 64, generator=g) * 2 - 1, torch.rand(2, 3, 128, 64, generator=g) * 2 - 1
    assert lpips_alex(x, y).shape == (2, 1, 1, 1)
    assert float(lpips_alex(x, x).abs().max()) == 0
    assert torch.allclose(lpips_alex(x, y), lpips_alex(y, x))
    assert (lpips_alex(x, y) > 0).all()
    x.requires_grad_(True)
    lpips_alex(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_lpips_matches_a_hand_computation(lpips_alex):
    """The formula, spelled out on the published weights: scale, AlexNet taps, unit-normalise, weight, average."""
    sd = lpips_alex.state_dict()
    shift = torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1)
    scale = torch.tensor([.458, .448, .450]).view(1, 3, 1, 1)

    def taps(img):
        x = (img - shift) / scale
        out = []
        x = F.relu(F.conv2d(x, sd['net.features.0.weight'], sd['net.features.0.bias'], stride=4, padding=2))
        out.append(x)
        x = F.relu(F.conv2d(F.max_pool2d(x, 3, 2), sd['net.features.3.weight'], sd['net.features.3.bias'], padding=2))
        out.append(x)
        x = F.relu(F.conv2d(F.max_pool2d(x, 3, 2), sd['net.features.6.weight'], sd['net.features.6.bias'], padding=1))
        out.append(x)
        x = F.relu(F.conv2d(x, sd['net.features.8.weight'], sd['net.features.8.bias'], padding=1))
        out.append(x)
        x = F.relu(F.conv2d(x, sd['net.features.10.weight'], sd['net.features.10.bias'], padding=1))
        out.append(x)
        return out
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(1, 3, 96, 64, generator=g) * 2 - 1, torch.rand(1, 3, 96, 64, generator=g) * 2 - 1
    total = 0.0
    for k, (fa, fb) in enumerate(zip(taps(a), taps(b))):
        na = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
        nb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        w = sd[f'lin{k}.model.1.weight'].view(1, -1, 1, 1)
        total += float(((na - nb) ** 2 * w).sum(dim=1).mean())
    assert float(lpips_alex(a, b)) == pytest.approx(total, rel=1e-5)


def test_lpips_makes_a_fixed_targets_taps_once_per_version(lpips_alex, monkeypatch):
    g = torch.Generator().manual_seed(4)
    target = torch.rand(1, 3, 96, 64, generator=g) * 2 - 1
    images = [(torch.rand(1, 3, 96, 64, generator=g) * 2 - 1).requires_grad_(True) for _ in range(3)]
    calls = []
    backbone = lpips_alex.net.forward
    monkeypatch.setattr(lpips_alex.net, 'forward', lambda x: calls.append(1) or backbone(x))
    distances = [lpips_alex(image, target) for image in images]
    assert len(calls) == len(images) + 1                       # the target's taps once
    for image, distance in zip(images, distances):
        assert torch.equal(distance, lpips_alex(image, target.clone()))
        grad, = torch.autograd.grad(distance.sum(), image)
        assert grad.abs().sum() > 0
    with torch.no_grad():
        target.mul_(0.5)                                       # changed in place: its taps are made again
    assert torch.equal(lpips_alex(images[0], target), lpips_alex(images[0], target.clone()))


def test_lpips_vgg_builds_with_the_vgg_layout(tmp_path):
    model = LPIPS('vgg')
    keys = model.state_dict()
    assert tuple(keys['net.features.28.weight'].shape) == (512, 512, 3, 3)
    assert tuple(keys['lin2.model.1.weight'].shape) == (1, 256, 1, 1)
    assert model(torch.zeros(1, 3, 64, 32), torch.zeros(1, 3, 64, 32)).shape == (1, 1, 1, 1)


def test_missing_weights_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    with pytest.raises(losses.WeightsError) as info:
        losses.load_lpips('alex')
    message = str(info.value)
    assert '\n' not in message and 'python -m pti.weight_files download lpips_alex_lin' in message
    assert weight_files.FILES['lpips_alex_lin'].url in message
    (tmp_path / 'notes.pth').write_text('not weights')
    with pytest.raises(losses.WeightsError, match='not a readable weight file'):
        losses.load_lpips('alex', str(tmp_path / 'notes.pth'), str(tmp_path / 'notes.pth'))
    with pytest.raises(losses.WeightsError, match='e4e_w\\+.pt'):
        losses.load_encoder(str(tmp_path / 'missing.pt'), 10)


# ----------------------------------------------------------------------------
# NVIDIA's VGG16 TorchScript file


class _NvidiaLayers(nn.Module):
    def __init__(self):
        super().__init__()
        channels = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
        for i in range(1, 14):
            self.add_module(f'conv{i}', nn.Conv2d(channels[i - 1], channels[i], 3, padding=1))


class _NvidiaLike(nn.Module):
    """A TorchScript module with vgg16.pt's attribute names: layers.convK and lpipsK."""

    def __init__(self):
        super().__init__()
        self.layers = _NvidiaLayers()
        self.lpips0 = nn.Parameter(torch.rand(64, 1, 1))
        self.lpips1 = nn.Parameter(torch.rand(128, 1, 1))
        self.lpips2 = nn.Parameter(torch.rand(256, 1, 1))
        self.lpips3 = nn.Parameter(torch.rand(512, 1, 1))
        self.lpips4 = nn.Parameter(torch.rand(512, 1, 1))

    def forward(self, x):
        return self.layers.conv1(x)


@pytest.fixture(scope='module')
def vgg16_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('vgg') / 'vgg16.pt'
    torch.jit.save(torch.jit.script(_NvidiaLike()), str(path))
    return path


def test_vgg16_reads_the_torchscript_file_without_running_it(vgg16_file):
    tensors = read_torchscript_tensors(vgg16_file)
    assert tuple(tensors['layers.conv13.weight'].shape) == (512, 512, 3, 3)
    model = load_vgg16(vgg16_file)
    scripted = torch.jit.load(str(vgg16_file))
    assert torch.equal(model.layers.conv7.weight, scripted.layers.conv7.weight)
    assert torch.equal(model.lpips2, scripted.lpips2.flatten())
    img = torch.rand(2, 3, 64, 32) * 255
    a, b = model(img, return_lpips=True), model(img.flip(0), return_lpips=True)
    assert a.ndim == 2 and float((a - a).abs().max()) == 0 and float((a - b).square().sum()) > 0
    assert model(img, resize_images=True, return_lpips=True).shape[1] > a.shape[1]


def test_vgg16_lpips_mode_equals_weighted_feature_distance(vgg16_file):
    model = load_vgg16(vgg16_file)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1, 3, 32, 16, generator=g) * 255, torch.rand(1, 3, 32, 16, generator=g) * 255
    x.requires_grad_(True)
    distance = (model(x, return_lpips=True) - model(y, return_lpips=True)).square().sum()
    grad, = torch.autograd.grad(distance, x)

    def taps(img):
        h = (img - model.mean) / model.std
        out = []
        for i in range(1, 14):
            h = F.relu(getattr(model.layers, f'conv{i}')(h))
            if i in (2, 4, 7, 10, 13):
                out.append(h)
            if i in (2, 4, 7, 10):
                h = F.max_pool2d(h, 2)
        return out
    expected = 0.0
    for k, (fx, fy) in enumerate(zip(taps(x), taps(y))):
        nx, ny = fx / (fx.norm(dim=1, keepdim=True) + 1e-10), fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
        expected = expected + ((nx - ny) ** 2 * getattr(model, f'lpips{k}').view(1, -1, 1, 1)).sum(1).mean()
    assert float(distance) == pytest.approx(float(expected), rel=1e-4)
    weights = [getattr(model, f'lpips{k}').view(1, -1, 1, 1).sqrt() for k in range(5)]
    vector = torch.cat([(f / (f.norm(dim=1, keepdim=True) + 1e-10) * w).flatten(1) / f[0, 0].numel() ** 0.5
                        for f, w in zip(taps(y), weights)], dim=1)
    torch.testing.assert_close(model(y, return_lpips=True), vector, rtol=1e-4, atol=1e-7)   # NVIDIA's order
    # Projection follows this gradient; the vector's own backward lays it out for the CPU.
    expected_grad, = torch.autograd.grad(expected, x)
    # 1e-5 of the largest: the fast mode's 64-channel convolutions run as Winograd F(4x4, 3x3)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-5 * float(expected_grad.abs().max()))


def test_vgg16_refuses_foreign_globals_and_non_archives(tmp_path):
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (print, ('side effect',))
    with zipfile.ZipFile(tmp_path / 'evil.pt', 'w') as z:
        z.writestr('evil/data.pkl', pickle.dumps(Evil()))
    with pytest.raises(TorchScriptFileError, match='refusing to load builtins.print'):
        read_torchscript_tensors(tmp_path / 'evil.pt')
    (tmp_path / 'text.pt').write_text('hello')
    with pytest.raises(TorchScriptFileError, match='not a zip'):
        read_torchscript_tensors(tmp_path / 'text.pt')
    with pytest.raises(losses.WeightsError, match='not a zip'):
        losses.load_vgg16(str(tmp_path / 'text.pt'))


# ----------------------------------------------------------------------------
# e4e


def e4e_file(path, n_styles=10, w_dim=128, seed=0):
    """A checkpoint in e4e's layout: encoder.* (ours, random), decoder.* (ignored), latent_avg, opts."""
    torch.manual_seed(seed)
    encoder = Encoder4Editing(n_styles, w_dim)
    for m in encoder.modules():   # random running statistics, so batch norm does something
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = {f'encoder.{k}': v for k, v in encoder.state_dict().items()}
    state['decoder.style.1.weight'] = torch.zeros(4, 4)
    torch.save({'state_dict': state, 'latent_avg': torch.randn(n_styles, w_dim),
                'opts': {'encoder_type': 'Encoder4Editing', 'stylegan_size': 64, 'start_from_latent_avg': True}}, path)
    return path, encoder


def test_e4e_published_key_layout():
    keys = Encoder4Editing(18).state_dict()
    expected = {'input_layer.0.weight': (64, 3, 3, 3), 'body.3.shortcut_layer.0.weight': (128, 64, 1, 1),
                'body.0.res_layer.5.fc1.weight': (4, 64, 1, 1), 'body.23.res_layer.3.weight': (512, 512, 3, 3),
                'styles.0.convs.0.weight': (512, 512, 3, 3), 'styles.0.linear.weight': (512, 512),
                'styles.17.convs.10.weight': (512, 512, 3, 3), 'latlayer1.weight': (512, 256, 1, 1),
                'latlayer2.weight': (512, 128, 1, 1)}
    for key, shape in expected.items():
        assert tuple(keys[key].shape) == shape, key
    assert 'body.0.shortcut_layer.0.weight' not in keys                 # 64 -> 64: a max-pool shortcut
    assert len([k for k in keys if k.startswith('body.')]) > 0 and 'styles.18.linear.weight' not in keys


def test_e4e_loads_and_inverts_at_2_to_1(tmp_path):
    path, encoder = e4e_file(tmp_path / 'e4e_w+.pt')
    inverter = load_e4e(str(path), num_ws=10)
    images = torch.rand(2, 3, 64, 32) * 2 - 1
    w = inverter(images)
    assert w.shape == (2, 10, 128)
    with torch.no_grad():
        resized = F.interpolate(images, size=(256, 128), mode='bilinear', align_corners=False, antialias=True)
        expected = encoder.eval()(resized) + torch.load(path, weights_only=True)['latent_avg']
    assert torch.allclose(w, expected, atol=1e-5)
    with pytest.raises(losses.WeightsError, match='predicts 10 w codes but the generator takes 16'):
        losses.load_encoder(str(path), 16)
    ckpt = torch.load(path, weights_only=True)
    del ckpt['state_dict']['encoder.latlayer2.weight']
    torch.save(ckpt, tmp_path / 'broken.pt')
    with pytest.raises(losses.WeightsError, match='missing weight encoder.latlayer2.weight'):
        losses.load_encoder(str(tmp_path / 'broken.pt'), 10)


def test_weight_download_failure_is_one_line_and_the_rest_go_on(tmp_path, monkeypatch, capsys):
    import dataclasses
    from dnnlib import downloads
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setattr(downloads, '_sleep', lambda seconds: None)
    refused = dataclasses.replace(weight_files.FILES['lpips_alex_lin'], url='http://127.0.0.1:9/alex.pth')
    monkeypatch.setitem(weight_files.FILES, 'lpips_alex_lin', refused)
    local = tmp_path / 'vgg.pt'
    local.write_bytes(b'weights')
    here = dataclasses.replace(weight_files.FILES['vgg16_nvidia'], url=local.as_uri())
    monkeypatch.setitem(weight_files.FILES, 'vgg16_nvidia', here)
    assert weight_files.main(['download', 'lpips_alex_lin', 'vgg16_nvidia']) == 1
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and errors[0].startswith('Error: lpips_alex_lin: ') and 'Traceback' not in err
    assert out.strip().splitlines() == [str(local)]   # the second file still resolved


def test_a_refused_weight_file_never_advises_the_unsafe_load(tmp_path):
    import argparse
    import collections
    import pickle as pickle_module
    from pti import losses
    from stylegan_human.features.e4e import E4EWeightsError, read_checkpoint
    from dnnlib.errors import FileFormatError
    from stylegan_human.latent_files import load_latent

    path = tmp_path / 'custom.pt'
    path.write_bytes(pickle_module.dumps({'state_dict': collections.OrderedDict(), 'opts': argparse.Namespace()}))
    for read, error in ((read_checkpoint, E4EWeightsError), (losses._state_dict, losses.WeightsError),
                        (lambda p: load_latent(p, None), FileFormatError)):
        with pytest.raises(error) as info:
            read(path)
        message = str(info.value)
        assert 'refused: it holds more than tensors and plain data' in message and str(path) in message
        assert 'weights_only' not in message and '\n' not in message
