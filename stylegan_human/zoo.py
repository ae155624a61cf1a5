"""The published StyleGAN-Human networks by name, and where to download them.

``--network`` accepts a local path, a URL, or one of the names below;
:func:`resolve_network` turns any of them into a local file path::

    from stylegan_human import zoo
    path = zoo.resolve_network('stylegan_human_v2_1024')   # downloads once, then cached
    zoo.list_models()                                      # ['stylegan_human_v1_1024', ...]

A name's sources are tried in order: the Hugging Face Hub mirrors first, through
``huggingface_hub`` (:mod:`dnnlib.hf_hub`: its cache, ``HF_HOME``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``), then the authors' Google Drive files through
:func:`dnnlib.util.open_url` (download cache ``$DNNLIB_CACHE_DIR/downloads`` or
``~/.cache/dnnlib/downloads``, resume). Every file is checked against the entry's size
and sha256; a verified copy already in either cache is used without touching the
network. A host name that does not resolve ends the attempt at once (the machine is
offline): one line, no retries, no further mirrors.

Other sources can be used without editing the table:

- ``resolve_network(name, sources=[url_or_path, ...])`` replaces the entry's sources
  for one call (tests point it at a local server);
- the environment variable ``STYLEGAN_HUMAN_ZOO_URL_BASE`` names a mirror (an
  ``http(s)://`` or ``file://`` URL, or a folder) holding the files under their usual
  names (``stylegan_human_v2_1024.pkl``, ...); it is tried before the public sources;
- :func:`register_model` adds or replaces an entry.

``python model_zoo.py`` is the command line for this module.
"""

import dataclasses
import os
import sys
import urllib.parse
from typing import List, Optional, Sequence, Tuple, Union

from dnnlib import hf_hub, util

ENV_URL_BASE = 'STYLEGAN_HUMAN_ZOO_URL_BASE'


def hf_url(repo: str, path: str) -> str:
    """The plain-HTTP download address of a file in a Hugging Face model repository."""
    return f'https://huggingface.co/{repo}/resolve/main/{path}'


def drive_url(file_id: str) -> str:
    """The direct-download address of a shared Google Drive file (a confirm page may follow)."""
    return f'https://drive.google.com/uc?export=download&id={file_id}'


