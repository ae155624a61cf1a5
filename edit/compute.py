"""Compute new editing directions and write them in upstream's ``latent_direction/`` layout.

\b
python -m edit.compute sefa --network NET --name my_attr --layers 4-7 [--index 0]
python -m edit.compute interfacegan --network NET --name my_attr --labels labels.csv     # seed,label rows
python -m edit.compute interfacegan --network NET --name my_attr --scorer mypkg.scores:score --seeds 0-9999
python -m edit.compute interfacegan --network NET --name arm_raise --scorer arm_raise --seeds 0-1999
python -m edit.compute stylespace --network NET --name my_attr --labels labels.csv

Each writes its files under --outdir (default latent_direction/) and records the
attribute's defaults in OUTDIR/edit_config.json, so that
``python edit.py --attr_name my_attr --directions OUTDIR`` uses them.

- sefa: the top eigenvectors of the chosen layers' affine weights (no samples needed); the
  convolution layers' only, as in the SeFa paper (``--sefa-layers all`` adds the toRGB layers');
- interfacegan: a linear boundary in W from labelled samples, moved into S space
  (one vector per S layer, as upstream's files are); --scorer NAME measures the body on
  each sample with the alignment backends (edit/scorers.py: arm_raise, leg_spread,
  stance_width, frame_fill, arm_skin, leg_skin, ...), so no labels are needed;
- stylespace: per-channel statistics of positive vs negative samples; the best S
  layer's channels go to statis.csv.
"""

import csv
import importlib
import json
import os
import pickle
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import click
import numpy as np
import torch

from dnnlib.atomic import atomic_write
from stylegan_human import commands, runtime
from stylegan_human.network_files import load_network
from stylegan_human.sampling import seed_to_z, synthesize, to_uint8

from .directions import conv_style_layers
from .interfacegan import train_boundary
from .scorers import SCORERS, describe as describe_scorers, make_scorer
from .sefa import LAYER_CHOICES, sefa_directions, sefa_layers
from .stylespace import capture_styles, channel_statistics

CONFIG_FILE = 'edit_config.json'


def record_defaults(outdir: Union[str, os.PathLike], method: str, name: str, value: list) -> None:
    """Add ``name``'s defaults for ``method`` to OUTDIR/edit_config.json (same shape as edit_config.attr_dict)."""
    path = os.path.join(outdir, CONFIG_FILE)
    config = {}
    if os.path.isfile(path):
        with open(path) as f:
            config = json.load(f)
    config.setdefault(method, {})[name] = value
    text = json.dumps(config, indent=1)
    atomic_write(path, lambda f: f.write(text), mode='w')


def read_labels(path: Union[str, os.PathLike]) -> Dict[int, float]:
    """{seed: label} from a CSV of ``seed,label`` rows (a header row is allowed)."""
    labels = {}
    with open(path, newline='') as f:
        for row in csv.reader(f):
            if not row or not row[0].strip().lstrip('-').isdigit():
                continue
            labels[int(row[0])] = float(row[1])
    if not labels:
        raise commands.UserError(f'--labels {path}: no "seed,label" rows')
    return labels


def load_scorer(spec: str) -> Callable[[np.ndarray], Any]:
    """A body scorer's name (edit.scorers.SCORERS) or 'package.module:function' -> the callable
    (images uint8 [N, H, W, 3] -> scores [N]; NaN where nothing could be measured)."""
    if spec in SCORERS:
        return make_scorer(spec)
    if ':' not in spec:
        raise commands.UserError(f'--scorer {spec}: unknown scorer; body scorers: {", ".join(SCORERS)}; '
                                 'or give MODULE:FUNCTION')
    module_name, _, attr = spec.partition(':')
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise commands.UserError(f'--scorer {spec}: cannot import it ({err})') from None


def sample(G: torch.nn.Module, seeds: Sequence[int],
           batch: int = 16) -> Tuple[torch.Tensor, Callable[[], Iterator[np.ndarray]]]:
    """(w [N, w_dim] of each seed, a function giving the seeds' images batch by batch)."""
    z = torch.from_numpy(np.concatenate([seed_to_z(s, G.z_dim) for s in seeds])).float()
    with torch.no_grad():
        ws = torch.cat([G.mapping(z[i:i + batch], None) for i in range(0, len(z), batch)])

    def images():
        for i in range(0, len(ws), batch):
            with torch.no_grad():
                yield to_uint8(synthesize(G, ws[i:i + batch], noise_mode='const', force_fp32=True)).numpy()
    return ws, images


