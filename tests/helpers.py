"""Test helpers: rewrite official pickles, compare against upstream references, check CLI errors."""

import json
import pickle

import numpy as np
import torch

import legacy
from torch_utils import persistence


class _Persistent:
    """Pickles as the official persistent-object call with the given meta."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (persistence._reconstruct_persistent_obj, (self.meta,))


def _rewrap(value, module_src):
    if isinstance(value, legacy.PersistentRecord):
        meta = dict(value.meta)
        if module_src is not None:
            meta['module_src'] = module_src
        meta['state'] = _rewrap(value.state, module_src)
        return _Persistent(meta)
    if isinstance(value, dict):
        return type(value)((k, _rewrap(v, module_src)) for k, v in value.items())
    return value


def rewrite_pickle(src_path, dst_path, module_src=None, keep=None, edit_kwargs=None, edit_state=None):
    """Re-pickle an official file: optionally new module_src, a subset of keys, edited init kwargs,
    or ``edit_state(state)`` on each network's module state."""
    data = legacy.read_pickle_safely(src_path)
    if keep is not None:
        data = {k: data[k] for k in keep}
    for record in data.values():
        if isinstance(record, legacy.PersistentRecord):
            if edit_kwargs is not None:
                edit_kwargs(record.state['_init_kwargs'])
            if edit_state is not None:
                edit_state(record.state)
    with open(dst_path, 'wb') as f:
        pickle.dump(_rewrap(data, module_src), f, protocol=4)


def load_refs(fixtures_dir, name):
    info = json.loads((fixtures_dir / 'networks' / f'{name}_ref.json').read_text())
    refs = np.load(fixtures_dir / 'networks' / f'{name}_ref.npz')
    seeds = [int(s) for s in str(info['seeds']).split(',')]
    return info, refs, seeds


def check_against_refs(G, refs, seeds, w_tol=1e-4, raw_tol=1e-3):
    """Every seed x psi x noise mode of the fixture: w, raw output and uint8 image."""
    checked = 0
    for seed in seeds:
        for psi in (1.0, 0.7):
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
            c = torch.zeros([1, G.c_dim])
            with torch.no_grad():
                w = G.mapping(z, c, truncation_psi=psi)
            w_ref = refs[f'w_seed{seed}_psi{psi}']
            assert np.abs(w[0].numpy() - w_ref).max() <= w_tol, (seed, psi)
            for noise in ('const', 'none'):
                with torch.no_grad():
                    raw = G.synthesis(w, noise_mode=noise, force_fp32=True)
                raw_ref = refs[f'raw_seed{seed}_psi{psi}_{noise}']
                assert np.abs(raw[0].numpy() - raw_ref).max() <= raw_tol, (seed, psi, noise)
                img = (raw.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
                img_ref = refs[f'img_seed{seed}_psi{psi}_{noise}']
                assert np.abs(img.astype(int) - img_ref.astype(int)).max() <= 1, (seed, psi, noise)
                checked += 1
    return checked


def one_line_failure(result, *words):
    """A click run that failed as a user mistake should: exit 1, one ``Error:`` line naming ``words``, no traceback."""
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith('Error:')]
    assert len(errors) == 1 and 'Traceback' not in result.output, result.output
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


# ----------------------------------------------------------------------------
# Op tests (polyphase and Triton paths against the reference)


def seeded_randn(*shape, seed=0, dtype=None):
    """Normal samples from their own generator (float64 unless ``dtype`` says otherwise)."""
    import torch
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype or torch.float64)


def fir_filter(kind, taps, seed):
    """None, a 1-D filter of ``taps`` taps, or a 2-D one that is not square (float32)."""
    import torch
    if kind is None:
        return None
    if kind == '1d':
        return seeded_randn(taps, seed=seed, dtype=torch.float32)
    return seeded_randn(taps, max(taps - 1, 1), seed=seed, dtype=torch.float32)


def assert_close_scaled(got, want, tol):
    """Same shape and dtype, and the largest difference within ``tol`` of the larger of 1 and max |want|."""
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(want.abs().max().item(), 1.0)
    err = (got - want).abs().max().item()
    assert err <= tol * scale, (err, scale)


def load_benchmark(name):
    """benchmarks/NAME.py as a module (the benchmarks are scripts, not a package)."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / 'benchmarks' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
