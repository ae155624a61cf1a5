"""Pivotal tuning: fine-tune the generator so that its image at the pivot w matches the photo.

Loss = L2 (mean squared error in [-1, 1]) + LPIPS between the generated image at
the pivot and the target, optionally plus the locality regulariser of the PTI
paper (keep the tuned generator's images unchanged at w codes sampled around
the pivot). A single image stops once LPIPS falls to the threshold.

The loop does not wait on the device at every step: the LPIPS values are kept
on the device and read every ``check_every`` steps, so a run may go up to
``check_every - 1`` steps past the step that reached the threshold.
"""

import copy
import dataclasses
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from torch_utils.ops import modulated_conv_grad
from torch_utils.storage_order_adam import StorageOrderAdam


@dataclasses.dataclass
class TuningConfig:
    steps: int = 350                  # upstream max_pti_steps
    learning_rate: float = 5e-4       # upstream pti_learning_rate
    lpips_threshold: float = 0.04     # upstream LPIPS_value_threshold
    l2_lambda: float = 1.0            # upstream pt_l2_lambda
    lpips_lambda: float = 1.0         # upstream pt_lpips_lambda
    locality: bool = False            # upstream use_locality_regularization
    locality_l2_lambda: float = 0.1
    locality_lpips_lambda: float = 0.1
    locality_alpha: float = 30.0
    locality_samples: int = 1
    locality_interval: int = 1
    locality_truncation: float = 0.5
    check_every: int = 10


def synthesize(G: torch.nn.Module, w: torch.Tensor) -> torch.Tensor:
    return G.synthesis(w, noise_mode='const', force_fp32=True)


def reconstruction_loss(generated: torch.Tensor, target: torch.Tensor,
                        lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        cfg: TuningConfig) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, l2, lpips) for images in [-1, 1]."""
    l2 = (generated - target).square().mean()
    perceptual = lpips(generated, target).mean()
    return cfg.l2_lambda * l2 + cfg.lpips_lambda * perceptual, l2, perceptual


class LocalityRegularizer:
    """PTI's "ball holder": the tuned generator must keep its images at codes pushed from the pivot."""

    def __init__(self, original_G, lpips, cfg, seed, device):
        self.original = original_G
        self.lpips = lpips
        self.cfg = cfg
        self.rng = np.random.RandomState(seed)
        self.device = device

    def nearby_codes(self, pivot):
        """Codes at distance ``alpha`` from the pivot, toward random (truncated) samples."""
        z = torch.from_numpy(self.rng.randn(self.cfg.locality_samples, self.original.z_dim)).to(self.device,
                                                                                                 torch.float32)
        c = torch.zeros([z.shape[0], self.original.c_dim], device=self.device)
        with torch.no_grad():
            samples = self.original.mapping(z, c, truncation_psi=self.cfg.locality_truncation)
        codes = []
        for w in samples:
            direction = w.unsqueeze(0) - pivot
            codes.append(pivot + self.cfg.locality_alpha * direction / direction.norm(p=2))
        return codes

    def loss(self, tuned_G, pivot):
        total = 0.0
        codes = self.nearby_codes(pivot)
        for w in codes:
            new = tuned_G.synthesis(w, noise_mode='none', force_fp32=True)
            with torch.no_grad():
                old = self.original.synthesis(w, noise_mode='none', force_fp32=True)
            if self.cfg.locality_l2_lambda > 0:
                total = total + self.cfg.locality_l2_lambda * (new - old).square().mean()
            if self.cfg.locality_lpips_lambda > 0:
                total = total + self.cfg.locality_lpips_lambda * self.lpips(old, new).mean()
        return total / len(codes)


def tune_generator(G: torch.nn.Module, pivots: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                   lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], cfg: Optional[TuningConfig] = None,
                   seed: int = 0, device: Union[str, torch.device] = 'cpu',
                   progress: Optional[Callable[[int, torch.Tensor], None]] = None,
                   stop: Optional[Callable[[int], bool]] = None) -> Tuple[torch.nn.Module, dict]:
    """Fine-tune a copy of ``G`` so that ``G.synthesis(pivots[i]) ~ targets[i]``.

    pivots: list of w+ [1, num_ws, w_dim]; targets: list of [1, 3, H, W] in [-1, 1].
    One pair: single-image PTI with the LPIPS early stop. Several: one generator
    for all of them (upstream's multi-id coach), every step visiting each image.
    progress: optional callable ``(step, lpips_tensor)`` every ``check_every`` steps.
    stop: optional callable ``(steps_done) -> bool`` asked before every step (it reads nothing
        from the device); True ends the tuning there with the generator tuned so far.
    Returns (tuned generator, dict with the 'steps' done and whether ``stop`` ended it, 'stopped').
    """
    cfg = cfg or TuningConfig()
    device = torch.device(device)
    original = copy.deepcopy(G).eval().requires_grad_(False).to(device).float()
    tuned = copy.deepcopy(G).to(device).float().requires_grad_(True)
    if device.type == 'cpu':
        # Weights laid out as the CPU convolutions read them are never copied per step, and
        # Adam then steps over each parameter's memory as it lies.
        modulated_conv_grad.lay_out_for_gradients(tuned)
        optimizer = StorageOrderAdam(tuned.parameters(), lr=cfg.learning_rate)
    else:
        optimizer = torch.optim.Adam(tuned.parameters(), lr=cfg.learning_rate)
    regularizer = LocalityRegularizer(original, lpips, cfg, seed, device) if cfg.locality else None
    pivots = [p.to(device, torch.float32).detach() for p in pivots]
    targets = [t.to(device, torch.float32) for t in targets]
    single = len(pivots) == 1

    history = torch.full((cfg.steps, len(pivots)), float('inf'), device=device)
    steps_done, stopped = 0, False
    for step in range(cfg.steps):
        if stop is not None and stop(step):
            stopped = True
            break
        for index, (pivot, target) in enumerate(zip(pivots, targets)):
            loss, _, perceptual = reconstruction_loss(synthesize(tuned, pivot), target, lpips, cfg)
            history[step, index] = perceptual.detach()
            if regularizer is not None and step % cfg.locality_interval == 0:
                loss = loss + regularizer.loss(tuned, pivot)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        steps_done = step + 1
        if (step + 1) % cfg.check_every == 0 or step + 1 == cfg.steps:
            recent = history[max(0, step + 1 - cfg.check_every):step + 1]
            if progress is not None:
                progress(step + 1, recent[-1].mean())
            if single and bool((recent <= cfg.lpips_threshold).any()):
                break
    tuned.eval().requires_grad_(False)
    for param in tuned.parameters():   # plain layouts again (Module.to(memory_format=...) leaves some as they are)
        param.data = param.data.contiguous()
    return tuned, {'steps': steps_done, 'stopped': stopped}
