"""stylegan_human.network_access: which networks a page may name (folders, zoo names, public URLs only)."""

import http.server
import os
import threading

import pytest

from dnnlib.errors import InputError
from stylegan_human import network_access
from stylegan_human.network_access import NetworkAccess, NetworkAccessError, address_problem, check_public_url

PUBLIC = '93.184.216.34'


class LoggingServer:
    """A local HTTP server with routes ``path -> (status, headers, body)``, logging every request it gets."""

    def __init__(self):
        log = self.log = []
        routes = self.routes = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                log.append(self.path)
                status, headers, body = routes.get(self.path.split('?')[0], (404, {}, b''))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.02), daemon=True).start()

    def url(self, path, host='127.0.0.1'):
        return f'http://{host}:{self.port}{path}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def local_server(monkeypatch):
    for var in ('HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1,localhost')
    server = LoggingServer()
    yield server
    server.close()


@pytest.fixture
def network_bytes(fixtures_dir):
    return (fixtures_dir / 'networks' / 'sg2_rect64.pkl').read_bytes()


@pytest.mark.parametrize('address, problem', [
    ('127.0.0.1', 'loopback'), ('127.8.9.10', 'loopback'), ('10.1.2.3', 'private'), ('172.16.0.1', 'private'),
    ('192.168.1.1', 'private'), ('169.254.169.254', 'link-local'), ('0.0.0.0', 'unspecified'),
    ('224.0.0.1', 'multicast'), ('100.64.0.1', 'not globally routable'), ('255.255.255.255', None),
    ('::1', 'loopback'), ('::', 'unspecified'), ('fe80::1%eth0', 'link-local'), ('fc00::1', 'private'),
    ('ff02::1', 'multicast'), ('::ffff:127.0.0.1', 'loopback'), ('::ffff:169.254.169.254', 'link-local'),
    ('2002:7f00:1::', 'loopback'), ('64:ff9b::a9fe:a9fe', 'link-local'), ('::7f00:1', 'reserved'),
    ('not an address', 'unreadable'),
])
def test_addresses_that_are_not_public(address, problem):
    found = address_problem(address)
    assert found is not None
    if problem is not None:
        assert found.startswith(problem)


@pytest.mark.parametrize('address', ['8.8.8.8', PUBLIC, '2606:4700:4700::1111', '2a00:1450:4001:80b::200e'])
def test_public_addresses_pass(address):
    assert address_problem(address) is None


def test_a_url_is_refused_if_any_resolved_address_is_not_public():
    answers = {'mixed.test': [PUBLIC, '10.0.0.7'], 'public.test': [PUBLIC, '2606:4700:4700::1111']}
    resolve = lambda host, port: answers[host]   # noqa: E731
    check_public_url('https://public.test/g.pkl', resolve)
    with pytest.raises(NetworkAccessError, match=r'mixed\.test is 10\.0\.0\.7, a private address'):
        check_public_url('http://mixed.test/g.pkl', resolve)


@pytest.mark.parametrize('url, message', [
    ('file:///etc/passwd', 'only http'), ('ftp://public.test/g.pkl', 'only http'),
    ('gopher://public.test/', 'only http'), ('http:///g.pkl', 'no host'),
    ('http://user@public.test/g.pkl', 'user@'), ('http://public.test\\@127.0.0.1/', 'backslash'),
    ('http://public.test:99999/g.pkl', 'bad port'), ('http://nowhere.test/g.pkl', 'cannot resolve'),
])
def test_urls_that_are_refused_before_any_request(url, message):
    def resolve(host, port):
        if host == 'public.test':
            return [PUBLIC]
        raise OSError('Name or service not known')
    with pytest.raises(NetworkAccessError, match=message):
        check_public_url(url, resolve)


@pytest.mark.parametrize('host', ['127.0.0.1', 'localhost', '2130706433', '[::1]', '[::ffff:127.0.0.1]'])
def test_a_local_server_with_a_real_network_is_refused_unasked(local_server, network_bytes, tmp_path, host):
    local_server.routes['/g.pkl'] = (200, {}, network_bytes)
    access = NetworkAccess(allow_urls=True, download_dir=str(tmp_path / 'downloads'))   # the real resolver
    url = local_server.url('/g.pkl', host)
    with pytest.raises(NetworkAccessError, match='refused: .* address, not a public one'):
        access.locate(url)
    assert local_server.log == []                 # nothing was requested from it
    assert not (tmp_path / 'downloads').exists()


def test_urls_are_off_unless_allowed(local_server):
    access = NetworkAccess(resolve=lambda host, port: [PUBLIC])
    with pytest.raises(NetworkAccessError, match='--allow-urls'):
        access.locate('https://public.test/g.pkl')
    with pytest.raises(NetworkAccessError, match='--allow-urls'):
        access.locate('file:///etc/passwd')


