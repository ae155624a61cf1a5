"""drag.py and edit.drag: DragGAN's point dragging on the fixture networks (2:1 and square, StyleGAN2 and 3).

The fixture networks are tiny and random, so their features are weak: the moves here are
short (4-7 px on 64x32 / 64x64 images), the radii small (r1 3, r2 6 px) and the stop distance
1 px. Every drag below must bring its tracked handle within 1 px of a target 4-7 px away; the
controls show the same set-up fails when the motion term is turned off.
"""

import ctypes
import dataclasses
import json
import platform

import imageio.v2 as imageio
import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import drag as drag_cli
import generate
import legacy
from conftest import FIXTURES
from dnnlib.errors import InputError
from edit import drag_handles
from edit.drag import DragConfig, default_feature, drag, render
from edit.sweep import start_codes
from stylegan_human.sampling import map_seeds

NETWORKS = FIXTURES / 'networks'
CONFIG = DragConfig(steps=40, r1=3, r2=6, stop_distance=1)
dataclass_replace = dataclasses.replace


def _load(name):
    return legacy.load_network(NETWORKS / f'{name}.pkl', verbose=False)['G_ema'].eval()


@pytest.fixture(scope='module')
def rect():
    return _load('sg2_rect64')


def _w(G, seed=0):
    with torch.no_grad():
        return map_seeds(G, [seed], 0.7)[1]


def _distance(a, b):
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


@pytest.mark.parametrize('name, handle, target', [
    ('sg2_rect64', (16, 32), (16, 27)),      # 2:1 StyleGAN2
    ('sg2_rect64', (28, 58), (24, 54)),      # near the bottom-right corner of a 2:1 image
    ('sg2_square64', (50, 40), (45, 40)),    # x beyond a 2:1 image's width: square networks keep theirs
    ('sg3t_rect64', (16, 32), (16, 27)),     # StyleGAN3 (margins around the feature maps)
    ('sg3r_rect64', (16, 32), (16, 27)),
])
def test_the_tracked_handle_reaches_its_target(name, handle, target):
    G = _load(name)
    result = drag(G, _w(G), [handle], [target], CONFIG)
    start = _distance(handle, target)
    assert start >= 4
    assert result.reason == 'reached' and result.distances[0] <= 1.0, (result.points, result.distances)
    assert _distance(result.points[-1][0], target) <= 1.0
    assert result.points[0][0] == handle and len(result.points) == result.steps + 1
    assert np.abs(result.end_image.astype(int) - result.start_image).mean() > 0.5   # the image did change


def test_two_handles_at_once(rect):
    result = drag(rect, _w(rect), [(8, 20), (24, 44)], [(8, 15), (20, 48)], dataclass_replace(CONFIG, steps=60))
    assert result.reason == 'reached' and max(result.distances) <= 1.0


def test_controls_without_motion_the_handle_stays_or_moves_away(rect, monkeypatch):
    """The tracker alone does not walk to the target: with no update the handle stays put, and
    with the motion term pointing the other way it ends farther away than it started."""
    handle, target = (16, 32), (16, 27)
    still = drag(rect, _w(rect), [handle], [target], dataclass_replace(CONFIG, steps=10, lr=1e-9))
    assert still.reason == 'steps' and all(p == [handle] for p in still.points)
    import edit.drag as module
    original = module.motion_loss

    def reversed_loss(tap, fmap, points, targets, radius, done_within):   # pulls toward the mirrored target
        return original(tap, fmap, points, 2 * points - targets, radius, done_within)
    monkeypatch.setattr(module, 'motion_loss', reversed_loss)
    away = drag(rect, _w(rect), [handle], [target], CONFIG)
    assert away.reason == 'steps' and away.distances[0] > _distance(handle, target) + 3


