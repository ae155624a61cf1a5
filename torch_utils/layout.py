"""Tensors by their memory layout: dense in any order, the same layout, a flat view in memory order."""

import torch


def is_dense(tensor: torch.Tensor) -> bool:
    """True when the tensor's elements fill one block of memory, each once, in whatever order."""
    expected = 1
    for size, stride in sorted(zip(tensor.shape, tensor.stride()), key=lambda pair: pair[1]):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and the same strides where they matter (a dimension of size 1 has none that does)."""
    return a.shape == b.shape and all(size == 1 or sa == sb for size, sa, sb in zip(a.shape, a.stride(), b.stride()))


def storage_order_view(tensor: torch.Tensor) -> torch.Tensor:
    """The dense ``tensor``'s elements as a 1-D view, in the order they lie in memory (no copy,
    where ``reshape(-1)`` of a channels-last tensor would copy)."""
    assert is_dense(tensor)
    return tensor.detach().as_strided((tensor.numel(),), (1,), tensor.storage_offset())
