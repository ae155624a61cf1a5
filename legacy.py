"""Every network file format, in and out.

Reading official pickles is safe by default: a restricted unpickler resolves only
an allow-list of globals (numpy / torch tensor rebuilding, ``EasyDict``,
``OrderedDict``) and turns every persistent network into a :class:`PersistentRecord`
without executing its embedded source. Known networks are then rebuilt as this
project's own classes from their stored ``init_kwargs`` and their parameters and
buffers copied in by name. Executing the embedded source (upstream behaviour) is
an explicit opt-in: ``trust_embedded_code=True``.

Writing: :func:`save_network_pkl` produces the official pickle format, and
:func:`export_network` / :func:`load_exported_network` a code-free
``.safetensors`` + JSON pair.
"""

import collections
import contextlib
import copy
import io
import json
import os
import pickle
import threading
import warnings

import numpy as np
import torch

import dnnlib
from dnnlib.atomic import atomic_write

# ----------------------------------------------------------------------------
# Errors


class NetworkFileError(Exception):
    """A network file that cannot be used; the message is one line for the user."""


# ----------------------------------------------------------------------------
# Restricted unpickling


class PersistentRecord:
    """A persistent network object from a pickle, kept as data: nothing executed."""

    def __init__(self, meta):
        self.meta = meta

    @property
    def class_name(self):
        return self.meta['class_name']

    @property
    def module_src(self):
        return self.meta['module_src']

    @property
    def state(self):
        return self.meta['state']

    @property
    def init_args(self):
        return tuple(self.state.get('_init_args', ()))

    @property
    def init_kwargs(self):
        return dnnlib.EasyDict(copy.deepcopy(self.state.get('_init_kwargs', {})))

    @property
    def tensors(self):
        """Every parameter and buffer (non-persistent ones too) by dotted name."""
        out = collections.OrderedDict()
        _collect_tensors(self.state, '', out)
        return out

    def submodule_names(self):
        return list(self.state.get('_modules', {}).keys())

    def __repr__(self):
        return f'<PersistentRecord {self.class_name}>'


def _collect_tensors(state, prefix, out):
    for key in ('_parameters', '_buffers'):
        for name, value in (state.get(key) or {}).items():
            if value is not None:
                out[prefix + name] = value
    for name, child in (state.get('_modules') or {}).items():
        if isinstance(child, PersistentRecord):
            _collect_tensors(child.state, f'{prefix}{name}.', out)
        elif child is not None:
            raise NetworkFileError(f'unsupported submodule type {type(child).__name__} inside a network')


def _record_persistent_obj(meta):
    """Stands in for torch_utils.persistence._reconstruct_persistent_obj: runs nothing."""
    if not isinstance(meta, dict) or not {'class_name', 'state'} <= set(meta.keys()):
        raise pickle.UnpicklingError('malformed persistent object')
    return PersistentRecord(meta)


class TFNetworkRecord:
    """A ``dnnlib.tflib.network.Network`` (StyleGAN1/2 TensorFlow pickle), kept as data."""

    def __setstate__(self, state):
        self.state = state

    @property
    def name(self):
        return self.state.get('name')


def _load_storage_from_bytes(data):
    # torch's own helper unpickles these bytes with weights_only=False; we do not.
    return torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')


def _allowed_globals():
    allowed = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('dnnlib.util', 'EasyDict'): dnnlib.EasyDict,
        ('dnnlib', 'EasyDict'): dnnlib.EasyDict,
        ('numpy', 'dtype'): np.dtype,
        ('numpy', 'ndarray'): np.ndarray,
        ('torch', 'Size'): torch.Size,
        ('torch', 'device'): torch.device,
        ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
        ('torch.storage', '_load_from_bytes'): _load_storage_from_bytes,
        ('torch_utils.persistence', '_reconstruct_persistent_obj'): _record_persistent_obj,
        ('dnnlib.tflib.network', 'Network'): TFNetworkRecord,
    }
    # numpy 1.x pickles name numpy.core, numpy 2.x numpy._core.
    multiarray = np._core.multiarray
    for package in ('numpy.core', 'numpy._core'):
        allowed[(f'{package}.multiarray', 'scalar')] = multiarray.scalar
        allowed[(f'{package}.multiarray', '_reconstruct')] = multiarray._reconstruct
        allowed[(f'{package}.numeric', '_frombuffer')] = np._core.numeric._frombuffer
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[('torch', name)] = getattr(torch, name)
    return allowed


