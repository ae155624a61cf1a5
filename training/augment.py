"""Adaptive discriminator augmentation (ADA): the augmentation pipeline.

``AugmentPipe`` follows NVIDIA's StyleGAN2-ADA / StyleGAN3 ``training.augment``:
the same constructor keywords and defaults, the same buffers (``p``, ``Hz_geom``,
``Hz_fbank``), the same order of random draws, and the same ``debug_percentile``
behaviour, so official pickles' ``augment_pipe`` entries load into it by name and a
given seed augments a square image as upstream does.

Every augmentation is off by default; a keyword set to 1 turns it on, and it is
then applied to each image with probability ``keyword * p``, where the buffer ``p``
is the overall strength that the training loop adjusts. Stages, in order:

1. Geometry. The inverse transforms (output pixel -> input pixel) of x-flip, 90
   degree rotations, integer translation, isotropic scaling, rotation, anisotropic
   scaling and fractional translation are multiplied into one 3x3 matrix per image,
   in pixel units about the image centre. The image is padded by reflection, upsampled
   2x with an orthogonal wavelet low-pass filter (Symlet-6), resampled with
   ``grid_sample`` and filtered back down. Integer moves (flip, 90 degree rotation,
   integer translation) therefore reproduce pixels exactly up to rounding error.
2. Colour. Brightness, contrast, luma flip, hue rotation and saturation become one
   4x4 homogeneous matrix per image acting on RGB (1-channel images use its mean row).
   Contrast scales about 0, the middle of the [-1, 1] range.
3. Image-space filtering: random gains of four frequency bands built from a Symlet-2
   filter bank, normalized to keep the expected power of a 1/f spectrum.
4. Corruptions: additive Gaussian noise with a random std, and cutout (a rectangle,
   ``cutout_size`` of the width by ``cutout_size`` of the height, set to 0).

Non-square images (StyleGAN-Human's 2:1, height = 2 x width) are handled throughout:
translations are relative to each axis's own length, the geometric transforms act in
pixels (so a rotation does not shear a non-square image), the cutout is relative to
each axis, and reflection padding works for any amount, so a 90 degree rotation of a
tall image has the same room on its narrow axis as on its long one. A 90 degree
rotation of a 2:1 image keeps the output frame: the centre square of the image turns
and the rest of the frame is filled from the reflected image (StyleGAN-Human's
``body`` preset turns 90 degree rotations off for this reason).

The pipeline is differentiable with respect to the images. The training loop sets
``torch_utils.ops.grid_sample_gradfix.enabled = True`` when it needs second-order
gradients (R1 through augmented reals).

This file imports only numpy, torch and ``torch_utils``: pickles embed it.
"""

import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import grid_sample_gradfix
from torch_utils.ops import upfirdn2d

# ----------------------------------------------------------------------------
# Low-pass decomposition filters of the orthogonal wavelets used below
# (standard coefficients, each summing to sqrt(2)).

wavelets = {
    'haar': [0.7071067811865476, 0.7071067811865476],
    'sym2': [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025],
    'sym6': [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
             0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
             -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148],
}

# Named presets: stylegan2-ada-pytorch's train.py --augpipe, plus StyleGAN-Human's
# 'body' (no 90 degree or arbitrary rotations: people stay upright).
_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
_FILTER = dict(imgfilter=1)
_NOISE = dict(noise=1)
_CUTOUT = dict(cutout=1)

