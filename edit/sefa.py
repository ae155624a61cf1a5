"""SeFa (Shen & Zhou 2021): closed-form directions from the generator's own weights.

The style of a layer is ``A w + b``; directions in W that change the styles of
the chosen layers most are the top eigenvectors of ``A^T A``, with A the chosen
layers' affine weights stacked (each output channel's weight row scaled to unit
length, as the SeFa authors do).

Which layers: by the paper's definition (and in its authors' code and the common
StyleGAN2 port) the convolution layers' style weights only; the toRGB layers'
affines, which modulate the RGB output rather than features, are left out
(``sefa_layers(..., 'convs')``, the default). ``'all'`` takes them too.
"""

from typing import List, Sequence, Tuple

import numpy as np
import torch

from .stylespace import style_layers


LAYER_CHOICES = ('convs', 'all')


def is_torgb(G: torch.nn.Module, layer_name: str) -> bool:
    """Whether a style layer feeds a toRGB layer (StyleGAN2's bN.torgb; StyleGAN3's last layer)."""
    synthesis = getattr(G, 'synthesis', G)
    return layer_name.endswith('torgb') or bool(getattr(synthesis.get_submodule(layer_name), 'is_torgb', False))


def w_index(G: torch.nn.Module, layer_name: str) -> int:
    """Which w+ entry a style layer reads (StyleGAN2: counted through the blocks; StyleGAN3: its position)."""
    names = [n for n, _ in style_layers(G)]
    if hasattr(G.synthesis, 'layer_names'):   # StyleGAN3: w 0 drives the input, layer i reads w i+1
        return names.index(layer_name) + 1
    w_index, seen_block = 0, {}
    for block_name in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f'b{block_name}')
        seen_block[f'b{block_name}'] = w_index
        w_index += block.num_conv
    block, layer = layer_name.split('.')
    start = seen_block[block]
    return start + (int(layer[-1]) if layer.startswith('conv') and block != 'b4' else
                    getattr(G.synthesis, block).num_conv if layer == 'torgb' else 0)


def sefa_layers(G: torch.nn.Module, w_layers: Sequence[int], which: str = 'convs') -> List[int]:
    """S-space indices of the style layers that read the chosen w+ layers.

    which: 'convs' (the SeFa paper's definition: convolution layers only, toRGB left out) or
    'all' (toRGB layers too)."""
    if which not in LAYER_CHOICES:
        raise ValueError(f'{which!r}: choose one of {", ".join(LAYER_CHOICES)}')
    wanted = set(w_layers)
    return [i for i, (name, _) in enumerate(style_layers(G))
            if w_index(G, name) in wanted and (which == 'all' or not is_torgb(G, name))]


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
