"""W projection: find the single w whose image matches a target, as NVIDIA's projector does.

Adam on w (started at the mean w) and on the generator's noise maps, a
perceptual distance from the VGG16 feature network, a learning-rate ramp up
and cosine ramp down, w jitter that fades out, and a penalty that keeps the
noise maps noise-like. Differences from upstream, on purpose: images larger
than 256 high are shrunk keeping their 1:2 shape (upstream squashes them to
256x256), and the loop never waits on the device (the loss is read every
``log_every`` steps only).
"""

import copy
import dataclasses
from typing import Callable, Iterable, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

PERCEPTUAL_HEIGHT = 256  # VGG was trained near 224 px; larger targets are shrunk to this height


@dataclasses.dataclass
class ProjectionConfig:
    steps: int = 450                       # upstream PTI first_inv_steps
    learning_rate: float = 8e-3            # peak of the schedule (upstream PTI first_inv_lr)
    w_avg_samples: int = 600               # upstream PTI passes 600 to NVIDIA's projector
    w_stats_seed: int = 123                # NVIDIA's projector samples z with RandomState(123)
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    log_every: int = 10


def w_statistics(G: torch.nn.Module, num_samples: int, seed: int,
                 device: Union[str, torch.device]) -> Tuple[torch.Tensor, float]:
    """Mean w [1, 1, w_dim] and the RMS distance of samples from it (NVIDIA's w_std)."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(num_samples, G.z_dim)).to(device, torch.float32)
    c = torch.zeros([num_samples, G.c_dim], device=device)
    with torch.no_grad():
        w = G.mapping(z, c)[:, :1, :].double()                 # [N, 1, C]
    w_avg = w.mean(dim=0, keepdim=True)
    w_std = float(((w - w_avg).square().sum() / num_samples).sqrt())
    return w_avg.float(), w_std


def lr_ramp(t: float, rampup_length: float, rampdown_length: float) -> float:
    """NVIDIA's learning-rate factor at progress ``t`` in [0, 1]: linear ramp up, cosine ramp down."""
    ramp = min(1.0, (1.0 - t) / rampdown_length)
    ramp = 0.5 - 0.5 * np.cos(ramp * np.pi)
    return ramp * min(1.0, t / rampup_length)


def learning_rate(step: int, cfg: ProjectionConfig) -> float:
    """The projection's rate at ``step``: up over the first 5%, down over the last 25%."""
    return cfg.learning_rate * lr_ramp(step / cfg.steps, cfg.lr_rampup_length, cfg.lr_rampdown_length)


def perceptual_input(images: torch.Tensor) -> torch.Tensor:
    """Generator-range images [-1, 1] -> [0, 255], shrunk to PERCEPTUAL_HEIGHT if taller."""
    images = (images + 1) * (255 / 2)
    h, w = images.shape[2:]
    if h > PERCEPTUAL_HEIGHT:
        images = F.interpolate(images, size=(PERCEPTUAL_HEIGHT, max(1, round(w * PERCEPTUAL_HEIGHT / h))),
                               mode='area')
    return images


def noise_regularization(noise_maps: Iterable[torch.Tensor]) -> Union[torch.Tensor, float]:
    """Sum over scales of squared autocorrelations at a one-pixel shift: zero for white noise."""
    loss = 0.0
    for noise in noise_maps:
        noise = noise[None, None, :, :]
        while True:
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return loss


def project_w(G: torch.nn.Module, target: torch.Tensor, features: Callable[[torch.Tensor], torch.Tensor],
              cfg: Optional[ProjectionConfig] = None, seed: int = 0, device: Union[str, torch.device] = 'cpu',
              progress: Optional[Callable[[int, torch.Tensor], None]] = None,
              on_step: Optional[Callable[[int, torch.Tensor], None]] = None,
              stop: Optional[Callable[[int], bool]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Project ``target`` ([1, 3, H, W] in [-1, 1], H x W = the generator's size) into W.

    features: ``features(images_0_255) -> tensor`` perceptual features
        (NVIDIA's VGG16 in its LPIPS mode; see pti.vgg16_features).
    progress: optional callable ``(step, loss_tensor)`` called every ``cfg.log_every`` steps.
    on_step: optional callable ``(step, w)`` called after every step with the w reached
        ([1, 1, w_dim], without the jitter; NVIDIA's projector records these for its video).
    stop: optional callable ``(steps_done) -> bool`` asked before every step (it reads nothing
        from the device); True ends the projection there with the w reached so far.
    Returns the pivot w+ [1, num_ws, w_dim] (the same w in every layer) and the loss history
    (one value per step done).
    """
    cfg = cfg or ProjectionConfig()
    device = torch.device(device)
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device).float()
    w_avg, w_std = w_statistics(G, cfg.w_avg_samples, cfg.w_stats_seed, device)
    rng = torch.Generator(device=device).manual_seed(seed)

    noise_maps = [buf for name, buf in G.synthesis.named_buffers() if 'noise_const' in name]
    for buf in noise_maps:
        buf.copy_(torch.randn(buf.shape, generator=rng, device=device))
        buf.requires_grad_(True)
    w_opt = w_avg.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt] + noise_maps, betas=(0.9, 0.999), lr=cfg.learning_rate)

    with torch.no_grad():
        target_features = features(perceptual_input(target.to(device, torch.float32)))
    losses = torch.zeros(cfg.steps, device=device)
    steps_done = 0
    for step in range(cfg.steps):
        if stop is not None and stop(step):
            break
        t = step / cfg.steps
        w_noise_scale = w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(step, cfg)

        w_noise = torch.randn(w_opt.shape, generator=rng, device=device) * w_noise_scale
        ws = (w_opt + w_noise).repeat([1, G.num_ws, 1])
        synth = G.synthesis(ws, noise_mode='const', force_fp32=True)
        dist = (target_features - features(perceptual_input(synth))).square().sum()
        loss = dist + noise_regularization(noise_maps) * cfg.regularize_noise_weight

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[step] = dist.detach()
        with torch.no_grad():  # keep the noise maps at zero mean, unit variance
            for buf in noise_maps:
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        if on_step is not None:
            on_step(step + 1, w_opt.detach().clone())
        steps_done = step + 1
        if progress is not None and (step + 1) % cfg.log_every == 0:
            progress(step + 1, losses[step])
    return w_opt.detach().repeat([1, G.num_ws, 1]), losses[:steps_done].detach()
