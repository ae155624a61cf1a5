"""StyleGAN_Human.ipynb runs top to bottom, headless, against fixture networks and small random weights."""

import os

import pytest
import torch

import legacy
from conftest import ROOT

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')
pytest.importorskip('mediapipe')   # the alignment cell's backend


def _weights(folder):
    """Random weight files in the published formats (the real ones cannot be downloaded here)."""
    from test_pti_networks import _NvidiaLike, alexnet_file, lin_file
    folder.mkdir()
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(_NvidiaLike()), str(folder / 'vgg16.pt'))
    return {'STYLEGAN_HUMAN_NOTEBOOK_VGG16': str(folder / 'vgg16.pt'),
            'STYLEGAN_HUMAN_NOTEBOOK_LPIPS': str(lin_file(folder / 'alex.pth')),
            'STYLEGAN_HUMAN_NOTEBOOK_LPIPS_BACKBONE': str(alexnet_file(folder / 'alexnet.pth'))}


def test_notebook_runs(fixtures_dir, tmp_path, monkeypatch):
    from test_edit_cli import _directions
    network = fixtures_dir / 'networks' / 'sg2_rect64.pkl'
    G = legacy.load_network(network)['G_ema']
    env = dict(_weights(tmp_path / 'weights'),
               STYLEGAN_HUMAN_NOTEBOOK_NETWORK=str(network),
               STYLEGAN_HUMAN_NOTEBOOK_OUTDIR=str(tmp_path),
               STYLEGAN_HUMAN_NOTEBOOK_PHOTO=str(fixtures_dir / 'photos' / 'p_center.png'),
               STYLEGAN_HUMAN_NOTEBOOK_STEPS='8',
               STYLEGAN_HUMAN_NOTEBOOK_DIRECTIONS=str(_directions(G, tmp_path / 'directions')),
               STYLEGAN_HUMAN_NOTEBOOK_FACE_NETWORK=str(fixtures_dir / 'networks' / 'sg2_square64.pkl'),
               STYLEGAN_HUMAN_NOTEBOOK_FACE_BOX='4,2,28,26',
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(ROOT / 'StyleGAN_Human.ipynb', as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                            resources={'metadata': {'path': str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == 'error']
    images = sum('image/png' in o.get('data', {}) or 'image/gif' in o.get('data', {}) for o in outputs)
    assert images >= 8          # generate, interpolate, mix, aligned, inverted, edits, SeFa, InsetGAN
    texts = ''.join(''.join(o.get('text', '')) for o in outputs)
    assert 'sg2_rect64.pkl: 64px' in texts and 'after tuning: PSNR' in texts
    assert (tmp_path / 'interpolation.gif').stat().st_size > 0
    assert (tmp_path / 'aligned.png').is_file()
    assert (tmp_path / 'pti' / 'embeddings' / 'notebook' / 'PTI' / 'photo' / '0.pt').is_file()
