"""The OpenPose body network (COCO-18, CMU "pose_iter_440000"), as a PyTorch module.

A VGG-19 front end (first ten convolutions, then two "CPM" convolutions down to 128
channels, overall stride 8) feeds six refinement stages. Each stage has two branches:
L1 predicts the 38 part-affinity-field channels (19 limbs, x and y), L2 the 19
heatmaps (18 parts + background). Stages 2-6 see the previous stage's two outputs
concatenated with the front-end features (38 + 19 + 128 = 185 channels).

Layer names are the Caffe layer names of the published model. The module groups them
in ``nn.Sequential`` blocks named like pytorch-openpose's ``bodypose_model``
(``model0``, ``model{stage}_1`` for PAFs, ``model{stage}_2`` for heatmaps), so a state
dict saved from that class loads unchanged. The published ``body_pose_model.pth``
stores the same tensors without the block prefix (``conv1_1.weight``,
``Mconv7_stage6_L2.bias``); :func:`load_body_weights` accepts both layouts.
"""

import os
from collections import OrderedDict

import torch
from torch import nn

from dnnlib.errors import FileFormatError

NUM_PAF = 38       # 19 limbs x (x, y)
NUM_HEATMAP = 19   # 18 parts + background
NUM_STAGES = 6

# Front end: (name, in, out, kernel) for convolutions, (name,) for 2x2 max pools.
_FRONT = (
    ('conv1_1', 3, 64, 3), ('conv1_2', 64, 64, 3), ('pool1_stage1',),
    ('conv2_1', 64, 128, 3), ('conv2_2', 128, 128, 3), ('pool2_stage1',),
    ('conv3_1', 128, 256, 3), ('conv3_2', 256, 256, 3), ('conv3_3', 256, 256, 3), ('conv3_4', 256, 256, 3),
    ('pool3_stage1',),
    ('conv4_1', 256, 512, 3), ('conv4_2', 512, 512, 3), ('conv4_3_CPM', 512, 256, 3), ('conv4_4_CPM', 256, 128, 3),
)
_FEATURES = 128


def _stage_layers(stage, branch, out_channels):
    """(name, in, out, kernel) of one branch; branch 1 = PAFs (L1), 2 = heatmaps (L2)."""
    if stage == 1:
        names = [f'conv5_{i}_CPM_L{branch}' for i in range(1, 6)]
        shapes = [(_FEATURES, 128, 3), (128, 128, 3), (128, 128, 3), (128, 512, 1), (512, out_channels, 1)]
    else:
        names = [f'Mconv{i}_stage{stage}_L{branch}' for i in range(1, 8)]
        first_in = NUM_PAF + NUM_HEATMAP + _FEATURES
        shapes = [(first_in, 128, 7)] + [(128, 128, 7)] * 4 + [(128, 128, 1), (128, out_channels, 1)]
    return [(name, *shape) for name, shape in zip(names, shapes)]


