"""python -m edit.compute: new directions written in upstream's layout, then used by edit.py."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import legacy
from conftest import FIXTURES
from edit import compute
from edit.sefa import sefa_directions, w_index
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
    assert [w_index(G, n) for n in names[:5]] == [0, 1, 1, 2, 3]    # b4.conv1, b4.torgb, b8.conv0/1/torgb
    assert w_index(G, names[-1]) == G.num_ws - 1


def test_sefa_subcommand_then_edit(G, tmp_path):
    out = tmp_path / 'dirs'
    result = _compute(['sefa', '--network', str(NETWORK), '--name', 'pose', '--layers', '2-5', '--outdir', str(out)])
    assert result.exit_code == 0, result.output
    saved = torch.load(out / 'sefa' / 'pose.pt', weights_only=True)
    chosen = [i for i, (n, _) in enumerate(style_layers(G))
              if w_index(G, n) in (2, 3, 4, 5) and not n.endswith('torgb')]   # the default: convs only
    expected, _ = sefa_directions(G, chosen, top_k=1)
    assert np.allclose(saved.numpy(), expected[0])
    assert json.loads((out / 'edit_config.json').read_text())['sefa']['pose'] == [[2, 3, 4, 5], 5.0]
    result = CliRunner().invoke(_cli(), ['--network', str(NETWORK), '--attr_name', 'pose', '--directions', str(out),
                                         '--seeds', '1', '--gen_video', 'False', '--outdir', str(tmp_path / 'e')])
    assert result.exit_code == 0, result.output                      # edit.py knows the new attribute, SeFa only


def _independent_sefa(G, names):
    """SeFa straight from the state dict: rows of the named layers' affines, unit length, SVD (not an eigensolver)."""
    state = {k: v.double().numpy() for k, v in G.state_dict().items()}
    rows = np.concatenate([state[f'synthesis.{name}.affine.weight'] for name in names])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return np.linalg.svd(rows, full_matrices=False)[2]


def test_sefa_default_is_the_papers_convolutions_only(G, tmp_path):
    # w+ layers 2-5 of sg2_rect64 are read by b8.conv1, b8.torgb, b16.conv0, b16.conv1, b16.torgb, b32.conv0.
    convs = ['b8.conv1', 'b16.conv0', 'b16.conv1', 'b32.conv0']
    every = ['b8.conv1', 'b8.torgb', 'b16.conv0', 'b16.conv1', 'b16.torgb', 'b32.conv0']
    saved = {}
    for extra, names in (([], convs), (['--sefa-layers', 'convs'], convs), (['--sefa-layers', 'all'], every)):
        for index in (0, 1):
            out = tmp_path / f'{"".join(extra)}{index}'
            result = _compute(['sefa', '--network', str(NETWORK), '--name', 'pose', '--layers', '2-5', '--index',
                               str(index), '--outdir', str(out)] + extra)
            assert result.exit_code == 0, result.output
            direction = torch.load(out / 'sefa' / 'pose.pt', weights_only=True).double().numpy()
            assert abs(float(np.dot(direction, _independent_sefa(G, names)[index]))) == pytest.approx(1, abs=1e-5)
            saved[(tuple(extra), index)] = direction
    cos = abs(float(np.dot(saved[((), 0)], saved[(('--sefa-layers', 'all'), 0)])))
    print(f'|cos| between the convs-only and the all-layers first direction: {cos:.3f}')
    assert cos < 0.9
    help_text = _compute(['sefa', '--help']).output
    assert '--sefa-layers' in help_text and 'toRGB' in help_text and 'convs' in help_text


@pytest.mark.parametrize('network, torgb', [('sg2_rect64', 'b64.torgb'), ('sg3t_rect64', 'L14_32_3')])
def test_sefa_layers_leave_torgb_out_by_default(network, torgb):
    from edit.sefa import sefa_layers
    G = legacy.load_network(FIXTURES / 'networks' / f'{network}.pkl', verbose=False)['G_ema'].eval()
    names = [n for n, _ in style_layers(G)]
    everything = range(G.num_ws)
    assert names[sefa_layers(G, everything, 'all')[-1]] == torgb
    convs = [names[i] for i in sefa_layers(G, everything)]
    assert torgb not in convs and not any(n.endswith('torgb') for n in convs)
    assert len(convs) == len(names) - (5 if network == 'sg2_rect64' else 1)


def test_sefa_on_torgb_only_layers_says_what_to_do(tmp_path):
    result = _compute(['sefa', '--network', str(NETWORK), '--name', 'x', '--layers', '9', '--outdir', str(tmp_path)])
    assert result.exit_code == 1 and 'Traceback' not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1 and '--layers' in errors[0] and '--sefa-layers all' in errors[0], result.output
    assert not any(tmp_path.iterdir())


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
