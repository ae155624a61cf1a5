"""What a drag run leaves behind: the final code as a latent file, the tracked points as JSON,
frames with the points drawn on them, and a before/after figure.

``drag_w.npz`` holds ``w`` [1, num_ws, w_dim] (NVIDIA's projected_w.npz layout), which
``generate.py --projected-w`` renders and ``edit.py --real_w_path`` edits.
"""

import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from dnnlib.atomic import atomic_write

from .drag import DragResult, Point

PathLike = Union[str, os.PathLike]
HANDLE_COLOUR = (230, 30, 30)
TARGET_COLOUR = (30, 90, 240)


def save_w(path: PathLike, w: torch.Tensor) -> None:
    """The code as an .npz with ``w`` float32 [1, num_ws, w_dim], written atomically."""
    array = np.ascontiguousarray(w.detach().cpu().float().numpy())
    atomic_write(os.fspath(path), lambda f: np.savez(f, w=array))


def points_record(result: DragResult, handles: Sequence[Point], targets: Sequence[Point],
                  extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The run as plain data: handles, targets, the tracked points at every step, how it ended."""
    record = dict(extra or {})
    record.update(handles=[list(p) for p in handles], targets=[list(p) for p in targets],
                  steps=result.steps, reason=result.reason, final_distances=[round(d, 3) for d in result.distances],
                  points=[[list(p) for p in step] for step in result.points])
    return record


def write_json(path: PathLike, record: Dict[str, Any]) -> None:
    """The record as JSON, one key a line and, for the points, one step a line."""
    lines = []
    for key, value in record.items():
        if key == 'points':
            steps = ',\n  '.join(json.dumps(step) for step in value)
            lines.append(f' {json.dumps(key)}: [\n  {steps}\n ]')
        else:
            lines.append(f' {json.dumps(key)}: {json.dumps(value)}')
    text = '{\n' + ',\n'.join(lines) + '\n}\n'
    atomic_write(os.fspath(path), lambda f: f.write(text), mode='w')


def _disk(image: np.ndarray, centre: Point, radius: float, colour: Tuple[int, int, int]) -> None:
    h, w = image.shape[:2]
    ys, xs = np.ogrid[0:h, 0:w]
    image[(xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius ** 2] = colour


def _line(image: np.ndarray, start: Point, end: Point, colour: Tuple[int, int, int]) -> None:
    count = int(max(abs(end[0] - start[0]), abs(end[1] - start[1]))) + 1
    h, w = image.shape[:2]
    for t in np.linspace(0, 1, count + 1):
        x, y = int(round(start[0] + t * (end[0] - start[0]))), int(round(start[1] + t * (end[1] - start[1])))
        if 0 <= x < w and 0 <= y < h:
            image[y, x] = colour


def draw_points(image: np.ndarray, points: Sequence[Point], targets: Sequence[Point], scale: int = 1) -> np.ndarray:
    """A copy of ``image`` enlarged ``scale`` times (nearest) with each handle (red), its target (blue)
    and the line between them drawn on it."""
    out = np.repeat(np.repeat(np.asarray(image, np.uint8), scale, axis=0), scale, axis=1).copy()
    radius = max(1.0, out.shape[0] / 160)

    def at(p):
        return ((p[0] + 0.5) * scale - 0.5, (p[1] + 0.5) * scale - 0.5)
    for p, t in zip(points, targets):
        _line(out, at(p), at(t), (255, 255, 255))
        _disk(out, at(t), radius, TARGET_COLOUR)
        _disk(out, at(p), radius, HANDLE_COLOUR)
    return out


def figure_scale(height: int, at_least: int = 256) -> int:
    """How many times to enlarge images of ``height`` so that points can be seen."""
    return max(1, -(-at_least // height))


def before_after(result: DragResult, handles: Sequence[Point], targets: Sequence[Point]) -> np.ndarray:
    """Start (handles and targets marked) | end (tracked handles and targets marked) | end, side by side."""
    scale = figure_scale(result.start_image.shape[0])
    plain = np.repeat(np.repeat(result.end_image, scale, axis=0), scale, axis=1)
    gap = np.full((plain.shape[0], max(2, scale), 3), 255, np.uint8)
    return np.concatenate([draw_points(result.start_image, handles, targets, scale), gap,
                           draw_points(result.end_image, result.points[-1], targets, scale), gap, plain], axis=1)