_ALLOWED_GLOBALS = None


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a global outside the allow-list."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        global _ALLOWED_GLOBALS
        if _ALLOWED_GLOBALS is None:
            _ALLOWED_GLOBALS = _allowed_globals()
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f'{module}.{name}') from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError('persistent ids are not used by network pickles')


def read_pickle_safely(f):
    """Unpickle ``f`` (path or binary file) with the allow-list; networks stay records."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as file:
            return read_pickle_safely(file)
    return _SafeUnpickler(f).load()


# ----------------------------------------------------------------------------
# Rebuilding records as this project's classes


def _stylegan1():
    from training import networks_stylegan1
    return networks_stylegan1


def _stylegan2():
    from training import networks_stylegan2
    return networks_stylegan2


def _stylegan3():
    from training import networks_stylegan3
    return networks_stylegan3


def _network_class(record, tensors):
    """Pick our class for a record, from its class name and module tree."""
    name = record.class_name
    if name == 'Generator':
        if any(k.startswith('synthesis.input.') for k in tensors):
            return _stylegan3().Generator
        if 'synthesis.b4.const' in tensors:
            return _stylegan2().Generator
        if 'synthesis.layer0.const' in tensors:
            return _stylegan1().Generator
    elif name == 'Discriminator' and 'b4.out.weight' in tensors:
        return _stylegan2().Discriminator
    elif name == 'Discriminator' and 'epilogue.dense1.weight' in tensors:
        return _stylegan1().Discriminator
    elif name == 'AugmentPipe':
        try:
            from training import augment
        except ImportError:
            return None
        return augment.AugmentPipe
    return None


def _infer_square(record, tensors):
    """Older pickles lack ``square``: read it off a tensor shape."""
    if 'synthesis.b4.const' in tensors:                      # StyleGAN2 generator: [C, 4, 4|2]
        shape = tensors['synthesis.b4.const'].shape
        return shape[-1] == shape[-2]
    if 'synthesis.input.transform' in tensors:               # StyleGAN3 generator
        return _stylegan3().infer_square_from_tensors(tensors, img_resolution=record.init_kwargs.get('img_resolution'))
    if 'b4.fc.weight' in tensors and 'b4.conv.weight' in tensors:  # discriminator epilogue
        channels = tensors['b4.conv.weight'].shape[0]
        return tensors['b4.fc.weight'].shape[1] == channels * 16
    return True


def rebuild_network(record, force_fp16=False):
    """Build our own module for ``record`` and copy its parameters and buffers in."""
    tensors = record.tensors
    cls = _network_class(record, tensors)
    if cls is None:
        raise NetworkFileError(
            f'unknown network class {record.class_name!r}; if you trust the file, '
            'load it with trust_embedded_code=True (--trust-embedded-code)')
    kwargs = record.init_kwargs
    if record.class_name in ('Generator', 'Discriminator') and 'square' not in kwargs:
        kwargs.square = _infer_square(record, tensors)
    if force_fp16 and record.class_name in ('Generator', 'Discriminator') and not cls.__module__.endswith('stylegan1'):
        _force_fp16_kwargs(kwargs)
    try:
        module = construct_for_loading(cls, record.init_args, kwargs)
    except TypeError as err:
        raise NetworkFileError(f'cannot rebuild {record.class_name}: {err}') from None
    copy_tensors_into(module, tensors, what=record.class_name)
    module.train(bool(record.state.get('training', False)))
    return module


# Drawing the random initial weights is most of the time it takes to construct a network
# (0.2 s for a 1024 generator on a 2-core CPU), and a loaded network overwrites every one of
# them. While a thread constructs for loading, torch.randn hands it uninitialised memory
# instead; other threads keep drawing real random numbers.
_loading = threading.local()
_randn_patch_lock = threading.Lock()
_randn_patch = dict(users=0, real=None)


def _randn_unless_loading(*args, **kwargs):
    if getattr(_loading, 'active', False):
        kwargs.pop('generator', None)
        return torch.empty(*args, **kwargs)
    return _randn_patch['real'](*args, **kwargs)


@contextlib.contextmanager
def _without_random_init():
    with _randn_patch_lock:
        if _randn_patch['users'] == 0:
            _randn_patch['real'] = torch.randn
            torch.randn = _randn_unless_loading
        _randn_patch['users'] += 1
    _loading.active = True
    try:
        yield
    finally:
        _loading.active = False
        with _randn_patch_lock:
            _randn_patch['users'] -= 1
            if _randn_patch['users'] == 0:
                torch.randn = _randn_patch['real']


def construct_for_loading(cls, args, kwargs):
    """``cls(*args, **kwargs)`` for a network whose every tensor is copied in next (copy_tensors_into)."""
    with _without_random_init():
        return cls(*args, **kwargs)


def _force_fp16_kwargs(kwargs):
    """Upstream's --force-fp16: fp16 in the top 4 resolutions, clamped convolutions."""
    target = kwargs.synthesis_kwargs if 'synthesis_kwargs' in kwargs else kwargs
    target['num_fp16_res'] = 4
    target['conv_clamp'] = 256


