"""Files on the Hugging Face Hub, fetched through ``huggingface_hub``.

Downloads go through ``hf_hub_download``, so they use the cache and the settings Hub
users already know: ``HF_HOME`` / ``HF_HUB_CACHE`` (where files live), ``HF_ENDPOINT``
(a mirror of the Hub), ``HF_HUB_OFFLINE`` (cache only), ``HF_TOKEN``. On top of that this
module keeps the toolkit's promises: the file's size and sha256 are checked, a copy
already in the cache is used without any network access, a failure is a one-line
:class:`~dnnlib.downloads.DownloadError`, and a host name that does not resolve is an
:class:`~dnnlib.downloads.OfflineError` at once, without huggingface_hub's back-off retries.
"""

import dataclasses
import hashlib
import inspect
import json
import os
import sys
import urllib.parse
from typing import Optional

from dnnlib import downloads
from dnnlib.downloads import DownloadError, OfflineError

DEFAULT_ENDPOINT = 'https://huggingface.co'
_REPO_TYPE_PREFIXES = {'datasets': 'dataset', 'spaces': 'space'}


@dataclasses.dataclass(frozen=True)
class HubFile:
    """One file of a Hub repository, at a revision (a branch, tag or commit)."""

    repo_id: str
    filename: str
    revision: str = 'main'
    repo_type: str = 'model'

    @property
    def url(self) -> str:
        """The file's ``/resolve/`` address on huggingface.co (what messages name)."""
        prefix = {'dataset': 'datasets/', 'space': 'spaces/'}.get(self.repo_type, '')
        revision = urllib.parse.quote(self.revision, safe='')
        return f'{DEFAULT_ENDPOINT}/{prefix}{self.repo_id}/resolve/{revision}/{self.filename}'


def _endpoint() -> Optional[str]:
    """HF_ENDPOINT as set now (huggingface_hub reads it once, at import), or None for the default."""
    value = os.environ.get('HF_ENDPOINT', '').strip().rstrip('/')
    return value or None


def parse_hub_url(url: str) -> Optional[HubFile]:
    """The :class:`HubFile` a ``https://huggingface.co/<repo>/resolve/<revision>/<path>`` URL names, else None.

    URLs on the ``HF_ENDPOINT`` mirror, when one is set, are recognised too.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except (TypeError, ValueError):
        return None
    origins = {urllib.parse.urlsplit(e)[:2] for e in (DEFAULT_ENDPOINT, _endpoint()) if e}
    if (parts.scheme.lower(), parts.netloc.lower()) not in {(s.lower(), n.lower()) for s, n in origins}:
        return None
    segments = parts.path.strip('/').split('/')
    repo_type = _REPO_TYPE_PREFIXES.get(segments[0], 'model') if segments else 'model'
    if repo_type != 'model':
        segments = segments[1:]
    if len(segments) < 5 or segments[2] != 'resolve':
        return None
    filename = urllib.parse.unquote('/'.join(segments[4:]))
    return HubFile(repo_id='/'.join(segments[:2]), filename=filename,
                   revision=urllib.parse.unquote(segments[3]), repo_type=repo_type)


def available() -> bool:
    """Whether huggingface_hub is installed (without it, Hub URLs are plain HTTP downloads)."""
    import importlib.util
    return importlib.util.find_spec('huggingface_hub') is not None


def _hf():
    import huggingface_hub
    return huggingface_hub


def find_in_hub_cache(file: HubFile, cache_dir: Optional[str] = None, expected_size: Optional[int] = None,
                      sha256: Optional[str] = None, memo_dir: Optional[str] = None) -> Optional[str]:
    """The file's path in the Hugging Face cache if it is there and matches size and sha256; never uses the network."""
    path = _cached(file, cache_dir)
    if path is not None and _mismatch(path, expected_size, sha256, memo_dir) is None:
        return path
    return None


def _cached(file, cache_dir):
    try:
        path = _hf().try_to_load_from_cache(file.repo_id, file.filename, cache_dir=cache_dir,
                                            revision=file.revision, repo_type=file.repo_type)
    except (ValueError, OSError):
        return None
    return path if isinstance(path, str) else None


