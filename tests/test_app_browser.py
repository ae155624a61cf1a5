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
def app_url():
    from conftest import FIXTURES
    port = _free_port()
    network = str(FIXTURES / 'networks' / 'sg2_rect64.pkl')
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--network', network, '--port', str(port),
                             '--device', 'cpu'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail('app did not start: ' + proc.stdout.read()[-2000:])
            time.sleep(0.5)
    yield url, network
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


def test_corrupt_network_shows_a_message_in_the_page(page, tmp_path_factory):
    corrupt = tmp_path_factory.mktemp('bad') / 'corrupt.pkl'
    corrupt.write_bytes(b'\x80\x04garbage, not a network')
    page.get_by_role('tab', name='Generate').click()   # whatever the previous test left open
    page.wait_for_selector('#gen-run', state='visible')
    field = page.locator('#network textarea, #network input').first
    field.fill(str(corrupt))
    field.press('Tab')
    page.click('#gen-run')
    message = page.get_by_text('corrupt.pkl', exact=False).last
    message.wait_for(timeout=60000)
    text = page.locator('body').inner_text()
    if os.environ.get('APP_SCREENSHOT'):
        page.screenshot(path=os.environ['APP_SCREENSHOT'], full_page=True)
    assert 'Traceback' not in text
    assert f'Network {corrupt}:' in text          # the loader's one-line reason, shown in the page