def test_a_mask_holds_the_rest_of_the_image(rect):
    """Seed 1, a handle in the lower half moved up 5 px, only the lower half allowed to change.
    Without the mask term the upper half changes by up to 33 levels (mean 5.4 over its pixels and
    channels); with it (weight 10) by 10 (mean 1.1), held here to at most 16 and 2 on average, while
    the handle still reaches its target."""
    w = _w(rect, seed=1)
    handle, target = (16, 48), (16, 43)
    mask = np.zeros((64, 32), np.float32)
    mask[32:] = 1
    config = dataclass_replace(CONFIG, steps=60)
    free = drag(rect, w, [handle], [target], config)
    held = drag(rect, w, [handle], [target], config, mask=mask)
    free_change = np.abs(free.end_image.astype(int) - free.start_image)[:32]
    held_change = np.abs(held.end_image.astype(int) - held.start_image)[:32]
    print(f'upper half, max/mean change: free {free_change.max()}/{free_change.mean():.2f}, '
          f'masked {held_change.max()}/{held_change.mean():.2f}')
    assert free.reason == held.reason == 'reached'
    assert held_change.max() <= 16 and held_change.mean() <= 2
    assert free_change.max() > 24 and free_change.mean() > 4   # the bound above is the mask's doing


def test_should_stop_ends_the_run_early_and_keeps_what_was_done(rect):
    seen = []
    result = drag(rect, _w(rect), [(16, 32)], [(16, 10)], CONFIG, on_step=lambda s: seen.append(s.step),
                  should_stop=lambda: len(seen) >= 3)
    assert result.reason == 'stopped' and result.steps == 2 and seen == [0, 1, 2]
    assert result.w.shape == (1, rect.num_ws, rect.w_dim)


def test_bad_points_and_settings_are_one_line(rect):
    with pytest.raises(InputError, match=r'^handle 32,10 lies outside the 32x64 image \(x 0-31, y 0-63\)$'):
        drag(rect, _w(rect), [(32, 10)], [(16, 10)], CONFIG)
    with pytest.raises(InputError, match='target -1,10 lies outside'):
        drag(rect, _w(rect), [(16, 10)], [(-1, 10)], CONFIG)
    with pytest.raises(InputError, match="no synthesis block or layer 'b128'; this network has b4, b8"):
        drag(rect, _w(rect), [(16, 10)], [(16, 12)], dataclass_replace(CONFIG, feature='b128'))
    assert default_feature(rect) == 'b32' and default_feature(_load('sg3t_rect64')) == 'L7_26_51'


def _mallinfo_bytes():
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                                                  'fsmblks', 'uordblks', 'fordblks', 'keepcost')]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


@pytest.mark.skipif(platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc' or
                    not hasattr(ctypes.CDLL(None), 'mallinfo2'), reason="needs glibc's mallinfo2")
def test_memory_is_flat_in_the_number_of_steps(rect):
    """The heap in use (malloc's own count, exact) after 10 steps and after 70: keeping each step's
    frame would add 6 KB a step (400 KB), keeping its graph about 100 KB a step (7 MB)."""
    used = {}
    config = dataclass_replace(CONFIG, steps=70, lr=1e-6, stop_distance=0)   # runs every step
    drag(rect, _w(rect), [(16, 32)], [(16, 10)], config, on_step=lambda s: used.__setitem__(s.step, _mallinfo_bytes()))
    growth = used[70] - used[10]
    print(f'heap growth from step 10 to 70: {growth} bytes')
    assert growth < 128 * 1024


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_drag_on_cuda(rect):
    G = _load('sg2_rect64').cuda()
    result = drag(G, _w(G), [(16, 32)], [(16, 27)], CONFIG)
    assert result.reason == 'reached' and result.distances[0] <= 1.0 and result.w.device.type == 'cpu'


# ----------------------------------------------------------------------------
# drag.py


def _run(args):
    return CliRunner().invoke(drag_cli.main, [str(a) for a in args])


