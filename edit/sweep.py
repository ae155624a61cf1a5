"""An edit.py run as library functions: starting codes, the panels of one strip, the strength sweep videos.

Used by ``edit.py``; the web app's Edit tab uses :class:`edit.methods.Editor` the same way.
"""

import contextlib
import os
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from dnnlib.errors import ToolkitError
from stylegan_human.latent_files import load_latent
from stylegan_human.sampling import seed_to_z, to_uint8
from stylegan_human.video import FrameWriter
from .methods import Editor

SWEEP_FRAMES = 90      # upstream's video length


def start_codes(G: torch.nn.Module, seeds: Sequence[int], truncation_psi: float, real_w_path: Optional[str],
                device: torch.device) -> List[Tuple[str, torch.Tensor]]:
    """[(label, w+ [1, num_ws, w_dim])] from seeds (truncated) or from a PTI pivot (used as is)."""
    if real_w_path:
        try:
            w = load_latent(real_w_path, G, device)
        except ToolkitError as err:
            err.param = 'real_w_path'
            raise
        return [('real', w.repeat([1, G.num_ws // w.shape[1], 1]))]
    codes = []
    for seed in seeds:
        z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device, torch.float32)
        with torch.no_grad():
            codes.append((f'{seed:05d}', G.mapping(z, torch.zeros([1, G.c_dim], device=device),
                                                     truncation_psi=truncation_psi)))
    return codes


def load_photo(path: str, G: torch.nn.Module) -> torch.Tensor:
    """The aligned photo beside the edits, at the network's size ([1, 3, H, W] in [-1, 1])."""
    from pti.images import load_target, network_size
    try:
        target, _ = load_target(path, network_size(G))
    except ToolkitError as err:
        err.param = 'real_img_path'
        raise
    return target


def panels(G: torch.nn.Module, editor: Editor, ws: torch.Tensor, methods: Sequence[str],
           photo: Optional[torch.Tensor] = None, fraction: float = 1.0) -> List[np.ndarray]:
    """[photo,] original, then each method's edit at ``fraction`` of its strength (uint8 HWC each)."""
    with torch.no_grad():
        original = G.synthesis(ws, noise_mode='const', force_fp32=True)
    images = ([photo] if photo is not None else []) + [original]
    images += [editor.image(ws, m, fraction) for m in methods]
    return [to_uint8(p)[0].cpu().numpy() for p in images]


def write_sweep(outdir: str, attr_name: str, label: str, methods: Sequence[str],
                frame: Callable[[float], List[np.ndarray]], combine: bool, with_photo: bool) -> None:
    """MP4 of the strength going from 0 to full: all panels side by side, or one video per method."""
    first = 2 if with_photo else 1
    names = [f'{attr_name}_{label}.mp4'] if combine else [f'{m}_{attr_name}_{label}.mp4' for m in methods]
    os.makedirs(os.path.join(outdir, 'video'), exist_ok=True)
    with contextlib.ExitStack() as stack:   # every video is written whole, or not at all
        writers = [stack.enter_context(FrameWriter(os.path.join(outdir, 'video', n), fps=30)) for n in names]
        for i in range(SWEEP_FRAMES):
            panels = frame(i / SWEEP_FRAMES)
            if combine:
                writers[0].append(np.concatenate(panels, axis=1))
            else:
                for writer, panel in zip(writers, panels[first:]):
                    writer.append(panel)
