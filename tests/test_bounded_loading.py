"""Loading checks a file's networks against the file's own tensors before taking memory."""

import json
import subprocess
import sys

import pytest
import torch

import legacy
from conftest import ROOT
from helpers import rewrite_pickle

PEAK_RSS_LIMIT_KB = 1024 * 1024   # 1 GiB


def _huge_z_dim(kwargs):
    kwargs['z_dim'] = 2 ** 31


def _export_with_config(path, source, edit):
    """A copy of the .safetensors export ``source`` whose embedded config went through ``edit``."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(source), framework='pt') as f:
        metadata = dict(f.metadata())
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    config = json.loads(metadata['stylegan_human_export'])
    edit(config)
    metadata['stylegan_human_export'] = json.dumps(config)
    save_file(tensors, str(path), metadata=metadata)


def _generate_peak_rss(network, outdir):
    """Run generate.py on ``network`` in a child process; its result and peak RSS (kB)."""
    probe = (
        'import resource, subprocess, sys\n'
        'r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n'
        'sys.stdout.write(r.stdout + r.stderr)\n'
        'print("RC", r.returncode, "RSS", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n')
    out = subprocess.run([sys.executable, '-c', probe, sys.executable, str(ROOT / 'generate.py'),
                          '--network', str(network), '--seeds', '0', '--outdir', str(outdir), '--device', 'cpu'],
                         capture_output=True, text=True, timeout=300).stdout
    *lines, status = out.strip().splitlines()
    _, rc, _, rss = status.split()
    return int(rc), [line for line in lines if line.strip()], int(rss)


@pytest.fixture
def huge_pickle(fixtures_dir, tmp_path):
    path = tmp_path / 'huge.pkl'
    rewrite_pickle(fixtures_dir / 'networks' / 'sg2_rect64.pkl', path, keep=['G_ema'], edit_kwargs=_huge_z_dim)
    return path


@pytest.fixture
def huge_export(fixtures_dir, tmp_path):
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')['G_ema']
    plain = tmp_path / 'plain.safetensors'
    legacy.export_network(G, plain)
    path = tmp_path / 'huge.safetensors'
    _export_with_config(path, plain, lambda config: _huge_z_dim(config['init_kwargs']))
    return path


@pytest.mark.parametrize('which', ['huge_pickle', 'huge_export'])
def test_a_config_larger_than_memory_is_one_line_with_little_memory(request, tmp_path, which):
    network = request.getfixturevalue(which)
    rc, lines, peak_kb = _generate_peak_rss(network, tmp_path / 'out')
    assert rc == 1
    errors = [line for line in lines if line.startswith('Error:')]
    assert len(errors) == 1 and 'z_dim=2147483648' in errors[0] and 'Traceback' not in '\n'.join(lines), lines
    assert peak_kb < PEAK_RSS_LIMIT_KB, f'peak RSS {peak_kb} kB'
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def test_sizes_the_file_could_hold_but_whose_tensors_it_cannot_are_refused_before_allocation(fixtures_dir, tmp_path):
    """Each value passes the first check (no larger than the file's value count), yet together they ask
    for terabytes: the constructor is stopped at the first tensor over the budget."""
    def wide(kwargs):
        kwargs['synthesis_kwargs']['channel_base'] = 400_000
        kwargs['synthesis_kwargs']['channel_max'] = 400_000
    path = tmp_path / 'wide.pkl'
    rewrite_pickle(fixtures_dir / 'networks' / 'sg2_rect64.pkl', path, keep=['G_ema'], edit_kwargs=wide)
    rc, lines, peak_kb = _generate_peak_rss(path, tmp_path / 'out')
    errors = [line for line in lines if line.startswith('Error:')]
    assert rc == 1 and len(errors) == 1 and 'more than the file could fill' in errors[0], lines
    assert peak_kb < PEAK_RSS_LIMIT_KB, f'peak RSS {peak_kb} kB'


def test_loading_draws_no_random_initial_values(fixtures_dir, monkeypatch):
    import torch as real_torch
    calls = []
    original = real_torch.Tensor.normal_
    monkeypatch.setattr(real_torch.Tensor, 'normal_', lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    legacy.load_network(fixtures_dir / 'networks' / 'sg3r_rect64.pkl')
    assert calls == []


def test_a_consistent_config_is_still_refused_when_memory_is_short(fixtures_dir, monkeypatch):
    from torch_utils import memory
    monkeypatch.setattr(memory, 'available_bytes', lambda device: 1000)
    with pytest.raises(legacy.NetworkFileError, match=r'needs .* GiB, but only .* GiB of memory is free'):
        legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')


# ----------------------------------------------------------------------------
# The strict name and shape check: a file must hold exactly the network's tensors.


def _add_buffer(state):
    state['_modules']['synthesis'].state['_buffers']['stray'] = torch.zeros(3)


def _drop_noise_strength(state):
    del state['_modules']['synthesis'].state['_modules']['b8'].state['_modules']['conv0'] \
        .state['_parameters']['noise_strength']


def _wrong_shape(state):
    params = state['_modules']['synthesis'].state['_modules']['b4'].state['_parameters']
    params['const'] = torch.zeros(list(params['const'].shape[:-1]) + [params['const'].shape[-1] + 1])


@pytest.mark.parametrize('edit, message', [
    (_add_buffer, r"unexpected \['synthesis.stray'\]"),
    (_drop_noise_strength, r"missing \['synthesis.b8.conv0.noise_strength'\]"),
    (_wrong_shape, r'synthesis.b4.const has shape'),
])
def test_pickle_tensors_must_match_the_architecture(fixtures_dir, tmp_path, edit, message):
    path = tmp_path / 'edited.pkl'
    rewrite_pickle(fixtures_dir / 'networks' / 'sg2_rect64.pkl', path, keep=['G_ema'], edit_state=edit)
    with pytest.raises(legacy.NetworkFileError, match=message) as info:
        legacy.load_network(path)
    assert '\n' not in str(info.value)


def test_export_tensors_must_match_the_architecture(fixtures_dir, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')['G_ema']
    legacy.export_network(G, tmp_path / 'g.safetensors')
    with safe_open(str(tmp_path / 'g.safetensors'), framework='pt') as f:
        metadata = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    extra = dict(tensors, stray=torch.zeros(2))
    save_file(extra, str(tmp_path / 'extra.safetensors'), metadata=metadata)
    with pytest.raises(legacy.NetworkFileError, match=r"unexpected \['stray'\]"):
        legacy.load_network(tmp_path / 'extra.safetensors')
    fewer = {k: v for k, v in tensors.items() if k != 'mapping.w_avg'}
    save_file(fewer, str(tmp_path / 'fewer.safetensors'), metadata=metadata)
    with pytest.raises(legacy.NetworkFileError, match=r"missing \['mapping.w_avg'\]"):
        legacy.load_network(tmp_path / 'fewer.safetensors')


def test_stylegan1_conversion_is_bounded_too(fixtures_dir):
    """The TF converter fills every tensor from the file (built without storage, nothing left uninitialised)."""
    torch.manual_seed(0)
    data = legacy.load_network(fixtures_dir / 'networks' / 'sg1_square64.pkl')
    again = legacy.load_network(fixtures_dir / 'networks' / 'sg1_square64.pkl')
    for name, tensor in data['G_ema'].state_dict().items():
        assert torch.equal(tensor, again['G_ema'].state_dict()[name]), name


# ----------------------------------------------------------------------------
# A forbidden global hidden inside embedded tensor bytes is refused, never "retry unsafely".


class _System:
    def __reduce__(self):
        import os
        return (os.system, ('echo should-not-run',))


class _NestedBytes:
    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        import torch.storage
        return (torch.storage._load_from_bytes, (self.payload,))


def test_a_global_inside_nested_tensor_bytes_is_refused_and_named(tmp_path):
    import io
    import pickle
    buffer = io.BytesIO()
    torch.save(_System(), buffer)
    path = tmp_path / 'nested.pkl'
    path.write_bytes(pickle.dumps({'G_ema': _NestedBytes(buffer.getvalue())}, protocol=4))
    with pytest.raises(legacy.NetworkFileError) as info:
        legacy.load_network(path)
    message = str(info.value)
    assert 'refused to load' in message and 'system' in message and 'embedded tensor bytes' in message
    assert 'weights_only' not in message and 'truncated' not in message and '\n' not in message
