"""Upstream's README inversion -> edit commands, typed exactly as it prints them, in a folder laid out
as upstream's README says (pretrained_models/, aligned_image/, pti/e4e_w+.pt), with tiny stand-ins
for the published files."""

import shlex
import shutil

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import legacy
import run_pti
from conftest import FIXTURES, ROOT
from dnnlib.downloads import _CachePaths
from pti import weight_files
from stylegan_human.sampling import generate_images
from test_edit_cli import _cli as edit_cli, _directions
from test_pti_networks import alexnet_file, e4e_file, lin_file

# As upstream's README prints them (its three dashes included).
UPSTREAM_PTI = 'python run_pti.py'
UPSTREAM_EDIT = ('python edit.py ---network outputs/pti/checkpoints/model_test.pkl --attr_name upper_length '
                 '--outdir outputs/edit_results --real True --real_w_path outputs/pti/embeddings/test/PTI/test/0.pt '
                 '--real_img_path aligned_image/test.png')


def _as_downloaded(name, file, cache):
    """Put ``file`` where ``python -m pti.weight_files download NAME`` would have left it."""
    paths = _CachePaths(str(cache), weight_files.FILES[name].url)
    shutil.copy(file, paths.final(file.name))


def _run(command, cli):
    argv = shlex.split(command)
    assert argv[0] == 'python'
    return CliRunner().invoke(cli, argv[2:])


@pytest.mark.parametrize('command', [UPSTREAM_PTI, UPSTREAM_EDIT])
def test_our_readme_shows_the_upstream_commands(command):
    readme = ' '.join((ROOT / 'README.md').read_text().replace('\\\n', ' ').split())
    assert command in readme


def test_upstream_inversion_then_edit_run_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / 'cache'
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(cache))
    (cache / 'downloads').mkdir(parents=True)
    (tmp_path / 'weights').mkdir()
    _as_downloaded('lpips_alex_lin', lin_file(tmp_path / 'weights' / 'alex.pth'), cache / 'downloads')
    _as_downloaded('alexnet_torchvision', alexnet_file(tmp_path / 'weights' / 'alexnet.pth'), cache / 'downloads')

    (tmp_path / 'pretrained_models').mkdir()
    shutil.copy(FIXTURES / 'networks' / 'sg2_rect64.pkl', tmp_path / 'pretrained_models' / 'stylegan_human_v2_1024.pkl')
    G = legacy.load_network(tmp_path / 'pretrained_models' / 'stylegan_human_v2_1024.pkl')['G_ema']
    (tmp_path / 'pti').mkdir()
    e4e_file(tmp_path / 'pti' / 'e4e_w+.pt', n_styles=G.num_ws, w_dim=G.w_dim)
    (tmp_path / 'aligned_image').mkdir()
    PIL.Image.fromarray(generate_images(G, [4], truncation_psi=0.7)[0].image).save(tmp_path / 'aligned_image' / 'test.png')
    _directions(G, tmp_path / 'latent_direction')

    inverted = _run(UPSTREAM_PTI, run_pti.main)
    assert inverted.exit_code == 0, inverted.output
    assert (tmp_path / 'outputs' / 'pti' / 'checkpoints' / 'model_test.pkl').is_file()
    assert (tmp_path / 'outputs' / 'pti' / 'embeddings' / 'test' / 'PTI' / 'test' / '0.pt').is_file()

    edited = _run(UPSTREAM_EDIT, edit_cli())
    assert edited.exit_code == 0, edited.output
    strip = np.asarray(PIL.Image.open(tmp_path / 'outputs' / 'edit_results' / 'upper_length_real.png'))
    assert strip.shape[0] == 64 and strip.shape[1] >= 4 * 32     # photo | inverted | one panel per method
    assert (tmp_path / 'outputs' / 'edit_results').is_dir()
