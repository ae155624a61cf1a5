"""stylemixing_video.py: frame count and size, layout, errors."""

import imageio.v2 as imageio
import numpy as np
import pytest
from click.testing import CliRunner

import legacy
import stylemixing_video
from stylegan_human import style_mixing
from stylegan_human.sampling import to_uint8


def test_frames_and_layout(fixtures_dir):
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')['G_ema']
    frames = list(style_mixing.mixing_frames(G, 3, [1, 2], [0, 1, 2], num_frames=5, fps=5, indent_range=4,
                                                  batch_size=2))
    assert len(frames) == 5 and frames[0].shape == (128, 28 * 3, 3)
    # The first frame's source cell (lower left, shifted left by the indent) is the source rendered directly.
    z = style_mixing.wandering_z(3, 5, G.z_dim, 5.0)
    import torch
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(z[:1]), None)
        source = to_uint8(G.synthesis(w, noise_mode='const', force_fp32=True))[0].numpy()
    np.testing.assert_array_equal(frames[0][64:, :24], source[:, 4:28])
    assert not np.array_equal(frames[0], frames[-1])


def test_cli_video(fixtures_dir, tmp_path):
    result = CliRunner().invoke(stylemixing_video.main, [
        '--network', str(fixtures_dir / 'networks' / 'sg3t_rect64.pkl'), '--row-seed', '7', '--col-seeds', '1,2,3',
        '--col-styles', '4-8', '--duration-sec', '1.2', '--fps', '5', '--indent-range', '6', '--outdir', str(tmp_path)])
    assert result.exit_code == 0, result.output
    reader = imageio.get_reader(tmp_path / '3x1-style-mixing_4_8.mp4')
    frames = [frame for frame in reader]   # list(reader) asks len(), which ffmpeg reports as inf.
    assert len(frames) == round(1.2 * 5) and frames[0].shape == (128, 26 * 4, 3)


@pytest.mark.parametrize('args, needle', [
    (['--fps', '0'], '--fps'),
    (['--col-styles', '0-20'], 'styles 0-9'),
])
def test_cli_errors(fixtures_dir, tmp_path, args, needle):
    out = tmp_path / 'o'
    result = CliRunner().invoke(stylemixing_video.main, [
        '--network', str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'), '--row-seed', '1', '--col-seeds', '2',
        '--outdir', str(out), *args])
    assert result.exit_code != 0 and needle in result.output and 'Traceback' not in result.output
    assert not out.exists()
