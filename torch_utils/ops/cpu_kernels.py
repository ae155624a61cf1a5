"""Fused CPU kernels for StyleGAN2's layers (``cpu_kernels.c``), built at first use.

On the largest maps the fast path's remaining cost was passes over memory: scale, noise,
bias, activation and clamp each read and wrote the whole map, and the upsampling layers'
filter once more. ``epilogue_`` does the first five in one pass and ``fir_epilogue`` the
filter and them in one (``fir_epilogue_phases`` reading a transposed convolution from its
four phase convolutions); ``upsample2x`` is the image's 2x upsampling; and
``winograd_conv3x3`` runs a float32 3x3 convolution as Winograd F(4x4, 3x3), its tile
transforms here and its 36 products with them up to 128 channels (as one ``torch.bmm``
for wider layers), with 4x less arithmetic
(``winograd_tiles`` and ``winograd_output_adjoint`` give ``winograd_conv`` its gradients).
Where the CPU has AMX (``amx_conv.c``), ``amx_conv3x3`` runs narrow bfloat16 3x3 layers with
their epilogue, ``amx_phases`` an upsampling layer's four phase convolutions in one pass and
``amx_project`` ToRGB's 1x1 projection into float32 image planes.

The C source is compiled once per machine with the system's C compiler (``$CC``, else
``cc``) for this CPU (``-march=native``, OpenMP where the compiler has it), and the library
is kept in the cache (``~/.cache/dnnlib/cpu_kernels``, or ``$DNNLIB_CACHE_DIR``), named by
a hash of the source, the compiler and the CPU. Where no compiler works, or where
``STYLEGAN_HUMAN_CPU_KERNELS=0``, the kernels are unavailable (a failed build says so in one
warning) and callers keep their PyTorch ops: every function here returns None / False
when it does not apply, and the caller computes the same thing itself.
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from typing import Optional, Sequence, Tuple

import torch

from dnnlib import downloads

from . import derived

_ENV = 'STYLEGAN_HUMAN_CPU_KERNELS'
_SOURCES = [os.path.join(os.path.dirname(os.path.abspath(__file__)), name) for name in ('cpu_kernels.c', 'amx_conv.c')]
_FORMATS = {torch.float32: 'f32', torch.bfloat16: 'bf16'}
TAPS = 4   # the filter length the C kernel is written for (StyleGAN2's [1, 3, 3, 1])
# Below this many channels a pixel's values are too few to vectorise over, and the in-place
# epilogue loses to PyTorch's ops (ToRGB's 3 channels: 2x slower, measured).
MIN_EPILOGUE_CHANNELS = 16
_lock = threading.Lock()
_library = None   # the loaded library; False once it could not be had


def available() -> bool:
    """True when the kernels are built (or can be now) and loaded in this process."""
    return _load() is not None


def _load():
    global _library
    if _library is None:
        with _lock:
            if _library is None:
                _library = _build_and_open() or False
    return _library or None


def _build_and_open():
    if os.environ.get(_ENV, '1').strip() == '0':
        return None
    compiler = shutil.which(os.environ.get('CC', 'cc'))
    if compiler is None:
        return None   # no compiler on this machine: the PyTorch ops, silently
    try:
        source = b''
        for name in _SOURCES:
            with open(name, 'rb') as f:
                source += f.read()
        path = _cached_library(compiler, source)
        library = ctypes.CDLL(path)
        _declare(library)
        _self_test(library)
        return library
    except Exception as error:   # any failure leaves the PyTorch ops in place
        warnings.warn(f'fused CPU kernels unavailable, using the PyTorch ops: {_one_line(error)}')
        return None


def _cached_library(compiler, source):
    """The compiled library's path, building it first if this machine has none yet."""
    key = hashlib.sha256(source + _compiler_identity(compiler) + _cpu_identity()).hexdigest()[:16]
    folder = downloads.make_cache_dir_path('cpu_kernels')
    path = os.path.join(folder, f'cpu_kernels-{key}.so')
    if os.path.isfile(path):
        return path
    os.makedirs(folder, exist_ok=True)
    flag_sets = (['-march=native', '-fopenmp'], ['-march=native'], [])   # best first
    errors = []
    for flags in flag_sets:
        handle, scratch = tempfile.mkstemp(suffix='.so', dir=folder)
        os.close(handle)
        try:
            command = [compiler, '-O3', '-fPIC', '-shared', *flags, *_SOURCES, '-o', scratch]
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if result.returncode == 0:
                os.replace(scratch, path)   # whole or not at all, even with another process building too
                return path
        finally:
            if os.path.exists(scratch):
                os.remove(scratch)
        errors.append(result.stderr.strip().splitlines()[-1:] or [f'exit status {result.returncode}'])
    raise RuntimeError(f'{os.path.basename(compiler)} could not build the kernels: {errors[-1][0]}')


def _compiler_identity(compiler):
    result = subprocess.run([compiler, '--version'], capture_output=True, timeout=60)
    return compiler.encode() + result.stdout


def _cpu_identity():
    """What -march=native compiles for: the CPU's feature flags where Linux lists them."""
    identity = platform.machine() + platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            identity += next((line for line in f if line.startswith(('flags', 'Features'))), '')
    except OSError:
        pass
    return identity.encode()


