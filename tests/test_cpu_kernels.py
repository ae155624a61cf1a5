"""The fused CPU kernels (torch_utils/ops/cpu_kernels.c) against PyTorch's ops, their build and their absence."""

import math
import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import cpu_kernels, derived, modulated_conv_fast, upfirdn2d

needs_kernels = pytest.mark.skipif(not cpu_kernels.available(), reason='no C compiler here to build the kernels')


def _map(channels, height, width, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn([1, channels, height, width], generator=generator) * 3
    return x.to(dtype).contiguous(memory_format=torch.channels_last)


def _epilogue_by_torch(y, scale, noise, noise_gain, bias, alpha, clamp):
    """The same function in float64, one op after another."""
    v = y.double()
    if scale is not None:
        v = v * scale.double().reshape(1, -1, 1, 1)
    if noise is not None:
        v = v + noise.double().reshape(1, 1, *y.shape[2:]) * noise_gain
    if bias is not None:
        v = v + bias.double().reshape(1, -1, 1, 1)
    if alpha is not None:
        v = F.leaky_relu(v, alpha)
    if clamp is not None:
        v = v.clamp(-clamp, clamp)
    return v


@needs_kernels
@pytest.mark.parametrize('channels', [17, 32])   # 32: whole vectors (bfloat16 then rounds with AVX512-BF16 where present)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('scale, noise, bias, alpha, clamp', [
    (False, True, True, 0.2, 4.0),
    (True, True, True, 0.2, None),
    (True, False, False, None, 1.5),
    (False, False, False, None, None),
])
def test_epilogue_matches_torch(dtype, scale, noise, bias, alpha, clamp, channels):
    y = _map(channels, 6, 5, dtype)
    generator = torch.Generator().manual_seed(1)
    scale = torch.rand([channels], generator=generator) + 0.5 if scale else None
    noise = torch.randn([6, 5], generator=generator) if noise else None
    bias = torch.randn([channels], generator=generator) if bias else None
    want = _epilogue_by_torch(y, scale, noise, 1.3, bias, alpha, clamp)
    got = y.clone(memory_format=torch.channels_last)
    assert cpu_kernels.epilogue_(got, scale, noise, 1.3, bias, alpha, clamp)
    assert got.dtype == dtype and got.is_contiguous(memory_format=torch.channels_last)
    if dtype == torch.float32:
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-6)
    else:   # one rounding, at the end: the float result rounded to nearest even, or one step off it
        rounded = want.float().to(torch.bfloat16).float()
        steps = (got.float() - rounded).abs() / (want.float().abs() * 2 ** -7 + 1e-30)
        assert float(steps.max()) <= 1.0


@needs_kernels
def test_epilogue_keeps_nan_and_infinities_as_torch_does():
    y = torch.tensor([math.nan, math.inf, -math.inf, -2.0]).repeat(4).reshape(1, 16, 1, 1)
    for dtype in (torch.float32, torch.bfloat16):
        got = y.to(dtype).clone(memory_format=torch.channels_last)
        assert cpu_kernels.epilogue_(got, None, None, 1.0, None, 0.2, 3.0)
        want = F.leaky_relu(y, 0.2).clamp(-3, 3)
        assert got.flatten()[0::4].isnan().all()
        torch.testing.assert_close(got[:, 1:4], want.to(dtype)[:, 1:4])


@needs_kernels
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('channels, height, width, padding', [
    (32, 9, 7, [1, 1, 1, 1]),        # StyleGAN2's upsampling layer: (2H + 1) -> 2H
    (3, 5, 12, [2, 1, 0, 3]),        # asymmetric
    (16, 8, 8, [-1, 2, 1, -2]),      # cropping
    (5, 1, 1, [3, 3, 3, 3]),         # all padding
    # Whole vectors of 16 channels (AVX-512): 32 and 16 at a time, rows and columns outside the map,
    (48, 6, 5, [2, 1, 3, 0]),
    (64, 2, 3, [3, 3, 3, 3]),
    (16, 4, 9, [-2, -1, 2, 2]),      # and an output row narrower than the map's
])
def test_fir_epilogue_matches_upfirdn2d(dtype, channels, height, width, padding):
    x = _map(channels, height, width, dtype, seed=2)
    f = torch.outer(torch.tensor([1.0, 3.0, 2.0, 0.5]), torch.tensor([0.25, 1.0, 3.0, 1.0]))
    taps = cpu_kernels.separable_taps(f, gain=4.0)
    generator = torch.Generator().manual_seed(3)
    filtered = upfirdn2d._upfirdn2d_ref(x.float(), f, padding=padding, gain=4.0).double()
    scale = torch.rand([channels], generator=generator) + 0.5
    noise = torch.randn(filtered.shape[2:], generator=generator)
    bias = torch.randn([channels], generator=generator)
    want = _epilogue_by_torch(filtered, scale, noise, 0.7, bias, 0.2, 6.0)
    got = cpu_kernels.fir_epilogue(x, *taps, padding, scale, noise, 0.7, bias, 0.2, 6.0)
    assert got.shape == want.shape and got.dtype == dtype
    assert got.is_contiguous(memory_format=torch.channels_last)
    tolerance = 1e-5 if dtype == torch.float32 else 2 ** -8
    torch.testing.assert_close(got.double(), want, atol=tolerance * 6, rtol=tolerance)


