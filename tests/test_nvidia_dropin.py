"""The drop-in for NVIDIA's checkouts: ``python -m training.dropin --into CHECKOUT``.

Always run: which checkout a folder is (from its files), refusals, backups of NVIDIA's
files, and the generated files themselves: every import against the module names
recorded for each checkout (``training/dropin/trees.py``), and the networks, dataset and
option logic behaving as the toolkit's own modules they are made from.

With ``STYLEGAN2_ADA_DIR`` / ``STYLEGAN3_DIR`` pointing at checkouts of
NVlabs/stylegan2-ada-pytorch / NVlabs/stylegan3 (each test is skipped otherwise): the
checkout is copied into a temporary folder, the drop-in exported into the copy, and the
copy's train.py (NVIDIA's training loop, loss and augmentation, untouched) trains a tiny
network on 16 images of 16x32 with upstream StyleGAN-Human's command line, plus options
that make it small and short. The snapshot must appear, hold 2:1 networks and load in this
toolkit (``legacy.load_network``), whose generator then makes 2:1 images.

NVIDIA's loop asks for CUDA (``torch.device('cuda', rank)``, CUDA events, CUDA memory
statistics). Without a GPU the test starts train.py through a runner written into the
temporary folder (never into the checkout, never part of the drop-in), which only:

* gives NVIDIA's ``training.training_loop`` module a ``torch`` whose ``device('cuda', i)``
  is the CPU and whose ``cuda.Event`` and memory statistics are stand-ins (wall-clock
  timing, 0 GiB);
* makes ``Tensor.pin_memory()`` return the tensor (PyTorch refuses without an accelerator);
* lets ``torch.utils.data.Sampler.__init__`` take the argument NVIDIA's InfiniteSampler
  still passes (newer PyTorch dropped it);
* makes the preview grids (reals.png, fakes*.png) 4x4 images: upstream's size, up to
  32x32, takes minutes per grid on a CPU.

And where ``pkg_resources`` is missing (setuptools 81 and later), a one-line
``pkg_resources.py`` with ``parse_version`` (from ``packaging``) goes on PYTHONPATH for that
run: StyleGAN3's torch_utils imports it.
"""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

import numpy as np
import PIL.Image
import pytest
import torch

from conftest import ROOT
from training.dropin import export, sources, trees
from training.dropin.trees import STYLEGAN2_ADA, STYLEGAN3, TREES, DropinError

PYTHON = sys.executable

# ----------------------------------------------------------------------------
# Fake checkouts: the files that tell the code bases apart, with placeholder text.


def _fake_tree(root, tree_name):
    files = list(trees.COMMON_FILES) + list(TREES[tree_name].markers)
    files += [dest for dest, _source in export.dropin_files(TREES[tree_name]) if dest != 'training/train_config.py']
    for name in set(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'# NVIDIA original of {name}\n')
    return root


@pytest.fixture
def fake_ada(tmp_path):
    return _fake_tree(tmp_path / 'stylegan2-ada-pytorch', STYLEGAN2_ADA)


@pytest.fixture
def fake_sg3(tmp_path):
    return _fake_tree(tmp_path / 'stylegan3', STYLEGAN3)


def _snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


# ----------------------------------------------------------------------------
# Which checkout.


def test_each_checkout_is_told_by_its_files(fake_ada, fake_sg3):
    assert trees.detect_tree(fake_ada).name == STYLEGAN2_ADA
    assert trees.detect_tree(fake_sg3).name == STYLEGAN3
    assert trees.detect_tree(fake_sg3, 'stylegan3').name == STYLEGAN3
    (fake_sg3 / 'training' / 'networks.py').write_text('# a leftover\n')
    assert trees.detect_tree(fake_sg3).name == STYLEGAN3


