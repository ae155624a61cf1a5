"""The StyleGAN-Human crop rule, as geometry on arrays.

Upstream's rule, kept: the person's vertical extent (from the mask) gets a margin
of 5% of the person's height above and below; the body centre is the mean of the
neck x (mid-shoulders) and the mid-hip x; the crop is made symmetric about that
centre using the side that reaches further; then it is padded to 1:2
(width:height) - sideways when the person is tall and narrow, up and down
otherwise - and resized to the output size.
"""

import dataclasses
from typing import Optional, Tuple

import cv2
import numpy as np

from .backends import L_HIP, NECK, R_HIP

DEFAULT_MARGIN = 0.05
MIN_KEYPOINT_CONFIDENCE = 0.1


@dataclasses.dataclass(frozen=True)
class CropBox:
    """A 1:2 window in source pixels: [x0, x0 + width) x [y0, y0 + height); may reach outside the photo."""
    x0: int
    y0: int
    width: int
    height: int

    def to_output(self, points, out_size):
        """Source pixel coordinates [..., 2] -> output pixel coordinates for an (out_w, out_h) image."""
        out_w, out_h = out_size
        points = np.asarray(points, dtype=np.float64).copy()
        points[..., 0] = (points[..., 0] - self.x0) * (out_w / self.width)
        points[..., 1] = (points[..., 1] - self.y0) * (out_h / self.height)
        return points


def body_center_x(keypoints: np.ndarray, person: np.ndarray) -> float:
    """Mean of the neck x and the mid-hip x; falls back on whichever exists, then the mask centre."""
    seen = keypoints[:, 2] >= MIN_KEYPOINT_CONFIDENCE
    parts = []
    if seen[NECK]:
        parts.append(keypoints[NECK, 0])
    if seen[R_HIP] and seen[L_HIP]:
        parts.append((keypoints[R_HIP, 0] + keypoints[L_HIP, 0]) / 2)
    elif seen[R_HIP] or seen[L_HIP]:
        parts.append(keypoints[R_HIP if seen[R_HIP] else L_HIP, 0])
    if parts:
        return float(np.mean(parts))
    cols = np.nonzero(person.any(axis=0))[0]
    return float(cols.min() + cols.max() + 1) / 2


def alignment_box(person: np.ndarray, keypoints: np.ndarray, margin: float = DEFAULT_MARGIN) -> CropBox:
    """The crop window for the person (HxW bool mask) with COCO-18 ``keypoints`` [18, 3]."""
    rows = np.nonzero(person.any(axis=1))[0]
    cols = np.nonzero(person.any(axis=0))[0]
    top, bottom = int(rows.min()), int(rows.max()) + 1       # bottom, right: exclusive
    left, right = int(cols.min()), int(cols.max()) + 1
    pad = int(round((bottom - top) * margin))
    y0, y1 = top - pad, bottom + pad
    if (y1 - y0) % 2:
        y1 += 1                                               # an even height keeps 1:2 exact
    center_x = body_center_x(keypoints, person)
    half_width = max(center_x - left, right - center_x)
    height = y1 - y0
    if height >= 4 * half_width:                              # tall: widen to height / 2
        width = height // 2
        return CropBox(int(round(center_x - width / 2)), y0, width, height)
    width = int(np.ceil(2 * half_width))                      # wide: heighten to 2 x width
    center_y = (y0 + y1) / 2
    return CropBox(int(round(center_x - width / 2)), int(round(center_y - width)), width, 2 * width)


def crop(image: np.ndarray, box: CropBox, fill: Optional[float] = None) -> np.ndarray:
    """Cut ``box`` out of an HxW or HxWxC array; outside the photo use ``fill`` (a value) or, if None, the edge."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box.x0, box.y0, box.x0 + box.width, box.y0 + box.height
    inside = image[max(y0, 0):max(min(y1, h), 0), max(x0, 0):max(min(x1, w), 0)]
    pads = [(max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w))] + [(0, 0)] * (image.ndim - 2)
    if inside.size == 0:  # the box misses the photo entirely: nothing to replicate
        return np.full((box.height, box.width) + image.shape[2:], 0 if fill is None else fill, image.dtype)
    if fill is None:
        return np.pad(inside, pads, mode='edge')
    return np.pad(inside, pads, mode='constant', constant_values=fill)


def resize(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize to (width, height): area averaging when shrinking (as upstream), Lanczos when enlarging."""
    out_w, out_h = size
    shrinking = out_w * out_h < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    resized = cv2.resize(image, (out_w, out_h), interpolation=interpolation)
    if image.dtype == np.uint8:
        return resized
    return resized.astype(image.dtype)
