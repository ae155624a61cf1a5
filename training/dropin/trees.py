"""What NVIDIA's two checkouts are: how to recognise each, and which modules and names it has.

The drop-in may import only what a checkout of NVlabs/stylegan2-ada-pytorch or
NVlabs/stylegan3 already has, besides the standard library and a few third-party
packages. Those checkouts are not here, so this file records, for each, the names of
its Python modules and the public top-level names (functions, classes, variables) of the
modules the drop-in's files use. Names only: read from each repository's HEAD
(stylegan2-ada-pytorch 2021, stylegan3 2021; neither has changed since).
"""

import dataclasses
import pathlib
from typing import FrozenSet, Mapping, Optional, Tuple

from dnnlib.errors import InputError

STYLEGAN2_ADA = 'stylegan2-ada'
STYLEGAN3 = 'stylegan3'
TREE_NAMES = (STYLEGAN2_ADA, STYLEGAN3)

# Third-party packages the drop-in's files may import: what NVIDIA's own training code needs anyway.
THIRD_PARTY = frozenset(('torch', 'numpy', 'click', 'PIL', 'scipy', 'pyspng'))


class DropinError(InputError):
    """A folder or a state of files the exporter will not write into; one-line message."""


@dataclasses.dataclass(frozen=True)
class Tree:
    """One of NVIDIA's code bases."""
    name: str                          # STYLEGAN2_ADA or STYLEGAN3
    title: str                         # for messages
    repository: str
    markers: Tuple[str, ...]           # files only this code base has (beside the common ones)
    modules: FrozenSet[str]            # every Python module of a checkout, dotted
    names: Mapping[str, FrozenSet[str]]  # public top-level names of the modules the drop-in uses


# Files both code bases have: a folder without them is no NVIDIA checkout.
COMMON_FILES = ('train.py', 'dnnlib/util.py', 'torch_utils/persistence.py', 'torch_utils/ops/upfirdn2d.py',
                'training/training_loop.py', 'training/loss.py')


STYLEGAN2_ADA_MODULES = frozenset((
    'calc_metrics', 'dataset_tool', 'dnnlib', 'dnnlib.util', 'generate', 'legacy', 'metrics',
    'metrics.frechet_inception_distance', 'metrics.inception_score',
    'metrics.kernel_inception_distance', 'metrics.metric_main', 'metrics.metric_utils',
    'metrics.perceptual_path_length', 'metrics.precision_recall', 'projector', 'style_mixing',
    'torch_utils', 'torch_utils.custom_ops', 'torch_utils.misc', 'torch_utils.ops',
    'torch_utils.ops.bias_act', 'torch_utils.ops.conv2d_gradfix', 'torch_utils.ops.conv2d_resample',
    'torch_utils.ops.fma', 'torch_utils.ops.grid_sample_gradfix', 'torch_utils.ops.upfirdn2d',
    'torch_utils.persistence', 'torch_utils.training_stats', 'train', 'training', 'training.augment',
    'training.dataset', 'training.loss', 'training.networks', 'training.training_loop',
))

# Public top-level names of the modules the drop-in uses, where both code bases agree.
_SHARED_NAMES = {
    'dnnlib': frozenset((
        'EasyDict', 'make_cache_dir_path', 'util',
    )),
    'torch_utils.misc': frozenset((
        'InfiniteSampler', 'assert_shape', 'check_ddp_consistency', 'constant',
        'copy_params_and_buffers', 'ddp_sync', 'named_params_and_buffers', 'nan_to_num',
        'params_and_buffers', 'print_module_summary', 'profiled_function', 'suppress_tracer_warnings',
        'symbolic_assert',
    )),
    'torch_utils.persistence': frozenset((
        'import_hook', 'is_persistent', 'persistent_class',
    )),
    'torch_utils.training_stats': frozenset((
        'Collector', 'init_multiprocessing', 'report', 'report0',
    )),
    'torch_utils.custom_ops': frozenset((
        'get_plugin', 'verbosity',
    )),
    'torch_utils.ops.bias_act': frozenset((
        'activation_funcs', 'bias_act',
    )),
    'torch_utils.ops.conv2d_gradfix': frozenset((
        'conv2d', 'conv_transpose2d', 'enabled', 'no_weight_gradients', 'weight_gradients_disabled',
    )),
    'torch_utils.ops.conv2d_resample': frozenset((
        'conv2d_resample',
    )),
    'torch_utils.ops.fma': frozenset((
        'fma',
    )),
    'torch_utils.ops.upfirdn2d': frozenset((
        'downsample2d', 'filter2d', 'setup_filter', 'upfirdn2d', 'upsample2d',
    )),
    'torch_utils.ops.grid_sample_gradfix': frozenset((
        'enabled', 'grid_sample',
    )),
    'training.training_loop': frozenset((
        'save_image_grid', 'setup_snapshot_image_grid', 'training_loop',
    )),
    'training.loss': frozenset((
        'Loss', 'StyleGAN2Loss',
    )),
}

STYLEGAN2_ADA_NAMES = {**_SHARED_NAMES, **{
    'dnnlib.util': frozenset((
        'EasyDict', 'Logger', 'ask_yes_no', 'call_func_by_name', 'construct_class_by_name',
        'copy_files_and_create_dirs', 'format_time', 'get_dtype_and_ctype',
        'get_module_dir_by_obj_name', 'get_module_from_obj_name', 'get_obj_by_name',
        'get_obj_from_module', 'get_top_level_function_name', 'is_pickleable', 'is_top_level_function',
        'is_url', 'list_dir_recursively_with_ignore', 'make_cache_dir_path', 'open_url',
        'set_cache_dir', 'tuple_product',
    )),
    'metrics.metric_main': frozenset((
        'calc_metric', 'fid50k', 'fid50k_full', 'is50k', 'is_valid_metric', 'kid50k', 'kid50k_full',
        'list_valid_metrics', 'ppl2_wend', 'ppl_wend', 'ppl_wfull', 'ppl_zend', 'ppl_zfull', 'pr50k3',
        'pr50k3_full', 'register_metric', 'report_metric',
    )),
}}


