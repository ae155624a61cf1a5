"""Read the photos phones and the web produce as plain 8-bit RGB arrays.

Handles EXIF orientation, transparency (flattened onto white), palette,
greyscale, 16-bit and float images, CMYK JPEGs and very large images: a JPEG
larger than ``max_side`` is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (so a
30000x30000 one costs little memory), then downscaled; other formats are decoded
whole, and refused over :data:`MAX_PIXELS`. Anything that is not a readable
image raises :class:`PhotoError` with one line.
"""

import contextlib
import math
import os
import threading
import warnings
from typing import Iterator, List, Optional, Union

import numpy as np
import PIL.Image
import PIL.ImageOps
import PIL.JpegImagePlugin

from dnnlib.errors import FileFormatError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff', '.gif', '.jfif')

# Longest side the aligner works at. A 4000x3000 (12 MP) phone photo stays whole;
# larger ones are reduced first: the 1024-pixel-high output never needs more.
DEFAULT_MAX_SIDE = 4096

# The most pixels decoded at once (about 750 MB as RGB): a 108 MP phone photo is fine, a
# crafted "decompression bomb" is not. JPEGs are counted at the reduced size they are
# decoded at; no JPEG (at most 65535 pixels a side) exceeds this at 1/8 scale.
MAX_PIXELS = 250_000_000

# What Pillow's own bomb check (PIL.Image.MAX_IMAGE_PIXELS, a global) is raised to while a
# photo is opened: the largest JPEG there can be, which is only then reduced. MAX_PIXELS
# above is the real check, made once the decoding size is known.
_PILLOW_LIMIT_WHILE_OPENING = 65535 * 65535


class PhotoError(FileFormatError):
    """The file is not a usable image (one line, names nothing but the problem)."""


def list_photos(folder: Union[str, os.PathLike], recursive: bool = False) -> List[str]:
    """Image files under ``folder`` (sorted; subfolders too when ``recursive``)."""
    found = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
            found += [os.path.join(root, f) for f in files if _is_photo_name(f)]
    else:
        found = [os.path.join(folder, f) for f in os.listdir(folder)
                 if _is_photo_name(f) and os.path.isfile(os.path.join(folder, f))]
    return sorted(found)


def _is_photo_name(name):
    return not name.startswith('.') and name.lower().endswith(IMAGE_SUFFIXES)


def load_photo(path: Union[str, os.PathLike], max_side: Optional[int] = DEFAULT_MAX_SIDE) -> np.ndarray:
    """Return the photo at ``path`` as an HxWx3 uint8 RGB array, upright, longest side <= max_side."""
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise PhotoError('empty file (0 bytes)')
    try:
        with _pillow_limit_raised(), PIL.Image.open(path) as image:
            if image.width == 0 or image.height == 0:
                raise PhotoError('empty image (0x0 pixels)')
            reduced = bool(max_side) and _decode_reduced(image, max_side)
            _check_decoding_size(image, reduced)
            image.load()
            image = PIL.ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except PhotoError:
        raise
    except PIL.UnidentifiedImageError:
        raise PhotoError('not an image file (or an image format Pillow cannot read)') from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
        raise PhotoError(err.strerror or _short(err)) from None
    except PIL.Image.DecompressionBombError:   # Pillow's own check, for sizes past any JPEG's
        raise PhotoError(f'image is too large to decode (over {MAX_PIXELS // 1_000_000} megapixels)') from None
    except (OSError, SyntaxError, ValueError) as err:
        raise PhotoError(f'cannot decode the image ({_short(err)}); the file may be truncated or damaged') from None
    if max_side and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, PIL.Image.LANCZOS, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.uint8).copy()


def _decode_reduced(image, max_side):
    """Ask libjpeg for the smallest of 1/2, 1/4, 1/8 scale that keeps the long side >= max_side.

    Only JPEG (and MPO, phones' multi-picture JPEG) can be decoded reduced. Returns whether
    the size shrank; ``image.size`` is then the size the decoding makes."""
    if not isinstance(image, PIL.JpegImagePlugin.JpegImageFile) or max(image.size) <= max_side:
        return False
    before = image.size
    scale = max_side / max(before)
    # draft() picks the largest 1/n with both sides still at least this size.
    image.draft('RGB', (max(1, math.ceil(before[0] * scale)), max(1, math.ceil(before[1] * scale))))
    return image.size != before


def _check_decoding_size(image, reduced):
    width, height = image.size
    if width * height <= MAX_PIXELS:
        return
    limit = f'over {MAX_PIXELS // 1_000_000} megapixels'
    if isinstance(image, PIL.JpegImagePlugin.JpegImageFile):
        raise PhotoError(f'image too large: {width}x{height} pixels{" at 1/8 scale" if reduced else ""} is {limit}; '
                         f'scale it down first')
    raise PhotoError(f'image too large: {width}x{height} pixels is {limit}, and only JPEG photos are decoded at '
                     f'reduced size; save it as a JPEG or scale it down first')


_limit_lock = threading.Lock()
_limit_users = 0
_pillow_limit = PIL.Image.MAX_IMAGE_PIXELS


@contextlib.contextmanager
def _pillow_limit_raised() -> Iterator[None]:
    """Lift Pillow's bomb limit while photos are decoded (counted, so threads decoding at once
    put the caller's value back only when the last of them is done)."""
    global _limit_users, _pillow_limit
    with _limit_lock:
        if _limit_users == 0:
            _pillow_limit = PIL.Image.MAX_IMAGE_PIXELS
            PIL.Image.MAX_IMAGE_PIXELS = _PILLOW_LIMIT_WHILE_OPENING
        _limit_users += 1
    try:
        with warnings.catch_warnings():
            # Pillow warns past the largest JPEG; _check_decoding_size then refuses the image in one line.
            warnings.simplefilter('ignore', PIL.Image.DecompressionBombWarning)
            yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                PIL.Image.MAX_IMAGE_PIXELS = _pillow_limit


def _to_rgb(image):
    """Any Pillow mode -> RGB; transparent pixels become white."""
    mode = image.mode
    if mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith('I;16') or values.max() > 255 else 255.0
        values = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return PIL.Image.fromarray(values, 'L').convert('RGB')
    if mode == 'P' and 'transparency' in image.info:
        image = image.convert('RGBA')
    elif mode in ('LA', 'La', 'PA', 'RGBa'):
        image = image.convert('RGBA')
    if image.mode == 'RGBA':
        white = PIL.Image.new('RGBA', image.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(white, image).convert('RGB')
    return image.convert('RGB')  # L, 1, P, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, LAB, ...


def _short(err):
    return str(err).splitlines()[0] if str(err) else type(err).__name__
