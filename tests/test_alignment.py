"""Photo alignment: the crop rule on synthetic masks, and the whole pipeline on real photos.

The photo checks follow the issue: every fixture photo, as is, on a cluttered
background, rescaled, and padded off-centre -> 512x1024 output, the person fully
inside with top and bottom margins of 4-6% of the person's height, the body
centre within 2% of the image centre, white outside the mask.
"""

import json
import os

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from aligner import crop as crop_rule
from aligner.align import AlignmentError, align_photo, main_person, person_region, check_inside_frame

PHOTO_NAMES = ['p_bottom_floral', 'p_bottom_pink', 'p_center', 'p_top_orange', 'p_top_plaid', 'p_top_tee']


# ----------------------------------------------------------------------------
# The crop rule on synthetic data


def _keypoints(neck_x, hip_x, neck_y=30, hip_y=60):
    kp = np.zeros((18, 3))
    kp[1] = (neck_x, neck_y, 1)
    kp[8] = (hip_x - 5, hip_y, 1)
    kp[11] = (hip_x + 5, hip_y, 1)
    return kp


def test_tall_person_is_widened_symmetrically_about_the_body_centre():
    person = np.zeros((300, 200), bool)
    person[50:250, 60:110] = True                     # 200 high, 50 wide
    box = crop_rule.alignment_box(person, _keypoints(80, 90))
    assert (box.y0, box.height) == (40, 220)          # 5% of 200 = 10 above and below
    assert box.width == 110
    assert box.x0 + box.width / 2 == pytest.approx(85, abs=0.5)   # mean of neck x 80 and mid-hip x 90


def test_wide_person_is_heightened_and_stays_symmetric():
    person = np.zeros((200, 400), bool)
    person[50:150, 100:300] = True                    # 100 high, 200 wide (arms out)
    box = crop_rule.alignment_box(person, _keypoints(180, 180))
    # The far side from x=180 is the right edge (300 - 180 = 120): width 240, height 480.
    assert (box.width, box.height) == (240, 480)
    assert box.x0 == 60
    assert box.y0 + box.height / 2 == pytest.approx(100, abs=1)


def test_body_centre_falls_back_when_keypoints_are_missing():
    person = np.zeros((100, 100), bool)
    person[10:90, 20:40] = True
    kp = _keypoints(30, 30)
    kp[[8, 11], 2] = 0                                # hips not seen: neck only
    kp[1, 0] = 26
    assert crop_rule.body_center_x(kp, person) == 26
    kp[1, 2] = 0                                      # nothing seen: the mask's middle
    assert crop_rule.body_center_x(kp, person) == 30


def test_crop_pads_outside_the_photo_with_white_or_the_edge():
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    box = crop_rule.CropBox(x0=-2, y0=-1, width=4, height=8)
    white = crop_rule.crop(image, box, fill=255)
    assert white.shape == (8, 4, 3)
    assert (white[0] == 255).all() and (white[:, :2] == 255).all() and (white[5:] == 255).all()
    assert (white[1:5, 2:] == image[:, :2]).all()
    edge = crop_rule.crop(image, box, fill=None)
    assert (edge[1:5, 0] == image[:, 0]).all() and (edge[0, 2:] == image[0, :2]).all()


def test_main_person_rejects_a_second_full_person_but_not_a_neighbours_arm():
    main = _keypoints(100, 100, neck_y=100, hip_y=300)
    arm = np.zeros((18, 3))
    arm[[3, 4]] = [(10, 150, 0.9), (12, 200, 0.9)]     # an elbow and a wrist at the edge, no torso
    assert main_person([main, arm]) is not None
    second = _keypoints(300, 300, neck_y=110, hip_y=290)
    with pytest.raises(AlignmentError, match='2 people found'):
        main_person([main, second])
    with pytest.raises(AlignmentError, match='no person'):
        main_person([])
    with pytest.raises(AlignmentError, match='no person'):
        main_person([arm])


def test_person_region_picks_the_region_holding_the_keypoints():
    mask = np.zeros((100, 100), np.float32)
    mask[5:95, 10:30] = 1        # big neighbour
    mask[20:80, 60:80] = 1       # the person the keypoints belong to
    kp = _keypoints(70, 70, neck_y=30, hip_y=60)
    region = person_region(mask, kp)
    assert region[50, 70] and not region[50, 20]


