"""StyleGAN1 TensorFlow pickles -> our PyTorch networks, without TensorFlow.

``safe_pickle.read_pickle_safely`` turns every ``dnnlib.tflib.network.Network`` into a
``safe_pickle.TFNetworkRecord`` whose ``state`` is the dict the original
``Network.__getstate__`` wrote: ``version``, ``name``, ``static_kwargs``,
``components`` (sub-networks, stored the same way), ``build_module_src``,
``build_func_name`` and ``variables`` as (local name, numpy array) pairs. The
embedded source is never run. :func:`convert_tf_networks` reads the sizes off the
variable shapes (resolution, width-to-height ratio, channels, latent sizes), the
remaining options off ``static_kwargs``, builds ``training.networks_stylegan1``
modules and copies every variable into them. A variable that is missing, left
over, or of the wrong shape is an error naming it.
"""

import re
from typing import Any, Dict, Sequence

import numpy as np
import torch

from .build import construct_for_loading, fill_from
from .safe_pickle import NetworkFileError

SUPPORTED_STATE_VERSIONS = (3, 4)

# Options of the original build functions that we implement only at one value.
_FIXED_OPTIONS = {
    'use_styles': True,
    'const_input_layer': True,
}


def _error(message):
    return NetworkFileError(message)


# ----------------------------------------------------------------------------
# Reading records


class _Net:
    """A TF network record checked and flattened: name, kwargs, variables, components."""

    def __init__(self, record, what):
        state = getattr(record, 'state', None)
        if not isinstance(state, dict):
            raise _error(f'{what}: not a TensorFlow network (no state)')
        version = state.get('version')
        if version not in SUPPORTED_STATE_VERSIONS:
            raise _error(f'{what}: TensorFlow network state version {version!r} is not supported '
                         f'(expected {" or ".join(str(v) for v in SUPPORTED_STATE_VERSIONS)})')
        for key in ('name', 'static_kwargs', 'build_func_name', 'variables'):
            if key not in state:
                raise _error(f'{what}: TensorFlow network state has no {key!r}')
        self.what = what
        self.name = state['name']
        self.build_func_name = state['build_func_name']
        self.static_kwargs = dict(state['static_kwargs'] or {})
        self.variables = {}
        try:
            pairs = list(state['variables'])
            for name, value in pairs:
                self.variables[str(name)] = value
        except (TypeError, ValueError):
            raise _error(f'{what}: malformed variable list') from None
        self.components = {}
        for key, component in dict(state.get('components') or {}).items():
            self.components[key] = _Net(component, f'{what}/{key}')
        self.used = set()

    def component(self, key):
        if key not in self.components:
            raise _error(f'{self.what}: sub-network {key!r} is missing')
        return self.components[key]

    def has(self, name):
        return name in self.variables

    def get(self, name, ndim=None):
        """The variable as a float32 array, marked as used; an error names it if missing."""
        if name not in self.variables:
            raise _error(f'{self.what}: variable {name!r} is missing')
        try:
            value = np.asarray(self.variables[name], dtype=np.float32)
        except (TypeError, ValueError):
            raise _error(f'{self.what}: variable {name!r} is not a numeric array') from None
        if ndim is not None and value.ndim != ndim:
            raise _error(f'{self.what}: variable {name!r} has shape {tuple(value.shape)}, expected {ndim} dimensions')
        self.used.add(name)
        return value

    def shape(self, name, ndim=None):
        if name not in self.variables:
            raise _error(f'{self.what}: variable {name!r} is missing')
        shape = tuple(np.shape(self.variables[name]))
        if ndim is not None and len(shape) != ndim:
            raise _error(f'{self.what}: variable {name!r} has shape {shape}, expected {ndim} dimensions')
        return shape

    def total_size(self):
        """Numbers held by this network and its sub-networks."""
        own = sum(int(np.prod(np.shape(value))) for value in self.variables.values())
        return own + sum(component.total_size() for component in self.components.values())

    def check_all_used(self):
        left = [name for name in self.variables if name not in self.used]
        if left:
            raise _error(f'{self.what}: unexpected variable {left[0]!r} (not a StyleGAN1 layout this version knows)')

    def option(self, key, default):
        value = self.static_kwargs.get(key, default)
        if isinstance(value, np.generic):
            value = value.item()
        return value


