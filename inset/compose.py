"""InsetGAN from start to finish: starting latents, the face box, the joint optimisation, the result.

The orchestration behind ``insetgan.py`` (and any app or notebook): :func:`start_latent`
gives each network's starting code, :func:`find_face_box` the box in the body image where
the face goes, and :func:`compose` runs the optimisation (``inset.optimize``) and returns
the images and latents; nothing here writes files.
"""

import dataclasses
import time
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from aligner.face import DlibFaceFinder, FaceBox, FaceNotFound, MediaPipeFaceFinder
from dnnlib.errors import InputError
from stylegan_human.latent_files import load_latent
from stylegan_human.sampling import make_labels, seed_to_z, to_uint8
from .optimize import InsetConfig, feathered_paste, fit_to_box, joint_optimize


@dataclasses.dataclass
class InsetResult:
    before: np.ndarray     # uint8 HWC: the starting face pasted on the starting body
    final: np.ndarray      # uint8 HWC: the optimised face blended into the optimised body
    face_ws: np.ndarray    # w+ of the face network
    body_ws: np.ndarray    # w+ of the body network
    box: FaceBox           # where the face ended up in the body image
    history: list          # (step, seam L1, coarse L1, ...) per logged step
    seconds: float


def start_latent(G: torch.nn.Module, seed: int, latent_path: Optional[str], truncation_psi: float,
                 device: torch.device, class_idx: Optional[int] = None) -> torch.Tensor:
    """w [1, 1, w_dim] from a seed (truncated toward the mean), or w+ [1, num_ws, w_dim] from a file.

    ``class_idx``: the class of a conditional network (needed for a seed; InputError with
    param='class_idx' when missing, out of range, or given to an unconditional network)."""
    if latent_path is not None:
        if class_idx is not None:   # not needed (the file holds the code), but a wrong one is still an error
            make_labels(G, class_idx, 1, device)
        return load_latent(latent_path, G, device)
    c = make_labels(G, class_idx, 1, device)
    z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device, torch.float32)
    with torch.no_grad():
        return G.mapping(z, c, truncation_psi=truncation_psi)[:, :1]


def start_image(G: torch.nn.Module, w: torch.Tensor) -> torch.Tensor:
    """The network's image for a starting code (w or w+), [1, 3, H, W] in [-1, 1]."""
    with torch.no_grad():
        return G.synthesis(w.repeat([1, G.num_ws // w.shape[1], 1]), noise_mode='const', force_fp32=True)


def make_face_finder(kind: str, dlib_detector: Optional[str] = None,
                     dlib_predictor: Optional[str] = None) -> Union[DlibFaceFinder, MediaPipeFaceFinder]:
    """'mediapipe' (bundled models) or 'dlib' (the user's two model files)."""
    if kind == 'dlib':
        return DlibFaceFinder(dlib_detector, dlib_predictor)
    return MediaPipeFaceFinder()


def locate(finder: Any, image: torch.Tensor) -> FaceBox:
    return finder.find(to_uint8(image)[0].cpu().numpy())


def find_face_box(body_image: torch.Tensor, finder: Any = None, box: Optional[FaceBox] = None) -> FaceBox:
    """The face's box in the body image: ``box`` as given, else found by ``finder``; it must fit the image.

    A found box that reaches past an edge is moved inside (a detection's square may); a box
    the user gave is used as it is, or refused: moving it would put the face somewhere else."""
    height, width = body_image.shape[2:]
    if box is None:
        try:
            box = locate(finder, body_image)
        except FaceNotFound as err:
            raise FaceNotFound(f'{err}; say where the face is with a box x0,y0,x1,y1',
                               param='face_box') from None
        box = box.clipped(width, height)
    if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
        raise InputError(f'face box {box.x0},{box.y0},{box.x1},{box.y1} does not fit in the {width}x{height} '
                         f'body image (x within 0-{width}, y within 0-{height})', param='face_box')
    return box


def compose(face_G: torch.nn.Module, body_G: torch.nn.Module, face_w: torch.Tensor, body_w: torch.Tensor,
            box: FaceBox, perceptual: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
            cfg: Optional[InsetConfig] = None, finder: Any = None,
            on_frame: Optional[Callable[[np.ndarray], None]] = None,
            on_step: Optional[Callable[[], None]] = None) -> InsetResult:
    """Optimise face and body together; ``on_frame`` gets every step's composite (uint8 HWC) if given."""
    body_start, face_start = start_image(body_G, body_w), start_image(face_G, face_w)
    relocate = _tolerant((lambda image: locate(finder, image)) if finder is not None else None)

    def step(stage, index, body_image, face_in_box, current_box):
        if on_step is not None:
            on_step()
        if on_frame is not None:
            with torch.no_grad():
                on_frame(to_uint8(feathered_paste(body_image, face_in_box, current_box))[0].cpu().numpy())
    start = time.perf_counter()
    face, body, final_box, history = joint_optimize(face_G, body_G, face_w, body_w, box, perceptual, cfg,
                                                    relocate=relocate, on_step=step)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        before = feathered_paste(body_start, fit_to_box(face_start, box), box)
        final = feathered_paste(body.image(), fit_to_box(face.image(), final_box), final_box)
    return InsetResult(before=to_uint8(before)[0].cpu().numpy(), final=to_uint8(final)[0].cpu().numpy(),
                       face_ws=face.ws().detach().cpu().numpy(), body_ws=body.ws().detach().cpu().numpy(),
                       box=final_box, history=history, seconds=seconds)


def _tolerant(relocate):
    """Re-finding the face may fail on an intermediate body: keep the old box then."""
    if relocate is None:
        return None

    def find(image):
        try:
            return relocate(image)
        except FaceNotFound:
            return None
    return find