def labelled_samples(G: torch.nn.Module, labels_path: Optional[Union[str, os.PathLike]], scorer_spec: Optional[str],
                     seeds: Sequence[int]) -> Tuple[torch.Tensor, np.ndarray]:
    if (labels_path is None) == (scorer_spec is None):
        raise commands.UserError('give either --labels CSV or --scorer module:function')
    if labels_path:
        labels = read_labels(labels_path)
        seeds = sorted(labels)
        ws, _ = sample(G, seeds)
        return ws, np.array([labels[s] for s in seeds])
    scorer = load_scorer(scorer_spec)   # a wrong name stops here, before any sample is made
    ws, images = sample(G, seeds)
    scores = np.concatenate([np.asarray(scorer(batch), dtype=np.float64).reshape(-1) for batch in images()])
    measured = np.isfinite(scores)
    if measured.sum() < 2:
        raise commands.UserError(f'--scorer {scorer_spec}: measured {int(measured.sum())} of {len(scores)} samples '
                                 '(no person found on the others); need at least 2')
    if not measured.all():   # a body scorer that found no person (or not the joints it needs)
        click.echo(f'--scorer {scorer_spec}: {int((~measured).sum())} of {len(scores)} samples not measured; '
                   'left out', err=True)
    return ws[torch.from_numpy(measured)], scores[measured]


def _save_pickle(value, path):
    atomic_write(path, lambda f: pickle.dump(value, f, protocol=4))


@click.group(help=__doc__)
def cli():
    pass


def _common(fn):
    fn = click.option('--network', 'network_pkl', required=True, help='Network pickle path, URL or zoo name')(fn)
    fn = click.option('--name', required=True, help='Attribute name for the files')(fn)
    fn = click.option('--outdir', default='latent_direction', show_default=True, metavar='DIR')(fn)
    return fn


@cli.command(cls=commands.Command)
@_common
@click.option('--layers', type=commands.SEEDS, default='4-7', show_default=True, help='w+ layers to edit')
@click.option('--sefa-layers', 'which', type=click.Choice(LAYER_CHOICES), default='convs', show_default=True,
              help="Whose style weights are factorised: convs = the convolution layers' only, toRGB left out (the "
                   "SeFa paper's definition, as its authors' code does); all = the toRGB layers' too")
@click.option('--top-k', type=click.IntRange(min=1), default=5, show_default=True)
@click.option('--index', type=click.IntRange(min=0), default=0, show_default=True, help='Which direction to save')
@click.option('--strength', type=float, default=5.0, show_default=True)
@commands.user_errors
def sefa(network_pkl, name, outdir, layers, which, top_k, index, strength):
    """SeFa: directions from the style weights of the layers that read the chosen w+ layers.

    By default the convolution layers' weights only (toRGB left out), as in the SeFa paper."""
    G = load_network(network_pkl)['G_ema'].eval()
    indices = sefa_layers(G, layers, which)
    if not indices:
        why = ('only toRGB layers read them: add --sefa-layers all' if sefa_layers(G, layers, 'all') else
               f'this network has w+ layers 0-{G.num_ws - 1}')
        raise commands.UserError(f'--layers {",".join(map(str, layers))}: no style layer to factorise ({why})')
    try:
        vectors, values = sefa_directions(G, indices, top_k=max(top_k, index + 1))
    except ValueError as err:
        raise commands.UserError(f'--layers: {err}') from None
    os.makedirs(os.path.join(outdir, 'sefa'), exist_ok=True)
    atomic_write(os.path.join(outdir, 'sefa', f'{name}.pt'), lambda f: torch.save(torch.from_numpy(vectors[index]), f))
    record_defaults(outdir, 'sefa', name, [list(layers), strength])
    print(f'eigenvalues ({which}): {", ".join(f"{v:.3f}" for v in values[:top_k])}; saved direction {index} to '
          f'{os.path.join(outdir, "sefa", name + ".pt")}')


@cli.command(cls=commands.Command)
@_common
@click.option('--labels', 'labels_path', default=None, metavar='CSV', help='seed,label rows (0/1 labels or scores)')
@click.option('--scorer', 'scorer_spec', default=None, metavar='NAME|MODULE:FUNCTION',
              help=f'Scores images of --seeds: a body scorer by name ({describe_scorers()}), or your function')