def test_a_folder_that_is_no_nvidia_checkout_is_refused(tmp_path, fake_ada):
    empty = tmp_path / 'empty'
    empty.mkdir()
    no_networks = _fake_tree(tmp_path / 'no-networks', STYLEGAN2_ADA)
    (no_networks / 'training' / 'networks.py').unlink()
    no_loop = _fake_tree(tmp_path / 'no-loop', STYLEGAN3)
    (no_loop / 'training' / 'training_loop.py').unlink()
    cases = {empty: 'neither a StyleGAN2-ADA nor a StyleGAN3 checkout (no train.py)',
             no_networks: 'neither training/networks.py nor training/networks_stylegan3.py',
             no_loop: '(no training/training_loop.py)',
             ROOT: 'is the StyleGAN-Human toolkit itself',
             tmp_path / 'missing': 'no such folder'}
    for folder, message in cases.items():
        with pytest.raises(DropinError, match=message.replace('(', r'\(').replace(')', r'\)')) as info:
            export.export_dropin(folder)
        assert info.value.param == 'into' and '\n' not in str(info.value)
    with pytest.raises(DropinError, match='is a StyleGAN2-ADA checkout, not StyleGAN3') as info:
        export.export_dropin(fake_ada, 'stylegan3')
    assert info.value.param == 'tree'


def test_a_refused_export_writes_nothing(tmp_path):
    checkout = _fake_tree(tmp_path / 'sg2', STYLEGAN2_ADA)
    before = _snapshot(checkout)
    with pytest.raises(DropinError):
        export.export_dropin(checkout, 'stylegan3')
    assert _snapshot(checkout) == before


# ----------------------------------------------------------------------------
# Writing: backups, reports, repeated exports.


def test_export_replaces_nvidia_files_keeping_backups(fake_ada):
    before = _snapshot(fake_ada)
    tree, steps = export.export_dropin(fake_ada)
    assert tree.name == STYLEGAN2_ADA
    actions = {step.dest: (step.action, step.backup) for step in steps}
    assert actions == {
        'train.py': ('replace', 'train.py.orig'),
        'training/dataset.py': ('replace', 'training/dataset.py.orig'),
        'training/train_config.py': ('add', None),
        'training/networks.py': ('replace', 'training/networks.py.orig'),
    }
    after = _snapshot(fake_ada)
    for dest, (_action, backup) in actions.items():
        assert sources.is_dropin_text(after[dest].decode())
        if backup:
            assert after[backup] == before[dest]   # NVIDIA's file, byte for byte
    untouched = {name: data for name, data in before.items() if name not in actions}
    assert {name: after[name] for name in untouched} == untouched   # training_loop.py, loss.py, ...


def test_exporting_again_updates_only_drop_in_files(fake_sg3):
    export.export_dropin(fake_sg3)
    backups = {name: data for name, data in _snapshot(fake_sg3).items() if name.endswith('.orig')}
    assert len(backups) == 4

    _tree, steps = export.export_dropin(fake_sg3)
    assert {step.action for step in steps} == {'unchanged'}

    dataset = fake_sg3 / 'training' / 'dataset.py'
    dataset.write_text(dataset.read_text() + '# an edit\n')
    _tree, steps = export.export_dropin(fake_sg3)
    assert {step.dest: step.action for step in steps}['training/dataset.py'] == 'update'
    assert '# an edit' not in dataset.read_text()
    assert {name: data for name, data in _snapshot(fake_sg3).items() if name.endswith('.orig')} == backups


def test_an_existing_backup_of_a_foreign_file_stops_the_export(fake_sg3):
    (fake_sg3 / 'train.py.orig').write_text('# somebody\'s earlier backup\n')
    before = _snapshot(fake_sg3)
    with pytest.raises(DropinError, match='train.py.orig already exists and train.py there is not a drop-in file'):
        export.export_dropin(fake_sg3)
    assert _snapshot(fake_sg3) == before


def test_dry_run_writes_nothing(fake_sg3):
    before = _snapshot(fake_sg3)
    _tree, steps = export.export_dropin(fake_sg3, dry_run=True)
    assert [step.action for step in steps].count('replace') == 4
    assert _snapshot(fake_sg3) == before


