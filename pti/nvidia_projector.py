"""NVIDIA's projector workflow: one photo -> the w that renders it, with NVIDIA's settings and files.

NVIDIA's ``projector.py`` center-crops the target to the network's shape, resizes it,
runs the W projection (1000 steps from the mean w at a peak rate of 0.1, w statistics
from 10,000 samples) and writes ``target.png``, ``proj.png``, ``projected_w.npz`` (``w``
[1, num_ws, w_dim]) and, optionally, ``proj.mp4``: target and projection side by side at
every step. Here the same runs on any 2:1 or square network, on the CPU too.
"""

import dataclasses
import os
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import PIL.Image
import torch

from dnnlib.atomic import atomic_write, save_image
from stylegan_human import sampling
from stylegan_human.photos import load_photo
from stylegan_human.video import FrameWriter
from .images import network_size, uint8_to_tensor
from .projector import ProjectionConfig, project_w

VIDEO_FPS = 10   # NVIDIA's proj.mp4 rate


def nvidia_config(steps: int = 1000) -> ProjectionConfig:
    """The projection settings of NVIDIA's projector (PTI's own differ: fewer steps, a lower rate)."""
    return ProjectionConfig(steps=steps, learning_rate=0.1, w_avg_samples=10000)


def crop_to_shape(rgb: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, Optional[str]]:
    """The largest centred crop of ``rgb`` with the shape of ``size`` (width, height), resized to it.

    NVIDIA crops to a centred square; for a 2:1 network the crop is 1:2 (width:height).
    Returns the image and a note saying what was done (None when nothing was).
    """
    h, w = rgb.shape[:2]
    want_w, want_h = size
    crop_w, crop_h = min(w, h * want_w // want_h), min(h, w * want_h // want_w)
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    if (crop_w, crop_h, want_w, want_h) == (w, h, w, h):
        return rgb, None
    image = PIL.Image.fromarray(rgb).crop((left, top, left + crop_w, top + crop_h))
    image = image.resize((want_w, want_h), PIL.Image.LANCZOS)
    cropped = f'cropped to {crop_w}x{crop_h}, ' if (crop_w, crop_h) != (w, h) else ''
    return np.asarray(image), f'{w}x{h} photo {cropped}resized to {want_w}x{want_h}'


@dataclasses.dataclass
class Projection:
    target: np.ndarray            # uint8 [H, W, 3], what was projected
    w: torch.Tensor               # [1, num_ws, w_dim]
    steps: List[torch.Tensor]     # the w after each step, [1, 1, w_dim] (for the video)


def project_photo(G: torch.nn.Module, photo: Union[str, os.PathLike], features: Callable[[torch.Tensor], torch.Tensor],
                  steps: int = 1000, seed: int = 303, device: Union[str, torch.device] = 'cpu',
                  progress: Optional[Callable[[int, torch.Tensor], None]] = None) -> Tuple[Projection, Optional[str]]:
    """Crop and project ``photo`` with NVIDIA's settings. Returns the projection and a note on the crop."""
    target, note = crop_to_shape(load_photo(photo, max_side=None), network_size(G))
    cfg = nvidia_config(steps)
    history = []
    w, _ = project_w(G, uint8_to_tensor(target), features, cfg, seed=seed, device=device,
                     progress=progress, on_step=lambda step, w_step: history.append(w_step.cpu()))
    return Projection(target=target, w=w, steps=history), note


def render(G: torch.nn.Module, w: torch.Tensor) -> np.ndarray:
    """The uint8 image of one w [1, 1 or num_ws, w_dim], with the network's own constant noise."""
    ws = w.to(next(G.parameters()).device).expand(-1, G.num_ws, -1)
    with torch.no_grad():
        return sampling.to_uint8(sampling.synthesize(G, ws, noise_mode='const', force_fp32=True))[0].cpu().numpy()


def write_projection(G: torch.nn.Module, result: Projection, outdir: Union[str, os.PathLike],
                     save_video: bool = True, frame_progress: Optional[Callable[[], None]] = None) -> List[str]:
    """Write NVIDIA's files into ``outdir``; returns their paths. The video renders every step's w."""
    os.makedirs(outdir, exist_ok=True)
    written = []
    if save_video:
        path = os.path.join(outdir, 'proj.mp4')
        with FrameWriter(path, fps=VIDEO_FPS) as video:
            for w in result.steps:
                video.append(np.concatenate([result.target, render(G, w)], axis=1))
                if frame_progress is not None:
                    frame_progress()
        written.append(path)
    save_image(result.target, os.path.join(outdir, 'target.png'))
    save_image(render(G, result.w), os.path.join(outdir, 'proj.png'))
    w_np = result.w.detach().cpu().numpy().astype(np.float32)
    atomic_write(os.path.join(outdir, 'projected_w.npz'), lambda f: np.savez(f, w=w_np))
    written += [os.path.join(outdir, name) for name in ('target.png', 'proj.png', 'projected_w.npz')]
    return written
