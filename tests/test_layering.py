"""The package's shape: every import points down the layers, no import cycle, no module over 400 lines.

Imports are read with ``ast`` from every module under ``tracesafe/``, including imports inside functions
(a lazy import is still a dependency: it only moves the failure to run time).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "tracesafe"

# Tiers, lowest first: a module may import its own package (tracesafe.X.*) and any lower tier, nothing else.
# Issue 17's picture, with its layer in brackets; where the code's design orders packages within one of its
# layers, they are separate tiers here, so that two packages of one layer cannot import each other both ways.
TIERS: list[tuple[str, ...]] = [
    ("_util",),  # [0] shared helpers; imports nothing else from tracesafe
    ("records", "store"),  # [0] records and their files, built on _util (ids, atomic writes)
    ("formats", "suites", "engines", "cards"),  # [1]
    ("split", "tinymodel"),  # [1] split applies the formats; the tiny model trains on a suite
    # The root package (tracesafe/__init__.py, the public facade) re-exports records and split only, so it sits
    # here: report reads __version__ from it, and a re-export from a higher layer added to it fails the test
    # instead of hiding an upward import.
    ("",),
    ("generate", "judges", "importers", "realign"),  # [2] the stages
    ("rewards",),  # [2] scores traces with the refusal judge's matcher as an option (judges.refusal)
    ("analysis",),  # [3] tables from traces and verdicts
    ("report",),  # [3] the report renders analysis' tables
    ("compare", "export"),  # [3] read reports' tables and analysis' loaders
    ("runconfig",),  # [4] the run config's typed sections (checked against the stages' own configs)
    ("runner",),  # [4] chains the stages from a TOML file
    ("cli",),  # [5] the commands
    ("__main__",),  # [5] `python -m tracesafe` runs the CLI
]
TIER = {name: i for i, names in enumerate(TIERS) for name in names}

MAX_LINES = 400


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return mods


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, int]]:
    """(imported tracesafe module, line) for every import statement in module ``name``, at any depth."""
    path, is_pkg = MODULES[name]
    package = name if is_pkg else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub; `from mod import name` imports mod.
            found += [(f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module, node.lineno)
                      for a in node.names]  # fmt: skip
    out = []
    for target, line in found:
        while target and target not in MODULES:  # `import tracesafe.x.y` of a name: its module
            target = target.rpartition(".")[0]
        if target.startswith("tracesafe") and target != name:
            out.append((target, line))
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _where(module: str, line: int) -> str:
    return f"{MODULES[module][0].relative_to(PKG.parent)}:{line}"


def test_every_module_is_in_a_tier():
    assert sorted({_package(m) for m in MODULES} - set(TIER)) == [], "add the new package to TIERS"


def test_imports_point_down_the_tiers():
    bad = []
    for module, imports in GRAPH.items():
        for target, line in sorted(set(imports)):
            a, b = _package(module), _package(target)
            if a == b or TIER[b] < TIER[a]:
                continue
            how = "up" if TIER[b] > TIER[a] else "sideways"
            bad.append(f"{_where(module, line)}: {module} imports {target} ({how}: {b or 'tracesafe'} is not "
                       f"below {a or 'tracesafe'})")  # fmt: skip
    assert bad == [], "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as one cycle through them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    comps = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(set(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_a_cycle(graph, comp) for comp in comps]


def _a_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """One cycle inside a strongly connected component, as the path of modules that closes it."""
    start = min(comp)
    path, on_path = [start], {start}
    while True:
        nxt = min(w for w in graph[path[-1]] if w in comp)
        if nxt in on_path:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        on_path.add(nxt)


def test_no_import_cycle():
    graph = {m: {t for t, _ in imports} for m, imports in GRAPH.items()}
    cycles = _cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_over_400_lines():
    sizes = {str(f.relative_to(PKG)): len(f.read_text(encoding="utf-8").splitlines()) for f, _ in MODULES.values()}
    long = {f: n for f, n in sizes.items() if n > MAX_LINES}
    assert long == {}, f"split these along their own seams (max {MAX_LINES} lines): {long}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("def f():\n    from ..cli import app\n", ["tracesafe.cli"]),  # inside a function: still an import
        ("import tracesafe.runner\n", ["tracesafe.runner"]),
        ("from .. import report\n", ["tracesafe.report"]),
        ("from ..report.build import build_report\n", ["tracesafe.report.build"]),
    ],
)
def test_the_import_reader_sees_every_form(tmp_path, monkeypatch, source, expected):
    f = tmp_path / "probe.py"
    f.write_text(source)
    monkeypatch.setitem(MODULES, "tracesafe.judges.probe", (f, False))
    assert [t for t, _ in _imports("tracesafe.judges.probe")] == expected
