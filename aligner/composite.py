"""Put a person onto white using a mask, the way upstream's bg_white.py does.

Upstream softens the mask with a 3x3 box blur and mixes ``photo * a + white * (1 - a)``.
Masks come as greyscale (0-255, soft or hard), or as colour human-parsing maps
(black background, any colour = person).
"""

import os
from typing import Tuple, Union

import cv2
import numpy as np
import PIL.Image

from stylegan_human.photos import IMAGE_SUFFIXES, PhotoError

UPSTREAM_BLUR = 3


def on_white(rgb: np.ndarray, alpha: np.ndarray, blur: int = 1) -> np.ndarray:
    """``rgb`` HxWx3 uint8 and ``alpha`` HxW in [0, 1] -> HxWx3 uint8 with white where alpha is 0."""
    alpha = np.clip(np.asarray(alpha, dtype=np.float32), 0, 1)
    if blur > 1:
        alpha = cv2.blur(alpha, (blur, blur))
    mixed = rgb.astype(np.float32) * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def mask_to_alpha(mask: np.ndarray) -> np.ndarray:
    """A mask image array (HxW or HxWxC, 8 or 16 bit) -> HxW float32 alpha in [0, 1]."""
    mask = np.asarray(mask)
    top = 65535.0 if mask.dtype == np.uint16 else 255.0 if mask.dtype == np.uint8 else max(1.0, float(mask.max()))
    if mask.ndim == 3:
        channels = mask[..., :3].astype(np.float32)
        if np.ptp(channels, axis=-1).max() > 0:  # colour: a parsing map, every non-black label is the person
            return (channels.max(axis=-1) > 0).astype(np.float32)
        mask = channels[..., 0]
    return (mask.astype(np.float32) / top).clip(0, 1)


def find_mask_file(seg_dir: Union[str, os.PathLike], relative_name: str) -> str:
    """The mask for ``relative_name`` in ``seg_dir``: same name, else same stem with any image suffix."""
    same = os.path.join(seg_dir, relative_name)
    if os.path.isfile(same):
        return same
    stem = os.path.splitext(same)[0]
    for suffix in ('.png',) + IMAGE_SUFFIXES:
        for candidate in (stem + suffix, stem + suffix.upper()):
            if os.path.isfile(candidate):
                return candidate
    raise PhotoError(f'no mask for it in {seg_dir} (looked for {os.path.basename(stem)}.png and other image types)')


def load_mask(path: Union[str, os.PathLike], size: Tuple[int, int]) -> np.ndarray:
    """Read a mask file as alpha at ``size`` = (width, height) of its photo."""
    try:
        with PIL.Image.open(path) as image:
            image.load()
            mask = np.asarray(image.convert('RGB') if image.mode in ('P', 'CMYK', 'YCbCr') else image)
    except PIL.UnidentifiedImageError:
        raise PhotoError(f'mask {path} is not an image') from None
    except (OSError, SyntaxError, ValueError) as err:
        raise PhotoError(f'mask {path} cannot be read ({err})') from None
    alpha = mask_to_alpha(mask)
    h, w = alpha.shape
    if (w, h) != tuple(size):
        if abs(w / h - size[0] / size[1]) > 0.01 * size[0] / size[1]:
            raise PhotoError(f'mask {path} is {w}x{h} but the photo is {size[0]}x{size[1]} (different shape)')
        alpha = cv2.resize(alpha, tuple(size), interpolation=cv2.INTER_LINEAR)
    return alpha
