"""StyleGAN1 (Karras et al. 2019) generator and discriminator in PyTorch.

These modules reproduce the arithmetic of NVIDIA's TensorFlow StyleGAN1
(``training/networks_stylegan.py``: ``G_style``, ``G_mapping``, ``G_synthesis``,
``D_basic``) so that weights converted from its pickles (see ``stylegan_human/network_files/stylegan1_tf.py``)
give the same images, while exposing the interface of our StyleGAN2 generator:
``G.mapping(z, c, truncation_psi, truncation_cutoff) -> w`` of shape
``[N, num_ws, w_dim]`` and ``G.synthesis(w, noise_mode) -> NCHW`` in about [-1, 1].

What StyleGAN1 does differently from StyleGAN2, and what is kept here:

- Mapping: the latent (concatenated with an embedded label, if any) is pixel-
  normalised, then goes through dense layers with equalised learning rate and a
  learning-rate multiplier (0.01), each followed by leaky ReLU (slope 0.2), the
  last one included.
- Truncation moves the first ``truncation_cutoff`` rows of ``w`` toward ``w_avg``
  (the TensorFlow ``dlatent_avg``): ``avg + (w - avg) * psi``. As in ``G_style``,
  it happens only when ``psi != 1`` *and* the cutoff is not None (and positive):
  ``truncation_cutoff=None`` switches truncation OFF, unlike StyleGAN2 where None
  means "all layers". The default cutoff is 8, the default of ``Gs.run``; pass a
  number at least ``num_ws`` to truncate every layer.
- Synthesis: every layer ends with per-channel-weighted noise, bias, leaky ReLU,
  instance normalisation and a style modulation ``x * (1 + scale) + shift``. The
  first layer starts from a learned constant; up-sampling layers blur the result
  with [1, 2, 1]. Where the input's smaller side times 2 is at least 128 (with
  ``fused_scale='auto'``), up-sampling and the 3x3 convolution are fused into one
  stride-2 transposed convolution with a 4x4 kernel made from the 3x3 one, as the
  original does; elsewhere it is nearest-neighbour up-sampling then the convolution.
- Noise: ``noise_mode='const'`` uses the stored per-layer noise maps (the
  original's ``randomize_noise=False``), ``'random'`` draws fresh noise
  (``randomize_noise=True``), ``'none'`` adds no noise.
- Progressive growing: networks stored with structure ``'auto'``/``'recursive'``
  or ``'linear'`` keep a to-RGB (from-RGB) layer per resolution and a level of
  detail ``lod`` buffer; with ``lod == 0`` (every finished network) the output is
  that of the full-resolution path. Non-zero ``lod`` blends as the original does.
- ``square=False`` builds StyleGAN-Human's tall images: the constant is 4x2 and
  every feature map is twice as high as it is wide.

Every constructor argument is a plain JSON-able value.
"""

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import persistence

# ----------------------------------------------------------------------------
# Helpers


def _activation(x, name):
    if name == 'lrelu':
        return F.leaky_relu(x, 0.2)
    if name == 'relu':
        return F.relu(x)
    if name == 'linear':
        return x
    raise ValueError(f'unknown activation {name!r}')


def _pixel_norm(x, eps=1e-8):
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def _instance_norm(x, eps=1e-8):
    x = x - x.mean(dim=[2, 3], keepdim=True)
    return x * torch.rsqrt(x.square().mean(dim=[2, 3], keepdim=True) + eps)


def _upscale(x, factor):
    """Nearest-neighbour up-sampling by an integer factor (tiling each pixel)."""
    if factor == 1:
        return x
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1).expand(n, c, h, factor, w, factor)
    return x.reshape(n, c, h * factor, w * factor)


def _downscale(x, factor):
    """Box-filter down-sampling by an integer factor (averages factor x factor pixels)."""
    if factor == 1:
        return x
    return F.avg_pool2d(x, kernel_size=factor, stride=factor)


def _lerp(a, b, t):
    return a + (b - a) * t


def _make_blur_kernel(taps):
    f = np.asarray(taps, dtype=np.float32)
    if f.ndim == 1:
        f = f[:, np.newaxis] * f[np.newaxis, :]
    f = f / np.sum(f)
    return torch.from_numpy(f.astype(np.float32))