def test_cli_outputs_rerender_and_decode(tmp_path):
    out = tmp_path / 'drag'
    network = NETWORKS / 'sg2_rect64.pkl'
    result = _run(['--network', network, '--seed', 0, '--handle', '16,32', '--target', '16,27', '--r1', 3, '--r2', 6,
                   '--stop-distance', 1, '--steps', 40, '--fps', 10, '--outdir', out, '--device', 'cpu'])
    assert result.exit_code == 0, result.output
    assert 'every handle reached its target' in result.output
    record = json.loads((out / 'points.json').read_text())
    assert record['reason'] == 'reached' and record['handles'] == [[16, 32]] and record['feature'] == 'b32'
    assert _distance(record['points'][-1][0], (16, 27)) <= 1.0 and len(record['points']) == record['steps'] + 1
    # the MP4: one frame per step, the points drawn on (enlarged 2x for a 64-high network)
    with imageio.get_reader(out / 'drag.mp4') as reader:
        frames = [frame for frame in reader]
    assert len(frames) == len(record['points']) and frames[0].shape == (128, 64, 3)
    # the saved w+ renders the end image exactly, through generate.py --projected-w ...
    end = np.asarray(PIL.Image.open(out / 'end.png'))
    rendered = CliRunner().invoke(generate.main, ['--network', str(network), '--projected-w', str(out / 'drag_w.npz'),
                                                  '--outdir', str(tmp_path / 'proj')])
    assert rendered.exit_code == 0, rendered.output
    assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / 'proj' / 'proj00.png')), end)
    # ... and edit.py --real_w_path reads it as the same code
    G = _load('sg2_rect64')
    [(label, w)] = start_codes(G, [], 0.7, str(out / 'drag_w.npz'), torch.device('cpu'))
    assert torch.equal(w, torch.from_numpy(np.load(out / 'drag_w.npz')['w']))
    assert np.asarray(PIL.Image.open(out / 'before_after.png')).shape[0] == 256
    assert np.array_equal(np.asarray(PIL.Image.open(out / 'start.png')), render(G, _w(G)))


