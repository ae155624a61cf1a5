"""Read a PaddleSeg export folder: ``deploy.yaml`` plus the Paddle Inference model files.

PaddleSeg's ``export.py`` writes, beside ``model.pdmodel`` (or ``model.json`` from
Paddle 3's new IR) and ``model.pdiparams``, a ``deploy.yaml`` such as::

    Deploy:
      model: model.pdmodel
      params: model.pdiparams
      transforms:
      - target_size:
        - 512
        - 512
        type: Resize
      - type: Normalize

The transforms are PaddleSeg's inference preprocessing, applied in order to the RGB
image. Only the ones that make sense at inference are accepted (resizes, padding,
normalisation); anything else is reported, since silently skipping it would feed
the network the wrong input.

The file is read with PyYAML (``yaml.safe_load``), as PaddleSeg itself reads it.
"""

import dataclasses
import os
from typing import Optional, Tuple

import yaml

from dnnlib.errors import FileFormatError, UnavailableError

MODEL_NAME = 'deeplabv3p_resnet50_os8_humanseg_512x512_100k_with_softmax'
MODEL_URL = f'https://paddleseg.bj.bcebos.com/dygraph/humanseg/export/{MODEL_NAME}.zip'
EXPORT_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'export_model')
DEFAULT_MODEL_DIR = os.path.join(EXPORT_ROOT, MODEL_NAME)
DEPLOY_FILE = 'deploy.yaml'

# cv2 interpolation names PaddleSeg accepts for Resize ('RANDOM' is training-only).
INTERP_NAMES = ('NEAREST', 'LINEAR', 'CUBIC', 'AREA', 'LANCZOS4')


class PaddleSegError(UnavailableError):
    """The PaddleSeg backend cannot run; the message is one line saying what to do."""


class DeployFileError(PaddleSegError, FileFormatError):
    """deploy.yaml exists but is not valid YAML or not a usable PaddleSeg export description."""


# ---------------------------------------------------------------------------- transforms

@dataclasses.dataclass(frozen=True)
class Resize:
    """Resize to a fixed size; ``target_size`` is (width, height) as in PaddleSeg."""
    target_size: Tuple[int, int] = (512, 512)
    interp: str = 'LINEAR'


@dataclasses.dataclass(frozen=True)
class ResizeByLong:
    """Scale so the long side is ``long_size``."""
    long_size: int


@dataclasses.dataclass(frozen=True)
class ResizeByShort:
    """Scale so the short side is ``short_size``."""
    short_size: int


@dataclasses.dataclass(frozen=True)
class LimitLong:
    """Scale only when the long side is outside [min_long, max_long]."""
    max_long: Optional[int] = None
    min_long: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Padding:
    """Pad bottom and right to ``target_size`` (width, height) with ``im_padding_value``."""
    target_size: Tuple[int, int]
    im_padding_value: Tuple[float, float, float] = (127.5, 127.5, 127.5)


@dataclasses.dataclass(frozen=True)
class Normalize:
    """``(pixel / 255 - mean) / std`` per channel."""
    mean: Tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: Tuple[float, float, float] = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class DeployConfig:
    """What ``deploy.yaml`` says, with file paths resolved against its folder."""
    path: str                   # the deploy.yaml itself
    model_file: str
    params_file: str
    transforms: tuple           # of the transform dataclasses above, in order

    @property
    def input_size(self):
        """(width, height) the network sees when a fixed Resize sets it, else None."""
        sizes = [t.target_size for t in self.transforms if isinstance(t, (Resize, Padding))]
        return sizes[-1] if sizes else None

    @property
    def mean(self):
        norm = [t for t in self.transforms if isinstance(t, Normalize)]
        return norm[-1].mean if norm else None

    @property
    def std(self):
        norm = [t for t in self.transforms if isinstance(t, Normalize)]
        return norm[-1].std if norm else None


