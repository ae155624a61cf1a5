"""Launch helpers shared by the kernels."""

import contextlib

import torch


def device_guard(device):
    """Kernels launch on the current CUDA device: make it the tensors' one."""
    if device.type == 'cuda':
        return torch.cuda.device(device)
    return contextlib.nullcontext()
