"""Whole networks through the Triton kernels (Triton's interpreter, CPU tensors): the fixture
networks reproduce the upstream renders, and a StyleGAN3 training step (G with path-length
regularisation, D with R1) gives the gradients of the reference ops."""

import copy
import pathlib

import numpy as np
import pytest
import torch

import legacy
import triton_interpreter
from helpers import load_refs
from training import networks_stylegan2, networks_stylegan3
from training.loss import StyleGAN2Loss
from triton_interpreter import interpreter, kernels  # noqa: F401  (fixtures)
from torch_utils.ops import ops_mode
from torch_utils.ops import triton_ops

pytestmark = triton_interpreter.module_marks
test_in_a_fresh_process = triton_interpreter.fresh_process_test(pathlib.Path(__file__))


@pytest.mark.parametrize('name', ['sg2_rect64', 'sg3t_rect64', 'sg3r_rect64'])
def test_fixture_reproduces_the_upstream_render(kernels, fixtures_dir, name):
    G = legacy.load_network(fixtures_dir / 'networks' / f'{name}.pkl')['G_ema']
    _, refs, seeds = load_refs(fixtures_dir, name)
    seed = seeds[-1]
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
    with torch.no_grad():
        w = G.mapping(z, torch.zeros([1, G.c_dim]), truncation_psi=0.7)
        raw = G.synthesis(w, noise_mode='const', force_fp32=True)
    assert np.abs(raw[0].numpy() - refs[f'raw_seed{seed}_psi0.7_const']).max() <= 1e-3
    img = (raw.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
    assert np.abs(img.astype(int) - refs[f'img_seed{seed}_psi0.7_const'].astype(int)).max() <= 1
    assert kernels['bias_act'] > 0 and kernels['resample'] > 0   # the kernels did the work


def _tiny_networks():
    torch.manual_seed(0)
    G = networks_stylegan3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, square=False,
                                     mapping_kwargs=dict(num_layers=1), channel_base=128, channel_max=8,
                                     num_layers=3, num_critical=1, margin_size=2, num_fp16_res=0, conv_kernel=1,
                                     use_radial_filters=True)
    D = networks_stylegan2.Discriminator(c_dim=0, img_resolution=16, img_channels=3, square=False, channel_base=64,
                                         channel_max=8, num_fp16_res=0)
    return G, D


def test_stylegan3_training_step_matches_reference(kernels):
    """Gboth (main loss + path length: second derivatives through filtered_lrelu) and Dboth (main
    loss + R1: second derivatives through bias_act and upfirdn2d) on a tiny StyleGAN3-R."""
    G, D = _tiny_networks()
    real = torch.randn(2, 3, 16, 8, generator=torch.Generator().manual_seed(1))
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(2))
    c = torch.zeros(2, 0)

    def step(context):
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        loss = StyleGAN2Loss('cpu', g, d, r1_gamma=1.0, pl_weight=2.0, pl_batch_shrink=1)
        torch.manual_seed(3)
        with context:
            for phase in ('Gboth', 'Dboth'):
                loss.accumulate_gradients(phase, real, c, z, c, gain=1, cur_nimg=0)
        return {name: p.grad for name, p in [*g.named_parameters(), *d.named_parameters()] if p.grad is not None}

    want = step(ops_mode.reference_ops())
    launches = dict(kernels)
    got = step(triton_ops.triton_kernels())
    assert kernels['resample'] > launches['resample'] and kernels['bias_act'] > launches['bias_act']
    assert got.keys() == want.keys() and len(got) > 20
    for name in want:
        scale = max(want[name].abs().max().item(), 1e-3)
        assert (got[name] - want[name]).abs().max().item() <= 1e-4 * scale, name