def _sequential(layers, no_relu_after):
    """Convolutions ('same' padding) with a ReLU after each, except those in no_relu_after."""
    items = []
    for spec in layers:
        name = spec[0]
        if len(spec) == 1:
            items.append((name, nn.MaxPool2d(kernel_size=2, stride=2)))
            continue
        _, cin, cout, k = spec
        items.append((name, nn.Conv2d(cin, cout, kernel_size=k, stride=1, padding=k // 2)))
        if name not in no_relu_after:
            items.append((f'relu_{name}', nn.ReLU(inplace=True)))
    return nn.Sequential(OrderedDict(items))


class BodyPoseNet(nn.Module):
    """OpenPose body network: ``forward(x) -> (paf [N,38,H/8,W/8], heatmap [N,19,H/8,W/8])``.

    ``x`` is BGR (the Caffe model was trained on OpenCV images), scaled as
    ``pixel / 256 - 0.5``. Height and width should be multiples of 8.

    ``heatmap_relu``: pytorch-openpose (and so upstream StyleGAN-Human) puts a ReLU
    after the last heatmap convolution, because its list of ReLU-free layers names the
    stage-6 PAF layer twice and misses the heatmap one. It only clips negative values,
    but those reach the Gaussian smoothing before peak search, so it is kept by
    default to give upstream's keypoints; ``False`` gives the original Caffe network.
    """

    def __init__(self, heatmap_relu=True):
        super().__init__()
        last = {f'conv5_5_CPM_L{b}' for b in (1, 2)}
        last |= {f'Mconv7_stage{s}_L{b}' for s in range(2, NUM_STAGES + 1) for b in (1, 2)}
        if heatmap_relu:
            last.discard(f'Mconv7_stage{NUM_STAGES}_L2')
        self.heatmap_relu = heatmap_relu
        self.model0 = _sequential(_FRONT, last)
        for stage in range(1, NUM_STAGES + 1):
            setattr(self, f'model{stage}_1', _sequential(_stage_layers(stage, 1, NUM_PAF), last))
            setattr(self, f'model{stage}_2', _sequential(_stage_layers(stage, 2, NUM_HEATMAP), last))

    def forward(self, x):
        features = self.model0(x)
        stage_input = features
        for stage in range(1, NUM_STAGES + 1):
            paf = getattr(self, f'model{stage}_1')(stage_input)
            heatmap = getattr(self, f'model{stage}_2')(stage_input)
            stage_input = torch.cat([paf, heatmap, features], dim=1)
        return paf, heatmap

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """nn.Module.load_state_dict that also takes the published key layout (no block prefix)."""
        published_to_module = {module_to_published_key(k): k for k in super().state_dict(keep_vars=True)}
        state_dict = OrderedDict((published_to_module.get(k, k), v) for k, v in state_dict.items())
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


# ----------------------------------------------------------------------------
# Key layouts


def module_to_published_key(key):
    """'model3_2.Mconv1_stage3_L2.weight' -> 'Mconv1_stage3_L2.weight' (drop the block name)."""
    return key.split('.', 1)[1]


def published_state_dict(state_dict):
    """A module state dict re-keyed as the published body_pose_model.pth stores it."""
    return OrderedDict((module_to_published_key(k), v) for k, v in state_dict.items())


class OpenPoseWeightsError(FileFormatError):
    """Missing or unusable OpenPose body weights; the message is one line naming the file."""


def to_module_layout(state_dict, reference=None):
    """Re-key ``state_dict`` (published or module layout) to BodyPoseNet's keys.

    Every tensor the network needs must be present with its exact shape; keys the
    network does not use are ignored, as pytorch-openpose does. ``reference`` is a
    BodyPoseNet state dict (a meta-device one is fine) giving the expected keys/shapes.
    Raises :class:`OpenPoseWeightsError` naming what is missing or mismatched.
    """
    if not isinstance(state_dict, dict):
        raise OpenPoseWeightsError(f'expected a dict of tensors, got {type(state_dict).__name__}')
    if reference is None:
        with torch.device('meta'):
            reference = BodyPoseNet().state_dict()
    out = OrderedDict()
    missing = []
    for key, ref in reference.items():
        value = state_dict.get(key, state_dict.get(module_to_published_key(key)))
        if value is None:
            missing.append(module_to_published_key(key))
            continue
        if not isinstance(value, torch.Tensor):
            raise OpenPoseWeightsError(f'{module_to_published_key(key)} is a {type(value).__name__}, not a tensor')
        if tuple(value.shape) != tuple(ref.shape):
            raise OpenPoseWeightsError(f'{module_to_published_key(key)} has shape {list(value.shape)}, '
                                       f'the body network needs {list(ref.shape)}')
        out[key] = value
    if missing:
        shown = ', '.join(missing[:3]) + (f' and {len(missing) - 3} more' if len(missing) > 3 else '')
        raise OpenPoseWeightsError(f'not the OpenPose body model: missing {shown}')
    return out


# Where users get the weights (pytorch-openpose's README) and where upstream expects them.
DEFAULT_WEIGHTS = os.path.join('openpose', 'model', 'body_pose_model.pth')
WEIGHTS_URL = 'https://drive.google.com/drive/folders/1JsvI4M4ZTg98fmnCZLFM-3TeovnCRElG'
WEIGHTS_URL_MIRROR = 'https://www.dropbox.com/sh/7xbup2qsn7vvjxo/AABWFksdlgOMXR_r5v3RwKRYa'
_GET_WEIGHTS = (f'download body_pose_model.pth from {WEIGHTS_URL} (or {WEIGHTS_URL_MIRROR}) '
                f'and put it at {DEFAULT_WEIGHTS} or pass --openpose-weights PATH')


def read_state_dict(path):
    """The tensors in a weights file, read safely (``weights_only=True``), on the CPU.

    Raises :class:`OpenPoseWeightsError` (one line naming ``path``) when the file is
    missing or is not a PyTorch weights file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OpenPoseWeightsError(f'OpenPose body weights not found at {path}: {_GET_WEIGHTS}')
    try:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch.load fails in many ways (pickle, zip, EOF, unsafe globals).
        raise OpenPoseWeightsError(f'{path}: not a readable PyTorch weights file ({type(err).__name__}); '
                                   f'{_GET_WEIGHTS}') from None
    if not isinstance(state_dict, dict):
        raise OpenPoseWeightsError(f'{path}: holds a {type(state_dict).__name__}, not a state dict; {_GET_WEIGHTS}')
    return state_dict


def load_body_weights(path_or_state_dict, device='cpu', heatmap_relu=True):
    """A BodyPoseNet in eval mode holding the given weights.

    ``path_or_state_dict``: a path to ``body_pose_model.pth`` (or to a state dict
    saved from BodyPoseNet / pytorch-openpose's ``bodypose_model``), or such a dict.
    Errors are :class:`OpenPoseWeightsError`, one line naming the file.
    """
    if isinstance(path_or_state_dict, dict):
        where, state_dict = 'state dict', path_or_state_dict
    else:
        where, state_dict = os.fspath(path_or_state_dict), read_state_dict(path_or_state_dict)
    # Build on the meta device and take the loaded tensors as they are: no random
    # init of 52M parameters that would be overwritten at once.
    with torch.device('meta'):
        net = BodyPoseNet(heatmap_relu=heatmap_relu)
    try:
        tensors = to_module_layout(state_dict, net.state_dict())
    except OpenPoseWeightsError as err:
        raise OpenPoseWeightsError(f'{where}: {err}; {_GET_WEIGHTS}') from None
    net.load_state_dict(tensors, assign=True)
    return net.to(device=device, dtype=torch.float32).eval()
