"""Networks rebuilt from a file's config and tensors, with bounded memory and a strict check.

A file's config (``init_kwargs``) decides how large the network is, and a file is
untrusted input: a config with ``z_dim=2**31`` would make the constructor allocate until
the kernel stops the process. So the config's integers are first held against the number
of values the file holds; then, while the network is constructed, each new tensor is
counted before it is allocated, against a budget of twice the file's bytes and the free
memory (:class:`_AllocationBudget`, which also skips drawing random initial values); then
its parameters and buffers are compared with the file's tensors (names and shapes, nothing
missing, nothing extra) and filled from them. Any problem is one :class:`NetworkFileError`.

(Building on PyTorch's ``meta`` device would avoid even the bounded allocation, but its first
use imports ``torch._dynamo``, a second more of every script's start-up.)
"""

from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

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
    module = construct_for_loading(cls, record.init_args, kwargs, what=record.class_name,
                                   file_numbers=_total_elements(tensors.values()),
                                   file_bytes=_total_bytes(tensors.values()))
    fill_from(module, tensors, what=record.class_name)
    module.train(bool(record.state.get('training', False)))
    return module


class _AllocationBudget(TorchFunctionMode):
    """While a network is constructed for loading: each new tensor is counted against a budget
    before it is allocated, and random initial values are not drawn (the file's values replace
    them next). A mode, so it holds for the constructing thread only and changes nothing global."""

    _SIZED = {torch.empty, torch.zeros, torch.ones, torch.randn, torch.rand, torch.full}
    _RANDOM = {torch.randn, torch.rand}

    def __init__(self, budget: int, what: str, limited_by_memory: bool):
        super().__init__()
        self.budget, self.what, self.limited_by_memory = budget, what, limited_by_memory
        self.used = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self._SIZED:
            size = tuple(kwargs['size']) if 'size' in kwargs else _requested_size(func, args)
            dtype = kwargs.get('dtype') or torch.get_default_dtype()
            self.used += int(np.prod(size, dtype=np.float64)) * dtype.itemsize
            if self.used > self.budget:
                raise self._refusal()
            if func in self._RANDOM:
                return torch.empty(size, **{k: v for k, v in kwargs.items() if k not in ('generator', 'size')})
        return func(*args, **kwargs)

    def _refusal(self) -> NetworkFileError:
        if self.limited_by_memory:
            return NetworkFileError(f'{self.what} needs at least {self.used / 2**30:.1f} GiB, but only '
                                    f'{self.budget / 2**30:.1f} GiB of memory is free')
        return NetworkFileError(f'{self.what}: its config asks for at least {self.used / 2**30:.1f} GiB of tensors, '
                                f'more than the file could fill ({self.budget / 2**20:.0f} MiB allowed); '
                                'the file is damaged or not a network')


def _requested_size(func, args) -> tuple:
    """The size argument of a factory call: ``f(2, 3)``, ``f([2, 3])`` or ``full([2, 3], value)``."""
    if func is torch.full or (len(args) == 1 and isinstance(args[0], (list, tuple, torch.Size))):
        return tuple(int(n) for n in args[0])
    return tuple(int(n) for n in args)


def construct_for_loading(cls: type, args: Sequence, kwargs: Mapping, what: str, file_numbers: int,
                          file_bytes: int) -> torch.nn.Module:
    """``cls(*args, **kwargs)`` for a network whose every tensor is copied from a file next.

    The config comes from the file, so it is untrusted: before construction, no integer in it may
    exceed the number of values the file holds (no size in a real config does, and this keeps the
    constructor's own arithmetic, such as filter design, from running away); during construction
    every new tensor is counted before it is allocated, against twice the file's bytes (the
    network's tensors are the file's, plus temporaries) and the free memory.
    """
    for key, value in _config_integers(kwargs):
        if value < 0 or value > max(file_numbers, 1 << 16):
            raise NetworkFileError(f'{what}: config {key}={value} does not fit the file '
                                   f'({file_numbers} numbers in all); the file is damaged or not a network')
    budget = 2 * file_bytes + (64 << 20)
    free = memory.available_bytes('cpu')
    limited_by_memory = free is not None and free < budget
    try:
        with _AllocationBudget(min(budget, free) if limited_by_memory else budget, what, limited_by_memory):
            return cls(*args, **dnnlib.EasyDict(kwargs))
    except NetworkFileError:
        raise
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


def _total_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() if isinstance(t, torch.Tensor) else np.asarray(t).nbytes for t in tensors)


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


def fill_from(module: torch.nn.Module, tensors: Mapping[str, Any], what: str,
              convert: Optional[Callable[[Any], torch.Tensor]] = None) -> torch.nn.Module:
    """Check ``module`` (built by :func:`construct_for_loading`) against ``tensors`` and copy every
    tensor in by name."""
    check_against_file(module, {name: _shape_of(t) for name, t in tensors.items()}, what)
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
