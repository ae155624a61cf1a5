"""InsetGAN's joint optimisation of a face latent and a body latent (upstream's three stages).

Both latents are w + per-layer offsets, optimised with Adam under NVIDIA's
learning-rate ramp. The losses, each an L1 term plus an optional perceptual
(LPIPS) term, are upstream's:

- coarse: the face image, shrunk to the face box, against the body's face
  region, both at 64x64 (the face should fit the body at low frequency);
- border: the same two along an 8-pixel frame (the seam must agree);
- body: the body outside the face box against the starting body (stay close);
- face: the face generator's face region against its starting image;
- reg: the body w near the mean w.

Stage 1 moves the face (25 steps), stage 2 the body (150 steps), stage 3
alternates every 50 steps for ``joint_steps``. Upstream's weights per stage are
the defaults; the ``*_scale`` options multiply them.
"""

import dataclasses
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from aligner.face import FaceBox
from pti.projector import lr_ramp
from torch_utils import misc


@dataclasses.dataclass
class InsetConfig:
    joint_steps: int = 500
    face_steps: int = 25
    body_steps: int = 150
    interval: int = 50
    face_lr: float = 0.02
    body_lr: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    coarse_scale: float = 1.0
    border_scale: float = 1.0
    body_scale: float = 1.0
    face_scale: float = 1.0
    reg_scale: float = 1.0
    border_width: int = 8


def ramped_lr(base: float, step: int, steps: int, cfg: InsetConfig) -> float:
    return base * lr_ramp(step / max(steps, 1), cfg.lr_rampup_length, cfg.lr_rampdown_length)


def fit_to_box(face: torch.Tensor, box: FaceBox) -> torch.Tensor:
    """Resize a face image to the box: area averaging to shrink, bilinear to enlarge."""
    size = (box.height, box.width)
    mode = 'area' if face.shape[2] >= box.height else 'bilinear'
    return F.interpolate(face, size=size, mode=mode, **({} if mode == 'area' else {'align_corners': False}))


def box_region(images: torch.Tensor, box: FaceBox) -> torch.Tensor:
    return images[:, :, box.y0:box.y1, box.x0:box.x1]


def border_mask(like: torch.Tensor, width: int) -> torch.Tensor:
    mask = torch.zeros_like(like)
    mask[:, :, :width] = 1
    mask[:, :, -width:] = 1
    mask[:, :, :, :width] = 1
    mask[:, :, :, -width:] = 1
    return mask


def outside_box_mask(like: torch.Tensor, box: FaceBox, padding: int) -> torch.Tensor:
    mask = torch.ones_like(like)
    mask[:, :, max(box.y0 - padding, 0):box.y1 + padding, max(box.x0 - padding, 0):box.x1 + padding] = 0
    return mask