@pytest.mark.parametrize('args, message', [
    (['--handle', '40,10', '--target', '16,10'], 'Error: --handle: handle 40,10 lies outside the 32x64 image (x 0-31, y 0-63)'),
    (['--handle', '10,10', '--target', '10,64'], 'Error: --target: target 10,64 lies outside the 32x64 image'),
    (['--handle', '10,10'], 'Error: 1 --handle but 0 --target: give one target per handle'),
    (['--handle', '10'], "Error: Invalid value for '--handle': '10' is not a pixel like 120,300 (x,y)"),
    (['--move', 'wrist:+4,0'], "Error: Invalid value for '--move': unknown joint 'wrist'; joints: nose, neck,"),
    (['--handle', '10,10', '--target', '12,10', '--feature', 'b512'], "Error: --feature: no synthesis block or layer 'b512'"),
    ([], 'Error: nothing to drag'),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / 'drag'
    result = _run(['--network', NETWORKS / 'sg2_rect64.pkl', '--outdir', out] + args)
    assert result.exit_code == 1 and result.output.startswith(message), result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_cli_stylegan1_is_refused_in_one_line(tmp_path):
    result = _run(['--network', NETWORKS / 'sg1_square64.pkl', '--handle', '10,10', '--target', '12,10',
                   '--outdir', tmp_path / 'd'])
    assert result.exit_code == 1 and result.output.strip() == 'Error: dragging needs a StyleGAN2 or StyleGAN3 network'


class FakePose:
    """A pose backend that 'finds' a person with the right wrist at (16, 40) and nothing else."""

    def __init__(self, wrist_confidence=0.9):
        self.confidence = wrist_confidence
        self.images = []

    def analyse(self, rgb):
        from aligner.people import Analysis
        self.images.append(rgb.shape)
        keypoints = np.zeros((18, 3))
        keypoints[drag_handles.JOINT_NAMES.index('right_wrist')] = (16.2, 39.8, self.confidence)
        return Analysis(people=[keypoints], mask=np.ones(rgb.shape[:2], np.float32))

    def close(self):
        pass


def test_cli_moves_a_joint_found_by_the_pose_backend(tmp_path, monkeypatch):
    import aligner.backends
    backend = FakePose()
    monkeypatch.setattr(aligner.backends, 'make_backend', lambda **kwargs: backend)
    out = tmp_path / 'drag'
    result = _run(['--network', NETWORKS / 'sg2_rect64.pkl', '--move', 'right_wrist:+0,-5', '--r1', 3, '--r2', 6,
                   '--stop-distance', 1, '--steps', 40, '--mask-around', 10, '--mask-weight', 1, '--no-video',
                   '--outdir', out])
    assert result.exit_code == 0, result.output
    assert backend.images == [(64, 32, 3)]   # the joints were looked for on the start image
    record = json.loads((out / 'points.json').read_text())
    assert record['handles'] == [[16, 40]] and record['targets'] == [[16, 35]] and record['mask'] is True
    assert record['reason'] == 'reached' and not (out / 'drag.mp4').exists()


@pytest.mark.parametrize('move, confidence, message', [
    ('right_wrist:+30,0', 0.9, 'Error: --move: right_wrist at 16,40 moved by 30,0 lands at 46,40, outside the 32x64 image'),
    ('right_wrist:+2,0', 0.1, 'Error: --move: right_wrist not found on the image (confidence 0.10 < 0.3)'),
    ('left_knee:+2,0', 0.9, 'Error: --move: left_knee not found on the image (confidence 0.00 < 0.3)'),
])
def test_cli_joint_problems_are_one_line(tmp_path, monkeypatch, move, confidence, message):
    import aligner.backends
    monkeypatch.setattr(aligner.backends, 'make_backend', lambda **kwargs: FakePose(confidence))
    result = _run(['--network', NETWORKS / 'sg2_rect64.pkl', '--move', move, '--outdir', tmp_path / 'd'])
    assert result.exit_code == 1 and result.output.startswith(message), result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / 'd').exists()


def test_handles_parsing_and_regions():
    assert drag_handles.parse_point(' 12, 7.5') == (12.0, 7.5)
    assert drag_handles.parse_move('Right_Wrist:+40,-30') == drag_handles.Move('right_wrist', 40.0, -30.0)
    with pytest.raises(ValueError, match='not a joint move'):
        drag_handles.parse_move('right_wrist+40,-30')
    region = drag_handles.region_around([(2, 2)], [(2, 10)], 1.5, 16, 8)
    assert region[2:11, 2].all() and region[6, 3] == 1 and region[6, 5] == 0 and region[13, 2] == 0


def test_joints_found_on_a_real_photo():
    pytest.importorskip('mediapipe')
    from aligner import load_photo, make_backend
    backend = make_backend()
    try:
        rgb = load_photo(str(FIXTURES / 'photos' / 'p_center.png'))      # 450x1457, facing the camera
        joints = drag_handles.find_joints(rgb, backend)
        handles, targets = drag_handles.resolve_moves([drag_handles.Move('right_wrist', 40, -30)], joints)
    finally:
        backend.close()
    x, y, confidence = joints['right_wrist']
    assert confidence > 0.5 and x < rgb.shape[1] / 3 and rgb.shape[0] * 0.35 < y < rgb.shape[0] * 0.6   # her right: image left
    assert joints['left_wrist'][0] > rgb.shape[1] * 2 / 3 and joints['nose'][1] < joints['neck'][1]
    assert handles == [(round(x), round(y))] and targets == [(round(x + 40), round(y - 30))]


def test_cli_on_an_image_without_a_person(tmp_path):
    pytest.importorskip('mediapipe')
    result = _run(['--network', NETWORKS / 'sg2_rect64.pkl', '--move', 'nose:+0,4', '--outdir', tmp_path / 'd'])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == 'Error: --move: the pose backend found no person on the image, so no joint to move'
