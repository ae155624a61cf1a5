"""The drop-in's file texts: our modules, edited where NVIDIA's checkout lacks what they import.

Each file is generated from this toolkit's own module, so the drop-in trains exactly the
networks and reads exactly the datasets this toolkit does. Where a module imports
something a checkout of NVIDIA's code does not have, the one statement that does so is
replaced (:func:`replace_import`, :func:`replace_function`), found with ``ast`` by the
name it binds: a change elsewhere in the module does not disturb the edit, and a module
that no longer has the statement makes the export fail with a message naming it. An
optional import (``try: import ... except ImportError: fallback``) of something the
checkout lacks becomes its fallback (:func:`use_fallbacks`): what would run there anyway.

:func:`import_problems` then holds every import of a generated file against the
checkout's recorded modules and names (``trees.py``).
"""

import ast
import pathlib
import sys
from typing import Iterable, List, Optional

from .trees import THIRD_PARTY, DropinError, Tree

MARKER = 'StyleGAN-Human drop-in'

# This toolkit's own top-level packages and scripts: none is in an NVIDIA checkout.
TOOLKIT_ONLY = frozenset(('stylegan_human', 'pti', 'edit', 'inset', 'aligner', 'openpose', 'PP_HumanSeg',
                          'model_zoo', 'legacy_tf', 'export_network', 'benchmarks', 'tests'))

# Stand-ins for dnnlib.errors (this toolkit's, not in NVIDIA's dnnlib): the same built-in
# bases, so code that catches ValueError or OSError catches them as before.
FILE_FORMAT_ERROR = '''

class FileFormatError(ValueError):
    """A file that cannot be used (in the toolkit, dnnlib.errors.FileFormatError)."""

'''

INPUT_ERROR = '''

class InputError(ValueError):
    """A value the user has to fix (in the toolkit, dnnlib.errors.InputError)."""

    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param

'''

NO_MODEL_ZOO = '''\
def _zoo_entry(name):
    """None: NVIDIA's checkout has no model zoo (a --resume name is a path, a URL or an ADA source)."""
    return None
'''


def header(tree: Tree, source: str) -> str:
    """The comment that opens every drop-in file (and lets the exporter recognise its own files)."""
    return (f'# {MARKER} for NVIDIA {tree.title} ({tree.repository}), written by\n'
            f'# `python -m training.dropin` from the StyleGAN-Human toolkit\'s {source}:\n'
            f'# change that file and export again rather than editing this copy.\n')


def is_dropin_text(text: str) -> bool:
    """Was this file written by the exporter?"""
    return MARKER in ''.join(text.splitlines(keepends=True)[:3])


# ----------------------------------------------------------------------------
# Edits.


def _splice(source: str, first: int, last: int, replacement: str) -> str:
    """``source`` with its lines first..last (1-based, inclusive) replaced."""
    lines = source.splitlines(keepends=True)
    return ''.join(lines[:first - 1]) + replacement + ''.join(lines[last:])


def _binds(node: ast.AST, name: str) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name.split('.')[0]) == name for alias in node.names)
    if isinstance(node, ast.Try):   # an optional import: try: import x / except ImportError: ...
        return any(_binds(child, name) for child in node.body)
    return False


def _only(matches: List[ast.AST], what: str, where: str) -> ast.AST:
    if len(matches) != 1:
        found = 'not found' if not matches else f'found {len(matches)} times'
        raise DropinError(f'{where}: {what} {found}; the drop-in edit in training/dropin/sources.py must follow '
                          'the module')
    return matches[0]


def replace_import(source: str, name: str, replacement: str, where: str) -> str:
    """Replace the top-level statement that imports ``name`` (or the try block around it)."""
    tree = ast.parse(source)
    node = _only([n for n in tree.body if _binds(n, name)], f'the import of {name}', where)
    return _splice(source, node.lineno, node.end_lineno, replacement)


def replace_function(source: str, name: str, replacement: str, where: str) -> str:
    """Replace the top-level function ``name``."""
    tree = ast.parse(source)
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    node = _only(nodes, f'function {name}()', where)
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return _splice(source, first, node.end_lineno, replacement)


# Per source file (relative to the toolkit root): the edits it needs in any NVIDIA checkout.
EDITS = {
    'training/dataset.py': [lambda s, w: replace_import(s, 'FileFormatError', FILE_FORMAT_ERROR, w)],
    'training/train_config.py': [lambda s, w: replace_import(s, 'InputError', INPUT_ERROR, w),
                                 lambda s, w: replace_function(s, '_zoo_entry', NO_MODEL_ZOO, w)],
    'training/networks_stylegan2.py': [],
    'training/networks_stylegan3.py': [],
    'training/dropin/nvidia_train.py': [],
}


