"""The .safetensors export: one self-contained file, taken by every script, loaded without random init."""

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from stylegan_human import commands
import export_network
import generate
import legacy
from conftest import ROOT

pytest.importorskip('safetensors')


def run(command, *args):
    return CliRunner().invoke(command.main, [str(a) for a in args])


@pytest.fixture
def exported(fixtures_dir, tmp_path):
    out = tmp_path / 'export' / 'g.safetensors'
    result = run(export_network, '--network', fixtures_dir / 'networks' / 'sg3r_rect64.pkl', '--out', out)
    assert result.exit_code == 0, result.output
    return out


def test_generate_takes_the_export_and_makes_the_same_images(fixtures_dir, exported, tmp_path):
    for name, network in (('pkl', fixtures_dir / 'networks' / 'sg3r_rect64.pkl'), ('st', exported)):
        result = run(generate, '--network', network, '--seeds', '0,5', '--trunc', 0.7, '--outdir', tmp_path / name)
        assert result.exit_code == 0, result.output
    for seed in ('0000', '0005'):
        assert (tmp_path / 'pkl' / f'seed{seed}.png').read_bytes() == (tmp_path / 'st' / f'seed{seed}.png').read_bytes()


def test_the_export_needs_no_side_file(exported, tmp_path):
    config = json.loads(exported.with_suffix('.json').read_text())   # the readable copy
    assert config['class_name'] == 'Generator' and config['family'] == 'networks_stylegan3'
    alone = tmp_path / 'alone' / 'renamed.bin'                        # no .json, no .safetensors name
    alone.parent.mkdir()
    alone.write_bytes(exported.read_bytes())
    G = legacy.load_network(alone)['G_ema']
    reference = legacy.load_exported_network(exported)
    z = torch.randn([2, G.z_dim])
    assert torch.equal(G(z, None, noise_mode='const'), reference(z, None, noise_mode='const'))


def test_an_export_with_only_the_side_file_still_loads(exported, tmp_path):
    """Exports written before the config moved into the file: plain safetensors plus .json."""
    from safetensors.torch import load_file, save_file
    old = tmp_path / 'old.safetensors'
    save_file(load_file(exported), old)
    (tmp_path / 'old.json').write_text(exported.with_suffix('.json').read_text())
    G = legacy.load_network(old)['G_ema']
    assert type(G).__name__ == 'Generator'
    os.remove(tmp_path / 'old.json')
    with pytest.raises(legacy.NetworkFileError, match='not a StyleGAN-Human export .*old.json'):
        legacy.load_network(old)


def test_foreign_and_damaged_safetensors_are_one_line(exported, tmp_path):
    from safetensors.torch import save_file
    foreign = tmp_path / 'foreign.safetensors'
    save_file({'weight': torch.zeros(3)}, foreign, metadata={'stylegan_human_export': json.dumps({'format': 'x'})})
    with pytest.raises(legacy.NetworkFileError, match='not a StyleGAN-Human export config'):
        legacy.load_network(foreign)
    for family, class_name in (('networks_stylegan2', 'persistence'), ('os', 'system')):
        config = dict(format='stylegan-human-export', family=family, class_name=class_name, init_args=['echo'])
        save_file({'weight': torch.zeros(3)}, foreign, metadata={'stylegan_human_export': json.dumps(config)})
        with pytest.raises(legacy.NetworkFileError, match='unknown network'):
            legacy.load_network(foreign)
    config = dict(format='stylegan-human-export', family='networks_stylegan2', class_name='Generator',
                  init_args=[], init_kwargs={'bogus': 1})
    save_file({'weight': torch.zeros(3)}, foreign, metadata={'stylegan_human_export': json.dumps(config)})
    with pytest.raises(legacy.NetworkFileError, match='cannot rebuild Generator'):
        legacy.load_network(foreign)
    cut = tmp_path / 'cut.safetensors'
    cut.write_bytes(exported.read_bytes()[:1000])
    result = run(generate, '--network', cut, '--seeds', '0', '--outdir', tmp_path / 'out')
    assert result.exit_code == 1 and 'cannot read export' in result.output and 'Traceback' not in result.output
    assert not (tmp_path / 'out').exists()


def test_export_cli_picks_the_network_and_checks_its_arguments(fixtures_dir, tmp_path):
    pkl = fixtures_dir / 'networks' / 'sg2_rect64.pkl'
    result = run(export_network, '--network', pkl, '--which', 'D', '--out', tmp_path / 'd.safetensors')
    assert result.exit_code == 0, result.output
    D = legacy.load_exported_network(tmp_path / 'd.safetensors')
    original = legacy.load_network(pkl)['D']
    img = torch.randn([2, 3, 64, 32])
    with torch.no_grad():   # both the same way: CPU inference multiplies dense layers row by row
        assert torch.equal(D(img, None), original(img, None))

    result = run(export_network, '--network', tmp_path / 'd.safetensors', '--which', 'D', '--out', tmp_path / 'x.safetensors')
    assert result.exit_code == 1 and 'holds no D network (it has G_ema)' in result.output
    result = run(export_network, '--network', pkl, '--out', tmp_path / 'g.pt')
    assert result.exit_code == 1 and 'must end in .safetensors' in result.output
    assert sorted(os.listdir(tmp_path)) == ['d.json', 'd.safetensors']


def test_force_fp16_applies_to_exports(fixtures_dir, exported):
    assert legacy.load_network(exported)['G_ema'].init_kwargs['num_fp16_res'] == 2   # StyleGAN3: flat kwargs
    G = legacy.load_network(exported, force_fp16=True)['G_ema']
    assert G.init_kwargs['num_fp16_res'] == 4 and G.init_kwargs['conv_clamp'] == 256


# ----------------------------------------------------------------------------
# Loading draws no random numbers and touches no global state.


def test_loading_draws_nothing_and_leaves_torch_alone(fixtures_dir):
    before = torch.randn
    torch.manual_seed(0)
    expected = torch.randn(4)
    torch.manual_seed(0)
    legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')
    legacy.load_network(fixtures_dir / 'networks' / 'sg1_square64.pkl')
    assert torch.randn is before
    assert torch.equal(torch.randn(4), expected)   # loading drew nothing from the generator either


# ----------------------------------------------------------------------------
# Process tuning happens in one start-up function that scripts call; libraries never do it.


def test_running_a_command_in_process_leaves_the_collector_alone(exported, tmp_path):
    import gc
    frozen = gc.get_freeze_count()
    assert run(generate, '--network', exported, '--seeds', '1', '--outdir', tmp_path).exit_code == 0
    assert gc.get_freeze_count() == frozen


def test_start_script_freezes_start_up_objects():
    code = ('import gc, torch\nfrom stylegan_human import runtime\nassert gc.get_freeze_count() == 0\n'
            'runtime.start_script()\nprint(gc.get_freeze_count() > 1000)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == 'True', out.stderr


def test_generate_as_a_script_from_an_export(exported, tmp_path):
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, str(ROOT / 'generate.py'), '--network', str(exported), '--seeds', '3',
                           '--outdir', str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert run(generate, '--network', exported, '--seeds', '3', '--outdir', tmp_path / 'in_process').exit_code == 0
    image = np.asarray(PIL.Image.open(out / 'seed0003.png'))
    assert image.shape == (64, 32, 3)
    assert np.array_equal(image, np.asarray(PIL.Image.open(tmp_path / 'in_process' / 'seed0003.png')))