STYLEGAN3_MODULES = frozenset((
    'avg_spectra', 'calc_metrics', 'dataset_tool', 'dnnlib', 'dnnlib.util', 'gen_images', 'gen_video',
    'gui_utils', 'gui_utils.gl_utils', 'gui_utils.glfw_window', 'gui_utils.imgui_utils',
    'gui_utils.imgui_window', 'gui_utils.text_utils', 'legacy', 'metrics', 'metrics.equivariance',
    'metrics.frechet_inception_distance', 'metrics.inception_score',
    'metrics.kernel_inception_distance', 'metrics.metric_main', 'metrics.metric_utils',
    'metrics.perceptual_path_length', 'metrics.precision_recall', 'torch_utils',
    'torch_utils.custom_ops', 'torch_utils.misc', 'torch_utils.ops', 'torch_utils.ops.bias_act',
    'torch_utils.ops.conv2d_gradfix', 'torch_utils.ops.conv2d_resample',
    'torch_utils.ops.filtered_lrelu', 'torch_utils.ops.fma', 'torch_utils.ops.grid_sample_gradfix',
    'torch_utils.ops.upfirdn2d', 'torch_utils.persistence', 'torch_utils.training_stats', 'train',
    'training', 'training.augment', 'training.dataset', 'training.loss', 'training.networks_stylegan2',
    'training.networks_stylegan3', 'training.training_loop', 'visualizer', 'viz', 'viz.capture_widget',
    'viz.equivariance_widget', 'viz.latent_widget', 'viz.layer_widget', 'viz.performance_widget',
    'viz.pickle_widget', 'viz.renderer', 'viz.stylemix_widget', 'viz.trunc_noise_widget',
))

STYLEGAN3_NAMES = {**_SHARED_NAMES, **{
    'dnnlib.util': STYLEGAN2_ADA_NAMES['dnnlib.util'] | {'format_time_brief'},
    'torch_utils.ops.filtered_lrelu': frozenset((
        'filtered_lrelu',
    )),
    'metrics.metric_main': frozenset((
        'calc_metric', 'eqr50k', 'eqt50k_frac', 'eqt50k_int', 'fid50k', 'fid50k_full', 'is50k',
        'is_valid_metric', 'kid50k', 'kid50k_full', 'list_valid_metrics', 'ppl2_wend', 'pr50k3',
        'pr50k3_full', 'register_metric', 'report_metric',
    )),
}}

# Package __init__ files that define nothing in either code base: only their submodules can be imported.
EMPTY_PACKAGES = {name: frozenset() for name in ('torch_utils', 'torch_utils.ops', 'training', 'metrics')}

TREES = {
    STYLEGAN2_ADA: Tree(STYLEGAN2_ADA, 'StyleGAN2-ADA', 'NVlabs/stylegan2-ada-pytorch',
                        markers=('training/networks.py',),
                        modules=STYLEGAN2_ADA_MODULES, names={**EMPTY_PACKAGES, **STYLEGAN2_ADA_NAMES}),
    STYLEGAN3: Tree(STYLEGAN3, 'StyleGAN3', 'NVlabs/stylegan3',
                    markers=('training/networks_stylegan2.py', 'training/networks_stylegan3.py',
                             'torch_utils/ops/filtered_lrelu.py'),
                    modules=STYLEGAN3_MODULES, names={**EMPTY_PACKAGES, **STYLEGAN3_NAMES}),
}


def detect_tree(folder, tree: Optional[str] = None) -> Tree:
    """The NVIDIA code base checked out at ``folder``, told by the files there.

    ``tree`` (a name in TREE_NAMES, or None / 'auto') must then agree with the files.
    DropinError (param 'into' or 'tree') for anything else, this toolkit's own checkout
    included (it has a training/networks_stylegan3.py too).
    """
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise DropinError(f'{folder}: no such folder', param='into')
    if (root / 'stylegan_human').is_dir():
        raise DropinError(f'{folder} is the StyleGAN-Human toolkit itself; give a checkout of '
                          f'{TREES[STYLEGAN2_ADA].repository} or {TREES[STYLEGAN3].repository}', param='into')
    missing = [name for name in COMMON_FILES if not (root / name).is_file()]
    found = [t for t in TREES.values() if all((root / marker).is_file() for marker in t.markers)]
    if STYLEGAN3 in [t.name for t in found]:
        found = [TREES[STYLEGAN3]]   # a leftover training/networks.py is no reason to refuse
    if missing or not found:
        why = f'no {missing[0]}' if missing else 'neither training/networks.py nor training/networks_stylegan3.py'
        raise DropinError(f'{folder} is neither a StyleGAN2-ADA nor a StyleGAN3 checkout ({why}); give a checkout '
                          f'of {TREES[STYLEGAN2_ADA].repository} or {TREES[STYLEGAN3].repository}', param='into')
    detected = found[0]
    if tree not in (None, 'auto'):
        if tree not in TREES:
            raise DropinError(f'{tree}: unknown; use auto, {" or ".join(TREE_NAMES)}', param='tree')
        if tree != detected.name:
            raise DropinError(f'{folder} is a {detected.title} checkout, not {TREES[tree].title}', param='tree')
    return detected
