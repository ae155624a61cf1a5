"""Writing the drop-in into a checkout of NVIDIA's code: which files, backups, no silent overwrite."""

import dataclasses
import pathlib
import shutil
from typing import List, Optional, Tuple

from dnnlib.atomic import atomic_write

from . import sources
from .trees import STYLEGAN2_ADA, STYLEGAN3, DropinError, Tree, detect_tree

TOOLKIT_ROOT = pathlib.Path(__file__).resolve().parents[2]
BACKUP_SUFFIX = '.orig'

# Files both checkouts get: (path in the checkout, the toolkit file it is made from).
COMMON_FILES = (
    ('train.py', 'training/dropin/nvidia_train.py'),
    ('training/dataset.py', 'training/dataset.py'),
    ('training/train_config.py', 'training/train_config.py'),   # new there: train.py's option logic
)
NETWORK_FILES = {
    STYLEGAN2_ADA: (('training/networks.py', 'training/networks_stylegan2.py'),),
    STYLEGAN3: (('training/networks_stylegan2.py', 'training/networks_stylegan2.py'),
                  ('training/networks_stylegan3.py', 'training/networks_stylegan3.py')),
}


@dataclasses.dataclass(frozen=True)
class Step:
    """One file of the drop-in and what writing it does to the checkout."""
    dest: str               # path in the checkout
    source: str             # the toolkit file it is made from
    action: str             # 'add' (new there), 'replace' (NVIDIA's file, kept as backup), 'update'
                            # (a drop-in file from an earlier export) or 'unchanged'
    text: str
    backup: Optional[str] = None   # where NVIDIA's file goes, for 'replace'


def dropin_files(tree: Tree) -> Tuple[Tuple[str, str], ...]:
    """(path in the checkout, toolkit source) of every file the drop-in for ``tree`` has."""
    return COMMON_FILES + NETWORK_FILES[tree.name]


def _module_name(path: str) -> str:
    return path[:-len('.py')].replace('/', '.')


def dropin_texts(tree: Tree, toolkit_root: pathlib.Path = TOOLKIT_ROOT) -> List[Tuple[str, str, str]]:
    """(dest, source, text) for ``tree``; DropinError if a text would not work in that checkout."""
    files = dropin_files(tree)
    added = [_module_name(dest) for dest, _source in files]
    result = []
    for dest, source in files:
        text = sources.dropin_text(toolkit_root, source, tree)
        problems = sources.import_problems(text, tree, added, where=dest)
        if problems:
            raise DropinError(f'the drop-in\'s {problems[0]} (from {source}); fix the edit in '
                              'training/dropin/sources.py')
        result.append((dest, source, text))
    return result


def plan_export(into, tree: Optional[str] = None) -> Tuple[Tree, List[Step]]:
    """What exporting into ``into`` would do; DropinError (nothing written) when it must not."""
    found = detect_tree(into, tree)
    root = pathlib.Path(into)
    steps = []
    for dest, source, text in dropin_texts(found):
        target = root / dest
        if not target.exists():
            steps.append(Step(dest, source, 'add', text))
            continue
        current = target.read_text(encoding='utf-8', errors='replace')
        if sources.is_dropin_text(current):
            steps.append(Step(dest, source, 'unchanged' if current == text else 'update', text))
            continue
        backup = dest + BACKUP_SUFFIX
        if (root / backup).exists():
            raise DropinError(f'{root / backup} already exists and {dest} there is not a drop-in file: '
                              'move one of them away, then export again', param='into')
        steps.append(Step(dest, source, 'replace', text, backup))
    return found, steps


def export_dropin(into, tree: Optional[str] = None, dry_run: bool = False) -> Tuple[Tree, List[Step]]:
    """Write the drop-in into the checkout ``into``: NVIDIA's replaced files go to ``*.orig`` first."""
    found, steps = plan_export(into, tree)
    if dry_run:
        return found, steps
    root = pathlib.Path(into)
    for step in steps:
        if step.action == 'unchanged':
            continue
        if step.action == 'replace':
            with open(root / step.dest, 'rb') as src, open(root / step.backup, 'xb') as dst:
                shutil.copyfileobj(src, dst)
            shutil.copymode(root / step.dest, root / step.backup)
        atomic_write(root / step.dest, lambda f, text=step.text: f.write(text.encode('utf-8')))
    return found, steps
