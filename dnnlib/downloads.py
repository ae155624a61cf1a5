"""Downloads: ``open_url`` with a verified on-disk cache, resumable transfers and Google Drive's
confirm pages (read by :mod:`dnnlib.gdrive`); a caller's ``url_check`` policy sees every URL first.

``dnnlib.util`` re-exports the public names (``open_url``, ``is_url``, ``find_cached``,
``DownloadError``, ``OfflineError``), so code written for NVIDIA's ``dnnlib.util.open_url``
keeps working. Files on the Hugging Face Hub have their own path, :mod:`dnnlib.hf_hub`.
"""

import glob
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.parse
from typing import Callable, Optional

from dnnlib import errors, gdrive

UrlCheck = Callable[[str], None]   # a policy: raises to refuse a URL before it is requested


def make_cache_dir_path(*paths):
    """Where downloads are cached: $DNNLIB_CACHE_DIR, else ~/.cache/dnnlib."""
    if 'DNNLIB_CACHE_DIR' in os.environ:
        return os.path.join(os.environ['DNNLIB_CACHE_DIR'], *paths)
    if 'HOME' in os.environ:
        return os.path.join(os.environ['HOME'], '.cache', 'dnnlib', *paths)
    if 'USERPROFILE' in os.environ:
        return os.path.join(os.environ['USERPROFILE'], '.cache', 'dnnlib', *paths)
    return os.path.join(os.path.expanduser('~'), '.cache', 'dnnlib', *paths)


# ----------------------------------------------------------------------------
# URLs and downloads
#
# Cache layout (inside cache_dir, by default make_cache_dir_path('downloads')):
#   <md5 of url>_<file name>     a finished, verified download (the only visible name)
#   .<md5>.part / .part.json     an unfinished download and what is known about it,
#                                kept so that the next attempt can resume it
#   .<md5>.sha256                the sha256 already computed for the finished file
#   .<md5>.lock                  serialises concurrent downloads of one URL

_CONNECT_TIMEOUT = 20       # seconds to establish a connection
_READ_TIMEOUT = 60          # seconds without a byte before giving up on a response
_CHUNK = 1 << 20            # bytes per read when hashing files
_STREAM_CHUNK = 1 << 16     # bytes per network read (what a dropped connection may lose)
_MAX_CONNECT_TRIES = 2      # connection failures (offline, refused) are rarely transient
_MAX_CONFIRM_HOPS = 3       # Google Drive confirmation pages followed per attempt
_MAX_REDIRECTS = 20         # HTTP redirects followed per request
_HTML_PEEK = 1 << 20        # how much of an HTML answer is read to look for a confirm step
_sleep = time.sleep         # tests may replace this to skip back-off delays


class DownloadError(errors.DownloadError):
    """A download (or a checked local file) failed; ``str(err)`` is one line for the user.

    ``err.url`` is the address that was asked for and ``err.reason`` says what went
    wrong (no network, HTTP status, checksum or size mismatch, truncated transfer).
    """

    def __init__(self, url, reason):
        self.url = url
        self.reason = reason
        super().__init__(f'could not download {url}: {reason}')

    def __reduce__(self):  # Picklable (e.g. across worker processes) despite the two-argument init.
        return (DownloadError, (self.url, self.reason))


class OfflineError(DownloadError):
    """The host's name could not be resolved: this machine is most likely offline.

    Final: never retried, and callers with several mirrors stop at the first one
    (``err.host`` is the name that failed).
    """

    def __init__(self, url, reason, host=''):
        self.host = host
        super().__init__(url, reason)

    def __reduce__(self):
        return (OfflineError, (self.url, self.reason, self.host))


def is_url(obj, allow_file_urls=False):
    """True if ``obj`` is a string that looks like a usable absolute URL.

    Like NVIDIA's dnnlib: the host must contain a dot (so ``http://localhost`` is
    not accepted); ``file://`` URLs count only with ``allow_file_urls=True``.
    """
    if not isinstance(obj, str) or '://' not in obj:
        return False
    if allow_file_urls and obj.startswith('file://'):
        return True
    try:
        for candidate in (obj, urllib.parse.urljoin(obj, '/')):
            parts = urllib.parse.urlparse(candidate)
            if not parts.scheme or not parts.netloc or '.' not in parts.netloc:
                return False
    except ValueError:
        return False
    return True