def feathered_paste(body: torch.Tensor, face_in_box: torch.Tensor, box: FaceBox,
                    feather: Optional[int] = None) -> torch.Tensor:
    """Blend the face into the body box with a mask that ramps from 0 at the box edge to 1 inside."""
    feather = feather or max(2, min(box.width, box.height) // 8)
    ys = torch.arange(box.height, device=body.device, dtype=body.dtype)
    xs = torch.arange(box.width, device=body.device, dtype=body.dtype)
    ramp_y = torch.minimum(ys + 1, box.height - ys).clamp(max=feather) / feather
    ramp_x = torch.minimum(xs + 1, box.width - xs).clamp(max=feather) / feather
    mask = (ramp_y[:, None] * ramp_x[None, :])[None, None]
    out = body.clone()
    region = box_region(out, box)
    region.copy_(region * (1 - mask) + face_in_box * mask)
    return out


class LatentImage:
    """A generator with a latent being optimised: w (one layer or all) plus per-layer offsets."""

    def __init__(self, G, w):
        self.G = G
        self.w = w.detach().clone().requires_grad_(True)
        self.delta = torch.zeros([1, G.num_ws, G.w_dim], device=w.device).requires_grad_(True)

    def ws(self):
        w = self.w if self.w.shape[1] == self.G.num_ws else self.w.repeat([1, self.G.num_ws, 1])
        return w + self.delta

    def image(self):
        return self.G.synthesis(self.ws(), noise_mode='const', force_fp32=True)

    def parameters(self):
        return [self.w, self.delta]


class Losses:
    """Upstream's loss terms; ``perceptual(a, b)`` is LPIPS (or None for L1 only)."""

    def __init__(self, perceptual, cfg):
        self.perceptual = perceptual
        self.cfg = cfg

    def _pair(self, a, b, l1_weight, perceptual_weight):
        loss = l1_weight * (a - b).abs().mean()
        if self.perceptual is not None and perceptual_weight > 0:
            loss = loss + perceptual_weight * self.perceptual(a, b).mean()
        return loss

    def coarse(self, face_in_box, body_face, l1, lp):
        small = lambda x: F.interpolate(x, size=(64, 64), mode='area')  # noqa: E731
        return self.cfg.coarse_scale * self._pair(small(face_in_box), small(body_face), l1, lp)

    def border(self, face_in_box, body_face, l1, lp):
        mask = border_mask(face_in_box, self.cfg.border_width)
        return self.cfg.border_scale * self._pair(face_in_box * mask, body_face * mask, l1, lp)

    def body(self, body, ref_body, box, l1, lp):
        mask = outside_box_mask(body, box, padding=box.height // 20)
        return self.cfg.body_scale * self._pair(body * mask, ref_body * mask, l1, lp)

    def face(self, face, ref_face, face_rect, l1, lp):
        mask = 1 - outside_box_mask(face, face_rect, padding=0)
        return self.cfg.face_scale * self._pair(face * mask, ref_face * mask, l1, lp)

    def reg(self, latent, w_mean, weight):
        return self.cfg.reg_scale * weight * (latent.w - w_mean).square().mean()


def default_face_rect(face_G: torch.nn.Module) -> FaceBox:
    """Where an FFHQ-aligned face sits in the face generator's image (upstream detects it; this is its usual place)."""
    h = face_G.img_resolution
    w = h if getattr(face_G.synthesis, 'square', True) else h // 2
    return FaceBox(int(w * 0.22), int(h * 0.25), int(w * 0.78), int(h * 0.85))


def joint_optimize(face_G: torch.nn.Module, body_G: torch.nn.Module, face_w: torch.Tensor, body_w: torch.Tensor,
                   box: FaceBox, perceptual: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
                   cfg: Optional[InsetConfig] = None, face_rect: Optional[FaceBox] = None,
                   relocate: Optional[Callable[[torch.Tensor], Optional[FaceBox]]] = None,
                   on_step: Optional[Callable[..., None]] = None) -> Tuple[LatentImage, LatentImage, FaceBox, list]:
    """Optimise both latents so the face fits the body; returns (face LatentImage, body LatentImage, box, history).

    box: the FaceBox of the face in the body image. relocate: optional ``relocate(body_image) -> FaceBox``
    called every ``interval`` body steps (upstream re-finds the face as the body moves).
    on_step: optional ``on_step(stage, step, body_image, face_in_box, box)`` for frames and progress.
    history: per step (stage, seam L1 on the 8-px border, coarse L1 at 64x64), as floats.
    The generators' weights take no gradient meanwhile (their requires_grad flags are restored).
    """
    with misc.frozen_weights(face_G, body_G):
        return _optimize_latents(face_G, body_G, face_w, body_w, box, perceptual, cfg, face_rect, relocate, on_step)


def _optimize_latents(face_G, body_G, face_w, body_w, box, perceptual, cfg, face_rect, relocate, on_step):
    cfg = cfg or InsetConfig()
    face = LatentImage(face_G, face_w)
    body = LatentImage(body_G, body_w)
    losses = Losses(perceptual, cfg)
    face_rect = face_rect or default_face_rect(face_G)
    with torch.no_grad():
        ref_body, ref_face = body.image(), face.image()
        body_mean = body_G.mapping.w_avg.detach().reshape(1, 1, -1)
    face_opt = torch.optim.Adam(face.parameters(), betas=(0.9, 0.999), lr=cfg.face_lr)
    body_opt = torch.optim.Adam(body.parameters(), betas=(0.9, 0.999), lr=cfg.body_lr)
    history = []

    fixed = {}   # the image of the generator not being optimised this step: it only changes after its own steps

    def image_of(latent, training):
        if training:
            fixed.pop(id(latent), None)
            return latent.image()
        if id(latent) not in fixed:
            with torch.no_grad():
                fixed[id(latent)] = latent.image()
        return fixed[id(latent)]

    def render(training):
        body_image, face_image = image_of(body, training is body), image_of(face, training is face)
        return body_image, face_image, fit_to_box(face_image, box), box_region(body_image, box)

    def record(stage, step, body_image, face_in_box, body_face):
        with torch.no_grad():
            mask = border_mask(face_in_box, cfg.border_width)
            seam = float(((face_in_box - body_face).abs() * mask).sum() / mask.sum())
            coarse = float((F.interpolate(face_in_box, size=(64, 64), mode='area')
                            - F.interpolate(body_face, size=(64, 64), mode='area')).abs().mean())
        history.append((stage, seam, coarse))
        if on_step is not None:
            on_step(stage, step, body_image, face_in_box, box)

    def face_step(lr, weights):
        body_image, face_image, face_in_box, body_face = render(training=face)
        loss = (losses.face(face_image, ref_face, face_rect, 5000, 1.75)
                + losses.coarse(face_in_box, body_face, *weights['coarse'])
                + losses.border(face_in_box, body_face, *weights['border']))
        _step(face_opt, loss, lr)
        return body_image, face_in_box, body_face

    def body_step(lr, reg_weight, find_again):
        nonlocal box
        if find_again and relocate is not None:
            with torch.no_grad():
                found = relocate(body.image())
            if found is not None:
                box = _recentre(box, found, body_G)
        body_image, _, face_in_box, body_face = render(training=body)
        loss = (losses.coarse(face_in_box, body_face, 500, 0.05)
                + losses.border(face_in_box, body_face, 2500, 0)
                + losses.body(body_image, ref_body, box, 9000, 0.1)
                + losses.reg(body, body_mean, reg_weight))
        _step(body_opt, loss, lr)
        return body_image, face_in_box, body_face

    for step in range(cfg.face_steps):   # stage 1: the face learns the body's surroundings
        lr = ramped_lr(cfg.face_lr / 2, step, cfg.face_steps, cfg)
        record('face', step, *face_step(lr, {'coarse': (50, 0.05), 'border': (1000, 0.1)}))
    for step in range(cfg.body_steps):   # stage 2: a body that suits the face
        lr = ramped_lr(cfg.body_lr, step, cfg.body_steps, cfg)
        record('body', step, *body_step(lr, 15000, step % cfg.interval == 0))
    face_done = body_done = 0
    half = max(cfg.joint_steps // 2, 1)
    for step in range(cfg.joint_steps):  # stage 3: take turns
        if (step // cfg.interval) % 2 == 0:
            lr = ramped_lr(cfg.face_lr, face_done, half, cfg)
            record('joint', step, *face_step(lr, {'coarse': (500, 0.05), 'border': (25000, 0)}))
            face_done += 1
        else:
            lr = ramped_lr(cfg.body_lr, body_done, half, cfg)
            record('joint', step, *body_step(lr, 25000, False))
            body_done += 1
    return face, body, box, history


def _step(optimizer, loss, lr):
    for group in optimizer.param_groups:
        group['lr'] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _recentre(box, found, body_G):
    """Keep the box size, move its centre to the newly found face (as upstream does)."""
    cx, cy = (found.x0 + found.x1) // 2, (found.y0 + found.y1) // 2
    moved = FaceBox(cx - box.width // 2, cy - box.height // 2, cx - box.width // 2 + box.width,
                    cy - box.height // 2 + box.height)
    h = body_G.img_resolution
    return moved.clipped(h if getattr(body_G.synthesis, 'square', True) else h // 2, h)
