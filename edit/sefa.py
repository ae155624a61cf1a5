"""SeFa (Shen & Zhou 2021): closed-form directions from the generator's own weights.

The style of a layer is ``A w + b``; directions in W that change the styles of
the chosen layers most are the top eigenvectors of ``A^T A``, with A the chosen
layers' affine weights stacked (each output channel's weight row scaled to unit
length, as the SeFa authors do).
"""

from typing import Sequence, Tuple

import numpy as np
import torch

from .stylespace import style_layers


def affine_matrix(G: torch.nn.Module, layer_indices: Sequence[int]) -> np.ndarray:
    """The stacked affine weights [sum of channels, w_dim] of the chosen style layers (by S-space index)."""
    layers = style_layers(G)
    if not layer_indices:
        raise ValueError('choose at least one layer')
    bad = [i for i in layer_indices if not 0 <= i < len(layers)]
    if bad:
        raise ValueError(f'layer {bad[0]} out of range: this network has style layers 0-{len(layers) - 1}')
    rows = []
    for i in layer_indices:
        affine = layers[i][1]
        rows.append(affine.weight.detach().double().cpu().numpy() * float(affine.weight_gain))
    return np.concatenate(rows, axis=0)


def sefa_directions(G: torch.nn.Module, layer_indices: Sequence[int],
                    top_k: int = 5) -> Tuple[np.ndarray, np.ndarray]:
    """(directions [top_k, w_dim] unit length, eigenvalues [top_k]), strongest first."""
    weight = affine_matrix(G, layer_indices)
    weight = weight / np.linalg.norm(weight, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(weight.T @ weight)
    order = np.argsort(values)[::-1][:top_k]
    return vectors[:, order].T.astype(np.float32), values[order]
