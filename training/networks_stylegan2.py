"""StyleGAN2 (ADA) generator and discriminator with StyleGAN-Human's ``square`` flag.

Parameter and buffer names, constructor signatures and forward signatures follow
NVIDIA's StyleGAN2-ADA / StyleGAN3 ``networks_stylegan2`` so that official pickles load
by name and NVIDIA's training and tooling code can drive these classes. Both generations
of the API are accepted: ``Generator(..., synthesis_kwargs={...})`` (ADA) and
``Generator(..., channel_base=..., ...)`` (StyleGAN3), ``update_emas`` (StyleGAN3) and
``skip_w_avg_update`` (ADA).

StyleGAN-Human adds ``square``. With ``square=False`` every feature map is twice as
tall as it is wide: the learned constant is ``[C, 4, 2]``, a layer at resolution ``r``
works on ``r x r/2`` maps (and keeps ``[r, r/2]`` constant noise), the output image is
``img_resolution x img_resolution/2``, and the discriminator expects such images and
ends on ``4 x 2`` maps.

This file imports only numpy, torch and ``torch_utils``: network pickles embed it and
NVIDIA's code bases execute it.
"""

import numpy as np
import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_resample
from torch_utils.ops import fma
from torch_utils.ops import upfirdn2d

try:  # this project's fused CPU path and precision choice; NVIDIA's torch_utils (this file dropped into its repo) has none
    from torch_utils import precision
    from torch_utils.ops import modulated_conv_fast, modulated_conv_grad, ops_mode
except ImportError:
    modulated_conv_fast = modulated_conv_grad = ops_mode = precision = None


def _fused_modconv_path(x, w, weight, activation='linear'):
    """This project's fused CPU modulated convolution for these inputs (the inference one or the
    one with gradients), or None where the reference runs."""
    for module in (modulated_conv_fast, modulated_conv_grad):
        if module is not None and module.applies(x, w, weight, activation=activation):
            return module
    return None


