"""NVIDIA's VGG16 perceptual network (``vgg16.pt``), rebuilt here; its weights read without running it.

NVIDIA distributes a TorchScript file (a zip of ``data.pkl`` + tensor records +
code). ``torch.jit.load`` would run the code inside; instead the module tree in
``data.pkl`` is read by a restricted unpickler that only rebuilds tensors and
plain attribute holders, and the weights are copied into :class:`VGG16Features`
by name: ``layers.conv1`` ... ``layers.conv13`` (the 13 convolutions of VGG16),
``layers.fc1..fc3`` (classifier, optional) and ``lpips0`` ... ``lpips4`` (the
LPIPS channel weights of the five taps).

``forward(img, resize_images=False, return_lpips=False)`` follows the file's
call signature: images in [0, 255]; with ``return_lpips`` the output is a flat
feature vector per image whose squared Euclidean distance is the LPIPS distance
(channel-normalised features at relu1_2 ... relu5_3, scaled by sqrt of the
LPIPS weights and by 1/sqrt(H*W)).
"""

import collections
import os
import pickle
import warnings
import zipfile
from typing import Dict, Union

import numpy as np
import torch
import torch._utils
import torch.nn.functional as F
from torch import nn

from dnnlib.errors import FileFormatError
from torch_utils.ops import ops_mode, winograd_conv
from .resize import tf_bilinear_resize  # noqa: F401 - used below and by callers of this module

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CONVS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512), (512, 512),
          (512, 512), (512, 512), (512, 512), (512, 512))
_POOL_AFTER = (2, 4, 7, 10)         # max-pool after these convolutions (1-based)
_TAP_AFTER = (2, 4, 7, 10, 13)      # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_TAP_CHANNELS = (64, 128, 256, 512, 512)


class TorchScriptFileError(FileFormatError):
    """Not a TorchScript archive we can read safely (one line)."""


