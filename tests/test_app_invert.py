"""app.py's Invert tab through its page handlers (no browser): a fixture photo in, run_pti.py's files out,
the Stop button, the limits, missing weight files, and the Edit tab on the inverted person."""

import os

import numpy as np
import PIL.Image
import pytest
import torch

import app
import legacy
from conftest import FIXTURES
from stylegan_human.latent_files import load_latent
from stylegan_human.network_access import NetworkAccess
from stylegan_human.network_cache import NetworkCache
from stylegan_human.request_limits import RequestLimits
from test_pti_stop import weight_files

gradio = pytest.importorskip('gradio')
pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')
NETWORK = str(FIXTURES / 'networks' / 'sg2_rect64.pkl')


class Page:
    """A browser tab, as the handlers see it: its session (what Gradio passes as gr.Request)."""

    def __init__(self, session):
        self.session_hash = session


class Progress:
    """Records what a handler reports; ``then`` runs on each report (e.g. pressing Stop)."""

    def __init__(self, then=None):
        self.reports = []
        self.then = then

    def __call__(self, value, desc=None, **kwargs):
        self.reports.append((value, desc))
        if self.then is not None:
            self.then(value, desc)


def _handler(demo, name):
    (fn,) = {f.fn for f in demo.fns.values() if getattr(f.fn, '__name__', '') == name}   # Stop serves two tabs
    return fn


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    return weight_files(tmp_path_factory.mktemp('weights'))


@pytest.fixture(scope='module')
def directions(tmp_path_factory):
    from test_edit_cli import _directions
    return _directions(legacy.load_network(NETWORK, verbose=False)['G_ema'], tmp_path_factory.mktemp('d') / 'dirs')


@pytest.fixture(scope='module')
def photo():
    return np.asarray(PIL.Image.open(FIXTURES / 'photos' / 'p_top_tee.png').convert('RGB'))


def _demo(workdir, weights, directions=None, **settings):
    networks = app.Networks('cpu', access=NetworkAccess([str(FIXTURES / 'networks')]), cache=NetworkCache())
    return app.build_app(networks, workdir=str(workdir), directions_root=str(directions) if directions else None,
                         inversion=app.InversionSettings(weights, **settings))


@pytest.fixture(scope='module')
def inverted(tmp_path_factory, weights, directions, photo):
    """One inversion through the page (3 projection and 3 tuning steps), and the app that made it."""
    pytest.importorskip('mediapipe')
    workdir = tmp_path_factory.mktemp('work')
    demo = _demo(workdir, weights, directions)
    progress = Progress()
    outputs = _handler(demo, 'on_invert')(NETWORK, photo, 'W projection', 3, 3, progress=progress,
                                          request=Page('alice'))
    return demo, workdir, outputs, progress


def test_invert_tab_shows_before_after_numbers_and_run_pti_files(inverted):
    demo, workdir, (target, before, after, summary, pivot_path, network_path), progress = inverted
    assert target.shape == before.shape == after.shape == (64, 32, 3)     # the aligned crop at the network's size
    assert 'PSNR' in summary and 'LPIPS' in summary and '3 projection steps, 3 tuning steps' in summary
    assert 'resized from 512x1024 to 32x64' in summary and not summary.startswith('Stopped')
    for path in (pivot_path, network_path):
        assert os.path.commonpath([path, str(workdir)]) == str(workdir)
    assert os.path.basename(pivot_path) == '0.pt'
    # The downloads: the pivot as edit.py --real_w_path / generate.py --projected-w read it, the tuned network
    # as legacy.load_network reads it; together they make the "after" image, the original network "before".
    G = legacy.load_network(NETWORK, verbose=False)['G_ema']
    tuned = legacy.load_network(network_path, verbose=False)['G_ema']
    w = load_latent(pivot_path, tuned)
    assert w.shape == (1, G.num_ws, G.w_dim)
    from pti.images import tensor_to_uint8
    with torch.no_grad():
        np.testing.assert_array_equal(tensor_to_uint8(tuned.synthesis(w, noise_mode='const', force_fp32=True)), after)
        np.testing.assert_array_equal(tensor_to_uint8(G.synthesis(w, noise_mode='const', force_fp32=True)), before)
    # Progress per step, in both phases.
    steps = [(value, desc) for value, desc in progress.reports if isinstance(value, tuple)]
    assert [v for v, d in steps if d.startswith('Projecting')] == [(0, 3), (1, 3), (2, 3)]
    assert [v for v, d in steps if d.startswith('Tuning')] == [(0, 3), (1, 3), (2, 3)]