def _map_shape(resolution, square):
    """Height and width of a feature map at ``resolution``: square, or 2:1 tall."""
    return (resolution, resolution) if square else (resolution, resolution // 2)


# ----------------------------------------------------------------------------
# Functional building blocks


@misc.profiled_function
def normalize_2nd_moment(x, dim=1, eps=1e-8):
    """Scale ``x`` to unit root-mean-square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


@misc.profiled_function
def modulated_conv2d(
    x,                      # Activations [N, I, H, W].
    weight,                 # Shared kernel [O, I, kh, kw].
    styles,                 # Per-sample input scales [N, I].
    noise=None,             # Optional tensor added to the result.
    up=1,                   # Integer upsampling factor.
    down=1,                 # Integer downsampling factor.
    padding=0,              # Padding, measured on the upsampled input.
    resample_filter=None,   # Filter from upfirdn2d.setup_filter(), used when resampling.
    demodulate=True,        # Normalize every output channel to unit expected variance?
    flip_weight=True,       # True: correlation (as torch conv2d); False: true convolution.
    fused_modconv=True,     # One grouped convolution over the batch instead of scaling activations?
):
    """Convolution whose kernel is scaled per sample by ``styles`` (and demodulated)."""
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels, kh, kw])
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    misc.assert_shape(styles, [batch_size, in_channels])

    # In half precision, bring kernel and styles to a safe range first; demodulation
    # cancels these factors exactly.
    if x.dtype == torch.float16 and demodulate:
        kernel_max = weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True)
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / kernel_max)
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    # Per-sample kernels and their demodulation coefficients.
    per_sample = None
    dcoefs = None
    if demodulate or fused_modconv:
        per_sample = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (per_sample.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if demodulate and fused_modconv:
        per_sample = per_sample * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    if not fused_modconv:
        # Scale the activations on the way in and out of one shared convolution.
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample.conv2d_resample(x=x, w=weight.to(x.dtype), f=resample_filter,
                                            up=up, down=down, padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            x = fma.fma(x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1), noise.to(x.dtype))
        elif demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        elif noise is not None:
            x = x.add_(noise.to(x.dtype))
        return x

    # Fold the batch into channels and run a grouped convolution, one group per sample.
    with misc.suppress_tracer_warnings():  # the batch size becomes a constant when tracing
        batch_size = int(batch_size)
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    x = x.reshape(1, -1, *x.shape[2:])
    grouped = per_sample.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample.conv2d_resample(x=x, w=grouped.to(x.dtype), f=resample_filter, up=up, down=down,
                                        padding=padding, groups=batch_size, flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x


# ----------------------------------------------------------------------------
# Layers


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate and a fused activation."""

    def __init__(self,
        in_features,            # Input width.
        out_features,           # Output width.
        bias=True,              # Add a learned bias before the activation?
        activation='linear',    # Activation name understood by bias_act: 'linear', 'relu', 'lrelu', ...
        lr_multiplier=1,        # Learning-rate multiplier for weight and bias.
        bias_init=0,            # Starting value of the bias.
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight.to(x.dtype)
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        # The weight gain scales the input where that is smaller than the weight: a pass over a
        # 512x512 weight on every call adds up (25 layers per image). (Not addmm's alpha: a
        # one-row product then rounds unlike a batch's rows.)
        if x.numel() <= w.numel():
            x = x * self.weight_gain
        else:
            w = w * self.weight_gain
        if x.ndim == 2 and x.shape[0] > 1 and ops_mode is not None and ops_mode.fast_cpu_inference(x, w):
            # Row by row: the BLAS rounds a batch's rows unlike a single row (another kernel), and
            # the fast path makes every image of a batch the image generated alone.
            return torch.cat([self._product(row, w, b) for row in x.split(1)])
        return self._product(x, w, b)

    def _product(self, x, w, b):
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self):
        return f'in_features={self.in_features:d}, out_features={self.out_features:d}, activation={self.activation:s}'


@persistence.persistent_class
class Conv2dLayer(torch.nn.Module):
    """Convolution with equalized learning rate, optional resampling, bias, activation and clamp."""

    def __init__(self,
        in_channels,                # Input channels.
        out_channels,               # Output channels.
        kernel_size,                # Square kernel size.
        bias=True,                  # Add a learned bias before the activation?
        activation='linear',        # Activation name understood by bias_act.
        up=1,                       # Integer upsampling factor.
        down=1,                     # Integer downsampling factor.
        resample_filter=[1, 3, 3, 1],  # Low-pass filter taps used when resampling.
        conv_clamp=None,            # Clamp outputs to +-conv_clamp; None disables it.
        channels_last=False,        # Keep the weight in channels_last memory format?
        trainable=True,             # Parameters (True) or frozen buffers (False)?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias) if bias is not None else None
        else:
            self.register_buffer('weight', weight)
            if bias is not None:
                self.register_buffer('bias', bias)
            else:
                self.bias = None

    def forward(self, x, gain=1):
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = (self.up == 1)  # correlation is a little faster; transposed convs need the flip
        x = conv2d_resample.conv2d_resample(x=x, w=w.to(x.dtype), f=self.resample_filter, up=self.up,
                                            down=self.down, padding=self.padding, flip_weight=flip_weight)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self):
        return (f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, '
                f'activation={self.activation:s}, up={self.up}, down={self.down}')


# ----------------------------------------------------------------------------
# Mapping network


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """z (and an optional label c) -> w, broadcast to ``num_ws`` copies, with truncation."""

    def __init__(self,
        z_dim,                  # Latent z width; 0 = no latent.
        c_dim,                  # Label width; 0 = unconditional.
        w_dim,                  # Output w width.
        num_ws,                 # Copies of w to output; None = return [N, w_dim] without broadcasting.
        num_layers=8,           # Number of dense layers.
        embed_features=None,    # Width of the label embedding; None = w_dim.
        layer_features=None,    # Width of the hidden layers; None = w_dim.
        activation='lrelu',     # Activation of the dense layers.
        lr_multiplier=0.01,     # Learning-rate multiplier of the dense layers.
        w_avg_beta=0.998,       # Decay of the running mean of w; None = do not keep one.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        widths = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f'fc{idx}', FullyConnectedLayer(widths[idx], widths[idx + 1], activation=activation,
                                                          lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=None, skip_w_avg_update=False):
        """Map to w.

        ``w_avg`` is updated with this batch when ``update_emas`` is true (the StyleGAN3
        convention). Callers written for StyleGAN2-ADA pass neither ``update_emas`` nor
        anything but ``skip_w_avg_update``: for them (``update_emas=None``) the update
        happens in training mode unless ``skip_w_avg_update`` is set, as ADA did.
        Truncation moves the first ``truncation_cutoff`` copies (all when None) toward
        ``w_avg`` by ``truncation_psi``.
        """
        x = None
        with torch.autograd.profiler.record_function('input'):
            if self.z_dim > 0:
                misc.assert_shape(z, [None, self.z_dim])
                x = normalize_2nd_moment(z.to(torch.float32))
            if self.c_dim > 0:
                misc.assert_shape(c, [None, self.c_dim])
                y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
                x = y if x is None else torch.cat([x, y], dim=1)

        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas is None:
            update_emas = self.training and not skip_w_avg_update
        if update_emas and self.w_avg_beta is not None and self.num_ws is not None:  # w_avg exists
            with torch.autograd.profiler.record_function('update_w_avg'):
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            with torch.autograd.profiler.record_function('broadcast'):
                x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            with torch.autograd.profiler.record_function('truncate'):
                assert self.w_avg_beta is not None, 'truncation needs w_avg'
                if self.num_ws is None or truncation_cutoff is None:
                    x = self.w_avg.lerp(x, truncation_psi)
                else:
                    x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self):
        return f'z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws}'


