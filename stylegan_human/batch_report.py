"""Folder-at-a-time processing: output names, per-photo failures, the summary.

A bad photo never stops the batch: its reason is printed under its name as it
happens, again in the summary, and the command exits non-zero at the end.
"""

import dataclasses
import os
from typing import Callable, Dict, Optional, Sequence

from dnnlib.errors import FileFormatError, InputError

# What one item may fail with and still leave the rest of the batch going: a bad file or value,
# or a file the system cannot read or write. A missing package or model stops the batch instead.
ITEM_FAILURES = (FileFormatError, InputError, OSError)
PHOTO_FAILURES = ITEM_FAILURES  # the name alignment and PTI use


@dataclasses.dataclass
class BatchReport:
    done: int = 0
    failures: list = dataclasses.field(default_factory=list)   # (name, reason)
    left: int = 0          # items not reached because the batch was stopped

    @property
    def total(self) -> int:
        return self.done + len(self.failures)

    def finish(self, verb: str, output: Optional[str] = None, stopped_status: int = 130) -> None:
        """Print the summary (and where the results are); exit with status 1 if anything failed,
        ``stopped_status`` if the batch was stopped (130: Ctrl-C, 143: SIGTERM)."""
        print(self.summary(verb))
        if output:
            print(f'Output: {output}')
        if self.left:
            print(f'Interrupted: {self.left} image(s) not reached')
            raise SystemExit(stopped_status)
        if self.failures:
            raise SystemExit(1)

    def summary(self, verb: str = 'aligned') -> str:
        lines = [f'{verb} {self.done} of {self.total} image(s)'
                 + (f'; {len(self.failures)} failed:' if self.failures else '')]
        lines += [f'  {name}: {reason}' for name, reason in self.failures]
        return '\n'.join(lines)


def output_stems(paths: Sequence[str], root: str) -> Dict[str, str]:
    """Input path -> output path without suffix, mirroring subfolders of ``root``.

    Two inputs that differ only by suffix (``a.jpg``, ``a.png``) keep both: each
    gets its suffix added to the name (``a_jpg``, ``a_png``).
    """
    stems = {p: os.path.splitext(os.path.relpath(p, root))[0] for p in paths}
    counts = {}
    for stem in stems.values():
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    return {p: stem + ('_' + os.path.splitext(p)[1][1:].lower() if counts[stem.lower()] > 1 else '')
            for p, stem in stems.items()}


def run_batch(paths: Sequence[str], root: str, process: Callable[[str, str], None], desc: str,
              report: Optional[BatchReport] = None, progress: bool = True,
              stop: Optional[Callable[[], bool]] = None) -> BatchReport:
    """Call ``process(path, name)`` for each path; collect failures instead of stopping.

    ``stop()``, when given, is asked after each item; once it says True the rest are left
    (counted in ``report.left``).
    """
    from tqdm import tqdm
    report = report or BatchReport()
    with tqdm(paths, unit='img', desc=desc, disable=not progress) as bar:
        for index, path in enumerate(bar):
            if stop is not None and stop():
                report.left = len(paths) - index
                break
            name = os.path.relpath(path, root)
            try:
                process(path, name)
            except ITEM_FAILURES as err:
                reason = _reason(err)
                report.failures.append((name, reason))
                bar.write(f'{name}: skipped: {reason}')
            else:
                report.done += 1
    return report


def _reason(err):
    if isinstance(err, OSError) and not isinstance(err, (FileFormatError, InputError)):
        where = f' ({err.filename})' if getattr(err, 'filename', None) else ''
        return f'{err.strerror or err}{where}'
    return str(err)
