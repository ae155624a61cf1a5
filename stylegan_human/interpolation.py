"""Paths through latent space: interpolated w codes between seeds, and their frames.

Used by interpolation.py, the web app and the notebook.
"""

from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from dnnlib.errors import InputError
from .sampling import make_labels, seed_to_z, synthesize, to_uint8

Device = Union[str, torch.device]


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def slerp(a: np.ndarray, b: np.ndarray, t: float, dot_threshold: float = 0.9995) -> np.ndarray:
    """Spherical interpolation along the great circle; falls back to lerp for near-parallel codes."""
    a_unit = a / np.linalg.norm(a)
    b_unit = b / np.linalg.norm(b)
    dot = float(np.sum(a_unit * b_unit))
    if abs(dot) > dot_threshold:
        return lerp(a, b, t)
    theta = np.arccos(dot)
    return (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)


def path_points(num_keys: int, num_interps: int, loop: bool) -> List[Tuple[int, float]]:
    """(segment, t) for every frame: num_interps per segment, plus the final key frame."""
    segments = num_keys if loop else num_keys - 1
    points = [(k, i / num_interps) for k in range(segments) for i in range(num_interps)]
    points.append((segments - 1, 1.0))
    return points


def interpolate_latents(G: torch.nn.Module, seeds: Sequence[int], num_interps: int = 100, space: str = 'z',
                        method: str = 'lerp', loop: bool = False, truncation_psi: float = 0.8,
                        class_idx: Optional[int] = None, device: Device = 'cpu') -> torch.Tensor:
    """w for every frame of the path through ``seeds`` ([frames, num_ws, w_dim])."""
    if len(seeds) < 2:
        raise InputError(f'interpolation needs at least two seeds, e.g. 85,100 (got {len(seeds)})', param='seeds')
    if num_interps < 1:
        raise InputError(f'at least 1 frame is needed between two seeds (got {num_interps})', param='num_interps')
    mix = slerp if method == 'slerp' else lerp
    c = make_labels(G, class_idx, 1, device)

    def to_w(z):
        z = torch.from_numpy(np.asarray(z)[None]).to(device)
        return G.mapping(z, c, truncation_psi=truncation_psi)[0]

    keys = [seed_to_z(s, G.z_dim)[0] for s in seeds]
    if space == 'w':
        keys = [to_w(z).double().cpu().numpy() for z in keys]
    keys = keys + keys[:1]
    frames = []
    with torch.no_grad():
        for k, t in path_points(len(seeds), num_interps, loop):
            code = keys[k] if t == 0 else keys[k + 1] if t == 1 else mix(keys[k], keys[k + 1], t)
            if space == 'w':
                frames.append(torch.from_numpy(code).float().to(device))
            else:
                frames.append(to_w(code))
    return torch.stack(frames)


def render(G: torch.nn.Module, ws: torch.Tensor, noise_mode: str = 'const',
           batch_size: int = 1) -> Iterator[np.ndarray]:
    """Yield uint8 HWC images for ws, ``batch_size`` at a time (bounded memory)."""
    with torch.no_grad():
        for i in range(0, len(ws), batch_size):
            images = to_uint8(synthesize(G, ws[i:i + batch_size], noise_mode=noise_mode, force_fp32=True))
            yield from images.cpu().numpy()
