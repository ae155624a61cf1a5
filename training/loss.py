"""GAN losses for training: the StyleGAN2 loss with NVIDIA's StyleGAN3 options.

:class:`StyleGAN2Loss` has the constructor and ``accumulate_gradients`` of
NVIDIA's ``training.loss.StyleGAN2Loss`` (StyleGAN3 code base), so configs and
training loops written for it work unchanged:

* non-saturating logistic loss for G and D;
* R1 gradient penalty on real images (``r1_gamma``), run lazily in the ``Dreg``
  phase or together with the main loss in ``Dboth``;
* path-length regularisation of G (``pl_weight``), on a batch shrunk by
  ``pl_batch_shrink``, against a running mean ``pl_mean`` that moves by ``pl_decay``;
* style mixing with probability ``style_mixing_prob`` at a random layer cutoff;
* a Gaussian blur of every image D sees, ``blur_init_sigma`` pixels at first and
  fading linearly to none over ``blur_fade_kimg`` (StyleGAN3's configs use it).

Every statistic goes through ``torch_utils.training_stats`` under upstream's names
(``Loss/scores/fake``, ``Loss/signs/real``, ``Loss/G/loss``, ``Loss/r1_penalty``, ...),
which the training loop's ADA heuristic and logs read.
"""

import numpy as np
import torch

from torch_utils import training_stats
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import upfirdn2d

PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')


class Loss:
    """Interface the training loop drives: one call per phase and per batch_gpu chunk."""

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        raise NotImplementedError()


def blur_kernel(sigma, device=None):
    """1-D Gaussian-like kernel, base-2 falloff, radius floor(3 sigma); None when that radius is 0."""
    radius = int(np.floor(sigma * 3))
    if radius <= 0:
        return None
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp2(-(taps / sigma).square())
    return kernel / kernel.sum()


def blur_sigma_at(cur_nimg, blur_init_sigma, blur_fade_kimg):
    """Blur strength after ``cur_nimg`` images: linear fade from the initial sigma to 0."""
    if blur_fade_kimg <= 0:
        return 0
    remaining = max(1 - cur_nimg / (blur_fade_kimg * 1e3), 0)
    return remaining * blur_init_sigma