@needs_kernels
@pytest.mark.parametrize('channels', [7, 32, 48])   # 32, 48: whole vectors (AVX-512 where present)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_fir_epilogue_reads_a_transposed_convolution_from_its_four_phases(dtype, channels):
    """The phases the upsampling layer computes give the same map Y as the transposed
    convolution itself, and the kernel filters Y read from them as it filters Y."""
    generator = torch.Generator().manual_seed(5)
    x = torch.randn([1, 6, 5, 4], generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
    weight = torch.randn([channels, 6, 3, 3], generator=generator)
    scale = torch.rand([channels, 6], generator=generator) + 0.5
    kernels = modulated_conv_fast._phase_kernels(weight, scale, False, dtype)
    phases = [F.conv2d(x, k, padding=pad) for k, pad in zip(kernels, modulated_conv_fast._PHASE_PADDING)]
    y = F.conv_transpose2d(x.float(), (weight * scale[:, :, None, None]).transpose(0, 1), stride=2)   # [11, 9]
    for phase, (a, b) in zip(phases, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        torch.testing.assert_close(phase.float(), y[:, :, a::2, b::2], atol=0.05 if dtype == torch.bfloat16 else 1e-5,
                                   rtol=0.02 if dtype == torch.bfloat16 else 1e-5)
    y = torch.zeros([1, channels, 11, 9], dtype=dtype).contiguous(memory_format=torch.channels_last)
    for phase, (a, b) in zip(phases, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        y[:, :, a::2, b::2] = phase
    taps = cpu_kernels.separable_taps(upfirdn2d.setup_filter([1, 3, 3, 1]), gain=4.0)
    noise = torch.randn([10, 8], generator=generator)
    bias = torch.randn([channels], generator=generator)
    args = (*taps, [1, 1, 1, 1], None, noise, 1.5, bias, 0.2, 3.0)
    from_phases = cpu_kernels.fir_epilogue_phases(phases, *args)
    assert from_phases.shape == (1, channels, 10, 8)
    assert torch.equal(from_phases, cpu_kernels.fir_epilogue(y, *args))
    with pytest.raises(ValueError, match='do not fit'):
        cpu_kernels.fir_epilogue_phases(phases[::-1], *args)


@needs_kernels
def test_the_fused_winograd_products_run_where_the_vector_registers_hold_them():
    # Register blocks wider than the registers spilled on every step (an AVX2 build ran a
    # 15 ms layer in 557 ms): the library offers the fused products only with AVX or AVX-512.
    flags = cpu_kernels._cpu_identity().decode().split()
    if not any(flag.startswith('avx') or flag in ('sse2', 'neon', 'asimd') for flag in flags):
        pytest.skip('no CPU flags listed here')
    assert bool(cpu_kernels._load().sgh_winograd_conv_fits()) == ('avx' in flags)


@needs_kernels
@pytest.mark.parametrize('fused', [True, False])   # False: C transforms around torch.bmm
@pytest.mark.parametrize('in_channels, out_channels, height, width',
                         [(5, 7, 6, 4), (16, 3, 2, 2), (9, 9, 4, 2), (37, 20, 9, 7), (32, 48, 8, 12), (3, 5, 1, 1),
                          (64, 64, 40, 26), (16, 80, 9, 13)])   # several tile blocks and a part one; 64 + 16 columns
def test_winograd_conv3x3_matches_the_convolution(in_channels, out_channels, height, width, fused, monkeypatch):
    if not fused:
        monkeypatch.setattr(cpu_kernels, 'FUSED_WINOGRAD_MAX_CHANNELS', 0)
    generator = torch.Generator().manual_seed(6)
    x = _map(in_channels, height, width, seed=7)
    kernel = torch.randn([out_channels, in_channels, 3, 3], generator=generator)
    in_scale = torch.rand([in_channels], generator=generator) + 0.5
    scale = torch.rand([out_channels], generator=generator) + 0.5
    noise = torch.randn([height, width], generator=generator)
    bias = torch.randn([out_channels], generator=generator)
    conv = F.conv2d(x.double() * in_scale.double().reshape(1, -1, 1, 1), kernel.double(), padding=1)
    want = _epilogue_by_torch(conv, scale, noise, 0.8, bias, 0.2, 20.0)
    got = cpu_kernels.winograd_conv3x3(x, cpu_kernels.winograd_kernel(kernel), in_scale, scale, noise, 0.8, bias, 0.2,
                                       20.0)
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
    # F(4x4, 3x3)'s transforms scale values by up to 8 and back: a few bits below a direct sum
    torch.testing.assert_close(got.double(), want, atol=1e-4 * float(want.abs().max()), rtol=1e-4)


@needs_kernels
@pytest.mark.parametrize('alpha, clamp', [(0.2, 0.5), (None, None), (0.2, None)])
@pytest.mark.parametrize('shape', [[2, 20, 5, 3], [1, 40, 23, 11]])   # several blocks of pixels for the bias sums
def test_act_backward_matches_the_pytorch_ops(alpha, clamp, shape):
    generator = torch.Generator().manual_seed(12)
    out = torch.randn(shape, generator=generator).contiguous(memory_format=torch.channels_last)
    if clamp is not None:
        out[0, :3] = clamp                                     # the clamp cut here: nothing passes
    grad = torch.randn(out.shape, generator=generator).contiguous(memory_format=torch.channels_last)
    want = grad if clamp is None else torch.ops.aten.hardtanh_backward(grad, out, -clamp, clamp)
    if alpha is not None:
        want = torch.ops.aten.leaky_relu_backward(want, out, alpha, True)
    got, bias, noise = cpu_kernels.act_backward(grad, out, alpha, clamp, True, True)
    assert torch.equal(got, want) and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(bias, want.sum(dim=[0, 2, 3]))
    torch.testing.assert_close(noise, want.sum(dim=1, keepdim=True))
    assert cpu_kernels.act_backward(grad, out, alpha, clamp, False, False)[1:] == (None, None)
    assert cpu_kernels.act_backward(grad.contiguous(), out, alpha, clamp, True, True) is None


@needs_kernels
def test_winograd_stands_aside_for_bfloat16_and_a_kernel_of_other_channels():
    transformed = cpu_kernels.winograd_kernel(torch.ones([4, 4, 3, 3]))
    args = (None, None, None, 1.0, None, None, None)
    assert cpu_kernels.winograd_conv3x3(_map(4, 4, 4, torch.bfloat16), transformed, *args) is None
    assert cpu_kernels.winograd_conv3x3(_map(3, 4, 4), transformed, *args) is None   # kernel for 4 channels
    assert cpu_kernels.winograd_conv3x3(_map(4, 5, 3), transformed, *args) is not None
    assert cpu_kernels.winograd_tiles(_map(4, 4, 4, torch.bfloat16)) is None
    assert cpu_kernels.winograd_output_adjoint(_map(4, 4, 4, torch.bfloat16)) is None


@needs_kernels
@pytest.mark.parametrize('channels, height, width', [(5, 6, 4), (20, 9, 7), (16, 1, 3)])
def test_winograd_output_adjoint_is_the_output_transforms_adjoint(channels, height, width):
    # <adjoint(dy), m> == <dy, output(m)> for the linear output transform (no epilogue).
    generator = torch.Generator().manual_seed(8)
    grad = _map(channels, height, width, seed=9)
    products = torch.randn([36, (height + 3) // 4 * ((width + 3) // 4), channels], generator=generator)
    out = torch.empty([1, channels, height, width], memory_format=torch.channels_last)
    library = cpu_kernels._load()
    ones, zeros = torch.ones(channels), torch.zeros(channels)
    library.sgh_winograd_output(products.data_ptr(), height, width, channels, out.data_ptr(), ones.data_ptr(), None,
                                0.0, zeros.data_ptr(), 0.0, 0, *cpu_kernels._bounds(None), 1)
    adjoint = cpu_kernels.winograd_output_adjoint(grad)
    assert adjoint.shape == products.shape
    torch.testing.assert_close((adjoint.double() * products.double()).sum(), (grad.double() * out.double()).sum(),
                               rtol=1e-5, atol=1e-4)


@needs_kernels
def test_winograd_kernel_transforms_carry_gradients_as_the_convolution_does():
    # Through the transforms alone: the input gradient is a Winograd convolution of the output
    # gradient with the reversed, transposed kernel, and the kernel gradient sums tiles times
    # the output gradient's adjoint products.
    generator = torch.Generator().manual_seed(10)
    x = _map(24, 10, 6, seed=11).requires_grad_()
    kernel = torch.randn([20, 24, 3, 3], generator=generator).contiguous(memory_format=torch.channels_last)
    kernel.requires_grad_()
    y = F.conv2d(x, kernel, padding=1)
    grad = torch.randn(y.shape, generator=generator).contiguous(memory_format=torch.channels_last)
    want_x, want_kernel = torch.autograd.grad(y, [x, kernel], grad)
    back = cpu_kernels.winograd_kernel_for_input_gradient(kernel.detach())
    got_x = cpu_kernels.winograd_conv3x3(grad, back, None, None, None, 1.0, None, None, None)
    tiles = cpu_kernels.winograd_tiles(x.detach())
    got_kernel = cpu_kernels.winograd_kernel_gradient(
        torch.bmm(cpu_kernels.winograd_output_adjoint(grad).transpose(1, 2), tiles))
    assert got_kernel.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got_x, want_x, atol=1e-4 * float(want_x.abs().max()), rtol=1e-4)
    torch.testing.assert_close(got_kernel, want_kernel, atol=1e-4 * float(want_kernel.abs().max()), rtol=1e-4)


@pytest.mark.parametrize('out_channels, in_channels', [(48, 40), (16, 64), (3, 5)])   # whole vectors, remainders
@pytest.mark.parametrize('memory_format', [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize('in_c', [True, False])
def test_winograd_kernel_transforms_are_g_k_gt_and_its_adjoint(out_channels, in_channels, memory_format, in_c,
                                                              monkeypatch):
    # Against G (x) G applied in float64: the forward transform [36, I, O], the input gradient's
    # (taps reversed, channel axes swapped) [36, O, I], and the adjoint taking [36, O, I] back to
    # the kernel's taps; in C, and as matrix products where the kernels are not built.
    if in_c and not cpu_kernels.available():
        pytest.skip('no C compiler here to build the kernels')
    if not in_c:
        monkeypatch.setattr(cpu_kernels, '_load', lambda: None)
    generator = torch.Generator().manual_seed(13)
    kernel = torch.randn([out_channels, in_channels, 3, 3], generator=generator).contiguous(memory_format=memory_format)
    matrix = torch.kron(cpu_kernels._WINOGRAD_G, cpu_kernels._WINOGRAD_G)                    # [36, 9] float64
    taps = kernel.double().reshape(out_channels, in_channels, 9)
    want = torch.einsum('tk,oik->tio', matrix, taps)
    want_back = torch.einsum('tk,oik->toi', matrix, taps.flip(2))
    torch.testing.assert_close(cpu_kernels.winograd_kernel(kernel).double(), want, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(cpu_kernels.winograd_kernel_for_input_gradient(kernel).double(), want_back,
                               atol=1e-6, rtol=1e-6)
    grad = torch.randn([36, out_channels, in_channels], generator=generator)
    want_taps = torch.einsum('tk,toi->oik', matrix, grad.double()).reshape(out_channels, in_channels, 3, 3)
    got_taps = cpu_kernels.winograd_kernel_gradient(grad)
    assert got_taps.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got_taps.double(), want_taps, atol=1e-5, rtol=1e-5)


@needs_kernels
def test_tap_square_sum_in_both_layouts_of_the_layers_weights():
    generator = torch.Generator().manual_seed(14)
    weight = torch.randn([24, 40, 3, 3], generator=generator)
    for laid_out in (weight.contiguous(memory_format=torch.channels_last),                   # [O, I, k, k]
                     weight.transpose(0, 1).contiguous(memory_format=torch.channels_last).transpose(0, 1)):
        got = cpu_kernels.tap_square_sum(laid_out)
        torch.testing.assert_close(got, weight.square().sum(dim=[2, 3]), atol=0, rtol=1e-6)
    assert cpu_kernels.tap_square_sum(weight) is None              # taps last: not a layout it reads
    assert cpu_kernels.tap_square_sum(weight.double().contiguous(memory_format=torch.channels_last)) is None


@needs_kernels
def test_winograd_transform_gradient_sums_the_adjoint_times_the_tiles_over_images():
    # In C, tile block by tile block (several blocks here, the last one partial), each thread
    # summing its own copy: the products torch.bmm makes of the whole transforms.
    generator = torch.Generator().manual_seed(12)
    x = torch.randn([2, 16, 37, 50], generator=generator).contiguous(memory_format=torch.channels_last)
    grad = torch.randn([2, 32, 37, 50], generator=generator).contiguous(memory_format=torch.channels_last)
    want = sum(torch.bmm(cpu_kernels.winograd_output_adjoint(g).transpose(1, 2), cpu_kernels.winograd_tiles(image))
               for image, g in zip(x.split(1), grad.split(1)))
    got = cpu_kernels.winograd_transform_gradient(x, grad)
    if not cpu_kernels._load().sgh_winograd_conv_fits():   # no AVX: the products stay with torch.bmm
        assert got is None
        return
    torch.testing.assert_close(got, want, atol=1e-5 * float(want.abs().max()), rtol=1e-5)
    assert cpu_kernels.winograd_transform_gradient(x[:, :8], grad) is None          # 8 input channels
    assert cpu_kernels.winograd_transform_gradient(x.contiguous(), grad) is None     # not channels-last


@needs_kernels
@pytest.mark.parametrize('padding', [[2, 1, 2, 1], [1, 1, 0, 3], [0, 0, 0, 0], [3, 2, -1, 1]])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_upsample2x_matches_upfirdn2d(padding, flip_filter):
    generator = torch.Generator().manual_seed(8)
    x = torch.randn([2, 3, 5, 4], generator=generator)
    f = torch.outer(torch.tensor([1.0, 3.0, 2.0, 0.5]), torch.tensor([0.25, 1.0, 3.0, 1.0]))
    want = upfirdn2d._upfirdn2d_ref(x, f, up=2, padding=padding, flip_filter=flip_filter, gain=4.0)
    got = cpu_kernels.upsample2x(x, f, padding, gain=4.0, flip_filter=flip_filter)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@needs_kernels
def test_stylegan2_image_upsampling_takes_the_kernel_and_not_with_a_gradient():
    x = torch.randn([1, 3, 8, 4])
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    want = upfirdn2d._upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1], gain=4.0)
    torch.testing.assert_close(upfirdn2d.upsample2d(x, f, impl='fast'), want, atol=1e-6, rtol=1e-6)
    assert cpu_kernels.upsample2x(x, f, [2, 1, 2, 1], 4.0) is not None
    assert cpu_kernels.upsample2x(x.requires_grad_(True), f, [2, 1, 2, 1], 4.0) is None
    upfirdn2d.upsample2d(x, f, impl='fast').sum().backward()   # the fast path keeps its gradient
    assert x.grad is not None
    assert cpu_kernels.upsample2x(x.detach().double(), f, [2, 1, 2, 1], 4.0) is None
    assert cpu_kernels.upsample2x(x.detach(), upfirdn2d.setup_filter([1, 2, 1]), [1, 1, 1, 1], 4.0) is None


@needs_kernels
def test_image_upsampling_derives_its_tables_once_per_filter_buffer(monkeypatch):
    # upfirdn2d once scaled the filter before passing it on, so the tables were made from a
    # fresh copy on every call (0.1 ms, most of a small block's image upsampling).
    made = []
    derive = cpu_kernels._polyphase_tables
    monkeypatch.setattr(cpu_kernels, '_polyphase_tables', lambda *args: made.append(1) or derive(*args))
    x, f = torch.randn([1, 3, 8, 4]), upfirdn2d.setup_filter([1, 3, 3, 1])
    want = upfirdn2d._upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1], gain=4.0)
    for _ in range(3):
        torch.testing.assert_close(upfirdn2d.upsample2d(x, f, impl='fast'), want, atol=1e-6, rtol=1e-6)
    assert len(made) == 1


def test_what_is_derived_from_a_filter_follows_its_changes_and_goes_with_it():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    first = cpu_kernels.separable_taps(f)
    assert cpu_kernels.separable_taps(f) is first             # the same buffer: derived once
    f.mul_(2)                                                  # changed in place: derived again
    torch.testing.assert_close(cpu_kernels.separable_taps(f)[0], first[0] * 2)
    entries = len(derived._table)
    for _ in range(100):                                       # filters made afresh every call
        cpu_kernels.separable_taps(upfirdn2d.setup_filter([1, 3, 3, 1]))
    assert len(derived._table) == entries


def test_separable_taps_factor_a_filter_or_say_none():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    rows, columns = cpu_kernels.separable_taps(f, gain=4.0)
    torch.testing.assert_close(torch.outer(rows, columns), (f * 4).flip([0, 1]))
    assert cpu_kernels.separable_taps(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) is None    # rank two
    assert cpu_kernels.separable_taps(torch.ones([2, 3])) is None                        # not square
    assert cpu_kernels.separable_taps(torch.zeros([4, 4])) is None


@needs_kernels
def test_kernels_stand_aside_where_they_do_not_apply():
    assert not cpu_kernels.epilogue_(_map(16, 3, 3).contiguous(), None, None, 1.0, None, 0.2, None)  # not channels-last
    assert not cpu_kernels.epilogue_(_map(16, 3, 3).double(), None, None, 1.0, None, 0.2, None)
    assert not cpu_kernels.epilogue_(torch.zeros([2, 16, 3, 3]), None, None, 1.0, None, 0.2, None)    # a batch
    assert not cpu_kernels.epilogue_(_map(16, 3, 3), None, torch.zeros([2, 2]), 1.0, None, 0.2, None)  # noise size
    assert not cpu_kernels.epilogue_(_map(3, 3, 3), None, None, 1.0, None, 0.2, None)   # ToRGB: too few channels
    five_taps = torch.ones(5)
    assert cpu_kernels.fir_epilogue(_map(4, 8, 8), five_taps, five_taps, [2, 2, 2, 2], None, None, 1.0, None, None,
                                    None) is None


def _fresh_state(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_kernels, '_library', None)
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path))


