"""The S space: the per-layer style vectors (affine outputs) of a synthesis network.

Works on our StyleGAN2 and StyleGAN3 networks of any size: every synthesis
layer (and StyleGAN2's toRGB layers) turns its w into a style vector with its
``affine`` layer; those vectors, in forward order, are the S space. Editing
replaces or shifts them while the network runs (forward hooks), so decoding
with unchanged styles is exactly normal synthesis.
"""

import contextlib
from typing import Any, Callable, Dict, List, Mapping, Tuple, Union

import torch


def style_layers(G: torch.nn.Module) -> List[Tuple[str, torch.nn.Module]]:
    """[(name, affine module)] of the synthesis network in the order they run (StyleGAN3's input transform left out)."""
    synthesis = getattr(G, 'synthesis', G)
    layers = []
    for name, module in synthesis.named_modules():
        if name.endswith('.affine') and not name.startswith('input.'):
            layers.append((name[:-len('.affine')], module))
    order = {name: i for i, name in enumerate(getattr(synthesis, 'layer_names', []))}
    if order:   # StyleGAN3 keeps its layers in a list of names
        layers.sort(key=lambda item: order.get(item[0], -1))
    return layers


@contextlib.contextmanager
def _hooks(G, fn):
    handles = [module.register_forward_hook(lambda mod, args, out, name=name: fn(name, out))
               for name, module in style_layers(G)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def capture_styles(G: torch.nn.Module, ws: torch.Tensor,
                   **synthesis_kwargs: Any) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """Run the synthesis once and return ({layer name: styles [N, C]}, images)."""
    styles = {}

    def keep(name, out):
        styles[name] = out.detach().clone()
    with _hooks(G, keep):
        images = G.synthesis(ws, **synthesis_kwargs)
    return styles, images


def synthesize_with_styles(G: torch.nn.Module, ws: torch.Tensor,
                           changes: Mapping[str, Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]],
                           **synthesis_kwargs: Any) -> torch.Tensor:
    """Synthesis with some style vectors changed.

    changes: {layer name: callable(styles [N, C]) -> new styles, or a tensor added to them
    ([C] shifts every image alike, [N, C] each its own).
    """
    def change(name, out):
        if name not in changes:
            return None
        edit = changes[name]
        return edit(out) if callable(edit) else out + edit.to(out.dtype)
    with _hooks(G, change):
        return G.synthesis(ws, **synthesis_kwargs)


def channel_statistics(styles_positive: Mapping[str, torch.Tensor],
                       styles_negative: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """StyleSpace's attribute-specific channels: {layer: |mean difference| / std over all samples} per channel.

    styles_*: {layer name: [N, C]} from :func:`capture_styles` on samples with and without the attribute.
    """
    scores = {}
    for name in styles_positive:
        pos, neg = styles_positive[name].double(), styles_negative[name].double()
        spread = torch.cat([pos, neg]).std(dim=0) + 1e-8
        scores[name] = ((pos.mean(dim=0) - neg.mean(dim=0)).abs() / spread).float()
    return scores


def top_channels(scores: Mapping[str, torch.Tensor], count: int = 5) -> List[Tuple[str, int, float]]:
    """The ``count`` highest-scoring (layer, channel, score) over all layers, best first."""
    flat = [(name, int(c), float(v)) for name, values in scores.items() for c, v in enumerate(values)]
    return sorted(flat, key=lambda item: -item[2])[:count]
