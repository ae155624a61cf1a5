"""bg_white.py: people onto white from given masks (upstream's rule) or computed ones."""

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import bg_white
from aligner.composite import mask_to_alpha, on_white


def test_on_white_mixes_with_a_box_blurred_mask():
    rgb = np.full((9, 9, 3), (10, 100, 200), np.uint8)
    alpha = np.zeros((9, 9), np.float32)
    alpha[:, 4:] = 1
    out = on_white(rgb, alpha, blur=3)
    assert (out[:, :3] == 255).all() and (out[:, 5:] == (10, 100, 200)).all()
    # Column 3 sees one of three person columns, column 4 two of three: upstream's 3x3 box blur.
    expected3 = np.round(np.array([10, 100, 200]) / 3 + 255 * 2 / 3)
    expected4 = np.round(np.array([10, 100, 200]) * 2 / 3 + 255 / 3)
    assert (out[4, 3] == expected3).all() and (out[4, 4] == expected4).all()


def test_mask_formats():
    grey = np.array([[0, 128, 255]], np.uint8)
    assert np.allclose(mask_to_alpha(grey), [[0, 128 / 255, 1]])
    assert np.allclose(mask_to_alpha(np.stack([grey] * 3, axis=-1)), [[0, 128 / 255, 1]])
    parsing = np.array([[[0, 0, 0], [255, 0, 0], [0, 85, 85]]], np.uint8)   # labels in colour
    assert np.allclose(mask_to_alpha(parsing), [[0, 1, 1]])
    assert np.allclose(mask_to_alpha(np.array([[0, 65535]], np.uint16)), [[0, 1]])


def _folders(tmp_path):
    raw, seg = tmp_path / 'raw', tmp_path / 'seg'
    raw.mkdir(), seg.mkdir()
    photo = np.full((40, 20, 3), (200, 30, 30), np.uint8)
    mask = np.zeros((40, 20), np.uint8)
    mask[10:30, 5:15] = 255
    PIL.Image.fromarray(photo).save(raw / 'a.png')
    PIL.Image.fromarray(mask).save(seg / 'a.png')
    PIL.Image.fromarray(photo).save(raw / 'b.jpg', quality=100)
    PIL.Image.fromarray(mask).resize((10, 20), PIL.Image.NEAREST).save(seg / 'b.png')  # other suffix, half size
    PIL.Image.fromarray(photo).save(raw / 'c.png')                                      # no mask at all
    PIL.Image.fromarray(mask[:, :10]).save(seg / 'd.png')
    PIL.Image.fromarray(photo).save(raw / 'd.png')                                      # mask of another shape
    return raw, seg


def test_cli_with_masks_goes_on_past_missing_ones(tmp_path):
    raw, seg = _folders(tmp_path)
    out = tmp_path / 'out'
    result = CliRunner().invoke(bg_white.main, ['--raw_img_dir', str(raw), '--raw_seg_dir', str(seg),
                                                '--outdir', str(out)])
    assert result.exit_code == 1
    assert 'whitened 2 of 4 image(s); 2 failed' in result.output
    assert '  c.png: no mask for it' in result.output and '  d.png: mask ' in result.output
    assert sorted(p.name for p in out.iterdir()) == ['a.png', 'b.jpg']
    a = np.asarray(PIL.Image.open(out / 'a.png'))
    assert a.shape == (40, 20, 3)
    assert (a[0] == 255).all() and (a[20, 10] == (200, 30, 30)).all()
    b = np.asarray(PIL.Image.open(out / 'b.jpg')).astype(int)
    assert (b[0] > 245).all() and np.abs(b[20, 10] - (200, 30, 30)).max() < 12


def test_cli_computes_masks_when_none_are_given(fixtures_dir, tmp_path):
    pytest.importorskip('mediapipe')
    raw, out = tmp_path / 'raw', tmp_path / 'out'
    raw.mkdir()
    photo = np.asarray(PIL.Image.open(fixtures_dir / 'photos' / 'p_top_tee.png').convert('RGB')).copy()
    photo[photo.min(axis=2) > 235] = (40, 90, 40)     # a green background to remove
    PIL.Image.fromarray(photo).save(raw / 'tee.png')
    PIL.Image.new('RGB', (300, 200), (40, 90, 40)).save(raw / 'lawn.png')
    result = CliRunner().invoke(bg_white.main, ['--raw_img_dir', str(raw), '--outdir', str(out)])
    assert result.exit_code == 1 and '  lawn.png: no person found' in result.output
    white = np.asarray(PIL.Image.open(out / 'tee.png'))
    assert white.shape == photo.shape
    corners = np.concatenate([white[:20, :20], white[-20:, :20], white[:20, -20:]]).reshape(-1, 3)
    assert (corners > 245).all()
    assert np.abs(white[300, 150].astype(int) - photo[300, 150]).max() < 40   # the shirt stays


def test_cli_missing_folder_is_one_line(tmp_path):
    result = CliRunner().invoke(bg_white.main, ['--raw_img_dir', str(tmp_path / 'nope'), '--outdir', str(tmp_path)])
    assert result.exit_code == 1 and result.output.strip().count('\n') == 0 and 'no such folder' in result.output