def _pair(value, what):
    """A (width, height) pair from a list, tuple or single int."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_int(v) and v > 0 for v in value):
        raise ValueError(f'{what} must be two positive integers [width, height], got {value!r}')
    return (int(value[0]), int(value[1]))


def _triple(value, what):
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_number(v) for v in value):
        raise ValueError(f'{what} must be three numbers, got {value!r}')
    return tuple(float(v) for v in value)


def _positive_int(value, what, optional=False):
    if value is None and optional:
        return None
    if not _is_int(value) or value <= 0:
        raise ValueError(f'{what} must be a positive integer, got {value!r}')
    return int(value)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _make_resize(target_size=(512, 512), interp='LINEAR', keep_ratio=False, size_divisor=None):
    # keep_ratio / size_divisor are newer PaddleSeg options that change the output
    # size; the human-seg exports never set them, so refuse rather than guess.
    if keep_ratio or size_divisor:
        raise ValueError('Resize with keep_ratio or size_divisor is not supported')
    if interp not in INTERP_NAMES:
        raise ValueError(f'Resize interp must be one of {", ".join(INTERP_NAMES)}, got {interp!r}')
    return Resize(_pair(target_size, 'Resize target_size'), interp)


def _make_padding(target_size, im_padding_value=(127.5, 127.5, 127.5), label_padding_value=255):
    del label_padding_value  # labels only
    return Padding(_pair(target_size, 'Padding target_size'), _triple(im_padding_value, 'Padding im_padding_value'))


def _make_normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    std = _triple(std, 'Normalize std')
    if 0 in std:
        raise ValueError(f'Normalize std must not contain 0, got {list(std)}')
    return Normalize(_triple(mean, 'Normalize mean'), std)


def _make_limit_long(max_long=None, min_long=None):
    max_long = _positive_int(max_long, 'LimitLong max_long', optional=True)
    min_long = _positive_int(min_long, 'LimitLong min_long', optional=True)
    if max_long is not None and min_long is not None and min_long > max_long:
        raise ValueError(f'LimitLong min_long {min_long} is larger than max_long {max_long}')
    return LimitLong(max_long, min_long)


TRANSFORM_BUILDERS = {
    'Resize': _make_resize,
    'ResizeByLong': lambda long_size: ResizeByLong(_positive_int(long_size, 'ResizeByLong long_size')),
    'ResizeByShort': lambda short_size: ResizeByShort(_positive_int(short_size, 'ResizeByShort short_size')),
    'LimitLong': _make_limit_long,
    'Padding': _make_padding,
    'Normalize': _make_normalize,
}


def build_transform(spec):
    """One transform dataclass from a ``{'type': ..., **args}`` mapping; ValueError if unusable."""
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ValueError(f'each transform needs a "type", got {spec!r}')
    args = dict(spec)
    kind = args.pop('type')
    builder = TRANSFORM_BUILDERS.get(kind)
    if builder is None:
        raise ValueError(f'transform {kind!r} is not supported at inference '
                         f'(supported: {", ".join(TRANSFORM_BUILDERS)})')
    try:
        return builder(**args)
    except TypeError:
        # An unexpected or missing argument: name the transform, not Python's call.
        raise ValueError(f'transform {kind} has unsupported or missing arguments {sorted(args)}') from None


# ---------------------------------------------------------------------------- YAML

def parse_yaml(text, path):
    """``yaml.safe_load(text)``; DeployFileError naming ``path`` and the line when it is not valid YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise DeployFileError(f'{path}: not valid YAML ({_yaml_problem(err)}); '
                              f're-export or re-download the model') from None


def _yaml_problem(err):
    """PyYAML's several-line message as one phrase: where, then what."""
    mark = getattr(err, 'problem_mark', None)
    problem = getattr(err, 'problem', None) or ' '.join(str(err).split())
    return f'line {mark.line + 1}, column {mark.column + 1}: {problem}' if mark is not None else problem


# ---------------------------------------------------------------------------- loading

def missing_model_message(model_dir):
    """The one line shown when the model folder is absent."""
    if os.path.abspath(model_dir) == os.path.abspath(DEFAULT_MODEL_DIR):
        return (f'PaddleSeg model folder {model_dir} not found: download {MODEL_URL} and extract it there '
                f'(so that it holds {DEPLOY_FILE}), or pass --ppseg-model DIR')
    return (f'PaddleSeg model folder {model_dir} not found: pass --ppseg-model the folder holding {DEPLOY_FILE} '
            f'(e.g. {MODEL_URL} unzipped)')


