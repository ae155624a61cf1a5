"""run_pti.py end to end on a fixture network, with every weight file in its published layout (random values)."""

import json
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import legacy
from conftest import FIXTURES
from pti import images as pti_images
from test_pti_networks import _NvidiaLike, alexnet_file, e4e_file, lin_file

pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')
NETWORK = FIXTURES / 'networks' / 'sg2_rect64.pkl'


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_NvidiaLike()), str(folder / 'vgg16.pt'))
    e4e_file(folder / 'e4e_w+.pt', n_styles=10, w_dim=128)
    return ['--lpips-weights', str(lin_file(folder / 'alex.pth')),
            '--lpips-backbone', str(alexnet_file(folder / 'alexnet.pth')),
            '--vgg16', str(folder / 'vgg16.pt'), '--e4e', str(folder / 'e4e_w+.pt')]


@pytest.fixture(scope='module')
def G():
    return legacy.load_network(NETWORK, verbose=False)['G_ema'].eval()


def _render(G, seed, path):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    with torch.no_grad():
        image = G.synthesis(G.mapping(z, None, truncation_psi=0.7), noise_mode='const', force_fp32=True)
    PIL.Image.fromarray(pti_images.tensor_to_uint8(image)).save(path)


def _run(args):
    import run_pti
    return CliRunner().invoke(run_pti.main, ['--network', str(NETWORK), '--device', 'cpu'] + args)


def test_w_projection_and_tuning_end_to_end(G, weights, tmp_path):
    (tmp_path / 'in').mkdir()
    _render(G, 5, tmp_path / 'in' / 'person.png')
    out = tmp_path / 'out'
    result = _run(weights + ['--input', str(tmp_path / 'in'), '--outdir', str(out), '--inversion', 'w',
                             '--first-inv-steps', '60', '--pti-steps', '60'])
    assert result.exit_code == 0, result.output
    pivot = torch.load(out / 'embeddings' / 'test' / 'PTI' / 'person' / '0.pt', weights_only=True)
    assert pivot.shape == (1, G.num_ws, G.w_dim)
    metrics = json.loads((out / 'results' / 'test' / 'person' / 'metrics.json').read_text())
    print(f'sg2_rect64: PSNR after projection {metrics["psnr_after_inversion"]:.2f} dB, '
          f'after tuning {metrics["psnr_after_tuning"]:.2f} dB')
    assert metrics['psnr_after_tuning'] >= metrics['psnr_after_inversion'] + 3
    assert 0 < metrics['tuning_steps'] <= 60 and metrics['projection_steps'] == 60 and metrics['seconds'] > 0
    # The saved pivot and tuned generator reproduce the saved "after" image exactly.
    tuned = legacy.load_network(out / 'checkpoints' / 'model_person.pkl', verbose=False)['G_ema']
    with open(out / 'checkpoints' / 'model_person.pkl', 'rb') as f:
        assert sorted(pickle.load(f)) == ['G_ema']
    with torch.no_grad():
        again = pti_images.tensor_to_uint8(tuned.synthesis(pivot, noise_mode='const', force_fp32=True))
    after = np.asarray(PIL.Image.open(out / 'results' / 'test' / 'person' / 'after.png'))
    assert np.array_equal(again, after)
    assert PIL.Image.open(out / 'person.png').size == (3 * 32, 64)

    # edit.py takes the result as upstream's README shows (directions in upstream's layout).
    from test_edit_cli import _cli, _directions
    directions = _directions(tuned, tmp_path / 'directions')
    edited = CliRunner().invoke(_cli(), ['--network', str(out / 'checkpoints' / 'model_person.pkl'),
                                         '--attr_name', 'upper_length', '--real', 'True', '--real_w_path',
                                         str(out / 'embeddings' / 'test' / 'PTI' / 'person' / '0.pt'),
                                         '--real_img_path', str(tmp_path / 'in' / 'person.png'), '--directions',
                                         str(directions), '--gen_video', 'False', '--outdir', str(tmp_path / 'edit')])
    assert edited.exit_code == 0, edited.output
    strip = np.asarray(PIL.Image.open(tmp_path / 'edit' / 'upper_length_real.png'))
    assert np.array_equal(strip[:, 32:64], after)                   # the unedited panel is the tuned result


def test_e4e_pivot_multi_id_and_bad_photos(G, weights, tmp_path):
    src = tmp_path / 'in'
    src.mkdir()
    _render(G, 1, src / 'a.png')
    rgba = np.asarray(PIL.Image.open(src / 'a.png').convert('RGBA')).copy()
    PIL.Image.fromarray(rgba).resize((64, 128)).save(src / 'b_big_rgba.png')      # 2x size: resized with a note
    PIL.Image.open(src / 'a.png').convert('L').save(src / 'c_grey.png')
    PIL.Image.new('RGB', (50, 50)).save(src / 'd_square.png')                      # wrong shape: refused
    out = tmp_path / 'out'
    result = _run(weights + ['--input', str(src), '--outdir', str(out), '--inversion', 'w+', '--multi-id',
                             '--pti-steps', '3', '--run-name', 'fam'])
    assert result.exit_code == 1, result.output
    assert 'b_big_rgba: resized from 64x128 to 32x64' in result.output
    assert 'inverted 3 of 4 image(s); 1 failed' in result.output and 'd_square: is 50x50' in result.output
    assert (out / 'checkpoints' / 'model_fam_multi_id.pkl').is_file()
    for name in ('a', 'b_big_rgba', 'c_grey'):
        assert torch.load(out / 'embeddings' / 'fam' / 'PTI' / name / '0.pt', weights_only=True).shape == (1, 10, 128)
    assert not (out / 'embeddings' / 'fam' / 'PTI' / 'd_square').exists()


