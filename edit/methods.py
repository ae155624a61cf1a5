"""The three editing methods, applied to a w+ code, at any fraction of their strength.

- interfacegan: upstream's InterfaceGAN directions moved into S space (one vector
  per S layer), added with the attribute's strength;
- stylespace: one S layer's vector, only on the channels whose StyleSpace
  statistic exceeds the threshold;
- sefa: one w direction added to the chosen w+ layers (twice the strength, as upstream).
"""

import os

import numpy as np
import torch

from . import directions
from .edit_config import attr_dict as upstream_config
from .stylespace import synthesize_with_styles

METHODS = ('interfacegan', 'stylespace', 'sefa')
_CONFIG_KEY = {'interfacegan': 'interface_gan', 'stylespace': 'stylespace', 'sefa': 'sefa'}
_KW = dict(noise_mode='const', force_fp32=True)


class Editor:
    def __init__(self, G, attr, root, methods=METHODS, strength=None, layers=None, config=None):
        attr_dict = config or upstream_config
        missing = [m for m in methods if attr not in attr_dict[_CONFIG_KEY[m]]]
        if missing:
            raise directions.DirectionFileError(f'no {missing[0]} defaults for {attr!r}; choose --method among '
                                                f'the ones it has')
        self.G = G
        self.methods = tuple(methods)
        device = next(G.parameters()).device
        self.changes = {}
        if 'interfacegan' in self.methods:
            vectors = directions.read_stylespace_vectors(os.path.join(root, 'ss', attr))
            s = attr_dict['interface_gan'][attr][0] if strength is None else strength
            self.changes['interfacegan'] = {k: v.to(device) * s
                                            for k, v in directions.stylespace_edit(G, vectors).items()}
        if 'stylespace' in self.methods:
            layer, s, threshold = attr_dict['stylespace'][attr]
            if layers is not None and self.methods == ('stylespace',):
                layer = layers[0]
            s = s if strength is None else strength
            vectors = directions.read_stylespace_vectors(os.path.join(root, 'ss', attr))
            channels, values = directions.read_stylespace_statistics(
                os.path.join(root, 'ss_statics', f'{attr}_statis', str(layer), 'statis.csv'))
            vector = vectors.get(layer)
            if vector is None:
                raise directions.DirectionFileError(f'no style_vect_mean_{layer}.pkl for --layers {layer}')
            mask = np.zeros_like(vector)
            keep = channels[np.abs(values) > threshold]
            mask[keep[keep < len(mask)]] = 1
            self.changes['stylespace'] = {k: v.to(device) * s for k, v in
                                          directions.stylespace_edit(G, {layer: vector * mask}).items()}
        if 'sefa' in self.methods:
            w_layers, s = attr_dict['sefa'][attr]
            w_layers = w_layers if layers is None else layers
            bad = [i for i in w_layers if not 0 <= i < G.num_ws]
            if bad:
                raise directions.DirectionFileError(f'--layers {bad[0]}: this network has w layers 0-{G.num_ws - 1}')
            vector = directions.check_w_direction(G, directions.read_sefa_vector(os.path.join(root, 'sefa',
                                                                                           f'{attr}.pt')))
            self.sefa = (list(w_layers), vector.to(device) * 2 * (s if strength is None else strength))

    def image(self, ws, method, fraction=1.0):
        """The image of ``ws`` edited by ``method`` at ``fraction`` of its strength ([N, 3, H, W])."""
        with torch.no_grad():
            if method == 'sefa':
                layers, shift = self.sefa
                edited = ws.clone()
                edited[:, layers] += shift * fraction
                return self.G.synthesis(edited, **_KW)
            changes = {k: v * fraction for k, v in self.changes[method].items()}
            return synthesize_with_styles(self.G, ws, changes, **_KW)
