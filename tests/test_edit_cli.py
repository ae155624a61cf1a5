"""edit.py end to end on a fixture network, with direction files in upstream's layout (synthetic values)."""

import importlib.util
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import legacy
from conftest import FIXTURES, ROOT
from edit import directions

NETWORK = FIXTURES / 'networks' / 'sg2_rect64.pkl'


def _cli():
    spec = importlib.util.spec_from_file_location('edit_cli', ROOT / 'edit.py')   # edit/ is the package
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope='module')
def G():
    return legacy.load_network(NETWORK, verbose=False)['G_ema'].eval()


def _directions(G, root, attr='upper_length'):
    rng = np.random.RandomState(0)
    (root / 'ss' / attr).mkdir(parents=True)
    for i, (_, affine) in enumerate(directions.conv_style_layers(G)):
        with open(root / 'ss' / attr / f'style_vect_mean_{i}.pkl', 'wb') as f:
            pickle.dump(rng.randn(affine.weight.shape[0]).astype(np.float32), f)
    statis = root / 'ss_statics' / f'{attr}_statis' / '5'
    statis.mkdir(parents=True)
    rows = ''.join(f'{c},{c},{v}\n' for c, v in enumerate(rng.rand(64) * 0.01))
    (statis / 'statis.csv').write_text(',channel,strength\n' + rows)
    (root / 'sefa').mkdir()
    torch.save(torch.from_numpy(rng.randn(G.w_dim).astype(np.float32)), root / 'sefa' / f'{attr}.pt')
    return root


def _run(args):
    return CliRunner().invoke(_cli(), ['--network', str(NETWORK), '--device', 'cpu'] + args)


def test_seeds_strips_and_combined_video(G, tmp_path):
    root = _directions(G, tmp_path / 'dirs')
    out = tmp_path / 'out'
    result = _run(['--attr_name', 'upper_length', '--seeds', '1,2', '--directions', str(root), '--outdir', str(out),
                   '--layers', '4,5'])
    assert result.exit_code == 0, result.output
    strip = np.asarray(PIL.Image.open(out / 'upper_length_00001.png'))
    assert strip.shape == (64, 4 * 32, 3)                        # original | interfacegan | stylespace | sefa
    assert PIL.Image.open(out / 'final.png').size == (128, 128)
    import imageio.v3 as iio
    video = iio.imread(out / 'video' / 'upper_length_00001.mp4')
    assert video.shape[0] == 90 and video.shape[2] == 128
    # Frame 0 is strength zero: every edited panel equals the original (up to the video codec).
    first = video[0].astype(int)
    assert np.abs(first[:, 32:64] - first[:, :32]).mean() < 4 and np.abs(first[:, 96:] - first[:, :32]).mean() < 4


def test_zero_strength_reproduces_the_image_exactly(G, tmp_path):
    from edit.methods import Editor
    root = _directions(G, tmp_path / 'dirs')
    editor = Editor(G, 'upper_length', str(root), layers=[5])
    ws = G.mapping(torch.zeros(1, G.z_dim), None)
    with torch.no_grad():
        plain = G.synthesis(ws, noise_mode='const', force_fp32=True)
    for method in ('interfacegan', 'stylespace', 'sefa'):
        assert torch.equal(editor.image(ws, method, 0.0), plain)
        assert not torch.equal(editor.image(ws, method, 1.0), plain)


def test_editing_a_pti_result(G, tmp_path):
    root = _directions(G, tmp_path / 'dirs')
    pivot = G.mapping(torch.randn(1, G.z_dim), None).detach()
    torch.save(pivot, tmp_path / '0.pt')
    legacy.save_network_pkl({'G_ema': G}, tmp_path / 'model_test_me.pkl')
    with torch.no_grad():
        image = G.synthesis(pivot, noise_mode='const', force_fp32=True)
    from pti.images import tensor_to_uint8
    PIL.Image.fromarray(tensor_to_uint8(image)).save(tmp_path / 'me.png')
    out = tmp_path / 'out'
    result = CliRunner().invoke(_cli(), ['--network', str(tmp_path / 'model_test_me.pkl'), '--attr_name', 'upper_length',
                                         '--real', 'True', '--real_w_path', str(tmp_path / '0.pt'), '--real_img_path',
                                         str(tmp_path / 'me.png'), '--directions', str(root), '--layers', '5',
                                         '--gen_video', 'False', '--outdir', str(out)])
    assert result.exit_code == 0, result.output
    strip = np.asarray(PIL.Image.open(out / 'upper_length_real.png'))
    assert strip.shape == (64, 5 * 32, 3)
    assert np.array_equal(strip[:, :32], strip[:, 32:64])        # the photo | the pivot's image: identical here


