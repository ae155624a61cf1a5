"""Downloads and the model zoo, against a real HTTP server on 127.0.0.1."""

import glob
import hashlib
import http.server
import io
import os
import random
import socket
import threading
import urllib.parse

import pytest

import model_zoo
from dnnlib import downloads, util

DATA = random.Random(1234).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'

    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path)
        self.server.log.append((parts.path, dict(urllib.parse.parse_qsl(parts.query)), dict(self.headers)))
        route = self.server.routes.get(parts.path)
        if route is None:
            self.send_error(404, 'Not Found')
            return
        route(self, dict(urllib.parse.parse_qsl(parts.query)))

    def do_HEAD(self):  # Logged as 'HEAD <path>'; the routes answer both (send_data sends no body here).
        parts = urllib.parse.urlsplit(self.path)
        self.server.log.append(('HEAD ' + parts.path, {}, dict(self.headers)))
        route = self.server.routes.get(parts.path)
        if route is None:
            self.send_error(404, 'Not Found')
            return
        route(self, {})

    # Response helpers used by the routes.

    def send_data(self, data, honour_range=True, cut_after=None, filename=None, etag='"v1"', headers=()):
        """Serve ``data``; with ``cut_after`` announce it all but close after that many bytes."""
        start = 0
        wanted = self.headers.get('Range')
        if wanted and honour_range:
            start = int(wanted.split('=')[1].split('-')[0])
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        else:
            self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(data) - start))
        if etag:
            self.send_header('ETag', etag)
        if filename:
            self.send_header('Content-Disposition', f'attachment; filename="{filename}"')
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == 'HEAD':
            return
        body = data[start:]
        if cut_after is not None:
            body = body[:cut_after]
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def send_redirect(self, location, status=302):
        self.send_response(status)
        self.send_header('Location', location)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def send_html(self, text, cookie=None):
        body = text.encode('utf-8')
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        if cookie:
            self.send_header('Set-Cookie', cookie)
        self.end_headers()
        self.wfile.write(body)


