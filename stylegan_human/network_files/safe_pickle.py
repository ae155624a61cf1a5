"""Reading network pickles without running them.

A restricted unpickler resolves only an allow-list of globals (numpy and torch tensor
rebuilding, ``EasyDict``, ``OrderedDict``, dtypes) and turns every persistent network
object into a :class:`PersistentRecord` and every StyleGAN1 TensorFlow network into a
:class:`TFNetworkRecord`: plain data, no embedded source executed. Anything else the
file asks for is refused (:class:`RefusedGlobal`).
"""

import collections
import copy
import io
import os
import pickle
import re
from typing import Any, BinaryIO, Union

import numpy as np
import torch

import dnnlib
from dnnlib.errors import FileFormatError


class NetworkFileError(FileFormatError):
    """A network file that cannot be used; the message is one line for the user."""


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
    # torch's own helper unpickles these bytes with weights_only=False; we do not. What torch refuses
    # here is refused for the whole file (its message would suggest weights_only=False: never).
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')
    except pickle.UnpicklingError as err:
        found = re.search(r'GLOBAL ([\w.]+)', str(err))
        raise RefusedGlobal(f'{found.group(1) if found else "a global"} (inside embedded tensor bytes)') from None


def allowed_globals() -> dict:
    """{(module, name): object} that network pickles may name; everything else is refused."""
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
            _ALLOWED_GLOBALS = allowed_globals()
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f'{module}.{name}') from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError('persistent ids are not used by network pickles')


def read_pickle_safely(f: Union[str, os.PathLike, BinaryIO]) -> Any:
    """Unpickle ``f`` (path or binary file) with the allow-list; networks stay records."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as file:
            return read_pickle_safely(file)
    return _SafeUnpickler(f).load()