@pytest.mark.parametrize('args, message', [
    (['--attr_name', 'hair_colour'], 'known attributes: bottom_length, upper_length'),
    (['--attr_name', 'upper_length', '--real', 'True'], '--real True needs --real_w_path'),
    (['--attr_name', 'upper_length', '--layers', '40'], 'this network has w layers 0-9'),
])
def test_user_errors(G, tmp_path, args, message):
    root = _directions(G, tmp_path / 'dirs')
    result = _run(args + ['--directions', str(root), '--outdir', str(tmp_path / 'out')])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1 and message in errors[0], result.output


def test_direction_files_for_another_network_are_refused(G, tmp_path):
    root = _directions(G, tmp_path / 'dirs')
    with open(root / 'ss' / 'upper_length' / 'style_vect_mean_12.pkl', 'wb') as f:
        pickle.dump(np.zeros(512, np.float32), f)                    # as published for the 1024 model
    result = _run(['--attr_name', 'upper_length', '--directions', str(root), '--outdir', str(tmp_path / 'o')])
    assert result.exit_code == 1 and 'made for another network' in result.output


def test_published_files_are_fetched_by_name(G, tmp_path, monkeypatch):
    from edit.published import direction_root, files_for
    mirror = _directions(G, tmp_path / 'mirror')
    for rel in files_for('upper_length'):                            # the full published file set
        path = mirror / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes((mirror / 'ss' / 'upper_length' / 'style_vect_mean_0.pkl').read_bytes())
    monkeypatch.setenv('STYLEGAN_HUMAN_DIRECTIONS_URL_BASE', mirror.as_uri())
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    root = direction_root('upper_length', str(tmp_path / 'nowhere'))
    assert root.startswith(str(tmp_path / 'cache'))
    assert (tmp_path / 'cache' / 'latent_direction' / 'sefa' / 'upper_length.pt').is_file()
    assert direction_root('upper_length', str(tmp_path / 'nowhere')) == root     # once fetched, reused


@pytest.mark.parametrize('name', ['pivot.pt', 'objects.npz'])
def test_unreadable_latent_file_is_one_line_naming_it(G, tmp_path, name):
    root = _directions(G, tmp_path / 'dirs')
    latent = tmp_path / name
    if name.endswith('.npz'):
        np.savez(latent, w=np.array([{'w': 1}], dtype=object))   # an object array: never unpickled
    else:
        latent.write_text('not a tensor')
    result = _run(['--attr_name', 'upper_length', '--real', 'True', '--real_w_path', str(latent),
                   '--directions', str(root), '--outdir', str(tmp_path / 'out')])
    assert result.exit_code == 1 and 'Traceback' not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith('Error: ')]
    assert len(errors) == 1 and errors[0].startswith(f'Error: --real_w_path: {latent}: not a latent file'), result.output
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('method, wanted', [
    ('sefa', ['sefa/upper_length.pt']),
    ('stylespace', ['ss/upper_length/style_vect_mean_5.pkl', 'ss_statics/upper_length_statis/5/statis.csv']),
    ('interfacegan', [f'ss/upper_length/style_vect_mean_{i}.pkl' for i in range(16)]),
])
def test_only_the_chosen_methods_files_are_fetched(G, tmp_path, monkeypatch, method, wanted):
    from dnnlib import util
    mirror = _directions(G, tmp_path / 'mirror')
    base = 'https://mirror.invalid/latent_direction'
    requested = []

    def fake_open_url(url, return_filename=False, **kwargs):
        rel = url[len(base) + 1:]
        requested.append(rel)
        if not (mirror / rel).exists():              # the published set has 16 S layers, this network 10
            (mirror / rel).write_bytes(pickle.dumps(np.zeros(0, np.float32)))
        return str(mirror / rel)
    monkeypatch.setattr(util, 'open_url', fake_open_url)
    monkeypatch.setenv('STYLEGAN_HUMAN_DIRECTIONS_URL_BASE', base)
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    result = _run(['--attr_name', 'upper_length', '--method', method, '--seeds', '1', '--gen_video', 'False',
                   '--directions', str(tmp_path / 'nowhere'), '--outdir', str(tmp_path / 'out')])
    assert sorted(requested) == sorted(wanted)
    if method == 'interfacegan':                     # layers 10-15 of the published set: not for this network
        assert result.exit_code == 1 and 'made for another network' in result.output, result.output
    else:
        assert result.exit_code == 0, result.output