def test_switched_off_by_the_environment(monkeypatch, tmp_path):
    _fresh_state(monkeypatch, tmp_path)
    monkeypatch.setenv('STYLEGAN_HUMAN_CPU_KERNELS', '0')
    assert not cpu_kernels.available()
    assert not cpu_kernels.epilogue_(_map(16, 3, 3), None, None, 1.0, None, 0.2, None)
    assert not (tmp_path / 'cpu_kernels').exists()


def test_a_failed_build_is_one_warning_then_the_torch_ops(monkeypatch, tmp_path):
    _fresh_state(monkeypatch, tmp_path)
    monkeypatch.setenv('CC', 'false')   # a "compiler" that always fails
    with pytest.warns(UserWarning, match='fused CPU kernels unavailable') as caught:
        assert not cpu_kernels.available()
    assert len(caught) == 1 and '\n' not in str(caught[0].message)
    assert not cpu_kernels.available()   # decided once per process
    assert [p.name for p in (tmp_path / 'cpu_kernels').iterdir()] == []   # no half-built library left


@needs_kernels
def test_a_compiler_without_openmp_builds_single_threaded_kernels(monkeypatch, tmp_path):
    """Apple's clang has no -fopenmp: the build tries again without it, and the kernels work."""
    real = shutil.which(os.environ.get('CC', 'cc'))
    fake = tmp_path / 'cc-without-openmp'
    fake.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && exit 1; done\nexec ' + real + ' "$@"\n')
    fake.chmod(0o755)
    _fresh_state(monkeypatch, tmp_path)
    monkeypatch.setenv('CC', str(fake))
    assert cpu_kernels.available()
    y = _map(16, 4, 4)
    want = F.leaky_relu(y, 0.2)
    assert cpu_kernels.epilogue_(y, None, None, 1.0, None, 0.2, None)
    torch.testing.assert_close(y, want)


