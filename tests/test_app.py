"""app.py's work functions (no browser): same images as the scripts, user errors as AppError."""

import numpy as np
import pytest

import app
import generate
import legacy
import style_mixing


def test_generate_image_and_latents_match_generate_py(fixtures_dir):
    networks = app.Networks('cpu')
    path = str(fixtures_dir / 'networks' / 'sg3t_rect64.pkl')
    G = networks.get(path)
    assert networks.get(path) is G                      # loaded once, kept
    image, latents = app.generate_image(G, 4, 0.7, 'const', (0.1, 0.0), 5.0)
    (want,) = generate.generate_images(G, [4], truncation_psi=0.7, translate=(0.1, 0.0), rotate=5.0)
    np.testing.assert_array_equal(image, want.image)
    np.testing.assert_array_equal(latents['w'][0], want.w)
    assert int(latents['seed'][0]) == 4


def test_an_export_gives_the_same_person(fixtures_dir, tmp_path):
    networks = app.Networks('cpu')
    pkl = str(fixtures_dir / 'networks' / 'sg2_rect64.pkl')
    legacy.export_network(networks.get(pkl), tmp_path / 'g.safetensors')
    from_export, _ = app.generate_image(networks.get(str(tmp_path / 'g.safetensors')), 2, 0.7)
    np.testing.assert_array_equal(from_export, app.generate_image(networks.get(pkl), 2, 0.7)[0])


def test_strip_keeps_first_and_last_frames():
    frames = [np.full((4, 2, 3), i, np.uint8) for i in range(20)]
    shown = app.strip(frames, count=5)
    assert shown.shape == (4, 10, 3)
    assert shown[0, 0, 0] == 0 and shown[0, -1, 0] == 19


def test_mixing_grid_equals_style_mixing(fixtures_dir):
    G = app.Networks('cpu').get(str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'))
    grid, latents = app.mixing_grid(G, '1,2', '3', '0-3', psi=0.8)
    images = style_mixing.style_mix(G, [1, 2], [3], [0, 1, 2, 3], truncation_psi=0.8)
    np.testing.assert_array_equal(grid, style_mixing.mixing_grid(images, [1, 2], [3]))
    assert list(latents['seed']) == [1, 2, 3] and latents['w'].shape == (3, G.num_ws, G.w_dim)
    with pytest.raises(app.AppError, match='styles'):
        app.mixing_grid(G, '1', '3', '0-99')


def test_user_mistakes_are_app_errors(tmp_path, fixtures_dir):
    networks = app.Networks('cpu')
    with pytest.raises(app.AppError, match='Network: give'):
        networks.get('  ')
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(b'not a pickle')
    with pytest.raises(app.AppError, match='bad.pkl'):
        networks.get(str(bad))
    G = networks.get(str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'))
    with pytest.raises(app.AppError, match='at least 1'):
        app.interpolation_frames(G, 1, 2, 0)
    frames, ws = app.interpolation_frames(G, 1, 2, 3)
    assert len(frames) == len(ws) == 4      # 3 steps: 4 frames, both ends included
    with pytest.raises(app.AppError, match='upload a photo'):
        app.aligned_photo(None)
    with pytest.raises(app.AppError, match='unknown attribute'):
        app.edited_pair(G, 0, 0.8, 'no_such_attribute', 'sefa', 1.0, str(tmp_path))


def test_edit_tab_work_uses_edit_py_directions(fixtures_dir, tmp_path):
    from test_edit_cli import _directions
    G = app.Networks('cpu').get(str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'))
    root = _directions(G, tmp_path / 'dirs')
    before, unchanged, latents = app.edited_pair(G, 3, 0.8, 'upper_length', 'sefa', 0.0, str(root))
    (want,) = generate.generate_images(G, [3], truncation_psi=0.8)
    np.testing.assert_array_equal(before, want.image)
    np.testing.assert_array_equal(unchanged, want.image)          # zero strength: no edit
    _, edited, _ = app.edited_pair(G, 3, 0.8, 'upper_length', 'sefa', 5.0, str(root))
    assert np.abs(edited.astype(int) - want.image.astype(int)).max() > 10
    assert int(latents['seed'][0]) == 3