def use_fallbacks(source: str, tree: Tree) -> str:
    """Replace each top-level ``try: import ... except ImportError: <fallback>`` whose import
    ``tree`` cannot resolve (the toolkit's fast paths) by its fallback, which is what would run there."""
    syntax = ast.parse(source)
    for node in reversed(syntax.body):   # bottom up: earlier line numbers stay valid
        if not (isinstance(node, ast.Try) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in node.body)):
            continue
        handler = next((h for h in node.handlers if _catches_import_error(h)), None)
        if handler is None or not import_problems(ast.unparse(ast.Module(body=node.body, type_ignores=[])), tree):
            continue
        lines = source.splitlines(keepends=True)
        fallback = ''.join(lines[handler.body[0].lineno - 1:handler.body[-1].end_lineno])
        fallback = '\n'.join(line[handler.body[0].col_offset:] for line in fallback.split('\n'))
        note = f'# {tree.title} has none of the toolkit\'s own optional modules imported here:\n'
        source = _splice(source, node.lineno, node.end_lineno, note + fallback)
    return source


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ('ImportError', 'ModuleNotFoundError') for n in names)


def dropin_text(root: pathlib.Path, source: str, tree: Tree) -> str:
    """The drop-in version of our file ``source`` (relative to the toolkit ``root``) for ``tree``."""
    text = (root / source).read_text(encoding='utf-8')
    for edit in EDITS[source]:
        text = edit(text, source)
    return header(tree, source) + use_fallbacks(text, tree)


# ----------------------------------------------------------------------------
# Checking a generated file against a checkout.


def _stdlib() -> frozenset:
    names = getattr(sys, 'stdlib_module_names', None)   # Python 3.10+
    if names is None:
        names = ('abc', 'ast', 'collections', 'contextlib', 'copy', 'dataclasses', 'functools', 'glob', 'hashlib',
                 'importlib', 'inspect', 'io', 'itertools', 'json', 'math', 'os', 'pathlib', 'pickle', 're',
                 'shutil', 'sys', 'tempfile', 'time', 'types', 'typing', 'uuid', 'warnings', 'zipfile')
    return frozenset(names)


def import_problems(text: str, tree: Tree, added_modules: Iterable[str] = (), where: str = '') -> List[str]:
    """Everything in ``text`` that a checkout of ``tree`` (with ``added_modules``) cannot resolve.

    Imports must name the standard library, one of THIRD_PARTY, or a module of the
    checkout; a name taken from a checkout module (``from torch_utils.misc import x``,
    ``misc.x``) must be one that module defines, where its names are recorded.
    """
    modules = set(tree.modules) | set(added_modules)
    tops = {m.split('.')[0] for m in modules}
    stdlib = _stdlib()
    problems = []
    bound = {}   # local name -> checkout module it stands for

    def check_module(module: str, line: int) -> bool:
        top = module.split('.')[0]
        if top in tops or top in TOOLKIT_ONLY:
            if module not in modules:
                problems.append(f'{where}:{line}: imports {module}, which {tree.title} has not')
                return False
            return True
        if top not in stdlib and top not in THIRD_PARTY:
            problems.append(f'{where}:{line}: imports {module}, neither standard library nor one of '
                            f'{", ".join(sorted(THIRD_PARTY))}')
        return False

    def check_name(module: str, name: str, line: int) -> None:
        known = tree.names.get(module)
        if known is not None and name not in known:
            problems.append(f'{where}:{line}: uses {module}.{name}, which {tree.title}\'s {module} has not')

    syntax = ast.parse(text)
    for node in ast.walk(syntax):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if check_module(alias.name, node.lineno):
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split('.')[0]] = alias.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(f'{where}:{node.lineno}: relative import (a drop-in file is a top-level copy)')
                continue
            if not check_module(node.module, node.lineno):
                continue
            for alias in node.names:
                full = f'{node.module}.{alias.name}'
                if full in modules:
                    bound[alias.asname or alias.name] = full
                else:
                    check_name(node.module, alias.name, node.lineno)

    for node in ast.walk(syntax):
        if isinstance(node, ast.Attribute):
            chain = _attribute_chain(node)
            if chain and chain[0] in bound:
                _check_chain(bound[chain[0]], chain[1:], modules, check_name, node.lineno)
    return sorted(set(problems))


def _attribute_chain(node: ast.Attribute) -> Optional[List[str]]:
    """['a', 'b', 'c'] for the expression a.b.c (None when it does not start at a plain name)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id] + parts[::-1]


def _check_chain(module, attributes, modules, check_name, line):
    for attr in attributes:
        if f'{module}.{attr}' in modules:
            module = f'{module}.{attr}'
            continue
        check_name(module, attr, line)
        return