def test_no_compiler_means_the_torch_ops_silently(monkeypatch, tmp_path, recwarn):
    _fresh_state(monkeypatch, tmp_path)
    monkeypatch.setenv('CC', str(tmp_path / 'no-such-compiler'))
    assert not cpu_kernels.available()
    assert len(recwarn) == 0


@needs_kernels
def test_built_once_then_read_from_the_cache(monkeypatch, tmp_path):
    _fresh_state(monkeypatch, tmp_path)
    assert cpu_kernels.available()
    built = list((tmp_path / 'cpu_kernels').iterdir())
    assert len(built) == 1 and built[0].suffix == '.so'
    first = built[0].stat()
    monkeypatch.setattr(cpu_kernels, '_library', None)   # as a new process would start
    assert cpu_kernels.available()
    assert list((tmp_path / 'cpu_kernels').iterdir()) == built
    again = built[0].stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)


@needs_kernels
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('up, channels', [(1, 8), (2, 8), (1, 512), (2, 512)])
def test_layer_is_the_same_with_and_without_the_kernels(monkeypatch, dtype, up, channels):
    """Both epilogue paths of the fused layer: a small map (scaled activations) and a large one
    (modulated kernel), with and without upsampling, against the PyTorch ops one by one."""
    generator = torch.Generator().manual_seed(4)
    size = 8 if channels == 512 else 16   # 512 channels on 8x4 pixels: Winograd's smallest map
    x = torch.randn([1, channels, size, size // 2], generator=generator).to(dtype)
    weight = torch.randn([channels, channels, 3, 3], generator=generator)
    styles = torch.randn([1, channels], generator=generator)
    bias = torch.randn([channels], generator=generator)
    noise = torch.randn([size * up, size * up // 2], generator=generator)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])

    def layer(clamp=0.5):
        return modulated_conv_fast.modulated_conv_bias_act(x, weight, styles, bias, noise=noise, up=up, padding=1,
                                                           resample_filter=f, flip_weight=(up == 1), gain=1.4,
                                                           clamp=clamp)
    through_phases, through_winograd = [], []
    real_phases, real_winograd = cpu_kernels.fir_epilogue_phases, cpu_kernels.winograd_conv3x3
    monkeypatch.setattr(cpu_kernels, 'fir_epilogue_phases', lambda *a: through_phases.append(1) or real_phases(*a))
    monkeypatch.setattr(cpu_kernels, 'winograd_conv3x3', lambda *a: through_winograd.append(1) or real_winograd(*a))
    with torch.no_grad():
        fused = layer()
        # the phase convolutions run where the kernel is modulated (upsampling a large map) or
        # packed once (bfloat16);
        # Winograd on wide float32 layers without upsampling
        packed = dtype == torch.bfloat16 and modulated_conv_fast._packing_works()   # small maps too
        assert len(through_phases) == (up == 2 and (channels == 8 or packed))
        assert len(through_winograd) == (up == 1 and channels == 512 and dtype == torch.float32)
        monkeypatch.setattr(cpu_kernels, '_library', False)
        plain = layer()
        x = x.float()
        exact = layer()
        unclamped = layer(clamp=None)
    assert fused.shape == plain.shape and fused.dtype == plain.dtype == dtype
    fused_error = float((fused.float() - exact).abs().max())
    if dtype == torch.float32:   # Winograd F(4x4, 3x3) keeps about 4 bits fewer than a direct sum
        assert fused_error <= 1e-5 * float(unclamped.abs().max()) * (10 if through_winograd else 1)
    else:   # the kernel rounds once where the PyTorch ops round after every step
        plain_error = float((plain.float() - exact).abs().max())
        assert fused_error <= plain_error


needs_amx = pytest.mark.skipif(not cpu_kernels.amx_available(), reason='no AMX tile units here (or no C compiler)')


@needs_amx
@pytest.mark.parametrize('in_channels, out_channels, height, width, epilogue', [
    (32, 32, 5, 70, True),     # a partial block of pixels at the end of each row
    (96, 64, 3, 33, True),     # three input blocks, two output blocks
    (64, 32, 1, 7, False),     # one row: the zero padding above and below
    (32, 32, 2, 64, False),    # a block whose right neighbour pixel is the row's padding
])
def test_amx_conv3x3_is_the_convolution_then_the_epilogue(in_channels, out_channels, height, width, epilogue):
    generator = torch.Generator().manual_seed(4)
    x = _map(in_channels, height, width, torch.bfloat16, seed=5)
    kernel = (torch.randn([out_channels, in_channels, 3, 3], generator=generator) / in_channels).to(torch.bfloat16)
    scale = torch.rand([out_channels], generator=generator) + 0.5 if epilogue else None
    noise = torch.randn([height, width], generator=generator) if epilogue else None
    bias = torch.randn([out_channels], generator=generator) if epilogue else None
    alpha, clamp = (0.2, 1.0) if epilogue else (None, None)
    got = cpu_kernels.amx_conv3x3(x, cpu_kernels.amx_kernel(kernel), out_channels, scale, noise, 0.7, bias, alpha,
                                  clamp)
    want = _epilogue_by_torch(F.conv2d(x.double(), kernel.double(), padding=1), scale, noise, 0.7, bias, alpha, clamp)
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    assert not epilogue or float(want.abs().max()) == 1.0          # the clamp is in effect
    # Summed in float32, rounded to bfloat16 once.
    torch.testing.assert_close(got.double(), want, rtol=2 ** -8, atol=1e-5 * float(want.abs().max()))


@needs_amx
def test_amx_conv3x3_says_none_where_it_does_not_apply():
    x = _map(32, 4, 4, torch.bfloat16)
    packed = cpu_kernels.amx_kernel(torch.randn([32, 32, 3, 3]))
    assert cpu_kernels.amx_conv3x3(x.float(), packed, 32, None, None, 0.0, None, None, None) is None
    assert cpu_kernels.amx_conv3x3(_map(16, 4, 4, torch.bfloat16), packed, 32, None, None, 0.0, None, None, None) is None
    assert cpu_kernels.amx_conv3x3(x, packed.flatten()[:-1], 32, None, None, 0.0, None, None, None) is None


@needs_amx
@pytest.mark.parametrize('in_channels, out_channels, height, width', [
    (32, 32, 5, 70),    # the last column of the even phases in a block of its own; blocks inside the rows
    (64, 64, 3, 33),    # two input and two output blocks; a block at both ends of every row
    (32, 64, 1, 7),     # one row: the phases' rows above and below it meet zeros
    (32, 32, 2, 63),    # a block that ends one pixel short of the row's end
])
def test_amx_phases_are_the_four_phase_convolutions(in_channels, out_channels, height, width):
    generator = torch.Generator().manual_seed(8)
    x = _map(in_channels, height, width, torch.bfloat16, seed=9)
    shapes = [(2, 2), (2, 1), (1, 2), (1, 1)]
    kernels = [torch.randn([out_channels, in_channels, *shape], generator=generator) / in_channels for shape in shapes]
    got = cpu_kernels.amx_phases(x, cpu_kernels.amx_phase_kernel(kernels), out_channels)
    for phase, kernel, padding in zip(got, kernels, [(1, 1), (1, 0), (0, 1), (0, 0)]):
        want = F.conv2d(x.double(), kernel.to(torch.bfloat16).double(), padding=padding)
        assert phase.dtype == torch.bfloat16 and phase.is_contiguous(memory_format=torch.channels_last)
        assert phase.shape == want.shape
        # Summed in float32, rounded to bfloat16 once.
        torch.testing.assert_close(phase.double(), want, rtol=2 ** -8, atol=1e-5 * float(want.abs().max()))


@needs_amx
def test_amx_phases_say_none_where_they_do_not_apply():
    x = _map(32, 4, 4, torch.bfloat16)
    kernels = [torch.randn([32, 32, *shape]) for shape in [(2, 2), (2, 1), (1, 2), (1, 1)]]
    packed = cpu_kernels.amx_phase_kernel(kernels)
    assert cpu_kernels.amx_phases(x.float(), packed, 32) is None                        # float32
    assert cpu_kernels.amx_phases(_map(48, 4, 4, torch.bfloat16), packed, 32) is None   # 48 channels
    assert cpu_kernels.amx_phases(x, packed, 64) is None                                # a kernel of other channels


@needs_amx
@pytest.mark.parametrize('channels, height, width, outputs', [
    (32, 5, 7, 3),      # 35 pixels: two whole steps of 16 and the last three one by one
    (96, 4, 8, 16),     # three channel blocks, every output of the tile
])
def test_amx_project_is_the_1x1_convolution_then_bias_and_clamp(channels, height, width, outputs):
    generator = torch.Generator().manual_seed(6)
    x = _map(channels, height, width, torch.bfloat16, seed=7)
    weight = torch.randn([outputs, channels], generator=generator) / channels ** 0.5
    bias = torch.randn([outputs], generator=generator)
    got = cpu_kernels.amx_project(x, cpu_kernels.amx_projection(weight), outputs, bias, 2.0)
    rounded = weight.to(torch.bfloat16).double()   # the kernel's weights are bfloat16, its sums float32
    want = (F.conv2d(x.double(), rounded[:, :, None, None]) + bias.double().reshape(1, -1, 1, 1)).clamp(-2, 2)
    assert got.dtype == torch.float32 and got.is_contiguous() and got.shape == (1, outputs, height, width)
    assert float(want.abs().max()) == 2.0                            # the clamp is in effect
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


@needs_amx
def test_amx_project_says_none_where_it_does_not_apply():
    x = _map(32, 4, 4, torch.bfloat16)
    packed = cpu_kernels.amx_projection(torch.randn([3, 32]))
    assert cpu_kernels.amx_project(x.float(), packed, 3, None, None) is None                 # float32
    assert cpu_kernels.amx_project(_map(48, 4, 4, torch.bfloat16), packed, 3, None, None) is None   # 48 channels
    assert cpu_kernels.amx_project(x, packed, 17, None, None) is None                        # 17 outputs
    assert cpu_kernels.amx_project(x, packed, 3, torch.zeros(4), None) is None               # a bias of 4


@needs_kernels
def test_amx_is_offered_exactly_where_the_cpu_has_it():
    with open('/proc/cpuinfo') as f:
        flags = next((line for line in f if line.startswith('flags')), '').split()
    if not flags:
        pytest.skip('no CPU flags listed here')
    has_amx = {'amx_tile', 'amx_bf16', 'avx512_bf16'} <= set(flags)
    built_and_permitted = bool(cpu_kernels._load().sgh_amx_conv_ready())
    assert has_amx or not built_and_permitted
    # Where the kernel can run, it passed its check against PyTorch (a wrong one is never used).
    assert cpu_kernels.amx_available() == built_and_permitted


@needs_kernels
def test_the_winograd_kernels_refuse_channel_counts_they_do_not_take_as_such():
    # Status 2, a ValueError: never "out of memory" for what is a caller's bug.
    library = cpu_kernels._load()
    x = _map(16, 8, 8)
    out = torch.empty([1, 24, 8, 8]).contiguous(memory_format=torch.channels_last)
    transformed, grads = torch.zeros([36, 16, 24]), torch.zeros([36, 24, 16])
    ones, zeros = torch.ones(24), torch.zeros(24)
    assert library.sgh_winograd_conv(x.data_ptr(), 8, 8, 16, torch.ones(16).data_ptr(), transformed.data_ptr(), 24,
                                     out.data_ptr(), ones.data_ptr(), None, 0.0, zeros.data_ptr(), 0.0, 0, -1.0, 1.0,
                                     1) == 2
    assert library.sgh_winograd_kernel_gradient(x.data_ptr(), out.data_ptr(), 8, 8, 16, 24, grads.data_ptr(), 1) == 2
    with pytest.raises(ValueError, match='channel counts'):
        cpu_kernels._raise_on_failure(2, 'the Winograd kernel')
    with pytest.raises(MemoryError):
        cpu_kernels._raise_on_failure(1, 'the Winograd kernel')
