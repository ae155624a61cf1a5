"""InsetGAN: the joint optimisation on fixture networks, face finding, and the command line.

Body model: sg2_rect64 (2:1, 64x32); face model: sg2_square64 (square 64x64).
Stated bound: outside the face box (plus upstream's padding) the body image
changes by less than 0.05 on average (in the generator's [-1, 1] range, about
6 of 255 levels), while the seam and coarse losses fall several-fold.
"""

import copy

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import legacy
from aligner.face import FaceBox, ffhq_box, parse_box
from conftest import FIXTURES
from inset.optimize import InsetConfig, box_region, feathered_paste, fit_to_box, joint_optimize, outside_box_mask

BODY_CHANGE_BOUND = 0.05


@pytest.fixture(scope='module')
def nets():
    load = lambda name: legacy.load_network(FIXTURES / 'networks' / name, verbose=False)['G_ema'].eval()  # noqa: E731
    return load('sg2_square64.pkl'), load('sg2_rect64.pkl')


def _w(G, seed):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    with torch.no_grad():
        return G.mapping(z, None, truncation_psi=0.6)[:, :1]


def _image(G, w):
    with torch.no_grad():
        return G.synthesis(w.repeat([1, G.num_ws // w.shape[1], 1]), noise_mode='const', force_fp32=True)


def test_joint_optimisation_fits_the_face_and_keeps_the_body(nets):
    face_G, body_G = nets
    box = FaceBox(4, 2, 28, 26)
    face_w, body_w = _w(face_G, 1), _w(body_G, 2)
    body_start = _image(body_G, body_w)
    face_start = fit_to_box(_image(face_G, face_w), box)
    face, body, box_after, history = joint_optimize(face_G, body_G, face_w, body_w, box, None,
                                                    InsetConfig(joint_steps=60, face_steps=10, body_steps=30))
    assert box_after == box                                           # no finder: the box stays
    assert len(history) == 100 and [h[0] for h in history[:1] + history[10:11] + history[40:41]] == \
        ['face', 'body', 'joint']
    seam = [h[1] for h in history]
    assert seam[-1] < 0.25 * seam[0]
    with torch.no_grad():
        body_end, face_end = body.image(), fit_to_box(face.image(), box)
    start_gap = float((box_region(body_start, box) - face_start).abs().mean())
    end_gap = float((box_region(body_end, box) - face_end).abs().mean())
    assert end_gap < 0.5 * start_gap
    mask = outside_box_mask(body_start, box, padding=box.height // 20)
    change = float(((body_end - body_start).abs() * mask).sum() / mask.sum() / 3)
    print(f'seam L1 {seam[0]:.3f} -> {seam[-1]:.3f}; face gap {start_gap:.3f} -> {end_gap:.3f}; '
          f'body change outside the box {change:.4f}')
    assert change < BODY_CHANGE_BOUND


def test_perceptual_term_is_used(nets):
    face_G, body_G = nets
    calls = []

    def perceptual(a, b):
        calls.append(a.shape)
        return (a - b).square().mean(dim=(1, 2, 3))
    joint_optimize(face_G, body_G, _w(face_G, 1), _w(body_G, 2), FaceBox(4, 2, 28, 26), perceptual,
                   InsetConfig(joint_steps=2, face_steps=1, body_steps=1))
    assert calls and all(len(s) == 4 for s in calls)


def test_the_networks_weights_take_no_gradient_and_keep_their_flags(nets):
    face_G, body_G = copy.deepcopy(nets)
    face_G.requires_grad_(True)      # as a freshly built network comes: every weight wants a gradient
    body_G.requires_grad_(False)
    body_G.synthesis.b4.conv1.weight.requires_grad_(True)
    joint_optimize(face_G, body_G, _w(face_G, 1), _w(body_G, 2), FaceBox(4, 2, 28, 26), None,
                   InsetConfig(joint_steps=2, face_steps=1, body_steps=1))
    assert all(p.grad is None for G in (face_G, body_G) for p in G.parameters())
    assert all(p.requires_grad for p in face_G.parameters())
    assert [name for name, p in body_G.named_parameters() if p.requires_grad] == ['synthesis.b4.conv1.weight']


def test_feathered_paste():
    body = torch.zeros(1, 3, 40, 20)
    face = torch.ones(1, 3, 16, 16)
    out = feathered_paste(body, face, FaceBox(2, 4, 18, 20), feather=4)
    assert float(out[0, 0, 12, 10]) == 1.0                             # inside: the face
    assert 0 < float(out[0, 0, 4, 10]) < 1                             # edge: a blend
    assert float(out[0, 0, 30, 10]) == 0.0 and float(out[0, 0, 3, 10]) == 0.0   # outside: the body


def test_ffhq_box_geometry():
    # Level eyes 40 px apart, mouth 48 px below their midpoint: a square centred a little below the eyes.
    box = ffhq_box((80, 100), (120, 100), (90, 148), (110, 148))
    assert box.width == box.height == pytest.approx(2 * max(40 * 2.0, 48 * 1.8), abs=2)
    assert (box.x0 + box.x1) / 2 == pytest.approx(100, abs=1)
    assert (box.y0 + box.y1) / 2 == pytest.approx(100 + 0.1 * 48, abs=1)
    assert ffhq_box((120, 100), (80, 100), (110, 148), (90, 148)) == box   # order of the points does not matter
    assert parse_box('1,2,30,40') == FaceBox(1, 2, 30, 40)
    with pytest.raises(ValueError):
        parse_box('30,2,1,40')


def test_mediapipe_finds_the_face_in_an_aligned_photo():
    pytest.importorskip('mediapipe')
    from aligner import align_photo, make_backend
    from aligner.face import MediaPipeFaceFinder
    rgb = np.asarray(PIL.Image.open(FIXTURES / 'photos' / 'p_center.png').convert('RGB'))
    backend = make_backend()
    aligned = align_photo(rgb, backend)
    backend.close()
    finder = MediaPipeFaceFinder()
    box = finder.find(aligned.image)
    finder.close()
    nose = aligned.keypoints[0, :2]
    assert box.x0 < nose[0] < box.x1 and box.y0 < nose[1] < box.y1
    assert 0.08 * 1024 < box.height < 0.2 * 1024 and box.width == pytest.approx(box.height, abs=2)


def _run(args):
    import insetgan
    return CliRunner().invoke(insetgan.main, args)


def _net_args():
    return ['--face_network', str(FIXTURES / 'networks' / 'sg2_square64.pkl'),
            '--body_network', str(FIXTURES / 'networks' / 'sg2_rect64.pkl'), '--device', 'cpu', '--lpips', 'none']


def test_cli_with_a_face_box_writes_everything(nets, tmp_path):
    result = _run(_net_args() + ['--face-box', '4,2,28,26', '--joint_steps', '4', '--face-steps', '2',
                                 '--body-steps', '2', '--outdir', str(tmp_path), '--video', '1'])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ['0082_0043.mp4', '0082_0043.png', '0082_0043_final.png',
                                                         '0082_0043_latents.npz']
    assert PIL.Image.open(tmp_path / '0082_0043.png').size == (64, 64)      # before | after, each 32 wide
    with np.load(tmp_path / '0082_0043_latents.npz') as latents:
        assert latents['face_ws'].shape == (1, 10, 128) and list(latents['face_box']) == [4, 2, 28, 26]
    import imageio.v3 as iio
    assert iio.imread(tmp_path / '0082_0043.mp4').shape[0] == 8


def test_cli_body_from_a_latent_file(nets, tmp_path):
    face_G, body_G = nets
    pivot = body_G.mapping(torch.zeros(1, body_G.z_dim), None).detach()
    torch.save(pivot, tmp_path / '0.pt')
    result = _run(_net_args() + ['--face-box', '4,2,28,26', '--joint_steps', '0', '--face-steps', '1',
                                 '--body-steps', '0', '--body-latent', str(tmp_path / '0.pt'),
                                 '--outdir', str(tmp_path / 'out')])
    assert result.exit_code == 0, result.output
    torch.save(torch.zeros(1, 3, 7), tmp_path / 'bad.pt')
    result = _run(_net_args() + ['--face-box', '4,2,28,26', '--body-latent', str(tmp_path / 'bad.pt'),
                                 '--outdir', str(tmp_path / 'out2')])
    assert result.exit_code == 1 and 'latent of shape [1, 3, 7]' in result.output


@pytest.mark.parametrize('extra, message', [
    ([], '--face-box: no face found in the body image; say where the face is'),
    (['--face-box', '10,10,5,20'], '--face-box'),
    (['--face-box', '0,0,40,40'], 'does not fit'),
])
def test_cli_errors_are_one_line(nets, tmp_path, extra, message):
    if not extra:
        pytest.importorskip('mediapipe')
    result = _run(_net_args() + extra + ['--outdir', str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output and 'Traceback' not in result.output
    assert not any(tmp_path.iterdir())


def test_cli_without_lpips_weights_says_what_to_do(nets, tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'empty_cache'))
    args = [a for a in _net_args() if a not in ('--lpips', 'none')]
    result = _run(args + ['--face-box', '4,2,28,26', '--outdir', str(tmp_path / 'out')])
    assert result.exit_code == 1
    assert 'python -m pti.weight_files download lpips_alex_lin' in result.output and '--lpips none' in result.output
    assert not (tmp_path / 'out').exists()


def _options_named(text):
    import re
    return set(re.findall(r'(?<![\w-])--[a-z][a-z0-9_-]*', text))


def test_cli_lpips_errors_name_options_it_has_and_those_options_work(nets, tmp_path, monkeypatch):
    import insetgan
    from test_pti_networks import alexnet_file, lin_file
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'empty_cache'))
    options = {opt for param in insetgan.main.params for opt in param.opts}
    args = [a for a in _net_args() if a not in ('--lpips', 'none')] + ['--face-box', '4,2,28,26']
    lin, backbone = str(lin_file(tmp_path / 'alex.pth')), str(alexnet_file(tmp_path / 'alexnet.pth'))
    for extra, named in (([], '--lpips-weights'), (['--lpips-weights', lin], '--lpips-backbone')):
        result = _run(args + extra + ['--outdir', str(tmp_path / 'out')])
        assert result.exit_code == 1 and 'Traceback' not in result.output
        assert named in result.output and _options_named(result.output) <= options, result.output
        assert not (tmp_path / 'out').exists()
    args[args.index('--face-box') + 1] = '0,16,32,48'          # AlexNet needs 32 px or more
    result = _run(args + ['--lpips-weights', lin, '--lpips-backbone', backbone, '--joint_steps', '1',
                          '--face-steps', '1', '--body-steps', '1', '--outdir', str(tmp_path / 'out')])
    assert result.exit_code == 0, result.output
    assert (tmp_path / 'out' / '0082_0043_final.png').is_file()


@pytest.mark.parametrize('box', ['70,2,100,26', '20,2,44,26', '-4,2,20,26', '4,50,28,74'])
def test_cli_face_box_outside_the_body_image_is_refused(nets, tmp_path, box):
    result = _run(_net_args() + ['--face-box', box, '--joint_steps', '1', '--face-steps', '1', '--body-steps', '1',
                                 '--outdir', str(tmp_path / 'out')])
    assert result.exit_code == 1 and 'Traceback' not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1, result.output
    assert errors[0].startswith('Error: --face-box') and box in errors[0] and '32x64' in errors[0], errors[0]
    assert not (tmp_path / 'out').exists()


def test_a_found_face_box_is_moved_inside_the_image():
    from inset.compose import find_face_box

    class Finder:
        def find(self, image):
            return FaceBox(20, 2, 44, 26)          # a detection's square may reach past the edge
    assert find_face_box(torch.zeros(1, 3, 64, 32), Finder()) == FaceBox(8, 2, 32, 26)


@pytest.fixture(scope='module')
def conditional_body(tmp_path_factory):
    from training.networks_stylegan2 import Generator
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=64, img_channels=3, square=False,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=256, channel_max=16))
    path = tmp_path_factory.mktemp('cond') / 'cond_body.pkl'
    legacy.save_network_pkl(G, path)
    return path


def _cond_args(body):
    args = _net_args()
    args[args.index('--body_network') + 1] = str(body)
    return args + ['--face-box', '4,2,28,26', '--joint_steps', '0', '--face-steps', '0', '--body-steps', '0']


@pytest.mark.parametrize('extra, message', [
    ([], 'Error: --body-class: this network is conditional (3 classes): give a class index'),
    (['--class', '3'], 'Error: --body-class: class 3 does not exist: this network has classes 0-2'),
    (['--class', '1', '--face-class', '0'], 'Error: --face-class: this network is unconditional'),
])
def test_cli_class_of_a_conditional_network_is_asked_for(conditional_body, tmp_path, extra, message):
    result = _run(_cond_args(conditional_body) + extra + ['--outdir', str(tmp_path / 'out')])
    assert result.exit_code == 1 and 'Traceback' not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1 and errors[0].startswith(message), result.output
    assert not (tmp_path / 'out').exists()


def test_cli_class_labels_the_body_seed(conditional_body, tmp_path):
    G = legacy.load_network(conditional_body, verbose=False)['G_ema'].eval()
    z = torch.from_numpy(np.random.RandomState(43).randn(1, G.z_dim)).float()
    for label in (0, 2):
        result = _run(_cond_args(conditional_body) + ['--class', str(label), '--outdir', str(tmp_path / str(label))])
        assert result.exit_code == 0, result.output
        c = torch.zeros(1, 3)
        c[0, label] = 1
        with torch.no_grad():
            expected = G.mapping(z, c, truncation_psi=0.6)[:, :1].repeat(1, G.num_ws, 1).numpy()
        with np.load(tmp_path / str(label) / '0082_0043_latents.npz') as latents:
            assert np.allclose(latents['body_ws'], expected, atol=1e-6)
    result = _run(_net_args() + ['--face-box', '4,2,28,26', '--class', '0', '--outdir', str(tmp_path / 'u')])
    assert result.exit_code == 1 and 'Error: --body-class: this network is unconditional' in result.output


def test_cli_face_box_too_small_for_lpips_is_one_line(nets, tmp_path):
    from test_pti_networks import alexnet_file, lin_file
    lin, backbone = str(lin_file(tmp_path / 'alex.pth')), str(alexnet_file(tmp_path / 'alexnet.pth'))
    args = [a for a in _net_args() if a not in ('--lpips', 'none')]
    result = _run(args + ['--face-box', '4,2,28,26', '--lpips-weights', lin, '--lpips-backbone', backbone,
                          '--joint_steps', '1', '--outdir', str(tmp_path / 'out')])
    assert result.exit_code == 1 and 'Traceback' not in result.output
    assert '--face-box: the face box is 24x24 px, too small for the alex LPIPS loss (at least 31 px' in result.output
    assert not (tmp_path / 'out').exists()
