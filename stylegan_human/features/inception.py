"""Inception-v3 of TensorFlow's 2015-12-05 graph, the feature network of FID, KID and IS.

NVIDIA publishes this network twice: ``inception-2015-12-05.pt`` (StyleGAN2-ADA,
a TorchScript archive) and ``inception-2015-12-05.pkl`` (StyleGAN3, a pickle).
Neither is executed here: :class:`InceptionV3` is this project's own module and
:func:`inception_from_tensors` copies the file's tensors into it by name (the
files are read by ``metrics.detector_files``).

Layout of the published tensors (what this module's parameter names follow):

* every convolution is a ``Conv2dLayer`` holding ``weight`` [out, in, kh, kw]
  and the batch-norm tensors ``beta``, ``mean``, ``var`` [out]; it computes
  ``relu(batch_norm(conv(x), mean, var, scale=1, beta, eps=1e-3))`` (no bias, no
  gamma, as in the TF graph);
* ``layers`` is a sequence named as the TF graph: ``conv``, ``conv_1``,
  ``conv_2``, ``pool0``, ``conv_3``, ``conv_4``, ``pool1``, ``mixed`` ...
  ``mixed_10``, ``pool2``;
* ``mixed``..``mixed_2`` (35x35) and ``mixed_4``..``mixed_7`` (17x17) hold
  ``conv``, ``tower.conv*``, ``tower_1.conv*``, ``tower_2.conv``; ``mixed_3``
  and ``mixed_8`` (grid reductions) hold ``conv`` (mixed_3 only), ``tower.*``,
  ``tower_1.*``; ``mixed_9`` and ``mixed_10`` (8x8) hold flat names:
  ``conv``, ``tower_conv``, ``tower_mixed_conv``, ``tower_mixed_conv_1``,
  ``tower_1_conv``, ``tower_1_conv_1``, ``tower_1_mixed_conv``,
  ``tower_1_mixed_conv_1``, ``tower_2_conv``;
* ``output.weight`` [1008, 2048] and ``output.bias`` [1008]: the softmax layer.

``forward(img, return_features=False, use_fp16=False, no_output_bias=False)``
follows the file: ``img`` is [N, 3, H, W] in 0..255 (uint8 or float); it is
resized to 299x299 with TensorFlow 1's bilinear resize (source coordinate =
destination x scale, border clamp), mapped to [-1, 1) by (x - 128) / 128, and
``return_features=True`` gives the 2048-d pool features, otherwise the softmax
over the 1008 logits (``no_output_bias`` leaves the bias out, for IS).

Facts taken from public ports of the published file (NVIDIA's file itself was
not available here): the tensor names and shapes above, eps = 1e-3, the
unit batch-norm scale, the resize and the (x - 128) / 128 scaling, average pools
that exclude padding, and the max pool in ``mixed_10``'s third tower. These are
assumptions until a run against the real file confirms them.
"""

from typing import Dict, Mapping, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from stylegan_human.features.resize import tf_bilinear_resize

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
BN_EPS = 1e-3


