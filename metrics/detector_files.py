"""The feature networks' files: where they come from, and reading them without running them.

NVIDIA's metrics use two networks, each published in two formats:

============================  =====================================================
``inception-2015-12-05``      Inception-v3 (FID, KID, IS)
``vgg16``                     VGG16 with LPIPS weights (precision/recall, PPL)
============================  =====================================================

StyleGAN2-ADA's ``.pt`` files are TorchScript archives, read by
:func:`stylegan_human.features.vgg16_nvidia.read_torchscript_tensors` (tensors only, no code run).
StyleGAN3's ``.pkl`` files are pickles; we assume (the file was not available
here) that they hold a ``torch_utils.persistence`` object whose submodules are
persistent objects or plain ``torch.nn`` modules, as NVIDIA's own network
pickles do. :func:`read_detector_tensors` reads them with a restricted
unpickler: ``torch.nn`` module classes and persistent objects become inert
records of their state, tensors are rebuilt, and any other global is refused.
Either way the tensors are copied by name into this project's own modules
(:class:`stylegan_human.features.inception.InceptionV3`, :class:`VGG16Detector`).

Where a file comes from, in order: a path given by the caller (``--detector`` /
``--vgg16``), the environment variable (``METRICS_INCEPTION_FILE`` /
``METRICS_VGG16_FILE``), a finished download in dnnlib's cache, a download
through ``dnnlib.util.open_url``. When all fail, :class:`DetectorMissing` says in
one line which file, its URL and how to pass it.
"""

import collections
import dataclasses
import os
import pickle

import torch
import torch._utils

from dnnlib import util
from stylegan_human.features import vgg16_nvidia

from dnnlib.errors import FileFormatError, MissingFileError
from stylegan_human.features import inception

_NGC = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics'
_CDN = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics'

INCEPTION_URL = f'{_NGC}/inception-2015-12-05.pkl'   # What NVIDIA's StyleGAN3 metrics name.
VGG16_URL = f'{_NGC}/vgg16.pkl'


class DetectorError(FileFormatError):
    """A feature-network file that cannot be used; one line naming the file."""


class DetectorMissing(DetectorError, MissingFileError):
    """A feature-network file that is not here; the message says which, from where, and how to pass it."""


@dataclasses.dataclass(frozen=True)
class DetectorFile:
    name: str       # NVIDIA's file name without suffix: the detector's name.
    what: str
    urls: tuple     # Official downloads (TorchScript first: the format read most surely).
    option: str     # Command-line option that passes the file.
    env: str        # Environment variable that passes the file.


FILES = {f.name: f for f in [
    DetectorFile('inception-2015-12-05', 'the Inception-v3 feature network (FID, KID, IS)',
                 (f'{_CDN}/inception-2015-12-05.pt', INCEPTION_URL), '--detector', 'METRICS_INCEPTION_FILE'),
    DetectorFile('vgg16', 'the VGG16 feature network (precision/recall, PPL)',
                 (f'{_CDN}/vgg16.pt', VGG16_URL), '--vgg16', 'METRICS_VGG16_FILE'),
]}
ALIASES = {'inception': 'inception-2015-12-05', 'inception-2015-12-05': 'inception-2015-12-05', 'vgg16': 'vgg16'}


def detector_name(url):
    """'https://.../inception-2015-12-05.pkl' -> 'inception-2015-12-05' (NVIDIA's cache naming)."""
    return os.path.splitext(os.fspath(url).replace('\\', '/').split('/')[-1])[0]


# ----------------------------------------------------------------------------
# Finding the file


def resolve(name, path=None, allow_download=True, verbose=False):
    """A local file for detector ``name`` ('inception-2015-12-05' or 'vgg16'); DetectorMissing when none."""
    entry = FILES[ALIASES.get(name, name)]
    for given, how in ((path, entry.option), (os.environ.get(entry.env) or None, entry.env)):
        if given is None:
            continue
        given = os.fspath(given)
        if util.is_url(given):
            return _download(entry, [given], verbose)
        if not os.path.isfile(given):
            raise DetectorMissing(f'{given}: no such file ({entry.what}, given by {how})')
        return given
    for url in entry.urls:
        cached = util.find_cached(url)
        if cached is not None:
            return cached
    if not allow_download:
        raise DetectorMissing(_missing_message(entry, 'is not downloaded'))
    return _download(entry, entry.urls, verbose)


def _download(entry, urls, verbose):
    reasons = []
    for url in urls:
        try:
            return util.open_url(url, return_filename=True, verbose=verbose)
        except util.DownloadError as err:
            reasons.append(err.reason)
    raise DetectorMissing(_missing_message(entry, f'could not be downloaded ({reasons[0]})'))


def _missing_message(entry, state):
    return (f'{entry.what} {entry.name} {state}: download {entry.urls[0]} (or {entry.urls[1]}) '
            f'and pass it with {entry.option} PATH or {entry.env}=PATH')


# ----------------------------------------------------------------------------
# Reading tensors without running anything


