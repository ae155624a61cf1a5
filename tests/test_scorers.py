"""Body scorers (edit.scorers) on the real-person photos, and pose directions end to end with edit.compute.

The photos (tests/data/photos) show six people standing, arms hanging: the floral dress and
the pink, plaid outfits have long sleeves, the tee and the orange top short ones, the centre
photo a crop top; the centre skirt shows bare legs, the orange culottes a little shin, the
others none. MediaPipe (the alignment's default backend) measures them.
"""

import json
import math
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import legacy
from aligner.people import COCO18_NAMES, Analysis
from conftest import FIXTURES
from edit import compute, scorers
from test_edit_cli import _cli

PHOTOS = sorted((FIXTURES / 'photos').glob('*.png'))
NETWORK = FIXTURES / 'networks' / 'sg2_rect64.pkl'

# name -> (low, high) for every photo, arms hanging and standing
COMMON_RANGES = {'arm_raise': (0, 25), 'right_arm_raise': (0, 25), 'left_arm_raise': (0, 25), 'leg_spread': (0, 15),
                 'stance_width': (0.1, 0.7), 'lean': (-8, 8), 'frame_fill': (0.35, 0.65)}
ARM_SKIN = {'p_center': (0.4, 1), 'p_top_tee': (0.2, 0.5), 'p_top_orange': (0.2, 0.5),
            'p_bottom_floral': (0, 0.15), 'p_bottom_pink': (0, 0.15), 'p_top_plaid': (0, 0.2)}
LEG_SKIN = {'p_center': (0.3, 1), 'p_top_orange': (0.03, 0.25), 'p_top_tee': (0, 0.05), 'p_bottom_pink': (0, 0.08),
            'p_top_plaid': (0, 0.05)}   # the floral dress hides the legs: NaN or low


@pytest.fixture(scope='module')
def measured():
    pytest.importorskip('mediapipe')   # the default backend; Python 3.13+ has no wheel of the pinned version
    from aligner import load_photo, make_backend
    backend = make_backend()
    values = {}
    try:
        for path in PHOTOS:
            rgb = load_photo(str(path))
            values[path.stem] = scorers.measure_all(rgb, backend)
            values[path.stem + '_mirrored'] = scorers.measure_all(rgb[:, ::-1], backend)
    finally:
        backend.close()
    return values


def test_values_on_the_photos_lie_in_their_ranges(measured):
    for photo in (p.stem for p in PHOTOS):
        values = measured[photo]
        print(photo, {k: round(v, 3) for k, v in values.items()})
        for name, (low, high) in COMMON_RANGES.items():
            if photo == 'p_bottom_floral' and name in ('leg_spread', 'stance_width'):
                continue   # legs hidden by the dress; the backend may or may not place the ankles
            assert low <= values[name] <= high, (photo, name, values[name])
        low, high = ARM_SKIN[photo]
        assert low <= values['arm_skin'] <= high, (photo, values['arm_skin'])
        if photo in LEG_SKIN:
            low, high = LEG_SKIN[photo]
            assert low <= values['leg_skin'] <= high, (photo, values['leg_skin'])
        else:
            assert math.isnan(values['leg_skin']) or values['leg_skin'] < 0.15
    # the order that matters for a direction: bare arms > short sleeves > long sleeves
    assert measured['p_center']['arm_skin'] > measured['p_top_tee']['arm_skin'] > measured['p_top_plaid']['arm_skin']
    assert measured['p_center']['leg_skin'] > measured['p_top_orange']['leg_skin'] > measured['p_top_plaid']['leg_skin']


def test_a_mirrored_photo_mirrors_left_and_right(measured):
    for photo in (p.stem for p in PHOTOS):
        plain, mirrored = measured[photo], measured[photo + '_mirrored']
        assert abs(mirrored['right_arm_raise'] - plain['left_arm_raise']) < 4, photo
        assert abs(mirrored['left_arm_raise'] - plain['right_arm_raise']) < 4, photo
        if abs(plain['lean']) > 2:
            assert np.sign(mirrored['lean']) == -np.sign(plain['lean']), photo
            assert abs(mirrored['lean'] + plain['lean']) < 2.5, photo
        for name, tolerance in (('arm_raise', 3), ('frame_fill', 0.04), ('arm_skin', 0.07)):   # no side to them
            assert abs(mirrored[name] - plain[name]) < tolerance, (photo, name)
    # the photos whose arms differ enough for a swap to show: the floral dress's right arm is out
    for photo in ('p_bottom_floral', 'p_bottom_pink'):
        plain = measured[photo]
        assert plain['right_arm_raise'] - plain['left_arm_raise'] > 6
        assert measured[photo + '_mirrored']['left_arm_raise'] - measured[photo + '_mirrored']['right_arm_raise'] > 6


