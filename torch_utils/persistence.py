"""Pickling of network classes together with their source code.

API-compatible with NVIDIA's ``torch_utils.persistence``: a class decorated with
:func:`persistent_class` pickles as a call to :func:`_reconstruct_persistent_obj`
with a ``meta`` dict holding the source of its defining module, the class name,
and the instance ``__dict__`` (including ``_init_args`` / ``_init_kwargs``).
This is the official file format, so pickles written here load in NVIDIA's code.

Unpickling through :func:`_reconstruct_persistent_obj` executes the embedded
source. That is the *trusted* path; ``legacy.load_network_pkl`` never takes it
unless asked to, and rebuilds known networks from ``_init_kwargs`` instead.
"""

import copy
import inspect
import io
import pickle
import sys
import types
import uuid

FORMAT_VERSION = 6

_known_classes = set()     # Every class produced by persistent_class().
_module_to_src_cache = {}  # Module object -> source text.
_src_to_module_cache = {}  # Source text -> module object created from it.
_import_hooks = []         # Callables that may rewrite meta before reconstruction.


def persistent_class(orig_class):
    """Class decorator: pickle instances with their module source and init arguments."""
    assert isinstance(orig_class, type)
    if is_persistent(orig_class):
        return orig_class
    orig_module = sys.modules[orig_class.__module__]
    orig_module_src = _module_to_src(orig_module)

    class Decorator(orig_class):
        _orig_module_src = orig_module_src
        _orig_class_name = orig_class.__name__

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)
            assert orig_class.__name__ in orig_module.__dict__
            _check_pickleable(self.__reduce__())

        @property
        def init_args(self):
            return copy.deepcopy(self._init_args)

        @property
        def init_kwargs(self):
            return _to_easydict(copy.deepcopy(self._init_kwargs))

        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            if fields[0] is not _reconstruct_persistent_obj:
                meta = dict(type='class', version=FORMAT_VERSION,
                            module_src=self._orig_module_src,
                            class_name=self._orig_class_name, state=fields[2])
                fields[0] = _reconstruct_persistent_obj
                fields[1] = (meta,)
                fields[2] = None
            return tuple(fields)

    Decorator.__name__ = orig_class.__name__
    Decorator.__qualname__ = orig_class.__qualname__
    Decorator.__module__ = orig_class.__module__
    _known_classes.add(Decorator)
    return Decorator


def is_persistent(obj):
    """True for a persistent class or an instance of one."""
    try:
        if obj in _known_classes:
            return True
    except TypeError:
        pass
    return type(obj) in _known_classes


def import_hook(hook):
    """Register ``hook(meta) -> meta`` to patch pickled source before it is run."""
    assert callable(hook)
    _import_hooks.append(hook)


def _reconstruct_persistent_obj(meta):
    """Unpickle a persistent object by executing its embedded module source (trusted)."""
    meta = _to_easydict(meta)
    meta.state = _to_easydict(meta.state)
    for hook in _import_hooks:
        meta = hook(meta)
        assert meta is not None
    assert meta.version == FORMAT_VERSION, f'unsupported persistence format version {meta.version}'
    module = _src_to_module(meta.module_src)
    assert meta.type == 'class'
    orig_class = module.__dict__[meta.class_name]
    decorator_class = persistent_class(orig_class)
    obj = decorator_class.__new__(decorator_class)
    setstate = getattr(obj, '__setstate__', None)
    if callable(setstate):
        setstate(meta.state)
    else:
        obj.__dict__.update(meta.state)
    return obj


def _to_easydict(value):
    from dnnlib.util import EasyDict  # Local import: dnnlib must not be needed to import us.
    return EasyDict(value) if isinstance(value, dict) and not isinstance(value, EasyDict) else value


def _module_to_src(module):
    src = _module_to_src_cache.get(module, None)
    if src is None:
        src = inspect.getsource(module)
        _module_to_src_cache[module] = src
        _src_to_module_cache[src] = module
    return src


def _src_to_module(src):
    module = _src_to_module_cache.get(src, None)
    if module is None:
        name = '_imported_module_' + uuid.uuid4().hex
        module = types.ModuleType(name)
        sys.modules[name] = module
        _module_to_src_cache[module] = src
        _src_to_module_cache[src] = module
        exec(src, module.__dict__)  # noqa: S102 - the trusted path, by design.
    return module


def _check_pickleable(obj):
    """Fail early, at construction, if init arguments could not be pickled."""
    def recurse(value):
        if isinstance(value, (list, tuple, set)):
            return [recurse(x) for x in value]
        if isinstance(value, dict):
            return [[recurse(k), recurse(v)] for k, v in value.items()]
        if isinstance(value, (str, int, float, bool, bytes, bytearray)) or value is None:
            return None
        if f'{type(value).__module__}.{type(value).__name__}' in ('numpy.ndarray', 'torch.Tensor', 'torch.nn.parameter.Parameter'):
            return None
        if is_persistent(value):
            return None
        return value
    with io.BytesIO() as buffer:
        pickle.dump(recurse(obj), buffer)
