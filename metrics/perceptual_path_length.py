"""Perceptual Path Length (Karras et al., "A Style-Based Generator Architecture for
Generative Adversarial Networks"), computed as NVIDIA's metrics do: the LPIPS
(VGG16) distance between images at t and t + epsilon along random interpolation
paths in Z (slerp) or W (lerp), divided by epsilon^2, averaged after dropping the
lowest and highest percent.

2:1 images work as they are (ppl2_wend takes the full image); the centre crop of
the older ppl_* variants was made for square face images and is refused for others.
"""

import copy

import numpy as np
import torch

from . import detector_files
from . import metric_utils

VGG16_URL = detector_files.VGG16_URL


def slerp(a, b, t):
    """Spherical interpolation of batches of vectors."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    d = a * torch.cos(p) + c * torch.sin(p)
    return d / d.norm(dim=-1, keepdim=True)


class PPLSampler(torch.nn.Module):
    def __init__(self, G, G_kwargs, epsilon, space, sampling, crop, vgg16):
        assert space in ['z', 'w']
        assert sampling in ['full', 'end']
        super().__init__()
        self.G = copy.deepcopy(G)
        self.G_kwargs = G_kwargs
        self.epsilon = epsilon
        self.space = space
        self.sampling = sampling
        self.crop = crop
        self.vgg16 = copy.deepcopy(vgg16)

    def forward(self, c):
        # Random latents and interpolation positions (t = 0 for 'end').
        t = torch.rand([c.shape[0]], device=c.device) * (1 if self.sampling == 'full' else 0)
        z0, z1 = torch.randn([c.shape[0] * 2, self.G.z_dim], device=c.device).chunk(2)

        if self.space == 'w':
            w0, w1 = self.G.mapping(z=torch.cat([z0, z1]), c=torch.cat([c, c])).chunk(2)
            wt0 = w0.lerp(w1, t.unsqueeze(1).unsqueeze(2))
            wt1 = w0.lerp(w1, t.unsqueeze(1).unsqueeze(2) + self.epsilon)
        else:
            zt0 = slerp(z0, z1, t.unsqueeze(1))
            zt1 = slerp(z0, z1, t.unsqueeze(1) + self.epsilon)
            wt0, wt1 = self.G.mapping(z=torch.cat([zt0, zt1]), c=torch.cat([c, c])).chunk(2)

        # Fresh constant noise for each pair: both images of a pair share it.
        for name, buf in self.G.named_buffers():
            if name.endswith('.noise_const'):
                buf.copy_(torch.randn_like(buf))

        img = self.G.synthesis(ws=torch.cat([wt0, wt1]), noise_mode='const', force_fp32=True, **self.G_kwargs)

        if self.crop:  # Face crop of square images.
            c = img.shape[2] // 8
            img = img[:, :, c * 3: c * 7, c * 2: c * 6]

        # Downsample to 256 pixels high (256x256, or 256x128 for 2:1 images).
        factor = self.G.img_resolution // 256
        if factor > 1:
            img = img.reshape([-1, img.shape[1], img.shape[2] // factor, factor, img.shape[3] // factor,
                               factor]).mean([3, 5])

        img = (img + 1) * (255 / 2)
        if self.G.img_channels == 1:
            img = img.repeat([1, 3, 1, 1])

        lpips_t0, lpips_t1 = self.vgg16(img, resize_images=False, return_lpips=True).chunk(2)
        return (lpips_t0 - lpips_t1).square().sum(1) / self.epsilon ** 2


def trimmed_mean(dist):
    """Mean of the values between the 1st and 99th percentiles (NVIDIA's outlier rejection)."""
    lo = np.percentile(dist, 1, method='lower')
    hi = np.percentile(dist, 99, method='higher')
    return float(np.extract(np.logical_and(dist >= lo, dist <= hi), dist).mean())


def _image_is_square(G):
    return bool(getattr(G, 'square', True))  # This project's networks say; NVIDIA's are square.


def compute_ppl(opts, num_samples, epsilon, space, sampling, crop, batch_size):
    if crop and not _image_is_square(opts.G):
        raise metric_utils.MetricError('this PPL variant crops the centre of square face images; '
                                       'use ppl2_wend for 2:1 images')
    vgg16 = metric_utils.get_feature_detector(VGG16_URL, device=opts.device, num_gpus=opts.num_gpus,
                                              rank=opts.rank, verbose=opts.progress.verbose,
                                              detectors=opts.detectors, allow_download=opts.allow_download)

    sampler = PPLSampler(G=opts.G, G_kwargs=opts.G_kwargs, epsilon=epsilon, space=space, sampling=sampling,
                         crop=crop, vgg16=vgg16)
    sampler.eval().requires_grad_(False).to(opts.device)
    c_iter = metric_utils.iterate_random_labels(opts=opts, batch_size=batch_size)

    dist = []
    progress = opts.progress.sub(tag='ppl sampling', num_items=num_samples)
    with torch.no_grad():
        for batch_start in range(0, num_samples, batch_size * opts.num_gpus):
            progress.update(batch_start)
            x = sampler(next(c_iter))
            for src in range(opts.num_gpus):
                y = x.clone()
                if opts.num_gpus > 1:
                    torch.distributed.broadcast(y, src=src)
                dist.append(y)
    progress.update(num_samples)

    if opts.rank != 0:
        return float('nan')
    return trimmed_mean(torch.cat(dist)[:num_samples].cpu().numpy())
