"""PyTorch's fused Adam for parameters in any dense memory layout.

The CPU's fused Adam copies every parameter that is not contiguous (channels-last
convolution weights, for instance) to a contiguous tensor and back, at every step;
that costs more than the update itself. Adam works element by element, so it may
as well run over each parameter's memory in storage order: a parameter, its
gradient and Adam's two moments all share one layout (autograd and
``zeros_like`` keep it), and a flat view of each is the same elements in the same
order. This optimiser steps ``torch.optim.Adam(fused=True)`` over such flat views.
"""

from typing import Iterable

import torch

from .layout import is_dense, same_layout, storage_order_view


class StorageOrderAdam:
    """``torch.optim.Adam(params, fused=True, **options)`` without per-step layout copies.

    Parameters must be dense (any ``memory_format`` is); a gradient in another layout
    than its parameter is laid out like it first. ``zero_grad`` and ``step`` as usual.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], **options):
        self.params = [p for p in params if p.requires_grad]
        for p in self.params:
            if not is_dense(p):
                raise ValueError(f'StorageOrderAdam needs dense parameters; got strides {p.stride()}')
        self.flat = [storage_order_view(p) for p in self.params]
        self.adam = torch.optim.Adam(self.flat, fused=True, **options)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self) -> None:
        for p, flat in zip(self.params, self.flat):
            grad = p.grad
            if grad is not None and not same_layout(grad, p):
                grad = torch.empty_like(p).copy_(grad)    # empty_like keeps p's dense layout
            flat.grad = None if grad is None else storage_order_view(grad)
        self.adam.step()
