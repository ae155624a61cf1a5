"""StyleGAN3 (alias-free, configs T and R) generator with StyleGAN-Human's ``square`` flag.

Parameter and buffer names, constructor arguments and defaults, attributes and forward
signatures follow NVIDIA's StyleGAN3 ``training/networks_stylegan3.py``, so official
pickles load by name and NVIDIA's tools (``gen_images.py``, training, metrics) can drive
these classes.

StyleGAN-Human adds ``square``. With ``square=False`` the image is ``img_resolution``
high and ``img_resolution / 2`` wide, and so is every feature map: a layer whose
nominal size is ``n`` (sampling rate plus margins) works on maps ``n`` high and
``n // 2`` wide, so the side margins are ``margin_size / 2`` samples against
``margin_size`` at top and bottom. The Fourier input is sampled on that narrower grid
(its x extent is half its y extent, in the same units) and paddings are worked out per
axis. The layer names carry the map *width* (``L{index}_{width}_{channels}``), so a
rectangular network's names differ from a square one's; no buffer shape depends on
``square`` (``input.transform`` stays 3x3, ``input.freqs`` [C, 2], ``input.phases`` [C]).
Every class takes ``square`` as a keyword with default False, as this project's
StyleGAN2 networks do; legacy loading passes the stored or inferred value.

This file imports only numpy, scipy, torch and ``torch_utils``: network pickles embed
it and NVIDIA's code bases execute it.
"""

import numpy as np
import scipy.signal
import scipy.special
import torch

from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops import bias_act
from torch_utils.ops import conv2d_gradfix
from torch_utils.ops import filtered_lrelu

try:  # this project's precision choice; NVIDIA's torch_utils (this file dropped into its repo) has none
    from torch_utils import precision
except ImportError:
    precision = None