def _analysis(points, mask_shape=(100, 60), mask=None):
    keypoints = np.zeros((18, 3))
    for name, (x, y) in points.items():
        keypoints[COCO18_NAMES.index(name)] = (x, y, 1.0)
    return Analysis(people=[keypoints], mask=np.ones(mask_shape, np.float32) if mask is None else mask)


def test_the_geometry_on_made_up_people():
    t_pose = _analysis({'right_shoulder': (20, 20), 'right_wrist': (0, 20), 'left_shoulder': (40, 20),
                        'left_wrist': (40, 0), 'neck': (30, 20), 'right_hip': (25, 50), 'left_hip': (35, 50),
                        'right_ankle': (15, 90), 'left_ankle': (45, 90)})
    assert scorers.arm_raise(t_pose, 'right') == pytest.approx(90)
    assert scorers.arm_raise(t_pose, 'left') == pytest.approx(180)
    assert scorers.SCORERS['arm_raise'].measure(t_pose, None) == pytest.approx(135)
    spread = math.degrees(2 * math.atan2(10, 40))
    assert scorers.leg_spread(t_pose) == pytest.approx(spread)
    assert scorers.stance_width(t_pose) == pytest.approx(30 / 30)
    assert scorers.lean(t_pose) == pytest.approx(0)
    leaning = _analysis({'neck': (40, 20), 'right_hip': (25, 50), 'left_hip': (35, 50)})
    assert scorers.lean(leaning) == pytest.approx(math.degrees(math.atan2(10, 30)))
    nobody = Analysis(people=[], mask=np.zeros((10, 10), np.float32))
    assert all(math.isnan(s.measure(nobody, np.zeros((10, 10, 3), np.uint8))) for s in scorers.SCORERS.values())
    no_wrist = _analysis({'right_shoulder': (20, 20)})
    assert math.isnan(scorers.arm_raise(no_wrist, 'right'))
    half = np.zeros((100, 60), np.float32)
    half[:, :30] = 1
    assert scorers.frame_fill(_analysis({}, mask=half)) == pytest.approx(0.5)


def test_limb_skin_compares_the_limbs_with_the_face():
    skin, cloth = (205, 150, 125), (40, 60, 170)
    rgb = np.full((100, 60, 3), 255, np.uint8)
    rgb[5:20, 20:40] = skin                      # the face around the nose
    rgb[20:60, 5:15] = cloth                     # the right arm: a sleeve over its upper half
    rgb[40:60, 5:15] = skin
    rgb[20:60, 45:55] = skin                     # the left arm: bare
    mask = np.zeros((100, 60), np.float32)
    mask[5:20, 20:40] = mask[20:60, 5:15] = mask[20:60, 45:55] = 1
    person = _analysis({'nose': (30, 12), 'right_shoulder': (10, 20), 'right_elbow': (10, 40),
                        'right_wrist': (10, 59), 'left_shoulder': (50, 20), 'left_elbow': (50, 40),
                        'left_wrist': (50, 59)}, mask=mask)
    both = scorers.limb_skin(person, rgb, scorers._ARMS)
    assert 0.7 < both < 0.8                      # 3 of the 4 half-arms
    assert scorers.limb_skin(person, rgb, {'left': scorers._ARMS['left']}) == pytest.approx(1)
    assert 0.45 < scorers.limb_skin(person, rgb, {'right': scorers._ARMS['right']}) < 0.55


class ImageDrivenPose:
    """A stand-in pose backend for the fixture network's abstract images: the person's arms rise
    with the image's mean red (0 -> hanging, 255 -> straight up); the least green (about 1 in 20) hold nobody."""

    def analyse(self, rgb):
        if rgb[..., 1].mean() < 140:
            return Analysis(people=[], mask=np.zeros(rgb.shape[:2], np.float32))
        angle = math.radians(float(rgb[..., 0].mean()) / 255 * 180)
        points = {'right_shoulder': (10, 10), 'left_shoulder': (20, 10)}
        points['right_wrist'] = (10 - 8 * math.sin(angle), 10 + 8 * math.cos(angle))
        points['left_wrist'] = (20 + 8 * math.sin(angle), 10 + 8 * math.cos(angle))
        return _analysis(points, mask_shape=rgb.shape[:2])

    def close(self):
        pass


def _scores(G, ws, scorer):
    with torch.no_grad():
        images = (G.synthesis(ws, noise_mode='const', force_fp32=True).permute(0, 2, 3, 1) * 127.5 + 128)
    return scorer(images.clamp(0, 255).to(torch.uint8).numpy())