def _blur(x, taps):
    """Depthwise filtering with TensorFlow's 'SAME' padding (extra pixel after, if any)."""
    kernel = _make_blur_kernel(taps).to(x.device)
    kh, kw = kernel.shape
    c = x.shape[1]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    x = F.pad(x, [left, kw - 1 - left, top, kh - 1 - top])
    weight = kernel.to(x.dtype)[None, None].expand(c, 1, kh, kw)
    return F.conv2d(x, weight, groups=c)


def _fuse_3x3_to_4x4(w):
    """[O, I, k, k] -> [O, I, k+1, k+1]: the sum of the kernel shifted by 0/1 in y and x."""
    w = F.pad(w, [1, 1, 1, 1])
    return w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]


def _init_std(fan_in, gain, use_wscale, lrmul):
    """Initial weight spread; with the run-time scale below, weights start at He's std."""
    if use_wscale:
        return 1.0 / lrmul
    return float(gain / np.sqrt(fan_in) / lrmul)


def _weight_coef(fan_in, gain, use_wscale, lrmul):
    if use_wscale:
        return float(gain / np.sqrt(fan_in) * lrmul)
    return float(lrmul)


def _stage_channels(num_stages, fmap_base, fmap_decay, fmap_max):
    """Channels for stages 0..num_stages-1 by the original nf() formula."""
    return [min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max) for stage in range(num_stages)]


def _check_structure(structure):
    """'auto' means the recursive growing structure, as in the original."""
    structure = 'recursive' if structure == 'auto' else structure
    if structure not in ('fixed', 'linear', 'recursive'):
        raise ValueError(f'unknown structure {structure!r}')
    return structure


def _check_resolution(img_resolution):
    log2 = int(np.round(np.log2(img_resolution)))
    if img_resolution < 4 or 2 ** log2 != img_resolution:
        raise ValueError(f'img_resolution must be a power of two >= 4, got {img_resolution}')
    return log2


def _base_size(square):
    return (4, 4) if square else (4, 2)


# ----------------------------------------------------------------------------
# Layers


@persistence.persistent_class
class DenseLayer(torch.nn.Module):
    """Fully connected layer with the original's run-time weight scaling."""

    def __init__(self, in_features, out_features, gain=1.0, use_wscale=True, lr_multiplier=1.0,
                 bias=True, activation='linear'):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) *
                                         _init_std(in_features, gain, use_wscale, lr_multiplier))
        self.weight_gain = _weight_coef(in_features, gain, use_wscale, lr_multiplier)
        self.bias = torch.nn.Parameter(torch.zeros([out_features])) if bias else None
        self.bias_gain = float(lr_multiplier)

    def forward(self, x):
        x = x.matmul((self.weight.to(x.dtype) * self.weight_gain).t())
        if self.bias is not None:
            x = x + self.bias.to(x.dtype) * self.bias_gain
        return _activation(x, self.activation)

    def extra_repr(self):
        return f'in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}'


@persistence.persistent_class
class ConvLayer(torch.nn.Module):
    """Convolution (optionally fused with 2x down-sampling), bias, activation: D_basic's layers."""

    def __init__(self, in_channels, out_channels, kernel_size, gain=float(np.sqrt(2)), use_wscale=True,
                 activation='lrelu', down=False, fused=False, blur_filter=None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.activation = activation
        self.down = down
        self.fused = fused
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]) *
                                         _init_std(fan_in, gain, use_wscale, 1.0))
        self.weight_gain = _weight_coef(fan_in, gain, use_wscale, 1.0)
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.blur_taps = None if blur_filter is None else list(blur_filter)

    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_gain
        if self.down and self.blur_taps is not None:
            x = _blur(x, self.blur_taps)
        if self.down and self.fused:
            x = F.conv2d(x, _fuse_3x3_to_4x4(w) * 0.25, stride=2, padding=1)
        else:
            x = F.conv2d(x, w, padding=self.kernel_size // 2)
            if self.down:
                x = _downscale(x, 2)
        x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return _activation(x, self.activation)

    def extra_repr(self):
        return (f'in_channels={self.in_channels}, out_channels={self.out_channels}, '
                f'kernel_size={self.kernel_size}, down={self.down}, fused={self.fused}')


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """1x1 convolution plus bias, no activation."""

    def __init__(self, in_channels, out_channels, use_wscale=True):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]) *
                                         _init_std(in_channels, 1.0, use_wscale, 1.0))
        self.weight_gain = _weight_coef(in_channels, 1.0, use_wscale, 1.0)
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x):
        x = F.conv2d(x, self.weight.to(x.dtype) * self.weight_gain)
        return x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)