def test_edit_tab_edits_the_inverted_person(inverted):
    demo, _, (_, _, after, *_), _ = inverted
    on_edit = _handler(demo, 'on_edit')
    unedited, same, latents_path = on_edit('ignored', 0, 0.8, 'upper_length', 'sefa', 0.0, app.INVERTED_PERSON,
                                           request=Page('alice'))
    np.testing.assert_array_equal(unedited, after)                  # the person as the Invert tab left them
    np.testing.assert_array_equal(same, after)                      # zero strength: no edit
    assert np.load(latents_path)['w'].shape == (1, 10, 128)
    _, edited, _ = on_edit('ignored', 0, 0.8, 'upper_length', 'sefa', 5.0, app.INVERTED_PERSON,
                           request=Page('alice'))
    assert np.abs(edited.astype(int) - after.astype(int)).max() > 10
    _, seed_edit, _ = on_edit(NETWORK, 0, 0.8, 'upper_length', 'sefa', 5.0, 'Seed', request=Page('alice'))
    assert not np.array_equal(seed_edit, edited)                    # the seed's person is another one
    with pytest.raises(gradio.Error, match='no inverted photo yet'):   # another tab sees nothing of it
        on_edit('ignored', 0, 0.8, 'upper_length', 'sefa', 5.0, app.INVERTED_PERSON, request=Page('bob'))


def test_stop_ends_the_tuning_at_the_next_step_and_shows_the_result_so_far(tmp_path, weights, photo):
    pytest.importorskip('mediapipe')
    demo = _demo(tmp_path, weights, max_tuning_steps=1000)
    on_stop = _handler(demo, 'on_stop')

    def press_stop(value, desc):
        if desc and desc.startswith('Projecting') and value == (1, 2):
            on_stop(request=Page('bob'))                            # another tab's Stop: not this job's
        if desc and desc.startswith('Tuning') and value == (1, 1000):
            on_stop(request=Page('alice'))
    outputs = _handler(demo, 'on_invert')(NETWORK, photo, 'W projection', 2, 1000, progress=Progress(press_stop),
                                          request=Page('alice'))
    target, before, after, summary, pivot_path, network_path = outputs
    assert summary.startswith('Stopped: ') and '2 projection steps, 1 tuning steps' in summary
    assert os.path.isfile(pivot_path) and os.path.isfile(network_path) and after.shape == (64, 32, 3)
    assert not np.array_equal(before, after)                        # one tuning step was made and is shown


def test_only_the_latest_inversion_is_kept(tmp_path):
    inversions = app.Inversions()
    first, second = tmp_path / 'first', tmp_path / 'second'
    for folder in (first, second):
        folder.mkdir()
        (folder / '0.pt').write_bytes(b'pivot')
    inversions.keep('alice', 'first result', str(first))
    assert inversions.latest('alice') == 'first result'
    inversions.keep('bob', 'second result', str(second))
    assert not first.exists() and second.is_dir()                   # one inversion's generator and files at a time
    assert inversions.latest('bob') == 'second result'
    with pytest.raises(app.AppError, match='no inverted photo yet'):
        inversions.latest('alice')
    assert not inversions.stop('alice')                             # nothing running
    flag = inversions.start('alice')
    assert not inversions.stop('bob') and not flag.is_set()         # only the page that started it stops it
    assert inversions.stop('alice') and flag.is_set()
    inversions.finish()
    assert not inversions.stop('alice')