def copy_tensors_into(module, tensors, what='network'):
    """Strict copy by name: every parameter and buffer, same shapes, nothing extra."""
    targets = dict(module.named_parameters())
    targets.update(module.named_buffers())
    missing = sorted(set(targets) - set(tensors))
    unexpected = sorted(set(tensors) - set(targets))
    if missing or unexpected:
        raise NetworkFileError(
            f'{what} does not match its architecture: missing {missing[:3]}, unexpected {unexpected[:3]}')
    with torch.no_grad():
        for name, target in targets.items():
            source = tensors[name]
            if not isinstance(source, torch.Tensor):
                source = torch.as_tensor(np.asarray(source))
            if tuple(source.shape) != tuple(target.shape):
                raise NetworkFileError(
                    f'{what}: {name} has shape {tuple(source.shape)}, expected {tuple(target.shape)}')
            target.copy_(source.to(target.dtype))
            if isinstance(target, torch.nn.Parameter) and isinstance(source, torch.nn.Parameter):
                target.requires_grad_(source.requires_grad)


def _rebuild_tree(value, force_fp16):
    if isinstance(value, PersistentRecord):
        return rebuild_network(value, force_fp16=force_fp16)
    if isinstance(value, dict):
        return type(value)((k, _rebuild_tree(v, force_fp16)) for k, v in value.items())
    return value


# ----------------------------------------------------------------------------
# Loading


def load_network_pkl(f, force_fp16=False, trust_embedded_code=False):
    """Read an official network pickle into a dict with ``G_ema`` (and ``G``, ``D``, ...).

    ``f`` is a binary file object or a path. The default never executes code from
    the file. With ``trust_embedded_code=True`` the pickle is loaded the upstream way,
    running the source embedded in it (only for files you trust).
    """
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as file:
            return load_network_pkl(file, force_fp16=force_fp16, trust_embedded_code=trust_embedded_code)
    if trust_embedded_code:
        return _load_trusted(f)
    try:
        data = read_pickle_safely(f)
    except RefusedGlobal as err:
        raise NetworkFileError(
            f'refused to load: the pickle asks for {err}, which a network file never needs; '
            'if you trust the file, use --trust-embedded-code') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, RuntimeError, UnicodeDecodeError) as err:
        raise NetworkFileError(f'not a valid network pickle (truncated or corrupt): {err}') from None
    return _normalize(data, force_fp16)


def _load_trusted(f):
    try:
        import torch_utils.persistence  # noqa: F401 - makes our persistence module resolvable
        data = pickle.Unpickler(f).load()
    except (pickle.UnpicklingError, EOFError) as err:
        raise NetworkFileError(f'not a valid network pickle: {err}') from None
    if not isinstance(data, dict) or 'G_ema' not in data:
        raise NetworkFileError('the pickle holds no G_ema network')
    return data