def _declare(library):
    i64, f32, i32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_int, ctypes.c_void_p
    epilogue = [ptr, i64, i64, ptr, ptr, f32, ptr, f32, i32, f32, f32, i32]
    fir = [i64, ptr, i64, i64, ptr, ptr, i32, i32, ptr, ptr, f32, ptr, f32, i32, f32, f32, i32]   # from channels on
    for suffix in _FORMATS.values():
        getattr(library, f'sgh_epilogue_{suffix}').argtypes = epilogue
        getattr(library, f'sgh_epilogue_{suffix}').restype = None
        getattr(library, f'sgh_fir_epilogue_{suffix}').argtypes = [ptr, i64, i64] + fir
        getattr(library, f'sgh_fir_epilogue_{suffix}').restype = i32
        getattr(library, f'sgh_fir_epilogue_phases_{suffix}').argtypes = [ptr] * 4 + [i64, i64] + fir
        getattr(library, f'sgh_fir_epilogue_phases_{suffix}').restype = i32
    library.sgh_winograd_input.argtypes = [ptr, i64, i64, i64, ptr, ptr, i32]
    library.sgh_winograd_input.restype = None
    library.sgh_winograd_output.argtypes = [ptr, i64, i64, i64, ptr, ptr, ptr, f32, ptr, f32, i32, f32, f32, i32]
    library.sgh_winograd_output.restype = None
    library.sgh_act_backward.argtypes = [ptr, ptr, i64, i64, f32, i32, f32, f32, ptr, ptr, ptr, i32]
    library.sgh_act_backward.restype = i32
    library.sgh_winograd_conv.argtypes = [ptr, i64, i64, i64, ptr, ptr, i64, ptr, ptr, ptr, f32, ptr, f32, i32, f32, f32,
                                          i32]
    library.sgh_winograd_conv.restype = i32
    library.sgh_winograd_conv_fits.argtypes = []
    library.sgh_winograd_conv_fits.restype = i32
    library.sgh_winograd_output_adjoint.argtypes = [ptr, i64, i64, i64, ptr, i32]
    library.sgh_winograd_output_adjoint.restype = None
    library.sgh_winograd_kernel_gradient.argtypes = [ptr, ptr, i64, i64, i64, i64, ptr, i32]
    library.sgh_winograd_kernel_gradient.restype = i32
    library.sgh_winograd_kernel_transform.argtypes = [ptr, i64, i64, i32, ptr, i64, i64, i32]
    library.sgh_winograd_kernel_transform.restype = None
    library.sgh_winograd_kernel_transform_adjoint.argtypes = [ptr, i64, i64, ptr, i32]
    library.sgh_winograd_kernel_transform_adjoint.restype = None
    library.sgh_tap_square_sum.argtypes = [ptr, i64, i64, i64, ptr, i32]
    library.sgh_tap_square_sum.restype = None
    library.sgh_upsample2x.argtypes = [ptr, i64, i64, i64, ptr, i64, i64, ptr, ptr, ptr, ptr, i32]
    library.sgh_upsample2x.restype = i32
    library.sgh_amx_conv_ready.argtypes = []
    library.sgh_amx_conv_ready.restype = i32
    library.sgh_amx_conv3x3_bf16.argtypes = [ptr, i64, i64, i64, ptr, i64, ptr, ptr, ptr, f32, ptr, f32, i32, f32, f32,
                                             i32]
    library.sgh_amx_conv3x3_bf16.restype = i32
    library.sgh_amx_phases_bf16.argtypes = [ptr, i64, i64, i64, ptr, i64, ctypes.POINTER(ptr), i32]
    library.sgh_amx_phases_bf16.restype = i32
    library.sgh_amx_project_bf16.argtypes = [ptr, i64, i64, ptr, i64, ptr, ptr, f32, f32, i32]
    library.sgh_amx_project_bf16.restype = None


def _self_test(library):
    """One small call each against PyTorch, so a miscompiled library is never used."""
    x = torch.linspace(-3, 3, 2 * 5 * 4).reshape(1, 4, 5, 2).permute(0, 3, 1, 2)   # channels-last [1, 2, 4, 5]
    y = x.clone(memory_format=torch.channels_last)
    ones, zeros = torch.ones(2), torch.zeros(2)
    _call_epilogue(library, y, ones, None, 0.0, zeros, 0.2, True, 1.0)
    want = torch.nn.functional.leaky_relu(x, 0.2).clamp(-1, 1)
    taps = torch.tensor([0.5, 1.0, -1.0, 2.0])
    out = torch.empty([1, 2, 4, 5], memory_format=torch.channels_last)
    _call_fir(library, [x], [4, 5], out, taps, taps.flip(0), [0, 2], ones, None, 0.0, zeros, None, None)
    kernel = torch.outer(taps, taps.flip(0))[None, None].repeat(2, 1, 1, 1)
    want_fir = torch.nn.functional.conv2d(torch.nn.functional.pad(x, [2, 1, 0, 3]), kernel, groups=2)
    if not (torch.allclose(y, want, atol=1e-6) and torch.allclose(out, want_fir, atol=1e-5)):
        raise RuntimeError('the compiled kernels disagree with PyTorch on a small test')


def _one_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# ---------------------------------------------------------------------------------------------
# Calls on tensors


def applies(y: torch.Tensor) -> bool:
    """True when the kernels are available and take ``y``: one channels-last CPU image in
    float32 or bfloat16, outside autograd."""
    return _load() is not None and _fits(y)