def test_invert_requests_are_checked_before_any_work(tmp_path, weights, photo, monkeypatch):
    class NoNetworks:
        device = 'cpu'

        def get(self, name):
            raise AssertionError('a network was loaded before the request was checked')
    settings = app.InversionSettings(weights, max_projection_steps=20, max_tuning_steps=5)
    demo = app.build_app(NoNetworks(), workdir=str(tmp_path), inversion=settings,
                         limits=RequestLimits(photo_megapixels=0.5))
    on_invert = _handler(demo, 'on_invert')
    for args, message in [
        ((photo, 'W projection', 21, 5), r'Invert: at most 20 projection steps \(got 21\)'),
        ((photo, 'W projection', 20, 6), r'Invert: at most 5 tuning steps \(got 6\)'),
        ((photo, 'W projection', 0, 5), 'projection steps must be at least 1'),
        ((photo, 'W projection', 2.5, 5), 'projection steps must be a whole number'),
        ((None, 'W projection', 2, 5), 'Invert: upload a photo first'),
        ((np.zeros((1000, 1000, 3), np.uint8), 'W projection', 2, 5), 'at most 0.5 megapixels'),
        ((photo, 'e4e encoder (w+)', 2, 5), 'e4e encoder not found at|e4e encoder not given'),
        ((photo, 'anything', 2, 5), 'the pivot is one of'),
    ]:
        with pytest.raises(gradio.Error, match=message):
            on_invert('anything', *args, progress=Progress(), request=Page('alice'))
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'empty_cache'))
    demo = app.build_app(NoNetworks(), workdir=str(tmp_path))     # no weight files given, none downloaded
    with pytest.raises(gradio.Error) as info:
        _handler(demo, 'on_invert')('anything', photo, 'W projection', 2, 5, progress=Progress(),
                                    request=Page('alice'))
    message = str(info.value)
    assert '\n' not in message
    for name in ('lpips_alex_lin', 'alexnet_torchvision', 'vgg16_nvidia'):
        assert f'python -m pti.weight_files download {name}' in message
    assert not os.path.exists(tmp_path / 'inversions')


def test_a_square_network_or_a_bad_e4e_file_is_one_line(tmp_path, weights, photo):
    import dataclasses
    demo = _demo(tmp_path, weights)
    with pytest.raises(gradio.Error, match='this network makes 64x64 images; aligned photos are 1:2'):
        _handler(demo, 'on_invert')(str(FIXTURES / 'networks' / 'sg2_square64.pkl'), photo, 'W projection', 2, 1,
                                    progress=Progress(), request=Page('alice'))
    (tmp_path / 'e4e_w+.pt').write_text('not an encoder')
    demo = _demo(tmp_path, dataclasses.replace(weights, e4e=str(tmp_path / 'e4e_w+.pt')))
    pivots = [c for c in demo.config['components'] if c.get('props', {}).get('elem_id') == 'inv-pivot']
    assert [choice[0] for choice in pivots[0]['props']['choices']] == list(app.PIVOTS)   # offered: the file is there
    if not _has_mediapipe():
        return
    with pytest.raises(gradio.Error, match='e4e_w\\+.pt'):
        _handler(demo, 'on_invert')(NETWORK, photo, 'e4e encoder (w+)', 2, 1, progress=Progress(),
                                    request=Page('alice'))
    assert os.listdir(tmp_path / 'inversions') == []                # nothing half-made is left


def _has_mediapipe():
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return False
    return True


def test_inversion_options_come_from_the_command_line(monkeypatch, tmp_path, weights):
    seen = {}
    monkeypatch.setattr(app, 'launch', lambda demo, host, port, share=False, max_upload_mb=None: seen.update(demo=demo))
    from click.testing import CliRunner
    args = ['--network', NETWORK, '--device', 'cpu', '--max-projection-steps', '7', '--max-pti-steps', '4',
            '--vgg16', weights.vgg16, '--lpips-weights', weights.lpips_lin, '--lpips-backbone', weights.lpips_backbone,
            '--e4e', str(tmp_path / 'no_e4e.pt')]
    result = CliRunner().invoke(app.main, args)
    assert result.exit_code == 0, result.output
    assert 'Invert tab' not in result.output                        # every file is there
    with pytest.raises(gradio.Error, match=r'Invert: at most 4 tuning steps \(got 5\)'):
        _handler(seen['demo'], 'on_invert')(NETWORK, None, 'W projection', 7, 5, progress=Progress())
    pivots = [c for c in seen['demo'].config['components'] if c.get('props', {}).get('elem_id') == 'inv-pivot']
    assert [choice[0] for choice in pivots[0]['props']['choices']] == ['W projection']   # no e4e file

    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'empty_cache'))
    result = CliRunner().invoke(app.main, ['--network', NETWORK, '--device', 'cpu'])
    assert result.exit_code == 0, result.output                     # the rest of the app works without them
    (line,) = [line for line in result.output.splitlines() if line.startswith('Invert tab: ')]
    assert 'python -m pti.weight_files download lpips_alex_lin alexnet_torchvision vgg16_nvidia' in line
    shown = [c for c in seen['demo'].config['components'] if c.get('props', {}).get('elem_id') == 'inv-missing']
    assert 'download vgg16_nvidia' in shown[0]['props']['value']
    result = CliRunner().invoke(app.main, ['--max-pti-steps', '0'])
    assert result.exit_code != 0 and 'Error' in result.output and 'Traceback' not in result.output
