"""Stopping PTI at a step and keeping the result so far (the web app's Stop button), through the library."""

import json

import numpy as np
import pytest
import torch

from pti.invert import Inverter, WeightFiles, invert_photo
from pti.projector import ProjectionConfig, project_w
from pti.tuning import TuningConfig, tune_generator
from test_pti_core import G, RandomFeatures, _target, stand_in_lpips  # noqa: F401 (G is a fixture)
from test_pti_networks import _NvidiaLike, alexnet_file, lin_file

pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')


def weight_files(folder):
    """WeightFiles for a W projection run: every file in its published layout, random values."""
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_NvidiaLike()), str(folder / 'vgg16.pt'))
    return WeightFiles(lpips_lin=str(lin_file(folder / 'alex.pth')),
                       lpips_backbone=str(alexnet_file(folder / 'alexnet.pth')), vgg16=str(folder / 'vgg16.pt'))


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    return weight_files(tmp_path_factory.mktemp('weights'))


def test_projection_stops_before_the_step_it_is_asked_about_and_keeps_its_w(G):  # noqa: F811
    _, target = _target(G)
    asked, reached = [], []
    pivot, losses = project_w(G, target, RandomFeatures(), ProjectionConfig(steps=10), seed=0,
                              stop=lambda done: asked.append(done) or done == 3,
                              on_step=lambda step, w: reached.append(w))
    assert asked == [0, 1, 2, 3] and len(reached) == 3 and len(losses) == 3
    assert torch.equal(pivot, reached[-1].repeat([1, G.num_ws, 1]))      # the w after the last step done
    assert bool((losses > 0).all())


def test_tuning_stopped_after_k_steps_equals_k_steps(G):  # noqa: F811
    w, target = _target(G)
    target = target.flip(3)
    stopped, stats = tune_generator(G, [w], [target], stand_in_lpips, TuningConfig(steps=50, lpips_threshold=-1),
                                    stop=lambda done: done == 2)
    assert stats == {'steps': 2, 'stopped': True}
    two, stats = tune_generator(G, [w], [target], stand_in_lpips, TuningConfig(steps=2, lpips_threshold=-1))
    assert stats == {'steps': 2, 'stopped': False}
    for a, b in zip(stopped.parameters(), two.parameters()):
        assert torch.equal(a, b)
    assert not any(torch.equal(a, b) for a, b in zip(stopped.synthesis.parameters(), G.synthesis.parameters())
                   if a.numel() > 1)
    untouched, stats = tune_generator(G, [w], [target], stand_in_lpips, TuningConfig(steps=5), stop=lambda done: True)
    assert stats['steps'] == 0 and all(torch.equal(a, b) for a, b in zip(untouched.parameters(), G.parameters()))


def test_invert_photo_reports_every_step_and_keeps_a_stopped_result(G, weights, tmp_path):  # noqa: F811
    from test_run_pti import _render
    _render(G, 5, tmp_path / 'person.png')
    inverter = Inverter(G, torch.device('cpu'), 'w', ProjectionConfig(steps=3), TuningConfig(steps=20), 0,
                        weights, str(tmp_path / 'out'), 'run', progress=False)
    told = []

    def on_step(phase, done, total):
        told.append((phase, done, total))
        return phase == 'tuning' and done == 2
    result = invert_photo(inverter, tmp_path / 'person.png', 'person', str(tmp_path / 'out' / 'checkpoints'),
                          on_step=on_step)
    assert told == [('projection', 0, 3), ('projection', 1, 3), ('projection', 2, 3),
                    ('tuning', 0, 20), ('tuning', 1, 20), ('tuning', 2, 20)]
    assert result.stopped and result.metrics['tuning_steps'] == 2 and result.metrics['projection_steps'] == 3
    saved = json.loads((tmp_path / 'out' / 'results' / 'run' / 'person' / 'metrics.json').read_text())
    assert saved == result.metrics and saved['stopped'] is True
    assert torch.equal(torch.load(result.pivot_path, weights_only=True), result.pivot)
    import legacy
    from pti import images as pti_images
    tuned = legacy.load_network(result.network_path, verbose=False)['G_ema']
    with torch.no_grad():
        again = pti_images.tensor_to_uint8(tuned.synthesis(result.pivot, noise_mode='const', force_fp32=True))
    np.testing.assert_array_equal(again, result.images['after'])
    assert result.images['target'].shape == result.images['before'].shape == (64, 32, 3)

    # Stopped in the projection: the w reached so far is the pivot, and no tuning step follows.
    result = invert_photo(inverter, tmp_path / 'person.png', 'early', str(tmp_path / 'out' / 'checkpoints'),
                          on_step=lambda phase, done, total: done == 1 or phase == 'tuning')
    assert result.stopped and result.metrics['projection_steps'] == 1 and result.metrics['tuning_steps'] == 0
    np.testing.assert_array_equal(result.images['before'], result.images['after'])


def test_run_pti_results_say_nothing_of_stopping(G, weights, tmp_path):  # noqa: F811
    from test_run_pti import _render
    _render(G, 5, tmp_path / 'person.png')
    inverter = Inverter(G, torch.device('cpu'), 'w', ProjectionConfig(steps=2), TuningConfig(steps=1), 0,
                        weights, str(tmp_path / 'out'), 'run', progress=False)
    result = invert_photo(inverter, tmp_path / 'person.png', 'person',
                          str(tmp_path / 'out' / 'checkpoints'))
    assert not result.stopped and 'stopped' not in result.metrics
    assert result.metrics['projection_steps'] == 2 and result.metrics['tuning_steps'] == 1