def _normalize(data, force_fp16):
    if isinstance(data, tuple) and data and all(isinstance(x, TFNetworkRecord) for x in data):
        return _load_tensorflow(data)
    if isinstance(data, PersistentRecord):       # A bare network: treat it as G_ema.
        data = {'G_ema': data}
    if not isinstance(data, dict) or not isinstance(data.get('G_ema'), PersistentRecord):
        raise NetworkFileError('the pickle holds no G_ema network')
    data = dict(data)
    for key, value in list(data.items()):
        if isinstance(value, PersistentRecord) and key not in ('G', 'D', 'G_ema'):
            try:
                data[key] = rebuild_network(value, force_fp16=False)
            except NetworkFileError as err:
                warnings.warn(f'{key} kept unbuilt: {err}')
        elif key in ('G', 'D', 'G_ema') and value is not None:
            if not isinstance(value, PersistentRecord):
                raise NetworkFileError(f'{key} is a {type(value).__name__}, not a network')
            data[key] = rebuild_network(value, force_fp16=force_fp16)
        else:
            data[key] = _rebuild_tree(value, force_fp16)
    return data


def _load_tensorflow(networks):
    try:
        import legacy_tf
    except ImportError:
        raise NetworkFileError('StyleGAN1 TensorFlow pickles are not supported by this version') from None
    return legacy_tf.convert_tf_networks(networks)


_MAGIC = {
    b'\x89PNG': 'a PNG image', b'\xff\xd8\xff': 'a JPEG image', b'GIF8': 'a GIF image',
    b'PK\x03\x04': 'a zip archive (a torch.save checkpoint?)', b'\x1f\x8b': 'a gzip file',
}


def load_network(path, force_fp16=False, trust_embedded_code=False, device=None, verbose=True):
    """Load ``path`` (file, URL or model-zoo name) with checks that give one-line errors.

    A ``.safetensors`` export (:func:`export_network`) comes back as ``{'G_ema': network}``.
    """
    local = _resolve(path, verbose)
    if os.path.isdir(local):
        raise NetworkFileError(f'{path}: is a directory, not a network pickle')
    if not os.path.isfile(local):
        raise NetworkFileError(f'{path}: file not found')
    if os.path.getsize(local) == 0:
        raise NetworkFileError(f'{path}: file is empty')
    if _is_safetensors(local):
        data = {'G_ema': load_exported_network(local, force_fp16=force_fp16)}
        return _to_device(data, device)
    with open(local, 'rb') as f:
        head = f.read(8)
        for magic, what in _MAGIC.items():
            if head.startswith(magic):
                raise NetworkFileError(f'{path}: this is {what}, not a network pickle')
        if head[:1] != b'\x80':
            raise NetworkFileError(f'{path}: not a pickle file')
        f.seek(0)
        try:
            data = load_network_pkl(f, force_fp16=force_fp16, trust_embedded_code=trust_embedded_code)
        except NetworkFileError as err:
            raise NetworkFileError(f'{path}: {err}') from None
    return _to_device(data, device)


def _to_device(data, device):
    if device is not None:
        for key, value in data.items():
            if isinstance(value, torch.nn.Module):
                data[key] = value.to(device)
    return data


def _is_safetensors(path):
    """By name, or by content: an 8-byte little-endian header length, then the JSON header."""
    if path.endswith('.safetensors'):
        return True
    with open(path, 'rb') as f:
        head = f.read(10)
    return len(head) == 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], 'little') < os.path.getsize(path)


def _resolve(path, verbose):
    """A local file stays as is; a URL or a model-zoo name goes through the zoo's cache."""
    path = os.fspath(path)
    is_url = '://' in path
    looks_local = os.path.exists(path) or '/' in path or os.sep in path or os.path.splitext(path)[1] != ''
    if looks_local and not is_url:
        return path
    import model_zoo
    try:
        return model_zoo.resolve_network(path, verbose=verbose)
    except Exception as err:  # The zoo's errors are already one line for the user.
        raise NetworkFileError(str(err)) from None


# ----------------------------------------------------------------------------
# Saving


