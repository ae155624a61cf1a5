"""style_mixing.py: cells, grid layout, errors."""

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import generate
import legacy
import style_mixing

NETWORKS = ['sg2_rect64', 'sg2_square64', 'sg3t_rect64', 'sg3r_rect64', 'sg1_square64', 'sg1_square128auto']


@pytest.mark.parametrize('name', NETWORKS)
def test_empty_and_full_style_sets(fixtures_dir, name):
    G = legacy.load_network(fixtures_dir / 'networks' / f'{name}.pkl')['G_ema']
    rows, cols = [0, 5], [7]
    own = {s.seed: s.image for s in generate.generate_images(G, rows + cols, truncation_psi=0.8)}
    none = style_mix(G, rows, cols, [])
    everything = style_mix(G, rows, cols, list(range(G.num_ws)))
    for row in rows:
        np.testing.assert_array_equal(none[(row, 7)], own[row])
        np.testing.assert_array_equal(everything[(row, 7)], own[7])
    some = style_mix(G, rows, cols, [0, 1, 2])
    assert not np.array_equal(some[(0, 7)], own[0]) and not np.array_equal(some[(0, 7)], own[7])


def style_mix(G, rows, cols, styles):
    return style_mixing.style_mix(G, rows, cols, styles, truncation_psi=0.8)


def test_cli_grid_and_cells(fixtures_dir, tmp_path):
    network = fixtures_dir / 'networks' / 'sg2_rect64.pkl'
    result = CliRunner().invoke(style_mixing.main, ['--network', str(network), '--rows', '0,5', '--cols', '7,9',
                                                     '--styles', '0-3', '--outdir', str(tmp_path)])
    assert result.exit_code == 0, result.output
    grid = np.asarray(PIL.Image.open(tmp_path / 'grid.png'))
    assert grid.shape == (64 * 3, 32 * 3, 3)
    assert not grid[:64, :32].any()                                   # Blank corner.
    cell = np.asarray(PIL.Image.open(tmp_path / '5-9.png'))
    np.testing.assert_array_equal(grid[128:192, 64:96], cell)
    G = legacy.load_network(network)['G_ema']
    col_seed = generate.generate_images(G, [9], truncation_psi=0.8)[0].image
    np.testing.assert_array_equal(grid[:64, 64:96], col_seed)          # Top row: column seeds.


def test_style_index_out_of_range(fixtures_dir, tmp_path):
    network = fixtures_dir / 'networks' / 'sg2_rect64.pkl'   # num_ws = 10
    result = CliRunner().invoke(style_mixing.main, ['--network', str(network), '--rows', '0', '--cols', '1',
                                                     '--styles', '8-12', '--outdir', str(tmp_path / 'o')])
    assert result.exit_code != 0 and 'Traceback' not in result.output
    assert 'styles 0-9' in result.output
    assert not (tmp_path / 'o').exists()


def test_unwritable_outdir(fixtures_dir, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    result = CliRunner().invoke(style_mixing.main, ['--network', str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'),
                                                     '--rows', '0', '--cols', '1', '--outdir', str(blocker / 'sub')])
    assert result.exit_code != 0 and 'Traceback' not in result.output and 'Error:' in result.output
    assert blocker.read_text() == 'not a folder'
