"""app.py end to end in a real headless Chromium (Debian's package, driven by Playwright).

Skipped, with the reason shown, where Gradio, Playwright or /usr/bin/chromium is missing.
"""

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import PIL.Image
import pytest
import torch

import generate
import interpolation
import legacy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'

gradio = pytest.importorskip('gradio', reason='the web app needs Gradio (pip install -e ".[app]")')
playwright_api = pytest.importorskip('playwright.sync_api', reason='needs Playwright (pip install playwright)')
pytestmark = [pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason='needs Debian\'s chromium package (apt-get install chromium)'),
              pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')]   # the test weight files


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def served_dir(tmp_path_factory):
    """The folder the app serves (--network-dir)."""
    return tmp_path_factory.mktemp('served')


@pytest.fixture(scope='module')
def inversion_args(tmp_path_factory):
    """The Invert tab's weight files (published layouts, random values) and editing directions for the network."""
    from conftest import FIXTURES
    from test_edit_cli import _directions
    from test_pti_stop import weight_files
    folder = tmp_path_factory.mktemp('inversion')
    weights = weight_files(folder)
    G = legacy.load_network(FIXTURES / 'networks' / 'sg2_rect64.pkl', verbose=False)['G_ema']
    directions = _directions(G, folder / 'directions', attr='bottom_length')   # the Edit tab's first attribute
    return ['--vgg16', weights.vgg16, '--lpips-weights', weights.lpips_lin, '--lpips-backbone', weights.lpips_backbone,
            '--directions', str(directions), '--max-pti-steps', '1000']


@pytest.fixture(scope='module')
def app_url(served_dir, inversion_args, tmp_path_factory):
    from conftest import FIXTURES
    port = _free_port()
    network = str(FIXTURES / 'networks' / 'sg2_rect64.pkl')
    log_path = tmp_path_factory.mktemp('log') / 'app.log'
    # The server computes with as many threads as this process, whose images the tests compare
    # pixel for pixel: a convolution's sums can round differently when split across another
    # thread count (and PaddlePaddle, imported by earlier tests, leaves OMP_NUM_THREADS=1 behind).
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--network', network, '--port',
                                 str(port), '--device', 'cpu', '--network-dir', str(served_dir)] + inversion_args,
                                stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail('app did not start: ' + log_path.read_text()[-2000:])
            time.sleep(0.5)
    yield url, network, log_path
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope='module')
def page(app_url):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=['--no-sandbox'])
        page = browser.new_page()
        page.goto(app_url[0])
        page.wait_for_selector('#gen-run')
        yield page
        browser.close()


def _shown_image(page, selector, previous=None):
    """The PNG the page shows in ``selector`` (waits for a new one), decoded to uint8 HWC."""
    locator = page.locator(f'{selector} img')
    deadline = time.time() + 120
    while time.time() < deadline:
        if locator.count() and locator.first.get_attribute('src') not in (None, '', previous):
            break
        page.wait_for_timeout(250)
    src = locator.first.get_attribute('src')
    data = page.request.get(src).body()
    return src, np.asarray(PIL.Image.open(io.BytesIO(data)).convert('RGB'))


def _type(page, field, text):
    """Types ``text`` into ``field`` until the page keeps it.

    A tab shown for the first time can still be setting up its fields: a value typed then is
    sometimes replaced by the field's default a moment later (seen once under CI load).
    """
    field.wait_for(state='visible')
    for _attempt in range(5):
        field.fill(text)
        field.press('Tab')
        page.wait_for_timeout(300)   # let the page hand the new value to its state before a click reads it
        if field.input_value() == text:
            return
    playwright_api.expect(field).to_have_value(text)   # fails, naming the value the page kept


def _set_number(page, elem_id, value):
    _type(page, page.locator(f'#{elem_id} input').first, str(value))


def test_generated_image_equals_generate_py(page, app_url):
    _set_number(page, 'gen-seed', 7)
    page.click('#gen-run')
    _src, shown = _shown_image(page, '#gen-image')
    G = legacy.load_network(app_url[1])['G_ema']
    (want,) = generate.generate_images(G, [7], truncation_psi=0.8)
    assert shown.shape == want.image.shape
    np.testing.assert_array_equal(shown, want.image)
    page.wait_for_selector('#gen-latents a, #gen-latents [download]', timeout=30000)


