"""Installing scorecast puts only `scorecast` (and its dist-info) into site-packages."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_has_only_the_scorecast_package(tmp_path: Path) -> None:
    """The wheel maps kernels/, server/, training/, proto/ under scorecast.*, nothing generic on top."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("scorecast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"scorecast", next(t for t in tops if t.endswith(".dist-info"))}
    for module in ("kernels/rfm.py", "server/servicer.py", "training/simulate/retail.py", "training/scores/rfm.py", "training/clv/bg_nbd.py", "training/lead/scorecard.py", "model_store.py", "proto/scorecast_pb2.py", "proto/scorecast.proto", "cli/commands.py", "training/datasets/CDNOW_sample.txt"):
        assert f"scorecast/{module}" in names
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "scorecast = scorecast.cli:main" in entry


LAYERS = {
    "scorecast.kernels": {"scorecast.kernels"},
    "scorecast.proto": {"scorecast.proto"},
    "scorecast": {"scorecast", "scorecast.kernels", "scorecast.proto"},
    "scorecast.training": {"scorecast.training", "scorecast", "scorecast.kernels", "scorecast.proto"},
    "scorecast.server": {"scorecast.server", "scorecast", "scorecast.kernels", "scorecast.proto"},
    "scorecast.cli": {"scorecast.cli", "scorecast.server", "scorecast.training", "scorecast", "scorecast.kernels", "scorecast.proto"},
}
"""Each layer and the layers it may import: kernels import nothing of ours; the bottom layer
(``scorecast/*.py``) only kernels and the contract; training and the server build on those and
never on each other; only the entry points (``scorecast/cli/``) import the server and training."""


def _layer(module: str) -> str:
    """The layer a module belongs to: the longest ``LAYERS`` key it sits under."""
    return max((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), key=len)


def _layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} ({_layer(module)}) imports {target} ({_layer(target)})"
        for module, targets in graph.items()
        for target in targets
        if _layer(target) not in LAYERS[_layer(module)]
    )


def test_layer_check_finds_a_planted_violation() -> None:
    """The checker flags training importing the server and the bottom layer importing training."""
    graph = {
        "scorecast.training.train": {"scorecast.server.pipeline", "scorecast.kernels.rfm"},
        "scorecast.metadata": {"scorecast.training.train"},
        "scorecast.cli.commands": {"scorecast.server.app"},
    }
    assert _layer_violations(graph) == [
        "scorecast.metadata (scorecast) imports scorecast.training.train (scorecast.training)",
        "scorecast.training.train (scorecast.training) imports scorecast.server.pipeline (scorecast.server)",
    ]


def test_layers_import_only_what_they_may() -> None:
    """Every import of ours, inside functions too, stays within the layers its module may use."""
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert not _layer_violations(graph), "\n".join(_layer_violations(graph))


def test_every_package_maps_its_modules() -> None:
    """Each package's ``__init__`` docstring names every module and subpackage in it, so a
    newcomer finds a module's job from its package (generated stubs aside)."""
    unnamed = []
    for folder in ("kernels", "server", "training", "scorecast"):
        for init in (ROOT / folder).rglob("__init__.py"):
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            children = [p.stem for p in init.parent.glob("*.py") if p.stem not in ("__init__", "__main__")]
            children += [p.parent.name for p in init.parent.glob("*/__init__.py")]
            unnamed += [f"{init.relative_to(ROOT)}: {name}" for name in sorted(children) if f"``{name}``" not in doc and f"``scorecast.{name}``" not in doc]
    assert not unnamed, "modules missing from their package's docstring:\n" + "\n".join(unnamed)


SUPPORT = "tests.support"
"""The one part of the tests that benchmarks may import: the generators both share."""


def _imported_names(path: Path, package: str) -> set[str]:
    """What ``path`` imports, functions included: ``a.b`` for ``import a.b``, ``a.b.c`` for
    ``from a.b import c``; relative imports resolved against ``package``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def _support_violations(imports: dict[str, set[str]]) -> list[str]:
    """Imports of a test module (anything under ``tests`` but ``tests.support``)."""
    return sorted(
        f"{who} imports {name}"
        for who, names in imports.items()
        for name in names
        if name.split(".")[0] == "tests" and name != SUPPORT and not name.startswith(SUPPORT + ".")
    )


def test_support_check_finds_a_planted_test_import() -> None:
    """A benchmark importing a test module's generator is flagged; the support package is not."""
    imports = {
        "benchmarks/fuzz.py": {"tests.server.test_fuzz.generate_cases", "tests.support.fakes.write_model", "scorecast.process"},
        "tests/support/fakes.py": {"tests.server.conftest.AS_OF_US"},
    }
    assert _support_violations(imports) == [
        "benchmarks/fuzz.py imports tests.server.test_fuzz.generate_cases",
        "tests/support/fakes.py imports tests.server.conftest.AS_OF_US",
    ]


def test_benchmarks_import_only_the_test_support() -> None:
    """Benchmarks share generators with the tests through ``tests/support/`` and import no test
    module; ``tests/support/`` imports no test module either (so a benchmark never runs one)."""
    imports = {str(path.relative_to(ROOT)): _imported_names(path, "benchmarks") for path in (ROOT / "benchmarks").glob("*.py")}
    imports |= {str(path.relative_to(ROOT)): _imported_names(path, SUPPORT) for path in (ROOT / "tests" / "support").glob("*.py")}
    assert any(SUPPORT in name for names in imports.values() for name in names)  # the walk sees them
    assert not _support_violations(imports), "\n".join(_support_violations(imports))


FOLDERS = {"kernels": "scorecast.kernels", "server": "scorecast.server", "training": "scorecast.training", "proto": "scorecast.proto", "scorecast": "scorecast"}
"""Our source folders and the package each installs as (pyproject's package-dir)."""


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that ``name`` imports when it runs (functions included), resolved to modules.

    Imports under ``if TYPE_CHECKING:`` never run, so they are left out: annotations may refer back.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import name` names a submodule when one exists, else something of pkg itself
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a non-module attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycles_finds_a_cycle() -> None:
    """The checker itself sees a three-module cycle and ignores a chain."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    """No two of our modules import each other, directly or around a loop, even inside functions."""
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "scorecast.server.app" in graph["scorecast.server.processes"]  # the walk resolves relative imports
    assert "scorecast.training.simulate.retail" not in graph["scorecast.training.simulate.web"]  # TYPE_CHECKING only
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
