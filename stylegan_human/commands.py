"""Command-line plumbing shared by the scripts: option types, device choice, user errors, Ctrl-C.

A user mistake ends in one line (``Error: ...``), a non-zero exit code and no
traceback: scripts raise :class:`UserError`, and :func:`user_errors` turns the
library's errors (``dnnlib.errors.ToolkitError``) into it, naming the option.
"""

import contextlib
import functools
import re
import signal
import threading
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import click

from dnnlib.errors import ToolkitError

if TYPE_CHECKING:   # torch is imported only when a device is chosen
    import torch


class UserError(click.ClickException):
    """An error the user can fix; click prints it as one line and exits with code 1."""


class Command(click.Command):
    """A click command whose usage errors are one line too (no usage banner)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as err:
            raise UserError(err.format_message()) from None


def user_errors(fn: Callable) -> Callable:
    """Decorator: report the library's errors (``ToolkitError``) and OS errors as one line.

    When the error names the argument that held the bad value (``err.param``) and this command
    has an option of that name, the option the user typed goes in front of the message.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ToolkitError as err:
            raise UserError(message_for_option(err)) from None
        except OSError as err:  # Unwritable output folder, full disk, ...: the user can fix these.
            where = f'{err.filename}: ' if err.filename else ''
            raise UserError(f'{where}{err.strerror or err}') from None
    return wrapper


def message_for_option(err: Exception, ctx: Optional[click.Context] = None) -> str:
    """``str(err)``, led by the command-line option that ``err.param`` names, if there is one."""
    message = str(err)
    param = getattr(err, 'param', None)
    ctx = ctx or click.get_current_context(silent=True)
    if param is None or ctx is None:
        return message
    for option in ctx.command.params:
        if option.name == param and option.opts:
            flag = max(option.opts, key=lambda opt: (not opt.startswith('---'), len(opt)))
            return message if message.startswith(flag) else f'{flag}: {message}'
    return message


class InterruptRequest:
    """Set by the first Ctrl-C (or SIGTERM) inside :func:`stop_between_items`; the loop checks it between items."""

    def __init__(self):
        self.requested = False
        self.exit_code = 130   # the shell's status for a command ended by a signal: 128 + its number


@contextlib.contextmanager
def stop_between_items() -> Iterator[InterruptRequest]:
    """Let a loop over many outputs finish the item in hand when the user presses Ctrl-C.

    The first SIGINT (Ctrl-C) or SIGTERM (``kill``) only sets ``.requested``: the loop completes
    the current file and stops, so every file it wrote is whole. A second signal interrupts at
    once. Off the main thread (signals cannot be caught there) the signals keep their usual meaning.
    """
    request = InterruptRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def on_signal(signum, frame):
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True
        request.exit_code = 128 + signum

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def report_interrupted(done: int, total: int, what: str, where: str, exit_code: int = 130) -> None:
    """Say how far an interrupted run got, in one line, and exit with ``exit_code`` (130: Ctrl-C)."""
    click.echo(f'Interrupted: wrote {done} of {total} {what} to {where}', err=True)
    raise click.exceptions.Exit(exit_code)


# ----------------------------------------------------------------------------
# Parsing


_RANGE_ITEM = re.compile(r'^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$')