AUGPIPE_SPECS = {
    'blit': dict(_BLIT),
    'geom': dict(_GEOM),
    'color': dict(_COLOR),
    'filter': dict(_FILTER),
    'noise': dict(_NOISE),
    'cutout': dict(_CUTOUT),
    'bg': {**_BLIT, **_GEOM},
    'bgc': {**_BLIT, **_GEOM, **_COLOR},
    'bgcf': {**_BLIT, **_GEOM, **_COLOR, **_FILTER},
    'bgcfn': {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE},
    'bgcfnc': {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE, **_CUTOUT},
    'body': dict(xflip=1, rotate90=0, xint=1, scale=1, rotate=0, aniso=1, xfrac=1,
                 brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
}

# ----------------------------------------------------------------------------
# Homogeneous matrices. Entries are Python numbers or [batch] tensors; with any
# tensor entry the result is [batch, n, n], otherwise a constant [n, n].


def _build_matrix(rows, device=None):
    entries = [value for row in rows for value in row]
    tensors = [value for value in entries if isinstance(value, torch.Tensor)]
    size = len(rows)
    if not tensors:
        return misc.constant(np.asarray(rows, dtype=np.float32), device=device)
    like = tensors[0]
    filled = [value if isinstance(value, torch.Tensor) else torch.full_like(like, float(value)) for value in entries]
    return torch.stack(filled, dim=-1).reshape(like.shape + (size, size))


def translate2d(tx, ty, device=None):
    return _build_matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], device=device)


def scale2d(sx, sy, device=None):
    return _build_matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], device=device)


def rotate2d(theta, device=None):
    cos, sin = torch.cos(theta), torch.sin(theta)
    return _build_matrix([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], device=device)


def translate3d(tx, ty, tz, device=None):
    return _build_matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], device=device)


def scale3d(sx, sy, sz, device=None):
    return _build_matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], device=device)


def rotate3d(axis, theta, device=None):
    """Rotation by ``theta`` about the unit vector ``axis`` (Rodrigues' formula)."""
    ax, ay, az = (axis[..., k] for k in range(3))
    sin, cos = torch.sin(theta), torch.cos(theta)
    one_minus_cos = 1 - cos
    return _build_matrix([
        [ax * ax * one_minus_cos + cos, ax * ay * one_minus_cos - az * sin, ax * az * one_minus_cos + ay * sin, 0],
        [ay * ax * one_minus_cos + az * sin, ay * ay * one_minus_cos + cos, ay * az * one_minus_cos - ax * sin, 0],
        [az * ax * one_minus_cos - ay * sin, az * ay * one_minus_cos + ax * sin, az * az * one_minus_cos + cos, 0],
        [0, 0, 0, 1],
    ], device=device)


def translate2d_inv(tx, ty, device=None):
    return translate2d(-tx, -ty, device=device)


def scale2d_inv(sx, sy, device=None):
    return scale2d(1 / sx, 1 / sy, device=device)


def rotate2d_inv(theta, device=None):
    return rotate2d(-theta, device=device)


# ----------------------------------------------------------------------------
# Filters.


def _band_filter_bank(lowpass, num_bands=4):
    """Rows are zero-phase filters splitting a signal into ``num_bands`` octave bands.

    Row 0 is the coarsest low-pass band, row ``num_bands - 1`` the finest high-pass
    band; the rows sum to a unit impulse, so equal gains leave an image unchanged.
    """
    lo = np.asarray(lowpass, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)           # Quadrature mirror high-pass.
    lo_power = np.convolve(lo, lo[::-1]) / 2          # |H(z)|^2 / 2: symmetric.
    hi_power = np.convolve(hi, hi[::-1]) / 2          # lo_power + hi_power = impulse.
    bank = np.zeros([num_bands, 1])
    bank[0, 0] = 1
    for band in range(1, num_bands):
        # Stretch every band one octave down, then split the new finest octave off.
        stretched = np.zeros([num_bands, bank.shape[1] * 2 - 1])
        stretched[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo_power) for row in stretched])
        start = (bank.shape[1] - hi_power.size) // 2
        bank[band, start:start + hi_power.size] += hi_power
    return bank


def _reflect_indices(size, pad_before, pad_after, device):
    """Source indices of a reflection (edge not repeated) padding by any amount."""
    index = torch.arange(-pad_before, size + pad_after, device=device)
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = index.remainder(period)
    return torch.where(index < size, index, period - index)


