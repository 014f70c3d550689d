"""The package layout: imports only go down the pipeline, no cycles, no module over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lower layers first; a module may import its own layer and the layers before it, never a later one.
LAYERS = [
    ("calogen.version", "calogen.paths", "calogen.showers", "calogen.memory"),
    ("calogen.detector",),
    ("calogen.io",),
    ("calogen.validation",),
    ("calogen.simulation",),
    ("calogen.gan",),
    ("calogen.sources",),
    ("calogen.compare",),
    ("calogen.plots",),
    ("calogen.app",),
    ("calogen.produce",),
    ("calogen.bench",),
    ("calogen.cli", "calogen.__main__"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "calogen").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _layer(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_every_library_module_has_a_layer_and_imports_only_downward() -> None:
    modules = _modules()
    upward = []
    for name, path in modules.items():
        if name == "calogen":  # the package front re-exports (lazily) from every layer
            continue
        rank = _layer(name)
        assert rank is not None, f"{name} belongs to no layer; add it to LAYERS"
        for target in _imports(path) & set(modules):
            target_rank = _layer(target)
            if target != "calogen" and target_rank is not None and target_rank > rank:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that go up the pipeline: " + ", ".join(sorted(upward))


def test_the_library_never_imports_the_app_framework_or_the_command_line() -> None:
    for name, path in _modules().items():
        if name.startswith(("calogen.cli", "calogen.__main__")):
            continue
        imported = _imports(path)
        assert not any(i == "streamlit" or i.startswith("streamlit.") for i in imported), name
        assert not any(i.startswith("calogen.cli") for i in imported), name


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: {t for t in _imports(path) & set(modules) if t != name} for name, path in modules.items()}

    def reaches(start: str, goal: str) -> bool:
        stack, seen = [start], set()
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    cycles = sorted({" <-> ".join(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not cycles, cycles


def test_no_python_file_over_500_lines() -> None:
    long = [f"{p.relative_to(ROOT)}: {n}" for p in [*ROOT.glob("calogen/**/*.py"), *ROOT.glob("pages/*.py"),
                                                    ROOT / "app.py"]
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500]
    assert not long, long
