"""Which networks a web page may name, and fetching them under those rules.

The command lines load whatever ``--network`` says: whoever types it owns the machine. A web
page's network field is typed by whoever can reach the page, so :class:`NetworkAccess` holds
it to the rules the server was started with:

- a model-zoo name (downloaded from the zoo's own sources);
- a file inside one of the allowed folders (``network_dirs``, symlinks and ``..`` resolved
  first, so a link inside a folder to a file outside it is refused), or the network the
  server was started with (``start_network``, always allowed);
- an ``http://`` or ``https://`` URL, only with ``allow_urls``, and only when every address
  its host resolves to is a public one (:func:`address_problem`); each redirect the download
  meets is checked the same way before it is requested.

A file that is missing and one outside the folders give the same message, so the page tells
nothing about what exists on the server.
"""

import dataclasses
import ipaddress
import os
import re
import socket
import urllib.parse
from typing import Callable, List, Optional, Sequence

from dnnlib import util
from dnnlib.errors import InputError
from stylegan_human import zoo

Resolver = Callable[[str, int], List[str]]   # (host, port) -> the IP addresses it resolves to

_SHOWN_LENGTH = 200                  # a name longer than this is cut in messages
_NAT64 = ipaddress.ip_network('64:ff9b::/96')
_URL_FORBIDDEN = re.compile(r'[\x00-\x20\x7f\\]')   # parsers disagree on URLs with these


class NetworkAccessError(InputError):
    """A network the page may not load (or that is not there); ``str(err)`` is one line."""


def shown(spec: str) -> str:
    """``spec`` as put in a one-line message: whitespace collapsed, cut when very long."""
    text = ' '.join(str(spec).split())
    text = ''.join(ch if ch.isprintable() else '?' for ch in text)
    return text if len(text) <= _SHOWN_LENGTH else text[:_SHOWN_LENGTH] + '...'


def address_problem(address: str) -> Optional[str]:
    """Why the IP ``address`` is not a public unicast address (``'loopback'``, ``'private'``, ...), or None.

    IPv6 addresses that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
    ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the IPv4 address as well.
    """
    try:
        ip = ipaddress.ip_address(address.split('%', 1)[0])   # an IPv6 zone (fe80::1%eth0) is not part of it
    except ValueError:
        return 'unreadable'
    if ip.version == 6:
        for embedded in _embedded_ipv4(ip):
            problem = _ip_problem(embedded)
            if problem is not None:
                return f'{problem} (as {embedded})'
    return _ip_problem(ip)


def _embedded_ipv4(ip):
    found = [ip.ipv4_mapped, ip.sixtofour]
    if ip in _NAT64:   # (IPv4-compatible ::a.b.c.d needs no unwrapping: ::/8 is reserved)
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.teredo:
        found.extend(ip.teredo)
    return [address for address in found if address is not None]


def _ip_problem(ip):
    for problem in ('unspecified', 'loopback', 'link_local', 'multicast', 'private', 'reserved', 'site_local'):
        if getattr(ip, f'is_{problem}', False):
            return problem.replace('_', '-')
    return None if ip.is_global else 'not globally routable'


def resolve_host(host: str, port: int) -> List[str]:
    """Every IP address ``host`` resolves to (the system resolver; raises OSError)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def check_public_url(url: str, resolve: Resolver = resolve_host) -> None:
    """Raise :class:`NetworkAccessError` unless ``url`` is http(s) to a host whose every address is public.

    Nothing is requested from the host: only its name is resolved (by ``resolve``).
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ('http', 'https'):
        raise NetworkAccessError(f'{shown(url)}: only http:// and https:// URLs can be loaded')
    if _URL_FORBIDDEN.search(url) or '@' in parts.netloc:
        raise NetworkAccessError(f'{shown(url)}: refused: a URL with spaces, backslashes or user@ in it')
    try:
        host, port = parts.hostname, parts.port or (443 if scheme == 'https' else 80)
    except ValueError:
        raise NetworkAccessError(f'{shown(url)}: not a valid URL (bad port)') from None
    if not host:
        raise NetworkAccessError(f'{shown(url)}: the URL names no host')
    try:
        addresses = resolve(host, port)
    except (OSError, ValueError) as err:   # unknown host; UnicodeError (a bad international name) is a ValueError
        raise NetworkAccessError(f'{shown(url)}: cannot resolve {shown(host)} ({err})') from None
    if not addresses:
        raise NetworkAccessError(f'{shown(url)}: {shown(host)} resolves to no address')
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            which = f'{shown(host)} is' if host == address else f'{shown(host)} is {address},'
            raise NetworkAccessError(f'{shown(url)}: refused: {which} a {problem} address, not a public one')


