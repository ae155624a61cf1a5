"""The trusted path: a network pickle loaded the upstream way, running the code embedded in it.

Only with ``trust_embedded_code=True`` (``--trust-embedded-code``). The file can fail here in
ways the safe reader never meets: the source it carries imports names our ``torch_utils``
lacks, raises, or does not define the class it names; the pickle refers to a module or
class that does not exist here (``dnnlib.tflib``); the bytes are cut short. Each becomes a
one-line :class:`NetworkFileError`. Which code raised an error decides whose fault it is: the
file's source, the unpickler, or a library it calls make it the file's; an error raised in this
project's own code (``torch_utils.persistence`` beyond its checks of the record) is a bug and
keeps its traceback.
"""

import pickle
import sys
from typing import BinaryIO

from .safe_pickle import NetworkFileError

# Module name prefix torch_utils.persistence gives the modules it makes from embedded source.
_EMBEDDED_PREFIX = '_imported_module_'
_OUR_PACKAGES = ('torch_utils', 'dnnlib', 'training', 'stylegan_human', 'metrics', 'legacy')
_RECONSTRUCT = ('torch_utils.persistence', '_reconstruct_persistent_obj')
_HINT = 'without --trust-embedded-code a known architecture is rebuilt from its settings instead'


def load_trusted_pickle(f: BinaryIO) -> dict:
    """``pickle.load(f)`` as upstream does it, failures of the file as one-line NetworkFileErrors."""
    try:
        data = _TrustedUnpickler(f).load()
    except NetworkFileError:
        raise
    except Exception as err:  # noqa: BLE001 - sorted below: the file's fault is reported, ours re-raised
        if _owner(_raising_frames(err.__traceback__)[1:]) == 'ours':
            raise
        raise NetworkFileError(f'not a valid network pickle (truncated or corrupt): {_describe(err)}') from None
    if not isinstance(data, dict) or 'G_ema' not in data:
        raise NetworkFileError('the pickle holds no G_ema network')
    return data


class _TrustedUnpickler(pickle.Unpickler):
    """The standard unpickler; names the file asks for that do not exist here are one line."""

    def find_class(self, module, name):
        if (module, name) == _RECONSTRUCT:
            return _reconstruct_persistent_obj
        try:
            return super().find_class(module, name)
        except ModuleNotFoundError as err:
            if err.name and (module == err.name or module.startswith(err.name + '.')):
                raise NetworkFileError(f'the pickle refers to {module}.{name}, but there is no module {err.name} '
                                       f'here; {_HINT}') from None
            raise  # A module that exists failed to import one of its own: not the file's doing.
        except AttributeError:
            if module in sys.modules and not _defines(sys.modules[module], name):
                raise NetworkFileError(f'the pickle refers to {module}.{name}, which {module} does not define '
                                       f'here; {_HINT}') from None
            raise


def _defines(module, dotted_name):
    target = module
    for part in dotted_name.split('.'):
        if not hasattr(target, part):
            return False
        target = getattr(target, part)
    return True


def _reconstruct_persistent_obj(meta):
    """torch_utils.persistence's reconstruction (it runs the embedded source), its failures sorted."""
    from torch_utils import persistence
    try:
        return persistence._reconstruct_persistent_obj(meta)  # pylint: disable=protected-access
    except Exception as err:  # noqa: BLE001 - re-raised unless the file is at fault
        frames = _raising_frames(err.__traceback__)[1:]
        class_name = meta.get('class_name', '?') if isinstance(meta, dict) else '?'
        if isinstance(err, SyntaxError) and err.filename == '<string>':
            raise NetworkFileError(f'the code embedded for class {class_name} does not compile: SyntaxError: '
                                   f'{err.msg} (line {err.lineno}); {_HINT}') from None
        owner = _owner(frames)
        if owner == 'file':
            raise NetworkFileError(f'the code embedded for class {class_name} failed: {_describe(err)}; '
                                   f'{_HINT}') from None
        if owner == 'ours' and _innermost_ours(frames) == _RECONSTRUCT:
            # Its checks of the record: the format version, the kind, the class in the source.
            if isinstance(err, KeyError) and err.args == (class_name,):
                raise NetworkFileError(f'the code embedded in the pickle does not define class {class_name}; '
                                       f'{_HINT}') from None
            if isinstance(err, (AssertionError, KeyError, AttributeError)):
                raise NetworkFileError(f'a network in the pickle is not in the persistence format this loader '
                                       f'reads ({_describe(err)})') from None
        raise


def _raising_frames(tb):
    """The frames an exception passed through, outermost first (the one that caught it is first)."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _frame_module(frame):
    return frame.f_globals.get('__name__', '')


def _frame_kind(frame):
    module = _frame_module(frame)
    if module.startswith(_EMBEDDED_PREFIX):
        return 'file'
    if module.split('.')[0] in _OUR_PACKAGES:
        return 'ours'
    return 'other'   # the standard library, torch, numpy: called by the pickle on its data


def _owner(frames):
    """'file' or 'ours': whose code the error was raised in (the innermost of the two), or None when
    only the unpickler itself and libraries ran."""
    kinds = [kind for kind in map(_frame_kind, frames) if kind != 'other']
    return kinds[-1] if kinds else None


def _innermost_ours(frames):
    ours = [frame for frame in frames if _frame_kind(frame) == 'ours']
    return (_frame_module(ours[-1]), ours[-1].f_code.co_name) if ours else None


def _describe(err):
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__