def test_interpolation_strip_equals_rendered_frames(page, app_url):
    page.get_by_role('tab', name='Interpolate').click()
    page.wait_for_selector('#int-run', state='visible')
    _set_number(page, 'int-a', 3)
    _set_number(page, 'int-b', 5)
    _set_number(page, 'int-steps', 4)
    page.click('#int-run')
    _src, shown = _shown_image(page, '#int-strip')
    G = legacy.load_network(app_url[1])['G_ema']
    frames = list(interpolation.render(G, interpolation.interpolate_latents(G, [3, 5], num_interps=4)))
    want = np.concatenate(frames, axis=1)           # 5 frames: fewer than the strip holds, all shown
    np.testing.assert_array_equal(shown, want)
    page.get_by_role('tab', name='Generate').click()


def test_the_app_says_where_it_listens_and_no_share_hint(app_url):
    output = app_url[2].read_text()
    assert f'Running on {app_url[0]}' in output.replace('localhost', '127.0.0.1')
    assert 'share=True' not in output and 'public link' not in output


def test_a_too_large_request_shows_the_limit_in_the_page(page):
    page.get_by_role('tab', name='Style mixing').click()
    page.wait_for_selector('#mix-run', state='visible')
    _type(page, page.locator('#mix-rows textarea, #mix-rows input').first, '1-100000')
    page.click('#mix-run')
    page.get_by_text('at most 8 row seeds', exact=False).last.wait_for(timeout=60000)
    text = page.locator('body').inner_text()
    assert 'Style mixing: at most 8 row seeds (got 100000)' in text
    assert 'Traceback' not in text
    page.get_by_role('tab', name='Generate').click()


def _network_error(page, spec):
    """The page's message after generating with ``spec`` in the network field."""
    page.get_by_role('tab', name='Generate').click()   # whatever the previous test left open
    page.wait_for_selector('#gen-run', state='visible')
    _type(page, page.locator('#network textarea, #network input').first, spec)
    page.click('#gen-run')
    message = page.get_by_text(f'Network {spec}:', exact=False).last
    message.wait_for(timeout=60000)
    return message.inner_text()


def test_corrupt_network_shows_a_message_in_the_page(page, served_dir):
    corrupt = served_dir / 'corrupt.pkl'
    corrupt.write_bytes(b'\x80\x04garbage, not a network')
    text = _network_error(page, str(corrupt))
    if os.environ.get('APP_SCREENSHOT'):
        page.screenshot(path=os.environ['APP_SCREENSHOT'], full_page=True)
    assert 'Traceback' not in page.locator('body').inner_text()
    assert 'not a valid network pickle' in text      # the loader's one-line reason, shown in the page
    outside = _network_error(page, '/etc/passwd')
    assert 'not a model-zoo name' in outside and 'pickle' not in outside   # nothing told about the file


def _download(page, selector, path):
    """The file behind the page's download link in ``selector``, saved to ``path``."""
    link = page.locator(f'{selector} a[href]').first
    link.wait_for(timeout=60000)
    path.write_bytes(page.request.get(link.get_attribute('href')).body())
    return path