@dataclasses.dataclass(frozen=True)
class NetworkSource:
    """A network the page may load: ``kind`` is ``'start'``, ``'zoo'``, ``'file'`` or ``'url'``.

    ``target`` is what is loaded: the start spec as given, the zoo name, the real path of the
    file, or the URL. ``key`` is the same for every spelling of one network.
    """

    kind: str
    spec: str
    target: str

    @property
    def key(self) -> str:
        return f'{self.kind}:{self.target}'


class NetworkAccess:
    """The rules of the module docstring, for one server.

    ``network_dirs``: folders whose files (at any depth) the page may load. ``start_network``:
    the spec the server was started with, loaded as the command lines would (any path, URL or
    zoo name). ``allow_urls``: whether URLs may be given at all. ``resolve`` looks host names
    up (tests replace it); ``download_dir`` is where downloads from page URLs are cached
    (kept apart from the command lines' cache, so a URL's answer is only reused when it was
    fetched under these rules).
    """

    def __init__(self, network_dirs: Sequence[str] = (), start_network: str = '', allow_urls: bool = False,
                 resolve: Resolver = resolve_host, download_dir: Optional[str] = None):
        self.network_dirs = []
        for folder in network_dirs:
            real = os.path.realpath(os.path.expanduser(os.fspath(folder)))
            if not os.path.isdir(real):
                raise InputError(f'{folder}: not a folder', param='network_dirs')
            self.network_dirs.append(real)
        self.start_network = (start_network or '').strip()
        self.allowed_files = set()   # real paths allowed wherever they are: the start network's file
        self._start_is_file = bool(self.start_network) and '://' not in self.start_network and \
            os.path.isfile(self.start_network)
        if self._start_is_file:
            self.allowed_files.add(os.path.realpath(self.start_network))
        self.allow_urls = allow_urls
        self.resolve = resolve
        self.download_dir = download_dir or util.make_cache_dir_path('app-downloads')

    def locate(self, spec: str) -> NetworkSource:
        """What the page's ``spec`` names, if it may be loaded; NetworkAccessError (one line) if not."""
        spec = (spec or '').strip()
        if not spec:
            raise NetworkAccessError('Network: give a model-zoo name, a .pkl or .safetensors file, or a URL')
        if spec == self.start_network and not self._start_is_file:   # a zoo name or URL, as given
            return NetworkSource('start', spec, spec)
        if '://' in spec:
            return self._locate_url(spec)
        path = self._allowed_file(spec)
        if path is not None:
            return NetworkSource('file', spec, path)
        if '/' not in spec and os.sep not in spec:
            try:
                return NetworkSource('zoo', spec, zoo.get_model(spec).name)
            except zoo.ModelZooError:
                pass
        where = 'the folders this app serves (--network-dir)' if self.network_dirs else \
            'no folder: the app was started without --network-dir'
        raise NetworkAccessError(f'Network {shown(spec)}: not a model-zoo name, and no network file of that name '
                                 f'is available ({where})')

    def check_url(self, url: str) -> None:
        """:func:`check_public_url` with this server's resolver (``open_url``'s ``url_check`` for page URLs)."""
        check_public_url(url, self.resolve)

    def fetch(self, source: NetworkSource, verbose: bool = False) -> str:
        """What to hand to ``network_files.load_network`` for ``source``: a local file (downloaded if
        needed, every URL of the download checked first) or, for the start network, its spec."""
        if source.kind == 'file':
            return source.target
        if source.kind == 'start':
            return source.spec
        if source.kind == 'zoo':
            return zoo.download_model(source.target, verbose=verbose)
        if source.kind == 'url':
            return util.open_url(source.target, cache_dir=self.download_dir, verbose=verbose, return_filename=True,
                                 url_check=self.check_url)
        raise ValueError(f'unknown network source kind {source.kind!r}')

    def _locate_url(self, spec):
        if not self.allow_urls:
            raise NetworkAccessError(f'Network {shown(spec)}: URLs are turned off in this app '
                                     '(start it with --allow-urls to allow public ones)')
        try:
            self.check_url(spec)
        except NetworkAccessError as err:
            raise NetworkAccessError(f'Network {err}') from None
        return NetworkSource('url', spec, spec)

    def _allowed_file(self, spec):
        """The real path of an existing file ``spec`` names inside the allowed places, else None.

        A relative name is tried from the current folder, then from each allowed folder.
        """
        try:
            candidates = [os.path.realpath(spec)]
            if not os.path.isabs(spec):
                candidates += [os.path.realpath(os.path.join(folder, spec)) for folder in self.network_dirs]
        except (ValueError, OSError):   # a NUL byte, a name too long: no such file
            return None
        for path in candidates:
            if self._inside(path) and os.path.isfile(path):
                return path
        return None

    def _inside(self, path):
        if path in self.allowed_files:
            return True
        return any(os.path.commonpath([path, folder]) == folder for folder in self.network_dirs)
