"""Upstream's direction file formats, read and mapped onto our layers (synthetic files in those formats)."""

import pickle

import numpy as np
import pytest
import torch

import legacy
from conftest import FIXTURES
from edit import directions
from edit.edit_config import KNOWN_ATTRIBUTES, attr_dict
from edit.stylespace import capture_styles, synthesize_with_styles


@pytest.fixture(scope='module')
def G():
    return legacy.load_network(FIXTURES / 'networks' / 'sg2_rect64.pkl', verbose=False)['G_ema'].eval()


def test_upstream_config_is_data():
    assert KNOWN_ATTRIBUTES == ('bottom_length', 'upper_length')
    assert attr_dict['stylespace']['upper_length'] == [5, -5, 0.0028]
    assert attr_dict['sefa']['bottom_length'] == [[4, 5, 6, 7], 5]


def test_stylespace_vectors_map_onto_our_conv_layers(G, tmp_path):
    layers = directions.conv_style_layers(G)
    assert [n for n, _ in layers][:3] == ['b4.conv1', 'b8.conv0', 'b8.conv1']        # toRGB left out
    rng = np.random.RandomState(0)
    for i, (_, affine) in enumerate(layers):
        with open(tmp_path / f'style_vect_mean_{i}.pkl', 'wb') as f:
            pickle.dump(rng.randn(affine.weight.shape[0]).astype(np.float32), f)   # as upstream: numpy pickles
    vectors = directions.read_stylespace_vectors(tmp_path)
    changes = directions.stylespace_edit(G, vectors)
    ws = G.mapping(torch.zeros(1, G.z_dim), None)
    kw = dict(noise_mode='const', force_fp32=True)
    with torch.no_grad():
        base, images = capture_styles(G, ws, **kw)
        zero = {k: v * 0 for k, v in changes.items()}
        assert torch.equal(synthesize_with_styles(G, ws, zero, **kw), images)        # zero strength: unchanged
        assert not torch.equal(synthesize_with_styles(G, ws, changes, **kw), images)


def test_mismatched_or_unsafe_files_are_refused(G, tmp_path):
    with pytest.raises(directions.DirectionFileError, match='made for another network'):
        directions.stylespace_edit(G, {0: np.zeros(7, np.float32)})
    with pytest.raises(directions.DirectionFileError, match='S layers 0-8'):
        directions.stylespace_edit(G, {30: np.zeros(64, np.float32)})

    class Evil:
        def __reduce__(self):
            return (print, ('side effect',))
    with open(tmp_path / 'style_vect_mean_0.pkl', 'wb') as f:
        pickle.dump(Evil(), f)
    with pytest.raises(directions.DirectionFileError, match='not a direction file'):
        directions.read_stylespace_vectors(tmp_path)
    torch.save(torch.zeros(64), tmp_path / 'sefa.pt')
    with pytest.raises(directions.DirectionFileError, match='w_dim 128'):
        directions.check_w_direction(G, directions.read_sefa_vector(tmp_path / 'sefa.pt'))


def test_statistics_csv(tmp_path):
    (tmp_path / 'statis.csv').write_text(',channel,strength\n423,423,0.0044\n12,12,0.0030\n')
    channels, strengths = directions.read_stylespace_statistics(tmp_path / 'statis.csv')
    assert list(channels) == [12, 423] and np.allclose(strengths, [0.0030, 0.0044])
