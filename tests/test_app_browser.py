"""app.py end to end in a real headless Chromium (Debian's package, driven by Playwright).

Skipped, with the reason shown, where Gradio, Playwright or /usr/bin/chromium is missing.
"""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import PIL.Image
import pytest

import generate
import interpolation
import legacy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'

gradio = pytest.importorskip('gradio', reason='the web app needs Gradio (pip install -e ".[app]")')
playwright_api = pytest.importorskip('playwright.sync_api', reason='needs Playwright (pip install playwright)')
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason='needs Debian\'s chromium package (apt-get install chromium)')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def served_dir(tmp_path_factory):
    """The folder the app serves (--network-dir)."""
    return tmp_path_factory.mktemp('served')


@pytest.fixture(scope='module')
def app_url(served_dir, tmp_path_factory):
    from conftest import FIXTURES
    port = _free_port()
    network = str(FIXTURES / 'networks' / 'sg2_rect64.pkl')
    log_path = tmp_path_factory.mktemp('log') / 'app.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--network', network, '--port',
                                 str(port), '--device', 'cpu', '--network-dir', str(served_dir)],
                                stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
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


def _set_number(page, elem_id, value):
    field = page.locator(f'#{elem_id} input').first
    field.wait_for(state='visible')
    field.fill(str(value))
    field.press('Tab')
    playwright_api.expect(field).to_have_value(str(value))
    page.wait_for_timeout(200)   # let the page hand the new value to its state before a click reads it


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
    field = page.locator('#mix-rows textarea, #mix-rows input').first
    field.fill('1-100000')
    field.press('Tab')
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
    field = page.locator('#network textarea, #network input').first
    field.fill(spec)
    field.press('Tab')
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
