"""A looping video through keyframe seeds, one smooth path per cell of a grid (StyleGAN3's gen_video).

Each cell visits its keyframes' w codes in turn and returns to the first: w moves along a
cubic spline through the keyframes, repeated a few times on both sides so the loop has no
seam. Frame ``i`` shows every cell at spline position ``i / w_frames``, so a keyframe is
on screen at every multiple of ``w_frames``.
"""

from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from dnnlib.errors import InputError
from . import sampling

SPLINE_WRAPS = 2   # copies of the keyframes on each side: the spline near the ends sees a loop


def keyframe_seeds(seeds: Sequence[int], grid: Tuple[int, int], num_keyframes: Optional[int] = None,
                   shuffle_seed: Optional[int] = None) -> np.ndarray:
    """Seeds as an int64 array [grid_h, grid_w, num_keyframes].

    Without ``num_keyframes`` the seeds must fill the grid evenly; with it they are repeated
    as needed. ``shuffle_seed`` shuffles them (NVIDIA's order for the same value).
    """
    grid_w, grid_h = grid
    cells = grid_w * grid_h
    if not seeds:
        raise InputError('give at least one seed', param='seeds')
    if num_keyframes is None:
        if len(seeds) % cells:
            raise InputError(f'{len(seeds)} seeds do not fill a {grid_w}x{grid_h} grid evenly: give a multiple of '
                             f'{cells} seeds, or --num-keyframes', param='seeds')
        num_keyframes = len(seeds) // cells
    if num_keyframes < 1:
        raise InputError(f'at least one keyframe is needed (got {num_keyframes})', param='num_keyframes')
    chosen = np.array([seeds[i % len(seeds)] for i in range(num_keyframes * cells)], dtype=np.int64)
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(chosen)
    return chosen.reshape(grid_h, grid_w, num_keyframes)


def loop_paths(keyframe_ws: np.ndarray, kind: str = 'cubic') -> object:
    """A callable ``path(t) -> w`` per the keyframes' w codes [num_keyframes, num_ws, w_dim] (t in keyframes)."""
    import scipy.interpolate
    count = keyframe_ws.shape[0]
    x = np.arange(-count * SPLINE_WRAPS, count * (SPLINE_WRAPS + 1))
    y = np.tile(keyframe_ws, [SPLINE_WRAPS * 2 + 1, 1, 1])
    return scipy.interpolate.interp1d(x, y, kind=kind, axis=0)


def loop_frames(G: torch.nn.Module, seed_grid: np.ndarray, w_frames: int, truncation_psi: float = 1.0,
                class_idx: Optional[int] = None, noise_mode: str = 'const',
                device: sampling.Device = None) -> Iterator[np.ndarray]:
    """Yield the video's frames (uint8 [grid_h * H, grid_w * W, 3]), one at a time."""
    if w_frames < 1:
        raise InputError(f'at least one frame per keyframe is needed (got {w_frames})', param='w_frames')
    device = torch.device(device) if device is not None else next(G.parameters()).device
    grid_h, grid_w, count = seed_grid.shape
    with torch.no_grad():
        _, ws = sampling.map_seeds(G, [int(s) for s in seed_grid.reshape(-1)], truncation_psi,
                                   class_idx=class_idx, device=device)
    ws = ws.double().cpu().numpy().reshape(grid_h, grid_w, count, *ws.shape[1:])
    paths = [[loop_paths(ws[y, x]) for x in range(grid_w)] for y in range(grid_h)]
    for frame in range(count * w_frames):
        cells = np.stack([paths[y][x](frame / w_frames) for y in range(grid_h) for x in range(grid_w)])
        cells = torch.from_numpy(cells).to(device, torch.float32)
        with torch.no_grad():
            images = sampling.to_uint8(sampling.synthesize(G, cells, noise_mode=noise_mode, force_fp32=True))
        yield layout_grid(images.cpu().numpy(), grid_w, grid_h)


def layout_grid(images: np.ndarray, grid_w: int, grid_h: int) -> np.ndarray:
    """[grid_h * grid_w, H, W, C] (row by row) -> one [grid_h * H, grid_w * W, C] image."""
    _, h, w, c = images.shape
    return images.reshape(grid_h, grid_w, h, w, c).transpose(0, 2, 1, 3, 4).reshape(grid_h * h, grid_w * w, c)
