"""Upstream's published direction files, read safely and mapped onto our networks' layers.

Formats (StyleGAN-Human's ``latent_direction/`` folder):

- ``ss/<attr>/style_vect_mean_<i>.pkl``: a pickled numpy vector per S-space layer i
  (InterfaceGAN directions moved into S space); upstream's S space is the
  modulation of its convolution layers only, in order, so index i is our i-th
  style layer that is not a toRGB layer.
- ``ss_statics/<attr>_statis/<layer>/statis.csv``: StyleSpace channels of one layer,
  columns ``,channel,strength``.
- ``sefa/<attr>.pt``: one w direction [w_dim] (a torch tensor).

Pickles are read with the project's restricted unpickler (numpy arrays only);
nothing in a file is executed.
"""

import csv
import glob
import os
import re
from typing import Dict, List, Mapping, Tuple, Union

import numpy as np
import torch

from dnnlib.errors import FileFormatError
from stylegan_human.network_files import read_pickle_safely

from .stylespace import style_layers


class DirectionFileError(FileFormatError):
    """A direction file is missing, unreadable, or made for another network (one line)."""


def conv_style_layers(G: torch.nn.Module) -> List[Tuple[str, torch.nn.Module]]:
    """Our style layers in upstream's S-space order: the synthesis convolutions, toRGB left out."""
    return [(name, module) for name, module in style_layers(G) if not name.endswith('torgb')]


def read_stylespace_vectors(folder: Union[str, os.PathLike]) -> Dict[int, np.ndarray]:
    """{S index: vector [C]} from ``style_vect_mean_<i>.pkl`` files."""
    vectors = {}
    for path in glob.glob(os.path.join(folder, 'style_vect_mean_*.pkl')):
        index = int(re.search(r'style_vect_mean_(\d+)\.pkl$', path).group(1))
        try:
            value = read_pickle_safely(path)
        except Exception as err:  # a refused global, a truncated file...: one line either way
            raise DirectionFileError(f'{path}: not a direction file ({type(err).__name__}: {err})') from None
        vectors[index] = np.asarray(value, dtype=np.float32).reshape(-1)
    if not vectors:
        raise DirectionFileError(f'{folder}: no style_vect_mean_<i>.pkl files')
    return dict(sorted(vectors.items()))


def read_stylespace_statistics(csv_path: Union[str, os.PathLike]) -> Tuple[np.ndarray, np.ndarray]:
    """(channels [K], strengths [K]) of one layer, sorted by channel as upstream does."""
    if not os.path.isfile(csv_path):
        raise DirectionFileError(f'{csv_path}: no such StyleSpace statistics file')
    try:
        with open(csv_path, newline='') as f:
            rows = [(int(r['channel']), float(r['strength'])) for r in csv.DictReader(f)]
    except (OSError, KeyError, ValueError) as err:
        raise DirectionFileError(f'{csv_path}: not a StyleSpace statistics file ({err})') from None
    rows.sort()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=np.float32)


def read_sefa_vector(path: Union[str, os.PathLike]) -> torch.Tensor:
    try:
        value = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickle, zip or tensor errors: the file is not a direction
        raise DirectionFileError(f'{path}: not a direction file ({type(err).__name__})') from None
    return torch.as_tensor(value, dtype=torch.float32).reshape(-1)


def stylespace_edit(G: torch.nn.Module, vectors: Mapping[int, np.ndarray]) -> Dict[str, torch.Tensor]:
    """Upstream S-space vectors -> {our layer name: shift [C]}, checking that every size fits."""
    layers = conv_style_layers(G)
    changes = {}
    for index, vector in vectors.items():
        if index >= len(layers):
            raise DirectionFileError(f'direction for S layer {index}, but this network has S layers '
                                     f'0-{len(layers) - 1}: it was made for another network')
        name, affine = layers[index]
        if vector.shape[0] != affine.weight.shape[0]:
            raise DirectionFileError(f'direction for S layer {index} has {vector.shape[0]} channels, this network\'s '
                                     f'{name} has {affine.weight.shape[0]}: it was made for another network')
        changes[name] = torch.from_numpy(vector)
    return changes


def check_w_direction(G: torch.nn.Module, vector: torch.Tensor) -> torch.Tensor:
    if vector.shape[0] != G.w_dim:
        raise DirectionFileError(f'a {vector.shape[0]}-d w direction, but this network has w_dim {G.w_dim}')
    return vector