def _format_bytes(n):
    value = float(n)
    for unit in ('B', 'KiB', 'MiB'):
        if value < 1024:
            return f'{int(value)} B' if unit == 'B' else f'{value:.1f} {unit}'
        value /= 1024
    return f'{value:.1f} GiB'


def _file_url_to_path(url):
    path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
    if re.match(r'^/[a-zA-Z]:', path):  # file:///C:/x -> C:/x on Windows
        path = path[1:]
    return path


def file_sha256(path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def _check_local(path, label, expected_size, sha256):
    """Raise DownloadError if a file on disk does not have the expected size or hash."""
    if expected_size is not None:
        size = os.path.getsize(path)
        if size != expected_size:
            raise DownloadError(label, f'file {path} has {size} bytes, expected {expected_size}')
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise DownloadError(label, f'sha256 mismatch for {path} (expected {sha256.lower()}, got {actual})')


class _CachePaths:
    """Names of the files one URL owns inside the cache folder."""

    def __init__(self, cache_dir, url):
        self.dir = cache_dir
        self.key = hashlib.md5(url.encode('utf-8')).hexdigest()
        self.part = os.path.join(cache_dir, f'.{self.key}.part')
        self.meta = self.part + '.json'
        self.marker = os.path.join(cache_dir, f'.{self.key}.sha256')
        self.lock = os.path.join(cache_dir, f'.{self.key}.lock')

    def final(self, name):
        safe = re.sub(r'[^0-9a-zA-Z._-]', '_', name)[-120:] or 'download'
        return os.path.join(self.dir, f'{self.key}_{safe}')

    def finished(self):
        pattern = os.path.join(glob.escape(self.dir), self.key + '_*')
        found = [p for p in glob.glob(pattern) if os.path.isfile(p)]
        return sorted(found, key=os.path.getmtime, reverse=True)

    def read_marker(self, path):
        try:
            with open(self.marker) as f:
                info = json.load(f)
            st = os.stat(path)
            if info.get('file') == os.path.basename(path) and info.get('size') == st.st_size \
                    and info.get('mtime_ns') == st.st_mtime_ns:
                return info.get('sha256')
        except (OSError, ValueError):
            pass
        return None

    def write_marker(self, path, digest):
        st = os.stat(path)
        info = dict(file=os.path.basename(path), size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=digest)
        tmp = self.marker + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(info, f)
        os.replace(tmp, self.marker)

    def discard_part(self):
        for p in (self.part, self.meta):
            if os.path.exists(p):
                os.remove(p)


def _valid_cached(paths, path, expected_size, sha256):
    """Whether a finished cache file matches the expectations (hash remembered once computed)."""
    if expected_size is not None and os.path.getsize(path) != expected_size:
        return False
    if sha256 is not None:
        digest = paths.read_marker(path)
        if digest is None:
            digest = file_sha256(path)
            paths.write_marker(path, digest)
        if digest != sha256.lower():
            return False
    return True


def _lookup_cache(paths, expected_size, sha256, verbose):
    for path in paths.finished():
        if _valid_cached(paths, path, expected_size, sha256):
            return path
        if verbose:
            print(f'Discarding cached {path}: it does not match the expected size or sha256', file=sys.stderr)
        os.remove(path)
    return None


def find_cached(url, cache_dir=None, expected_size=None, sha256=None):
    """The finished cache file for ``url`` (checked against size/sha256 when given), or None.

    Never touches the network.
    """
    cache_dir = make_cache_dir_path('downloads') if cache_dir is None else os.fspath(cache_dir)
    if not os.path.isdir(cache_dir):
        return None
    return _lookup_cache(_CachePaths(cache_dir, url), expected_size, sha256, verbose=False)


class _Lock:
    """An exclusive advisory lock on a file (a no-op where fcntl is unavailable)."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            import fcntl
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _filename_from(response, url):
    disposition = response.headers.get('Content-Disposition', '')
    match = re.search(r"filename\*\s*=\s*[^']*'[^']*'([^;]+)", disposition)
    if match:
        return os.path.basename(urllib.parse.unquote(match.group(1).strip()))
    match = re.search(r'filename\s*=\s*"([^"]*)"', disposition) or re.search(r'filename\s*=\s*([^;\s]+)', disposition)
    if match and match.group(1):
        return os.path.basename(match.group(1))
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    return name or 'download'


def is_name_resolution_failure(err: BaseException) -> bool:
    """Whether ``err`` (from requests, urllib3, httpx, ...) comes down to a failed DNS lookup."""
    seen = set()
    pending = [err]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or not isinstance(current, BaseException):
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror) or type(current).__name__ == 'NameResolutionError':
            return True
        pending += [current.__cause__, current.__context__, getattr(current, 'reason', None), *current.args]
    return False


def _connect_reason(err):
    """A short description of a failure to reach a server at all."""
    text = str(err)
    host = ''
    request = getattr(err, 'request', None)
    if request is not None and getattr(request, 'url', None):
        host = urllib.parse.urlsplit(request.url).netloc
    where = f' {host}' if host else ''
    lowered = text.lower()
    if 'name or service not known' in lowered or 'nodename nor servname' in lowered \
            or 'failed to resolve' in lowered or 'name resolution' in lowered or 'getaddrinfo' in lowered:
        return f'no network (cannot resolve host{where})'
    if 'refused' in lowered:
        return f'connection refused by{where or " the server"}'
    if 'timed out' in lowered or 'timeout' in lowered:
        return f'no network (connection to{where or " the server"} timed out)'
    if 'proxy' in lowered:
        return f'proxy error while connecting to{where or " the server"}'
    if 'ssl' in lowered or 'certificate' in lowered:
        return f'TLS/SSL error with{where or " the server"}'
    return f'no network (cannot connect to{where or " the server"})'


class _Retry(Exception):
    """An attempt failed in a way worth retrying; ``kind`` sets how many tries it gets."""

    def __init__(self, reason, kind):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class _Hop(Exception):
    """Follow a confirmation page to this URL (does not count as a failed attempt)."""

    def __init__(self, url):
        super().__init__(url)
        self.url = url


class _UrlChecker:
    """Asks the caller's ``url_check`` about each URL once, before it is first requested.

    What the policy raises is remembered, so that no handler of ours wraps it on the way out.
    """

    def __init__(self, url_check):
        self.url_check = url_check
        self.approved = set()
        self.refusal = None

    def __call__(self, url):
        if self.url_check is None or url in self.approved:
            return
        try:
            self.url_check(url)
        except Exception as err:
            self.refusal = err
            raise
        self.approved.add(url)


class _Downloader:
    """Fetches one URL into ``paths.part`` with retries, resume and verification."""

    def __init__(self, url, paths, session, verbose, expected_size, sha256, check):
        self.url = url
        self.paths = paths
        self.session = session
        self.verbose = verbose
        self.expected_size = expected_size
        self.sha256 = sha256.lower() if sha256 else None
        self.target = url
        self.check = check
        self.announced = False

    def _log(self, message):
        if self.verbose:
            print(message, file=sys.stderr, flush=True)

    def _part_offset(self):
        """Bytes already on disk from an earlier attempt at this URL (0 if none usable)."""
        if not os.path.exists(self.paths.part):
            return 0, {}
        try:
            with open(self.paths.meta) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            meta = None
        if not meta or meta.get('url') != self.url:
            self.paths.discard_part()
            return 0, {}
        return os.path.getsize(self.paths.part), meta

    def run(self, num_attempts):
        attempts = 0
        hops = 0
        restarts = 0
        while True:
            attempts += 1
            try:
                return self._attempt()
            except _Hop as hop:
                attempts -= 1
                hops += 1
                if hops > _MAX_CONFIRM_HOPS:
                    raise DownloadError(self.url, 'Google Drive kept answering with a confirmation page') from None
                self.target = hop.url
            except _Retry as failure:
                if failure.kind == 'restart':
                    # The partial file was unusable and has been discarded: start over at once,
                    # without counting it as a failed attempt (but not forever).
                    attempts -= 1
                    restarts += 1
                    if restarts > 2:
                        raise DownloadError(self.url, failure.reason) from None
                    self._log(f'{failure.reason}; starting the download over')
                    continue
                limit = min(num_attempts, _MAX_CONNECT_TRIES) if failure.kind == 'connect' else num_attempts
                if attempts >= limit:
                    raise DownloadError(self.url, failure.reason) from None
                self._log(f'Download attempt {attempts} failed ({failure.reason}); retrying')
                _sleep(min(0.5 * 2 ** (attempts - 1), 8.0))

    def _attempt(self):
        offset, meta = self._part_offset()
        headers = {'Accept-Encoding': 'identity'}  # Byte counts must match Content-Length / Range.
        if offset > 0:
            headers['Range'] = f'bytes={offset}-'
            etag = meta.get('etag') or ''
            if etag and not etag.startswith('W/'):
                headers['If-Range'] = etag
            elif meta.get('last_modified'):
                headers['If-Range'] = meta['last_modified']
        response = self._request(self.target, headers)
        with response:
            return self._receive(response, offset, meta)

    def _request(self, url, headers):
        """GET ``url``, following redirects here so that ``check`` sees every address before it is asked."""
        import requests

        for _ in range(_MAX_REDIRECTS + 1):
            self.check(url)
            try:
                response = self.session.get(url, headers=headers, stream=True, allow_redirects=False,
                                            timeout=(_CONNECT_TIMEOUT, _READ_TIMEOUT))
            except requests.exceptions.ConnectionError as err:
                if is_name_resolution_failure(err):  # Offline: retrying (or waiting) will not help.
                    host = urllib.parse.urlsplit(url).hostname or url
                    raise OfflineError(self.url, f'no network (cannot resolve host {host})', host=host) from None
                raise _Retry(_connect_reason(err), 'connect') from None
            except requests.exceptions.Timeout:
                raise _Retry('the server did not answer in time', 'server') from None
            except requests.exceptions.RequestException as err:
                raise DownloadError(self.url, f'invalid request ({type(err).__name__}: {err})') from None
            location = self.session.get_redirect_target(response)
            if location is None:
                return response
            response.close()
            url = urllib.parse.urljoin(response.url or url, location)
        raise DownloadError(self.url, 'too many redirects')

    def _receive(self, response, offset, meta):
        network_errors = _network_errors()
        status = response.status_code
        if status == 416 and offset > 0:
            # The server cannot serve the rest of what we hold: start over.
            self.paths.discard_part()
            raise _Retry('server refused to resume the partial download', 'restart')
        if status >= 400:
            reason = f'HTTP {status}' + (f' {response.reason}' if response.reason else '')
            if status in (408, 425, 429) or status >= 500:
                raise _Retry(reason, 'server')
            raise DownloadError(self.url, reason)

        first = b''
        content_type = response.headers.get('Content-Type', '').lower()
        if 'text/html' in content_type:
            try:
                first = response.raw.read(_HTML_PEEK, decode_content=True) or b''
            except network_errors:
                raise _Retry('connection lost while reading the server\'s answer', 'server') from None
            text = first.decode('utf-8', errors='replace')
            page_url = response.url or self.target
            if gdrive.is_drive_page(page_url, text):
                try:
                    next_url = gdrive.next_url(page_url, text)
                except gdrive.DrivePageError as err:
                    raise DownloadError(self.url, str(err)) from None
                if next_url == self.target:
                    raise DownloadError(self.url, 'Google Drive kept answering with a confirmation page')
                raise _Hop(next_url)

        total = None
        if status == 206:
            match = re.match(r'bytes\s+(\d+)-(\d+)/(\d+|\*)', response.headers.get('Content-Range', ''))
            if not match or int(match.group(1)) != offset:
                self.paths.discard_part()
                raise _Retry('server answered a resume request with the wrong range', 'restart')
            if match.group(3) != '*':
                total = int(match.group(3))
            self._log(f'Resuming download of {self.url} at {_format_bytes(offset)}')
        else:
            if offset > 0:
                self._log('Server does not support resuming; restarting the download')
            offset = 0
            length = response.headers.get('Content-Length')
            if length is not None and length.isdigit():
                total = int(length)
            meta = {}
        if status == 206 and total is None:
            length = response.headers.get('Content-Length')
            if length is not None and length.isdigit():
                total = offset + int(length)
        if total is not None and self.expected_size is not None and total != self.expected_size:
            self.paths.discard_part()
            raise DownloadError(self.url, f'server offers {total} bytes, expected {self.expected_size} '
                                          '(wrong or changed file)')

        name = _filename_from(response, response.url or self.target)
        meta = dict(url=self.url, name=name, total=total,
                    etag=response.headers.get('ETag') or meta.get('etag'),
                    last_modified=response.headers.get('Last-Modified') or meta.get('last_modified'))
        with open(self.paths.meta, 'w') as f:
            json.dump(meta, f)

        digest = hashlib.sha256() if self.sha256 else None
        if digest is not None and offset > 0:
            with open(self.paths.part, 'rb') as f:
                for block in iter(lambda: f.read(_CHUNK), b''):
                    digest.update(block)

        from tqdm import tqdm
        if not self.announced:  # Said only once a server answers, so that an offline failure is one line.
            self._log(f'Downloading {self.url}')
            self.announced = True
        written = offset
        bar = tqdm(total=total, initial=offset, unit='B', unit_scale=True, unit_divisor=1024,
                   desc=name, file=sys.stderr, disable=not self.verbose, leave=True, dynamic_ncols=True)
        try:
            with open(self.paths.part, 'ab' if offset > 0 else 'wb') as f:
                try:
                    for chunk in _prepend(first, response.iter_content(_STREAM_CHUNK)):
                        if not chunk:
                            continue
                        f.write(chunk)
                        written += len(chunk)
                        if digest is not None:
                            digest.update(chunk)
                        bar.update(len(chunk))
                except network_errors:  # Disk errors (e.g. disk full) are not caught here.
                    f.flush()
                    raise _Retry(self._truncated(written, total), 'transfer') from None
        finally:
            bar.close()

        if total is not None and written < total:
            raise _Retry(self._truncated(written, total), 'transfer')
        if total is not None and written > total:
            self.paths.discard_part()
            raise _Retry(f'received {written} bytes but the server announced {total}', 'restart')
        if written == 0:
            self.paths.discard_part()
            raise _Retry('no data received', 'transfer')
        if self.expected_size is not None and written != self.expected_size:
            self.paths.discard_part()
            raise DownloadError(self.url, f'received {written} bytes, expected {self.expected_size}')
        actual = digest.hexdigest() if digest is not None else None
        if self.sha256 is not None and actual != self.sha256:
            self.paths.discard_part()
            reason = f'sha256 mismatch (expected {self.sha256}, got {actual}); the file was discarded'
            if offset > 0:  # A resumed file may be spliced from two versions: try once from scratch.
                raise _Retry(reason, 'restart')
            raise DownloadError(self.url, reason)
        return name, actual

    def _truncated(self, written, total):
        of = f' of {_format_bytes(total)}' if total is not None else ''
        return (f'connection lost after {_format_bytes(written)}{of} (truncated); '
                'the partial file is kept and the next attempt resumes it')


def _network_errors():
    import requests
    import urllib3
    return (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ConnectionError,
            TimeoutError)


def _prepend(first, chunks):
    if first:
        yield first
    yield from chunks


def _download_into(url, cache_dir, num_attempts, verbose, expected_size, sha256, check):
    """Download ``url`` into ``cache_dir`` and return the finished file's path."""
    paths = _CachePaths(cache_dir, url)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        return _download_locked(url, paths, num_attempts, verbose, expected_size, sha256, check)
    except DownloadError:
        raise
    except OSError as err:
        if isinstance(err, (ConnectionError, TimeoutError)) or err is check.refusal:
            raise
        # Not the network's fault: an unwritable cache folder, a full disk, ...
        where = err.filename or cache_dir
        raise DownloadError(url, f'cannot write {where} ({err.strerror or err})') from None


def _download_locked(url, paths, num_attempts, verbose, expected_size, sha256, check):
    import requests

    with _Lock(paths.lock):
        # Another process may have finished the same download while we waited.
        done = _lookup_cache(paths, expected_size, sha256, verbose)
        if done is not None:
            return done
        with requests.Session() as session:
            downloader = _Downloader(url, paths, session, verbose, expected_size, sha256, check)
            name, digest = downloader.run(num_attempts)
        final = paths.final(name)
        os.replace(paths.part, final)
        if os.path.exists(paths.meta):
            os.remove(paths.meta)
        if digest is not None:
            paths.write_marker(final, digest)
        return final


def open_url(url, cache_dir=None, num_attempts=10, verbose=True, return_filename=False, cache=True,
             expected_size=None, sha256=None, url_check: Optional[UrlCheck] = None):
    """Open a URL or a local file as a binary file object, downloading and caching as needed.

    ``url`` may be an ``http(s)://`` URL, a ``file://`` URL, or a plain local path (the
    last two are opened directly, never copied). Downloads are cached in ``cache_dir``
    (default ``make_cache_dir_path('downloads')``) under ``<md5 of url>_<file name>``;
    a cached copy is reused without touching the network. With
    ``return_filename=True`` the path of the (cached or local) file is returned instead
    of an open file; that needs ``cache=True``. With ``cache=False`` the data are
    downloaded afresh and returned in memory.

    Downloads show a tqdm progress bar on stderr when ``verbose``; go to a hidden
    temporary file in the cache folder and are renamed into place only once complete
    and verified against ``expected_size`` (bytes) and ``sha256`` (hex digest) when
    these are given; resume an interrupted transfer with an HTTP Range request when the
    server allows it (otherwise they start over); and step through Google Drive's
    "cannot scan this file for viruses" confirmation page. Transient failures are
    retried up to ``num_attempts`` times in all; a host name that cannot be resolved
    is not retried (:class:`OfflineError`).

    ``url_check``, when given, is a policy called with every URL before it is requested:
    ``url`` itself (also when a cached copy answers, and for ``file://`` URLs), each
    redirect target and each Google Drive confirmation step. Whatever it raises
    propagates unchanged (not wrapped, not retried) and nothing more is requested.

    Raises :class:`DownloadError` (one-line message) when the download fails, and
    ``FileNotFoundError`` for a missing local file.
    """
    if num_attempts < 1:
        raise ValueError('num_attempts must be at least 1')
    if return_filename and not cache:
        raise ValueError('return_filename=True needs cache=True')
    url = os.fspath(url)
    check = _UrlChecker(url_check)
    has_scheme = re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*://', url) is not None
    if has_scheme:
        check(url)
    if not has_scheme or url.lower().startswith('file://'):
        path = _file_url_to_path(url) if has_scheme else url
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{path}: file not found')
        if expected_size is not None or sha256 is not None:
            _check_local(path, url, expected_size, sha256)
        return path if return_filename else open(path, 'rb')

    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ('http', 'https'):
        raise DownloadError(url, f'unsupported URL scheme {scheme}:// (use http, https or file)')

    cache_dir = make_cache_dir_path('downloads') if cache_dir is None else os.fspath(cache_dir)
    if cache:
        if os.path.isdir(cache_dir):
            hit = _lookup_cache(_CachePaths(cache_dir, url), expected_size, sha256, verbose)
            if hit is not None:
                return hit if return_filename else open(hit, 'rb')
        path = _download_into(url, cache_dir, num_attempts, verbose, expected_size, sha256, check)
        return path if return_filename else open(path, 'rb')

    scratch = tempfile.mkdtemp(prefix='dnnlib-download-')
    try:
        path = _download_into(url, scratch, num_attempts, verbose, expected_size, sha256, check)
        with open(path, 'rb') as f:
            return io.BytesIO(f.read())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
