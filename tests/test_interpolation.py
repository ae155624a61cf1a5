"""interpolation.py: endpoints equal generate.py, frame counts, formats, errors."""

import imageio.v2 as imageio
import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import generate
import interpolation
import legacy


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg2_square64', 'sg3t_rect64', 'sg3r_rect64', 'sg1_square64', 'sg1_square128auto'])
@pytest.mark.parametrize('space, method', [('z', 'lerp'), ('z', 'slerp'), ('w', 'lerp')])
def test_endpoints_equal_generate(fixtures_dir, name, space, method):
    G = legacy.load_network(fixtures_dir / 'networks' / f'{name}.pkl')['G_ema']
    ws = interpolation.interpolate_latents(G, [3, 8, 5], num_interps=4, space=space, method=method)
    assert len(ws) == 2 * 4 + 1
    frames = list(interpolation.render(G, ws))
    own = {s.seed: s.image for s in generate.generate_images(G, [3, 8, 5], truncation_psi=0.8)}
    np.testing.assert_array_equal(frames[0], own[3])
    np.testing.assert_array_equal(frames[4], own[8])
    np.testing.assert_array_equal(frames[-1], own[5])
    assert not np.array_equal(frames[1], frames[0])


def test_loop_returns_to_start(fixtures_dir):
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')['G_ema']
    ws = interpolation.interpolate_latents(G, [1, 2], num_interps=3, loop=True)
    assert len(ws) == 7
    assert (ws[0] - ws[-1]).abs().max() == 0


@pytest.mark.parametrize('fmt', ['gif', 'mp4'])
def test_cli_writes_video_and_frames(fixtures_dir, tmp_path, fmt):
    result = CliRunner().invoke(interpolation.main, [
        '--network', str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'), '--seeds', '85,100', '--num_interps', '5',
        '--format', fmt, '--outdir', str(tmp_path), '--batch', '2'])
    assert result.exit_code == 0, result.output
    reader = imageio.get_reader(tmp_path / f'latent_space_traversal.{fmt}')
    frames = [np.asarray(f)[..., :3] for f in reader]
    assert len(frames) == 6 and frames[0].shape == (64, 96, 3)
    start = np.asarray(PIL.Image.open(tmp_path / 'seed0085.png'))
    middle = np.asarray(PIL.Image.open(tmp_path / 'img' / 'seed0000.png'))
    # Both formats are lossy (GIF palette, H.264): compare panels on average.
    # Layout: end | interpolated | start.
    def close(a, b):
        return np.abs(a.astype(int) - b.astype(int)).mean() < 8

    assert close(frames[0][:, 64:], start) and close(frames[0][:, 32:64], middle)
    assert not close(frames[0][:, :32], start)
    assert len(list((tmp_path / 'img').iterdir())) == 6


@pytest.mark.parametrize('args, needle', [
    (['--seeds', '85'], 'at least two seeds'),
    (['--seeds', '1,2', '--fps', '0'], '--fps'),
])
def test_cli_errors_leave_no_video(fixtures_dir, tmp_path, args, needle):
    out = tmp_path / 'o'
    result = CliRunner().invoke(interpolation.main, ['--network', str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'),
                                                      '--outdir', str(out), *args])
    assert result.exit_code != 0 and needle in result.output and 'Traceback' not in result.output
    assert not out.exists()


def test_unwritable_outdir(fixtures_dir, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    result = CliRunner().invoke(interpolation.main, ['--network', str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'),
                                                      '--seeds', '1,2', '--num_interps', '2',
                                                      '--outdir', str(blocker / 'sub')])
    assert result.exit_code != 0 and 'Traceback' not in result.output
    assert blocker.read_text() == 'not a folder'