class Server:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.log = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.02),
                                       daemon=True)
        self.thread.start()

    @property
    def routes(self):
        return self.httpd.routes

    @property
    def log(self):
        return self.httpd.log

    def url(self, path):
        return f'http://127.0.0.1:{self.httpd.server_address[1]}{path}'

    def hits(self, path):
        return [entry for entry in self.log if entry[0] == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ('HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1,localhost')
    monkeypatch.setattr(downloads, '_sleep', lambda seconds: None)
    srv = Server()
    yield srv
    srv.close()


def _finished(cache_dir, url):
    key = hashlib.md5(url.encode('utf-8')).hexdigest()
    return glob.glob(os.path.join(str(cache_dir), key + '_*'))


def _closed_port_url(path='/x.pkl'):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return f'http://127.0.0.1:{port}{path}'


def _tiny_entry(sources, size=len(DATA), sha256=SHA):
    return model_zoo.ModelEntry(name='tiny_test_model', filename='tiny.pkl', version=2, resolution=64,
                                size=size, sha256=sha256, sources=tuple(sources), page='https://example.org/tiny')


# ----------------------------------------------------------------------------
# open_url


def test_open_url_downloads_caches_and_reuses(server, tmp_path, capsys):
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    url = server.url('/net.pkl')
    with util.open_url(url, cache_dir=tmp_path, verbose=True) as f:
        assert f.read() == DATA
    path = util.open_url(url, cache_dir=tmp_path, return_filename=True, sha256=SHA, expected_size=len(DATA))
    assert os.path.basename(path) == hashlib.md5(url.encode()).hexdigest() + '_net.pkl'
    assert len(server.hits('/net.pkl')) == 1
    out = capsys.readouterr()
    assert out.out == '' and 'Downloading' in out.err
    # Nothing but the finished file (and the lock / hash bookkeeping) is left behind.
    assert not glob.glob(os.path.join(str(tmp_path), '.*.part*'))


def test_open_url_local_paths_and_file_urls(tmp_path):
    path = tmp_path / 'a b.bin'
    path.write_bytes(b'xyz')
    assert util.open_url(str(path), return_filename=True) == str(path)
    with util.open_url(path) as f:
        assert f.read() == b'xyz'
    file_url = 'file://' + urllib.parse.quote(str(path))
    assert util.open_url(file_url, return_filename=True) == str(path)
    with pytest.raises(FileNotFoundError):
        util.open_url(str(tmp_path / 'missing.pkl'))
    with pytest.raises(util.DownloadError, match='sha256 mismatch'):
        util.open_url(str(path), sha256='0' * 64)
    with pytest.raises(ValueError):
        util.open_url('https://example.org/x.pkl', return_filename=True, cache=False)


def test_is_url():
    assert util.is_url('https://huggingface.co/a/b')
    assert not util.is_url('http://localhost/x')
    assert not util.is_url('/tmp/x.pkl')
    assert not util.is_url(None)
    assert not util.is_url('file:///tmp/x.pkl')
    assert util.is_url('file:///tmp/x.pkl', allow_file_urls=True)


def test_no_cache_returns_bytes_and_leaves_nothing(server, tmp_path):
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    f = util.open_url(server.url('/net.pkl'), cache_dir=tmp_path, cache=False, verbose=False)
    assert isinstance(f, io.BytesIO) and f.read() == DATA
    assert os.listdir(tmp_path) == []


def test_wrong_sha256_leaves_no_file(server, tmp_path):
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    url = server.url('/net.pkl')
    with pytest.raises(util.DownloadError) as info:
        util.open_url(url, cache_dir=tmp_path, verbose=False, sha256='ab' * 32)
    message = str(info.value)
    assert '\n' not in message and url in message and 'sha256 mismatch' in message
    assert _finished(tmp_path, url) == []
    assert not glob.glob(os.path.join(str(tmp_path), '.*.part'))


def test_wrong_size_is_refused_before_download(server, tmp_path):
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    url = server.url('/net.pkl')
    with pytest.raises(util.DownloadError, match=f'expected {len(DATA) + 1}'):
        util.open_url(url, cache_dir=tmp_path, verbose=False, expected_size=len(DATA) + 1)
    assert _finished(tmp_path, url) == []


def test_http_error_is_one_line(server, tmp_path):
    url = server.url('/missing.pkl')
    with pytest.raises(util.DownloadError) as info:
        util.open_url(url, cache_dir=tmp_path, verbose=False)
    assert str(info.value) == f'could not download {url}: HTTP 404 Not Found'
    assert len(server.hits('/missing.pkl')) == 1  # A 404 is not retried.


def _dropping_route(cut, honour_range=True):
    def route(handler, query):
        if 'Range' in handler.headers:
            handler.send_data(DATA, honour_range=honour_range)
        else:
            handler.send_data(DATA, cut_after=cut)
    return route


def test_dropped_connection_then_resume_with_range(server, tmp_path):
    server.routes['/net.pkl'] = _dropping_route(cut=100_000)
    url = server.url('/net.pkl')
    with pytest.raises(util.DownloadError) as info:
        util.open_url(url, cache_dir=tmp_path, verbose=False, num_attempts=1, sha256=SHA)
    message = str(info.value)
    assert '\n' not in message and 'truncated' in message and url in message
    assert _finished(tmp_path, url) == []
    parts = glob.glob(os.path.join(str(tmp_path), '.*.part'))
    assert len(parts) == 1
    kept = os.path.getsize(parts[0])
    assert 0 < kept <= 100_000  # What arrived before the drop (up to one network read may be lost).

    path = util.open_url(url, cache_dir=tmp_path, verbose=False, return_filename=True, sha256=SHA)
    with open(path, 'rb') as f:
        assert f.read() == DATA
    second = server.hits('/net.pkl')[1][2]
    assert second.get('Range') == f'bytes={kept}-'
    assert second.get('If-Range') == '"v1"'
    assert not glob.glob(os.path.join(str(tmp_path), '.*.part*'))


def test_dropped_connection_resumes_within_one_call(server, tmp_path):
    server.routes['/net.pkl'] = _dropping_route(cut=150_000)
    url = server.url('/net.pkl')
    path = util.open_url(url, cache_dir=tmp_path, verbose=False, return_filename=True, num_attempts=3)
    with open(path, 'rb') as f:
        assert f.read() == DATA
    ranges = [h[2].get('Range') for h in server.hits('/net.pkl')]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith('bytes=')


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    server.routes['/net.pkl'] = _dropping_route(cut=100_000, honour_range=False)
    url = server.url('/net.pkl')
    with pytest.raises(util.DownloadError, match='truncated'):
        util.open_url(url, cache_dir=tmp_path, verbose=False, num_attempts=1)
    path = util.open_url(url, cache_dir=tmp_path, verbose=False, return_filename=True, sha256=SHA)
    with open(path, 'rb') as f:
        assert f.read() == DATA


def _drive_routes(server, style):
    page = '<html><head><title>Google Drive - Virus scan warning</title></head><body>'
    if style == 'form':
        page += (f'<form id="download-form" action="{server.url("/download")}" method="get">'
                 '<input type="submit" value="Download anyway"/>'
                 '<input type="hidden" name="id" value="FILEID">'
                 '<input type="hidden" name="export" value="download">'
                 '<input type="hidden" name="confirm" value="t">'
                 '<input type="hidden" name="uuid" value="1234-abcd"></form>')
    else:
        page += '<a id="uc-download-link" href="/download?export=download&amp;confirm=Xy9_&amp;id=FILEID">Download</a>'
    page += '</body></html>'

    def landing(handler, query):
        handler.send_html(page, cookie='download_warning_13058876669334088843_FILEID=Xy9_; Path=/')

    def download(handler, query):
        expected = {'confirm': 't', 'uuid': '1234-abcd'} if style == 'form' else {'confirm': 'Xy9_'}
        if query.get('id') != 'FILEID' or any(query.get(k) != v for k, v in expected.items()):
            handler.send_html(page)
            return
        handler.send_data(DATA, filename='tiny.pkl')

    server.routes['/uc'] = landing
    server.routes['/download'] = download


@pytest.mark.parametrize('style', ['form', 'link'])
def test_google_drive_confirm_page_is_followed(server, tmp_path, style):
    _drive_routes(server, style)
    url = server.url('/uc') + '?export=download&id=FILEID'
    path = util.open_url(url, cache_dir=tmp_path, verbose=False, return_filename=True, sha256=SHA)
    assert path.endswith('_tiny.pkl')
    with open(path, 'rb') as f:
        assert f.read() == DATA
    assert [h[0] for h in server.log] == ['/uc', '/download']
    # The cache is keyed by the URL that was asked for, not the confirmed one.
    assert _finished(tmp_path, url) == [path]


def test_google_drive_download_resumes_after_confirm(server, tmp_path):
    _drive_routes(server, 'form')
    plain = server.routes['/download']
    calls = []

    def flaky(handler, query):
        calls.append(handler.headers.get('Range'))
        if len(calls) == 1:
            handler.send_data(DATA, cut_after=100_000, filename='tiny.pkl')
        else:
            plain(handler, query)
    server.routes['/download'] = flaky
    url = server.url('/uc') + '?export=download&id=FILEID'
    with pytest.raises(util.DownloadError, match='truncated'):
        util.open_url(url, cache_dir=tmp_path, verbose=False, num_attempts=1)
    path = util.open_url(url, cache_dir=tmp_path, verbose=False, return_filename=True, sha256=SHA)
    with open(path, 'rb') as f:
        assert f.read() == DATA
    assert calls[0] is None and calls[1].startswith('bytes=') and calls[1] != 'bytes=0-'


def test_unwritable_cache_is_a_download_error(server, tmp_path):
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    blocker = tmp_path / 'not-a-folder'
    blocker.write_bytes(b'')
    with pytest.raises(util.DownloadError, match='cannot write'):
        util.open_url(server.url('/net.pkl'), cache_dir=blocker / 'cache', verbose=False)


def test_google_drive_quota_page_is_a_clear_error(server, tmp_path):
    server.routes['/uc'] = lambda h, q: h.send_html(
        '<html><title>Google Drive - Quota exceeded</title><body>Too many users have viewed '
        'or downloaded this file recently.</body></html>')
    with pytest.raises(util.DownloadError, match='quota exceeded'):
        util.open_url(server.url('/uc?id=X'), cache_dir=tmp_path, verbose=False)


def test_google_drive_page_without_a_way_on_is_a_clear_error(server, tmp_path):
    server.routes['/uc'] = lambda h, q: h.send_html(
        '<html><title>Google Drive - Sign in</title><body><form action="/login"><input name="email"></form></body></html>')
    with pytest.raises(util.DownloadError, match='not shared publicly') as info:
        util.open_url(server.url('/uc?id=X'), cache_dir=tmp_path, verbose=False)
    assert '\n' not in str(info.value)
    assert [h[0] for h in server.log] == ['/uc']


# ----------------------------------------------------------------------------
# url_check: a caller's policy sees every URL before it is requested


class Forbidden(PermissionError):
    """An OSError on purpose: open_url must not turn it into a DownloadError."""


def _refuse(predicate, seen):
    def check(url):
        seen.append(url)
        if predicate(url):
            raise Forbidden(f'policy refuses {url}')
    return check


def test_url_check_sees_the_url_and_every_redirect(server, tmp_path):
    server.routes['/old.pkl'] = lambda h, q: h.send_redirect('/hop.pkl', status=301)
    server.routes['/hop.pkl'] = lambda h, q: h.send_redirect(server.url('/net.pkl'), status=307)
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    seen = []
    url = server.url('/old.pkl')
    path = util.open_url(url, cache_dir=tmp_path, verbose=False, return_filename=True, sha256=SHA,
                         url_check=_refuse(lambda u: False, seen))
    with open(path, 'rb') as f:
        assert f.read() == DATA
    assert seen == [url, server.url('/hop.pkl'), server.url('/net.pkl')]
    assert [h[0] for h in server.log] == ['/old.pkl', '/hop.pkl', '/net.pkl']
    assert path.endswith('_net.pkl') and _finished(tmp_path, url) == [path]


def test_url_check_refusing_a_redirect_stops_before_requesting_it(server, tmp_path):
    server.routes['/old.pkl'] = lambda h, q: h.send_redirect('/net.pkl')
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    seen = []
    with pytest.raises(Forbidden) as info:
        util.open_url(server.url('/old.pkl'), cache_dir=tmp_path, verbose=False, num_attempts=5,
                      url_check=_refuse(lambda u: u.endswith('/net.pkl'), seen))
    assert str(info.value) == f'policy refuses {server.url("/net.pkl")}'
    assert not isinstance(info.value, util.DownloadError)
    assert seen == [server.url('/old.pkl'), server.url('/net.pkl')]
    assert [h[0] for h in server.log] == ['/old.pkl']  # Not retried, and the refused URL never asked.
    assert not glob.glob(os.path.join(str(tmp_path), '*_net.pkl'))


def test_url_check_is_asked_even_when_the_cache_answers(server, tmp_path):
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    url = server.url('/net.pkl')
    util.open_url(url, cache_dir=tmp_path, verbose=False)
    seen = []
    with pytest.raises(Forbidden):
        util.open_url(url, cache_dir=tmp_path, verbose=False, url_check=_refuse(lambda u: True, seen))
    assert seen == [url]
    with pytest.raises(Forbidden):  # file:// URLs are URLs too; plain paths are not asked about.
        util.open_url('file:///etc/hostname', url_check=_refuse(lambda u: True, seen))
    local = tmp_path / 'local.bin'
    local.write_bytes(b'x')
    assert util.open_url(str(local), return_filename=True, url_check=_refuse(lambda u: True, seen)) == str(local)
    assert seen == [url, 'file:///etc/hostname']


def test_url_check_sees_google_drive_confirmation_steps(server, tmp_path):
    _drive_routes(server, 'link')
    url = server.url('/uc') + '?export=download&id=FILEID'
    seen = []
    with pytest.raises(Forbidden):
        util.open_url(url, cache_dir=tmp_path, verbose=False, url_check=_refuse(lambda u: '/download' in u, seen))
    assert seen == [url, server.url('/download?export=download&confirm=Xy9_&id=FILEID')]
    assert [h[0] for h in server.log] == ['/uc']


# ----------------------------------------------------------------------------
# Offline: a host name that does not resolve is final, and one line


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No DNS: every name lookup fails as it does on a machine without network; records sleeps."""
    import time
    lookups, sleeps = [], []

    def no_dns(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
    monkeypatch.setattr(downloads, '_sleep', sleeps.append)
    monkeypatch.setattr(time, 'sleep', sleeps.append)   # huggingface_hub's own back-off
    monkeypatch.delenv(model_zoo.ENV_URL_BASE, raising=False)
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'dnnlib'))
    return dict(lookups=lookups, sleeps=sleeps)


def test_open_url_does_not_retry_a_host_that_does_not_resolve(offline, tmp_path, capsys):
    url = 'https://huggingface.co/org/repo/resolve/main/net.pkl'
    with pytest.raises(util.OfflineError) as info:
        util.open_url(url, cache_dir=tmp_path, num_attempts=10, verbose=True)
    assert str(info.value) == f'could not download {url}: no network (cannot resolve host huggingface.co)'
    assert info.value.host == 'huggingface.co'
    assert offline['lookups'] == ['huggingface.co'] and offline['sleeps'] == []
    assert capsys.readouterr().err == ''   # Not even a 'Downloading ...' line before the error.


def test_model_zoo_cli_offline_prints_one_line(offline, tmp_path, capsys):
    status = model_zoo.main(['download', 'stylegan_human_v2_1024', '--cache-dir', str(tmp_path / 'cache')])
    out = capsys.readouterr()
    assert status != 0 and out.out == ''
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("Error: could not download model 'stylegan_human_v2_1024': "
                               'no network (cannot resolve host huggingface.co). ')
    assert 'https://drive.google.com/file/d/' in lines[0] and 'pass its path' in lines[0]
    assert 'not tried: huggingface.co/public-data/StyleGAN-Human, Google Drive ' in lines[0]
    assert offline['sleeps'] == [] and set(offline['lookups']) == {'huggingface.co'}


# ----------------------------------------------------------------------------
# Model zoo


def test_zoo_table():
    names = model_zoo.list_models()
    assert names == ['stylegan_human_v2_512', 'stylegan_human_v2_1024', 'stylegan_human_v3_512',
                     'stylegan_human_v1_1024']
    v2 = model_zoo.get_model('stylegan_human_v2_1024.pkl')
    assert (v2.version, v2.resolution, v2.width, v2.size) == (2, 1024, 512, 362_022_337)
    assert v2.sources[0] == 'https://huggingface.co/aaronb/StyleGAN2-pkl/resolve/main/human/stylegan_human_v2_1024.pkl'
    assert model_zoo.get_model('stylegan_human_v3_512').sha256 is None
    assert model_zoo.get_model('stylegan_human_v1_1024').version == 1
    for entry in model_zoo.MODELS.values():
        assert entry.sources and all(s.startswith('https://') for s in entry.sources)
        assert entry.sha256 is None or len(entry.sha256) == 64


def test_zoo_downloads_once_and_reuses_cache(server, tmp_path, monkeypatch):
    server.routes['/tiny.pkl'] = lambda h, q: h.send_data(DATA)
    monkeypatch.setitem(model_zoo.MODELS, 'tiny_test_model', _tiny_entry([server.url('/tiny.pkl')]))
    first = model_zoo.resolve_network('tiny_test_model', cache_dir=tmp_path, verbose=False)
    second = model_zoo.resolve_network('tiny_test_model', cache_dir=tmp_path, verbose=False)
    assert first == second
    with open(first, 'rb') as f:
        assert f.read() == DATA
    assert len(server.hits('/tiny.pkl')) == 1

    # A cached file that no longer matches its sha256 is replaced by a fresh download.
    with open(first, 'r+b') as f:
        f.write(b'\0\0\0\0')
    os.utime(first, ns=(1, 1))
    third = model_zoo.resolve_network('tiny_test_model', cache_dir=tmp_path, verbose=False)
    with open(third, 'rb') as f:
        assert f.read() == DATA
    assert len(server.hits('/tiny.pkl')) == 2


def test_zoo_falls_back_to_next_source_and_cache_covers_all_sources(server, tmp_path, monkeypatch):
    server.routes['/good.pkl'] = lambda h, q: h.send_data(DATA)
    sources = [server.url('/gone.pkl'), server.url('/good.pkl')]
    monkeypatch.setitem(model_zoo.MODELS, 'tiny_test_model', _tiny_entry(sources))
    path = model_zoo.resolve_network('tiny_test_model', cache_dir=tmp_path, verbose=False)
    with open(path, 'rb') as f:
        assert f.read() == DATA
    assert model_zoo.resolve_network('tiny_test_model', cache_dir=tmp_path, verbose=False) == path
    assert [h[0] for h in server.log] == ['/gone.pkl', '/good.pkl']  # Nothing asked the second time.


def test_zoo_sources_argument_and_mirror_env(server, tmp_path, monkeypatch):
    server.routes['/mirror/tiny.pkl'] = lambda h, q: h.send_data(DATA)
    monkeypatch.setitem(model_zoo.MODELS, 'tiny_test_model', _tiny_entry(['https://unused.example.org/tiny.pkl']))
    path = model_zoo.resolve_network('tiny_test_model', cache_dir=tmp_path, verbose=False,
                                     sources=[server.url('/mirror/tiny.pkl')])
    with open(path, 'rb') as f:
        assert f.read() == DATA
    monkeypatch.setenv(model_zoo.ENV_URL_BASE, server.url('/mirror/'))
    assert model_zoo.model_sources('tiny_test_model')[:1] == [server.url('/mirror/tiny.pkl')]
    monkeypatch.setenv(model_zoo.ENV_URL_BASE, str(tmp_path / 'local-mirror'))
    assert model_zoo.model_sources('tiny_test_model')[0] == str(tmp_path / 'local-mirror' / 'tiny.pkl')


def test_resolve_local_path_and_url(server, tmp_path):
    local = tmp_path / 'mine.pkl'
    local.write_bytes(b'data')
    assert model_zoo.resolve_network(str(local)) == str(local)
    server.routes['/net.pkl'] = lambda h, q: h.send_data(DATA)
    path = model_zoo.resolve_network(server.url('/net.pkl'), cache_dir=tmp_path / 'cache', verbose=False)
    with open(path, 'rb') as f:
        assert f.read() == DATA


def test_unknown_name_lists_the_zoo(tmp_path):
    with pytest.raises(model_zoo.ModelZooError) as info:
        model_zoo.resolve_network('stylegan_human_v9', cache_dir=tmp_path)
    message = str(info.value)
    assert '\n' not in message and "'stylegan_human_v9'" in message
    for name in model_zoo.list_models():
        assert name in message
    assert isinstance(info.value, util.DownloadError)  # CLI code that reports downloads reports this too.


def test_all_sources_failing_is_one_clear_error(server, tmp_path, monkeypatch):
    sources = [server.url('/gone.pkl'), _closed_port_url()]
    monkeypatch.setitem(model_zoo.MODELS, 'tiny_test_model', _tiny_entry(sources))
    with pytest.raises(model_zoo.ModelZooError) as info:
        model_zoo.resolve_network('tiny_test_model', cache_dir=tmp_path, verbose=False)
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith("could not download model 'tiny_test_model'")
    assert 'HTTP 404' in message and 'connection refused' in message
    assert 'manually' in message and 'https://example.org/tiny' in message
    assert len(info.value.failures) == 2
    assert not glob.glob(os.path.join(str(tmp_path), '*_x.pkl')) and not glob.glob(os.path.join(str(tmp_path), '*_gone.pkl'))


def test_legacy_loads_a_zoo_name_and_a_url(server, tmp_path, monkeypatch, fixtures_dir):
    import legacy
    try:
        import training.networks_stylegan2  # noqa: F401
    except ImportError as err:  # Only while the rest of the tree is being built.
        pytest.skip(f'network code does not import: {err}')
    data = (fixtures_dir / 'networks' / 'sg2_rect64.pkl').read_bytes()
    server.routes['/sg2_rect64.pkl'] = lambda h, q: h.send_data(data)
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path))
    entry = model_zoo.ModelEntry(name='tiny_test_model', filename='sg2_rect64.pkl', version=2, resolution=64,
                                 size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                 sources=(server.url('/sg2_rect64.pkl'),), page='https://example.org/tiny')
    monkeypatch.setitem(model_zoo.MODELS, entry.name, entry)
    by_name = legacy.load_network('tiny_test_model', verbose=False)
    by_url = legacy.load_network(server.url('/sg2_rect64.pkl'), verbose=False)
    assert 'G_ema' in by_name and 'G_ema' in by_url
    assert len(server.hits('/sg2_rect64.pkl')) == 1  # The URL reused the zoo's cached copy.
    assert glob.glob(os.path.join(str(tmp_path), 'downloads', '*_sg2_rect64.pkl'))


# ----------------------------------------------------------------------------
# Hugging Face Hub sources, through huggingface_hub, against a local stand-in for the Hub

COMMIT = 'c0ffee' * 6 + 'c0ff'
HUB_URL = 'https://huggingface.co/org/tiny/resolve/main/models/tiny.pkl'
HUB_PATH = '/org/tiny/resolve/main/models/tiny.pkl'


def _hub_route(data=DATA, status=200, error_code=None):
    """Answers HEAD and GET as the Hub's /resolve/ does (the headers huggingface_hub needs)."""
    def route(handler, query):
        if status != 200:
            handler.send_response(status)
            if error_code:
                handler.send_header('X-Error-Code', error_code)
            handler.send_header('Content-Length', '0')
            handler.end_headers()
            return
        handler.send_data(data, etag=f'"{hashlib.sha256(data).hexdigest()}"',
                          headers=[('X-Repo-Commit', COMMIT), ('Content-Type', 'application/octet-stream')])
    return route


@pytest.fixture
def hub(server, monkeypatch, tmp_path):
    """The local server stands in for the Hub (HF_ENDPOINT); huggingface_hub's own cache is a temp folder."""
    from huggingface_hub import constants
    monkeypatch.setenv('HF_ENDPOINT', server.url(''))
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf' / 'hub'))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.delenv(model_zoo.ENV_URL_BASE, raising=False)
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'dnnlib'))
    server.routes[HUB_PATH] = _hub_route()
    return server


