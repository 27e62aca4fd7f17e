"""The architecture holds: lower layers never import higher ones, no import cycle, light imports."""

import ast
import pathlib
import subprocess
import sys
import time

import itk_suits

PACKAGE = pathlib.Path(itk_suits.__file__).parent

#: Layer of each top-level part of the package, lowest first; a module may import its own layer and lower ones.
LAYERS = {
    "_version": 0, "errors": 0, "checks": 0, "schedule": 0, "progress": 0,
    "core": 1,
    "features": 2,
    "interop": 3, "visualization": 3, "sample_data": 3,
    "registration": 4, "extract": 4,
    "training": 5,
    "evaluation": 6,
    # cohorts measure Dice and folding with evaluation's metrics, and the CLI runs them
    "cohort": 7,
    "demo": 8, "cli": 8, "__main__": 8,
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: pathlib.Path, top_level_only: bool) -> set:
    """Package modules imported by the module at ``path`` (absolute names)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("itk_suits"):
                submodules = {f"{name}.{alias.name}" for alias in node.names if _is_module(f"{name}.{alias.name}")}
                found.update(submodules if len(submodules) == len(node.names) else submodules | {name})
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("itk_suits"))
    found.discard(module)
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else -1


def test_every_part_of_the_package_has_a_layer():
    parts = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
             if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()}
    assert parts - {"models"} == set(LAYERS), sorted(parts ^ set(LAYERS))


def test_lower_layers_never_import_higher_ones_or_the_package_root():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if module == "itk_suits":
            continue
        for imported in _imports(path, top_level_only=False):
            if imported == "itk_suits":
                offenders.append(f"{module} imports the package root")
            elif _layer(imported) > _layer(module):
                offenders.append(f"{module} (layer {_layer(module)}) imports {imported} (layer {_layer(imported)})")
    assert not offenders, "\n".join(sorted(offenders))


def test_there_is_no_import_cycle_between_modules():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        graph[_module_name(path)] = {name for name in _imports(path, top_level_only=False) if name != "itk_suits"}
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", " -> ".join(trail + [node])
        state[node] = "open"
        for child in graph.get(node, ()):
            # a package imports its own submodules; the submodule importing back is the cycle
            if child.startswith(node + ".") and node in graph.get(child, ()):
                raise AssertionError(f"{child} imports its package {node}, which imports it")
            if not child.startswith(node + "."):
                visit(child, trail + [node])
        state[node] = "done"

    for module in graph:
        visit(module, [])


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_package_and_the_cli_loads_no_heavy_library():
    heavy = ("torch", "SimpleITK", "itk", "onnxruntime", "onnx", "matplotlib")
    result = _python("import sys, itk_suits, itk_suits.cli; "
                     f"print([m for m in {heavy!r} if m in sys.modules])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_help_answers_in_well_under_a_second():
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "itk_suits", "--help"], capture_output=True, text=True,
                                timeout=60)
        seconds.append(time.perf_counter() - start)
        assert result.returncode == 0 and "register" in result.stdout
    assert min(seconds) < 0.8, seconds


def test_registration_loads_neither_training_nor_evaluation_nor_onnx():
    result = _python("import sys, itk_suits; itk_suits.register; "
                     "print(sorted(m for m in sys.modules if m.startswith(('itk_suits.training', "
                     "'itk_suits.evaluation', 'itk_suits.features.onnx', 'onnxruntime'))))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