def drive_page(file_id: str) -> str:
    return f'https://drive.google.com/file/d/{file_id}/view'


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One published network.

    ``version`` is the generator code base (1: StyleGAN, a TensorFlow pickle; 2:
    StyleGAN2-ADA; 3: StyleGAN3). ``resolution`` is the image height; the images are
    2:1, so the width is half of it. ``size`` (bytes) and ``sha256`` describe the file
    and are checked after download; None where not known.
    """

    name: str
    filename: str
    version: int
    resolution: int
    size: Optional[int]
    sha256: Optional[str]
    sources: Tuple[str, ...]
    page: str
    description: str = ''

    @property
    def width(self):
        return self.resolution // 2


# Sizes and sha256 digests are the ones recorded by the Hugging Face mirrors' Git LFS
# pointers (aaronb/StyleGAN2-pkl commit 23394b8, public-data/StyleGAN-Human commit
# 223ab0c, DragGan/DragGan-Models); nothing is recorded for the StyleGAN3 file.
_ENTRIES = (
    ModelEntry(
        name='stylegan_human_v2_512',
        filename='stylegan_human_v2_512.pkl',
        version=2, resolution=512,
        size=352_745_981,
        sha256='7af33f638e3b3aba7bf99456eec3e9d4a022d8a7dd67683a3605a7dd37665a3b',
        sources=(
            hf_url('aaronb/StyleGAN2-pkl', 'human/stylegan_human_v2_512.pkl'),
            hf_url('public-data/StyleGAN-Human', 'models/stylegan_human_v2_512.pkl'),
            hf_url('DragGan/DragGan-Models', 'stylegan_human_v2_512.pkl'),
            drive_url('1dlFEHbu-WzQWJl7nBBZYcTyo000H9hVm'),
        ),
        page=drive_page('1dlFEHbu-WzQWJl7nBBZYcTyo000H9hVm'),
        description='StyleGAN2, 512x256, SHHQ-1.0',
    ),
    ModelEntry(
        name='stylegan_human_v2_1024',
        filename='stylegan_human_v2_1024.pkl',
        version=2, resolution=1024,
        size=362_022_337,
        sha256='16946ec5dd1718daa236999e1ceed3b5a40b8faa8c3de3ad5fda396620f29e7a',
        sources=(
            hf_url('aaronb/StyleGAN2-pkl', 'human/stylegan_human_v2_1024.pkl'),
            hf_url('public-data/StyleGAN-Human', 'models/stylegan_human_v2_1024.pkl'),
            drive_url('1FlAb1rYa0r_--Zj_ML8e6shmaF28hQb5'),
        ),
        page=drive_page('1FlAb1rYa0r_--Zj_ML8e6shmaF28hQb5'),
        description='StyleGAN2, 1024x512, SHHQ-1.0',
    ),
    ModelEntry(
        name='stylegan_human_v3_512',
        filename='stylegan_human_v3_512.pkl',
        version=3, resolution=512,
        size=None,
        sha256=None,
        sources=(
            drive_url('1_274jk_N6WSCkKWeu7hjHycqGvbuOFf5'),
        ),
        page=drive_page('1_274jk_N6WSCkKWeu7hjHycqGvbuOFf5'),
        description='StyleGAN3, 512x256, SHHQ-1.0',
    ),
    ModelEntry(
        name='stylegan_human_v1_1024',
        filename='stylegan_human_v1_1024.pkl',
        version=1, resolution=1024,
        size=305_103_004,
        sha256='c084af713779282160483ee5d5e1bc8b9abaadf1c247374f3347a05c76bcbbc0',
        sources=(
            hf_url('public-data/StyleGAN-Human', 'models/stylegan_human_v1_1024.pkl'),
            drive_url('1h-R-IV-INGdPEzj4P9ml6JTEvihuNgLX'),
        ),
        page=drive_page('1h-R-IV-INGdPEzj4P9ml6JTEvihuNgLX'),
        description='StyleGAN (v1, TensorFlow pickle), 1024x512, SHHQ-1.0',
    ),
)

MODELS = {entry.name: entry for entry in _ENTRIES}


class ModelZooError(util.DownloadError):
    """A name is not in the zoo, or none of a model's sources could be downloaded.

    A :class:`dnnlib.util.DownloadError`, so code that reports download errors reports
    these too; ``str(err)`` is one line for the user.
    """

    def __init__(self, message, name=None, failures=()):
        Exception.__init__(self, message)
        self.url = name
        self.reason = message
        self.failures = list(failures)

    def __reduce__(self):
        return (ModelZooError, (self.reason, self.url, self.failures))


def list_models() -> List[str]:
    """The zoo's model names, in table order."""
    return list(MODELS)


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` (a :class:`ModelEntry`) to the zoo, replacing one of the same name."""
    if not isinstance(entry, ModelEntry):
        raise TypeError('register_model() takes a ModelEntry')
    MODELS[entry.name] = entry
    return entry


def _unknown(spec):
    return ModelZooError(f'{spec!r} is not an existing file, a URL or a model-zoo name '
                         f'(known names: {", ".join(MODELS)})', name=spec)


def get_model(name: Union[str, os.PathLike]) -> ModelEntry:
    """The :class:`ModelEntry` for a zoo name (``stylegan_human_v2_1024``; the file name
    ``stylegan_human_v2_1024.pkl`` is accepted too). Raises :class:`ModelZooError`."""
    name = os.fspath(name)
    if name in MODELS:
        return MODELS[name]
    for entry in MODELS.values():
        if name.lower() in (entry.name.lower(), entry.filename.lower()):
            return entry
    raise _unknown(name)


def describe_models() -> str:
    """A small text table of the zoo (name, generator, image size, file size)."""
    lines = [f'{"name":26s} {"gen":5s} {"image":9s} {"size":>9s}  description']
    for e in MODELS.values():
        size = f'{e.size / 1e6:.0f} MB' if e.size else '?'
        image = f'{e.resolution}x{e.width}'
        lines.append(f'{e.name:26s} {"SG" + str(e.version):5s} {image:9s} {size:>9s}  {e.description}')
    return '\n'.join(lines)


def _mirror_source(entry):
    base = os.environ.get(ENV_URL_BASE, '').strip()
    if not base:
        return None
    if '://' in base:
        return base.rstrip('/') + '/' + urllib.parse.quote(entry.filename)
    return os.path.join(os.path.expanduser(base), entry.filename)


def model_sources(name: Union[str, os.PathLike],
                  sources: Optional[Sequence[Union[str, os.PathLike]]] = None) -> List[str]:
    """The candidates tried for a zoo name, in order (see the module docstring)."""
    entry = get_model(name)
    if sources is not None:
        return [os.fspath(s) for s in sources]
    mirror = _mirror_source(entry)
    return ([mirror] if mirror else []) + list(entry.sources)


def _label(source):
    """A short human name for a source, for messages."""
    if '://' not in source:
        return source
    parts = urllib.parse.urlsplit(source)
    host = parts.netloc
    if host.endswith('drive.google.com'):
        file_id = dict(urllib.parse.parse_qsl(parts.query)).get('id', '')
        return f'Google Drive {file_id}'.strip()
    if host == 'huggingface.co' and '/resolve/' in parts.path:
        return 'huggingface.co' + parts.path.split('/resolve/')[0]
    if parts.scheme == 'file':
        return source
    return host + parts.path


def _one_line(text):
    return ' '.join(str(text).split())


def _needs_network(source):
    return '://' in source and not source.lower().startswith('file://')


def _hub_cache_dir(cache_dir):
    """Hub files go to Hugging Face's cache (HF_HOME), or beside the others when a cache folder is named."""
    return None if cache_dir is None else os.path.join(os.fspath(cache_dir), 'huggingface')


def _memo_dir(cache_dir):
    """Where the sha256 of a verified Hub file is remembered (None: the default download cache)."""
    return None if cache_dir is None else os.fspath(cache_dir)


def _cached_copy(entry, candidates, cache_dir):
    """A verified copy of the model from any source, already on disk; never uses the network."""
    for source in candidates:
        if _needs_network(source):
            hit = util.find_cached(source, cache_dir=cache_dir, expected_size=entry.size, sha256=entry.sha256)
            if hit is not None:
                return hit
    for source in candidates:
        hub_file = _hub_file(source)
        if hub_file is not None:
            hit = hf_hub.find_in_hub_cache(hub_file, cache_dir=_hub_cache_dir(cache_dir), expected_size=entry.size,
                                           sha256=entry.sha256, memo_dir=_memo_dir(cache_dir))
            if hit is not None:
                return hit
    return None


def _hub_file(source):
    """The Hub file a source names, when huggingface_hub can fetch it (else it is a plain URL)."""
    hub_file = hf_hub.parse_hub_url(source)
    return hub_file if hub_file is not None and hf_hub.available() else None


def _fetch(entry, source, cache_dir, verbose, num_attempts):
    """Download one source: Hub files through huggingface_hub, anything else through open_url."""
    hub_file = _hub_file(source)
    if hub_file is not None:
        return hf_hub.hub_download(hub_file, expected_size=entry.size, sha256=entry.sha256,
                                   cache_dir=_hub_cache_dir(cache_dir), verbose=verbose,
                                   memo_dir=_memo_dir(cache_dir))
    return util.open_url(source, cache_dir=cache_dir, num_attempts=num_attempts, verbose=verbose,
                         return_filename=True, expected_size=entry.size, sha256=entry.sha256)


def download_model(name: Union[str, os.PathLike], cache_dir: Optional[Union[str, os.PathLike]] = None,
                   verbose: bool = True, sources: Optional[Sequence[Union[str, os.PathLike]]] = None,
                   num_attempts: int = 10) -> str:
    """Download (once) the zoo network ``name`` and return the local file path.

    A copy already in the cache from any of the sources is used without network
    access if it has the expected size and sha256. Otherwise the sources are tried
    in order; each download is checked against the entry's size and sha256. When a
    host name cannot be resolved the machine is taken to be offline: the remaining
    network sources are skipped and the error says so in one line.
    """
    entry = get_model(name)
    candidates = model_sources(entry.name, sources)
    hit = _cached_copy(entry, candidates, cache_dir)
    if hit is not None:
        return hit

    failures = []
    skipped = []
    offline = None   # the OfflineError that ended the network sources
    for source in candidates:
        if offline is not None and _needs_network(source):
            skipped.append(source)
            continue
        try:
            return _fetch(entry, source, cache_dir, verbose, num_attempts)
        except util.OfflineError as err:
            offline = err
            reason = err.reason
        except util.DownloadError as err:
            reason = err.reason
        except FileNotFoundError:
            reason = 'file not found'
        except OSError as err:
            reason = f'{type(err).__name__}: {err}'
        failures.append((source, _one_line(reason)))
        if verbose and offline is None and source != candidates[-1]:
            print(f'{_label(source)}: {_one_line(reason)}; trying the next source', file=sys.stderr, flush=True)
    raise _all_failed(entry, failures, skipped, offline)


def _all_failed(entry, failures, skipped, offline):
    """The one-line error for a model none of whose sources worked."""
    manual = (f'Download {entry.filename} manually from {entry.page} and pass its path instead of the name')
    if not failures:
        return ModelZooError(f'could not download model {entry.name!r}: no sources to try', name=entry.name)
    if offline is not None:
        reason = _one_line(offline.reason)
        tried = ', '.join(_label(s) if r == reason else f'{_label(s)} ({r})' for s, r in failures)
        not_tried = f'; not tried: {", ".join(_label(s) for s in skipped)}' if skipped else ''
        return ModelZooError(f'could not download model {entry.name!r}: {reason}. {manual} '
                             f'(tried {tried}{not_tried}).', name=entry.name, failures=failures)
    reasons = {r for _, r in failures}
    if len(reasons) == 1:
        tried = f'tried {", ".join(_label(s) for s, _ in failures)}: {failures[0][1]}'
    else:
        tried = 'tried ' + '; '.join(f'{_label(s)}: {r}' for s, r in failures)
    return ModelZooError(f'could not download model {entry.name!r} ({tried}). {manual}.',
                         name=entry.name, failures=failures)


def resolve_network(name_or_path_or_url: Union[str, os.PathLike],
                    cache_dir: Optional[Union[str, os.PathLike]] = None, verbose: bool = True,
                    sources: Optional[Sequence[Union[str, os.PathLike]]] = None, num_attempts: int = 10) -> str:
    """A local file path for a network given as a path, a URL or a zoo name.

    - an existing local path is returned as it is;
    - an ``http(s)://`` URL is downloaded once through :func:`dnnlib.util.open_url`
      and its cached path returned; a ``file://`` URL gives its local path;
    - a zoo name (see :func:`list_models`) goes through :func:`download_model`;
      ``sources`` replaces the entry's source list for this call.

    Anything else raises :class:`ModelZooError` naming the known models; failed
    downloads raise :class:`dnnlib.util.DownloadError` (``ModelZooError`` for names).
    """
    spec = os.fspath(name_or_path_or_url)
    if '://' in spec:
        try:
            return util.open_url(spec, cache_dir=cache_dir, num_attempts=num_attempts, verbose=verbose,
                                 return_filename=True)
        except FileNotFoundError:
            raise ModelZooError(f'{spec}: file not found', name=spec) from None
    if os.path.exists(spec):
        return spec
    return download_model(get_model(spec).name, cache_dir=cache_dir, verbose=verbose, sources=sources,
                          num_attempts=num_attempts)