def _hub_entry(monkeypatch, sources=(HUB_URL,), size=len(DATA), sha256=SHA):
    monkeypatch.setitem(model_zoo.MODELS, 'tiny_test_model', _tiny_entry(sources, size=size, sha256=sha256))


def test_parse_hub_url(monkeypatch):
    from dnnlib import hf_hub
    monkeypatch.delenv('HF_ENDPOINT', raising=False)
    f = hf_hub.parse_hub_url('https://huggingface.co/aaronb/StyleGAN2-pkl/resolve/main/human/x.pkl?download=true')
    assert (f.repo_id, f.filename, f.revision, f.repo_type) == ('aaronb/StyleGAN2-pkl', 'human/x.pkl', 'main', 'model')
    d = hf_hub.parse_hub_url('https://huggingface.co/datasets/a/b/resolve/refs%2Fpr%2F1/c%20d.bin')
    assert (d.repo_id, d.filename, d.revision, d.repo_type) == ('a/b', 'c d.bin', 'refs/pr/1', 'dataset')
    assert d.url == 'https://huggingface.co/datasets/a/b/resolve/refs%2Fpr%2F1/c d.bin'
    for other in ('https://huggingface.co/a/b/blob/main/x.pkl', 'https://example.org/a/b/resolve/main/x.pkl',
                  'https://drive.google.com/uc?id=1', '/tmp/x.pkl'):
        assert hf_hub.parse_hub_url(other) is None
    monkeypatch.setenv('HF_ENDPOINT', 'https://hf-mirror.example/')
    assert hf_hub.parse_hub_url('https://hf-mirror.example/a/b/resolve/main/x.pkl').repo_id == 'a/b'