@click.option('--seeds', type=commands.SEEDS, default='0-1999', show_default=True)
@click.option('--chosen-ratio', type=float, default=0.02, show_default=True, help='Extremes kept from scores')
@click.option('--strength', type=float, default=1.0, show_default=True)
@commands.user_errors
def interfacegan(network_pkl, name, outdir, labels_path, scorer_spec, seeds, chosen_ratio, strength):
    """InterfaceGAN: a linear boundary in W, written as S-space vectors like upstream's."""
    G = load_network(network_pkl)['G_ema'].eval()
    ws, labels = labelled_samples(G, labels_path, scorer_spec, seeds)
    try:
        normal = train_boundary(ws[:, 0].numpy(), labels, chosen_ratio=chosen_ratio)
    except ValueError as err:
        raise commands.UserError(str(err)) from None
    folder = os.path.join(outdir, 'ss', name)
    os.makedirs(folder, exist_ok=True)
    for i, (_, affine) in enumerate(conv_style_layers(G)):   # s = A w + b, so w + n moves s by A n
        shift = (affine.weight.detach().double() * affine.weight_gain) @ torch.from_numpy(normal).double()
        _save_pickle(shift.float().numpy(), os.path.join(folder, f'style_vect_mean_{i}.pkl'))
    np.save(os.path.join(folder, 'boundary_w.npy'), normal)
    record_defaults(outdir, 'interface_gan', name, [strength])
    print(f'boundary trained on {len(labels)} samples; wrote {folder}')


@cli.command(cls=commands.Command)
@_common
@click.option('--labels', 'labels_path', default=None, metavar='CSV', help='seed,label rows (label > 0.5 = positive)')
@click.option('--scorer', 'scorer_spec', default=None, metavar='NAME|MODULE:FUNCTION',
              help=f'Scores images of --seeds: a body scorer ({", ".join(SCORERS)}) or your function')
@click.option('--seeds', type=commands.SEEDS, default='0-999', show_default=True)
@click.option('--channels', type=click.IntRange(min=1), default=10, show_default=True, help='Channels to keep')
@click.option('--strength', type=float, default=5.0, show_default=True)
@commands.user_errors
def stylespace(network_pkl, name, outdir, labels_path, scorer_spec, seeds, channels, strength):
    """StyleSpace: the channels that differ most between positive and negative samples."""
    G = load_network(network_pkl)['G_ema'].eval()
    ws, labels = labelled_samples(G, labels_path, scorer_spec, seeds)
    positive = labels > (0.5 if np.isin(labels, (0, 1)).all() else np.median(labels))
    if positive.all() or not positive.any():
        raise commands.UserError('the labels have only one class')
    with torch.no_grad():
        styles, _ = capture_styles(G, ws, noise_mode='const', force_fp32=True)
    conv_names = [n for n, _ in conv_style_layers(G)]
    scores = channel_statistics({n: styles[n][positive] for n in conv_names},
                                {n: styles[n][~positive] for n in conv_names})
    best_layer = max(range(len(conv_names)), key=lambda i: float(scores[conv_names[i]].max()))
    layer_scores = scores[conv_names[best_layer]].numpy()
    threshold = float(np.sort(layer_scores)[-channels]) * 0.999
    difference = (styles[conv_names[best_layer]][positive].mean(0) - styles[conv_names[best_layer]][~positive].mean(0))
    statis = os.path.join(outdir, 'ss_statics', f'{name}_statis', str(best_layer))
    os.makedirs(statis, exist_ok=True)
    rows = ''.join(f'{c},{c},{v}\n' for c, v in enumerate(layer_scores))
    atomic_write(os.path.join(statis, 'statis.csv'), lambda f: f.write(',channel,strength\n' + rows), mode='w')
    os.makedirs(os.path.join(outdir, 'ss', name), exist_ok=True)
    vector = (difference / (difference.norm() + 1e-8)).float().numpy()
    _save_pickle(vector, os.path.join(outdir, 'ss', name, f'style_vect_mean_{best_layer}.pkl'))
    record_defaults(outdir, 'stylespace', name, [best_layer, strength, threshold])
    print(f'S layer {best_layer} ({conv_names[best_layer]}): top channels '
          f'{", ".join(str(int(c)) for c in np.argsort(layer_scores)[::-1][:channels])}')


if __name__ == '__main__':
    runtime.start_script()
    cli()  # pylint: disable=no-value-for-parameter