def hub_download(file: HubFile, expected_size: Optional[int] = None, sha256: Optional[str] = None,
                 cache_dir: Optional[str] = None, verbose: bool = True, memo_dir: Optional[str] = None) -> str:
    """Download ``file`` into the Hugging Face cache (``cache_dir``, default HF's) and return its path.

    A cached copy that matches ``expected_size`` / ``sha256`` is returned without network
    access; one that does not is downloaded again. Raises :class:`OfflineError` when the
    Hub's host name does not resolve or HF_HUB_OFFLINE is set and the file is not cached,
    :class:`DownloadError` for anything else (HTTP 404, gated repository, checksum).
    """
    hf = _hf()
    label = file.url
    cached = _cached(file, cache_dir)
    if cached is not None:
        problem = _mismatch(cached, expected_size, sha256, memo_dir)
        if problem is None:
            return cached
        if verbose:
            print(f'The cached {cached} does not match ({problem}); downloading it again', file=sys.stderr, flush=True)
    if _offline_mode(hf):
        if cached is not None:
            raise DownloadError(label, f'the cached copy does not match ({problem}), and HF_HUB_OFFLINE is set')
        raise OfflineError(label, 'not in the Hugging Face cache, and HF_HUB_OFFLINE is set')

    endpoint = _endpoint()
    host = urllib.parse.urlsplit(endpoint or hf.constants.ENDPOINT).hostname or 'huggingface.co'
    try:
        # One quick look first, without huggingface_hub's back-off: offline, that fails at once.
        url = hf.hf_hub_url(file.repo_id, file.filename, revision=file.revision, repo_type=file.repo_type,
                            endpoint=endpoint)
        meta = hf.get_hf_file_metadata(url, endpoint=endpoint)
    except Exception as err:
        mapped = _as_download_error(err, label, host)
        if mapped is None:
            raise
        raise mapped from None
    if expected_size is not None and meta.size is not None and meta.size != expected_size:
        raise DownloadError(label, f'the Hub offers {meta.size} bytes, expected {expected_size} (wrong or changed file)')

    if verbose:
        print(f'Downloading {label}', file=sys.stderr, flush=True)
    try:
        options = {}
        if not verbose and 'tqdm_class' in inspect.signature(hf.hf_hub_download).parameters:  # not in older releases
            options['tqdm_class'] = _quiet_bar()
        path = hf.hf_hub_download(file.repo_id, file.filename, revision=file.revision, repo_type=file.repo_type,
                                  cache_dir=cache_dir, endpoint=endpoint, force_download=cached is not None, **options)
    except Exception as err:
        mapped = _as_download_error(err, label, host)
        if mapped is None:
            raise
        raise mapped from None
    problem = _mismatch(path, expected_size, sha256, memo_dir)
    if problem is not None:
        raise DownloadError(label, f'{problem} in {path}')
    return path


def _offline_mode(hf):
    """HF_HUB_OFFLINE as huggingface_hub sees it (is_offline_mode() where it exists, the constant before)."""
    check = getattr(hf.constants, 'is_offline_mode', None)
    return bool(check() if callable(check) else hf.constants.HF_HUB_OFFLINE)


def _quiet_bar():
    from tqdm import tqdm

    class QuietBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs['disable'] = True
            super().__init__(*args, **kwargs)
    return QuietBar


# ----------------------------------------------------------------------------
# Checks


def _mismatch(path, expected_size, sha256, memo_dir):
    """Why ``path`` is not the expected file, or None if it is."""
    size = os.path.getsize(path)
    if expected_size is not None and size != expected_size:
        return f'{size} bytes, expected {expected_size}'
    if sha256 is not None:
        actual = _remembered_sha256(path, memo_dir)
        if actual != sha256.lower():
            return f'sha256 mismatch (expected {sha256.lower()}, got {actual})'
    return None


