"""app.py's Drag tab through its page handler (no browser): points or joint moves in, DragGAN's result out,
the step limit, one-line mistakes, and dragging the inverted person."""

import json
import math

import numpy as np
import pytest

import app
from conftest import FIXTURES
from edit.drag import render
from stylegan_human.latent_files import load_latents
from stylegan_human.network_access import NetworkAccess
from stylegan_human.network_cache import NetworkCache
from test_app_invert import Page, Progress, _handler
from test_drag import FakePose

gradio = pytest.importorskip('gradio')
NETWORK = str(FIXTURES / 'networks' / 'sg2_rect64.pkl')


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    networks = app.Networks('cpu', access=NetworkAccess([str(FIXTURES / 'networks')]), cache=NetworkCache())
    return app.build_app(networks, workdir=str(tmp_path_factory.mktemp('work')),
                         drag_settings=app.DragSettings(max_steps=30))


def test_drag_tab_moves_the_handle_and_offers_w_and_points(demo):
    progress = Progress()
    start, end, summary, w_path, points_path = _handler(demo, 'on_drag')(
        NETWORK, 'Seed', 0, 0.8, '16,32 -> 16,27', 30, progress=progress, request=Page('alice'))
    record = json.loads(open(points_path).read())
    first, last = record['points'][0][0], record['points'][-1][0]
    assert first == [16, 32] and math.dist(last, (16, 27)) < math.dist(first, (16, 27)) - 2
    assert 'step(s); distances to the targets' in summary and start.shape == end.shape
    assert progress.reports and all(desc == 'Dragging' for _, desc in progress.reports)
    # The offered w+ renders what the run ended on (points drawn aside), as generate.py --projected-w would.
    G = app.legacy.load_network(NETWORK)['G_ema']
    ws = load_latents(w_path, G)
    assert ws.shape == (1, G.num_ws, G.w_dim)
    np.testing.assert_array_equal(render(G, ws)[:20], end[:20])   # rows far from the markers are the image


def test_joint_moves_use_the_pose_backend(monkeypatch, tmp_path):
    from edit import drag_handles
    backend = FakePose()
    monkeypatch.setattr(drag_handles, 'default_backend', lambda: backend)
    G = app.legacy.load_network(NETWORK)['G_ema'].eval()
    _, w = app.sampling.map_seeds(G, [0], 0.8)
    result, handles, targets, (w_path, points_path) = app.dragged(G, w, [], [], [drag_handles.parse_move(
        'right_wrist:+0,-4')], 5, str(tmp_path))
    assert handles == [(16, 40)] and targets == [(16, 36)] and backend.images == [(64, 32, 3)]
    assert result.steps <= 5 and w_path.endswith('drag_w.npz') and points_path.endswith('points.json')


@pytest.mark.parametrize('points, steps, needle', [
    ('16,32 -> 16,27', 31, 'Drag: at most 30 steps (got 31)'),
    ('16,32 -> 16,27', 0, 'Drag: steps must be at least 1'),
    ('', 5, 'Drag: give points as'),
    ('16,32 -> sixteen', 5, "Drag: 'sixteen' is not a pixel"),
    ('elbow_left:+1,2', 5, "Drag: unknown joint 'elbow_left'"),
    ('16,32 -> 16,90', 5, 'Drag: target'),
])
def test_mistakes_are_one_line(demo, points, steps, needle):
    with pytest.raises(gradio.Error, match=needle.replace('(', r'\(').replace(')', r'\)')):
        _handler(demo, 'on_drag')(NETWORK, 'Seed', 0, 0.8, points, steps, progress=Progress(), request=Page('a'))


def test_the_inverted_person_needs_an_inversion_first(demo):
    with pytest.raises(gradio.Error, match='Drag: no inverted photo yet'):
        _handler(demo, 'on_drag')(NETWORK, app.INVERTED_PERSON, 0, 0.8, '16,32 -> 16,27', 5, progress=Progress(),
                                  request=Page('nobody'))