def reflect_pad(images, pad_left, pad_right, pad_top, pad_bottom):
    """Like ``F.pad(mode='reflect')`` but also for pads as large as the image or larger."""
    height, width = images.shape[-2:]
    if max(pad_left, pad_right) < width and max(pad_top, pad_bottom) < height:
        return torch.nn.functional.pad(images, [pad_left, pad_right, pad_top, pad_bottom], mode='reflect')
    rows = _reflect_indices(height, pad_top, pad_bottom, images.device)
    cols = _reflect_indices(width, pad_left, pad_right, images.device)
    return images.index_select(-2, rows).index_select(-1, cols)


# ----------------------------------------------------------------------------


@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    def __init__(self,
                 xflip=0, rotate90=0, xint=0, xint_max=0.125,
                 scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
                 brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0,
                 brightness_std=0.2, contrast_std=0.5, hue_max=1, saturation_std=1,
                 imgfilter=0, imgfilter_bands=(1, 1, 1, 1), imgfilter_std=1,
                 noise=0, cutout=0, noise_std=0.1, cutout_size=0.5):
        super().__init__()
        self.register_buffer('p', torch.ones([]))   # Overall strength; the training loop adjusts it.

        # Pixel blitting: probability multipliers, and the translation range (fraction of each axis).
        self.xflip = float(xflip)
        self.rotate90 = float(rotate90)
        self.xint = float(xint)
        self.xint_max = float(xint_max)

        # General geometry: probability multipliers; scales as log2 std, rotation as a
        # fraction of a full turn, translation std as a fraction of each axis.
        self.scale = float(scale)
        self.rotate = float(rotate)
        self.aniso = float(aniso)
        self.xfrac = float(xfrac)
        self.scale_std = float(scale_std)
        self.rotate_max = float(rotate_max)
        self.aniso_std = float(aniso_std)
        self.xfrac_std = float(xfrac_std)

        # Colour: probability multipliers; brightness as an additive std, contrast and
        # saturation as log2 std, hue as a fraction of a full turn.
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.lumaflip = float(lumaflip)
        self.hue = float(hue)
        self.saturation = float(saturation)
        self.brightness_std = float(brightness_std)
        self.contrast_std = float(contrast_std)
        self.hue_max = float(hue_max)
        self.saturation_std = float(saturation_std)

        # Image-space filtering: probability multiplier, per-band multipliers, log2 std of band gains.
        self.imgfilter = float(imgfilter)
        self.imgfilter_bands = list(imgfilter_bands)
        self.imgfilter_std = float(imgfilter_std)

        # Corruptions: probability multipliers, noise std, cutout size (fraction of each axis).
        self.noise = float(noise)
        self.cutout = float(cutout)
        self.noise_std = float(noise_std)
        self.cutout_size = float(cutout_size)

        self.register_buffer('Hz_geom', upfirdn2d.setup_filter(wavelets['sym6']))
        self.register_buffer('Hz_fbank', torch.as_tensor(_band_filter_bank(wavelets['sym2']), dtype=torch.float32))

    # ------------------------------------------------------------------------

    def forward(self, images, debug_percentile=None):
        """Augment ``images`` ([N, C, H, W], C = 1 or 3 when colour is on).

        ``debug_percentile`` in [0, 1) replaces every random choice by that percentile
        of its distribution and applies every enabled augmentation to every image.
        """
        assert isinstance(images, torch.Tensor) and images.ndim == 4
        out_dtype = images.dtype
        images = images.to(torch.float64 if images.dtype == torch.float64 else torch.float32)
        batch_size = images.shape[0]
        device = images.device
        if debug_percentile is not None:
            debug_percentile = torch.as_tensor(debug_percentile, dtype=torch.float32, device=device)

        # The draws below follow upstream's order so that a seed gives upstream's choices.
        G_inv = self._sample_geometry(batch_size, images.shape[2], images.shape[3], device, debug_percentile)
        if G_inv is not None:
            images = self._apply_geometry(images, G_inv)
        C = self._sample_color(batch_size, images.shape[1], device, debug_percentile)
        if C is not None:
            images = _apply_color(images, C)
        if self.imgfilter > 0:
            images = self._apply_imgfilter(images, debug_percentile)
        if self.noise > 0:
            images = self._apply_noise(images, debug_percentile)
        if self.cutout > 0:
            images = self._apply_cutout(images, debug_percentile)
        return images.to(out_dtype)

    # ------------------------------------------------------------------------
    # Random parameters.

    def _gate(self, value, multiplier, neutral, shape, device):
        """``value`` where a uniform draw falls below ``multiplier * p``, else ``neutral``."""
        chosen = torch.rand(shape, device=device) < multiplier * self.p
        return torch.where(chosen, value, neutral)

    def _sample_geometry(self, batch_size, height, width, device, debug_percentile):
        """Inverse transform (output pixel -> input pixel, centred), or None if all geometry is off."""
        dp = debug_percentile
        steps = []

        if self.xflip > 0:
            flip = torch.floor(torch.rand([batch_size], device=device) * 2)
            flip = self._gate(flip, self.xflip, torch.zeros_like(flip), [batch_size], device)
            if dp is not None:
                flip = torch.full_like(flip, torch.floor(dp * 2))
            steps.append(scale2d_inv(1 - 2 * flip, 1))

        if self.rotate90 > 0:
            quarter = torch.floor(torch.rand([batch_size], device=device) * 4)
            quarter = self._gate(quarter, self.rotate90, torch.zeros_like(quarter), [batch_size], device)
            if dp is not None:
                quarter = torch.full_like(quarter, torch.floor(dp * 4))
            steps.append(rotate2d_inv(-np.pi / 2 * quarter))

        if self.xint > 0:
            shift = (torch.rand([batch_size, 2], device=device) * 2 - 1) * self.xint_max
            shift = self._gate(shift, self.xint, torch.zeros_like(shift), [batch_size, 1], device)
            if dp is not None:
                shift = torch.full_like(shift, (dp * 2 - 1) * self.xint_max)
            steps.append(translate2d_inv(torch.round(shift[:, 0] * width), torch.round(shift[:, 1] * height)))

        if self.scale > 0:
            factor = torch.exp2(torch.randn([batch_size], device=device) * self.scale_std)
            factor = self._gate(factor, self.scale, torch.ones_like(factor), [batch_size], device)
            if dp is not None:
                factor = torch.full_like(factor, torch.exp2(torch.erfinv(dp * 2 - 1) * self.scale_std))
            steps.append(scale2d_inv(factor, factor))

        # A rotation before and one after the anisotropic scaling, each with the
        # probability that makes "either of them" happen with probability rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * self.p).clamp(0, 1))
        if self.rotate > 0:
            theta = self._sample_rotation(batch_size, p_rot, device)
            if dp is not None:
                theta = torch.full_like(theta, (dp * 2 - 1) * np.pi * self.rotate_max)
            steps.append(rotate2d_inv(-theta))

        if self.aniso > 0:
            factor = torch.exp2(torch.randn([batch_size], device=device) * self.aniso_std)
            factor = self._gate(factor, self.aniso, torch.ones_like(factor), [batch_size], device)
            if dp is not None:
                factor = torch.full_like(factor, torch.exp2(torch.erfinv(dp * 2 - 1) * self.aniso_std))
            steps.append(scale2d_inv(factor, 1 / factor))

        if self.rotate > 0:
            theta = self._sample_rotation(batch_size, p_rot, device)
            if dp is not None:
                theta = torch.zeros_like(theta)
            steps.append(rotate2d_inv(-theta))

        if self.xfrac > 0:
            shift = torch.randn([batch_size, 2], device=device) * self.xfrac_std
            shift = self._gate(shift, self.xfrac, torch.zeros_like(shift), [batch_size, 1], device)
            if dp is not None:
                shift = torch.full_like(shift, torch.erfinv(dp * 2 - 1) * self.xfrac_std)
            steps.append(translate2d_inv(shift[:, 0] * width, shift[:, 1] * height))

        if not steps:
            return None
        G_inv = torch.eye(3, device=device)
        for step in steps:
            G_inv = G_inv @ step
        return G_inv

    def _sample_rotation(self, batch_size, probability, device):
        theta = (torch.rand([batch_size], device=device) * 2 - 1) * np.pi * self.rotate_max
        chosen = torch.rand([batch_size], device=device) < probability
        return torch.where(chosen, theta, torch.zeros_like(theta))

    def _sample_color(self, batch_size, num_channels, device, debug_percentile):
        """Colour transform (colour in -> colour out, homogeneous 4x4), or None if colour is off."""
        dp = debug_percentile
        eye = torch.eye(4, device=device)
        C = None

        def then(matrix):
            return matrix if C is None else matrix @ C

        if self.brightness > 0:
            shift = torch.randn([batch_size], device=device) * self.brightness_std
            shift = self._gate(shift, self.brightness, torch.zeros_like(shift), [batch_size], device)
            if dp is not None:
                shift = torch.full_like(shift, torch.erfinv(dp * 2 - 1) * self.brightness_std)
            C = then(translate3d(shift, shift, shift))

        if self.contrast > 0:
            factor = torch.exp2(torch.randn([batch_size], device=device) * self.contrast_std)
            factor = self._gate(factor, self.contrast, torch.ones_like(factor), [batch_size], device)
            if dp is not None:
                factor = torch.full_like(factor, torch.exp2(torch.erfinv(dp * 2 - 1) * self.contrast_std))
            C = then(scale3d(factor, factor, factor))

        luma = misc.constant(np.asarray([1, 1, 1, 0]) / np.sqrt(3), device=device)   # Grey axis, unit length.
        luma_projection = torch.outer(luma, luma)

        if self.lumaflip > 0:
            flip = torch.floor(torch.rand([batch_size, 1, 1], device=device) * 2)
            flip = self._gate(flip, self.lumaflip, torch.zeros_like(flip), [batch_size, 1, 1], device)
            if dp is not None:
                flip = torch.full_like(flip, torch.floor(dp * 2))
            C = then(eye - 2 * luma_projection * flip)   # Householder reflection across the grey plane.

        if self.hue > 0 and num_channels > 1:
            theta = (torch.rand([batch_size], device=device) * 2 - 1) * np.pi * self.hue_max
            theta = self._gate(theta, self.hue, torch.zeros_like(theta), [batch_size], device)
            if dp is not None:
                theta = torch.full_like(theta, (dp * 2 - 1) * np.pi * self.hue_max)
            C = then(rotate3d(luma, theta))

        if self.saturation > 0 and num_channels > 1:
            factor = torch.exp2(torch.randn([batch_size, 1, 1], device=device) * self.saturation_std)
            factor = self._gate(factor, self.saturation, torch.ones_like(factor), [batch_size, 1, 1], device)
            if dp is not None:
                factor = torch.full_like(factor, torch.exp2(torch.erfinv(dp * 2 - 1) * self.saturation_std))
            C = then(luma_projection + (eye - luma_projection) * factor)

        return C

    # ------------------------------------------------------------------------
    # Execution.

    def _apply_geometry(self, images, G_inv):
        batch_size, num_channels, height, width = images.shape
        device = images.device
        G_inv = G_inv.to(images.dtype)
        filter_pad = self.Hz_geom.shape[0] // 4   # Border that the filters need, in input pixels.

        # Pad by reflection so that every sampled point (plus the filter support) has data.
        pads = self._geometry_padding(G_inv, height, width, filter_pad)
        if pads is None:
            return images   # No image transformed: skip the filtering round trip (~1e-5 error).
        pad_left, pad_top, pad_right, pad_bottom = pads
        images = reflect_pad(images, pad_left, pad_right, pad_top, pad_bottom)
        G_inv = translate2d((pad_left - pad_right) / 2, (pad_top - pad_bottom) / 2, device=device).to(G_inv) @ G_inv

        # Upsample 2x; express the transform in the upsampled pixel grid (pixel centres at +0.5).
        images = upfirdn2d.upsample2d(x=images, f=self.Hz_geom, up=2)
        double = scale2d(2, 2, device=device).to(G_inv)
        half = scale2d_inv(2, 2, device=device).to(G_inv)
        G_inv = double @ G_inv @ half
        G_inv = translate2d(-0.5, -0.5, device=device).to(G_inv) @ G_inv @ translate2d_inv(-0.5, -0.5, device=device).to(G_inv)

        # Resample onto the output grid (image plus filter border, upsampled), in the
        # normalized coordinates of affine_grid: x by width, y by height.
        out_shape = [batch_size, num_channels, (height + filter_pad * 2) * 2, (width + filter_pad * 2) * 2]
        to_input_norm = scale2d(2 / images.shape[3], 2 / images.shape[2], device=device).to(G_inv)
        from_output_norm = scale2d_inv(2 / out_shape[3], 2 / out_shape[2], device=device).to(G_inv)
        G_inv = to_input_norm @ G_inv @ from_output_norm
        grid = torch.nn.functional.affine_grid(theta=G_inv[:, :2, :], size=out_shape, align_corners=False)
        images = grid_sample_gradfix.grid_sample(images, grid)

        # Filter back down and drop the border.
        return upfirdn2d.downsample2d(x=images, f=self.Hz_geom, down=2,
                                      padding=-filter_pad * 2, flip_filter=True)

    @staticmethod
    def _geometry_padding(G_inv, height, width, filter_pad):
        """Reflection padding (left, top, right, bottom) covering the transformed image corners.

        None when every transform is exactly the identity (nothing was drawn). Capped
        at one image length less one pixel, the longer axis's length for both axes: on
        a 2:1 image the narrow axis needs as much room as the long one once the image
        is rotated (upstream caps each axis by its own length and leaves zeros beyond).
        """
        cx, cy = (width - 1) / 2, (height - 1) / 2
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]],
                               dtype=G_inv.dtype, device=G_inv.device)
        sources = (G_inv @ corners.t())[:, :2, :]                # [batch, xy, corner]
        sources = sources.permute(1, 0, 2).flatten(1)             # [xy, batch * corner]
        reach = torch.cat([-sources, sources]).max(dim=1).values  # [-x, -y, +x, +y] farthest
        half_size = misc.constant([cx, cy] * 2, dtype=G_inv.dtype, device=G_inv.device)
        margin = reach - half_size + filter_pad * 2
        cap = max(height, width) - 1
        margin = margin.clamp(0, cap).ceil()
        is_identity = (G_inv == torch.eye(3, dtype=G_inv.dtype, device=G_inv.device)).all()
        *margin, is_identity = torch.cat([margin, is_identity.to(margin.dtype)[None]]).tolist()   # One device sync.
        return None if is_identity else [int(m) for m in margin]

    def _apply_imgfilter(self, images, debug_percentile):
        batch_size, num_channels, height, width = images.shape
        device = images.device
        num_bands = self.Hz_fbank.shape[0]
        assert len(self.imgfilter_bands) == num_bands
        expected_power = misc.constant(np.array([10, 1, 1, 1]) / 13, device=device)   # 1/f spectrum per band.

        gains = torch.ones([batch_size, num_bands], device=device)
        for band, band_strength in enumerate(self.imgfilter_bands):
            gain = torch.exp2(torch.randn([batch_size], device=device) * self.imgfilter_std)
            gain = self._gate(gain, self.imgfilter * band_strength, torch.ones_like(gain), [batch_size], device)
            if debug_percentile is not None:
                if band_strength > 0:
                    gain = torch.full_like(gain, torch.exp2(torch.erfinv(debug_percentile * 2 - 1) * self.imgfilter_std))
                else:
                    gain = torch.ones_like(gain)
            # Amplify one band, then rescale all so the expected power stays 1.
            band_gains = torch.ones([batch_size, num_bands], device=device)
            band_gains[:, band] = gain
            band_gains = band_gains / (expected_power * band_gains.square()).sum(dim=-1, keepdim=True).sqrt()
            gains = gains * band_gains

        # One separable filter per image, the same for all its channels.
        taps = (gains @ self.Hz_fbank).to(images.dtype)                          # [batch, tap]
        taps = taps.unsqueeze(1).repeat([1, num_channels, 1]).reshape([batch_size * num_channels, 1, -1])
        half = self.Hz_fbank.shape[1] // 2
        images = images.reshape([1, batch_size * num_channels, height, width])
        images = reflect_pad(images, half, half, half, half)
        groups = batch_size * num_channels
        images = conv2d_gradfix.conv2d(input=images, weight=taps.unsqueeze(2), groups=groups)
        images = conv2d_gradfix.conv2d(input=images, weight=taps.unsqueeze(3), groups=groups)
        return images.reshape([batch_size, num_channels, height, width])

    def _apply_noise(self, images, debug_percentile):
        batch_size, num_channels, height, width = images.shape
        device = images.device
        sigma = torch.randn([batch_size, 1, 1, 1], device=device).abs() * self.noise_std
        sigma = self._gate(sigma, self.noise, torch.zeros_like(sigma), [batch_size, 1, 1, 1], device)
        if debug_percentile is not None:
            sigma = torch.full_like(sigma, torch.erfinv(debug_percentile) * self.noise_std)
        noise = torch.randn([batch_size, num_channels, height, width], device=device)
        return images + (noise * sigma).to(images.dtype)

    def _apply_cutout(self, images, debug_percentile):
        batch_size, _, height, width = images.shape
        device = images.device
        size = torch.full([batch_size, 2, 1, 1, 1], self.cutout_size, device=device)
        size = self._gate(size, self.cutout, torch.zeros_like(size), [batch_size, 1, 1, 1, 1], device)
        center = torch.rand([batch_size, 2, 1, 1, 1], device=device)
        if debug_percentile is not None:
            size = torch.full_like(size, self.cutout_size)
            center = torch.full_like(center, debug_percentile)
        # Pixel centres in [0, 1] along each axis; the rectangle is relative to each axis.
        coord_x = (torch.arange(width, device=device).reshape([1, 1, 1, -1]) + 0.5) / width
        coord_y = (torch.arange(height, device=device).reshape([1, 1, -1, 1]) + 0.5) / height
        outside_x = (coord_x - center[:, 0]).abs() >= size[:, 0] / 2
        outside_y = (coord_y - center[:, 1]).abs() >= size[:, 1] / 2
        keep = torch.logical_or(outside_x, outside_y).to(images.dtype)
        return images * keep


def _apply_color(images, C):
    batch_size, num_channels, height, width = images.shape
    C = C.to(images.dtype)
    flat = images.reshape([batch_size, num_channels, height * width])
    if num_channels == 3:
        flat = C[:, :3, :3] @ flat + C[:, :3, 3:]
    elif num_channels == 1:
        # Grey images: the average of the three colour rows.
        row = C[:, :3, :].mean(dim=1, keepdim=True)
        flat = flat * row[:, :, :3].sum(dim=2, keepdim=True) + row[:, :, 3:]
    else:
        raise ValueError('colour augmentations need RGB (3 channels) or grey (1 channel) images')
    return flat.reshape([batch_size, num_channels, height, width])