def read_detector_tensors(path):
    """Every tensor of a TorchScript archive or a network pickle, by dotted name."""
    path = os.fspath(path)
    with open(path, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK\x03\x04'):
        try:
            return vgg16_nvidia.read_torchscript_tensors(path)
        except vgg16_nvidia.TorchScriptFileError as err:
            raise DetectorError(f'{path}: {err}') from None
    if head[:1] == b'\x80':
        return _read_pickle_tensors(path)
    raise DetectorError(f'{path}: neither a TorchScript archive (.pt) nor a pickle (.pkl)')


class _Inert:
    """Stands in for a module class named by the pickle: keeps the state it is given, runs nothing."""

    state = None  # Until the pickle gives one.

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {'_state': state}


def _persistent_record(meta):
    """In place of torch_utils.persistence._reconstruct_persistent_obj: the state, not the object."""
    if not isinstance(meta, dict) or not isinstance(meta.get('state'), dict):
        raise pickle.UnpicklingError('malformed persistent object')
    record = _Inert()
    record.state = meta['state']
    return record


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, _state):
    return torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)


def _allowed_globals():
    """The network-pickle allow-list, with networks kept as inert records here."""
    from stylegan_human.network_files.safe_pickle import allowed_globals
    allowed = allowed_globals()
    allowed[('torch._utils', '_rebuild_parameter_with_state')] = _rebuild_parameter_with_state
    allowed[('torch_utils.persistence', '_reconstruct_persistent_obj')] = _persistent_record
    allowed.pop(('dnnlib.tflib.network', 'Network'), None)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    _allowed = None
    _inert_classes = {}

    def find_class(self, module, name):
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _allowed_globals()
        found = _RestrictedUnpickler._allowed.get((module, name))
        if found is not None:
            return found
        if module.startswith('torch.nn.modules.') and name.isidentifier():
            key = f'{module}.{name}'
            if key not in self._inert_classes:
                self._inert_classes[key] = type(name, (_Inert,), {})
            return self._inert_classes[key]
        raise DetectorError(f'refusing to load {module}.{name}')

    def persistent_load(self, pid):
        raise pickle.UnpicklingError('unexpected persistent id')


def _read_pickle_tensors(path):
    try:
        with open(path, 'rb') as f:
            root = _RestrictedUnpickler(f).load()
    except DetectorError as err:
        raise DetectorError(f'{path}: {err} from the pickle (not a feature-network file we know)') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            RuntimeError, UnicodeDecodeError) as err:
        raise DetectorError(f'{path}: unreadable pickle ({type(err).__name__}: {err})') from None
    if not isinstance(root, _Inert):
        raise DetectorError(f'{path}: the pickle holds a {type(root).__name__}, not a network')
    tensors = collections.OrderedDict()
    _collect_module_tensors(root, '', tensors)
    return tensors


def _collect_module_tensors(record, prefix, out):
    state = record.state if isinstance(record.state, dict) else {}
    for key in ('_parameters', '_buffers'):
        for name, value in (state.get(key) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value
    for name, child in (state.get('_modules') or {}).items():
        if isinstance(child, _Inert):
            _collect_module_tensors(child, f'{prefix}{name}.', out)


# ----------------------------------------------------------------------------
# Building our modules from the tensors


class VGG16Detector(vgg16_nvidia.VGG16Features):
    """NVIDIA's VGG16 with the file's call defaults: images are resized to 224x224 unless told not to.

    Precision/recall calls ``detector(images, return_features=True)`` (4096-d fc7
    features of resized images); PPL calls ``resize_images=False, return_lpips=True``.
    The default ``resize_images=True`` is an assumption about the published file.
    """

    def forward(self, img, resize_images=True, return_lpips=False, return_features=False):
        return super().forward(img, resize_images=resize_images, return_lpips=return_lpips,
                               return_features=return_features)


def vgg16_from_tensors(tensors, where='the file'):
    model = VGG16Detector(with_classifier='layers.fc1.weight' in tensors)
    own = model.state_dict()
    for name, target in own.items():
        if name in ('mean', 'std'):
            continue
        value = tensors.get(name)
        if value is None:
            raise DetectorError(f'{where} has no tensor {name}: not NVIDIA\'s vgg16 file')
        if value.numel() != target.numel():
            raise DetectorError(f'{where}: {name} has shape {list(value.shape)}, expected {list(target.shape)}')
        own[name] = value.detach().reshape(target.shape).to(torch.float32)
    model.load_state_dict(own)
    return model.eval().requires_grad_(False)


def _inception_from_tensors(tensors, where):
    try:
        return inception.inception_from_tensors(tensors, where)
    except ValueError as err:
        raise DetectorError(str(err)) from None


# Detector name -> function(tensors, where) building the module; tests may register small stand-ins.
BUILDERS = {'inception-2015-12-05': _inception_from_tensors, 'vgg16': vgg16_from_tensors}


def build_detector(tensors, where='the file'):
    """InceptionV3 or VGG16Detector, whichever layout the tensors have."""
    if 'layers.mixed_10.conv.weight' in tensors:
        return BUILDERS['inception-2015-12-05'](tensors, where)
    if 'layers.conv13.weight' in tensors:
        return BUILDERS['vgg16'](tensors, where)
    raise DetectorError(f'{where}: neither the Inception-v3 nor the VGG16 feature network '
                        f'(first tensors: {", ".join(list(tensors)[:3]) or "none"})')


def load_detector(name, path=None, device='cpu', allow_download=True, verbose=False):
    """The detector ``name`` ('inception-2015-12-05' / 'vgg16') from ``path`` or the usual places."""
    name = ALIASES.get(name, name)
    local = resolve(name, path=path, allow_download=allow_download, verbose=verbose)
    return BUILDERS[name](read_detector_tensors(local), local).to(device)
