"""gen_video.py: StyleGAN3's options, a seamless loop through the keyframes, every network kind."""

import imageio.v2 as imageio
import numpy as np
import pytest
from click.testing import CliRunner

import gen_video
import legacy
from conftest import FIXTURES
from stylegan_human.loop_video import keyframe_seeds, layout_grid, loop_frames
from stylegan_human.sampling import generate_images


def _net(name):
    return legacy.load_network(FIXTURES / 'networks' / f'{name}.pkl')['G_ema'].eval()


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg3r_rect64', 'sg1_square64'])
def test_keyframes_show_their_seeds_and_the_loop_closes(name):
    G = _net(name)
    grid = keyframe_seeds([4, 8, 15, 16], (2, 1))            # 2x1 grid: two keyframes per cell
    assert grid.tolist() == [[[4, 8], [15, 16]]]
    frames = list(loop_frames(G, grid, w_frames=3, truncation_psi=0.7))
    assert len(frames) == 6
    people = {s.seed: s.image for s in generate_images(G, [4, 8, 15, 16], truncation_psi=0.7)}
    for k in range(2):
        expected = layout_grid(np.stack([people[grid[0, 0, k]], people[grid[0, 1, k]]]), 2, 1)
        assert np.abs(frames[3 * k].astype(int) - expected).max() <= 1      # a keyframe is its seed's image
    assert not np.array_equal(frames[1], frames[0])                         # and the frames between move


def test_seed_order_options():
    assert keyframe_seeds([1, 2], (1, 1), num_keyframes=5).tolist() == [[[1, 2, 1, 2, 1]]]
    shuffled = keyframe_seeds(list(range(10)), (1, 1), shuffle_seed=3).reshape(-1)
    expected = np.arange(10)
    np.random.RandomState(3).shuffle(expected)
    assert shuffled.tolist() == expected.tolist() and sorted(shuffled) == list(range(10))


def test_cli_streams_an_mp4(tmp_path):
    result = CliRunner().invoke(gen_video.main, [
        '--network', str(FIXTURES / 'networks' / 'sg2_rect64.pkl'), '--seeds', '0-3', '--grid', '2x2',
        '--w-frames', '4', '--trunc', '0.8', '--output', str(tmp_path / 'walk.mp4'), '--device', 'cpu'])
    assert result.exit_code == 0, result.output
    frames = imageio.mimread(tmp_path / 'walk.mp4', memtest=False)
    assert len(frames) == 4 and frames[0].shape == (128, 64, 3)     # one keyframe per cell, 2x2 cells of 64x32


@pytest.mark.parametrize('args, needle', [
    (['--seeds', '0-2', '--grid', '2x1'], '--seeds: 3 seeds do not fill a 2x1 grid evenly'),
    (['--seeds', '0', '--grid', '2by1'], '--grid'),
    (['--seeds', '0', '--output', 'walk.avi'], '--output'),
    (['--seeds', '0', '--class', '1'], '--class: this network is unconditional'),
])
def test_user_errors_are_one_line_and_write_nothing(tmp_path, args, needle):
    args = ['--network', str(FIXTURES / 'networks' / 'sg2_rect64.pkl'), '--output', str(tmp_path / 'walk.mp4'),
            '--device', 'cpu'] + args
    result = CliRunner().invoke(gen_video.main, args)
    assert result.exit_code != 0 and needle in result.output, result.output
    assert 'Traceback' not in result.output and list(tmp_path.iterdir()) == []