@persistence.persistent_class
class StyleLayer(torch.nn.Module):
    """One synthesis layer: input (constant, 3x3 conv, or 2x up-sampling conv), then the epilogue.

    The epilogue is the original's: noise times a per-channel weight, bias,
    activation, optional pixel norm, instance norm, style modulation.
    """

    def __init__(self, kind, in_channels, out_channels, w_dim, size, use_wscale=True, activation='lrelu',
                 fused=False, blur_filter=[1, 2, 1], use_noise=True, use_pixel_norm=False,
                 use_instance_norm=True):
        super().__init__()
        assert kind in ('const', 'conv', 'up')
        self.kind = kind
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size = [int(size[0]), int(size[1])]
        self.activation = activation
        self.fused = bool(fused) and kind == 'up'
        self.use_noise = use_noise
        self.use_pixel_norm = use_pixel_norm
        self.use_instance_norm = use_instance_norm
        gain = float(np.sqrt(2))
        if kind == 'const':
            self.const = torch.nn.Parameter(torch.ones([out_channels] + self.size))
        else:
            self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]) *
                                             _init_std(in_channels * 9, gain, use_wscale, 1.0))
            self.weight_gain = _weight_coef(in_channels * 9, gain, use_wscale, 1.0)
        self.blur_taps = None if (kind != 'up' or blur_filter is None) else list(blur_filter)
        if use_noise:
            self.noise_strength = torch.nn.Parameter(torch.zeros([out_channels]))
            self.register_buffer('noise_const', torch.randn(self.size))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.affine = DenseLayer(w_dim, out_channels * 2, gain=1.0, use_wscale=use_wscale)

    def forward(self, x, w, noise_mode='random'):
        if self.kind == 'const':
            x = self.const.to(w.dtype).unsqueeze(0).expand(w.shape[0], -1, -1, -1)
        else:
            weight = self.weight.to(x.dtype) * self.weight_gain
            if self.kind == 'conv':
                x = F.conv2d(x, weight, padding=1)
            elif self.fused:
                x = F.conv_transpose2d(x, _fuse_3x3_to_4x4(weight).transpose(0, 1), stride=2, padding=1)
            else:
                x = F.conv2d(_upscale(x, 2), weight, padding=1)
            if self.blur_taps is not None:
                x = _blur(x, self.blur_taps)

        if self.use_noise and noise_mode != 'none':
            if noise_mode == 'const':
                noise = self.noise_const.to(x.dtype)[None, None]
            elif noise_mode == 'random':
                noise = torch.randn([x.shape[0], 1, x.shape[2], x.shape[3]], device=x.device, dtype=x.dtype)
            else:
                raise ValueError(f'noise_mode must be const, random or none, got {noise_mode!r}')
            x = x + noise * self.noise_strength.to(x.dtype).reshape(1, -1, 1, 1)
        x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        x = _activation(x, self.activation)
        if self.use_pixel_norm:
            x = _pixel_norm(x)
        if self.use_instance_norm:
            x = _instance_norm(x)
        style = self.affine(w).reshape(-1, 2, self.out_channels, 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]

    def extra_repr(self):
        return (f'kind={self.kind}, in_channels={self.in_channels}, out_channels={self.out_channels}, '
                f'size={self.size}, fused={self.fused}')