def test_zoo_hub_source_goes_through_huggingface_hub_and_its_cache(hub, tmp_path, monkeypatch):
    _hub_entry(monkeypatch)
    path = model_zoo.resolve_network('tiny_test_model', verbose=False)
    assert path == str(tmp_path / 'hf' / 'hub' / 'models--org--tiny' / 'snapshots' / COMMIT / 'models' / 'tiny.pkl')
    with open(path, 'rb') as f:
        assert f.read() == DATA
    asked = [h[0] for h in hub.log]
    assert asked[0] == 'HEAD ' + HUB_PATH and [a for a in asked if not a.startswith('HEAD ')] == [HUB_PATH]
    # Once cached, the Hub is not asked again (not even a HEAD), and the sha256 is not recomputed.
    monkeypatch.setattr(downloads, 'file_sha256', lambda p: pytest.fail('hashed again'))
    assert model_zoo.resolve_network('tiny_test_model', verbose=False) == path
    assert len(hub.log) == len(asked)


def test_zoo_explicit_cache_dir_holds_the_hub_files_too(hub, tmp_path, monkeypatch):
    _hub_entry(monkeypatch)
    path = model_zoo.resolve_network('tiny_test_model', cache_dir=tmp_path / 'mine', verbose=False)
    assert path.startswith(str(tmp_path / 'mine' / 'huggingface' / 'models--org--tiny'))