def _scopes_by_resolution(net):
    """{log2 of the larger side: scope name} for the 'HxW' variable scopes ('8x8', '1024x512', ...)."""
    scopes = {}
    for name in net.variables:
        match = re.match(r'^(\d+)x(\d+)/', name)
        if not match:
            continue
        a, b = int(match.group(1)), int(match.group(2))
        side = max(a, b)
        res = int(round(np.log2(side))) if side > 0 else -1
        if side <= 0 or 2 ** res != side:
            raise _error(f'{net.what}: variable scope {match.group(0)[:-1]!r} is not a power-of-two resolution')
        scope = f'{a}x{b}'
        if scopes.setdefault(res, scope) != scope:
            raise _error(f'{net.what}: two variable scopes for resolution {side}: {scopes[res]!r}, {scope!r}')
    if 2 not in scopes:
        raise _error(f'{net.what}: no 4x4 layers found')
    log2 = max(scopes)
    for res in range(2, log2 + 1):
        if res not in scopes:
            raise _error(f'{net.what}: layers for resolution {2 ** res} are missing')
    return scopes, log2


def _structure(net, progressive_layer):
    structure = net.option('structure', 'auto')
    if structure == 'auto':
        structure = 'recursive'
    if structure not in ('fixed', 'linear', 'recursive'):
        raise _error(f'{net.what}: unknown structure {structure!r}')
    if structure == 'fixed' and net.has(progressive_layer):
        structure = 'recursive'  # Progressive layers present: keep them (lod decides what is used).
    return structure


def _fused_scale(net):
    value = net.option('fused_scale', 'auto')
    if value not in (True, False, 'auto'):
        raise _error(f'{net.what}: unknown fused_scale {value!r}')
    return value


def _blur_filter(net):
    value = net.option('blur_filter', [1, 2, 1])
    if value is None:
        return None
    try:
        return [float(v) if not float(v).is_integer() else int(v) for v in np.asarray(value).ravel()]
    except (TypeError, ValueError):
        raise _error(f'{net.what}: unsupported blur_filter {value!r}') from None


def _activation(net, key):
    value = net.option(key, 'lrelu')
    if value not in ('lrelu', 'relu'):
        raise _error(f'{net.what}: unknown {key} {value!r}')
    return value


def _check_fixed_options(net):
    for key, expected in _FIXED_OPTIONS.items():
        if net.option(key, expected) != expected:
            raise _error(f'{net.what}: {key}={net.option(key, expected)!r} is not supported')


def _square_from(net, shape_hw, name):
    h, w = shape_hw
    if h == w:
        return True
    if h == 2 * w:
        return False
    raise _error(f'{net.what}: {name} is {h}x{w}; only square and 2:1 (height = 2 x width) networks are supported')


# ----------------------------------------------------------------------------
# Copying


def _dense(array):          # [in, out] -> [out, in]
    return array.T


def _conv(array):           # [kh, kw, in, out] -> [out, in, kh, kw]
    return array.transpose(3, 2, 0, 1)


def _copy(module, assignments, what):
    """Give ``module`` storage and set every parameter and buffer from ``assignments`` {our name: array}."""
    fill_from(module, assignments, what, convert=lambda value: torch.tensor(np.asarray(value, dtype=np.float32)))
    return module.eval().requires_grad_(False)