def _fits(y):
    return (y.device.type == 'cpu' and y.dtype in _FORMATS and y.ndim == 4 and y.shape[0] == 1
            and y.is_contiguous(memory_format=torch.channels_last) and not y.requires_grad)


def _vector(values, length, default=None):
    """``values`` as ``length`` contiguous float32 numbers (None: ``default`` repeated, or None if
    no default); False if it has another length."""
    if values is None:
        return None if default is None else torch.full([length], float(default))
    values = values.detach().reshape(-1).to(torch.float32).contiguous()
    return values if values.numel() == length else False


def _bounds(clamp):
    """The kernels' clamp bounds: (-clamp, clamp), or infinities (no clamp) for None."""
    limit = float('inf') if clamp is None else float(clamp)
    return -limit, limit


def _pointer(values):
    return None if values is None else values.data_ptr()


def epilogue_(y: torch.Tensor, scale: Optional[torch.Tensor], noise: Optional[torch.Tensor], noise_gain: float,
              bias: Optional[torch.Tensor], alpha: Optional[float], clamp: Optional[float]) -> bool:
    """In place: ``y = clamp(lrelu(y * scale + noise * noise_gain + bias))``; True if it ran.

    ``scale`` and ``bias`` are per channel, ``noise`` per pixel (each may be None);
    ``alpha`` None means no activation, ``clamp`` None no clamp. False (nothing done) when
    the kernels are unavailable, ``y`` is not one channels-last float32/bfloat16 CPU image or
    has fewer than ``MIN_EPILOGUE_CHANNELS`` channels.
    """
    library = _load()
    if library is None or not _fits(y) or y.shape[1] < MIN_EPILOGUE_CHANNELS:
        return False
    channels, pixels = y.shape[1], y.shape[2] * y.shape[3]
    scale, bias, noise = _vector(scale, channels, 1.0), _vector(bias, channels, 0.0), _vector(noise, pixels)
    if scale is False or bias is False or noise is False:
        return False
    _call_epilogue(library, y, scale, noise, noise_gain, bias, alpha, alpha is not None, clamp)
    return True


def _call_epilogue(library, y, scale, noise, noise_gain, bias, alpha, leaky, clamp):
    function = getattr(library, f'sgh_epilogue_{_FORMATS[y.dtype]}')
    function(y.data_ptr(), y.shape[2] * y.shape[3], y.shape[1], scale.data_ptr(), _pointer(noise), float(noise_gain),
             bias.data_ptr(), float(alpha or 0.0), int(leaky), *_bounds(clamp), torch.get_num_threads())


def fir_epilogue(x: torch.Tensor, taps_y: torch.Tensor, taps_x: torch.Tensor, padding: Sequence[int],
                 scale: Optional[torch.Tensor], noise: Optional[torch.Tensor], noise_gain: float,
                 bias: Optional[torch.Tensor], alpha: Optional[float], clamp: Optional[float]) -> Optional[torch.Tensor]:
    """The epilogue of ``epilogue_`` applied to ``x`` filtered by the separable FIR filter
    ``outer(taps_y, taps_x)`` (``TAPS`` taps each; a correlation, zero-padded by
    ``padding`` = [x0, x1, y0, y1]); a new channels-last map, or None where the kernels do
    not apply (see ``epilogue_``)."""
    return _fir(x, None, x.shape[2:], taps_y, taps_x, padding, scale, noise, noise_gain, bias, alpha, clamp)


def fir_epilogue_phases(phases: Sequence[torch.Tensor], taps_y: torch.Tensor, taps_x: torch.Tensor,
                        padding: Sequence[int], scale: Optional[torch.Tensor], noise: Optional[torch.Tensor],
                        noise_gain: float, bias: Optional[torch.Tensor], alpha: Optional[float],
                        clamp: Optional[float]) -> Optional[torch.Tensor]:
    """``fir_epilogue`` of the map Y that a stride-2 transposed convolution of an [H, W] input
    makes, given as its four phases: Y[2i + a, 2j + b] = phases[2a + b][i, j], of [H + 1, W + 1],
    [H + 1, W], [H, W + 1] and [H, W] pixels. Y itself is never written."""
    height, width = phases[3].shape[2:]
    want = [(height + 1, width + 1), (height + 1, width), (height, width + 1), (height, width)]
    if [tuple(p.shape[2:]) for p in phases] != want or any(p.shape[:2] != phases[0].shape[:2] for p in phases):
        raise ValueError(f'phases of {[tuple(p.shape) for p in phases]} do not fit one transposed convolution')
    if any(p.dtype != phases[0].dtype for p in phases):
        return None
    return _fir(phases[0], phases, (2 * height + 1, 2 * width + 1), taps_y, taps_x, padding, scale, noise,
                noise_gain, bias, alpha, clamp)


def _fir(x, phases, size, taps_y, taps_x, padding, scale, noise, noise_gain, bias, alpha, clamp):
    library = _load()
    sources = [x] if phases is None else phases
    if library is None or not all(_fits(p) for p in sources) or taps_y.numel() != TAPS or taps_x.numel() != TAPS:
        return None
    pad_x0, pad_x1, pad_y0, pad_y1 = padding
    height = size[0] + pad_y0 + pad_y1 - TAPS + 1
    width = size[1] + pad_x0 + pad_x1 - TAPS + 1
    channels = x.shape[1]
    if height < 1 or width < 1:
        return None
    scale, bias = _vector(scale, channels, 1.0), _vector(bias, channels, 0.0)
    noise = _vector(noise, height * width)
    if scale is False or bias is False or noise is False:
        return None
    out = torch.empty([1, channels, height, width], dtype=x.dtype, memory_format=torch.channels_last)
    _call_fir(library, sources, size, out, _vector(taps_y, TAPS), _vector(taps_x, TAPS), [pad_y0, pad_x0], scale,
              noise, noise_gain, bias, alpha, clamp)
    return out


