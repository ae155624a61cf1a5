"""LPIPS (Zhang et al. 2018), written here: AlexNet or VGG16 features + the v0.1 linear layers.

Loads the published files: the backbone as torchvision saves it (``features.N.*``)
and the linear layers as the lpips package ships them (``linK.model.1.weight``,
[1, C, 1, 1]); a single state dict of the lpips module itself (``net.sliceK.N.*``
+ ``linK.*``) loads too. Inputs are images in [-1, 1], any size (2:1 included);
the result is [N, 1, 1, 1], as the package returns it.
"""

from typing import Dict, Mapping, Tuple

import torch
from torch import nn

from torch_utils.ops import derived

# The lpips package's input scaling (shift and scale per RGB channel, for [-1, 1] inputs).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

# Backbone layers as torchvision numbers them in ``features``: (index, conv args) and where the
# five LPIPS taps end (after the ReLU at that index).
_ALEX = {'convs': {0: (3, 64, 11, 4, 2), 3: (64, 192, 5, 1, 2), 6: (192, 384, 3, 1, 1), 8: (384, 256, 3, 1, 1),
                   10: (256, 256, 3, 1, 1)},
         'pools': (2, 5), 'taps': (1, 4, 7, 9, 11), 'channels': (64, 192, 384, 256, 256)}
_VGG = {'convs': {i: (cin, cout, 3, 1, 1) for i, (cin, cout) in {
            0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256),
            17: (256, 512), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}.items()},
        'pools': (4, 9, 16, 23), 'taps': (3, 8, 15, 22, 29), 'channels': (64, 128, 256, 512, 512)}
ARCHS = {'alex': _ALEX, 'vgg': _VGG}


class Backbone(nn.Module):
    """torchvision's ``features`` stack (same indices, so its state dict loads), returning the five taps."""

    def __init__(self, arch):
        super().__init__()
        spec = ARCHS[arch]
        self.taps = spec['taps']
        layers = []
        for index in range(max(spec['taps']) + 1):
            if index in spec['convs']:
                cin, cout, k, stride, pad = spec['convs'][index]
                layers.append(nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
            elif index in spec['pools']:
                layers.append(nn.MaxPool2d(kernel_size=3 if arch == 'alex' else 2, stride=2))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers).to(memory_format=torch.channels_last)

    def forward(self, x):
        x = x.contiguous(memory_format=torch.channels_last)   # the CPU convolutions' fastest layout
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outputs.append(x)
        return outputs


class LinearLayer(nn.Module):
    """A 1x1 convolution to one channel; ``model.1`` as in the lpips package (index 0 was its dropout)."""

    def __init__(self, channels):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    def __init__(self, net='alex'):
        super().__init__()
        if net not in ARCHS:
            raise ValueError(f'LPIPS net {net!r}: choose alex or vgg')
        self.net_name = net
        self.register_buffer('shift', torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer('scale', torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.net = Backbone(net)
        for k, channels in enumerate(ARCHS[net]['channels']):
            self.add_module(f'lin{k}', LinearLayer(channels))

    def forward(self, x, y):
        """LPIPS distance between images in [-1, 1]: [N, 1, 1, 1]."""
        total = 0
        for k, (fx, fy) in enumerate(zip(self._normalized_taps(x), self._normalized_taps(y))):
            total = total + getattr(self, f'lin{k}')((fx - fy).square()).mean(dim=(2, 3), keepdim=True)
        return total

    def _normalized_taps(self, image):
        """The backbone's five unit-normalised taps of ``image``. An image that needs no gradient
        (the target an optimisation compares against at every step) has them made once per
        version of it and of the weights."""
        def taps():
            return [unit_normalize(tap) for tap in self.net((image - self.shift) / self.scale)]
        if torch.is_grad_enabled() and (image.requires_grad or any(p.requires_grad for p in self.parameters())):
            return taps()
        weights = tuple((id(p), p._version) for p in self.parameters())
        with torch.no_grad():
            return derived.derived(image, ('lpips taps', id(self), weights), taps)

    def load_published(self, backbone, lin):
        """Copy torchvision backbone weights and lpips linear weights (state dicts) in, checking every shape."""
        own = self.state_dict()
        wanted = {}
        for key, value in backbone.items():
            if key.startswith('features.'):
                wanted['net.' + key] = value
        for key, value in lin.items():
            if key.startswith('lin'):
                wanted[key] = value
        for key, value in wanted.items():
            if key not in own:
                raise KeyError(f'unexpected weight {key}')
            if tuple(value.shape) != tuple(own[key].shape):
                raise KeyError(f'weight {key} has shape {list(value.shape)}, expected {list(own[key].shape)}')
        missing = [k for k in own if k not in wanted and k not in ('shift', 'scale')]
        if missing:
            raise KeyError(f'missing weight {missing[0]}')
        self.load_state_dict({**own, **wanted})
        return self


def lpips_module_to_published(state_dict: Mapping[str, torch.Tensor],
                              net: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """An lpips-module state dict (``net.sliceK.N.*``, ``linK.*``) -> (backbone, lin) in the published layouts."""
    backbone, lin = {}, {}
    for key, value in state_dict.items():
        parts = key.split('.')
        if parts[0] == 'net' and parts[1].startswith('slice'):
            backbone[f'features.{parts[2]}.{parts[3]}'] = value
        elif parts[0].startswith('lin') and parts[0] != 'lins':   # 'lins.K' repeats 'linK' in saved modules
            lin[key] = value
    return backbone, lin


def unit_normalize(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale each pixel's feature vector to unit length (as lpips does)."""
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + eps)

