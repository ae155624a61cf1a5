"""Opening a network file of any kind: official pickle, StyleGAN1 TensorFlow pickle, export.

:func:`load_network` takes a path, URL or model-zoo name, tells the format from the
file's first bytes and gives one-line errors for everything a user can hand it (a
folder, an image, an empty or truncated file). :func:`load_network_pkl` is NVIDIA's
entry point with NVIDIA's signature; by default it never executes code from the file.
"""

import os
import pickle
import warnings
from typing import BinaryIO, Optional, Union

import torch

from .build import rebuild_network, rebuild_tree
from .safe_pickle import NetworkFileError, PersistentRecord, RefusedGlobal, TFNetworkRecord, read_pickle_safely
from .trusted import load_trusted_pickle

PathLike = Union[str, os.PathLike]


def load_network_pkl(f: Union[PathLike, BinaryIO], force_fp16: bool = False,
                     trust_embedded_code: bool = False) -> dict:
    """Read an official network pickle into a dict with ``G_ema`` (and ``G``, ``D``, ...).

    ``f`` is a binary file object or a path. The default never executes code from
    the file. With ``trust_embedded_code=True`` the pickle is loaded the upstream way,
    running the source embedded in it (only for files you trust).
    """
    if isinstance(f, (str, os.PathLike)):
        with open(f, 'rb') as file:
            return load_network_pkl(file, force_fp16=force_fp16, trust_embedded_code=trust_embedded_code)
    if trust_embedded_code:
        return load_trusted_pickle(f)
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
            data[key] = rebuild_tree(value, force_fp16)
    return data


def _load_tensorflow(networks):
    from .stylegan1_tf import convert_tf_networks
    return convert_tf_networks(networks)


_MAGIC = {
    b'\x89PNG': 'a PNG image', b'\xff\xd8\xff': 'a JPEG image', b'GIF8': 'a GIF image',
    b'PK\x03\x04': 'a zip archive (a torch.save checkpoint?)', b'\x1f\x8b': 'a gzip file',
}


def load_network(path: PathLike, force_fp16: bool = False, trust_embedded_code: bool = False,
                 device: Optional[Union[str, torch.device]] = None, verbose: bool = True) -> dict:
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
        from .export import load_exported_network
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
    from stylegan_human import zoo
    try:
        return zoo.resolve_network(path, verbose=verbose)
    except Exception as err:  # The zoo's errors are already one line for the user.
        raise NetworkFileError(str(err)) from None
