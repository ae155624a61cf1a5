"""projector.py: NVIDIA's options and files, and the round trip through generate.py --projected-w."""

import imageio.v2 as imageio
import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import generate
import legacy
import projector
from conftest import FIXTURES
from pti.nvidia_projector import crop_to_shape
from stylegan_human.sampling import generate_images
from test_pti_networks import _NvidiaLike

NETWORK = FIXTURES / 'networks' / 'sg2_rect64.pkl'


@pytest.fixture(scope='module')
def vgg16(tmp_path_factory):
    path = tmp_path_factory.mktemp('weights') / 'vgg16.pt'
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_NvidiaLike()), str(path))
    return path


def _project(vgg16, target, outdir, *extra):
    return CliRunner().invoke(projector.main, [
        '--network', str(NETWORK), '--target', str(target), '--outdir', str(outdir), '--vgg16', str(vgg16),
        '--device', 'cpu', *map(str, extra)])


def test_round_trip_through_projected_w(vgg16, tmp_path):
    G = legacy.load_network(NETWORK)['G_ema'].eval()
    target = generate_images(G, [11], truncation_psi=0.7)[0].image
    PIL.Image.fromarray(target).save(tmp_path / 'person.png')
    result = _project(vgg16, tmp_path / 'person.png', tmp_path / 'out', '--num-steps', 12, '--seed', 5)
    assert result.exit_code == 0, result.output
    out = tmp_path / 'out'
    w = np.load(out / 'projected_w.npz')['w']
    assert w.shape == (1, G.num_ws, G.w_dim) and w.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(out / 'target.png')), target)
    frames = imageio.mimread(out / 'proj.mp4', memtest=False)
    assert len(frames) == 12 and frames[0].shape == (64, 64, 3)     # target | projection, every step

    rendered = CliRunner().invoke(generate.main, ['--network', str(NETWORK), '--projected-w', str(out / 'projected_w.npz'),
                                                  '--outdir', str(tmp_path / 'again'), '--device', 'cpu'])
    assert rendered.exit_code == 0, rendered.output
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / 'again' / 'proj00.png')),
                                  np.asarray(PIL.Image.open(out / 'proj.png')))
    # The projection moved from the mean w towards the person: closer to it than the mean w's image.
    mean_w = G.mapping.w_avg[None, None].expand(1, G.num_ws, -1)
    with torch.no_grad():
        mean_image = (G.synthesis(mean_w, noise_mode='const', force_fp32=True) * 127.5 + 128).clamp(0, 255)
    mean_image = mean_image[0].permute(1, 2, 0).to(torch.uint8).numpy()
    projected = np.asarray(PIL.Image.open(out / 'proj.png'))
    error = lambda image: np.abs(image.astype(float) - target).mean()  # noqa: E731
    assert error(projected) < error(mean_image)


def test_the_target_is_center_cropped_to_the_networks_shape():
    photo = np.zeros((100, 100, 3), np.uint8)
    photo[:, 25:75] = 255                                # a white 1:2 band in the middle
    image, note = crop_to_shape(photo, (32, 64))
    assert image.shape == (64, 32, 3) and image.min() == 255
    assert note == '100x100 photo cropped to 50x100, resized to 32x64'
    image, note = crop_to_shape(np.zeros((64, 32, 3), np.uint8), (32, 64))
    assert note is None


def test_no_video_and_user_errors(vgg16, tmp_path):
    PIL.Image.fromarray(np.full((80, 40, 3), 128, np.uint8)).save(tmp_path / 'grey.png')
    result = _project(vgg16, tmp_path / 'grey.png', tmp_path / 'out', '--num-steps', 2, '--save-video', 'false')
    assert result.exit_code == 0, result.output
    assert 'resized to 32x64' in result.output
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['proj.png', 'projected_w.npz', 'target.png']

    (tmp_path / 'broken.png').write_bytes(b'not an image')
    result = _project(vgg16, tmp_path / 'broken.png', tmp_path / 'out2', '--num-steps', 2)
    assert result.exit_code == 1 and 'broken.png' in result.output and 'Traceback' not in result.output
    assert not (tmp_path / 'out2').exists()

    result = _project(tmp_path / 'no_vgg.pt', tmp_path / 'grey.png', tmp_path / 'out3')
    assert result.exit_code == 1 and 'no_vgg.pt' in result.output and not (tmp_path / 'out3').exists()