# ----------------------------------------------------------------------------
# Mapping network


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """G_mapping plus G_style's truncation: z (and label c) -> w [N, num_ws, w_dim]."""

    def __init__(self,
        z_dim,                      # Latent size.
        c_dim,                      # Label size, 0 = unconditional.
        w_dim,                      # Disentangled latent size.
        num_ws,                     # Rows of the output (synthesis layers).
        num_layers=8,               # Dense layers.
        layer_features=None,        # Width of the hidden dense layers; None = w_dim.
        lr_multiplier=0.01,         # Learning-rate multiplier of the dense layers.
        activation='lrelu',         # 'lrelu' or 'relu'.
        use_wscale=True,            # Equalised learning rate.
        normalize_latents=True,     # Pixel-normalise the input.
        w_avg_beta=0.995,           # Decay of the running mean of w kept during training.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.normalize_latents = normalize_latents
        self.w_avg_beta = w_avg_beta
        if layer_features is None:
            layer_features = w_dim
        if c_dim > 0:
            self.embed = DenseLayer(c_dim, z_dim, gain=1.0, use_wscale=False, bias=False)
        in_features = z_dim * 2 if c_dim > 0 else z_dim
        for idx in range(num_layers):
            out_features = w_dim if idx == num_layers - 1 else layer_features
            setattr(self, f'fc{idx}', DenseLayer(in_features, out_features, gain=float(np.sqrt(2)),
                                                 use_wscale=use_wscale, lr_multiplier=lr_multiplier,
                                                 activation=activation))
            in_features = out_features
        self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=8, update_emas=False, **_kwargs):
        x = z.to(torch.float32)
        if self.c_dim > 0:
            x = torch.cat([x, self.embed(c.to(torch.float32))], dim=1)
        if self.normalize_latents:
            x = _pixel_norm(x)
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(_lerp(x.detach().mean(dim=0), self.w_avg, self.w_avg_beta))

        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi is not None and truncation_psi != 1 and truncation_cutoff is not None \
                and truncation_cutoff > 0:
            coefs = torch.ones([1, self.num_ws, 1], dtype=x.dtype, device=x.device)
            coefs[:, :int(truncation_cutoff)] = float(truncation_psi)
            x = _lerp(self.w_avg.to(x.dtype), x, coefs)
        return x

    def extra_repr(self):
        return f'z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}'


# ----------------------------------------------------------------------------
# Synthesis network


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """G_synthesis: w [N, num_ws, w_dim] -> image [N, img_channels, H, W]."""

    def __init__(self,
        w_dim,                      # Disentangled latent size.
        img_resolution,             # Output height (a power of two).
        img_channels,               # Output channels.
        square=True,                # False = StyleGAN-Human's H x H/2 images.
        channels=None,              # Channels at 4, 8, ..., img_resolution; None = from fmap_*.
        fmap_base=8192,             # The original's channel formula (used when channels is None).
        fmap_decay=1.0,
        fmap_max=512,
        structure='fixed',          # 'fixed', 'linear' or 'recursive' (the original's 'auto').
        fused_scale='auto',         # True, False or 'auto' (fused where 2 x the smaller input side >= 128).
        blur_filter=[1, 2, 1],      # Filter after up-sampling; None = none.
        use_noise=True,
        use_pixel_norm=False,
        use_instance_norm=True,
        activation='lrelu',
        use_wscale=True,
    ):
        super().__init__()
        log2 = _check_resolution(img_resolution)
        structure = _check_structure(structure)
        if fused_scale not in (True, False, 'auto'):
            raise ValueError(f'fused_scale must be True, False or "auto", got {fused_scale!r}')
        if channels is None:
            channels = _stage_channels(log2, fmap_base, fmap_decay, fmap_max)[1:]
        if len(channels) != log2 - 1:
            raise ValueError(f'channels needs {log2 - 1} entries (4 to {img_resolution}), got {len(channels)}')
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.square = square
        self.structure = structure
        self.resolution_log2 = log2
        self.num_layers = log2 * 2 - 2
        self.num_ws = self.num_layers
        self.channels = [int(c) for c in channels]
        base_h, base_w = _base_size(square)
        self.img_width = img_resolution * base_w // base_h
        sizes = {res: (base_h << (res - 2), base_w << (res - 2)) for res in range(2, log2 + 1)}
        self.sizes = sizes

        common = dict(w_dim=w_dim, use_wscale=use_wscale, activation=activation, blur_filter=blur_filter,
                      use_noise=use_noise, use_pixel_norm=use_pixel_norm, use_instance_norm=use_instance_norm)
        self.layer0 = StyleLayer('const', self.channels[0], self.channels[0], size=sizes[2], **common)
        self.layer1 = StyleLayer('conv', self.channels[0], self.channels[0], size=sizes[2], **common)
        for res in range(3, log2 + 1):
            cin, cout = self.channels[res - 3], self.channels[res - 2]
            fused = min(sizes[res - 1]) * 2 >= 128 if fused_scale == 'auto' else fused_scale
            setattr(self, f'layer{res * 2 - 4}', StyleLayer('up', cin, cout, size=sizes[res], fused=fused, **common))
            setattr(self, f'layer{res * 2 - 3}', StyleLayer('conv', cout, cout, size=sizes[res], **common))
        rgb_resolutions = [log2] if structure == 'fixed' else list(range(2, log2 + 1))
        for res in rgb_resolutions:
            setattr(self, f'torgb{2 ** res}', ToRGBLayer(self.channels[res - 2], img_channels, use_wscale=use_wscale))
        self.register_buffer('lod', torch.zeros([]))

    def _block(self, x, ws, res, noise_mode):
        x = getattr(self, f'layer{res * 2 - 4}')(x, ws[:, res * 2 - 4], noise_mode=noise_mode)
        return getattr(self, f'layer{res * 2 - 3}')(x, ws[:, res * 2 - 3], noise_mode=noise_mode)

    def _torgb(self, x, res):
        return getattr(self, f'torgb{2 ** res}')(x)

    def forward(self, ws, noise_mode='random', force_fp32=True, **_kwargs):
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f'ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}')
        ws = ws.to(torch.float32)
        x = self.layer0(None, ws[:, 0], noise_mode=noise_mode)
        x = self.layer1(x, ws[:, 1], noise_mode=noise_mode)
        log2 = self.resolution_log2
        lod = float(self.lod)
        if self.structure == 'fixed' or lod == 0 or log2 == 2:
            for res in range(3, log2 + 1):
                x = self._block(x, ws, res, noise_mode)
            return self._torgb(x, log2)
        if self.structure == 'linear':
            img = self._torgb(x, 2)
            for res in range(3, log2 + 1):
                x = self._block(x, ws, res, noise_mode)
                img = _lerp(self._torgb(x, res), _upscale(img, 2), min(max(lod - (log2 - res), 0.0), 1.0))
            return img
        # Recursive: descend while lod is below the level's own, then blend with the level below.
        res = 3
        while True:
            level = log2 - res
            y = self._block(x, ws, res, noise_mode)
            if level > 0 and lod < level:
                x, res = y, res + 1
                continue
            img = self._torgb(y, res)
            if lod > level:
                img = _lerp(img, _upscale(self._torgb(x, res - 1), 2), lod - level)
            return _upscale(img, 2 ** level)

    def extra_repr(self):
        return (f'w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, '
                f'img_width={self.img_width}, img_channels={self.img_channels}, structure={self.structure}')


