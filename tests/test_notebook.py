"""StyleGAN_Human.ipynb runs top to bottom, headless, against a fixture network."""

import os

import pytest

from conftest import ROOT

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')


def test_notebook_runs(fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('STYLEGAN_HUMAN_NOTEBOOK_NETWORK', str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'))
    monkeypatch.setenv('STYLEGAN_HUMAN_NOTEBOOK_OUTDIR', str(tmp_path))
    monkeypatch.setenv('PYTHONPATH', str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    notebook = nbformat.read(ROOT / 'StyleGAN_Human.ipynb', as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                            resources={'metadata': {'path': str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == 'error']
    assert sum('image/png' in o.get('data', {}) or 'image/gif' in o.get('data', {}) for o in outputs) >= 3
    assert any('sg2_rect64.pkl: 64px' in ''.join(o.get('text', '')) for o in outputs)
    assert (tmp_path / 'interpolation.gif').stat().st_size > 0