def test_command_line(fake_ada, tmp_path):
    ok = subprocess.run([PYTHON, '-m', 'training.dropin', '--into', str(fake_ada)], cwd=ROOT,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert 'NVIDIA StyleGAN2-ADA' in ok.stdout
    assert "training/networks.py      replaced  (NVIDIA's file kept as training/networks.py.orig)" in ok.stdout
    assert 'training/train_config.py  added' in ok.stdout
    for args, message in (([str(tmp_path / 'nowhere')], 'Error: --into: '),
                          ([str(tmp_path)], 'Error: --into: '),
                          ([str(fake_ada), '--tree', 'stylegan3'], 'Error: --tree: ')):
        bad = subprocess.run([PYTHON, '-m', 'training.dropin', '--into'] + args, cwd=ROOT,
                             capture_output=True, text=True)
        assert bad.returncode == 1
        assert bad.stderr.startswith(message) and bad.stderr.count('\n') == 1, bad.stderr


# ----------------------------------------------------------------------------
# The generated files.


@pytest.mark.parametrize('tree_name', [STYLEGAN2_ADA, STYLEGAN3])
def test_drop_in_files_import_only_what_the_checkout_has(tree_name):
    tree = TREES[tree_name]
    texts = export.dropin_texts(tree)   # raises on any problem; checked here once more, file by file
    added = [dest[:-3].replace('/', '.') for dest, _source, _text in texts]
    for dest, source, text in texts:
        compile(text, dest, 'exec')
        assert sources.import_problems(text, tree, added, dest) == [], source
        assert sources.is_dropin_text(text)


@pytest.mark.parametrize('source', ['training/dataset.py', 'training/train_config.py'])
def test_the_toolkit_modules_need_their_edits(source):
    """Our own modules import what NVIDIA's checkouts lack: the check sees it, the edits remove it."""
    original = (ROOT / source).read_text()
    for tree in TREES.values():
        assert any('dnnlib.errors' in problem for problem in sources.import_problems(original, tree, where=source))


def test_import_check_catches_what_a_checkout_lacks():
    ada, sg3 = TREES[STYLEGAN2_ADA], TREES[STYLEGAN3]
    cases = {
        'from torch_utils.ops import ops_mode\n': 'torch_utils.ops.ops_mode',
        'from torch_utils import precision\n': 'torch_utils.precision',
        'import stylegan_human.zoo\n': 'stylegan_human.zoo',
        'from dnnlib.errors import InputError\n': 'dnnlib.errors',
        'import requests\n': 'neither standard library nor one of',
        'from torch_utils import misc\nmisc.no_such_helper(1)\n': 'torch_utils.misc.no_such_helper',
        'import dnnlib\ndnnlib.util.no_such_function()\n': 'dnnlib.util.no_such_function',
        'from training.training_loop import no_such_loop\n': 'training.training_loop.no_such_loop',
        'from .trees import Tree\n': 'relative import',
    }
    for text, expected in cases.items():
        problems = sources.import_problems(text, ada, where='x.py')
        assert len(problems) == 1 and expected in problems[0], (text, problems)
    fine = ('import json, os\nimport numpy as np\nimport PIL.Image\nimport scipy.signal\nimport torch\nimport click\n'
            'import dnnlib\nfrom torch_utils import misc, persistence\nfrom torch_utils.ops import upfirdn2d\n'
            'misc.assert_shape(x, [1])\nupfirdn2d.setup_filter([1, 3, 3, 1])\ndnnlib.util.open_url\n'
            'from training import training_loop\ntraining_loop.training_loop(rank=0)\n')
    assert sources.import_problems(fine, ada) == [] and sources.import_problems(fine, sg3) == []
    lrelu = 'from torch_utils.ops import filtered_lrelu\nfiltered_lrelu.filtered_lrelu(x)\n'
    assert sources.import_problems(lrelu, sg3) == []
    assert 'torch_utils.ops.filtered_lrelu' in sources.import_problems(lrelu, ada)[0]


def test_toolkit_optional_imports_become_their_fallback():
    text = ('import torch\n\ntry:  # fast paths\n    from torch_utils.ops import ops_mode\n'
            '    from torch_utils import precision\nexcept ImportError:\n    ops_mode = precision = None\n\n'
            'try:\n    import pyspng\nexcept ImportError:\n    pyspng = None\n')
    result = sources.use_fallbacks(text, TREES[STYLEGAN3])
    assert 'import ops_mode' not in result and '\nops_mode = precision = None\n' in result
    assert 'try:\n    import pyspng\n' in result   # a third-party optional import stays
    assert sources.import_problems(result, TREES[STYLEGAN3]) == []


def test_an_edit_that_no_longer_fits_its_module_is_an_error():
    with pytest.raises(DropinError, match='the import of InputError not found'):
        sources.replace_import('import os\n', 'InputError', 'x = 1\n', 'training/train_config.py')
    with pytest.raises(DropinError, match=r'function _zoo_entry\(\) not found'):
        sources.replace_function('import os\n', '_zoo_entry', 'x = 1\n', 'training/train_config.py')


def _import_generated(tmp_path, tree_name, dest):
    """A drop-in file, generated for ``tree_name``, imported under a fresh name (with the toolkit's
    torch_utils and dnnlib, which keep NVIDIA's API)."""
    text = {d: t for d, _s, t in export.dropin_texts(TREES[tree_name])}[dest]
    name = f'dropin_{uuid.uuid4().hex}'
    path = tmp_path / f'{name}.py'
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('tree_name, dest', [(STYLEGAN2_ADA, 'training/networks.py'),
                                             (STYLEGAN3, 'training/networks_stylegan2.py')])
def test_drop_in_stylegan2_networks_compute_what_ours_do(tmp_path, tree_name, dest):
    from training import networks_stylegan2 as ours
    theirs = _import_generated(tmp_path, tree_name, dest)
    kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3, square=False,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=256, channel_max=16))
    torch.manual_seed(0)
    G_ours = ours.Generator(**kwargs).eval()
    G_theirs = theirs.Generator(**kwargs).eval()
    G_theirs.load_state_dict(G_ours.state_dict())
    D_kwargs = dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=256, channel_max=16, square=False)
    D_ours = ours.Discriminator(**D_kwargs)
    D_theirs = theirs.Discriminator(**D_kwargs)
    D_theirs.load_state_dict(D_ours.state_dict())
    z = torch.randn(2, 8)
    with torch.no_grad():
        img = G_theirs(z, None, noise_mode='const')
        assert img.shape == (2, 3, 32, 16)
        assert torch.allclose(img, G_ours(z, None, noise_mode='const'), atol=1e-5)
        assert torch.allclose(D_theirs(img, None), D_ours(img, None), atol=1e-5)


