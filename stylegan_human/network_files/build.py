"""Networks rebuilt from a file's config and tensors, checked before any memory is taken.

A file's config (``init_kwargs``) decides how large the network is, and a file is
untrusted input: a config with ``z_dim=2**31`` would make the constructor allocate until
the kernel stops the process. So a network is first built on PyTorch's ``meta`` device
(shapes, no storage), its parameters and buffers are compared with the tensors the file
holds (names and shapes) and their total size with the memory that is free, and only
then is storage allocated (``to_empty``) and filled from the file. Any mismatch is one
:class:`NetworkFileError` line; nothing random is drawn, every tensor comes from the file.
"""

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

import dnnlib
from torch_utils import memory
from .safe_pickle import NetworkFileError, PersistentRecord


def _stylegan1():
    from training import networks_stylegan1
    return networks_stylegan1


def _stylegan2():
    from training import networks_stylegan2
    return networks_stylegan2


def _stylegan3():
    from training import networks_stylegan3
    return networks_stylegan3


def _network_class(record: PersistentRecord, tensors: Mapping[str, Any]):
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
        from training import augment
        return augment.AugmentPipe
    return None


def _infer_square(record: PersistentRecord, tensors: Mapping[str, Any]) -> bool:
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


def force_fp16_kwargs(kwargs: dict) -> None:
    """Upstream's --force-fp16: fp16 in the top 4 resolutions, clamped convolutions."""
    target = kwargs['synthesis_kwargs'] if 'synthesis_kwargs' in kwargs else kwargs
    target['num_fp16_res'] = 4
    target['conv_clamp'] = 256


def rebuild_network(record: PersistentRecord, force_fp16: bool = False) -> torch.nn.Module:
    """Our own module for ``record``, holding exactly the record's parameters and buffers."""
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
        force_fp16_kwargs(kwargs)
    module = construct_without_storage(cls, record.init_args, kwargs, what=record.class_name,
                                       largest=_total_elements(tensors.values()))
    fill_from(module, tensors, what=record.class_name)
    module.train(bool(record.state.get('training', False)))
    return module


def construct_without_storage(cls: type, args: Sequence, kwargs: Mapping, what: str,
                              largest: int) -> torch.nn.Module:
    """``cls(*args, **kwargs)`` on the meta device: shapes only, no tensor memory.

    ``largest`` is how many elements the file holds in all; no size in a real config
    exceeds it, and refusing larger ones first keeps the constructor's own arithmetic
    (filter design, numpy buffers) from running away on a hostile config.
    """
    for key, value in _config_integers(kwargs):
        if value < 0 or value > max(largest, 1 << 16):
            raise NetworkFileError(f'{what}: config {key}={value} does not fit the file '
                                   f'({largest} numbers in all); the file is damaged or not a network')
    try:
        with torch.device('meta'):
            return cls(*args, **dnnlib.EasyDict(kwargs))
    except (TypeError, ValueError, KeyError, AssertionError, IndexError, ZeroDivisionError,
            OverflowError, RuntimeError, NotImplementedError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise NetworkFileError(f'cannot rebuild {what}: {message}') from None


def _config_integers(value, key=''):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, np.integer)):
        yield key, int(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _config_integers(v, f'{key}.{k}' if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _config_integers(v, f'{key}[{i}]')


def _total_elements(tensors) -> int:
    return sum(int(np.prod(_shape_of(t))) for t in tensors)


def _shape_of(value) -> tuple:
    return tuple(getattr(value, 'shape', np.shape(value)))


def check_against_file(module: torch.nn.Module, shapes: Mapping[str, tuple], what: str) -> None:
    """Every parameter and buffer of ``module`` is in the file with its shape, and nothing else is."""
    targets = _named_tensors(module)
    missing = sorted(set(targets) - set(shapes))
    unexpected = sorted(set(shapes) - set(targets))
    if missing or unexpected:
        raise NetworkFileError(
            f'{what} does not match its architecture: missing {missing[:3]}, unexpected {unexpected[:3]}')
    for name, target in targets.items():
        if tuple(shapes[name]) != tuple(target.shape):
            raise NetworkFileError(
                f'{what}: {name} has shape {tuple(shapes[name])}, expected {tuple(target.shape)}')


def check_fits_in_memory(module: torch.nn.Module, what: str) -> None:
    """Refuse a network whose tensors need more than the memory free now."""
    needed = sum(t.numel() * t.element_size() for t in _named_tensors(module).values())
    free = memory.available_bytes('cpu')
    if free is not None and needed > free:
        raise NetworkFileError(f'{what} needs {needed / 2**30:.1f} GiB, but only {free / 2**30:.1f} GiB of '
                               'memory is free')


def fill_from(module: torch.nn.Module, tensors: Mapping[str, Any], what: str,
              convert: Callable[[Any], torch.Tensor] = None) -> torch.nn.Module:
    """Check ``module`` (built by :func:`construct_without_storage`) against ``tensors``, give it
    storage and copy every tensor in by name."""
    check_against_file(module, {name: _shape_of(t) for name, t in tensors.items()}, what)
    check_fits_in_memory(module, what)
    module.to_empty(device='cpu')
    convert = convert or _as_tensor
    with torch.no_grad():
        for name, target in _named_tensors(module).items():
            source = convert(tensors[name])
            target.copy_(source.to(target.dtype))
            if isinstance(target, torch.nn.Parameter) and isinstance(source, torch.nn.Parameter):
                target.requires_grad_(source.requires_grad)
    return module


def _as_tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _named_tensors(module: torch.nn.Module) -> dict:
    targets = dict(module.named_parameters())
    targets.update(module.named_buffers())
    return targets


def rebuild_tree(value: Any, force_fp16: bool) -> Any:
    """Rebuild every record inside nested dicts."""
    if isinstance(value, PersistentRecord):
        return rebuild_network(value, force_fp16=force_fp16)
    if isinstance(value, dict):
        return type(value)((k, rebuild_tree(v, force_fp16)) for k, v in value.items())
    return value