def test_pose_direction_end_to_end(tmp_path, monkeypatch):
    import aligner.backends
    monkeypatch.setattr(aligner.backends, 'make_backend', lambda *args, **kwargs: ImageDrivenPose())
    out = tmp_path / 'dirs'
    result = CliRunner().invoke(compute.cli, ['interfacegan', '--network', str(NETWORK), '--name', 'arms_up',
                                              '--scorer', 'arm_raise', '--seeds', '0-199', '--chosen-ratio', '0.2',
                                              '--outdir', str(out)])
    assert result.exit_code == 0, result.output
    # the layout edit.py reads: S-space vectors per layer, the W boundary, the defaults
    G = legacy.load_network(NETWORK, verbose=False)['G_ema'].eval()
    vectors = sorted((out / 'ss' / 'arms_up').glob('style_vect_mean_*.pkl'))
    assert len(vectors) > 0 and pickle.loads(vectors[0].read_bytes()).ndim == 1
    assert json.loads((out / 'edit_config.json').read_text())['interface_gan']['arms_up'] == [1.0]
    # the direction raises the arms (as the stand-in backend measures them) on people it never saw
    normal = torch.from_numpy(np.load(out / 'ss' / 'arms_up' / 'boundary_w.npy')).float()
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(np.random.RandomState(1234).randn(8, G.z_dim)).float(), None, truncation_psi=0.7)
    scorer = scorers.make_scorer('arm_raise', ImageDrivenPose())
    up, down = _scores(G, ws + 3 * normal, scorer), _scores(G, ws - 3 * normal, scorer)
    print('arm_raise up', np.round(up, 1), 'down', np.round(down, 1))
    assert np.nanmean(up) > np.nanmean(down) + 10
    # and edit.py takes the new attribute
    edited = CliRunner().invoke(_cli(), ['--network', str(NETWORK), '--attr_name', 'arms_up', '--directions', str(out),
                                         '--method', 'interfacegan', '--seeds', '1', '--gen_video', 'False',
                                         '--outdir', str(tmp_path / 'e')])
    assert edited.exit_code == 0, edited.output
    assert (tmp_path / 'e' / 'arms_up_00001.png').is_file()


def test_samples_without_a_person_are_left_out(monkeypatch):
    import aligner.backends
    monkeypatch.setattr(aligner.backends, 'make_backend', lambda *args, **kwargs: ImageDrivenPose())
    G = legacy.load_network(NETWORK, verbose=False)['G_ema'].eval()
    seeds = list(range(60))
    ws, labels = compute.labelled_samples(G, None, 'arm_raise', seeds)
    everything, images = compute.sample(G, seeds)
    raw = scorers.make_scorer('arm_raise', ImageDrivenPose())(np.concatenate(list(images())))
    kept = np.isfinite(raw)
    assert 0 < (~kept).sum() < 60 and len(labels) == kept.sum() and np.isfinite(labels).all()
    assert torch.equal(ws, everything[torch.from_numpy(kept)]) and np.array_equal(labels, raw[kept])


def test_scorer_names_in_help_and_unknown_names():
    help_text = CliRunner().invoke(compute.cli, ['interfacegan', '--help']).output
    assert all(name in help_text for name in scorers.SCORERS)
    result = CliRunner().invoke(compute.cli, ['interfacegan', '--network', str(NETWORK), '--name', 'x', '--scorer',
                                              'arm_rise'])
    assert result.exit_code == 1 and result.output.startswith('Error: --scorer arm_rise: unknown scorer; body scorers: arm_raise')
    with pytest.raises(ValueError, match='unknown scorer'):
        scorers.make_scorer('arm_rise')


def test_the_measuring_command(tmp_path):
    pytest.importorskip('mediapipe')
    photos = [str(FIXTURES / 'photos' / name) for name in ('p_center.png', 'p_top_plaid.png')]
    result = CliRunner().invoke(scorers.cli, photos + ['--figure', str(tmp_path / 'fig.png')])
    assert result.exit_code == 0, result.output
    header, *rows, last = result.output.strip().splitlines()
    assert header.split('\t') == ['photo'] + list(scorers.SCORERS) and len(rows) == 2
    arm_skin = [float(row.split('\t')[1 + list(scorers.SCORERS).index('arm_skin')]) for row in rows]
    assert arm_skin[0] > 0.4 > 0.2 > arm_skin[1]
    import PIL.Image
    assert PIL.Image.open(tmp_path / 'fig.png').size[1] == 240 and last == f'wrote {tmp_path / "fig.png"}'
    (tmp_path / 'bad.png').write_bytes(b'not a photo')
    result = CliRunner().invoke(scorers.cli, [str(tmp_path / 'bad.png'), photos[0]])
    assert result.exit_code == 1 and len(result.stdout.strip().splitlines()) == 2      # the good photo measured
    assert result.stderr.startswith(f'Error: {tmp_path / "bad.png"}') and len(result.stderr.strip().splitlines()) == 1