def test_corrupt_hub_cache_copy_is_downloaded_again(hub, tmp_path, monkeypatch):
    _hub_entry(monkeypatch)
    path = model_zoo.resolve_network('tiny_test_model', verbose=False)
    blob = os.path.realpath(path)
    os.chmod(blob, 0o644)
    with open(blob, 'r+b') as f:
        f.write(b'\0\0\0\0')
    os.utime(blob, ns=(1, 1))
    again = model_zoo.resolve_network('tiny_test_model', verbose=False)
    with open(again, 'rb') as f:
        assert f.read() == DATA
    assert [h[0] for h in hub.log].count(HUB_PATH) == 2


def test_hub_file_that_is_not_the_expected_one_is_refused(hub, tmp_path, monkeypatch):
    _hub_entry(monkeypatch, size=len(DATA) + 1)   # The HEAD's size already gives it away: nothing downloaded.
    with pytest.raises(model_zoo.ModelZooError, match=f'the Hub offers {len(DATA)} bytes, expected {len(DATA) + 1}'):
        model_zoo.resolve_network('tiny_test_model', verbose=False)
    assert HUB_PATH not in [h[0] for h in hub.log]
    _hub_entry(monkeypatch, sha256='ab' * 32)
    with pytest.raises(model_zoo.ModelZooError) as info:
        model_zoo.resolve_network('tiny_test_model', verbose=False)
    message = str(info.value)
    assert '\n' not in message and f'sha256 mismatch (expected {"ab" * 32}, got {SHA})' in message


