"""python -m edit.compute: new directions written in upstream's layout, then used by edit.py."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import legacy
from conftest import FIXTURES
from edit import compute
from edit.sefa import sefa_directions
from edit.stylespace import style_layers
from test_edit_cli import _cli

NETWORK = FIXTURES / 'networks' / 'sg2_rect64.pkl'


@pytest.fixture(scope='module')
def G():
    return legacy.load_network(NETWORK, verbose=False)['G_ema'].eval()


def _compute(args):
    return CliRunner().invoke(compute.cli, args)


def test_w_index_of_style_layers(G):
    names = [n for n, _ in style_layers(G)]
    assert [compute._w_index(G, n) for n in names[:5]] == [0, 1, 1, 2, 3]    # b4.conv1, b4.torgb, b8.conv0/1/torgb
    assert compute._w_index(G, names[-1]) == G.num_ws - 1


def test_sefa_subcommand_then_edit(G, tmp_path):
    out = tmp_path / 'dirs'
    result = _compute(['sefa', '--network', str(NETWORK), '--name', 'pose', '--layers', '2-5', '--outdir', str(out)])
    assert result.exit_code == 0, result.output
    saved = torch.load(out / 'sefa' / 'pose.pt', weights_only=True)
    chosen = [i for i, (n, _) in enumerate(style_layers(G)) if compute._w_index(G, n) in (2, 3, 4, 5)]
    expected, _ = sefa_directions(G, chosen, top_k=1)
    assert np.allclose(saved.numpy(), expected[0])
    assert json.loads((out / 'edit_config.json').read_text())['sefa']['pose'] == [[2, 3, 4, 5], 5.0]
    result = CliRunner().invoke(_cli(), ['--network', str(NETWORK), '--attr_name', 'pose', '--directions', str(out),
                                         '--seeds', '1', '--gen_video', 'False', '--outdir', str(tmp_path / 'e')])
    assert result.exit_code == 0, result.output                      # edit.py knows the new attribute, SeFa only


def test_interfacegan_and_stylespace_from_labels(G, tmp_path):
    rng = np.random.RandomState(0)
    seeds = list(range(400))
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim)
                                                       for s in seeds])).float(), None)[:, 0].numpy()
    truth = rng.randn(G.w_dim)
    score = (w - w.mean(0)) @ truth
    (tmp_path / 'labels.csv').write_text('seed,label\n' + ''.join(f'{s},{int(v > np.median(score))}\n'
                                                                  for s, v in zip(seeds, score)))
    out = tmp_path / 'dirs'
    for method in ('interfacegan', 'stylespace'):
        result = _compute([method, '--network', str(NETWORK), '--name', 'thing', '--labels',
                           str(tmp_path / 'labels.csv'), '--outdir', str(out)])
        assert result.exit_code == 0, result.output
    normal = np.load(out / 'ss' / 'thing' / 'boundary_w.npy')
    # 400 samples in 128-d: roughly right here; tests/test_edit_stylespace.py checks the accuracy (5000 samples).
    assert float(np.dot(normal, truth / np.linalg.norm(truth))) > 0.6
    config = json.loads((out / 'edit_config.json').read_text())
    assert set(config) == {'interface_gan', 'stylespace'} and 'thing' in config['stylespace']
    result = CliRunner().invoke(_cli(), ['--network', str(NETWORK), '--attr_name', 'thing', '--directions', str(out),
                                         '--seeds', '1', '--gen_video', 'False', '--outdir', str(tmp_path / 'e')])
    assert result.exit_code == 0, result.output


def test_scorer_callable(G, tmp_path, monkeypatch):
    (tmp_path / 'my_scores.py').write_text('def brightness(images):\n    return images.mean(axis=(1, 2, 3))\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    result = _compute(['interfacegan', '--network', str(NETWORK), '--name', 'bright', '--scorer',
                       'my_scores:brightness', '--seeds', '0-99', '--chosen-ratio', '0.3', '--outdir',
                       str(tmp_path / 'dirs')])
    assert result.exit_code == 0, result.output
    assert (tmp_path / 'dirs' / 'ss' / 'bright' / 'style_vect_mean_0.pkl').is_file()
    result = _compute(['interfacegan', '--network', str(NETWORK), '--name', 'x', '--outdir', str(tmp_path)])
    assert result.exit_code == 1 and 'either --labels CSV or --scorer' in result.output


def test_stylegan3_network_end_to_end(tmp_path):
    network = FIXTURES / 'networks' / 'sg3t_rect64.pkl'
    out = tmp_path / 'dirs'
    result = _compute(['sefa', '--network', str(network), '--name', 'pose', '--layers', '3-6', '--outdir', str(out)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(_cli(), ['--network', str(network), '--attr_name', 'pose', '--directions', str(out),
                                         '--seeds', '1', '--gen_video', 'False', '--outdir', str(tmp_path / 'e')])
    assert result.exit_code == 0, result.output
    import PIL.Image
    strip = np.asarray(PIL.Image.open(tmp_path / 'e' / 'pose_00001.png')).astype(int)
    assert strip.shape == (64, 64, 3) and np.abs(strip[:, :32] - strip[:, 32:]).mean() > 0.5
