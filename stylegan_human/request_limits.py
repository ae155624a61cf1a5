"""Bounds on the work one request may ask for, checked before any of it starts.

A command line trusts its user with ``--seeds=0-99999``; a web page does not: whoever can
reach it could ask for a grid of a hundred thousand rows and hold the one worker for hours.
:class:`RequestLimits` holds the bounds (the web app makes each a command-line option) and
its checks raise :class:`~dnnlib.errors.InputError` with a one-line message naming the task,
the limit and what was asked, e.g. ``Style mixing: at most 8 row seeds (got 100000)``.

Lists of seeds are counted from their text (``0-99999`` is one range of 100000 values)
before they are expanded, so even ``0-10000000000`` costs nothing to refuse.
"""

import dataclasses
import re
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from dnnlib.errors import InputError
from stylegan_human import commands

MAX_SEED = 2 ** 32 - 1    # numpy's RandomState takes seeds 0 .. 2**32 - 1
MAX_LAYERS = 1024         # bounds only the parsing of a layer list: the network refuses indices it lacks

_RANGE_ITEM = re.compile(r'^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$')


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """The most one request may ask for; the defaults keep a CPU job to a few minutes."""

    mix_rows: int = 8            # style mixing: row seeds
    mix_cols: int = 8            # style mixing: column seeds
    interp_steps: int = 100      # interpolation: steps between the two seeds (frames = steps + 1)
    photo_megapixels: float = 40.0   # alignment: size of an uploaded photo

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise InputError(f'{field.name} limit must be positive, not {getattr(self, field.name)}',
                                 param=field.name)

    def mix_request(self, rows: Union[str, Sequence[int]], cols: Union[str, Sequence[int]],
                    styles: Union[str, Sequence[int]]) -> Tuple[List[int], List[int], List[int]]:
        """Style mixing's row seeds, column seeds and layers, each list within its limit."""
        return (parse_bounded_seeds(rows, self.mix_rows, 'Style mixing', 'row seeds'),
                parse_bounded_seeds(cols, self.mix_cols, 'Style mixing', 'column seeds'),
                parse_bounded_range(styles, MAX_LAYERS, 'Style mixing', 'layers'))

    def check_interp_steps(self, steps: object) -> int:
        """Interpolation's step count as an int, within the limit (below 1 is the library's error)."""
        count = whole_number(steps, 'Interpolate', 'steps')
        check_count(count, self.interp_steps, 'Interpolate', 'steps')
        return count

    def check_photo(self, photo: np.ndarray) -> None:
        """An uploaded photo no bigger than the limit (in millions of pixels)."""
        megapixels = photo.shape[0] * photo.shape[1] / 1e6
        if megapixels > self.photo_megapixels:
            raise InputError(f'Alignment: at most {self.photo_megapixels:g} megapixels per photo '
                             f'(got {megapixels:.1f}: {photo.shape[1]}x{photo.shape[0]})')


def check_count(count: int, limit: int, task: str, what: str) -> None:
    """Raise InputError ``'{task}: at most {limit} {what} (got {count})'`` when count > limit."""
    if count > limit:
        raise InputError(f'{task}: at most {limit} {what} (got {count})')


def range_size(text: str) -> Optional[int]:
    """How many values ``'0-3,7'`` stands for (5), without making the list; None if it is not valid.

    An invalid text is left to :func:`commands.parse_range`, whose message says what is wrong.
    """
    total = 0
    for item in str(text).split(','):
        if item.strip() == '':
            continue
        match = _RANGE_ITEM.match(item)
        if not match:
            return None
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        total += max(hi - lo + 1, 0)
    return total


def parse_bounded_range(text: Union[str, Sequence[int]], limit: int, task: str, what: str) -> List[int]:
    """``commands.parse_range(text)`` with at most ``limit`` values, counted before expanding.

    Errors are InputError led by ``task``: ``'Style mixing: at most 8 row seeds (got 100000)'``.
    """
    if isinstance(text, (list, tuple)):   # already parsed (the app checks before it loads the network)
        check_count(len(text), limit, task, what)
        return [whole_number(value, task, what) for value in text]
    text = '' if text is None else str(text)
    size = range_size(text)
    if size is not None:
        check_count(size, limit, task, what)
    try:
        return commands.parse_range(text)
    except ValueError as err:
        raise InputError(f'{task}: {what}: {err}; expected a list like 0-10,15,20-22') from None


def parse_bounded_seeds(text: Union[str, Sequence[int]], limit: int, task: str, what: str) -> List[int]:
    """:func:`parse_bounded_range`, each value also a valid seed (:func:`check_seed`)."""
    values = parse_bounded_range(text, limit, task, what)
    for value in values:
        check_seed(value, task, f'each of the {what}')
    return values


def whole_number(value: object, task: str, what: str) -> int:
    """``value`` (a number from a form: int, float or numeric text) as an int; InputError otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f'{task}: {what} must be a whole number, not {value!r}') from None
    if not number.is_integer():
        raise InputError(f'{task}: {what} must be a whole number, not {value!r}')
    return int(number)


def check_seed(value: object, task: str, what: str = 'seed') -> int:
    """A seed from a form as an int in ``0 .. 2**32 - 1`` (what RandomState takes)."""
    seed = whole_number(value, task, what)
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f'{task}: {what} must be between 0 and {MAX_SEED}, not {seed}')
    return seed