def test_aligned_fixture_photo_runs_end_to_end(weights, tmp_path):
    pytest.importorskip('mediapipe')
    from click.testing import CliRunner as Runner
    import alignment
    aligned = tmp_path / 'aligned'
    result = Runner().invoke(alignment.main, ['--image-folder', str(FIXTURES / 'photos' / 'p_top_tee.png'),
                                              '--output-folder', str(aligned)])
    assert result.exit_code == 0, result.output
    result = _run(weights + ['--input', str(aligned / 'p_top_tee.png'), '--outdir', str(tmp_path / 'out'),
                             '--inversion', 'w', '--first-inv-steps', '5', '--pti-steps', '5'])
    assert result.exit_code == 0, result.output
    assert 'resized from 512x1024 to 32x64' in result.output
    assert (tmp_path / 'out' / 'checkpoints' / 'model_p_top_tee.pkl').is_file()


@pytest.mark.parametrize('args, message', [
    (['--e4e', 'nowhere/e4e_w+.pt'], 'e4e encoder not found at nowhere/e4e_w+.pt'),
    (['--input', 'no/such/dir'], 'no such file or folder'),
    (['--network', str(FIXTURES / 'networks' / 'sg2_rect64_ref.json')], ''),
])
def test_user_errors_are_one_line(G, weights, tmp_path, args, message):
    _render(G, 1, tmp_path / 'a.png')
    result = _run(['--input', str(tmp_path / 'a.png'), '--outdir', str(tmp_path / 'out')] + weights + args)
    assert result.exit_code == 1
    assert 'Traceback' not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1 and message in errors[0], result.output


def test_network_without_g_ema(weights, tmp_path):
    torch.save({'D': torch.zeros(1)}, tmp_path / 'd_only.pkl')
    with open(tmp_path / 'd_only.pkl', 'wb') as f:
        pickle.dump({'D': None}, f)
    _render(legacy.load_network(NETWORK, verbose=False)['G_ema'], 1, tmp_path / 'a.png')
    import run_pti
    result = CliRunner().invoke(run_pti.main, ['--network', str(tmp_path / 'd_only.pkl'), '--input',
                                               str(tmp_path / 'a.png'), '--outdir', str(tmp_path / 'out')] + weights)
    assert result.exit_code == 1 and 'no G_ema' in result.output


@pytest.mark.parametrize('args, wanted, unwanted', [
    ([], ['lpips_alex_lin', 'alexnet_torchvision'], ['vgg16_nvidia']),
    (['--inversion', 'w'], ['lpips_alex_lin', 'alexnet_torchvision', 'vgg16_nvidia'], ['e4e']),
    (['--inversion', 'w', '--lpips-type', 'vgg'], ['lpips_vgg_lin', 'vgg16_torchvision', 'vgg16_nvidia'],
     ['alex']),
])
def test_every_missing_weight_file_is_named_at_once_before_any_work(G, tmp_path, monkeypatch, args, wanted,
                                                                    unwanted):
    import run_pti
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'empty_cache'))
    loaded = []
    monkeypatch.setattr(run_pti.legacy, 'load_network', lambda *a, **k: loaded.append(a))
    _render(G, 1, tmp_path / 'a.png')
    result = _run(['--input', str(tmp_path / 'a.png'), '--outdir', str(tmp_path / 'out'),
                   '--e4e', str(tmp_path / 'no_e4e.pt')] + args)
    assert result.exit_code == 1 and 'Traceback' not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1, result.output
    for name in wanted:
        assert f'python -m pti.weight_files download {name}' in errors[0], errors[0]
    if '--inversion' not in args:
        assert f'e4e encoder not found at {tmp_path / "no_e4e.pt"}' in errors[0]
    assert not any(word in errors[0] for word in unwanted), errors[0]
    assert f'python -m pti.weight_files download {" ".join(wanted)}' in errors[0]     # all at once
    assert not loaded and not (tmp_path / 'out').exists()


def test_a_file_given_for_one_weight_is_not_reported_missing(G, weights, tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'empty_cache'))
    _render(G, 1, tmp_path / 'a.png')
    lin = weights[weights.index('--lpips-weights') + 1]
    result = _run(['--input', str(tmp_path / 'a.png'), '--outdir', str(tmp_path / 'out'), '--inversion', 'w',
                   '--lpips-weights', lin, '--lpips-backbone', 'no/such/alexnet.pth'])
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert 'no/such/alexnet.pth: no such file' in errors[0] and '--lpips-backbone' in errors[0]
    assert 'download vgg16_nvidia' in errors[0] and 'lpips_alex_lin' not in errors[0]