def test_drop_in_stylegan3_network_computes_what_ours_does(tmp_path):
    from training import networks_stylegan3 as ours
    theirs = _import_generated(tmp_path, STYLEGAN3, 'training/networks_stylegan3.py')
    kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3, square=False,
                  channel_base=512, channel_max=16, mapping_kwargs=dict(num_layers=2))
    torch.manual_seed(0)
    G_ours = ours.Generator(**kwargs).eval()
    G_theirs = theirs.Generator(**kwargs).eval()
    G_theirs.load_state_dict(G_ours.state_dict())
    z = torch.randn(2, 8)
    with torch.no_grad():
        img = G_theirs(z, None)
        assert img.shape == (2, 3, 32, 16)
        assert torch.allclose(img, G_ours(z, None), atol=1e-5)


def _images(folder, count=16, size=(16, 32)):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(count):
        PIL.Image.fromarray(rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f'{i:02d}.png')
    return folder


def test_drop_in_dataset_reads_2to1_images(tmp_path):
    dataset = _import_generated(tmp_path, STYLEGAN3, 'training/dataset.py')
    data = dataset.ImageFolderDataset(path=str(_images(tmp_path / 'data')), square=False, xflip=True)
    assert (len(data), data.resolution, data.image_shape) == (32, 32, [3, 32, 16])
    image, label = data[17]
    assert image.shape == (3, 32, 16) and label.shape == (0,)
    square = _images(tmp_path / 'square', count=2, size=(32, 32))
    with pytest.raises(OSError, match='square=False needs height = 2 x width') as info:
        dataset.ImageFolderDataset(path=str(square))
    assert isinstance(info.value, ValueError)   # as the toolkit's FileFormatError