class VGG16Features(nn.Module):
    def __init__(self, with_classifier=False):
        super().__init__()
        self.layers = nn.Module()
        for i, (cin, cout) in enumerate(_CONVS, start=1):
            self.layers.add_module(f'conv{i}', nn.Conv2d(cin, cout, 3, padding=1))
        if with_classifier:
            self.layers.add_module('fc1', nn.Linear(512 * 7 * 7, 4096))
            self.layers.add_module('fc2', nn.Linear(4096, 4096))
            self.layers.add_module('fc3', nn.Linear(4096, 1000))
        for k, channels in enumerate(_TAP_CHANNELS):
            self.register_buffer(f'lpips{k}', torch.ones(channels))
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1) * 255)
        self.layers.to(memory_format=torch.channels_last)   # see forward; loading weights keeps the layout

    def forward(self, img, resize_images=False, return_lpips=False, return_features=False):
        x = img
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if resize_images:
            x = tf_bilinear_resize(x, 224, 224)
        # Channels-last: the layout CPU convolutions run fastest in, forward and backward
        # (about twice the speed of contiguous ones with 64 channels).
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        taps = []
        for i in range(1, len(_CONVS) + 1):
            x = F.relu(_conv3x3(getattr(self.layers, f'conv{i}'), x))
            if i in _TAP_AFTER:
                taps.append(x)
            if i in _POOL_AFTER:
                x = F.max_pool2d(x, 2, 2)
        if return_lpips:
            parts = []
            for k, feature in enumerate(taps):
                feature = feature / (feature.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
                weight = getattr(self, f'lpips{k}').view(1, -1, 1, 1).clamp(min=0).sqrt()
                flat = _FlattenChannelsFirst.apply(feature * weight)
                parts.append(flat / np.sqrt(feature.shape[2] * feature.shape[3]))
            return torch.cat(parts, dim=1)
        if not hasattr(self.layers, 'fc1'):
            raise ValueError('this VGG16 was built without its classifier (with_classifier=False)')
        x = F.adaptive_avg_pool2d(F.max_pool2d(x, 2, 2), (7, 7)).flatten(1)
        x = F.relu(self.layers.fc2(F.relu(self.layers.fc1(x))))
        return x if return_features else self.layers.fc3(x)


def _conv3x3(conv, x):
    """``conv(x)``; in the fast ops mode on the CPU as Winograd where that pays (the wide layers)."""
    if ops_mode.fast_cpu(x):
        return winograd_conv.conv3x3(x, conv.weight, conv.bias)
    return conv(x)


class _FlattenChannelsFirst(torch.autograd.Function):
    """``x.flatten(1)`` (channel, row, column order) of a channels-last ``x``, its gradient
    handed back channels-last.

    Autograd's own gradient would come back contiguous, and every backward step above it,
    through the normalisation, the ReLU and the sum with the next convolution's gradient,
    would mix two layouts: strided passes, about 30 ms a step on the first tap at 256x128."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.contiguous().flatten(1)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape).contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------
# Reading a TorchScript archive without executing it


class _ScriptObject:
    """Stands in for any ``__torch__.*`` class: keeps the attributes it is given, nothing more."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__['_state'] = state


_TENSOR_GLOBALS = {('torch._utils', '_rebuild_tensor_v2'), ('torch._utils', '_rebuild_parameter'),
                   ('collections', 'OrderedDict')}


# TorchScript pickles sizes and strides as typed lists: plain lists are all they need.
_JIT_LIST_BUILDERS = {'build_intlist': list, 'build_doublelist': list, 'build_boollist': list,
                      'build_tensorlist': list, 'restore_type_tag': lambda value, _type: value}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive = archive
        self.prefix = prefix

    def find_class(self, module, name):
        if module.startswith('__torch__'):
            return type(name, (_ScriptObject,), {})
        if (module, name) in _TENSOR_GLOBALS:
            return getattr({'collections': collections, 'torch._utils': torch._utils}[module], name)
        if module == 'torch.jit._pickle' and name in _JIT_LIST_BUILDERS:
            return _JIT_LIST_BUILDERS[name]
        if module == 'torch' and name.endswith('Storage'):
            return getattr(torch, name)
        raise TorchScriptFileError(f'refusing to load {module}.{name} from the file')

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid
        if kind != 'storage':
            raise TorchScriptFileError(f'unknown record kind {kind!r}')
        raw = torch.UntypedStorage.from_buffer(bytearray(self.archive.read(f'{self.prefix}data/{key}')),
                                               dtype=torch.uint8)
        with warnings.catch_warnings():  # the typed wrapper is what _rebuild_tensor_v2 takes
            warnings.simplefilter('ignore', UserWarning)
            return torch.storage.TypedStorage(wrap_storage=raw, dtype=storage_type.dtype, _internal=True)


def read_torchscript_tensors(path: Union[str, os.PathLike]) -> Dict[str, torch.Tensor]:
    """All tensors of a TorchScript module file, keyed by dotted attribute path (``layers.conv1.weight``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith('/data.pkl') and n.count('/') == 1]
            if not names:
                raise TorchScriptFileError('no data.pkl: not a TorchScript archive')
            prefix = names[0][:-len('data.pkl')]
            with archive.open(names[0]) as f:
                root = _Unpickler(f, archive, prefix).load()
    except zipfile.BadZipFile:
        raise TorchScriptFileError('not a TorchScript file (not a zip archive)') from None
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as err:
        if isinstance(err, TorchScriptFileError):
            raise
        raise TorchScriptFileError(f'unreadable TorchScript archive ({type(err).__name__}: {err})') from None
    tensors = {}
    _collect(root, '', tensors, set())
    return tensors


def _collect(obj, prefix, out, seen):
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip('.')] = obj
    elif isinstance(obj, _ScriptObject):
        for key, value in vars(obj).items():
            _collect(value, f'{prefix}{key}.', out, seen)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _collect(value, f'{prefix}{key}.', out, seen)


def load_vgg16(path: Union[str, os.PathLike], device: Union[str, torch.device] = 'cpu',
               with_classifier: bool = False) -> VGG16Features:
    """VGG16Features with the weights of NVIDIA's vgg16.pt (read safely); eval mode, no grads."""
    tensors = read_torchscript_tensors(path)
    model = VGG16Features(with_classifier=with_classifier)
    own = model.state_dict()
    for key in own:
        if key in ('mean', 'std'):
            continue
        if key not in tensors:
            raise TorchScriptFileError(f'the file has no tensor {key}: not NVIDIA\'s vgg16.pt')
        value = tensors[key].reshape(own[key].shape) if tensors[key].numel() == own[key].numel() else None
        if value is None:
            raise TorchScriptFileError(f'{key} has shape {list(tensors[key].shape)}, expected {list(own[key].shape)}')
        own[key] = value
    model.load_state_dict(own)
    return model.eval().requires_grad_(False).to(device)