@pytest.mark.parametrize('status, code, reason', [
    (404, 'EntryNotFound', 'HTTP 404: file not found in the repository'),
    (401, 'RepoNotFound', 'HTTP 401: repository not found (or private)'),
    (403, 'GatedRepo', 'HTTP 403: gated repository'),
    (503, None, 'HTTP 503'),
])
def test_hub_http_errors_are_one_line_and_the_next_source_is_tried(hub, tmp_path, monkeypatch, capsys,
                                                                   status, code, reason):
    hub.routes[HUB_PATH] = _hub_route(status=status, error_code=code)
    _hub_entry(monkeypatch, sources=(HUB_URL, hub.url('/gone.pkl')))
    with pytest.raises(model_zoo.ModelZooError) as info:
        model_zoo.resolve_network('tiny_test_model', verbose=True)
    message = str(info.value)
    assert '\n' not in message and f'huggingface.co/org/tiny: {reason}' in message and 'HTTP 404 Not Found' in message
    assert [h[0] for h in hub.log] == ['HEAD ' + HUB_PATH, '/gone.pkl']   # No retries, no back-off.
    assert capsys.readouterr().err.startswith(f'huggingface.co/org/tiny: {reason}')

    hub.routes['/gone.pkl'] = lambda h, q: h.send_data(DATA)   # The fallback works once it is there.
    with open(model_zoo.resolve_network('tiny_test_model', verbose=False), 'rb') as f:
        assert f.read() == DATA


