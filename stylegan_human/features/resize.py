"""TensorFlow 1's bilinear resize, which NVIDIA's VGG16 and Inception feature networks expect."""

import torch
import torch.nn.functional as F


def tf_bilinear_resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize as TensorFlow 1's resize_bilinear (source = destination x scale, no half-pixel shift)."""
    n, _, h, w = x.shape
    ys = torch.arange(height, device=x.device, dtype=x.dtype) * (h / height)
    xs = torch.arange(width, device=x.device, dtype=x.dtype) * (w / width)
    grid_y = (2 * ys + 1) / h - 1            # pixel -> grid_sample coordinate (align_corners=False)
    grid_x = (2 * xs + 1) / w - 1
    grid = torch.stack(torch.meshgrid(grid_y, grid_x, indexing='ij')[::-1], dim=-1)
    return F.grid_sample(x, grid[None].expand(n, -1, -1, -1), mode='bilinear', padding_mode='border',
                         align_corners=False)