def _remembered_sha256(path, memo_dir):
    """sha256 of a file, remembered (by real path, size and mtime) so a 350 MB model is hashed once, not per load."""
    real = os.path.realpath(path)
    st = os.stat(real)
    memo_dir = memo_dir or downloads.make_cache_dir_path('downloads')
    memo = os.path.join(memo_dir, f'.hub-{hashlib.md5(real.encode("utf-8")).hexdigest()}.sha256')
    stamp = dict(file=real, size=st.st_size, mtime_ns=st.st_mtime_ns)
    try:
        with open(memo) as f:
            known = json.load(f)
        if {k: known.get(k) for k in stamp} == stamp and known.get('sha256'):
            return known['sha256']
    except (OSError, ValueError):
        pass
    digest = downloads.file_sha256(real)
    try:  # Only a cache: a read-only folder costs a re-hash next time, nothing more.
        os.makedirs(memo_dir, exist_ok=True)
        tmp = f'{memo}.{os.getpid()}.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(stamp, sha256=digest), f)
        os.replace(tmp, memo)
    except OSError:
        pass
    return digest


# ----------------------------------------------------------------------------
# huggingface_hub's exceptions as one line


def _chain(err):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _is_network_library_error(err):
    module = type(err).__module__.split('.')[0]
    return module in ('httpx', 'httpx2', 'httpcore', 'requests', 'urllib3', 'huggingface_hub', 'hf_xet') \
        or isinstance(err, OSError)


def _as_download_error(err, label, host):
    """A one-line DownloadError (OfflineError when offline) for an exception from huggingface_hub, or None.

    None means the exception is not a download failure (a bug, say) and should show as it is.
    """
    if not _is_network_library_error(err):
        return None
    if downloads.is_name_resolution_failure(err):
        return OfflineError(label, f'no network (cannot resolve host {host})', host=host)
    from huggingface_hub import errors as hf_errors
    for cause in _chain(err):
        if isinstance(cause, hf_errors.OfflineModeIsEnabled):
            return OfflineError(label, 'not in the Hugging Face cache, and HF_HUB_OFFLINE is set')
        if isinstance(cause, hf_errors.HfHubHTTPError) and cause.response is not None:
            return DownloadError(label, _http_reason(cause, hf_errors))
        if isinstance(cause, hf_errors.FileMetadataError):
            return DownloadError(label, f'{host} does not answer like the Hugging Face Hub (check HF_ENDPOINT '
                                        'and proxy settings)')
    last = list(_chain(err))[-1]
    name = type(last).__name__
    text = _first_line(last).lower()
    if 'proxy' in name.lower():
        return DownloadError(label, f'proxy error while connecting to {host}')
    if isinstance(last, TimeoutError) or 'timeout' in name.lower() or 'timed out' in text:
        return DownloadError(label, f'no network (connection to {host} timed out)')
    if 'refused' in text:
        return DownloadError(label, f'connection refused by {host}')
    if isinstance(last, ConnectionError) or 'connect' in name.lower():
        return DownloadError(label, f'no network (cannot connect to {host})')
    if isinstance(last, OSError) and last.filename:
        return DownloadError(label, f'cannot write {last.filename} ({last.strerror or last})')
    return DownloadError(label, f'{name}: {_first_line(last)}')


def _http_reason(err, hf_errors):
    status = err.response.status_code
    if isinstance(err, hf_errors.GatedRepoError):
        return f'HTTP {status}: gated repository (accept its conditions on the Hub, then log in with `hf auth login`)'
    if isinstance(err, hf_errors.RepositoryNotFoundError):
        return f'HTTP {status}: repository not found (or private)'
    if isinstance(err, hf_errors.RevisionNotFoundError):
        return f'HTTP {status}: revision not found'
    if status == 404:
        return 'HTTP 404: file not found in the repository'
    if status == 401:
        return 'HTTP 401: not authorised (log in with `hf auth login` or set HF_TOKEN)'
    reason = getattr(err.response, 'reason_phrase', '') or ''
    return f'HTTP {status}' + (f' {reason}' if reason else '')