def _call_fir(library, sources, size, out, taps_y, taps_x, pad, scale, noise, noise_gain, bias, alpha, clamp):
    """``sources``: [the map] or its four phases; ``size``: Y's height and width; ``pad``: [y0, x0]."""
    channels, height, width = out.shape[1:]
    suffix = _FORMATS[out.dtype]
    if len(sources) == 1:
        function, where = getattr(library, f'sgh_fir_epilogue_{suffix}'), [sources[0].data_ptr(), *size]
    else:   # the input's height and width are the last phase's
        function = getattr(library, f'sgh_fir_epilogue_phases_{suffix}')
        where = [p.data_ptr() for p in sources] + list(sources[3].shape[2:])
    failed = function(*where, channels, out.data_ptr(), height, width, taps_y.data_ptr(), taps_x.data_ptr(), *pad,
                      scale.data_ptr(), _pointer(noise), float(noise_gain), bias.data_ptr(), float(alpha or 0.0),
                      int(alpha is not None), *_bounds(clamp), torch.get_num_threads())
    if failed:
        raise MemoryError('out of memory in the fused filter kernel')


def act_backward(grad: torch.Tensor, out: torch.Tensor, alpha: Optional[float], clamp: Optional[float],
                 bias_grad: bool, noise_grad: bool) -> Optional[Tuple[torch.Tensor, Optional[torch.Tensor],
                                                                        Optional[torch.Tensor]]]:
    """The gradient of ``epilogue_``'s bias, noise, activation and clamp, from its output ``out``:
    (gradient of its input, of the bias [C] if ``bias_grad``, of the noise [N, 1, H, W] if
    ``noise_grad``); ``alpha`` None for a linear activation. One pass; None where the kernels
    do not apply (float32 channels-last maps of the same shape outside autograd only)."""
    library = _load()
    if (library is None or grad.dtype != torch.float32 or out.dtype != torch.float32 or grad.shape != out.shape
            or grad.ndim != 4 or grad.requires_grad or out.requires_grad
            or not grad.is_contiguous(memory_format=torch.channels_last)
            or not out.is_contiguous(memory_format=torch.channels_last)):
        return None
    batch, channels, height, width = grad.shape
    grad_in = torch.empty_like(grad, memory_format=torch.channels_last)
    grad_bias = torch.empty([channels]) if bias_grad else None
    grad_noise = torch.empty([batch, 1, height, width]) if noise_grad else None
    if library.sgh_act_backward(grad.data_ptr(), out.data_ptr(), batch * height * width, channels, float(alpha or 0.0),
                                int(alpha is not None), *_bounds(clamp), grad_in.data_ptr(), _pointer(grad_bias),
                                _pointer(grad_noise), torch.get_num_threads()):
        raise MemoryError('out of memory in the activation gradient kernel')
    return grad_in, grad_bias, grad_noise