# ----------------------------------------------------------------------------
# Generator


@persistence.persistent_class
class Generator(torch.nn.Module):
    """StyleGAN1 generator with the interface of our StyleGAN2 one."""

    def __init__(self,
        z_dim,                      # Latent size.
        c_dim,                      # Label size, 0 = unconditional.
        w_dim,                      # Disentangled latent size.
        img_resolution,             # Output height.
        img_channels,               # Output channels.
        square=True,                # False = StyleGAN-Human's H x H/2 images.
        mapping_kwargs={},          # Passed on to MappingNetwork.
        synthesis_kwargs={},        # Passed on to SynthesisNetwork.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.square = square
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          square=square, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=8, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, **synthesis_kwargs)


# ----------------------------------------------------------------------------
# Discriminator


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Appends the mean standard deviation over groups of samples as new feature maps."""

    def __init__(self, group_size=4, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w).to(torch.float32)
        y = y - y.mean(dim=0, keepdim=True)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])                       # [M, f]
        y = y.to(x.dtype).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """Conv0 (3x3) then Conv1_down (blur, 3x3 conv, 2x down-sampling)."""

    def __init__(self, in_channels, out_channels, fused=False, blur_filter=[1, 2, 1], activation='lrelu',
                 use_wscale=True):
        super().__init__()
        self.conv0 = ConvLayer(in_channels, in_channels, 3, use_wscale=use_wscale, activation=activation)
        self.conv1_down = ConvLayer(in_channels, out_channels, 3, use_wscale=use_wscale, activation=activation,
                                    down=True, fused=fused, blur_filter=blur_filter)

    def forward(self, x):
        return self.conv1_down(self.conv0(x))


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 block: minibatch stddev, 3x3 conv, two dense layers."""

    def __init__(self, in_channels, dense_features, out_features, size, mbstd_group_size=4, mbstd_num_channels=1,
                 activation='lrelu', use_wscale=True):
        super().__init__()
        gain = float(np.sqrt(2))
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_group_size > 1 else None
        extra = mbstd_num_channels if self.mbstd is not None else 0
        self.conv = ConvLayer(in_channels + extra, in_channels, 3, gain=gain, use_wscale=use_wscale,
                              activation=activation)
        self.dense0 = DenseLayer(in_channels * size[0] * size[1], dense_features, gain=gain, use_wscale=use_wscale,
                                 activation=activation)
        self.dense1 = DenseLayer(dense_features, out_features, gain=1.0, use_wscale=use_wscale)

    def forward(self, x):
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        return self.dense1(self.dense0(x.flatten(1)))


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """D_basic: image [N, C, H, W] (and label c) -> score [N, 1]."""

    def __init__(self,
        c_dim,                      # Label size, 0 = unconditional.
        img_resolution,             # Input height.
        img_channels,               # Input channels.
        square=True,                # False = StyleGAN-Human's H x H/2 images.
        channels=None,              # Channels at 4, 8, ..., img_resolution; None = from fmap_*.
        dense_features=None,        # Width of the hidden dense layer; None = from fmap_*.
        fmap_base=8192,
        fmap_decay=1.0,
        fmap_max=512,
        structure='fixed',          # 'fixed', 'linear' or 'recursive' (the original's 'auto').
        fused_scale='auto',         # True, False or 'auto' (fused where the smaller side >= 128).
        blur_filter=[1, 2, 1],
        mbstd_group_size=4,
        mbstd_num_channels=1,
        activation='lrelu',
        use_wscale=True,
    ):
        super().__init__()
        log2 = _check_resolution(img_resolution)
        structure = _check_structure(structure)
        stages = _stage_channels(log2, fmap_base, fmap_decay, fmap_max)
        if channels is None:
            channels = stages[1:]
        if dense_features is None:
            dense_features = stages[0]
        if len(channels) != log2 - 1:
            raise ValueError(f'channels needs {log2 - 1} entries (4 to {img_resolution}), got {len(channels)}')
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.square = square
        self.structure = structure
        self.resolution_log2 = log2
        self.channels = [int(c) for c in channels]
        base_h, base_w = _base_size(square)
        sizes = {res: (base_h << (res - 2), base_w << (res - 2)) for res in range(2, log2 + 1)}
        gain = float(np.sqrt(2))

        rgb_resolutions = [log2] if structure == 'fixed' else list(range(2, log2 + 1))
        for res in rgb_resolutions:
            setattr(self, f'fromrgb{2 ** res}', ConvLayer(img_channels, self.channels[res - 2], 1, gain=gain,
                                                          use_wscale=use_wscale, activation=activation))
        for res in range(log2, 2, -1):
            fused = min(sizes[res]) >= 128 if fused_scale == 'auto' else fused_scale
            setattr(self, f'block{2 ** res}', DiscriminatorBlock(self.channels[res - 2], self.channels[res - 3],
                                                                 fused=fused, blur_filter=blur_filter,
                                                                 activation=activation, use_wscale=use_wscale))
        self.epilogue = DiscriminatorEpilogue(self.channels[0], int(dense_features), max(c_dim, 1), sizes[2],
                                              mbstd_group_size=mbstd_group_size,
                                              mbstd_num_channels=mbstd_num_channels,
                                              activation=activation, use_wscale=use_wscale)
        self.register_buffer('lod', torch.zeros([]))

    def _fromrgb(self, img, res):
        return getattr(self, f'fromrgb{2 ** res}')(img)

    def _block(self, x, res):
        if res == 2:
            return self.epilogue(x)
        return getattr(self, f'block{2 ** res}')(x)

    def forward(self, img, c=None, **_kwargs):
        img = img.to(torch.float32)
        log2 = self.resolution_log2
        lod = float(self.lod)
        if self.structure == 'fixed' or lod == 0 or log2 == 2:
            x = self._fromrgb(img, log2)
            for res in range(log2, 1, -1):
                x = self._block(x, res)
        elif self.structure == 'linear':
            x = self._fromrgb(img, log2)
            for res in range(log2, 2, -1):
                x = self._block(x, res)
                img = _downscale(img, 2)
                x = _lerp(x, self._fromrgb(img, res - 1), min(max(lod - (log2 - res), 0.0), 1.0))
            x = self._block(x, 2)
        else:
            # Recursive: start at the finest level that lod reaches, then go down, blending once.
            top = log2
            while top > 2 and lod >= log2 - top + 1:
                top -= 1
            x = self._fromrgb(_downscale(img, 2 ** (log2 - top)), top)
            for res in range(top, 1, -1):
                level = log2 - res
                x = self._block(x, res)
                if res > 2 and lod > level:
                    x = _lerp(x, self._fromrgb(_downscale(img, 2 ** (level + 1)), res - 1), lod - level)
        if self.c_dim > 0:
            x = (x * c.to(x.dtype)).sum(dim=1, keepdim=True)
        return x

    def extra_repr(self):
        return (f'c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}, '
                f'structure={self.structure}')