class Conv2dLayer(nn.Module):
    """Convolution, batch norm with unit scale, ReLU: one node of the TF graph."""

    def __init__(self, in_channels, out_channels, kernel, stride=1, padding=0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride = stride
        self.padding = padding
        self.weight = nn.Parameter(torch.zeros([out_channels, in_channels, kh, kw]))
        self.beta = nn.Parameter(torch.zeros([out_channels]))
        self.mean = nn.Parameter(torch.zeros([out_channels]))
        self.var = nn.Parameter(torch.ones([out_channels]))

    def forward(self, x):
        x = F.conv2d(x, self.weight.to(x.dtype), stride=self.stride, padding=self.padding)
        x = F.batch_norm(x, self.mean.to(x.dtype), self.var.to(x.dtype), weight=None, bias=self.beta.to(x.dtype),
                         training=False, eps=BN_EPS)
        return F.relu(x)


def _same_avg_pool():
    # TF's 3x3 'SAME' average pool divides by the number of real pixels under the window.
    return nn.AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _sequence(**layers):
    seq = nn.Sequential()
    for name, layer in layers.items():
        seq.add_module(name, layer)
    return seq


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1."""

    def __init__(self, in_channels, pool_channels):
        super().__init__()
        self.conv = Conv2dLayer(in_channels, 64, 1)
        self.tower = _sequence(conv=Conv2dLayer(in_channels, 48, 1), conv_1=Conv2dLayer(48, 64, 5, padding=2))
        self.tower_1 = _sequence(conv=Conv2dLayer(in_channels, 64, 1), conv_1=Conv2dLayer(64, 96, 3, padding=1),
                                 conv_2=Conv2dLayer(96, 96, 3, padding=1))
        self.tower_2 = _sequence(pool=_same_avg_pool(), conv=Conv2dLayer(in_channels, pool_channels, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], dim=1)


class InceptionB(nn.Module):
    """35x35 -> 17x17 reduction."""

    def __init__(self, in_channels):
        super().__init__()
        self.conv = Conv2dLayer(in_channels, 384, 3, stride=2)
        self.tower = _sequence(conv=Conv2dLayer(in_channels, 64, 1), conv_1=Conv2dLayer(64, 96, 3, padding=1),
                               conv_2=Conv2dLayer(96, 96, 3, stride=2))
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], dim=1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions."""

    def __init__(self, in_channels, mid):
        super().__init__()
        self.conv = Conv2dLayer(in_channels, 192, 1)
        self.tower = _sequence(conv=Conv2dLayer(in_channels, mid, 1),
                               conv_1=Conv2dLayer(mid, mid, (1, 7), padding=(0, 3)),
                               conv_2=Conv2dLayer(mid, 192, (7, 1), padding=(3, 0)))
        self.tower_1 = _sequence(conv=Conv2dLayer(in_channels, mid, 1),
                                 conv_1=Conv2dLayer(mid, mid, (7, 1), padding=(3, 0)),
                                 conv_2=Conv2dLayer(mid, mid, (1, 7), padding=(0, 3)),
                                 conv_3=Conv2dLayer(mid, mid, (7, 1), padding=(3, 0)),
                                 conv_4=Conv2dLayer(mid, 192, (1, 7), padding=(0, 3)))
        self.tower_2 = _sequence(pool=_same_avg_pool(), conv=Conv2dLayer(in_channels, 192, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], dim=1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 reduction."""

    def __init__(self, in_channels):
        super().__init__()
        self.tower = _sequence(conv=Conv2dLayer(in_channels, 192, 1), conv_1=Conv2dLayer(192, 320, 3, stride=2))
        self.tower_1 = _sequence(conv=Conv2dLayer(in_channels, 192, 1),
                                 conv_1=Conv2dLayer(192, 192, (1, 7), padding=(0, 3)),
                                 conv_2=Conv2dLayer(192, 192, (7, 1), padding=(3, 0)),
                                 conv_3=Conv2dLayer(192, 192, 3, stride=2))
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], dim=1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches; the file names its convolutions flat."""

    def __init__(self, in_channels, max_pool):
        super().__init__()
        self.conv = Conv2dLayer(in_channels, 320, 1)
        self.tower_conv = Conv2dLayer(in_channels, 384, 1)
        self.tower_mixed_conv = Conv2dLayer(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = Conv2dLayer(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = Conv2dLayer(in_channels, 448, 1)
        self.tower_1_conv_1 = Conv2dLayer(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = Conv2dLayer(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = Conv2dLayer(384, 384, (3, 1), padding=(1, 0))
        # The TF graph's last block pools with max, the one before with average.
        self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if max_pool else _same_avg_pool()
        self.tower_2_conv = Conv2dLayer(in_channels, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], dim=1)


class InceptionV3(nn.Module):
    """The 2015-12-05 graph up to the 1008-way softmax; weights zero until loaded."""

    def __init__(self):
        super().__init__()
        self.layers = _sequence(
            conv=Conv2dLayer(3, 32, 3, stride=2),
            conv_1=Conv2dLayer(32, 32, 3),
            conv_2=Conv2dLayer(32, 64, 3, padding=1),
            pool0=nn.MaxPool2d(kernel_size=3, stride=2),
            conv_3=Conv2dLayer(64, 80, 1),
            conv_4=Conv2dLayer(80, 192, 3),
            pool1=nn.MaxPool2d(kernel_size=3, stride=2),
            mixed=InceptionA(192, 32),
            mixed_1=InceptionA(256, 64),
            mixed_2=InceptionA(288, 64),
            mixed_3=InceptionB(288),
            mixed_4=InceptionC(768, 128),
            mixed_5=InceptionC(768, 160),
            mixed_6=InceptionC(768, 160),
            mixed_7=InceptionC(768, 192),
            mixed_8=InceptionD(768),
            mixed_9=InceptionE(1280, max_pool=False),
            mixed_10=InceptionE(2048, max_pool=True),
            pool2=nn.AvgPool2d(kernel_size=8),
        )
        self.output = nn.Linear(FEATURE_DIM, NUM_LOGITS)

    def forward(self, img, return_features=False, use_fp16=False, no_output_bias=False):
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f'InceptionV3 takes [N, 3, H, W] images, got {list(img.shape)}')
        x = img.to(torch.float16 if use_fp16 else torch.float32)
        x = tf_bilinear_resize(x, INPUT_SIZE, INPUT_SIZE)
        x = (x - 128) / 128
        features = self.layers(x).reshape(-1, FEATURE_DIM).to(torch.float32)
        if return_features:
            return features
        return self.class_probabilities(features, no_output_bias=no_output_bias)

    def class_probabilities(self, features, no_output_bias=False):
        """Softmax over the 1008 logits of [N, 2048] pool features."""
        bias = None if no_output_bias else self.output.bias
        return F.softmax(F.linear(features, self.output.weight, bias), dim=1)


def published_shapes() -> Dict[str, Tuple[int, ...]]:
    """Tensor name -> shape of the published file (the same as this module's state dict)."""
    return {name: tuple(t.shape) for name, t in InceptionV3().state_dict().items()}


def inception_from_tensors(tensors: Mapping[str, torch.Tensor], where: str = 'the file') -> InceptionV3:
    """InceptionV3 with the tensors of a published-layout dict copied in; eval mode, no grads.

    Raises ValueError (one line, naming ``where``) for a missing tensor or a shape mismatch.
    """
    model = InceptionV3()
    own = model.state_dict()
    for name, target in own.items():
        value = tensors.get(name)
        if value is None:
            raise ValueError(f'{where} has no tensor {name}: not the Inception-v3 file (inception-2015-12-05)')
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f'{where}: {name} has shape {list(value.shape)}, expected {list(target.shape)}')
        own[name] = value.detach().to(torch.float32)
    model.load_state_dict(own)
    return model.eval().requires_grad_(False)