def test_without_huggingface_hub_hub_urls_are_plain_downloads(hub, tmp_path, monkeypatch):
    from dnnlib import hf_hub
    monkeypatch.setattr(hf_hub, 'available', lambda: False)
    _hub_entry(monkeypatch, sources=(hub.url(HUB_PATH),))   # On the HF_ENDPOINT mirror, so a Hub URL.
    assert hf_hub.parse_hub_url(hub.url(HUB_PATH)) is not None
    path = model_zoo.resolve_network('tiny_test_model', verbose=False, cache_dir=tmp_path / 'cache')
    assert _finished(tmp_path / 'cache', hub.url(HUB_PATH)) == [path]
    assert [h[0] for h in hub.log] == [HUB_PATH]


def _raised_from(error, cause):
    try:
        raise error from cause
    except Exception as err:
        return err


@pytest.mark.parametrize('make_error, reason, offline', [
    (lambda e: _raised_from(e.LocalEntryNotFoundError('An error happened'), ConnectionRefusedError(111, 'Connection refused')),
     'connection refused by 127.0.0.1', False),
    (lambda e: _raised_from(e.LocalEntryNotFoundError('An error happened'), socket.gaierror(-3, 'Temporary failure')),
     'no network (cannot resolve host 127.0.0.1)', True),
    (lambda e: _raised_from(e.LocalEntryNotFoundError('An error happened'), TimeoutError('timed out')),
     'no network (connection to 127.0.0.1 timed out)', False),
    (lambda e: e.OfflineModeIsEnabled('offline'), 'not in the Hugging Face cache, and HF_HUB_OFFLINE is set', True),
    (lambda e: OSError(28, 'No space left on device', '/cache/blob.incomplete'),
     'cannot write /cache/blob.incomplete (No space left on device)', False),
])
def test_huggingface_hub_download_errors_become_one_line(hub, monkeypatch, make_error, reason, offline):
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    def failing(*args, **kwargs):
        raise make_error(hf_errors)
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', failing)
    _hub_entry(monkeypatch)
    with pytest.raises(model_zoo.ModelZooError) as info:
        model_zoo.resolve_network('tiny_test_model', verbose=False)
    if offline:
        assert str(info.value).startswith(f"could not download model 'tiny_test_model': {reason}. ")
    else:
        assert str(info.value).startswith(f"could not download model 'tiny_test_model' (tried huggingface.co/org/tiny: "
                                          f'{reason}). ')
    assert info.value.failures == [(HUB_URL, reason)]
    # A bug is not a download failure: it is not dressed up as one.
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', lambda *a, **k: [][1])
    with pytest.raises(IndexError):
        model_zoo.resolve_network('tiny_test_model', verbose=False)


