"""Point dragging (DragGAN, Pan et al. 2023) on this project's StyleGAN2/3 networks, 2:1 or square.

One step on the code w+:

1. synthesise the image and read one intermediate feature map (a forward hook on a
   synthesis block or layer, :class:`FeatureTap`);
2. point tracking: each handle moves to the pixel of the (2*r2+1)^2 patch around it whose
   feature is nearest (L1) to the handle's feature in the first image;
3. motion supervision: over the pixels q of a disk of radius r1 around each handle, the
   feature at q + d (d the unit step toward the target) is pulled toward the detached
   feature at q, which shifts what lies at the handle one pixel toward the target; with a
   mask, the features outside the region allowed to change are held to the first image's;
4. Adam on the first ``edit_layers`` layers of w+; the others keep their values.

It ends when every handle is within ``stop_distance`` pixels of its target, after ``steps``
updates, or when ``should_stop()`` says so. Points are (x, y) in image pixels, so a 2:1
network's handles lie in a W x H = H/2 x H frame (DragGAN's own code assumed square images).

Features are sampled at image coordinates straight from the feature map (bilinear): at whole
pixels these are the values of the map resized to the image, without holding an image-sized
map (a 1024x512 network's 256-channel map at full size would take half a gigabyte per copy).
"""

import contextlib
import dataclasses
import math
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from dnnlib.errors import InputError
from stylegan_human.sampling import synthesize, to_uint8
from torch_utils import misc

Point = Tuple[float, float]   # (x, y) in image pixels
_SYNTHESIS_KW = dict(noise_mode='const', force_fp32=True)


@dataclasses.dataclass
class DragConfig:
    """DragGAN's settings; the radii and the stop distance scale with the image height (theirs are for 512)."""
    steps: int = 300               # at most this many updates
    lr: float = 2e-3               # Adam's learning rate
    edit_layers: int = 6           # the first w+ layers that move
    r1: Optional[float] = None     # motion-supervision disk radius (px); None: 3 per 512 of height, at least 2
    r2: Optional[float] = None     # tracking patch radius (px); None: 12 per 512 of height, at least 3
    stop_distance: Optional[float] = None   # px; None: 2 per 512 of height, at least 2
    mask_weight: float = 10.0      # lambda of the term that holds the region outside the mask
    feature: Optional[str] = None  # synthesis block / layer whose output is F; None: default_feature(G)

    def resolved(self, height: int) -> 'DragConfig':
        """A copy with every None replaced by its value for images ``height`` pixels high."""
        scale = height / 512
        return dataclasses.replace(self, r1=self.r1 if self.r1 is not None else max(3 * scale, 2.0),
                                   r2=self.r2 if self.r2 is not None else max(12 * scale, 3.0),
                                   stop_distance=(self.stop_distance if self.stop_distance is not None
                                                  else max(2 * scale, 2.0)))


@dataclasses.dataclass
class DragStep:
    """What the run looks like at one step, before that step's update (the callback's argument)."""
    step: int
    image: np.ndarray            # uint8 [H, W, 3]
    points: List[Point]          # the handles where tracking found them
    targets: List[Point]
    distances: List[float]       # each handle's distance to its target, px


@dataclasses.dataclass
class DragResult:
    start_image: np.ndarray      # uint8 [H, W, 3], rendered as generate.py renders the start code
    end_image: np.ndarray        # uint8 [H, W, 3], rendered as generate.py renders ``w``
    w: torch.Tensor              # float32 [1, num_ws, w_dim] on the CPU: the final code
    points: List[List[Point]]    # the tracked handles at every step (points[0]: the start)
    distances: List[float]       # each handle's final distance to its target
    steps: int                   # updates made
    reason: str                  # 'reached', 'steps' or 'stopped'


# ----------------------------------------------------------------------------
# Features


