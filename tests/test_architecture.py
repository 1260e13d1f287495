"""The house: the import graph of ``seegaan/`` built from the source -- no cycles, no arrow back up a layer,
deferred imports only for heavy dependencies (each with its reason), and a small top level."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seegaan"

#: lowest first: a module may import only from its own unit or from a unit of a lower layer
LAYERS = [
    {"seegaan._version", "seegaan._internal"},
    {"seegaan.formats", "seegaan.stats", "seegaan.phantom", "seegaan.demo"},
    {"seegaan.data"},
    {"seegaan.model", "seegaan.interpolation", "seegaan.viz"},
    {"seegaan.decoder"},
    {"seegaan.decoding", "seegaan.options"},
    {"seegaan.sequences"},
    {"seegaan.pixeltest", "seegaan.explain", "seegaan.calibration"},
    {"seegaan.cli", "seegaan.testing"},
]

#: what may be imported inside a function, and why (imports that cost seconds or are optional extras)
HEAVY = {
    "torch": "torch: seconds to import, and the statistics need none of it",
    "numba": "numba: its JIT start-up",
    "matplotlib": "matplotlib: only for figures",
    "captum": "captum: an optional extra",
    "distributed": "distributed: an optional extra",
    "dask": "dask: an optional extra",
    "imageio_ffmpeg": "imageio-ffmpeg: an optional extra",
    "pyarrow": "pyarrow: an optional extra",
    "statsmodels": "statsmodels: 1 s to import, only for p-value corrections",
    "fcntl": "fcntl: POSIX only",
    "ctypes": "ctypes: glibc's malloc, only on request",
    "pydicom.pixels": "pydicom.pixels: its decoder plugins, only for compressed DICOM",
    "threadpoolctl": "threadpoolctl: optional where it is used",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _targets(module: str, node: ast.AST) -> list[str]:
    """The modules an import statement loads (``from pkg import sub`` is the submodule, not ``pkg``)."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")
            if not MODULES[module].name == "__init__.py":
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            name = ".".join(base + ([node.module] if node.module else []))
        else:
            name = node.module or ""
        subs = [f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in MODULES]
        return subs if len(subs) == len(node.names) else [name, *subs]
    return [a.name for a in node.names]


def _imports():
    """``(module, target, deferred, node, source lines)`` of every import statement in ``seegaan/``."""
    for module, path in MODULES.items():
        source = path.read_text()
        tree = ast.parse(source)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            scope, deferred = parents.get(node), False
            while scope is not None:
                if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    deferred = True
                    break
                if isinstance(scope, ast.If) and "TYPE_CHECKING" in ast.unparse(scope.test):
                    break  # annotations only
                scope = parents.get(scope)
            else:
                scope = None
            if isinstance(scope, ast.If):
                continue
            for target in _targets(module, node):
                yield module, target, deferred, node, lines


def _graph() -> dict[str, set[str]]:
    graph = defaultdict(set)
    for module, target, _, _, _ in _imports():
        if target in MODULES and target != module:
            graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    return module if len(parts) == 1 else ".".join(parts[:2])


def _layer(unit: str) -> int:
    for k, units in enumerate(LAYERS):
        if unit in units:
            return k
    raise AssertionError(f"{unit} is in no layer of tests/test_architecture.py: add it where it belongs")


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_arrow_back_up_a_layer():
    up = sorted(
        {
            (m, t)
            for m, t, _, _, _ in _imports()
            if t in MODULES
            and m != "seegaan"
            and _unit(t) != _unit(m)
            and t != "seegaan"
            and _layer(_unit(t)) > _layer(_unit(m))
        }
    )
    assert not up, f"imports from a higher layer: {up}"


def test_no_module_imports_its_own_package_or_the_root():
    """``from seegaan.interpolation import x`` inside seegaan/interpolation/ goes through the package's own
    ``__init__``; ``import seegaan`` inside the package goes through the root."""
    bad = []
    for module, target, _, _, _ in _imports():
        parent = module.rsplit(".", 1)[0]
        if target == "seegaan" and module != "seegaan":
            bad.append((module, target))
        elif target == parent and MODULES.get(parent, Path()).name == "__init__.py" and module != parent:
            bad.append((module, target))
    assert not bad, f"imports of the module's own package: {bad}"


def _heavy_reason(target: str) -> str | None:
    for root, reason in HEAVY.items():
        if target == root or target.startswith(root + "."):
            return reason
    return None


def _pulls_in_heavy(module: str, seen: frozenset = frozenset()) -> bool:
    """Whether importing ``module`` (a seegaan module) imports a heavy dependency at module level."""
    if module in seen:
        return False
    for m, target, deferred, _, _ in _imports():
        if m != module or deferred:
            continue
        if _heavy_reason(target) or (target in MODULES and _pulls_in_heavy(target, seen | {module})):
            return True
    return False


def test_deferred_imports_only_for_heavy_dependencies_each_with_a_reason():
    bad = []
    for module, target, deferred, node, lines in _imports():
        if not deferred:
            continue
        heavy = _heavy_reason(target) or (target in MODULES and _pulls_in_heavy(target))
        here = " ".join(lines[node.lineno - 1 : node.end_lineno])
        above = lines[node.lineno - 2] if node.lineno > 1 else ""
        has_reason = "# deferred:" in here or above.strip().startswith("# deferred:")
        if not heavy or not has_reason:
            bad.append(
                f"{module}:{node.lineno} {ast.unparse(node)}"
                + ("" if heavy else " (light: import it at the top)")
                + ("" if has_reason else " (no '# deferred: <reason>' comment)")
            )
    assert not bad, "deferred imports:\n" + "\n".join(bad)


def test_a_small_top_level():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 15, modules
    private = [p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name.startswith("_") and p.name != "__pycache__"]
    assert private == ["_internal"], private


def test_every_unit_is_in_a_layer():
    for module in MODULES:
        if module != "seegaan":
            _layer(_unit(module))


def test_import_seegaan_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, seegaan; heavy = [m for m in ('torch', 'numba', 'xarray', 'matplotlib', 'scipy', "
        "'pandas') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


@pytest.mark.parametrize(
    "name", ["local", "predict", "cnn", "attribution", "plotting", "animate", "report", "accessor", "cohort"]
)
def test_modules_of_the_earlier_layout_still_resolve(name):
    import importlib

    import seegaan

    module = getattr(seegaan, name)
    assert module.__name__.startswith("seegaan.") and module is importlib.import_module(module.__name__)


def test_public_names_resolve():
    import seegaan

    for name in seegaan.__all__:
        assert getattr(seegaan, name) is not None, name
    assert callable(seegaan.explain.explain) and callable(seegaan.predict.predict)
    assert callable(seegaan.animate.animate) and callable(seegaan.local.local_sequence)


def test_the_reason_comments_name_a_real_reason():
    pattern = re.compile(r"# deferred: (\S.{3,})")
    for path in MODULES.values():
        for line in path.read_text().splitlines():
            if "# deferred:" in line:
                assert pattern.search(line), f"{path}: {line.strip()}"