# ----------------------------------------------------------------------------
# Synthesis network


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution (optionally upsampling 2x), noise, bias and activation."""

    def __init__(self,
        in_channels,                # Input channels.
        out_channels,               # Output channels.
        w_dim,                      # Width of w.
        resolution,                 # Output resolution (height).
        kernel_size=3,              # Kernel size.
        up=1,                       # Integer upsampling factor.
        use_noise=True,             # Add per-pixel noise?
        activation='lrelu',         # Activation name understood by bias_act.
        resample_filter=[1, 3, 3, 1],  # Low-pass filter taps used when resampling.
        conv_clamp=None,            # Clamp outputs to +-conv_clamp; None disables it.
        channels_last=False,        # Keep the weight in channels_last memory format?
        square=False,               # Square maps (True) or 2:1 tall ones (False, StyleGAN-Human)?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.square = square
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = bias_act.activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        if use_noise:
            self.register_buffer('noise_const', torch.randn(list(_map_shape(resolution, square))))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1):
        assert noise_mode in ['random', 'const', 'none'], f'unknown noise_mode {noise_mode!r}'
        misc.assert_shape(x, [None, self.in_channels, *_map_shape(self.resolution // self.up, self.square)])
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == 'random':
            height, width = _map_shape(self.resolution, self.square)
            noise = torch.randn([x.shape[0], 1, height, width], device=x.device) * self.noise_strength
        if self.use_noise and noise_mode == 'const':
            noise = self.noise_const * self.noise_strength

        flip_weight = (self.up == 1)
        fused = _fused_modconv_path(x, w, self.weight, activation=self.activation)
        if fused is not None:
            return fused.modulated_conv_bias_act(
                x, self.weight, styles, self.bias, noise=noise, up=self.up, padding=self.padding,
                resample_filter=self.resample_filter, flip_weight=flip_weight, activation=self.activation,
                alpha=bias_act.activation_funcs[self.activation].def_alpha, gain=self.act_gain * gain,
                clamp=self.conv_clamp * gain if self.conv_clamp is not None else None)
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=flip_weight, fused_modconv=fused_modconv)

        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self):
        return (f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}, '
                f'resolution={self.resolution:d}, up={self.up}, activation={self.activation:s}, square={self.square}')


@persistence.persistent_class
class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    def forward(self, x, w, fused_modconv=True):
        styles = self.affine(w) * self.weight_gain
        fused = _fused_modconv_path(x, w, self.weight)
        if fused is not None and fused is modulated_conv_fast:
            rgb = fused.to_rgb(x, self.weight, styles, self.bias, clamp=self.conv_clamp)
            if rgb is not None:   # float32 already (bfloat16 maps on the AMX tiles)
                return rgb
        if fused is not None:
            return fused.modulated_conv_bias_act(
                x, self.weight, styles, self.bias, demodulate=False, activation='linear', clamp=self.conv_clamp)
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self):
        return f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}'


@persistence.persistent_class
class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const or 2x up) two convs, optional ToRGB."""

    def __init__(self,
        in_channels,                    # Input channels; 0 = first block, which starts from a learned constant.
        out_channels,                   # Output channels.
        w_dim,                          # Width of w.
        resolution,                     # Resolution (height) of this block.
        img_channels,                   # Image channels.
        is_last,                        # Last block of the network?
        architecture='skip',            # 'orig', 'skip' or 'resnet'.
        resample_filter=[1, 3, 3, 1],   # Low-pass filter taps used when resampling.
        conv_clamp=256,                 # Clamp conv outputs to +-conv_clamp; None disables it.
        use_fp16=False,                 # Run this block in float16 (CUDA only)?
        fp16_channels_last=False,       # With float16, use channels_last memory format?
        fused_modconv_default=True,     # fused_modconv when the caller gives None; 'inference_only' = not training.
        square=False,                   # Square maps (True) or 2:1 tall ones (False)?
        **layer_kwargs,                 # Passed on to SynthesisLayer.
    ):
        assert architecture in ['orig', 'skip', 'resnet']
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.fused_modconv_default = fused_modconv_default
        self.square = square
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, *_map_shape(resolution, square)]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, square=square, **layer_kwargs)
            self.num_conv += 1

        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, square=square,
                                    **layer_kwargs)
        self.num_conv += 1

        if is_last or architecture == 'skip':
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1

        if in_channels != 0 and architecture == 'resnet':
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, update_emas=False, **layer_kwargs):
        _ = update_emas  # nothing to track here
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        w_iter = iter(ws.unbind(dim=1))
        if ws.device.type != 'cuda':
            force_fp32 = True  # float16 is only used on CUDA, as upstream
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        if precision is not None and precision.compute_dtype() == torch.bfloat16:
            dtype = torch.bfloat16   # --precision bf16: every block, whatever force_fp32 says
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if memory_format == torch.contiguous_format and ops_mode is not None and ops_mode.fast_cpu(ws):
            memory_format = torch.preserve_format  # the fused CPU paths keep activations channels-last
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == 'inference_only':
            fused_modconv = (not self.training)

        in_shape = _map_shape(self.resolution // 2, self.square)
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            misc.assert_shape(x, [None, self.in_channels, *in_shape])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == 'resnet':
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            misc.assert_shape(img, [None, self.img_channels, *in_shape])
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == 'skip':
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = y if img is None else img.add_(y)

        assert x.dtype == dtype
        assert img is None or img.dtype == torch.float32
        return x, img

    def extra_repr(self):
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}, square={self.square}'


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, H, W] through blocks b4, b8, ..., b{img_resolution}."""

    def __init__(self,
        w_dim,                  # Width of w.
        img_resolution,         # Output height, a power of two >= 4 (width is half of it unless square).
        img_channels,           # Image channels.
        channel_base=32768,     # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max=512,        # Upper bound on channels.
        num_fp16_res=4,         # Use float16 for the top N resolutions (on CUDA).
        square=False,           # Square maps (True) or 2:1 tall ones (False, StyleGAN-Human)?
        **block_kwargs,         # Passed on to SynthesisBlock.
    ):
        assert img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.square = square
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = (res == self.img_resolution)
            block = SynthesisBlock(channels_dict[res // 2] if res > 4 else 0, channels_dict[res], w_dim=w_dim,
                                   resolution=res, img_channels=img_channels, is_last=is_last,
                                   use_fp16=(res >= fp16_resolution), square=square, **block_kwargs)
            # Consecutive blocks share a w between one block's ToRGB and the next block's first conv.
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f'b{res}', block)

    def forward(self, ws, **block_kwargs):
        with torch.autograd.profiler.record_function('split_ws'):
            misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
            ws = ws.to(torch.float32)
            block_ws = []
            w_idx = 0
            for res in self.block_resolutions:
                block = getattr(self, f'b{res}')
                block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
                w_idx += block.num_conv

        x = img = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            x, img = getattr(self, f'b{res}')(x, img, cur_ws, **block_kwargs)
        return img

    def extra_repr(self):
        return (f'w_dim={self.w_dim:d}, num_ws={self.num_ws:d}, img_resolution={self.img_resolution:d}, '
                f'img_channels={self.img_channels:d}, num_fp16_res={self.num_fp16_res:d}, square={self.square}')


@persistence.persistent_class
class Generator(torch.nn.Module):
    """Mapping plus synthesis. ``square=False`` makes img_resolution x img_resolution/2 images."""

    def __init__(self,
        z_dim,                  # Latent z width.
        c_dim,                  # Label width; 0 = unconditional.
        w_dim,                  # Width of w.
        img_resolution,         # Output height.
        img_channels,           # Image channels.
        square=False,           # Square images (True) or 2:1 tall ones (False, StyleGAN-Human)?
        mapping_kwargs={},      # Passed on to MappingNetwork.
        synthesis_kwargs={},    # Passed on to SynthesisNetwork (StyleGAN2-ADA style).
        **extra_synthesis_kwargs,  # Also passed on to SynthesisNetwork (StyleGAN3 style).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.square = square
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          square=square, **synthesis_kwargs, **extra_synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


# ----------------------------------------------------------------------------
# Discriminator


@persistence.persistent_class
class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator: (FromRGB) conv, conv with 2x down, resnet skip."""

    def __init__(self,
        in_channels,                    # Input channels; 0 = first block, which reads the image.
        tmp_channels,                   # Channels between the two convs.
        out_channels,                   # Output channels.
        resolution,                     # Resolution (height) of this block.
        img_channels,                   # Image channels.
        first_layer_idx,                # Index of this block's first layer, for freeze_layers.
        architecture='resnet',          # 'orig', 'skip' or 'resnet'.
        activation='lrelu',             # Activation name understood by bias_act.
        resample_filter=[1, 3, 3, 1],   # Low-pass filter taps used when resampling.
        conv_clamp=None,                # Clamp conv outputs to +-conv_clamp; None disables it.
        use_fp16=False,                 # Run this block in float16 (CUDA only)?
        fp16_channels_last=False,       # With float16, use channels_last memory format?
        freeze_layers=0,                # Freeze-D: layers with a smaller index are frozen buffers.
        square=False,                   # Square maps (True) or 2:1 tall ones (False)?
    ):
        assert in_channels in [0, tmp_channels]
        assert architecture in ['orig', 'skip', 'resnet']
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = (use_fp16 and fp16_channels_last)
        self.square = square
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))

        self.num_layers = 0

        def next_trainable():
            trainable = (self.first_layer_idx + self.num_layers >= freeze_layers)
            self.num_layers += 1
            return trainable

        if in_channels == 0 or architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=next_trainable(), conv_clamp=conv_clamp,
                                       channels_last=self.channels_last)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=next_trainable(), conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=next_trainable(), resample_filter=resample_filter, conv_clamp=conv_clamp,
                                 channels_last=self.channels_last)
        if architecture == 'resnet':
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=next_trainable(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(self, x, img, force_fp32=False):
        if (x if x is not None else img).device.type != 'cuda':
            force_fp32 = True  # float16 is only used on CUDA, as upstream
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        shape = _map_shape(self.resolution, self.square)

        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, *shape])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, *shape])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = y if x is None else x + y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == 'skip' else None

        if self.architecture == 'resnet':
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x)
            x = self.conv1(x)

        assert x.dtype == dtype
        return x, img

    def extra_repr(self):
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}, square={self.square}'