def _take(net, name, transform, our_name, out, expect=None):
    value = net.get(name)
    value = transform(value) if transform is not None else value
    if expect is not None and tuple(value.shape) != tuple(expect):
        raise _error(f'{net.what}: variable {name!r} has shape {tuple(net.shape(name))}, '
                     f'which does not fit the network read from the other variables')
    out[our_name] = value


# ----------------------------------------------------------------------------
# Generator


def _convert_generator(net):
    from training import networks_stylegan1

    if net.build_func_name != 'G_style':
        raise _error(f'{net.what}: build function {net.build_func_name!r} is not StyleGAN1\'s G_style; '
                     'only StyleGAN1 TensorFlow networks can be converted')
    mapping = net.component('mapping')
    synthesis = net.component('synthesis')
    _check_fixed_options(synthesis)

    # Mapping sizes.
    num_mapping = 0
    while mapping.has(f'Dense{num_mapping}/weight'):
        num_mapping += 1
    if num_mapping == 0:
        raise _error(f'{mapping.what}: variable \'Dense0/weight\' is missing')
    dense0 = mapping.shape('Dense0/weight', 2)
    w_dim = mapping.shape(f'Dense{num_mapping - 1}/weight', 2)[1]
    c_dim = 0
    z_dim = dense0[0]
    if mapping.has('LabelConcat/weight'):
        c_dim, z_dim = mapping.shape('LabelConcat/weight', 2)
        if dense0[0] != 2 * z_dim:
            raise _error(f'{mapping.what}: variable \'Dense0/weight\' has shape {dense0}, '
                         f'expected {2 * z_dim} inputs')
    layer_features = dense0[1] if num_mapping > 1 else w_dim

    # Synthesis sizes.
    scopes, log2 = _scopes_by_resolution(synthesis)
    const_name = f'{scopes[2]}/Const/const'
    const_shape = synthesis.shape(const_name, 4)
    if const_shape[0] != 1 or const_shape[2] != 4:
        raise _error(f'{synthesis.what}: variable {const_name!r} has shape {const_shape}, expected [1, C, 4, 4|2]')
    square = _square_from(synthesis, const_shape[2:], const_name)
    channels = [const_shape[1]]
    for res in range(3, log2 + 1):
        channels.append(synthesis.shape(f'{scopes[res]}/Conv1/weight', 4)[3])
    use_noise = bool(synthesis.option('use_noise', True))
    structure = _structure(synthesis, f'ToRGB_lod{log2 - 2}/weight')

    kwargs = dict(
        z_dim=int(z_dim), c_dim=int(c_dim), w_dim=int(w_dim), img_resolution=2 ** log2,
        img_channels=int(synthesis.shape('ToRGB_lod0/weight', 4)[3]), square=square,
        mapping_kwargs=dict(
            num_layers=num_mapping, layer_features=int(layer_features),
            lr_multiplier=float(mapping.option('mapping_lrmul', 0.01)),
            activation=_activation(mapping, 'mapping_nonlinearity'),
            use_wscale=bool(mapping.option('use_wscale', True)),
            normalize_latents=bool(mapping.option('normalize_latents', True)),
            w_avg_beta=float(net.option('dlatent_avg_beta', 0.995) or 0.995),
        ),
        synthesis_kwargs=dict(
            channels=[int(c) for c in channels], structure=structure, fused_scale=_fused_scale(synthesis),
            blur_filter=_blur_filter(synthesis), use_noise=use_noise,
            use_pixel_norm=bool(synthesis.option('use_pixel_norm', False)),
            use_instance_norm=bool(synthesis.option('use_instance_norm', True)),
            activation=_activation(synthesis, 'nonlinearity'),
            use_wscale=bool(synthesis.option('use_wscale', True)),
        ),
    )
    G = construct_for_loading(networks_stylegan1.Generator, (), kwargs, net.what, file_numbers=net.total_size(),
                              file_bytes=4 * net.total_size())
    broadcast = mapping.option('dlatent_broadcast', G.num_ws)
    if broadcast != G.num_ws:
        raise _error(f'{mapping.what}: dlatent_broadcast is {broadcast}, but the synthesis network has '
                     f'{G.num_ws} layers')

    out = {}
    expected = dict(G.named_parameters())
    expected.update(G.named_buffers())

    def take(source, name, transform, our_name):
        _take(source, name, transform, our_name, out, expected[our_name].shape)

    # Mapping.
    for idx in range(num_mapping):
        take(mapping, f'Dense{idx}/weight', _dense, f'mapping.fc{idx}.weight')
        take(mapping, f'Dense{idx}/bias', None, f'mapping.fc{idx}.bias')
    if c_dim:
        take(mapping, 'LabelConcat/weight', _dense, 'mapping.embed.weight')
    take(net, 'dlatent_avg', None, 'mapping.w_avg')

    # Level of detail: the top-level variable is the one training sets; G_style copies it down.
    take(net, 'lod', None, 'synthesis.lod')
    if synthesis.has('lod'):
        synthesis.get('lod')

    # Synthesis layers.
    def layer(prefix, idx, conv):
        our = f'synthesis.layer{idx}'
        if conv:
            take(synthesis, f'{prefix}/weight', _conv, f'{our}.weight')
        if use_noise:
            take(synthesis, f'{prefix}/Noise/weight', None, f'{our}.noise_strength')
            take(synthesis, f'noise{idx}', lambda a: a[0, 0] if a.ndim == 4 and a.shape[:2] == (1, 1) else a,
                 f'{our}.noise_const')
        take(synthesis, f'{prefix}/bias', None, f'{our}.bias')
        take(synthesis, f'{prefix}/StyleMod/weight', _dense, f'{our}.affine.weight')
        take(synthesis, f'{prefix}/StyleMod/bias', None, f'{our}.affine.bias')

    take(synthesis, const_name, lambda a: a[0], 'synthesis.layer0.const')
    layer(f'{scopes[2]}/Const', 0, conv=False)
    layer(f'{scopes[2]}/Conv', 1, conv=True)
    for res in range(3, log2 + 1):
        layer(f'{scopes[res]}/Conv0_up', res * 2 - 4, conv=True)
        layer(f'{scopes[res]}/Conv1', res * 2 - 3, conv=True)
    rgb = [log2] if structure == 'fixed' else range(2, log2 + 1)
    for res in rgb:
        take(synthesis, f'ToRGB_lod{log2 - res}/weight', _conv, f'synthesis.torgb{2 ** res}.weight')
        take(synthesis, f'ToRGB_lod{log2 - res}/bias', None, f'synthesis.torgb{2 ** res}.bias')

    for source in (net, mapping, synthesis):
        source.check_all_used()
    return _copy(G, out, net.what)