# Winograd F(4x4, 3x3)'s kernel transform G (the input and output transforms are in the C
# source); one kernel's 3x3 taps (row by row) become its 36 transformed values by the Kronecker
# product G (x) G, and the same matrix, its taps reversed, transforms the kernel that the input's
# gradient is convolved with.
_WINOGRAD_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                            [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
_WINOGRAD_TAPS = torch.kron(_WINOGRAD_G, _WINOGRAD_G).float()          # [36, 9]
_WINOGRAD_TAPS_REVERSED = _WINOGRAD_TAPS.flip(1).contiguous()
WINOGRAD_POSITIONS = 36
LANES = 16   # the C kernels' channel blocks (LANES in cpu_kernels.c)
FUSED_WINOGRAD_MAX_CHANNELS = 128   # wider: the kernel's transform outgrows the L2 cache, torch.bmm wins


def winograd_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """The transformed 3x3 ``kernel`` [O, I, 3, 3] (correlation taps, float32) that
    ``winograd_conv3x3`` multiplies by: [36, I, O] (a strided view of [O, 36, I])."""
    taps = _taps_last(kernel)
    library = _load()
    if library is None or taps.device.type != 'cpu':
        return torch.matmul(_WINOGRAD_TAPS.to(taps.device), taps).permute(1, 2, 0)
    out_channels, _, in_channels = taps.shape
    transformed = torch.empty([out_channels, WINOGRAD_POSITIONS, in_channels])
    library.sgh_winograd_kernel_transform(taps.data_ptr(), out_channels, in_channels, 0, transformed.data_ptr(),
                                          WINOGRAD_POSITIONS * in_channels, in_channels, torch.get_num_threads())
    return transformed.permute(1, 2, 0)


def winograd_kernel_for_input_gradient(kernel: torch.Tensor) -> torch.Tensor:
    """``winograd_kernel`` of the kernel that carries an output gradient back to the input (``kernel``
    with its taps reversed and its two channel axes swapped): [36, O, I], contiguous where the C
    kernels run."""
    taps = _taps_last(kernel)
    library = _load()
    if library is None or taps.device.type != 'cpu':
        return torch.matmul(_WINOGRAD_TAPS_REVERSED.to(taps.device), taps).transpose(0, 1)
    out_channels, _, in_channels = taps.shape
    transformed = torch.empty([WINOGRAD_POSITIONS, out_channels, in_channels])
    library.sgh_winograd_kernel_transform(taps.data_ptr(), out_channels, in_channels, 1, transformed.data_ptr(),
                                          in_channels, out_channels * in_channels, torch.get_num_threads())
    return transformed


def winograd_kernel_gradient(grad: torch.Tensor) -> torch.Tensor:
    """The gradient of a kernel [O, I, 3, 3] from the gradient of its transform, given as [36, O, I]:
    channels-last, as the layers keep their weights."""
    out_channels, in_channels = grad.shape[1:]
    library = _load()
    if library is None or grad.device.type != 'cpu':
        taps = torch.matmul(_WINOGRAD_TAPS.t().to(grad.device), grad.transpose(0, 1))          # [O, 9, I]
    else:
        grad = grad.float().contiguous()
        taps = torch.empty([out_channels, 9, in_channels])
        library.sgh_winograd_kernel_transform_adjoint(grad.data_ptr(), out_channels, in_channels, taps.data_ptr(),
                                                      torch.get_num_threads())
    return taps.view(out_channels, 3, 3, in_channels).permute(0, 3, 1, 2)


def _taps_last(kernel):
    """[O, I, 3, 3] as [O, 9, I], contiguous (no copy of a channels-last float32 kernel)."""
    return kernel.float().permute(0, 2, 3, 1).reshape(kernel.shape[0], 9, kernel.shape[1]).contiguous()


def tap_square_sum(weight: torch.Tensor) -> Optional[torch.Tensor]:
    """``weight.square().sum(dim=[2, 3])`` [O, I] of a float32 kernel [O, I, k, k] laid out
    channels-last either as it is or as its [I, O] transpose (the upsampling layers'), in one
    pass; None for other layouts or where the kernels do not apply."""
    library = _load()
    if library is None or weight.dtype != torch.float32 or weight.ndim != 4 or weight.device.type != 'cpu':
        return None
    transposed = not weight.is_contiguous(memory_format=torch.channels_last)
    laid_out = weight.transpose(0, 1) if transposed else weight
    if not laid_out.is_contiguous(memory_format=torch.channels_last):
        return None
    rows, cols = laid_out.shape[:2]
    sums = torch.empty([rows, cols])
    library.sgh_tap_square_sum(laid_out.data_ptr(), rows, laid_out.shape[2] * laid_out.shape[3], cols, sums.data_ptr(),
                               torch.get_num_threads())
    return sums.t() if transposed else sums


def winograd_tiles(x: torch.Tensor) -> Optional[torch.Tensor]:
    """The transformed input tiles of one float32 channels-last map [1, C, H, W]: [36, tiles, C],
    or None where the kernels do not apply."""
    library = _load()
    if library is None or not _fits(x) or x.dtype != torch.float32:
        return None
    channels, height, width = x.shape[1:]
    tiles = torch.empty([WINOGRAD_POSITIONS, _winograd_tile_count(height, width), channels])
    library.sgh_winograd_input(x.data_ptr(), height, width, channels, None, tiles.data_ptr(), torch.get_num_threads())
    return tiles


def winograd_output_adjoint(grad: torch.Tensor) -> Optional[torch.Tensor]:
    """An output gradient [1, O, H, W] (float32, channels-last) carried back through the output
    transform: the gradient of the 36 products, [36, tiles, O]; None where the kernels do not apply."""
    library = _load()
    if library is None or not _fits(grad) or grad.dtype != torch.float32:
        return None
    channels, height, width = grad.shape[1:]
    products = torch.empty([WINOGRAD_POSITIONS, _winograd_tile_count(height, width), channels])
    library.sgh_winograd_output_adjoint(grad.data_ptr(), height, width, channels, products.data_ptr(),
                                        torch.get_num_threads())
    return products


def winograd_transform_gradient(x: torch.Tensor, grad: torch.Tensor) -> Optional[torch.Tensor]:
    """The gradient [36, O, I] of ``winograd_kernel``'s transform, for a 3x3 convolution of ``x``
    [N, I, H, W] whose output has the gradient ``grad`` [N, O, H, W] (float32, channels-last),
    summed over the images: each position's ``winograd_output_adjoint`` times ``winograd_tiles``,
    by the C kernel tile block by tile block. None where that does not apply (it pays where the
    fused convolution does)."""
    library = _load()
    in_channels, out_channels = x.shape[1], grad.shape[1]
    if (library is None or x.dtype != torch.float32 or grad.dtype != torch.float32 or x.ndim != 4
            or grad.shape[0] != x.shape[0] or grad.shape[2:] != x.shape[2:] or in_channels % LANES
            or not _fused_winograd_pays(library, in_channels, out_channels)):
        return None
    images = [(image, g) for image, g in zip(x.split(1), grad.split(1))]
    if not all(_fits(image) and _fits(g) for image, g in images):
        return None
    height, width = x.shape[2:]
    products = torch.zeros([WINOGRAD_POSITIONS, out_channels, in_channels])
    for image, g in images:   # each adds its share
        _raise_on_failure(library.sgh_winograd_kernel_gradient(
            image.data_ptr(), g.data_ptr(), height, width, in_channels, out_channels, products.data_ptr(),
            torch.get_num_threads()), 'the Winograd kernel gradient')
    return products


def _raise_on_failure(status, kernel):
    """The Winograd kernels' nonzero returns as errors: 1 out of memory, 2 channel counts it does
    not take (Python checks them first: a 2 is a bug here, not the user's)."""
    if status == 1:
        raise MemoryError(f'out of memory in {kernel}')
    if status:
        raise ValueError(f'{kernel} was called with channel counts it does not take')


def _winograd_tile_count(height, width):
    return (height + 3) // 4 * ((width + 3) // 4)


def _fused_winograd_pays(library, in_channels, out_channels):
    """Whether ``sgh_winograd_conv`` runs the whole convolution (its products included), rather
    than C transforms around one ``torch.bmm``. Measured (2 threads, AVX-512): 1.4x faster at 64
    channels (512x256), even at 128, 0.75x at 256 and 0.55x at 512. Only where the library's
    products fit the CPU's vector registers (AVX or AVX-512)."""
    return (out_channels % 16 == 0 and max(in_channels, out_channels) <= FUSED_WINOGRAD_MAX_CHANNELS
            and bool(library.sgh_winograd_conv_fits()))


def winograd_conv3x3(x: torch.Tensor, transformed: torch.Tensor, in_scale: Optional[torch.Tensor],
                     scale: Optional[torch.Tensor], noise: Optional[torch.Tensor], noise_gain: float,
                     bias: Optional[torch.Tensor], alpha: Optional[float],
                     clamp: Optional[float]) -> Optional[torch.Tensor]:
    """``epilogue(conv2d(x * in_scale, kernel, padding=1))`` for a float32 map, ``transformed`` =
    ``winograd_kernel(kernel)``; the epilogue's arguments as in ``epilogue_``. A new
    channels-last map, or None where the kernels do not apply.

    36 matrix products of [tiles, I] @ [I, O] replace the convolution's 144 taps per 4x4
    pixels: 4x less arithmetic, at the price of two passes over 2.25x the map's size in
    transforms (which is why only wide layers gain)."""
    library = _load()
    if library is None or not _fits(x) or x.dtype != torch.float32:
        return None
    in_channels, height, width = x.shape[1:]
    out_channels = transformed.shape[2]
    if transformed.shape != (WINOGRAD_POSITIONS, in_channels, out_channels) or transformed.dtype != torch.float32:
        return None
    in_scale, scale = _vector(in_scale, in_channels, 1.0), _vector(scale, out_channels, 1.0)
    bias, noise = _vector(bias, out_channels, 0.0), _vector(noise, height * width)
    if in_scale is False or scale is False or bias is False or noise is False:
        return None
    threads = torch.get_num_threads()
    if _fused_winograd_pays(library, in_channels, out_channels):
        out = torch.empty([1, out_channels, height, width], memory_format=torch.channels_last)
        transformed = transformed.contiguous()   # held here: the C call reads it
        failed = library.sgh_winograd_conv(x.data_ptr(), height, width, in_channels, in_scale.data_ptr(),
                                           transformed.data_ptr(), out_channels, out.data_ptr(),
                                           scale.data_ptr(), _pointer(noise), float(noise_gain), bias.data_ptr(),
                                           float(alpha or 0.0), int(alpha is not None), *_bounds(clamp), threads)
        _raise_on_failure(failed, 'the Winograd kernel')
        return out
    tiles = torch.empty([WINOGRAD_POSITIONS, _winograd_tile_count(height, width), in_channels])
    library.sgh_winograd_input(x.data_ptr(), height, width, in_channels, in_scale.data_ptr(), tiles.data_ptr(), threads)
    products = torch.bmm(tiles, transformed)
    del tiles
    out = torch.empty([1, out_channels, height, width], memory_format=torch.channels_last)
    library.sgh_winograd_output(products.data_ptr(), height, width, out_channels, out.data_ptr(), scale.data_ptr(),
                                _pointer(noise), float(noise_gain), bias.data_ptr(), float(alpha or 0.0),
                                int(alpha is not None), *_bounds(clamp), threads)
    return out


def upsample2x(x: torch.Tensor, f: torch.Tensor, padding: Sequence[int], gain: float,
               flip_filter: bool = False) -> Optional[torch.Tensor]:
    """``upfirdn2d(x, f, up=2, padding=padding, gain=gain, flip_filter=flip_filter)`` for a
    float32 [N, C, H, W] map and a separable 4x4 filter (StyleGAN2's image upsampling): each
    output pixel is two taps down and two across, no zeros inserted. None where that does
    not apply (another filter or format, or a gradient needed)."""
    library = _load()
    if (library is None or x.device.type != 'cpu' or x.dtype != torch.float32 or x.ndim != 4
            or not x.is_contiguous() or (x.requires_grad and torch.is_grad_enabled())):
        return None
    pad_x0, pad_x1, pad_y0, pad_y1 = padding
    batch, channels, height, width = x.shape
    out_h, out_w = 2 * height + pad_y0 + pad_y1 - TAPS + 1, 2 * width + pad_x0 + pad_x1 - TAPS + 1
    tables = derived.derived(f, ('polyphase', float(gain), flip_filter, pad_y0, pad_x0), lambda: _polyphase_tables(
        separable_taps(f.flip([0, 1]) if flip_filter else f, gain), pad_y0, pad_x0))
    if tables is None or out_h < 1 or out_w < 1:
        return None
    ty, dy, tx, dx = tables
    out = torch.empty([batch, channels, out_h, out_w])
    failed = library.sgh_upsample2x(x.data_ptr(), batch * channels, height, width, out.data_ptr(), out_h, out_w,
                                    ty.data_ptr(), dy.data_ptr(), tx.data_ptr(), dx.data_ptr(), torch.get_num_threads())
    if failed:
        raise MemoryError('out of memory in the fused upsampling kernel')
    return out


def _polyphase_tables(taps, pad_y, pad_x):
    if taps is None or taps[0].numel() != TAPS:
        return None
    return (*_polyphase(taps[0], pad_y), *_polyphase(taps[1], pad_x))


def _polyphase(taps, pad):
    """For output n = 2m + a of a 2x upsampling with correlation ``taps`` after ``pad`` zeros:
    out[n] = sum_k taps[k] * z[n + k - pad], where z[2i] = x[i] and odd z are zero. Per parity
    a, the two taps that meet an x and their offsets from m: ([2, 2] float32, [2, 2] int32)."""
    weights, offsets = [], []
    for a in (0, 1):
        ks = [k for k in range(TAPS) if (a + k - pad) % 2 == 0]
        weights += [float(taps[k]) for k in ks]
        offsets += [(a + k - pad) // 2 for k in ks]
    return torch.tensor(weights), torch.tensor(offsets, dtype=torch.int32)


def separable_taps(f: torch.Tensor, gain: float = 1.0) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Correlation taps (rows, columns) whose outer product is the square convolution filter
    ``f * gain`` flipped, as ``upfirdn2d`` applies it; None if ``f`` is not square and rank one."""
    return derived.derived(f, ('separable', float(gain)), lambda: _separable_taps(f, gain))


def _separable_taps(f, gain):
    if f.ndim != 2 or f.shape[0] != f.shape[1] or f.dtype != torch.float32:
        return None
    total = float(f.sum())
    if total == 0.0:
        return None
    rows, columns = f.sum(dim=1), f.sum(dim=0) / total
    if not torch.allclose(torch.outer(rows, columns), f, rtol=1e-5, atol=1e-7 * float(f.abs().max())):
        return None
    return (rows.flip(0) * gain).contiguous(), columns.flip(0).contiguous()


# ---------------------------------------------------------------------------------------------
# 3x3 and phase convolutions and 1x1 projections on AMX (amx_conv.c)

AMX_BLOCK = 32   # the AMX kernel's channel blocks: both channel counts must be multiples of it
_amx_checked = None   # amx_available's answer, once asked


def amx_available() -> bool:
    """True where the kernels were built for AMX, Linux lets this process use its tiles and a
    small convolution on them agrees with PyTorch's (checked once)."""
    global _amx_checked
    if _amx_checked is None:
        library = _load()
        _amx_checked = library is not None and bool(library.sgh_amx_conv_ready()) and _amx_self_test()
    return _amx_checked


def _amx_self_test():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn([1, 32, 3, 35], generator=generator).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    kernel = torch.randn([32, 32, 3, 3], generator=generator).to(torch.bfloat16)
    got = _amx_conv3x3(_load(), x, amx_kernel(kernel), 32, None, None, 0.0, None, None, None)
    want = torch.nn.functional.conv2d(x.float(), kernel.float(), padding=1)
    if got is None or not torch.allclose(got.float(), want, rtol=2 ** -7, atol=1e-3 * float(want.abs().max())):
        warnings.warn('the AMX convolution kernel disagrees with PyTorch on a small test: not used')
        return False
    return True


def amx_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """A [O, I, 3, 3] correlation kernel in bfloat16, packed as ``amx_conv3x3`` reads it: per
    block of 32 output channels, tap and block of 32 input channels, two halves of 16 output
    channels, each [16 pairs of input channels][16 output channels][the pair]."""
    out_channels, in_channels = kernel.shape[:2]
    blocks = kernel.to(torch.bfloat16).reshape(out_channels // AMX_BLOCK, 2, 16, in_channels // AMX_BLOCK, 16, 2, 3, 3)
    return blocks.permute(0, 6, 7, 3, 1, 4, 2, 5).contiguous()   # [ob, dy, dx, ib, half, pair, n, e]


def amx_conv3x3(x: torch.Tensor, packed: torch.Tensor, out_channels: int, scale: Optional[torch.Tensor],
                noise: Optional[torch.Tensor], noise_gain: float, bias: Optional[torch.Tensor], alpha: Optional[float],
                clamp: Optional[float]) -> Optional[torch.Tensor]:
    """``epilogue_`` (arguments as there) of the 3x3 correlation, padding 1, of a bfloat16
    channels-last image ``x`` with a kernel from ``amx_kernel``, summed in float32 and rounded
    once; a new channels-last map, or None where the AMX kernel does not apply."""
    if not amx_available():
        return None
    return _amx_conv3x3(_load(), x, packed, out_channels, scale, noise, noise_gain, bias, alpha, clamp)


def _amx_conv3x3(library, x, packed, out_channels, scale, noise, noise_gain, bias, alpha, clamp):
    in_channels = x.shape[1]
    if (not _fits(x) or x.dtype != torch.bfloat16 or in_channels % AMX_BLOCK or out_channels % AMX_BLOCK
            or packed.dtype != torch.bfloat16 or packed.numel() != 9 * in_channels * out_channels
            or not packed.is_contiguous()):
        return None
    height, width = x.shape[2:]
    scale, bias = _vector(scale, out_channels, 1.0), _vector(bias, out_channels, 0.0)
    noise = _vector(noise, height * width)
    if scale is False or bias is False or noise is False:
        return None
    out = torch.empty([1, out_channels, height, width], dtype=torch.bfloat16, memory_format=torch.channels_last)
    if library.sgh_amx_conv3x3_bf16(x.data_ptr(), height, width, in_channels, packed.data_ptr(), out_channels,
                                    out.data_ptr(), scale.data_ptr(), _pointer(noise), float(noise_gain),
                                    bias.data_ptr(), float(alpha or 0.0), int(alpha is not None), *_bounds(clamp),
                                    torch.get_num_threads()):
        raise MemoryError('out of memory in the AMX convolution kernel')
    return out


def amx_phase_kernel(phases: Sequence[torch.Tensor]) -> torch.Tensor:
    """The four phase kernels of a stride-2 3x3 transposed convolution ([O, I, 2, 2], [O, I, 2, 1],
    [O, I, 1, 2], [O, I, 1, 1]: correlations with padding (1, 1), (1, 0), (0, 1), (0, 0)) packed as
    ``amx_phases`` reads them: their 9 taps in turn, each packed as ``amx_kernel`` packs a tap."""
    p00, p01, p10, p11 = (p.float() for p in phases)
    taps = [p00[:, :, 0, 0], p00[:, :, 0, 1], p00[:, :, 1, 0], p00[:, :, 1, 1], p01[:, :, 0, 0], p01[:, :, 1, 0],
            p10[:, :, 0, 0], p10[:, :, 0, 1], p11[:, :, 0, 0]]
    return amx_kernel(torch.stack(taps, dim=2).unflatten(2, (3, 3)))


def amx_phases(x: torch.Tensor, packed: torch.Tensor, out_channels: int) -> Optional[list]:
    """The four phase maps of the stride-2 transposed convolution of a bfloat16 channels-last image
    ``x`` [1, I, H, W] with ``packed = amx_phase_kernel(...)``: [H + 1, W + 1], [H + 1, W], [H, W + 1]
    and [H, W] pixels, channels-last bfloat16, as ``fir_epilogue_phases`` reads them, summed in
    float32 on the AMX tiles in one pass over x (oneDNN's four convolutions read it four times).
    None where the AMX kernel does not apply."""
    if not amx_available() or not _fits(x) or x.dtype != torch.bfloat16:
        return None
    in_channels, height, width = x.shape[1:]
    if (in_channels % AMX_BLOCK or out_channels % AMX_BLOCK or packed.dtype != torch.bfloat16
            or packed.numel() != 9 * in_channels * out_channels or not packed.is_contiguous()):
        return None
    phases = [torch.empty([1, out_channels, height + 1 - a, width + 1 - b], dtype=torch.bfloat16,
                          memory_format=torch.channels_last) for a in (0, 1) for b in (0, 1)]
    pointers = (ctypes.c_void_p * 4)(*[p.data_ptr() for p in phases])
    if _load().sgh_amx_phases_bf16(x.data_ptr(), height, width, in_channels, packed.data_ptr(), out_channels,
                                   pointers, torch.get_num_threads()):
        raise MemoryError('out of memory in the AMX phase convolution kernel')
    return phases


AMX_MAX_PROJECTIONS = 16   # outputs of one accumulator tile


def amx_projection(weight: torch.Tensor) -> torch.Tensor:
    """A [O, C] float32 matrix (O <= 16, C a multiple of 32) in bfloat16, packed as
    ``amx_project`` reads it: per block of 32 channels, [16 pairs of channels][16 outputs][the pair]."""
    outputs, channels = weight.shape
    padded = torch.zeros([AMX_MAX_PROJECTIONS, channels], dtype=torch.bfloat16)
    padded[:outputs] = weight.to(torch.bfloat16)
    return padded.view(AMX_MAX_PROJECTIONS, channels // AMX_BLOCK, 16, 2).permute(1, 2, 0, 3).contiguous()


def amx_project(x: torch.Tensor, packed: torch.Tensor, outputs: int, bias: Optional[torch.Tensor],
                clamp: Optional[float]) -> Optional[torch.Tensor]:
    """``clamp(conv2d(x, weight[:, :, None, None]) + bias)`` of a bfloat16 channels-last image ``x``
    with ``packed = amx_projection(weight)``, summed in float32 on the AMX tiles: a new
    float32 contiguous [1, outputs, H, W] (ToRGB's image, with no bfloat16 map in between).
    None where the AMX kernel does not apply."""
    if not amx_available() or not _fits(x) or x.dtype != torch.bfloat16:
        return None
    channels, height, width = x.shape[1:]
    if (channels % AMX_BLOCK or not 0 < outputs <= AMX_MAX_PROJECTIONS or packed.dtype != torch.bfloat16
            or packed.numel() != AMX_MAX_PROJECTIONS * channels or not packed.is_contiguous()):
        return None
    bias = _vector(bias, outputs, 0.0)
    if bias is False:
        return None
    out = torch.empty([1, outputs, height, width])
    _load().sgh_amx_project_bf16(x.data_ptr(), height * width, channels, packed.data_ptr(), outputs, out.data_ptr(),
                                 bias.data_ptr(), *_bounds(clamp), torch.get_num_threads())
    return out