def _needs_url_check():
    import inspect
    from dnnlib import util
    if 'url_check' not in inspect.signature(util.open_url).parameters:
        pytest.skip('dnnlib.util.open_url has no url_check yet')


def test_a_redirect_to_a_local_address_is_refused_before_it_is_followed(local_server, network_bytes, tmp_path):
    _needs_url_check()
    inside = LoggingServer()           # the address the redirect points at: must never be asked
    try:
        inside.routes['/g.pkl'] = (200, {}, network_bytes)
        local_server.routes['/g.pkl'] = (302, {'Location': inside.url('/g.pkl')}, b'')

        def resolve(host, port):       # the first server stands in for a public host
            return [PUBLIC] if (host, port) == ('127.0.0.1', local_server.port) else \
                network_access.resolve_host(host, port)
        access = NetworkAccess(allow_urls=True, resolve=resolve, download_dir=str(tmp_path / 'dl'))
        source = access.locate(local_server.url('/g.pkl'))
        with pytest.raises(NetworkAccessError, match=f'127.0.0.1:{inside.port}/g.pkl: refused: .*loopback'):
            access.fetch(source)
        assert local_server.log == ['/g.pkl'] and inside.log == []
    finally:
        inside.close()


def test_a_public_url_is_downloaded_into_its_own_cache(local_server, network_bytes, tmp_path):
    _needs_url_check()
    local_server.routes['/g.pkl'] = (200, {}, network_bytes)
    access = NetworkAccess(allow_urls=True, resolve=lambda host, port: [PUBLIC], download_dir=str(tmp_path / 'dl'))
    source = access.locate(local_server.url('/g.pkl'))
    assert source.kind == 'url'
    path = access.fetch(source)
    assert os.path.dirname(path) == str(tmp_path / 'dl')
    with open(path, 'rb') as f:
        assert f.read() == network_bytes


def _refusal(access, spec):
    with pytest.raises(NetworkAccessError) as info:
        access.locate(spec)
    return str(info.value).replace(network_access.shown(spec), 'SPEC')


def test_files_only_inside_the_allowed_folders_and_the_same_message_otherwise(tmp_path):
    allowed = tmp_path / 'allowed'
    (allowed / 'sub').mkdir(parents=True)
    (allowed / 'sub' / 'g.pkl').write_bytes(b'\x80\x04x')
    outside = tmp_path / 'outside.pkl'
    outside.write_bytes(b'\x80\x04x')
    (allowed / 'link.pkl').symlink_to(outside)
    (allowed / 'sublink').symlink_to(tmp_path)
    access = NetworkAccess([str(allowed)])

    inside = access.locate(str(allowed / 'sub' / 'g.pkl'))
    assert (inside.kind, inside.target) == ('file', os.path.realpath(allowed / 'sub' / 'g.pkl'))
    assert access.locate('sub/g.pkl').target == inside.target              # relative to an allowed folder
    assert access.locate(str(allowed / 'sub' / '..' / 'sub' / 'g.pkl')).key == inside.key

    missing = _refusal(access, str(allowed / 'missing.pkl'))
    assert 'not a model-zoo name' in missing and '--network-dir' in missing
    for spec in (str(outside), '/etc/shadow', '/etc/passwd', '/no/such/file', str(allowed / 'link.pkl'),
                 str(allowed / 'sublink' / 'outside.pkl'), str(allowed / '..' / 'outside.pkl'), '../outside.pkl',
                 str(allowed), 'bad\x00name', '/etc'):
        assert _refusal(access, spec) == missing, spec


def test_zoo_names_and_the_start_network_are_always_allowed(tmp_path, fixtures_dir):
    start = str(fixtures_dir / 'networks' / 'sg2_rect64.pkl')
    access = NetworkAccess(start_network=start)
    assert access.locate(start).target == os.path.realpath(start)
    assert access.locate('stylegan_human_v2_512').kind == 'zoo'
    assert access.locate('STYLEGAN_HUMAN_V2_512.pkl').target == 'stylegan_human_v2_512'
    with pytest.raises(NetworkAccessError, match='without --network-dir'):
        access.locate(str(fixtures_dir / 'networks' / 'sg3t_rect64.pkl'))
    with pytest.raises(NetworkAccessError, match='Network: give'):
        access.locate('  ')
    by_url = NetworkAccess(start_network='http://10.0.0.5/models/g.pkl')   # the operator's choice: not checked
    assert by_url.locate('http://10.0.0.5/models/g.pkl').kind == 'start'


def test_a_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match='not a folder'):
        NetworkAccess([str(tmp_path / 'nope')])
