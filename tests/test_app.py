"""app.py's work functions (no browser): same images as the scripts, user errors as AppError."""

import numpy as np
import pytest

import app
import generate
import legacy
import style_mixing
from dnnlib.errors import InputError
from stylegan_human.network_access import NetworkAccess
from stylegan_human.network_cache import NetworkCache, module_bytes
from stylegan_human.request_limits import RequestLimits


def _networks(*folders, **cache_bounds):
    """Networks loadable from ``folders`` (the fixture networks by default)."""
    from conftest import FIXTURES
    folders = folders or (FIXTURES / 'networks',)
    return app.Networks('cpu', access=NetworkAccess([str(f) for f in folders]), cache=NetworkCache(**cache_bounds))


def test_generate_image_and_latents_match_generate_py(fixtures_dir):
    networks = _networks()
    path = str(fixtures_dir / 'networks' / 'sg3t_rect64.pkl')
    G = networks.get(path)
    assert networks.get(path) is G                      # loaded once, kept
    image, latents = app.generate_image(G, 4, 0.7, 'const', (0.1, 0.0), 5.0)
    (want,) = generate.generate_images(G, [4], truncation_psi=0.7, translate=(0.1, 0.0), rotate=5.0)
    np.testing.assert_array_equal(image, want.image)
    np.testing.assert_array_equal(latents['w'][0], want.w)
    assert int(latents['seed'][0]) == 4