def save_network_pkl(data, path):
    """Write ``data`` (a dict of networks, or one network saved as G_ema) as an official pickle."""
    if isinstance(data, torch.nn.Module):
        data = {'G_ema': data}
    data = {k: (copy.deepcopy(v).eval().requires_grad_(False).cpu() if isinstance(v, torch.nn.Module) else v)
            for k, v in data.items()}
    atomic_write(path, lambda f: pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL))


def _module_family(module):
    name = type(module).__module__
    for family in ('networks_stylegan2', 'networks_stylegan3', 'networks_stylegan1'):
        if name.endswith(family):
            return family
    raise NetworkFileError(f'cannot export {type(module).__name__} from {name}: not one of our network classes')


_EXPORT_CONFIG_KEY = 'stylegan_human_export'  # the config's key in the .safetensors metadata


def export_network(module, path):
    """Write ``path`` (.safetensors): weights, with the config in its metadata; no code.

    A readable copy of the config goes beside it (``path`` with .json); loading needs only the
    .safetensors file.
    """
    path = os.fspath(path)
    if not path.endswith('.safetensors'):
        raise NetworkFileError(f'{path}: export path must end in .safetensors')
    config = dict(format='stylegan-human-export', version=1, family=_module_family(module),
                  class_name=type(module).__name__, init_args=list(module.init_args),
                  init_kwargs=_jsonable(module.init_kwargs))
    tensors = {name: t.detach().cpu().contiguous() for name, t in module.named_parameters()}
    tensors.update({name: t.detach().cpu().contiguous() for name, t in module.named_buffers()})
    from safetensors.torch import save
    data = save(tensors, metadata={_EXPORT_CONFIG_KEY: json.dumps(config)})
    atomic_write(path, lambda f: f.write(data))  # complete on its own; the readable copy comes second
    atomic_write(_export_json_path(path), lambda f: f.write(json.dumps(config, indent=2) + '\n'), mode='w')


def _export_json_path(path):
    return path[:-len('.safetensors')] + '.json' if path.endswith('.safetensors') else path + '.json'


def load_exported_network(path, force_fp16=False):
    """Inverse of :func:`export_network`: our class, identical parameters and buffers."""
    from safetensors import SafetensorError, safe_open
    path = os.fspath(path)
    try:
        with safe_open(path, framework='pt') as f:
            text = (f.metadata() or {}).get(_EXPORT_CONFIG_KEY)
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        if text is None:  # Exports before the config moved into the file: the .json beside it.
            with open(_export_json_path(path)) as f:
                text = f.read()
        config = json.loads(text)
    except FileNotFoundError as err:
        raise NetworkFileError(f'{path}: not a StyleGAN-Human export (no config in the file, '
                               f'and no {os.path.basename(err.filename or "")} beside it)') from None
    except (OSError, ValueError, SafetensorError) as err:
        raise NetworkFileError(f'{path}: cannot read export: {err}') from None
    if not isinstance(config, dict) or config.get('format') != 'stylegan-human-export':
        raise NetworkFileError(f'{path}: not a StyleGAN-Human export config')
    module_name = {'networks_stylegan2': 'training.networks_stylegan2',
                   'networks_stylegan3': 'training.networks_stylegan3',
                   'networks_stylegan1': 'training.networks_stylegan1'}.get(config.get('family'))
    import importlib
    cls = getattr(importlib.import_module(module_name), str(config.get('class_name')), None) if module_name else None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise NetworkFileError(f'{path}: unknown network {config.get("family")}.{config.get("class_name")}')
    kwargs = dnnlib.EasyDict(config.get('init_kwargs', {}))
    if force_fp16 and config['class_name'] in ('Generator', 'Discriminator') and config['family'] != 'networks_stylegan1':
        _force_fp16_kwargs(kwargs)
    try:
        module = construct_for_loading(cls, config.get('init_args', []), kwargs)
    except (TypeError, ValueError, KeyError) as err:
        raise NetworkFileError(f'{path}: cannot rebuild {config["class_name"]}: {err}') from None
    copy_tensors_into(module, tensors, what=config['class_name'])
    return module.eval().requires_grad_(False)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value
