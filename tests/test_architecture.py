"""The layering of docs/ARCHITECTURE.md, checked on the code's own import statements.

The import graph is read with ``ast`` from every module of the project (tests and
benchmarks left out): an arrow for each ``import``/``from ... import`` that names a
project module, wherever it stands (top of file or inside a function).
"""

import ast
import pathlib

from conftest import ROOT

SKIP = {'tests', 'benchmarks', '.venv', 'build', 'dist'}
FACADES = {'legacy', 'legacy_tf', 'model_zoo'}   # NVIDIA's and earlier public module names, kept as re-exports


def _modules():
    modules = {}
    for path in ROOT.rglob('*.py'):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in SKIP or any(part.startswith('.') for part in rel.parts):
            continue
        parts = list(rel.with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        modules['.'.join(parts)] = path
    return modules


def _graph():
    modules = _modules()

    def resolve(name):
        while name and name not in modules:
            name = name.rpartition('.')[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == '__init__.py' else name.rpartition('.')[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    anchor = package.split('.')[:len(package.split('.')) - (node.level - 1)]
                    base = '.'.join(anchor + ([base] if base else []))
                subs = [f'{base}.{alias.name}' for alias in node.names]
                wanted = subs if all(resolve(s) == s for s in subs) else [base] + subs
            else:
                continue
            targets.update(t for t in map(resolve, wanted) if t and t != name)
        graph[name] = targets
    return modules, graph


def _top_level(modules):
    return {name for name, path in modules.items() if '.' not in name and path.parent == ROOT
            and path.name != '__init__.py'}


def test_no_package_imports_a_top_level_module():
    modules, graph = _graph()
    top = _top_level(modules)
    wrong = {name: sorted(targets & top) for name, targets in graph.items() if name not in top and targets & top}
    assert wrong == {}


def test_scripts_import_no_other_script():
    modules, graph = _graph()
    top = _top_level(modules)
    wrong = {name: sorted(targets & (top - FACADES)) for name, targets in graph.items()
             if name in top and targets & (top - FACADES)}
    assert wrong == {}


def test_no_import_cycles():
    _, graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):   # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_checks_see_real_arrows():
    """The reader finds the arrows the layering rests on (so the tests above cannot pass on an empty graph)."""
    _, graph = _graph()
    assert 'stylegan_human.sampling' in graph['generate']
    assert 'stylegan_human.network_files.build' in graph['stylegan_human.network_files.load']
    assert 'training.networks_stylegan2' in graph['stylegan_human.network_files.build']
    assert 'stylegan_human.features.vgg16_nvidia' in graph['metrics.detector_files']


LIBRARY_PACKAGES = ('stylegan_human', 'pti', 'edit', 'inset', 'aligner')


def _is_command(function):
    """A click command (its parameters are typed by its options)."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if 'click' in ast.unparse(target) or ast.unparse(target).endswith('.command'):
            return True
    return False


def test_public_library_functions_are_annotated():
    unannotated = []
    for package in LIBRARY_PACKAGES:
        for path in sorted((ROOT / package).rglob('*.py')):
            for node in ast.parse(path.read_text()).body:
                if not isinstance(node, ast.FunctionDef) or node.name.startswith('_') or _is_command(node):
                    continue
                params = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                if any(p.annotation is None for p in params) or node.returns is None:
                    unannotated.append(f'{path.relative_to(ROOT)}:{node.lineno} {node.name}')
    assert unannotated == []


INTERNAL_EXCEPTIONS = {'UserError',      # click's one-line exit, the CLI layer's own
                       'RefusedGlobal',  # the unpickler's signal, always turned into NetworkFileError
                       '_Retry', '_Hop'}


def test_every_error_class_is_in_the_one_hierarchy():
    import importlib
    from dnnlib.errors import ToolkitError
    modules, _ = _graph()
    found = {}
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name not in INTERNAL_EXCEPTIONS and \
                    any(ast.unparse(base).split('.')[-1].endswith(('Error', 'Exception')) for base in node.bases):
                found[f'{name}.{node.name}'] = (name, node.name)
    assert len(found) > 20
    outside = [key for key, (module, cls) in found.items()
               if not issubclass(getattr(importlib.import_module(module), cls), ToolkitError)]
    assert outside == []
