"""--precision: fp32 exact by default, bf16 close to it, refused where the hardware lacks it."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import generate
import legacy
from conftest import FIXTURES
from stylegan_human.sampling import generate_images
from torch_utils import precision


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg2_square64', 'sg3t_rect64'])
def test_bf16_images_stay_close_to_fp32(name):
    G = legacy.load_network(FIXTURES / 'networks' / f'{name}.pkl')['G_ema'].eval()
    seeds = list(range(6))
    exact = generate_images(G, seeds, truncation_psi=0.7)
    with precision.use_precision(torch.bfloat16):
        assert precision.compute_dtype() == torch.bfloat16
        rounded = generate_images(G, seeds, truncation_psi=0.7)
    assert precision.compute_dtype() == torch.float32                   # the scope ended
    for a, b in zip(exact, rounded):
        np.testing.assert_array_equal(a.w, b.w)                           # mapping stays in fp32
        assert 30 < _psnr(a.image, b.image) < 100                         # close, and really computed in bf16


def test_bf16_leaves_stylegan3_r_in_fp32():
    # Its 1x1 convolutions gain nothing from bf16 and its filters run slower in it.
    G = legacy.load_network(FIXTURES / 'networks' / 'sg3r_rect64.pkl')['G_ema'].eval()
    exact = generate_images(G, [0, 1], truncation_psi=0.7)
    with precision.use_precision(torch.bfloat16):
        same = generate_images(G, [0, 1], truncation_psi=0.7)
    for a, b in zip(exact, same):
        np.testing.assert_array_equal(a.image, b.image)


def test_resolve_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, 'native_bf16', lambda device: True)
    assert precision.resolve('bf16', 'cpu') == torch.bfloat16
    assert precision.resolve('auto', 'cpu') == torch.bfloat16
    assert precision.resolve('fp32', 'cpu') == torch.float32
    monkeypatch.setattr(precision, 'native_bf16', lambda device: False)
    assert precision.resolve('auto', 'cpu') == torch.float32
    with pytest.raises(precision.InputError, match='neither AMX nor AVX-512 BF16'):
        precision.resolve('bf16', 'cpu')


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(precision, 'cpu_flags', lambda: frozenset({'avx2', 'amx_bf16'}))
    assert precision.native_bf16('cpu')
    monkeypatch.setattr(precision, 'cpu_flags', lambda: frozenset({'avx2', 'avx512f'}))
    assert not precision.native_bf16('cpu')


def test_cli_without_native_bf16(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, 'native_bf16', lambda device: False)
    network = str(FIXTURES / 'networks' / 'sg2_rect64.pkl')
    result = CliRunner().invoke(generate.main, ['--network', network, '--seeds', '0', '--outdir', str(tmp_path / 'a'),
                                                '--precision', 'bf16', '--device', 'cpu'])
    assert result.exit_code == 1 and not (tmp_path / 'a').exists()
    assert result.output.strip().splitlines() == [
        'Error: --precision: bf16: this CPU has neither AMX nor AVX-512 BF16, so bfloat16 would be slower, '
        'not faster; use fp32 (or auto, which picks bf16 only where it is native)']
    result = CliRunner().invoke(generate.main, [
        '--network', network, '--seeds', '0', '--outdir', str(tmp_path / 'b'), '--precision', 'auto', '--device', 'cpu'])
    assert result.exit_code == 0 and 'computing in fp32' in result.output
    fp32 = CliRunner().invoke(generate.main, ['--network', network, '--seeds', '0', '--outdir', str(tmp_path / 'c'),
                                              '--device', 'cpu'])
    assert fp32.exit_code == 0
    assert (tmp_path / 'b' / 'seed0000.png').read_bytes() == (tmp_path / 'c' / 'seed0000.png').read_bytes()


@pytest.mark.parametrize('up', [1, 2])
@pytest.mark.parametrize('clamp', [0.5, 256])   # in effect; never reached
@pytest.mark.parametrize('noise_mode', ['const', 'none'])
def test_a_bf16_layer_with_noise_bias_and_clamp_stays_close_to_fp32(up, clamp, noise_mode):
    """bf16 adds noise and bias as one matrix product and clamps only after reading the map."""
    from torch_utils.ops import modulated_conv_fast
    from training import networks_stylegan2
    torch.manual_seed(1)
    layer = networks_stylegan2.SynthesisLayer(8, 6, w_dim=5, resolution=32, up=up, conv_clamp=clamp).eval()
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
        layer.bias.normal_()
    x, w = torch.randn(1, 8, 32 // up, 16 // up), torch.randn(1, 5)
    with torch.no_grad():
        exact = layer(x, w, noise_mode=noise_mode, gain=0.8)
        with precision.use_precision(torch.bfloat16):
            assert modulated_conv_fast.applies(x.bfloat16(), layer.weight, activation='lrelu')
            rounded = layer(x.bfloat16(), w, noise_mode=noise_mode, gain=0.8)
    assert rounded.dtype == torch.bfloat16
    error = (rounded.float() - exact).abs().max() / exact.abs().max()
    # Measured 0.2-0.6%; with the clamp in effect the values before it were ~15x the 0.4 kept.
    assert error < (1e-2 if clamp == 256 else 4e-2)
    if clamp == 0.5:
        assert float(rounded.float().abs().max()) == pytest.approx(0.4, abs=2e-3)   # clamp 0.5 * gain