def parse_range(text: Union[str, Sequence[int]]) -> List[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]. Raises ValueError with a readable message."""
    if isinstance(text, (list, tuple)):
        return [int(x) for x in text]
    values = []
    for item in str(text).split(','):
        if item.strip() == '':
            continue
        match = _RANGE_ITEM.match(item)
        if not match:
            raise ValueError(f'{item.strip()!r} is not a number or a range like 0-10')
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f'range {item.strip()!r} ends before it starts')
        values.extend(range(lo, hi + 1))
    if not values:
        raise ValueError('empty list')
    return values


def parse_vec2(text: Union[str, Sequence[float]]) -> Tuple[float, float]:
    """'0.1,-0.2' -> (0.1, -0.2)."""
    if isinstance(text, (list, tuple)):
        return tuple(float(x) for x in text)
    parts = str(text).split(',')
    if len(parts) != 2:
        raise ValueError(f'{text!r} is not two numbers like 0.1,-0.2')
    try:
        return (float(parts[0]), float(parts[1]))
    except ValueError:
        raise ValueError(f'{text!r} is not two numbers like 0.1,-0.2') from None


class ParsedType(click.ParamType):
    """Click option type from a parse function that raises ValueError with a readable message."""

    def __init__(self, name, parse):
        self.name = name
        self._parse = parse

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value  # a default that is already parsed
        try:
            return self._parse(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


def parse_name_list(text: str) -> List[str]:
    """'a, b,c' -> ['a', 'b', 'c']; 'none' or '' -> [] (upstream's --metrics)."""
    if text.strip().lower() in ('', 'none'):
        return []
    return [item.strip() for item in text.split(',') if item.strip()]


def parse_seeds(text: str) -> List[int]:
    """:func:`parse_range`, with the expected form in its error (for seed and layer options)."""
    try:
        return parse_range(text)
    except ValueError as err:
        raise ValueError(f'{err}; expected a list like 0-10,15,20-22') from None


SEEDS = ParsedType('range', parse_seeds)
VEC2 = ParsedType('vec2', parse_vec2)
NAME_LIST = ParsedType('list', parse_name_list)


# ----------------------------------------------------------------------------
# Devices


def choose_device(name: str = 'auto') -> 'torch.device':
    """'auto' picks CUDA, then MPS, then CPU; an unavailable device is a user error."""
    import torch
    name = (name or 'auto').strip().lower()
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        if _mps_available():
            return torch.device('mps')
        return torch.device('cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f'--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f'--device {name}: CUDA is not available here; use --device cpu (or auto)')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f'--device {name}: only {torch.cuda.device_count()} CUDA device(s) present')
    elif device.type == 'mps' and not _mps_available():
        raise UserError(f'--device {name}: Apple MPS is not available here; use --device cpu (or auto)')
    elif device.type not in ('cpu', 'cuda', 'mps'):
        raise UserError(f'--device {name}: unsupported; use auto, cpu, cuda, cuda:N or mps')
    return device


def _mps_available():
    import torch
    backend = getattr(torch.backends, 'mps', None)
    return bool(backend is not None and backend.is_available())


DEVICE_OPTION_HELP = 'Device: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps'


# ----------------------------------------------------------------------------
# Number format


PRECISION_OPTION_HELP = ('Number format of the synthesis: fp32 (exact), bf16 (several times faster where the '
                         'hardware has it: AMX / AVX-512 BF16 CPUs, bf16 GPUs), or auto (bf16 where native)')


def precision_option(fn: Callable) -> Callable:
    """Decorator: the ``--precision fp32|bf16|auto`` option (default fp32); the command's body
    runs in that number format on the device its ``--device`` option names."""
    @functools.wraps(fn)
    def wrapper(*args, precision='fp32', **kwargs):
        with use_precision(precision, choose_device(kwargs.get('device', 'auto'))):
            return fn(*args, **kwargs)
    return click.option('--precision', type=click.Choice(['fp32', 'bf16', 'auto']), default='fp32',
                        show_default=True, help=PRECISION_OPTION_HELP)(wrapper)


def precision_dtype(name: str, device: 'torch.device') -> 'torch.dtype':
    """The dtype ``--precision`` names on ``device`` (one line if it cannot; a note when auto keeps fp32)."""
    import torch
    from torch_utils import precision
    try:
        dtype = precision.resolve(name, device)
    except ToolkitError as err:
        raise UserError(message_for_option(err)) from None
    if name == 'auto' and dtype != torch.bfloat16:
        click.echo(f'Note: --precision auto: no native bfloat16 on {device.type}; computing in fp32', err=True)
    return dtype


def use_precision(name: str, device: 'torch.device') -> contextlib.AbstractContextManager:
    """The scope computing in the format ``--precision`` names on ``device`` (one line if it cannot)."""
    from torch_utils import precision
    return precision.use_precision(precision_dtype(name, device))