def test_drop_in_option_logic_matches_ours(tmp_path):
    from training import train_config as ours
    theirs = _import_generated(tmp_path, STYLEGAN2_ADA, 'training/train_config.py')
    info = ours.DatasetInfo(path='data', name='shhq', resolution=512, size=100, has_labels=False)
    for flags in (dict(cfg='shhq', gpus=8, aug='noaug', mirror=True, snap=250, square=False, flavour='stylegan2-ada'),
                  dict(cfg='stylegan3-r', gpus=8, batch=32, gamma=12.4, mirror=True, aug='noaug', snap=250,
                       flavour='stylegan3')):
        c_theirs, desc_theirs = theirs.build_training_options(flags, theirs.DatasetInfo(**vars(info)))
        assert (c_theirs, desc_theirs) == ours.build_training_options(flags, info)
    with pytest.raises(ValueError, match='--batch-gpu is a StyleGAN3 option'):
        theirs.build_training_options(dict(batch_gpu=4, flavour='stylegan2-ada'), info)
    assert theirs.resolve_resume('ffhq512')[1] == 'ffhq512'
    with pytest.raises(ValueError, match='no such file'):
        theirs.resolve_resume('stylegan_human_v2_1024')   # no model zoo in NVIDIA's checkout


# ----------------------------------------------------------------------------
# Training in real checkouts of NVIDIA's code.

CPU_RUNNER = '''\
"""Test only: run NVIDIA's train.py (in the current folder) on the CPU. See tests/test_nvidia_dropin.py."""
import os
import runpy
import sys
import time
import types

import torch


class _Event:  # torch.cuda.Event, timed by the wall clock
    def __init__(self, enable_timing=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return (end.time - self.time) * 1000


class _TorchOnCpu(types.ModuleType):
    """torch for NVIDIA's training_loop module: cuda devices are the CPU."""
    cuda = types.SimpleNamespace(Event=_Event, current_stream=lambda device=None: None,
                                 synchronize=lambda device=None: None,
                                 max_memory_allocated=lambda device=None: 0,
                                 max_memory_reserved=lambda device=None: 0,
                                 reset_peak_memory_stats=lambda device=None: None)

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def device(kind, index=None):
        return torch.device('cpu') if str(kind).startswith('cuda') else torch.device(kind, index)


def _small_grid(setup):
    """The preview grids at 4x4 images: upstream's up to 32x32 take minutes each on a CPU."""
    def setup_small_grid(*args, **kwargs):
        _size, images, labels = setup(*args, **kwargs)
        return (4, 4), images[:16], labels[:16]
    return setup_small_grid


if __name__ == '__main__':   # (spawned DataLoader workers import this file too)
    sys.path.insert(0, os.getcwd())
    import training.training_loop
    training.training_loop.torch = _TorchOnCpu('torch')
    training.training_loop.setup_snapshot_image_grid = _small_grid(training.training_loop.setup_snapshot_image_grid)
    torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
    _sampler_init = torch.utils.data.Sampler.__init__
    torch.utils.data.Sampler.__init__ = lambda self, *args, **kwargs: _sampler_init(self)
    script = os.path.abspath('train.py')
    sys.argv = [script] + sys.argv[1:]
    runpy.run_path(script, run_name='__main__')
'''

