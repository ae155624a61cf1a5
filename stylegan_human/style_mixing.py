"""Style mixing: one seed's w in some layers, another's in the rest; grids and frames of it.

Used by style_mixing.py, stylemixing_video.py, the web app and the notebook.
"""

from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import PIL.Image
import scipy.ndimage
import torch

from dnnlib.errors import InputError
from .sampling import make_labels, seed_to_z, synthesize, to_uint8

Device = Union[str, torch.device, None]


def check_styles(G: torch.nn.Module, styles: Sequence[int]) -> None:
    """Style indices must name ws of this network."""
    bad = [s for s in styles if not 0 <= s < G.num_ws]
    if bad:
        raise InputError(f'style {bad[0]} does not exist: this network has styles 0-{G.num_ws - 1}', param='styles')


def style_mix(G: torch.nn.Module, row_seeds: Sequence[int], col_seeds: Sequence[int], styles: Sequence[int],
              truncation_psi: float = 0.8, noise_mode: str = 'const', class_idx: Optional[int] = None,
              device: Device = None) -> Dict[Tuple[int, int], np.ndarray]:
    """Return {(row_seed, col_seed): uint8 HWC}; (s, s) is seed s's own image.

    A cell takes the row seed's w with the column seed's w copied into ``styles``.
    """
    check_styles(G, styles)
    device = torch.device(device) if device is not None else next(G.parameters()).device
    seeds = list(dict.fromkeys(list(row_seeds) + list(col_seeds)))
    c = make_labels(G, class_idx, 1, device)
    with torch.no_grad():
        # One seed per call, as generate.py does, so a seed's image here is bit-identical to it.
        w_of = {s: G.mapping(torch.from_numpy(seed_to_z(s, G.z_dim)).to(device), c,
                             truncation_psi=truncation_psi)[0] for s in seeds}

        def render(w):
            return to_uint8(G.synthesis(w[None], noise_mode=noise_mode, force_fp32=True))[0].cpu().numpy()

        images = {(s, s): render(w_of[s]) for s in seeds}
        for row in row_seeds:
            for col in col_seeds:
                if (row, col) not in images:
                    w = w_of[row].clone()
                    w[list(styles)] = w_of[col][list(styles)]
                    images[(row, col)] = render(w)
    return images


def mixing_grid(images: Dict[Tuple[int, int], np.ndarray], row_seeds: Sequence[int],
                col_seeds: Sequence[int]) -> np.ndarray:
    """Top row: column seeds; left column: row seeds; the corner stays black."""
    h, w, c = next(iter(images.values())).shape
    canvas = np.zeros([h * (len(row_seeds) + 1), w * (len(col_seeds) + 1), c], dtype=np.uint8)
    for j, col in enumerate(col_seeds):
        canvas[:h, (j + 1) * w:(j + 2) * w] = images[(col, col)]
    for i, row in enumerate(row_seeds):
        canvas[(i + 1) * h:(i + 2) * h, :w] = images[(row, row)]
        for j, col in enumerate(col_seeds):
            canvas[(i + 1) * h:(i + 2) * h, (j + 1) * w:(j + 2) * w] = images[(row, col)]
    return canvas


def wandering_z(seed: int, num_frames: int, z_dim: int, smoothing_frames: float) -> np.ndarray:
    """Seeded Gaussian noise, smoothed over time with wrap-around (so it loops), unit RMS."""
    z = np.random.RandomState(seed).randn(num_frames, z_dim).astype(np.float32)
    z = scipy.ndimage.gaussian_filter(z, [smoothing_frames, 0], mode='wrap')
    return z / np.sqrt(np.mean(np.square(z)))


def mixing_frames(G: torch.nn.Module, src_seed: int, dst_seeds: Sequence[int], styles: Sequence[int],
                  num_frames: int, fps: float, truncation_psi: float = 1.0, noise_mode: str = 'const',
                  indent_range: int = 30, only_stylemix: bool = False, smoothing_sec: float = 1.0, batch_size: int = 8,
                  class_idx: Optional[int] = None, device: Device = 'cpu') -> Iterator[np.ndarray]:
    """The video's frames (uint8 HWC), rendered ``batch_size`` source frames at a time.

    Options are checked here, before any frame is rendered or file opened.
    """
    check_styles(G, styles)
    if num_frames < 1:
        raise InputError(f'the video would have no frames ({num_frames}); make it longer or raise the frame rate',
                         param='duration_sec')
    return _frames(G, src_seed, dst_seeds, list(styles), num_frames, fps, truncation_psi, noise_mode,
                   indent_range, only_stylemix, smoothing_sec, batch_size, class_idx, device)


def _frames(G, src_seed, dst_seeds, styles, num_frames, fps, truncation_psi, noise_mode, indent_range,
            only_stylemix, smoothing_sec, batch_size, class_idx, device):
    c = make_labels(G, class_idx, 1, device)

    def mapping(z):
        return G.mapping(torch.from_numpy(z).to(device), c.expand(len(z), -1), truncation_psi=truncation_psi)

    def synthesis(w):
        return to_uint8(synthesize(G, w, noise_mode=noise_mode, force_fp32=True)).cpu().numpy()

    src_z = wandering_z(src_seed, num_frames, G.z_dim, smoothing_sec * fps)
    with torch.no_grad():
        dst_w = torch.cat([mapping(seed_to_z(s, G.z_dim)) for s in dst_seeds])
        dst_images = synthesis(dst_w)
        h, w = dst_images.shape[1:3]
        step = w - indent_range
        top = 0 if only_stylemix else h
        canvas = PIL.Image.new('RGB', (step * (len(dst_seeds) + (0 if only_stylemix else 1)), top + h), 'white')
        first_col = 0 if only_stylemix else 1
        if not only_stylemix:
            for j, image in enumerate(dst_images):
                canvas.paste(PIL.Image.fromarray(image), ((j + 1) * step, 0))
        for start in range(0, num_frames, batch_size):
            src_w = mapping(src_z[start:start + batch_size])
            src_images = synthesis(src_w)
            mixed = []
            for j in range(len(dst_seeds)):
                ws = dst_w[j:j + 1].repeat(len(src_w), 1, 1)
                ws[:, styles] = src_w[:, styles]
                mixed.append(synthesis(ws))
            for i in range(len(src_w)):
                if not only_stylemix:
                    canvas.paste(PIL.Image.fromarray(src_images[i]), (-indent_range, top))
                for j in range(len(dst_seeds)):
                    canvas.paste(PIL.Image.fromarray(mixed[j][i]), ((j + first_col) * step, top))
                yield np.asarray(canvas).copy()