def image_size(G: torch.nn.Module) -> Tuple[int, int]:
    """(height, width) of the network's images."""
    height = G.img_resolution
    return height, (height if getattr(G.synthesis, 'square', False) else height // 2)


def feature_names(G: torch.nn.Module) -> List[str]:
    """The synthesis blocks (StyleGAN2) or layers (StyleGAN3) whose output can serve as F."""
    synthesis = G.synthesis
    if hasattr(synthesis, 'block_resolutions'):
        return [f'b{res}' for res in synthesis.block_resolutions]
    if hasattr(synthesis, 'layer_names'):
        return list(synthesis.layer_names)
    raise InputError('dragging needs a StyleGAN2 or StyleGAN3 network')


def default_feature(G: torch.nn.Module) -> str:
    """DragGAN's choice carried over: StyleGAN2's 128 block (the 6th; below the last block on
    networks of 128 and less); on StyleGAN3 the last layer sampled at that rate or less."""
    names = feature_names(G)
    limit = min(128, G.img_resolution // 2)
    if names[0].startswith('b'):
        return f'b{limit}'
    rated = [n for n in names if getattr(G.synthesis, n).out_sampling_rate <= limit]
    return rated[-1] if rated else names[0]


class FeatureTap:
    """The output of one synthesis block or layer at each forward pass, and where image pixels fall on it.

    A StyleGAN3 layer's map holds margins around the image (``margin_size`` samples at top and
    bottom, half that at the sides of a 2:1 map); :meth:`sample` skips them.
    """

    def __init__(self, G: torch.nn.Module, name: str):
        names = feature_names(G)
        if name not in names:
            raise InputError(f'no synthesis block or layer {name!r}; this network has {", ".join(names)}',
                             param='feature')
        self.name = name
        self.module = getattr(G.synthesis, name)
        self.height, self.width = image_size(G)
        self.square = getattr(G.synthesis, 'square', False)
        self.value: Optional[torch.Tensor] = None

    @contextlib.contextmanager
    def attached(self) -> Iterator['FeatureTap']:
        def keep(module, inputs, output):
            self.value = (output[0] if isinstance(output, tuple) else output).float()
        handle = self.module.register_forward_hook(keep)
        try:
            yield self
        finally:
            handle.remove()
            self.value = None

    def region(self, fmap: torch.Tensor) -> Tuple[float, float, float, float]:
        """(x0, y0, width, height) of the image on the map, in map samples."""
        rows, cols = fmap.shape[2], fmap.shape[3]
        rate = getattr(self.module, 'out_sampling_rate', None)
        if rate is None:       # StyleGAN2: the map is the image
            return 0.0, 0.0, float(cols), float(rows)
        rate_h = float(rate)
        rate_w = rate_h if self.square else rate_h / 2
        return (cols - rate_w) / 2, (rows - rate_h) / 2, rate_w, rate_h

    def sample(self, fmap: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """Bilinear features [C, N] at image points ``xy`` [N, 2] (x, y), from the map [1, C, h, w]."""
        x0, y0, region_w, region_h = self.region(fmap)
        fx = x0 + (xy[:, 0] + 0.5) * (region_w / self.width) - 0.5
        fy = y0 + (xy[:, 1] + 0.5) * (region_h / self.height) - 0.5
        rows, cols = fmap.shape[2], fmap.shape[3]
        grid = torch.stack([fx / max(cols - 1, 1) * 2 - 1, fy / max(rows - 1, 1) * 2 - 1], dim=-1)
        out = F.grid_sample(fmap, grid.view(1, 1, -1, 2).to(fmap.dtype), mode='bilinear', padding_mode='border',
                            align_corners=True)
        return out[0, :, 0]

    def image_part(self, fmap: torch.Tensor) -> torch.Tensor:
        """The map without StyleGAN3's margins: [1, C, h', w'] covering exactly the image."""
        x0, y0, region_w, region_h = self.region(fmap)
        top, left = int(round(y0)), int(round(x0))
        return fmap[:, :, top:top + int(round(region_h)), left:left + int(round(region_w))]


# ----------------------------------------------------------------------------
# The two halves of a step


def track_points(tap: FeatureTap, fmap: torch.Tensor, points: torch.Tensor, references: torch.Tensor,
                 radius: float) -> torch.Tensor:
    """Each point [N, 2] moved to the pixel of its patch whose feature is nearest (L1) to its reference [C, N]."""
    r = max(int(round(radius)), 1)
    moved = []
    for i, (x, y) in enumerate(points.round().long().tolist()):
        xs = torch.arange(max(x - r, 0), min(x + r, tap.width - 1) + 1, device=fmap.device)
        ys = torch.arange(max(y - r, 0), min(y + r, tap.height - 1) + 1, device=fmap.device)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        candidates = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1).float()
        cost = (tap.sample(fmap, candidates) - references[:, i:i + 1]).abs().sum(dim=0)
        moved.append(candidates[int(cost.argmin())])
    return torch.stack(moved)


def disk_offsets(radius: float, device: torch.device) -> torch.Tensor:
    """Whole-pixel offsets [K, 2] strictly inside a disk of ``radius`` (the centre always included)."""
    r = int(math.ceil(radius))
    grid = torch.stack(torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing='xy'), dim=-1)
    grid = grid.reshape(-1, 2).float()
    inside = (grid.square().sum(dim=1) < radius ** 2) | (grid.abs().sum(dim=1) == 0)
    return grid[inside].to(device)


def motion_loss(tap: FeatureTap, fmap: torch.Tensor, points: torch.Tensor, targets: torch.Tensor,
                radius: float, done_within: float) -> torch.Tensor:
    """Sum over the handles not yet within ``done_within`` of their target of
    mean |F(q + d) - sg(F(q))| over the disk q around the handle."""
    loss = fmap.new_zeros(())
    offsets = disk_offsets(radius, fmap.device)
    limit = torch.tensor([tap.width - 1, tap.height - 1], dtype=torch.float32, device=fmap.device)
    for point, target in zip(points, targets):
        step = target - point
        length = float(step.norm())
        if length <= done_within:
            continue
        q = torch.minimum(torch.clamp(point + offsets, min=0), limit)
        here = tap.sample(fmap, q).detach()
        ahead = tap.sample(fmap, q + step / length)
        loss = loss + (ahead - here).abs().mean()
    return loss


def mask_loss(tap: FeatureTap, fmap: torch.Tensor, fmap0: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """mean |F - F0| over the map, weighted by ``keep`` [H, W] (1 outside the region allowed to change)."""
    part = tap.image_part(fmap)
    weight = F.adaptive_avg_pool2d(keep[None, None], part.shape[2:])
    return ((part - tap.image_part(fmap0)).abs() * weight).mean()


# ----------------------------------------------------------------------------
# A run


def render(G: torch.nn.Module, w: torch.Tensor) -> np.ndarray:
    """The uint8 [H, W, 3] image of one code, exactly as ``generate.py --projected-w`` renders it."""
    with torch.no_grad():
        return to_uint8(synthesize(G, w, **_SYNTHESIS_KW))[0].cpu().numpy()


def as_w_plus(G: torch.nn.Module, w: torch.Tensor) -> torch.Tensor:
    """A code [1, num_ws, w_dim] from a w [w_dim], [1, w_dim], [1, 1, w_dim] or a w+ [num_ws, w_dim]."""
    w = torch.as_tensor(w).detach().float()
    if w.ndim == 1:
        w = w[None, None]
    elif w.ndim == 2:
        w = w[None] if w.shape[0] == G.num_ws else w[:, None]
    if w.ndim != 3 or w.shape[0] != 1 or w.shape[2] != G.w_dim or w.shape[1] not in (1, G.num_ws):
        raise InputError(f'a code of shape {list(w.shape)}; this network takes [1, {G.num_ws}, {G.w_dim}]', param='w')
    return w.expand(1, G.num_ws, G.w_dim).contiguous()


def check_points(points: Sequence[Point], height: int, width: int, what: str, param: str) -> None:
    """Every point must lie on the image: a :class:`InputError` naming the first that does not."""
    for x, y in points:
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise InputError(f'{what} {_fmt(x)},{_fmt(y)} lies outside the {width}x{height} image '
                             f'(x 0-{width - 1}, y 0-{height - 1})', param=param)


def _fmt(value: float) -> str:
    return f'{value:g}'


def drag(G: torch.nn.Module, w: torch.Tensor, handles: Sequence[Point], targets: Sequence[Point],
         config: Optional[DragConfig] = None, mask: Optional[np.ndarray] = None,
         on_step: Optional[Callable[[DragStep], None]] = None,
         should_stop: Optional[Callable[[], bool]] = None) -> DragResult:
    """Drag ``handles`` to ``targets`` (pixel (x, y) pairs) on the image of ``w``.

    ``mask`` (H x W, 1 where the image may change) adds DragGAN's term holding the rest.
    ``on_step`` sees every step before its update (images for a video or a live view);
    ``should_stop`` is asked after each step and ends the run early when it returns True.
    Memory does not grow with the number of steps (only the points are kept).
    """
    config = (config or DragConfig()).resolved(G.img_resolution)
    height, width = image_size(G)
    if len(handles) != len(targets) or not handles:
        raise InputError(f'{len(handles)} handle(s) and {len(targets)} target(s): give one target per handle',
                         param='targets')
    check_points(handles, height, width, 'handle', 'handles')
    check_points(targets, height, width, 'target', 'targets')
    if config.steps < 0:
        raise InputError(f'steps {config.steps}: give 0 or more', param='steps')
    if not 1 <= config.edit_layers <= G.num_ws:
        raise InputError(f'edit_layers {config.edit_layers}: this network has {G.num_ws} w+ layers',
                         param='edit_layers')
    device = next(G.parameters()).device
    tap = FeatureTap(G, config.feature or default_feature(G))
    w = as_w_plus(G, w).to(device)
    keep = None
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != (height, width):
            raise InputError(f'a mask of shape {list(mask.shape)}; the images are {height}x{width}', param='mask')
        keep = torch.from_numpy(1 - np.clip(mask, 0, 1)).to(device)
    start_image = render(G, w)

    head = w[:, :config.edit_layers].clone().requires_grad_(True)
    tail = w[:, config.edit_layers:]
    optimizer = torch.optim.Adam([head], lr=config.lr)
    points = torch.tensor(handles, dtype=torch.float32, device=device).round()
    goal = torch.tensor(targets, dtype=torch.float32, device=device)
    references = fmap0 = None
    history, reason, step = [], 'steps', 0
    with misc.frozen_weights(G), tap.attached():
        for step in range(config.steps + 1):
            image = G.synthesis(torch.cat([head, tail], dim=1), **_SYNTHESIS_KW)
            fmap = tap.value
            with torch.no_grad():
                if references is None:
                    references = tap.sample(fmap, points)
                    fmap0 = fmap.detach() if keep is not None else None
                else:
                    points = track_points(tap, fmap, points, references, config.r2)
            distances = (goal - points).norm(dim=1).tolist()
            history.append([(float(x), float(y)) for x, y in points.tolist()])
            if on_step is not None:
                on_step(DragStep(step, to_uint8(image.detach())[0].cpu().numpy(), history[-1], list(targets),
                                 distances))
            if max(distances) <= config.stop_distance:
                reason = 'reached'
                break
            if step == config.steps:
                break
            if should_stop is not None and should_stop():
                reason = 'stopped'
                break
            loss = motion_loss(tap, fmap, points, goal, config.r1, config.stop_distance)
            if keep is not None:
                loss = loss + config.mask_weight * mask_loss(tap, fmap, fmap0, keep)
            optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:
                loss.backward()
                optimizer.step()
            del image, fmap, loss   # the step's graph goes now, not when the next step overwrites it
            tap.value = None
    final = torch.cat([head, tail], dim=1).detach()
    return DragResult(start_image=start_image, end_image=render(G, final), w=final.cpu(), points=history,
                      distances=distances, steps=step, reason=reason)