@pytest.mark.parametrize('rows, kp_y, message', [
    ((0, 80), {}, 'top'),
    ((10, 99), {}, 'bottom'),
    ((10, 80), {0: -5.0}, 'top'),
    ((10, 80), {10: 120.0}, 'bottom'),
    ((0, 99), {}, 'top and bottom'),
])
def test_cut_off_person(rows, kp_y, message):
    person = np.zeros((100, 50), bool)
    person[rows[0]:rows[1] + 1, 10:30] = True
    kp = _keypoints(20, 20)
    for index, y in kp_y.items():
        kp[index] = (20, y, 0.2)
    with pytest.raises(AlignmentError, match=message):
        check_inside_frame(person, kp)


# ----------------------------------------------------------------------------
# Real photos through MediaPipe


@pytest.fixture(scope='module')
def backend():
    pytest.importorskip('mediapipe')
    from aligner import make_backend
    model = make_backend()
    yield model
    model.close()


def _photo(fixtures_dir, name):
    return np.asarray(PIL.Image.open(fixtures_dir / 'photos' / f'{name}.png').convert('RGB'))


def _cluttered(rgb, seed):
    """The photo's white background replaced by coloured blocks and noise."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    clutter = np.repeat(np.repeat(rng.integers(0, 256, (h // 40 + 1, w // 40 + 1, 3)), 40, 0), 40, 1)[:h, :w]
    clutter = np.clip(clutter + rng.normal(0, 20, (h, w, 3)), 0, 255)
    white = (rgb.min(axis=2) > 235)[..., None]
    return np.where(white, clutter, rgb).astype(np.uint8)


def _rescaled(rgb, factor):
    h, w = rgb.shape[:2]
    return np.asarray(PIL.Image.fromarray(rgb).resize((round(w * factor), round(h * factor)), PIL.Image.LANCZOS))


def _padded_off_centre(rgb):
    h, w = rgb.shape[:2]
    canvas = np.full((h + 300, w + 700, 3), 255, np.uint8)
    canvas[60:60 + h, 550:550 + w] = rgb
    return canvas


VARIANTS = {
    'as_is': lambda rgb: rgb,
    'cluttered': lambda rgb: _cluttered(rgb, seed=1),
    'smaller': lambda rgb: _rescaled(rgb, 0.55),
    'larger': lambda rgb: _rescaled(rgb, 1.6),
    'padded_off_centre': _padded_off_centre,
}


def _check_aligned(aligned, size=(512, 1024)):
    w, h = size
    assert aligned.image.shape == (h, w, 3) and aligned.image.dtype == np.uint8
    assert aligned.mask.shape == (h, w)
    rows = np.nonzero((aligned.mask > 127).any(axis=1))[0]
    cols = np.nonzero((aligned.mask > 127).any(axis=0))[0]
    person_h = rows.max() - rows.min() + 1
    top_margin, bottom_margin = rows.min() / person_h, (h - 1 - rows.max()) / person_h
    assert 0.04 <= top_margin <= 0.06, top_margin
    assert 0.04 <= bottom_margin <= 0.06, bottom_margin
    assert cols.min() > 0 and cols.max() < w - 1, 'person touches the side of the crop'
    kp = aligned.keypoints
    centre = (kp[1, 0] + (kp[8, 0] + kp[11, 0]) / 2) / 2
    assert abs(centre - w / 2) <= 0.02 * w, centre
    assert (aligned.image[aligned.mask == 0] == 255).all(), 'background is not white outside the mask'


@pytest.mark.parametrize('variant', list(VARIANTS))
@pytest.mark.parametrize('name', PHOTO_NAMES)
def test_fixture_photos_align(fixtures_dir, backend, name, variant):
    rgb = VARIANTS[variant](_photo(fixtures_dir, name))
    aligned = align_photo(rgb, backend)
    _check_aligned(aligned)


def test_aligned_person_is_found_again_in_the_middle(fixtures_dir, backend):
    """Re-detecting the output (an independent look) puts the body centre at the image centre."""
    aligned = align_photo(_padded_off_centre(_photo(fixtures_dir, 'p_center')), backend)
    again = backend.analyse(aligned.image)
    kp = main_person(again.people)
    centre = (kp[1, 0] + (kp[8, 0] + kp[11, 0]) / 2) / 2
    assert abs(centre - 256) <= 0.02 * 512
    assert kp[0, 1] > 0.04 * 1024 and max(kp[10, 1], kp[13, 1]) < 0.96 * 1024


def test_smaller_size_and_kept_background(fixtures_dir, backend):
    rgb = _cluttered(_photo(fixtures_dir, 'p_top_tee'), seed=2)
    aligned = align_photo(rgb, backend, size=(256, 512), keep_background=True)
    assert aligned.image.shape == (512, 256, 3)
    assert (aligned.image[aligned.mask == 0] != 255).any(), 'the background should have been kept'


def test_two_people_side_by_side_are_refused(fixtures_dir, backend):
    left, right = _photo(fixtures_dir, 'p_center'), _rescaled(_photo(fixtures_dir, 'p_top_tee'), 1457 / 1059)
    pair = np.full((1457, left.shape[1] + right.shape[1] + 40, 3), 255, np.uint8)
    pair[:, :left.shape[1]] = left
    pair[:right.shape[0], left.shape[1] + 40:] = right[:1457]
    with pytest.raises(AlignmentError, match='2 people'):
        align_photo(pair, backend)


def test_empty_scene_and_cut_off_person(fixtures_dir, backend):
    with pytest.raises(AlignmentError, match='no person'):
        align_photo(np.full((600, 400, 3), (60, 120, 40), np.uint8), backend)
    upper_body = _photo(fixtures_dir, 'p_center')[:700]
    with pytest.raises(AlignmentError, match='cut off at the bottom'):
        align_photo(upper_body, backend)


# ----------------------------------------------------------------------------
# The command line


def _make_folder(fixtures_dir, root):
    good = root / 'in'
    (good / 'sub').mkdir(parents=True)
    PIL.Image.open(fixtures_dir / 'photos' / 'p_center.png').convert('RGB').save(good / 'p_center.jpg', quality=95)
    PIL.Image.open(fixtures_dir / 'photos' / 'p_top_tee.png').save(good / 'sub' / 'p_top_tee.png')
    (good / 'notes.jpg').write_text('not a photo')
    (good / 'broken.jpg').write_bytes((good / 'p_center.jpg').read_bytes()[:3000])
    PIL.Image.new('RGB', (400, 300), (30, 80, 160)).save(good / 'sky.png')
    return good


def test_cli_goes_on_past_bad_photos_and_reports_them(fixtures_dir, tmp_path):
    pytest.importorskip('mediapipe')
    import alignment
    src, out = _make_folder(fixtures_dir, tmp_path), tmp_path / 'out'
    result = CliRunner().invoke(alignment.main, ['--image-folder', str(src), '--output-folder', str(out),
                                                 '--recursive', '--save-mask', '--save-keypoints', '--device', 'cpu'])
    assert result.exit_code == 1, result.output
    assert 'aligned 2 of 5 image(s); 3 failed' in result.output
    for name, reason in [('notes.jpg', 'not an image'), ('broken.jpg', 'truncated or damaged'),
                         ('sky.png', 'no person')]:
        assert any(line.startswith(f'  {name}: ') and reason in line for line in result.output.splitlines())
    written = sorted(str(p.relative_to(out)) for p in out.rglob('*'))
    assert written == ['p_center.png', 'p_center_keypoints.json', 'p_center_mask.png', 'sub',
                       'sub/p_top_tee.png', 'sub/p_top_tee_keypoints.json', 'sub/p_top_tee_mask.png']
    record = json.loads((out / 'p_center_keypoints.json').read_text())
    assert record['size'] == [512, 1024] and len(record['keypoints']) == 18
    assert record['keypoint_names'][1] == 'neck' and record['source'] == 'p_center.jpg'
    mask = np.asarray(PIL.Image.open(out / 'p_center_mask.png'))
    image = np.asarray(PIL.Image.open(out / 'p_center.png'))
    assert mask.shape == (1024, 512) and (image[mask == 0] == 255).all()


def test_cli_size_skip_existing_and_no_subfolders(fixtures_dir, tmp_path):
    pytest.importorskip('mediapipe')
    import alignment
    src, out = _make_folder(fixtures_dir, tmp_path), tmp_path / 'out'
    (src / 'notes.jpg').unlink(), (src / 'broken.jpg').unlink(), (src / 'sky.png').unlink()
    args = ['--image-folder', str(src), '--output-folder', str(out), '--size', '256x512']
    result = CliRunner().invoke(alignment.main, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ['p_center.png']          # no --recursive: sub/ left alone
    assert PIL.Image.open(out / 'p_center.png').size == (256, 512)
    before = os.path.getmtime(out / 'p_center.png')
    result = CliRunner().invoke(alignment.main, args + ['--skip-existing'])
    assert result.exit_code == 0 and os.path.getmtime(out / 'p_center.png') == before


@pytest.mark.parametrize('args, message', [
    (['--image-folder', 'no/such/folder'], 'no such folder'),
    (['--image-folder', '{empty}'], 'no images found'),
    (['--image-folder', '{empty}', '--size', '500x600'], 'not a 1:2 size'),
    (['--image-folder', '{one}', '--pose', 'openpose', '--openpose-weights', 'missing.pth'], 'missing.pth'),
])
def test_cli_user_errors_are_one_line(tmp_path, args, message):
    import alignment
    (tmp_path / 'empty').mkdir(), (tmp_path / 'one').mkdir()
    PIL.Image.new('RGB', (20, 40)).save(tmp_path / 'one' / 'photo.png')
    args = [a.replace('{empty}', str(tmp_path / 'empty')).replace('{one}', str(tmp_path / 'one')) for a in args]
    result = CliRunner().invoke(alignment.main, args + ['--output-folder', str(tmp_path / 'out')])
    assert result.exit_code != 0
    assert message in result.output
    assert 'Traceback' not in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_parse_size():
    import alignment
    assert alignment.parse_size('512x1024') == (512, 1024)
    assert alignment.parse_size('1024x512') == (512, 1024)
    assert alignment.parse_size('512') == (256, 512)
    with pytest.raises(ValueError):
        alignment.parse_size('512x512')


def test_openpose_keypoints_with_mediapipe_mask(fixtures_dir, backend, monkeypatch):
    """--pose openpose: OpenPose's people (missing parts at -1) drive the crop; the best-scored one is kept."""
    import openpose
    from aligner.backends import Backend
    from aligner.openpose_backend import OpenPoseEstimator
    rgb = _photo(fixtures_dir, 'p_center')
    seen = main_person(backend.analyse(rgb).people)
    as_openpose = seen.copy()
    as_openpose[[14, 15, 16, 17]] = (-1, -1, 0)                      # eyes and ears not found
    fragment = np.full((18, 3), -1.0)
    fragment[:, 2] = 0
    fragment[[3, 4]] = [(5, 400, 0.8), (8, 500, 0.7)]               # a neighbour's arm: kept out by the torso rule
    people = [openpose.Person(fragment, score=3.0, num_parts=2), openpose.Person(as_openpose, score=20.0, num_parts=14)]

    class FakeBody:
        def __init__(self, weights_path, device='cpu'):
            self.weights_path = weights_path

        def __call__(self, image):
            return people

    monkeypatch.setattr(openpose, 'Body', FakeBody)
    estimator = OpenPoseEstimator('body_pose_model.pth')
    found = estimator.find_people(rgb)
    assert np.allclose(found[0], np.where(as_openpose[:, 2:] > 0, as_openpose, 0))
    assert (found[0][14:] == 0).all() and (found[1][0] == 0).all()
    aligned = align_photo(rgb, Backend(estimator, backend.segmenter))
    _check_aligned(aligned)


@pytest.mark.parametrize('args, message', [
    (['--pose', 'openpose'], 'body_pose_model.pth'),
    (['--pose', 'openpose', '--openpose-weights', 'weights/missing.pth'], 'weights/missing.pth'),
    (['--segmenter', 'ppseg', '--ppseg-model', 'no_such_model'], ''),
])
def test_missing_backend_files_fail_before_the_output_folder_exists(tmp_path, monkeypatch, args, message):
    """A backend that cannot start (weights or model missing) is one line, and nothing is created."""
    import alignment
    monkeypatch.chdir(tmp_path)                      # the default weights path is relative: surely absent here
    (tmp_path / 'photos').mkdir()
    PIL.Image.new('RGB', (20, 40)).save(tmp_path / 'photos' / 'photo.png')
    out = tmp_path / 'out' / 'nested'
    result = CliRunner().invoke(alignment.main, ['--image-folder', 'photos', '--output-folder', str(out)] + args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('Error: ') and message in lines[0], result.output
    if '--pose' in args:
        assert 'download' in lines[0]                # and says how to get them
    assert not (tmp_path / 'out').exists()