@persistence.persistent_class
class MinibatchStdLayer(torch.nn.Module):
    """Append the mean standard deviation over groups of samples as extra feature channels."""

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        N, C, H, W = x.shape
        with misc.suppress_tracer_warnings():  # constants when tracing
            G = torch.min(torch.as_tensor(self.group_size), torch.as_tensor(N)) if self.group_size is not None else N
        F = self.num_channels
        c = C // F

        y = x.reshape(G, -1, F, c, H, W)   # groups of G samples; channels split into F sets
        y = y - y.mean(dim=0)              # deviation from the group mean
        y = y.square().mean(dim=0)         # variance within each group
        y = (y + 1e-8).sqrt()              # standard deviation
        y = y.mean(dim=[2, 3, 4])          # [n, F]: averaged over channels and pixels
        y = y.reshape(-1, F, 1, 1)
        y = y.repeat(G, 1, H, W)           # back to [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self):
        return f'group_size={self.group_size}, num_channels={self.num_channels:d}'


@persistence.persistent_class
class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 (or 4x2) head: minibatch std, conv, two dense layers, optional label projection."""

    def __init__(self,
        in_channels,                # Input channels.
        cmap_dim,                   # Width of the mapped label; 0 = unconditional.
        resolution,                 # Resolution (height) of this block.
        img_channels,               # Image channels.
        architecture='resnet',      # 'orig', 'skip' or 'resnet'.
        mbstd_group_size=4,         # Group size of the minibatch std layer; None = whole batch.
        mbstd_num_channels=1,       # Channels added by the minibatch std layer; 0 = no such layer.
        activation='lrelu',         # Activation name understood by bias_act.
        conv_clamp=None,            # Clamp conv outputs to +-conv_clamp; None disables it.
        square=False,               # Square maps (True) or 2:1 tall ones (False)?
    ):
        assert architecture in ['orig', 'skip', 'resnet']
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        self.square = square

        if architecture == 'skip':
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels) \
            if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        height, width = _map_shape(resolution, square)
        self.fc = FullyConnectedLayer(in_channels * height * width, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap, force_fp32=False):
        _ = force_fp32  # the head always runs in float32
        shape = _map_shape(self.resolution, self.square)
        misc.assert_shape(x, [None, self.in_channels, *shape])
        dtype = torch.float32
        memory_format = torch.contiguous_format

        x = x.to(dtype=dtype, memory_format=memory_format)
        if self.architecture == 'skip':
            misc.assert_shape(img, [None, self.img_channels, *shape])
            img = img.to(dtype=dtype, memory_format=memory_format)
            x = x + self.fromrgb(img)

        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)

        if self.cmap_dim > 0:
            # Projection discriminator: score = <features, mapped label> / sqrt(cmap_dim).
            misc.assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))

        assert x.dtype == dtype
        return x

    def extra_repr(self):
        return f'resolution={self.resolution:d}, architecture={self.architecture:s}, square={self.square}'


@persistence.persistent_class
class Discriminator(torch.nn.Module):
    """Image (and label) -> logits [N, 1]. ``square=False`` expects img_resolution x img_resolution/2."""

    def __init__(self,
        c_dim,                  # Label width; 0 = unconditional.
        img_resolution,         # Input height.
        img_channels,           # Image channels.
        architecture='resnet',  # 'orig', 'skip' or 'resnet'.
        channel_base=32768,     # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max=512,        # Upper bound on channels.
        num_fp16_res=4,         # Use float16 for the top N resolutions (on CUDA).
        conv_clamp=256,         # Clamp conv outputs to +-conv_clamp; None disables it.
        cmap_dim=None,          # Width of the mapped label; None = channels at 4x4.
        square=False,           # Square images (True) or 2:1 tall ones (False, StyleGAN-Human)?
        block_kwargs={},        # Passed on to DiscriminatorBlock.
        mapping_kwargs={},      # Passed on to the label MappingNetwork.
        epilogue_kwargs={},     # Passed on to DiscriminatorEpilogue.
    ):
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.square = square
        self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        if cmap_dim is None:
            cmap_dim = channels_dict[4]
        if c_dim == 0:
            cmap_dim = 0

        common_kwargs = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        cur_layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels_dict[res] if res < img_resolution else 0, channels_dict[res],
                                       channels_dict[res // 2], resolution=res, first_layer_idx=cur_layer_idx,
                                       use_fp16=(res >= fp16_resolution), square=square,
                                       **block_kwargs, **common_kwargs)
            setattr(self, f'b{res}', block)
            cur_layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels_dict[4], cmap_dim=cmap_dim, resolution=4, square=square,
                                        **epilogue_kwargs, **common_kwargs)

    def forward(self, img, c, update_emas=False, **block_kwargs):
        _ = update_emas  # nothing to track here
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f'b{res}')(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def extra_repr(self):
        return (f'c_dim={self.c_dim:d}, img_resolution={self.img_resolution:d}, '
                f'img_channels={self.img_channels:d}, square={self.square}')
