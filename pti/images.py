"""Targets for inversion and the numbers reported about them.

Targets are aligned photos (alignment.py's output). Any mode Pillow reads works
(greyscale, RGBA onto white, 16-bit...). A photo of the network's 1:2 shape
but another size is resized, with a note; a photo of another shape is refused,
because stretching a person would be inverted faithfully and look wrong.
"""

import os
from typing import Optional, Tuple, Union

import numpy as np
import PIL.Image
import torch

from stylegan_human.photos import PhotoError, load_photo

ASPECT_TOLERANCE = 0.02


def network_size(G: torch.nn.Module) -> Tuple[int, int]:
    """(width, height) of the generator's images."""
    h = G.img_resolution
    square = getattr(G.synthesis, 'square', getattr(G, 'square', True))
    return (h if square else h // 2), h


def load_target(path: Union[str, os.PathLike], size: Tuple[int, int]) -> Tuple[torch.Tensor, Optional[str]]:
    """Photo -> ([1, 3, H, W] float32 in [-1, 1], note or None). ``size`` = (width, height)."""
    rgb = load_photo(path, max_side=None)
    h, w = rgb.shape[:2]
    want_w, want_h = size
    if abs((w / h) / (want_w / want_h) - 1) > ASPECT_TOLERANCE:
        raise PhotoError(f'is {w}x{h}, but the network makes {want_w}x{want_h} images: '
                         'align the photo first (python alignment.py) or crop it to that shape')
    note = None
    if (w, h) != (want_w, want_h):
        rgb = np.asarray(PIL.Image.fromarray(rgb).resize((want_w, want_h), PIL.Image.LANCZOS))
        note = f'resized from {w}x{h} to {want_w}x{want_h}'
    return uint8_to_tensor(rgb), note


def uint8_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> [1, 3, H, W] in [-1, 1] (x / 127.5 - 1, as upstream's ToTensor + Normalize(0.5, 0.5))."""
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 127.5 - 1


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] generator output -> HxWx3 uint8 with the project's rounding (x * 127.5 + 128)."""
    return (images[0].detach() * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 images."""
    mse = np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))
