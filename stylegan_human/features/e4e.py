"""The e4e encoder (Encoder4Editing, IR-SE50 backbone), written here; loads StyleGAN-Human's ``e4e_w+.pt``.

Photo (2:1, resized to 256x128, in [-1, 1]) -> w+ [N, n_styles, w_dim] (512 in the
published file): an IR-SE50 body gives feature maps at three scales (c1: 64x32, c2: 32x16, c3: 16x8 for a
256x128 input), merged FPN-style; the first style block predicts a base w from
c3, and each further block adds an offset for its layer (coarse layers from c3,
middle from c3 + c2, fine from those + c1). The checkpoint's ``latent_avg`` is
added, as pSp does. Module and key names are those of the published checkpoint
(``encoder.input_layer.*``, ``encoder.body.N.*``, ``encoder.styles.K.*``,
``encoder.latlayer1/2.*``); its ``decoder.*`` (a StyleGAN2 we do not need) is ignored.
"""

import math
import os
import pickle
from typing import Any, Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from dnnlib.errors import FileFormatError, load_failure

INPUT_SIZE = (256, 128)          # (height, width) the StyleGAN-Human e4e was trained at
_COARSE, _MIDDLE = 3, 7          # style index where the c2 and c1 features join
_BLOCKS = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))   # IR-SE50: (in, out, units)
E4E_SOURCE = 'https://drive.google.com/file/d/1NUfSJqLhsrU7c9PwAtlZ9xtrxhzS_6tu/view'


class E4EWeightsError(FileFormatError):
    """The e4e checkpoint is missing or unusable (one line)."""


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x):
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


class BottleneckIRSE(nn.Module):
    """Residual unit: BN-conv-PReLU-conv(stride)-BN-SE, plus a (projected) shortcut."""

    def __init__(self, in_channels, depth, stride):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth), SqueezeExcite(depth))

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class EqualLinear(nn.Module):
    """Linear layer with the weight scaled by 1/sqrt(in) at run time (StyleGAN2's equalised learning rate)."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = 1 / math.sqrt(in_dim)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


class StyleBlock(nn.Module):
    """Stride-2 convolutions down to one pixel, then a linear layer: a feature map -> one w code."""

    def __init__(self, in_channels, w_dim, spatial):
        super().__init__()
        layers = []
        for i in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(in_channels if i == 0 else w_dim, w_dim, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(w_dim, w_dim)

    def forward(self, x):
        return self.linear(self.convs(x).flatten(1))   # the convolutions end at 1x1 for the trained input size


class Encoder4Editing(nn.Module):
    def __init__(self, n_styles=18, w_dim=512):
        super().__init__()
        self.n_styles = n_styles
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for in_channels, depth, count in _BLOCKS:
            units.append(BottleneckIRSE(in_channels, depth, 2))
            units += [BottleneckIRSE(depth, depth, 1) for _ in range(count - 1)]
        self.body = nn.Sequential(*units)
        self.styles = nn.ModuleList(
            [StyleBlock(512, w_dim, 16 if i < _COARSE else 32 if i < _MIDDLE else 64) for i in range(n_styles)])
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)
        # Units whose outputs feed the pyramid: ends of the 128-, 256- and 512-channel stages.
        self.taps = (len(units[:3 + 4]) - 1, len(units[:3 + 4 + 14]) - 1, len(units) - 1)

    def forward(self, x):
        x = self.input_layer(x)
        feats = []
        for index, unit in enumerate(self.body):
            x = unit(x)
            if index in self.taps:
                feats.append(x)
        c1, c2, c3 = feats
        base = self.styles[0](c3)
        codes = [base]
        features = c3
        for i in range(1, self.n_styles):
            if i == _COARSE:
                features = upsample_add(c3, self.latlayer1(c2))
            elif i == _MIDDLE:
                features = upsample_add(features, self.latlayer2(c1))
            codes.append(base + self.styles[i](features))
        return torch.stack(codes, dim=1)


def upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[2:], mode='bilinear', align_corners=True) + y


class E4EInverter(nn.Module):
    """``inverter(images in [-1, 1], any size) -> w+ [N, n_styles, w_dim]`` (encoder output + latent_avg)."""

    def __init__(self, encoder, latent_avg):
        super().__init__()
        self.encoder = encoder
        self.register_buffer('latent_avg', latent_avg.reshape(-1, latent_avg.shape[-1]))

    def forward(self, images):
        if tuple(images.shape[2:]) != INPUT_SIZE:
            # Upstream resizes a PIL image with antialiasing; the same here on tensors.
            images = F.interpolate(images, size=INPUT_SIZE, mode='bilinear', align_corners=False, antialias=True)
        return self.encoder(images) + self.latent_avg.unsqueeze(0)


def read_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The checkpoint dict, loaded without running code (tensors, numbers, strings, dicts only)."""
    if not os.path.isfile(path):
        raise E4EWeightsError(f"e4e encoder not found at {path}: download StyleGAN-Human's e4e_w+.pt from "
                              f'{E4E_SOURCE} and pass it with --e4e PATH (or use --inversion w)')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise E4EWeightsError(f'{path}: not a readable e4e checkpoint ({load_failure(err)})') from None
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
        raise E4EWeightsError(f'{path}: not an e4e checkpoint (no state_dict)')
    return ckpt


def load_e4e(path: Union[str, os.PathLike], num_ws: Optional[int] = None,
             device: Union[str, torch.device] = 'cpu') -> E4EInverter:
    """An E4EInverter from ``e4e_w+.pt``; ``num_ws`` (the generator's) is checked against the encoder's styles."""
    ckpt = read_checkpoint(path)
    weights = {k[len('encoder.'):]: v for k, v in ckpt['state_dict'].items() if k.startswith('encoder.')}
    n_styles = 1 + max((int(k.split('.')[1]) for k in weights if k.startswith('styles.')), default=-1)
    if n_styles <= 0:
        raise E4EWeightsError(f'{path}: no encoder.styles.* weights: not an e4e checkpoint')
    if num_ws is not None and n_styles != num_ws:
        raise E4EWeightsError(f'{path}: the encoder predicts {n_styles} w codes but the generator takes {num_ws}; '
                              'use the e4e file trained for this generator, or --inversion w')
    w_dim = weights['styles.0.linear.weight'].shape[0] if 'styles.0.linear.weight' in weights else 512
    encoder = Encoder4Editing(n_styles, w_dim)
    own = encoder.state_dict()
    for key, value in own.items():
        if key not in weights:
            raise E4EWeightsError(f'{path}: missing weight encoder.{key}')
        if tuple(weights[key].shape) != tuple(value.shape):
            raise E4EWeightsError(f'{path}: encoder.{key} has shape {list(weights[key].shape)}, '
                                  f'expected {list(value.shape)}')
    encoder.load_state_dict({k: weights[k] for k in own})
    latent_avg = ckpt.get('latent_avg')
    if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1] != w_dim:
        raise E4EWeightsError(f'{path}: no latent_avg [.., {w_dim}] in the checkpoint')
    if latent_avg.numel() not in (w_dim, w_dim * n_styles):
        raise E4EWeightsError(f'{path}: latent_avg has shape {list(latent_avg.shape)}')
    return E4EInverter(encoder, latent_avg.float()).eval().requires_grad_(False).to(device)