def find_deploy_file(model_dir):
    """The deploy.yaml for ``model_dir`` (a folder, or the yaml file itself)."""
    model_dir = os.fspath(model_dir)
    if os.path.isfile(model_dir):
        return model_dir
    if not os.path.isdir(model_dir):
        raise PaddleSegError(missing_model_message(model_dir))
    path = os.path.join(model_dir, DEPLOY_FILE)
    if os.path.isfile(path):
        return path
    # Unzipping into a folder of the same name nests the export one level down.
    nested = [os.path.join(model_dir, d, DEPLOY_FILE) for d in sorted(os.listdir(model_dir))]
    nested = [p for p in nested if os.path.isfile(p)]
    if len(nested) == 1:
        return nested[0]
    raise PaddleSegError(f'{model_dir} has no {DEPLOY_FILE}: it should be a PaddleSeg export folder '
                         f'(deploy.yaml, model.pdmodel, model.pdiparams), e.g. {MODEL_URL} unzipped')


def load_deploy_config(model_dir):
    """Read and check ``deploy.yaml`` and the files it names; PaddleSegError (one line) if unusable."""
    path = find_deploy_file(model_dir)
    try:
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8')
    except (OSError, UnicodeDecodeError) as err:
        raise PaddleSegError(f'{path}: cannot read ({_reason(err)}); re-extract the model zip') from None
    data = parse_yaml(text, path)
    try:
        deploy = data.get('Deploy') if isinstance(data, dict) else None
        if not isinstance(deploy, dict):
            raise ValueError('no "Deploy:" section')
        for key in ('model', 'params'):
            if not isinstance(deploy.get(key), str) or not deploy[key]:
                raise ValueError(f'"Deploy: {key}" (a file name) is missing')
        # export.py writes only Normalize when the training config has no export transforms.
        specs = deploy.get('transforms', [{'type': 'Normalize'}])
        if not isinstance(specs, list):
            raise ValueError('"Deploy: transforms" must be a list')
        transforms = tuple(build_transform(spec) for spec in specs)
    except ValueError as err:
        raise DeployFileError(f'{path}: not a usable PaddleSeg deploy.yaml ({err}); '
                             f're-export or re-download the model') from None
    folder = os.path.dirname(os.path.abspath(path))
    cfg = DeployConfig(path=path, model_file=os.path.join(folder, deploy['model']),
                       params_file=os.path.join(folder, deploy['params']), transforms=transforms)
    check_model_files(cfg)
    return cfg


def check_model_files(cfg):
    """Fail early on missing or obviously wrong model files (Paddle may crash on them)."""
    for role, path in (('model', cfg.model_file), ('params', cfg.params_file)):
        try:
            with open(path, 'rb') as f:
                head = f.read(64)
        except FileNotFoundError:
            raise PaddleSegError(f'{path}: {role} file named in {cfg.path} is missing; '
                                 f're-extract the model zip') from None
        except OSError as err:
            raise PaddleSegError(f'{path}: cannot read the {role} file ({_reason(err)})') from None
        if not head:
            raise PaddleSegError(f'{path}: the {role} file is empty; re-download and re-extract the model zip')
    # Paddle segfaults on some garbage model files instead of raising, so check the
    # format's first byte: a ProgramDesc protobuf starts with field 1 (0x0a), the
    # new-IR JSON with '{'. This also catches HTML error pages and Git LFS pointers.
    with open(cfg.model_file, 'rb') as f:
        head = f.read(64)
    if cfg.model_file.endswith('.json'):
        looks_right = head.lstrip().startswith(b'{')
    else:
        looks_right = not cfg.model_file.endswith('.pdmodel') or head.startswith(b'\x0a')
    if not looks_right:
        raise PaddleSegError(f'{cfg.model_file}: not a Paddle inference model (corrupt or not the real file); '
                             f're-download and re-extract the model zip')


def _reason(err):
    return getattr(err, 'strerror', None) or str(err)