def test_an_export_gives_the_same_person(fixtures_dir, tmp_path):
    networks = _networks(fixtures_dir / 'networks', tmp_path)
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
    G = _networks().get(str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'))
    grid, latents = app.mixing_grid(G, '1,2', '3', '0-3', psi=0.8)
    images = style_mixing.style_mix(G, [1, 2], [3], [0, 1, 2, 3], truncation_psi=0.8)
    np.testing.assert_array_equal(grid, style_mixing.mixing_grid(images, [1, 2], [3]))
    assert list(latents['seed']) == [1, 2, 3] and latents['w'].shape == (3, G.num_ws, G.w_dim)
    with pytest.raises(app.AppError, match='styles'):
        app.mixing_grid(G, '1', '3', '0-99')


def test_user_mistakes_are_app_errors(tmp_path, fixtures_dir):
    networks = _networks(fixtures_dir / 'networks', tmp_path)
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
    G = _networks().get(str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'))
    root = _directions(G, tmp_path / 'dirs')
    before, unchanged, latents = app.edited_pair(G, 3, 0.8, 'upper_length', 'sefa', 0.0, str(root))
    (want,) = generate.generate_images(G, [3], truncation_psi=0.8)
    np.testing.assert_array_equal(before, want.image)
    np.testing.assert_array_equal(unchanged, want.image)          # zero strength: no edit
    _, edited, _ = app.edited_pair(G, 3, 0.8, 'upper_length', 'sefa', 5.0, str(root))
    assert np.abs(edited.astype(int) - want.image.astype(int)).max() > 10
    assert int(latents['seed'][0]) == 3


# ----------------------------------------------------------------------------
# Bounds on requests: checked before any work, the limit named in the message.


def test_style_mixing_counts_are_bounded_before_any_work():
    limits = RequestLimits(mix_rows=16, mix_cols=3)
    no_network = None                                   # touched only after the checks
    with pytest.raises(InputError, match=r'^Style mixing: at most 16 row seeds \(got 100000\)$'):
        app.mixing_grid(no_network, '1-100000', '1', '0-3', limits=limits)
    with pytest.raises(InputError, match=r'^Style mixing: at most 16 row seeds \(got 10000000001\)$'):
        app.mixing_grid(no_network, '0-10000000000', '1', '0-3', limits=limits)   # counted, never expanded
    with pytest.raises(InputError, match=r'^Style mixing: at most 3 column seeds \(got 4\)$'):
        app.mixing_grid(no_network, '1', '1,2,3,3', '0-3', limits=limits)
    with pytest.raises(InputError, match='at most 8 row seeds'):    # the default
        app.mixing_grid(no_network, '0-8', '1', '0-3')
    with pytest.raises(InputError, match='at most 1024 layers'):
        app.mixing_grid(no_network, '1', '1', '0-99999999')
    with pytest.raises(InputError, match='each of the row seeds must be between 0 and 4294967295, not -1'):
        app.mixing_grid(no_network, '-1,2', '1', '0-3')
    with pytest.raises(InputError, match="Style mixing: row seeds: 'x' is not a number"):
        app.mixing_grid(no_network, 'x', '1', '0-3')


def test_interpolation_steps_and_seeds_are_bounded():
    with pytest.raises(InputError, match=r'^Interpolate: at most 100 steps \(got 5000\)$'):
        app.interpolation_frames(None, 1, 2, 5000)
    with pytest.raises(InputError, match=r'^Interpolate: at most 7 steps \(got 8\)$'):
        app.interpolation_frames(None, 1, 2, 8.0, limits=RequestLimits(interp_steps=7))
    with pytest.raises(InputError, match='steps must be a whole number'):
        app.interpolation_frames(None, 1, 2, 2.5)
    with pytest.raises(InputError, match='to seed must be between 0 and 4294967295'):
        app.interpolation_frames(None, 1, 2 ** 32, 3)


def test_generate_seed_and_photo_size_are_checked(fixtures_dir):
    with pytest.raises(InputError, match='Generate: seed must be between 0 and 4294967295, not -3'):
        app.generate_image(None, -3, 0.8)
    with pytest.raises(InputError, match='Generate: seed must be a whole number'):
        app.generate_image(None, None, 0.8)
    photo = np.zeros((300, 200, 3), np.uint8)
    with pytest.raises(InputError, match=r'Alignment: at most 0.05 megapixels per photo \(got 0.1: 200x300\)'):
        app.aligned_photo(photo, RequestLimits(photo_megapixels=0.05))


def test_limits_come_from_the_command_line(monkeypatch, fixtures_dir):
    pytest.importorskip('gradio')
    seen = {}
    monkeypatch.setattr(app, 'launch', lambda demo, host, port, share=False, max_upload_mb=None:
                        seen.update(demo=demo, share=share, max_upload_mb=max_upload_mb))
    from click.testing import CliRunner
    network = str(fixtures_dir / 'networks' / 'sg2_rect64.pkl')
    result = CliRunner().invoke(app.main, ['--network', network, '--device', 'cpu', '--max-mix-rows', '2',
                                           '--max-interp-steps', '5', '--max-upload-mb', '3', '--share'])
    assert result.exit_code == 0, result.output
    assert seen['share'] is True and seen['max_upload_mb'] == 3
    on_mix, on_interpolate = _handler(seen['demo'], 'on_mix'), _handler(seen['demo'], 'on_interpolate')
    import gradio
    with pytest.raises(gradio.Error, match=r'Style mixing: at most 2 row seeds \(got 3\)'):
        on_mix(network, '1-3', '4', '0-3', 0.8)
    with pytest.raises(gradio.Error, match=r'Interpolate: at most 5 steps \(got 6\)'):
        on_interpolate(network, 1, 2, 6, 'z', 'lerp', 0.8, 'gif')
    result = CliRunner().invoke(app.main, ['--max-mix-rows', '0'])
    assert result.exit_code != 0 and 'Error' in result.output and 'Traceback' not in result.output


def _handler(demo, name):
    (fn,) = [f.fn for f in demo.fns.values() if getattr(f.fn, '__name__', '') == name]
    return fn


def test_page_handlers_check_limits_before_loading_the_network(tmp_path):
    pytest.importorskip('gradio')
    import gradio

    class NoNetworks:
        def get(self, name):
            raise AssertionError('a network was loaded before the request was checked')
    demo = app.build_app(NoNetworks(), workdir=str(tmp_path), limits=RequestLimits(mix_rows=16))
    with pytest.raises(gradio.Error, match=r'Style mixing: at most 16 row seeds \(got 100000\)'):
        _handler(demo, 'on_mix')('anything', '1-100000', '1', '0-3', 0.8)
    with pytest.raises(gradio.Error, match=r'Interpolate: at most 100 steps \(got 101\)'):
        _handler(demo, 'on_interpolate')('anything', 1, 2, 101, 'z', 'lerp', 0.8, 'gif')
    with pytest.raises(gradio.Error, match='Generate: seed must be between'):
        _handler(demo, 'on_generate')('anything', 2 ** 40, 0.8, 'const', 0, 0, 0)
    with pytest.raises(gradio.Error, match='Edit: seed must be between'):
        _handler(demo, 'on_edit')('anything', -1, 0.8, 'upper_length', 'sefa', 1.0)


# ----------------------------------------------------------------------------
# Which networks the page may name; how many stay loaded.


def test_the_page_names_no_file_outside_its_folders_and_cannot_probe_for_files(tmp_path, fixtures_dir):
    networks = _networks(tmp_path)
    messages = set()
    for spec in ('/etc/shadow', '/etc/no-such-file', str(fixtures_dir / 'networks' / 'sg2_rect64.pkl'),
                 str(tmp_path / 'missing.pkl')):
        with pytest.raises(app.AppError) as info:
            networks.get(spec)
        messages.add(str(info.value).replace(spec, 'SPEC'))
    assert len(messages) == 1, messages            # exists or not, inside or outside: the same answer
    (tmp_path / 'escape.pkl').symlink_to(fixtures_dir / 'networks' / 'sg2_rect64.pkl')
    with pytest.raises(app.AppError) as info:
        networks.get(str(tmp_path / 'escape.pkl'))
    assert str(info.value).replace(str(tmp_path / 'escape.pkl'), 'SPEC') in messages
    assert len(networks.cache) == 0


def test_a_url_to_this_machine_is_refused_with_nothing_requested(tmp_path, fixtures_dir):
    from test_network_access import LoggingServer
    server = LoggingServer()
    try:
        server.routes['/g.pkl'] = (200, {}, (fixtures_dir / 'networks' / 'sg2_rect64.pkl').read_bytes())
        url = server.url('/g.pkl')
        networks = app.Networks('cpu', access=NetworkAccess(allow_urls=True, download_dir=str(tmp_path)))
        with pytest.raises(app.AppError, match=f'^Network {url}: .*refused: 127.0.0.1 is a loopback address'):
            networks.get(url)
        with pytest.raises(app.AppError, match='--allow-urls'):
            _networks().get(url)
        assert server.log == []
    finally:
        server.close()


def test_loaded_networks_are_bounded_by_count_and_memory(fixtures_dir, tmp_path):
    names = [str(fixtures_dir / 'networks' / f'{n}.pkl') for n in ('sg2_rect64', 'sg2_square64', 'sg3t_rect64')]
    networks = _networks(max_networks=2)
    first = networks.get(names[0])
    networks.get(names[1])
    networks.get(names[2])
    assert [key.rsplit('/', 1)[1] for key in networks.cache.keys()] == ['sg2_square64.pkl', 'sg3t_rect64.pkl']
    assert networks.get(names[0]) is not first     # dropped, so loaded again

    sizes = [module_bytes(legacy.load_network(name)['G_ema']) for name in names[:2]]
    networks = _networks(max_networks=10, max_bytes=sum(sizes) - 1)
    networks.get(names[0])
    networks.get(names[1])                          # both do not fit: the first goes
    assert len(networks.cache) == 1 and networks.cache.total_bytes == sizes[1]
    with pytest.raises(app.AppError, match=r'^Network .*sg2_rect64.pkl: the network holds .* MiB of weights'):
        _networks(max_bytes=sizes[0] - 1).get(names[0])


def test_the_page_computes_in_the_precision_the_command_line_names(tmp_path, fixtures_dir):
    pytest.importorskip('gradio')
    import torch
    network = str(fixtures_dir / 'networks' / 'sg2_rect64.pkl')
    images = {}
    for dtype in (torch.float32, torch.bfloat16):   # bf16 computes anywhere; --precision refuses it where slow
        folder = tmp_path / str(dtype)
        folder.mkdir()
        demo = app.build_app(_networks(), workdir=str(folder), number_format=dtype)
        images[dtype] = _handler(demo, 'on_generate')(network, 3, 0.8, 'const', 0, 0, 0)[0]
    exact = _generated(network, 3)
    np.testing.assert_array_equal(images[torch.float32], exact)
    difference = images[torch.bfloat16].astype(float) - exact
    assert 0 < np.abs(difference).max() and 10 * np.log10(255 ** 2 / np.mean(difference ** 2)) > 30


def _generated(network, seed):
    from stylegan_human.sampling import generate_images
    G = legacy.load_network(network, verbose=False)['G_ema']
    return generate_images(G, [seed], truncation_psi=0.8, noise_mode='const')[0].image


def test_precision_bf16_without_native_units_is_one_line(monkeypatch, fixtures_dir):
    pytest.importorskip('gradio')
    from click.testing import CliRunner
    from torch_utils import precision
    monkeypatch.setattr(precision, 'native_bf16', lambda device='cpu': False)
    monkeypatch.setattr(app, 'launch', lambda *args, **kwargs: pytest.fail('the app must not start'))
    network = str(fixtures_dir / 'networks' / 'sg2_rect64.pkl')
    result = CliRunner().invoke(app.main, ['--network', network, '--device', 'cpu', '--precision', 'bf16'])
    assert result.exit_code != 0 and 'Traceback' not in result.output
    assert 'bf16: this CPU has neither AMX nor AVX-512 BF16' in result.output