# ----------------------------------------------------------------------------
# Discriminator


def _convert_discriminator(net):
    from training import networks_stylegan1

    if net.build_func_name != 'D_basic':
        raise _error(f'{net.what}: build function {net.build_func_name!r} is not StyleGAN1\'s D_basic; '
                     'only StyleGAN1 TensorFlow networks can be converted')
    scopes, log2 = _scopes_by_resolution(net)
    conv4 = net.shape(f'{scopes[2]}/Conv/weight', 4)
    dense0 = net.shape(f'{scopes[2]}/Dense0/weight', 2)
    dense1 = net.shape(f'{scopes[2]}/Dense1/weight', 2)
    c4 = conv4[3]
    if dense0[0] == c4 * 16:
        square = True
    elif dense0[0] == c4 * 8:
        square = False
    else:
        raise _error(f'{net.what}: variable \'{scopes[2]}/Dense0/weight\' has shape {dense0}, expected '
                     f'{c4 * 16} (square) or {c4 * 8} (2:1) inputs')
    channels = [c4]
    for res in range(3, log2 + 1):
        channels.append(net.shape(f'{scopes[res]}/Conv0/weight', 4)[3])
    mbstd_channels = conv4[2] - c4
    mbstd_group_size = int(net.option('mbstd_group_size', 4)) if mbstd_channels > 0 else 0
    if mbstd_channels > 0 and mbstd_group_size <= 1:
        raise _error(f'{net.what}: minibatch stddev channels found but mbstd_group_size is {mbstd_group_size}')
    label_size = int(net.option('label_size', 0))
    c_dim = label_size if label_size else (dense1[1] if dense1[1] > 1 else 0)
    structure = _structure(net, 'FromRGB_lod1/weight')

    D = construct_for_loading(networks_stylegan1.Discriminator, (), dict(
        c_dim=int(c_dim), img_resolution=2 ** log2, img_channels=int(net.shape('FromRGB_lod0/weight', 4)[2]),
        square=square, channels=[int(c) for c in channels], dense_features=int(dense0[1]), structure=structure,
        fused_scale=_fused_scale(net), blur_filter=_blur_filter(net),
        mbstd_group_size=mbstd_group_size, mbstd_num_channels=int(max(mbstd_channels, 1)),
        activation=_activation(net, 'nonlinearity'), use_wscale=bool(net.option('use_wscale', True))),
        net.what, file_numbers=net.total_size(), file_bytes=4 * net.total_size())

    out = {}
    expected = dict(D.named_parameters())
    expected.update(D.named_buffers())

    def take(name, transform, our_name):
        _take(net, name, transform, our_name, out, expected[our_name].shape)

    take('lod', None, 'lod')
    rgb = [log2] if structure == 'fixed' else range(2, log2 + 1)
    for res in rgb:
        take(f'FromRGB_lod{log2 - res}/weight', _conv, f'fromrgb{2 ** res}.weight')
        take(f'FromRGB_lod{log2 - res}/bias', None, f'fromrgb{2 ** res}.bias')
    for res in range(3, log2 + 1):
        for tf_name, our_name in (('Conv0', 'conv0'), ('Conv1_down', 'conv1_down')):
            take(f'{scopes[res]}/{tf_name}/weight', _conv, f'block{2 ** res}.{our_name}.weight')
            take(f'{scopes[res]}/{tf_name}/bias', None, f'block{2 ** res}.{our_name}.bias')
    take(f'{scopes[2]}/Conv/weight', _conv, 'epilogue.conv.weight')
    take(f'{scopes[2]}/Conv/bias', None, 'epilogue.conv.bias')
    for idx in (0, 1):
        take(f'{scopes[2]}/Dense{idx}/weight', _dense, f'epilogue.dense{idx}.weight')
        take(f'{scopes[2]}/Dense{idx}/bias', None, f'epilogue.dense{idx}.bias')
    net.check_all_used()
    return _copy(D, out, net.what)


# ----------------------------------------------------------------------------
# Entry point


def convert_tf_networks(networks: Sequence[Any]) -> Dict[str, torch.nn.Module]:
    """``(G, D, Gs)`` TF network records -> ``{'G': ..., 'D': ..., 'G_ema': ...}`` of our modules.

    A single record (a bare ``Gs``) gives ``{'G_ema': ...}``. Raises
    ``NetworkFileError`` with a one-line message for anything unusable.
    """
    networks = tuple(networks)
    if len(networks) == 3:
        names = ('G', 'D', 'Gs')
    elif len(networks) == 1:
        names = ('Gs',)
    else:
        raise _error(f'expected the tuple (G, D, Gs) of TensorFlow networks, got {len(networks)} networks')
    nets = {name: _Net(record, name) for name, record in zip(names, networks)}
    out = {}
    if 'G' in nets:
        out['G'] = _convert_generator(nets['G'])
        out['D'] = _convert_discriminator(nets['D'])
    out['G_ema'] = _convert_generator(nets['Gs'])
    return out