def test_hub_connection_refused_is_one_line_without_back_off(hub, tmp_path, monkeypatch):
    import time
    sleeps = []
    monkeypatch.setattr(time, 'sleep', sleeps.append)
    closed = _closed_port_url('')
    monkeypatch.setenv('HF_ENDPOINT', closed)
    hub.routes['/good.pkl'] = lambda h, q: h.send_data(DATA)
    _hub_entry(monkeypatch, sources=(HUB_URL, hub.url('/good.pkl')))
    with open(model_zoo.resolve_network('tiny_test_model', verbose=False), 'rb') as f:
        assert f.read() == DATA    # Not a DNS failure: the next source is tried.
    _hub_entry(monkeypatch, sources=(HUB_URL,))
    with pytest.raises(model_zoo.ModelZooError, match='connection refused by 127.0.0.1'):
        model_zoo.resolve_network('tiny_test_model', verbose=False, cache_dir=tmp_path / 'other')
    assert sleeps == []


def test_hf_hub_offline_and_not_cached_is_one_line_and_stays_offline(hub, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    _hub_entry(monkeypatch, sources=(HUB_URL, hub.url('/other.pkl')))
    status = model_zoo.main(['download', 'tiny_test_model'])
    err = capsys.readouterr().err
    assert status == 1 and len(err.splitlines()) == 1
    assert err.startswith("Error: could not download model 'tiny_test_model': not in the Hugging Face cache, "
                          'and HF_HUB_OFFLINE is set.')
    assert hub.log == []   # Offline means offline: the other network sources are not tried either.


def test_hub_cached_file_is_used_with_HF_HUB_OFFLINE_and_no_network(hub, tmp_path, monkeypatch):
    import subprocess
    import sys
    _hub_entry(monkeypatch)
    path = model_zoo.resolve_network('tiny_test_model', verbose=False)
    # A fresh process with the settings a user would have: HF_HOME, HF_HUB_OFFLINE, and no network at all.
    script = (
        'import socket, sys\n'
        'def no_network(*a, **k): raise socket.gaierror(socket.EAI_NONAME, "offline")\n'
        'socket.getaddrinfo = socket.create_connection = no_network\n'
        'import model_zoo\n'
        f'model_zoo.register_model(model_zoo.ModelEntry(name="tiny_test_model", filename="tiny.pkl", version=2, '
        f'resolution=64, size={len(DATA)}, sha256="{SHA}", sources=("{HUB_URL}",), page="https://example.org"))\n'
        'sys.exit(model_zoo.main(["download", "tiny_test_model"]))\n')
    env = dict(os.environ, HF_HOME=str(tmp_path / 'hf'), HF_HUB_OFFLINE='1', HF_ENDPOINT=_closed_port_url(''),
               DNNLIB_CACHE_DIR=str(tmp_path / 'dnnlib'), PYTHONPATH=str(downloads.__file__).rsplit('/dnnlib/', 1)[0])
    env.pop('HF_HUB_CACHE', None)
    done = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == path and done.stderr == ''


def test_quickstart_offline_prints_one_line(tmp_path):
    """`bash quickstart.sh` with no network (setup_env.sh stubbed): one line, nonzero status, nothing generated."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, '.venv', 'bin', 'python')):
        pytest.skip('quickstart.sh runs .venv/bin/python')
    work = tmp_path / 'checkout'
    work.mkdir()
    (work / 'quickstart.sh').write_bytes(open(os.path.join(root, 'quickstart.sh'), 'rb').read())
    (work / 'setup_env.sh').write_text('true\n')
    for name in ('.venv', 'model_zoo.py', 'generate.py', 'dnnlib', 'stylegan_human'):
        (work / name).symlink_to(os.path.join(root, name))
    hooks = tmp_path / 'hooks'
    hooks.mkdir()
    (hooks / 'sitecustomize.py').write_text(
        'import socket\n'
        'def no_network(*a, **k):\n'
        '    raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")\n'
        'socket.getaddrinfo = no_network\n')
    env = dict(os.environ, PYTHONPATH=f'{hooks}{os.pathsep}{root}', HF_HOME=str(tmp_path / 'hf'),
               DNNLIB_CACHE_DIR=str(tmp_path / 'dnnlib'))
    for name in ('HF_HUB_CACHE', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', model_zoo.ENV_URL_BASE):
        env.pop(name, None)
    done = subprocess.run(['bash', str(work / 'quickstart.sh')], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stdout == ''
    assert done.stderr.count('\n') == 1 and done.stderr.startswith(
        "Error: could not download model 'stylegan_human_v2_512': no network (cannot resolve host huggingface.co).")
    assert not (work / 'outputs').exists()