# Upstream StyleGAN-Human's command lines (README), then what makes the run small and short.
COMMAND_LINES = {
    STYLEGAN2_ADA: ['--outdir={out}', '--data={data}', '--gpus=1', '--aug=noaug', '--mirror=1', '--snap=250',
                    '--cfg=shhq', '--square=False',
                    '--kimg=0.004', '--batch=4', '--cbase=512', '--cmax=32', '--metrics=none', '--workers=1'],
    STYLEGAN3: ['--outdir={out}', '--cfg=stylegan3-r', '--gpus=1', '--batch=4', '--gamma=12.4', '--mirror=1',
                '--aug=noaug', '--data={data}', '--square=False', '--snap=250',
                '--kimg=0.004', '--cbase=1024', '--cmax=32', '--metrics=none', '--workers=1'],
}
CHECKOUT_VARIABLES = {STYLEGAN2_ADA: 'STYLEGAN2_ADA_DIR', STYLEGAN3: 'STYLEGAN3_DIR'}
NVIDIA_LOOP_FILES = ('training/training_loop.py', 'training/loss.py', 'training/augment.py')


def _checkout(tree_name):
    variable = CHECKOUT_VARIABLES[tree_name]
    folder = os.environ.get(variable)
    if not folder:
        pytest.skip(f'{variable} is not set: point it at a checkout of {TREES[tree_name].repository}')
    if not os.path.isdir(folder):
        pytest.fail(f'{variable}={folder}: no such folder')
    return pathlib.Path(folder)


def _run_environment(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    if importlib.util.find_spec('pkg_resources') is None:
        shim = tmp_path / 'shim'
        shim.mkdir()
        (shim / 'pkg_resources.py').write_text('from packaging.version import parse as parse_version  # noqa: F401\n')
        env['PYTHONPATH'] = os.pathsep.join([str(shim)] + [p for p in [env.get('PYTHONPATH')] if p])
    return env


@pytest.mark.parametrize('tree_name', [STYLEGAN2_ADA, STYLEGAN3])
def test_nvidia_checkout_trains_2to1_networks_that_load_here(tmp_path, tree_name):
    import legacy
    original = _checkout(tree_name)
    checkout = tmp_path / 'checkout'
    shutil.copytree(original, checkout, ignore=shutil.ignore_patterns('.git', '__pycache__'))

    exported = subprocess.run([PYTHON, '-m', 'training.dropin', '--into', str(checkout)], cwd=ROOT,
                              capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    assert (checkout / 'train.py.orig').read_bytes() == (original / 'train.py').read_bytes()
    for name in NVIDIA_LOOP_FILES:
        assert (checkout / name).read_bytes() == (original / name).read_bytes()

    data = _images(tmp_path / 'data')
    out = tmp_path / 'results'
    args = [arg.format(out=out, data=data) for arg in COMMAND_LINES[tree_name]]
    if torch.cuda.is_available():
        command = [PYTHON, 'train.py'] + args
    else:
        (tmp_path / 'cpu_runner.py').write_text(CPU_RUNNER)
        command = [PYTHON, str(tmp_path / 'cpu_runner.py')] + args
    run = subprocess.run(command, cwd=checkout, env=_run_environment(tmp_path), capture_output=True, text=True,
                         timeout=3600)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])

    [run_dir] = out.iterdir()
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['training_set_kwargs']['square'] is False
    assert options['G_kwargs']['square'] is False and options['D_kwargs']['square'] is False
    columns, rows = (32, 32) if torch.cuda.is_available() else (4, 4)   # upstream's grid, or the runner's
    for grid in ('reals.png', 'fakes_init.png', 'fakes000000.png'):
        assert PIL.Image.open(run_dir / grid).size == (columns * 16, rows * 32)   # of 16x32 images

    data = legacy.load_network(run_dir / 'network-snapshot-000000.pkl')
    assert data['training_set_kwargs']['square'] is False
    G, D = data['G_ema'], data['D']
    assert (G.img_resolution, G.synthesis.square, D.square) == (32, False, False)
    with torch.no_grad():
        images = G(torch.randn(2, G.z_dim), torch.zeros(2, G.c_dim))
        assert images.shape == (2, 3, 32, 16) and torch.isfinite(images).all()
        assert D(images, torch.zeros(2, D.c_dim)).shape == (2, 1)