def test_invert_a_photo_stop_the_tuning_then_edit_that_person(page, app_url, tmp_path):
    pytest.importorskip('mediapipe')
    from conftest import FIXTURES
    from pti.images import tensor_to_uint8
    from stylegan_human.latent_files import load_latent
    import torch
    # an earlier test may have left another network in the field
    _type(page, page.locator('#network textarea, #network input').first, app_url[1])
    page.get_by_role('tab', name='Invert').click()
    page.wait_for_selector('#inv-run', state='visible')
    page.locator('#inv-photo input[type="file"]').set_input_files(str(FIXTURES / 'photos' / 'p_top_tee.png'))
    page.wait_for_selector('#inv-photo img', timeout=30000)
    _set_number(page, 'inv-proj-steps', 2)
    _set_number(page, 'inv-tune-steps', 1000)        # far more than the test waits for: Stop ends it
    page.click('#inv-run')
    page.get_by_text('Tuning the generator', exact=False).first.wait_for(timeout=120000)
    page.click('#inv-stop')
    summary = page.locator('#inv-summary textarea')
    playwright_api.expect(summary).to_have_value(re.compile('^Stopped: PSNR'), timeout=120000)
    assert '2 projection steps' in summary.input_value()
    _, target = _shown_image(page, '#inv-target')
    _, before = _shown_image(page, '#inv-before')
    _, after = _shown_image(page, '#inv-after')
    assert target.shape == before.shape == after.shape == (64, 32, 3)

    # The downloads make the "after" image: the tuned network at the pivot.
    tuned = legacy.load_network(_download(page, '#inv-network-file', tmp_path / 'model.pkl'), verbose=False)['G_ema']
    w = load_latent(_download(page, '#inv-pivot-file', tmp_path / '0.pt'), tuned)
    with torch.no_grad():
        np.testing.assert_array_equal(tensor_to_uint8(tuned.synthesis(w, noise_mode='const', force_fp32=True)), after)

    # The Edit tab, on the inverted person: unedited, it is the "after" image; edited, it changes.
    page.get_by_role('tab', name='Edit').click()
    page.wait_for_selector('#edit-run', state='visible')
    page.locator('#edit-person input[value="Inverted photo"]').check()
    page.locator('#edit-method input[value="sefa"]').check()
    page.wait_for_timeout(200)
    page.click('#edit-run')
    _, unedited = _shown_image(page, '#edit-before')
    _, edited = _shown_image(page, '#edit-after')
    np.testing.assert_array_equal(unedited, after)
    assert np.abs(edited.astype(int) - after.astype(int)).max() > 10
    page.get_by_role('tab', name='Generate').click()


def test_drag_a_point_in_the_page_then_its_downloads_render_the_end_image(page, app_url, tmp_path):
    import json
    import math
    from edit.drag import render
    from stylegan_human.latent_files import load_latents
    # an earlier test may have left another network in the field
    _type(page, page.locator('#network textarea, #network input').first, app_url[1])
    page.get_by_role('tab', name='Drag').click()
    page.wait_for_selector('#drag-run', state='visible')
    page.locator('#drag-person input[value="Seed"]').check()
    _set_number(page, 'drag-seed', 0)
    _set_number(page, 'drag-steps', 30)

    # A mistake is one line in the page, and nothing runs.
    points = page.locator('#drag-points textarea').first
    _type(page, points, 'elbow_left:+1,2')
    page.click('#drag-run')
    page.get_by_text("Drag: unknown joint 'elbow_left'", exact=False).last.wait_for(timeout=60000)
    assert 'Traceback' not in page.locator('body').inner_text()

    _type(page, points, '16,32 -> 16,27')
    page.click('#drag-run')
    summary = page.locator('#drag-summary textarea')
    playwright_api.expect(summary).to_have_value(re.compile(r'^\d+ step\(s\); distances to the targets'),
                                                 timeout=120000)
    _, start = _shown_image(page, '#drag-start')
    _, end = _shown_image(page, '#drag-end')
    assert start.shape == end.shape == (64, 32, 3)

    # points.json: the handle started at its pixel and ended much closer to the target.
    record = json.loads(_download(page, '#drag-points-file', tmp_path / 'points.json').read_text())
    first, last = record['points'][0][0], record['points'][-1][0]
    assert first == [16, 32] and math.dist(last, (16, 27)) < math.dist(first, (16, 27)) - 2
    # drag_w.npz renders the end image (the rows far from the drawn markers), as generate.py --projected-w would.
    G = legacy.load_network(app_url[1], verbose=False)['G_ema']
    w = load_latents(_download(page, '#drag-w', tmp_path / 'drag_w.npz'), G)
    np.testing.assert_array_equal(render(G, w)[:20], end[:20])
    page.get_by_role('tab', name='Generate').click()