class StyleGAN2Loss(Loss):
    def __init__(self, device, G, D, augment_pipe=None, r1_gamma=10, style_mixing_prob=0, pl_weight=0,
                 pl_batch_shrink=2, pl_decay=0.01, pl_no_weight_grad=False, blur_init_sigma=0, blur_fade_kimg=0):
        super().__init__()
        self.device = device
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_no_weight_grad = pl_no_weight_grad
        self.pl_mean = torch.zeros([], device=device)  # Running mean of path lengths.
        self.blur_init_sigma = blur_init_sigma
        self.blur_fade_kimg = blur_fade_kimg

    # ------------------------------------------------------------------------
    # Network evaluation.

    def run_G(self, z, c, update_emas=False):
        """z, c -> (images, ws), with style mixing when enabled."""
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            ws = self._mix_styles(ws, z, c)
        img = self.G.synthesis(ws, update_emas=update_emas)
        return img, ws

    def _mix_styles(self, ws, z, c):
        """With probability style_mixing_prob, take the ws from a random cutoff on from another z."""
        num_ws = ws.shape[1]
        if num_ws < 2 or float(torch.rand([], device=ws.device)) >= self.style_mixing_prob:
            return ws
        cutoff = int(torch.randint(1, num_ws, [], device=ws.device))
        other = self.G.mapping(torch.randn_like(z), c, update_emas=False)
        return torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)

    def run_D(self, img, c, blur_sigma=0, update_emas=False):
        """Images (blurred, then augmented) -> logits."""
        kernel = blur_kernel(blur_sigma, device=img.device)
        if kernel is not None:
            img = upfirdn2d.filter2d(img, kernel)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c, update_emas=update_emas)

    # ------------------------------------------------------------------------
    # Phases.

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        """Add this chunk's gradients for ``phase`` (scaled by ``gain``) to the module's .grad."""
        assert phase in PHASES, phase
        phase = self._effective_phase(phase)
        blur_sigma = blur_sigma_at(cur_nimg, self.blur_init_sigma, self.blur_fade_kimg)

        if phase in ('Gmain', 'Gboth'):
            self._generator_main(gen_z, gen_c, gain, blur_sigma)
        if phase in ('Greg', 'Gboth'):
            self._path_length_reg(gen_z, gen_c, gain)
        loss_Dgen = 0
        if phase in ('Dmain', 'Dboth'):
            loss_Dgen = self._discriminator_fakes(gen_z, gen_c, gain, blur_sigma)
        if phase in ('Dmain', 'Dreg', 'Dboth'):
            self._discriminator_reals(phase, real_img, real_c, gain, blur_sigma, loss_Dgen)

    def _effective_phase(self, phase):
        """A regulariser with zero weight is skipped: its phase shrinks to the main loss or nothing."""
        if self.pl_weight == 0:
            phase = {'Greg': 'none', 'Gboth': 'Gmain'}.get(phase, phase)
        if self.r1_gamma == 0:
            phase = {'Dreg': 'none', 'Dboth': 'Dmain'}.get(phase, phase)
        return phase

    def _generator_main(self, gen_z, gen_c, gain, blur_sigma):
        """G wants D to score its images as real: softplus(-D(G(z)))."""
        gen_img, _ws = self.run_G(gen_z, gen_c)
        gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma)
        training_stats.report('Loss/scores/fake', gen_logits)
        training_stats.report('Loss/signs/fake', gen_logits.sign())
        loss_Gmain = torch.nn.functional.softplus(-gen_logits)
        training_stats.report('Loss/G/loss', loss_Gmain)
        loss_Gmain.mean().mul(gain).backward()

    def _path_length_reg(self, gen_z, gen_c, gain):
        """Penalise deviation of |J_w^T y| (y: unit-variance image noise) from its running mean."""
        batch_size = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
        gen_img, gen_ws = self.run_G(gen_z[:batch_size], gen_c[:batch_size])
        # Scaled so that the expected length does not depend on the image size.
        pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
        with conv2d_gradfix.no_weight_gradients(self.pl_no_weight_grad):
            pl_grads, = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws],
                                            create_graph=True, only_inputs=True)
        pl_lengths = pl_grads.square().sum(dim=2).mean(dim=1).sqrt()
        pl_mean = self.pl_mean.lerp(pl_lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        pl_penalty = (pl_lengths - pl_mean).square()
        training_stats.report('Loss/pl_penalty', pl_penalty)
        loss_Gpl = pl_penalty * self.pl_weight
        training_stats.report('Loss/G/reg', loss_Gpl)
        loss_Gpl.mean().mul(gain).backward()

    def _discriminator_fakes(self, gen_z, gen_c, gain, blur_sigma):
        """D wants to score generated images as fake: softplus(D(G(z))). Returns the per-image loss."""
        gen_img, _ws = self.run_G(gen_z, gen_c, update_emas=True)
        gen_logits = self.run_D(gen_img, gen_c, blur_sigma=blur_sigma, update_emas=True)
        training_stats.report('Loss/scores/fake', gen_logits)
        training_stats.report('Loss/signs/fake', gen_logits.sign())
        loss_Dgen = torch.nn.functional.softplus(gen_logits)
        loss_Dgen.mean().mul(gain).backward()
        return loss_Dgen.detach()

    def _discriminator_reals(self, phase, real_img, real_c, gain, blur_sigma, loss_Dgen):
        """D wants to score reals as real: softplus(-D(x)); plus R1 = |dD/dx|^2 * gamma/2 when regularising."""
        with_r1 = phase in ('Dreg', 'Dboth')
        with_main = phase in ('Dmain', 'Dboth')
        real_img_tmp = real_img.detach().requires_grad_(with_r1)
        real_logits = self.run_D(real_img_tmp, real_c, blur_sigma=blur_sigma)
        training_stats.report('Loss/scores/real', real_logits)
        training_stats.report('Loss/signs/real', real_logits.sign())

        loss_Dreal = 0
        if with_main:
            loss_Dreal = torch.nn.functional.softplus(-real_logits)
            training_stats.report('Loss/D/loss', loss_Dgen + loss_Dreal)

        loss_Dr1 = 0
        if with_r1:
            # Only the input gradient is needed here; its graph still reaches D's weights.
            with conv2d_gradfix.no_weight_gradients():
                r1_grads, = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img_tmp],
                                                create_graph=True, only_inputs=True)
            r1_penalty = r1_grads.square().sum(dim=[1, 2, 3])
            loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
            training_stats.report('Loss/r1_penalty', r1_penalty)
            training_stats.report('Loss/D/reg', loss_Dr1)

        (loss_Dreal + loss_Dr1).mean().mul(gain).backward()
