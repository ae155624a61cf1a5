"""Where a drag starts and ends: pixel pairs, or body joints found by the alignment pose backend.

``--handle 120,300 --target 150,280`` gives pixels (x, y); ``--move right_wrist:+40,-30``
names a COCO-18 joint (the names in :data:`JOINT_NAMES`) and an offset in pixels, the
joint found on the image being dragged (generated, or an inverted photo's).
"""

import dataclasses
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

from aligner.people import COCO18_NAMES
from dnnlib.errors import FileFormatError, InputError, MissingFileError

Point = Tuple[float, float]
JOINT_NAMES = COCO18_NAMES
MIN_CONFIDENCE = 0.3     # below this the backend is guessing where the joint is

_NUMBER = r'[+-]?(?:\d+(?:\.\d*)?|\.\d+)'
_POINT = re.compile(rf'^\s*({_NUMBER})\s*,\s*({_NUMBER})\s*$')
_MOVE = re.compile(rf'^\s*([A-Za-z_]+)\s*:\s*({_NUMBER})\s*,\s*({_NUMBER})\s*$')


@dataclasses.dataclass(frozen=True)
class Move:
    """Move ``joint`` by (dx, dy) pixels."""
    joint: str
    dx: float
    dy: float


def parse_point(text: str) -> Point:
    """'120,300' -> (120.0, 300.0); ValueError with a readable message otherwise."""
    match = _POINT.match(str(text))
    if not match:
        raise ValueError(f'{text!r} is not a pixel like 120,300 (x,y)')
    return float(match.group(1)), float(match.group(2))


def parse_move(text: str) -> Move:
    """'right_wrist:+40,-30' -> Move('right_wrist', 40, -30); an unknown joint is a ValueError naming the known ones."""
    match = _MOVE.match(str(text))
    if not match:
        raise ValueError(f'{text!r} is not a joint move like right_wrist:+40,-30')
    name = match.group(1).lower()
    if name not in JOINT_NAMES:
        raise ValueError(f'unknown joint {match.group(1)!r}; joints: {", ".join(JOINT_NAMES)}')
    return Move(name, float(match.group(2)), float(match.group(3)))


def find_joints(image: np.ndarray, backend: object) -> Dict[str, Tuple[float, float, float]]:
    """{joint name: (x, y, confidence)} of the most prominent person the backend sees on ``image``
    (uint8 H x W x 3); empty when it sees nobody."""
    people = backend.analyse(np.ascontiguousarray(image)).people
    if not people:
        return {}
    keypoints = np.asarray(people[0], dtype=np.float64)
    return {name: (float(x), float(y), float(c)) for name, (x, y, c) in zip(JOINT_NAMES, keypoints)}


def resolve_moves(moves: Sequence[Move], joints: Dict[str, Tuple[float, float, float]],
                  min_confidence: float = MIN_CONFIDENCE) -> Tuple[List[Point], List[Point]]:
    """(handles, targets) for joint moves; a joint the backend did not find (or barely) is an InputError."""
    if moves and not joints:
        raise InputError('the pose backend found no person on the image, so no joint to move', param='moves')
    handles, targets = [], []
    for move in moves:
        x, y, confidence = joints[move.joint]
        if confidence < min_confidence:
            raise InputError(f'{move.joint} not found on the image (confidence {confidence:.2f} < '
                             f'{min_confidence}); give pixels with --handle/--target instead', param='moves')
        handles.append((round(x), round(y)))
        targets.append((round(x + move.dx), round(y + move.dy)))
    return handles, targets


def region_around(handles: Sequence[Point], targets: Sequence[Point], radius: float,
                  height: int, width: int) -> np.ndarray:
    """A mask (H x W float32, 1 = may change) of every pixel within ``radius`` of a handle's path to its target."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    mask = np.zeros((height, width), bool)
    for (hx, hy), (tx, ty) in zip(handles, targets):
        dx, dy = tx - hx, ty - hy
        length2 = dx * dx + dy * dy
        along = np.clip(((xs - hx) * dx + (ys - hy) * dy) / length2, 0, 1) if length2 else np.zeros_like(xs)
        mask |= (xs - hx - along * dx) ** 2 + (ys - hy - along * dy) ** 2 <= radius ** 2
    return mask.astype(np.float32)


def read_mask(path: str, height: int, width: int) -> np.ndarray:
    """A mask image (white = may change) at the network's size: H x W float32 in [0, 1]."""
    import PIL.Image
    try:
        with PIL.Image.open(path) as image:
            gray = image.convert('L').resize((width, height), PIL.Image.NEAREST)
    except FileNotFoundError:
        raise MissingFileError(f'{path}: no such file', param='mask') from None
    except (OSError, ValueError) as err:
        raise FileFormatError(f'{path}: not an image ({err})'.splitlines()[0], param='mask') from None
    mask = np.asarray(gray, dtype=np.float32) / 255
    if not mask.any():
        raise InputError(f'{path}: the mask is all black (nothing may change)', param='mask')
    return mask


def default_backend() -> object:
    """The alignment's default backend (MediaPipe: keypoints and mask, offline on the CPU)."""
    from aligner.backends import make_backend
    return make_backend()
