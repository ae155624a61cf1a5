"""S space and SeFa on our own networks (StyleGAN2 and StyleGAN3 fixtures)."""

import numpy as np
import pytest
import torch

import legacy
from conftest import FIXTURES
from edit.sefa import sefa_directions
from edit.stylespace import capture_styles, style_layers, synthesize_with_styles

KW = dict(noise_mode='const', force_fp32=True)


def _load(name):
    return legacy.load_network(FIXTURES / 'networks' / f'{name}.pkl', verbose=False)['G_ema'].eval()


@pytest.mark.parametrize('name, count', [('sg2_rect64', 14), ('sg3r_rect64', 15), ('sg3t_rect64', 15)])
def test_decoding_through_s_space_equals_synthesis(name, count):
    G = _load(name)
    layers = style_layers(G)
    assert len(layers) == count
    ws = G.mapping(torch.from_numpy(np.random.RandomState(3).randn(1, G.z_dim)).float(), None)
    with torch.no_grad():
        styles, images = capture_styles(G, ws, **KW)
        assert list(styles) == [n for n, _ in layers]                      # forward order
        assert torch.equal(images, G.synthesis(ws, **KW))
        unchanged = {n: (lambda s, n=n: styles[n].clone()) for n in styles}
        assert torch.equal(synthesize_with_styles(G, ws, unchanged, **KW), images)
        zero = {layers[2][0]: torch.zeros_like(styles[layers[2][0]])}
        assert torch.equal(synthesize_with_styles(G, ws, zero, **KW), images)
        shifted = {layers[2][0]: torch.full_like(styles[layers[2][0]], 3.0)}
        assert not torch.equal(synthesize_with_styles(G, ws, shifted, **KW), images)


def test_sefa_matches_an_independent_eigen_decomposition():
    G = _load('sg2_rect64')
    chosen = [2, 3, 5]
    directions, values = sefa_directions(G, chosen, top_k=4)
    # Independently: straight from the state dict, with an SVD instead of an eigensolver.
    state = {k: v.double().numpy() for k, v in G.state_dict().items()}
    names = [n for n, _ in style_layers(G)]
    rows = np.concatenate([state[f'synthesis.{names[i]}.affine.weight'] / np.sqrt(G.w_dim) for i in chosen])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    _, singular, vt = np.linalg.svd(rows, full_matrices=False)
    for k in range(4):
        assert abs(float(np.dot(directions[k], vt[k]))) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(values, singular[:4] ** 2, rtol=1e-6)
    assert np.allclose(np.linalg.norm(directions, axis=1), 1, atol=1e-6)
    with pytest.raises(ValueError, match='style layers 0-13'):
        sefa_directions(G, [14])


def test_interfacegan_boundary_recovers_a_linear_attribute():
    from edit.interfacegan import train_boundary
    G = _load('sg2_rect64')
    rng = np.random.RandomState(0)
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(rng.randn(5000, G.z_dim)).float(), None)[:, 0].numpy()
    truth = rng.randn(G.w_dim)
    truth /= np.linalg.norm(truth)
    scores = (w - w.mean(axis=0)) @ truth
    from_scores = train_boundary(w, scores, chosen_ratio=0.5)
    from_labels = train_boundary(w, (scores > np.median(scores)).astype(int))
    assert float(np.dot(from_scores, truth)) > 0.95
    assert float(np.dot(from_labels, truth)) > 0.95
    with pytest.raises(ValueError, match='one class'):
        train_boundary(w[:10], np.ones(10))


def test_stylespace_statistics_find_the_changed_channel():
    from edit.stylespace import channel_statistics, top_channels
    G = _load('sg2_rect64')
    ws = G.mapping(torch.from_numpy(np.random.RandomState(1).randn(64, G.z_dim)).float(), None)
    with torch.no_grad():
        base, _ = capture_styles(G, ws, **KW)
    name = style_layers(G)[4][0]
    positive = {k: v.clone() for k, v in base.items()}
    positive[name][:, 7] += 2 * base[name][:, 7].std()               # the "attribute" moves one channel
    best = top_channels(channel_statistics(positive, base), count=1)[0]
    assert best[:2] == (name, 7)
