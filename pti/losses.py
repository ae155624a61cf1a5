"""The networks PTI needs, built from their weight files with one-line errors.

``load_lpips`` (tuning loss), ``load_vgg16`` (W projection loss) and
``load_encoder`` (e4e, W+ pivots) each take a path or a name of
:mod:`pti.weight_files` and raise :class:`WeightsError` when the file is
missing or is not what it should be.
"""

import pickle
from typing import Callable, Optional, Union

import torch

from dnnlib.errors import FileFormatError, load_failure

from . import weight_files
from stylegan_human.features.e4e import E4EWeightsError, load_e4e
from stylegan_human.features.lpips import LPIPS, lpips_module_to_published
from stylegan_human.features.vgg16_nvidia import TorchScriptFileError, load_vgg16 as _load_vgg16


class WeightsError(FileFormatError):
    """A weight file is missing or unusable (one line)."""


DEFAULT_BACKBONE = {'alex': 'alexnet_torchvision', 'vgg': 'vgg16_torchvision'}


def _state_dict(path):
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise WeightsError(f'{path}: not a readable weight file ({load_failure(err)})') from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f'{path}: not a state dict of tensors')
    return data


def load_lpips(net: str = 'alex', lin: Optional[str] = None, backbone: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu') -> LPIPS:
    """LPIPS(net) with the v0.1 linear layers ``lin`` and ImageNet ``backbone`` (names or paths)."""
    try:
        lin_path = weight_files.resolve(lin or f'lpips_{net}_lin', option='--lpips-weights')
        lin_dict = _state_dict(lin_path)
        if any(k.startswith('net.') for k in lin_dict):       # one file with the whole lpips module
            backbone_dict, lin_dict = lpips_module_to_published(lin_dict, net)
        else:
            backbone_path = weight_files.resolve(backbone or DEFAULT_BACKBONE[net], option='--lpips-backbone')
            backbone_dict = _state_dict(backbone_path)
        model = LPIPS(net).load_published(backbone_dict, lin_dict)
    except weight_files.WeightsMissing as err:
        raise WeightsError(str(err)) from None
    except KeyError as err:
        raise WeightsError(f'LPIPS-{net} weights do not fit: {err.args[0]}') from None
    return model.eval().requires_grad_(False).to(device)


def load_vgg16(name_or_path: str = 'vgg16_nvidia',
               device: Union[str, torch.device] = 'cpu') -> Callable[[torch.Tensor], torch.Tensor]:
    """NVIDIA's VGG16 feature network in LPIPS mode: ``features(images_0_255) -> [N, D]``."""
    try:
        model = _load_vgg16(weight_files.resolve(name_or_path, option='--vgg16'), device=device)
    except weight_files.WeightsMissing as err:
        raise WeightsError(str(err)) from None
    except TorchScriptFileError as err:
        raise WeightsError(f'{name_or_path}: {err}') from None
    return lambda images: model(images, resize_images=False, return_lpips=True)


def load_encoder(path: Optional[str], num_ws: int, device: Union[str, torch.device] = 'cpu') -> torch.nn.Module:
    """The e4e encoder as ``encoder(images in [-1, 1]) -> w+ [N, num_ws, w_dim]``."""
    try:
        return load_e4e(path, num_ws=num_ws, device=device)
    except E4EWeightsError as err:
        raise WeightsError(str(err)) from None
