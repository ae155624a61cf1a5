"""Writing networks: the official pickle format, and a code-free ``.safetensors`` export.

The export holds the weights and, in the file's metadata, the config that rebuilds the
network (family, class, init arguments); a readable ``.json`` copy of the config goes
beside it. Loading an export reads the header first, builds the network within the
file's memory budget and checks it against the header's names and shapes before a byte
of weights is read.
"""

import copy
import importlib
import json
import os
import pickle
from typing import Union

import numpy as np
import torch

import dnnlib
from dnnlib.atomic import atomic_write
from .build import check_against_file, construct_for_loading, fill_from, force_fp16_kwargs
from .safe_pickle import NetworkFileError

PathLike = Union[str, os.PathLike]
_EXPORT_CONFIG_KEY = 'stylegan_human_export'  # the config's key in the .safetensors metadata
_FAMILIES = {'networks_stylegan2': 'training.networks_stylegan2',
             'networks_stylegan3': 'training.networks_stylegan3',
             'networks_stylegan1': 'training.networks_stylegan1'}


def save_network_pkl(data: Union[dict, torch.nn.Module], path: PathLike) -> None:
    """Write ``data`` (a dict of networks, or one network saved as G_ema) as an official pickle."""
    if isinstance(data, torch.nn.Module):
        data = {'G_ema': data}
    data = {k: (copy.deepcopy(v).eval().requires_grad_(False).cpu() if isinstance(v, torch.nn.Module) else v)
            for k, v in data.items()}
    atomic_write(path, lambda f: pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL))


def _module_family(module: torch.nn.Module) -> str:
    name = type(module).__module__
    for family in _FAMILIES:
        if name.endswith(family):
            return family
    raise NetworkFileError(f'cannot export {type(module).__name__} from {name}: not one of our network classes')


def export_network(module: torch.nn.Module, path: PathLike) -> None:
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


def _export_json_path(path: str) -> str:
    return path[:-len('.safetensors')] + '.json' if path.endswith('.safetensors') else path + '.json'


def load_exported_network(path: PathLike, force_fp16: bool = False) -> torch.nn.Module:
    """Inverse of :func:`export_network`: our class, identical parameters and buffers."""
    from safetensors import SafetensorError, safe_open
    path = os.fspath(path)
    try:
        with safe_open(path, framework='pt') as f:
            text = (f.metadata() or {}).get(_EXPORT_CONFIG_KEY)
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
            if text is None:  # Exports before the config moved into the file: the .json beside it.
                with open(_export_json_path(path)) as config_file:
                    text = config_file.read()
            config = json.loads(text)
            module = _construct(path, config, shapes, force_fp16)
            check_against_file(module, shapes, config['class_name'])  # before any weights are read
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError as err:
        raise NetworkFileError(f'{path}: not a StyleGAN-Human export (no config in the file, '
                               f'and no {os.path.basename(err.filename or "")} beside it)') from None
    except NetworkFileError as err:
        raise NetworkFileError(f'{path}: {err}') from None
    except (OSError, ValueError, SafetensorError) as err:
        raise NetworkFileError(f'{path}: cannot read export: {err}') from None
    try:
        fill_from(module, tensors, what=config['class_name'])
    except NetworkFileError as err:
        raise NetworkFileError(f'{path}: {err}') from None
    return module.eval().requires_grad_(False)


def _construct(path: str, config, shapes: dict, force_fp16: bool) -> torch.nn.Module:
    if not isinstance(config, dict) or config.get('format') != 'stylegan-human-export':
        raise NetworkFileError('not a StyleGAN-Human export config')
    module_name = _FAMILIES.get(config.get('family'))
    cls = getattr(importlib.import_module(module_name), str(config.get('class_name')), None) if module_name else None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise NetworkFileError(f'unknown network {config.get("family")}.{config.get("class_name")}')
    kwargs = dnnlib.EasyDict(config.get('init_kwargs', {}))
    if force_fp16 and config['class_name'] in ('Generator', 'Discriminator') and config['family'] != 'networks_stylegan1':
        force_fp16_kwargs(kwargs)
    numbers = sum(int(np.prod(shape)) for shape in shapes.values())
    return construct_for_loading(cls, config.get('init_args', []), kwargs, what=config['class_name'],
                                 file_numbers=numbers, file_bytes=os.path.getsize(path))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value
