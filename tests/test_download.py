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

    # Response helpers used by the routes.

    def send_data(self, data, honour_range=True, cut_after=None, filename=None, etag='"v1"'):
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
        self.end_headers()
        body = data[start:]
        if cut_after is not None:
            body = body[:cut_after]
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

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