def _size_wh(size, square):
    """Map size as a numpy ``[width, height]`` pair.

    ``size`` is an int (the map height; also its width when ``square``, half of it
    otherwise) or an explicit ``[width, height]``.
    """
    if np.ndim(size) == 0:
        size = int(size)
        return np.array([size, size] if square else [size // 2, size], dtype=np.int64)
    return np.broadcast_to(np.asarray(size, dtype=np.int64), [2]).copy()


# ----------------------------------------------------------------------------
# Modulated convolution


@misc.profiled_function
def modulated_conv2d(
    x,                  # Input features [N, I, H, W].
    w,                  # Weight [O, I, kh, kw].
    s,                  # Styles [N, I].
    demodulate=True,    # Scale each output channel back to unit variance?
    padding=0,          # Zero padding: int or [pad_h, pad_w].
    input_gain=None,    # Extra per-input-channel factor: scalar, [I] or [N, I].
):
    """Convolve every sample of the batch with its own style-modulated weight."""
    with misc.suppress_tracer_warnings():
        batch_size = int(x.shape[0])
    out_channels, in_channels, kh, kw = w.shape
    misc.assert_shape(w, [out_channels, in_channels, kh, kw])
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    misc.assert_shape(s, [batch_size, in_channels])

    if demodulate:
        # Bring weight and styles to unit scale first; demodulation undoes it, but
        # the intermediate products then stay in range (float16).
        w = w * w.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()

    per_sample = w.unsqueeze(0) * s.reshape(batch_size, 1, in_channels, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        norm = (per_sample.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
        per_sample = per_sample * norm
    if input_gain is not None:
        gain = input_gain.expand(batch_size, in_channels)
        per_sample = per_sample * gain.reshape(batch_size, 1, in_channels, 1, 1)

    # One grouped convolution over the whole batch.
    grouped_x = x.reshape(1, batch_size * in_channels, *x.shape[2:])
    grouped_w = per_sample.reshape(batch_size * out_channels, in_channels, kh, kw)
    y = conv2d_gradfix.conv2d(input=grouped_x, weight=grouped_w.to(x.dtype), padding=padding, groups=batch_size)
    return y.reshape(batch_size, out_channels, *y.shape[2:])


# ----------------------------------------------------------------------------
# Fully connected layer and mapping network


@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate and an optional activation."""

    def __init__(self,
        in_features,            # Input width.
        out_features,           # Output width.
        activation='linear',    # Activation after the bias: 'linear', 'lrelu', 'relu', ...
        bias=True,              # Add a learned bias?
        lr_multiplier=1,        # Learning-rate multiplier.
        weight_init=1,          # Standard deviation of the initial weight.
        bias_init=0,            # Initial bias: scalar or [out_features].
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        if bias:
            initial = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
            self.bias = torch.nn.Parameter(torch.from_numpy(initial / lr_multiplier))
        else:
            self.bias = None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        weight = self.weight.to(x.dtype) * self.weight_gain
        bias = self.bias
        if bias is not None:
            bias = bias.to(x.dtype)
            if self.bias_gain != 1:
                bias = bias * self.bias_gain
        if self.activation == 'linear' and bias is not None:
            return torch.addmm(bias.unsqueeze(0), x, weight.t())
        return bias_act.bias_act(x.matmul(weight.t()), bias, act=self.activation)

    def extra_repr(self):
        return f'in_features={self.in_features:d}, out_features={self.out_features:d}, activation={self.activation:s}'


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """z (and optional label c) -> w, broadcast to ``num_ws`` copies, with truncation."""

    def __init__(self,
        z_dim,                  # Latent z width.
        c_dim,                  # Label width; 0 = unconditional.
        w_dim,                  # Width of w.
        num_ws,                 # How many copies of w to output.
        num_layers=2,           # Dense layers.
        lr_multiplier=0.01,     # Learning-rate multiplier of the dense layers.
        w_avg_beta=0.998,       # Decay of the running average of w (training).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        widths = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            setattr(self, f'fc{idx}', FullyConnectedLayer(widths[idx], widths[idx + 1], activation='lrelu',
                                                          lr_multiplier=lr_multiplier))
        self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        misc.assert_shape(z, [None, self.z_dim])
        if truncation_cutoff is None:
            truncation_cutoff = self.num_ws

        # Pixel-norm the latent (and the embedded label) and join them.
        x = z.to(torch.float32)
        x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        if self.c_dim > 0:
            misc.assert_shape(c, [None, self.c_dim])
            y = self.embed(c.to(torch.float32))
            y = y * (y.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
            x = torch.cat([x, y], dim=1)

        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        # One copy per synthesis input; the first ``truncation_cutoff`` move toward w_avg.
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self):
        return f'z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws:d}'


# ----------------------------------------------------------------------------
# Synthesis


@persistence.persistent_class
class SynthesisInput(torch.nn.Module):
    """Fourier features: sinusoids of random frequency in a disc, styled by a rotation and shift.

    ``transform`` is a user-settable 3x3 matrix (identity by default) mapping output
    coordinates to input coordinates, i.e. the inverse of the translate/rotate applied
    to the image (``G.synthesis.input.transform.copy_(inv(make_transform(...)))``).
    """

    def __init__(self,
        w_dim,          # Width of w.
        channels,       # Output channels.
        size,           # Output size: int, or [width, height].
        sampling_rate,  # Output sampling rate.
        bandwidth,      # Output bandwidth (largest frequency).
        square=False,   # Square output (True) or twice as high as wide (False, StyleGAN-Human)?
    ):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.square = square
        self.size = _size_wh(size, square)  # [width, height]
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth

        # Frequencies: random directions, radii drawn so that they fill a disc of the bandwidth.
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5

        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer('transform', torch.eye(3, 3))
        self.register_buffer('freqs', freqs)
        self.register_buffer('phases', phases)

    def forward(self, w):
        batch_size = w.shape[0]
        user = self.transform.unsqueeze(0)  # [1, 3, 3]
        freqs = self.freqs.unsqueeze(0)     # [1, C, 2]
        phases = self.phases.unsqueeze(0)   # [1, C]

        # Style: a unit rotation (cos, sin) and a translation (tx, ty) per sample.
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rot = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch_size, 1, 1])
        rot[:, 0, 0] = t[:, 0]
        rot[:, 0, 1] = -t[:, 1]
        rot[:, 1, 0] = t[:, 1]
        rot[:, 1, 1] = t[:, 0]
        shift = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch_size, 1, 1])
        shift[:, 0, 2] = -t[:, 2]
        shift[:, 1, 2] = -t[:, 3]
        m = rot @ shift @ user  # Inverse of: user transform, then translate, then rotate.

        # Move the transform onto the sinusoids.
        phases = phases + (freqs @ m[:, :2, 2:]).squeeze(2)
        freqs = freqs @ m[:, :2, :2]

        # Fade out frequencies that a user transform pushed past the band limit.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        # Sample positions of the output pixels, in units of the sampling period.
        width, height = int(self.size[0]), int(self.size[1])
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.size[0] / self.sampling_rate
        theta[1, 1] = 0.5 * self.size[1] / self.sampling_rate
        grid = torch.nn.functional.affine_grid(theta.unsqueeze(0), [1, 1, height, width], align_corners=False)

        # Evaluate the sinusoids there: [N, H, W, C].
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)

        # Learned channel mixing, then NCHW.
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        x = x.permute(0, 3, 1, 2)
        misc.assert_shape(x, [batch_size, self.channels, height, width])
        return x

    def extra_repr(self):
        return '\n'.join([
            f'w_dim={self.w_dim:d}, channels={self.channels:d}, size={list(self.size)}, square={self.square},',
            f'sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}'])


@persistence.persistent_class
class SynthesisLayer(torch.nn.Module):
    """Modulated conv, then bias + leaky ReLU at a raised sampling rate between low-pass filters."""

    def __init__(self,
        w_dim,                      # Width of w.
        is_torgb,                   # The final ToRGB layer?
        is_critically_sampled,      # Critically sampled (no radial filter, tight transition band)?
        use_fp16,                   # Run in float16 (on CUDA, unless force_fp32)?
        in_channels,                # Input channels.
        out_channels,               # Output channels.
        in_size,                    # Input size: int, or [width, height].
        out_size,                   # Output size: int, or [width, height].
        in_sampling_rate,           # Input sampling rate.
        out_sampling_rate,          # Output sampling rate.
        in_cutoff,                  # Input cutoff frequency.
        out_cutoff,                 # Output cutoff frequency.
        in_half_width,              # Input transition band half-width.
        out_half_width,             # Output transition band half-width.
        conv_kernel=3,              # Convolution kernel size (1 for ToRGB regardless).
        filter_size=6,              # Low-pass filter taps per factor of up/downsampling.
        lrelu_upsampling=2,         # Sampling-rate factor for the nonlinearity (ToRGB: 1).
        use_radial_filters=False,   # Radially symmetric downsampling filter (StyleGAN3-R)?
        conv_clamp=256,             # Clamp outputs to [-conv_clamp, +conv_clamp]; None = off.
        magnitude_ema_beta=0.999,   # Decay of the running mean square of the input.
        square=False,               # Square maps (True) or twice as high as wide (False, StyleGAN-Human)?
    ):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.square = square
        self.in_size = _size_wh(in_size, square)    # [width, height]
        self.out_size = _size_wh(out_size, square)  # [width, height]
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer('magnitude_ema', torch.ones([]))

        # Upsampling filter: input rate -> the nonlinearity's rate.
        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        assert in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if (self.up_factor > 1 and not is_torgb) else 1
        self.register_buffer('up_filter', self.design_lowpass_filter(
            numtaps=self.up_taps, cutoff=in_cutoff, width=in_half_width * 2, fs=self.tmp_sampling_rate))

        # Downsampling filter: the nonlinearity's rate -> output rate (radial for config R).
        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        assert out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = filter_size * self.down_factor if (self.down_factor > 1 and not is_torgb) else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer('down_filter', self.design_lowpass_filter(
            numtaps=self.down_taps, cutoff=out_cutoff, width=out_half_width * 2, fs=self.tmp_sampling_rate,
            radial=self.down_radial))

        # Padding per axis ([x, y]) so that the output lands on out_size, with sample
        # positions centred as in the symmetric interpretation of the paper (App. C.3).
        total = (self.out_size - 1) * self.down_factor + 1
        total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        total += self.up_taps + self.down_taps - 2
        lo = (total + self.up_factor) // 2
        hi = total - lo
        self.padding = [int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1])]

    def forward(self, x, w, noise_mode='random', force_fp32=False, update_emas=False):
        assert noise_mode in ('random', 'const', 'none')  # Accepted for API compatibility; StyleGAN3 has no noise.
        misc.assert_shape(x, [None, self.in_channels, int(self.in_size[1]), int(self.in_size[0])])
        misc.assert_shape(w, [x.shape[0], self.w_dim])

        if update_emas:
            with torch.autograd.profiler.record_function('update_magnitude_ema'):
                current = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(current.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * (self.conv_kernel ** 2)))

        use_half = self.use_fp16 and not force_fp32 and x.device.type == 'cuda'
        dtype = torch.float16 if use_half else torch.float32
        conv_dtype = dtype
        if precision is not None and precision.compute_dtype() == torch.bfloat16 and self.conv_kernel > 1:
            # --precision bf16: the 3x3 convolutions (StyleGAN3-T) in bfloat16. The 1x1 ones of -R
            # and of ToRGB gain nothing from it, and the resampling filters run slower in bf16 on the
            # CPU, so those stay in float32.
            conv_dtype = torch.bfloat16
        x = modulated_conv2d(x=x.to(conv_dtype), w=self.weight, s=styles, padding=self.conv_kernel - 1,
                             demodulate=(not self.is_torgb), input_gain=input_gain).to(dtype)

        x = filtered_lrelu.filtered_lrelu(
            x=x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(x.dtype),
            up=self.up_factor, down=self.down_factor, padding=self.padding,
            gain=(1 if self.is_torgb else np.sqrt(2)), slope=(1 if self.is_torgb else 0.2), clamp=self.conv_clamp)

        misc.assert_shape(x, [None, self.out_channels, int(self.out_size[1]), int(self.out_size[0])])
        assert x.dtype == dtype
        return x

    @staticmethod
    def design_lowpass_filter(numtaps, cutoff, width, fs, radial=False):
        """Kaiser-windowed low-pass: separable 1-D taps, or a 2-D jinc when ``radial``; None for 1 tap."""
        assert numtaps >= 1
        if numtaps == 1:
            return None
        if not radial:
            taps = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
            return torch.as_tensor(taps, dtype=torch.float32)
        # Radially symmetric: jinc (the 2-D ideal low-pass) times a separable Kaiser window.
        pos = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
        r = np.hypot(*np.meshgrid(pos, pos))
        taps = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
        beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
        window = np.kaiser(numtaps, beta)
        taps *= np.outer(window, window)
        taps /= np.sum(taps)
        return torch.as_tensor(taps, dtype=torch.float32)

    def extra_repr(self):
        return '\n'.join([
            f'w_dim={self.w_dim:d}, is_torgb={self.is_torgb},',
            f'is_critically_sampled={self.is_critically_sampled}, use_fp16={self.use_fp16},',
            f'in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g},',
            f'in_cutoff={self.in_cutoff:g}, out_cutoff={self.out_cutoff:g},',
            f'in_half_width={self.in_half_width:g}, out_half_width={self.out_half_width:g},',
            f'in_size={list(self.in_size)}, out_size={list(self.out_size)}, square={self.square},',
            f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}'])


@persistence.persistent_class
class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, H, W]: Fourier input, ``num_layers`` layers, ToRGB."""

    def __init__(self,
        w_dim,                      # Width of w.
        img_resolution,             # Output height (also the width when square, twice it otherwise).
        img_channels,               # Image channels.
        channel_base=32768,         # Channels of a layer: rint(min(channel_base / 2 / cutoff, channel_max)).
        channel_max=512,            # Upper bound on channels.
        num_layers=14,              # Layers between the Fourier input and ToRGB.
        num_critical=2,             # Critically sampled layers at the end.
        first_cutoff=2,             # Cutoff frequency of the first layer.
        first_stopband=2**2.1,      # Minimum stopband of the first layer.
        last_stopband_rel=2**0.3,   # Minimum stopband of the last layer, relative to its cutoff.
        margin_size=10,             # Extra samples on each side of the image (along the height).
        output_scale=0.25,          # Factor applied to the output.
        num_fp16_res=4,             # Use float16 in layers whose sampling rate is within this many octaves of the top.
        square=False,               # Square images (True) or twice as high as wide (False, StyleGAN-Human)?
        **layer_kwargs,             # Passed on to SynthesisLayer.
    ):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res
        self.square = square

        # Cutoffs and minimum stopbands rise geometrically, then stay at their last value
        # over the critically sampled layers.
        last_cutoff = img_resolution / 2
        last_stopband = last_cutoff * last_stopband_rel
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents

        # Sampling rate: the next power of two above twice the stopband, at most the resolution.
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        sizes = sampling_rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels

        self.input = SynthesisInput(w_dim=w_dim, channels=int(channels[0]), size=int(sizes[0]),
                                    sampling_rate=sampling_rates[0], bandwidth=cutoffs[0], square=square)
        self.layer_names = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim,
                is_torgb=(idx == num_layers),
                is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(sampling_rates[idx] * (2 ** num_fp16_res) > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev], out_half_width=half_widths[idx],
                square=square, **layer_kwargs)
            name = f'L{idx}_{layer.out_size[0]}_{layer.out_channels}'  # Carries the map width.
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws, **layer_kwargs):
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, **layer_kwargs)
        if self.output_scale != 1:
            x = x * self.output_scale
        width = self.img_resolution if self.square else self.img_resolution // 2
        misc.assert_shape(x, [None, self.img_channels, self.img_resolution, width])
        return x.to(torch.float32)

    def extra_repr(self):
        return '\n'.join([
            f'w_dim={self.w_dim:d}, num_ws={self.num_ws:d},',
            f'img_resolution={self.img_resolution:d}, img_channels={self.img_channels:d}, square={self.square},',
            f'num_layers={self.num_layers:d}, num_critical={self.num_critical:d},',
            f'margin_size={self.margin_size:d}, num_fp16_res={self.num_fp16_res:d}'])


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
        **synthesis_kwargs,     # Passed on to SynthesisNetwork.
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

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


# ----------------------------------------------------------------------------
# Reading ``square`` off a state dict (older pickles do not store it)

def _parse_layer_name(name):
    """``(index, width)`` for a ``...L{index}_{width}_{channels}.weight`` name, else None."""
    parts = name.split('.')
    if len(parts) < 2 or parts[-1] != 'weight' or not parts[-2].startswith('L'):
        return None
    fields = parts[-2][1:].split('_')
    if len(fields) != 3 or not all(field.isdigit() for field in fields):
        return None
    return int(fields[0]), int(fields[1])


def infer_square_from_tensors(tensors, img_resolution=None, margin_size=10):
    """Was this StyleGAN3 generator built with ``square=True``? Decided from parameter names.

    ``tensors`` maps dotted names (``synthesis.L14_32_3.weight``, ...) to tensors; only
    the names matter, since no shape depends on ``square``. The layer names carry the
    map width: the last layer (ToRGB) is ``img_resolution`` wide when square and half
    of it otherwise, which decides it when ``img_resolution`` is known. Without it the
    first layer decides, assuming ``margin_size``: its width is
    ``sampling_rate + 2 * margin_size`` when square and half of that otherwise, and
    with an even margin only one of the two reads as a power-of-two sampling rate.
    """
    widths = {}
    for name in tensors:
        parsed = _parse_layer_name(name)
        if parsed is not None:
            widths[parsed[0]] = parsed[1]
    if not widths:
        raise ValueError('no StyleGAN3 synthesis layers (L<index>_<width>_<channels>) among the tensors')
    if img_resolution is not None:
        last = widths[max(widths)]
        if last == img_resolution:
            return True
        if last * 2 == img_resolution:
            return False
        raise ValueError(f'last synthesis layer is {last} wide, which fits neither square nor 2:1 '
                         f'images of resolution {img_resolution}')

    def is_power_of_two(value):
        return value >= 1 and (value & (value - 1)) == 0

    first = widths[min(widths)]
    square_rate = first - 2 * margin_size
    rect_rate = 2 * first - 2 * margin_size
    if is_power_of_two(square_rate) and not is_power_of_two(rect_rate):
        return True
    if is_power_of_two(rect_rate) and not is_power_of_two(square_rate):
        return False
    raise ValueError(f'cannot tell square from 2:1 by the first layer width {first}; pass img_resolution')
