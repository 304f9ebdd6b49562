"""The runtime stands alone: no module of the kiosk package imports the trainer (`training`), so a
kiosk install needs neither it nor its dependencies. And imports point one way: no module of
`kiosk` or `training` imports, however indirectly, a module that imports it back."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import importlib, pkgutil, sys
import kiosk
names = sorted(m.name for m in pkgutil.walk_packages(kiosk.__path__, "kiosk.") if not m.name.endswith("__main__"))
for name in names:
    importlib.import_module(name)
print("modules", len(names))
print("training", *sorted(m for m in sys.modules if m == "training" or m.startswith("training.")))
"""


def test_no_kiosk_module_imports_the_training_package():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"QT_QPA_PLATFORM": "offscreen", **os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    said = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.startswith(("modules",
                                                                                                       "training"))}
    assert int(said["modules"][0]) > 40  # every module was imported, the window's included
    assert said["training"] == [], f"kiosk imports {said['training']}"


def test_no_kiosk_source_file_names_the_training_package():
    # Imports inside functions count too: they run later, when a kiosk install has no trainer.
    found = []
    for path in sorted((ROOT / "kiosk").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                      if n == "training" or n.startswith("training.")]
    assert found == []


def module_names(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package by its own name)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that `name` imports anywhere in its source, inside functions too (they run
    later, and an import inside a function is how a cycle hides)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]  # a name may be a module
        else:
            continue
        imported |= {target for target in targets if target in known and target != name}
    return imported


def import_cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Each group of modules that import one another, directly or through others (Tarjan's strongly
    connected components, iteratively), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
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
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    yield sorted(group)


def test_import_cycles_are_found(tmp_path):
    # The check itself: a cycle, also through an import inside a function and a relative import, is
    # reported; a chain of imports is not.
    assert list(import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()})) == [["a", "b", "c"]]
    (tmp_path / "kiosk").mkdir()
    (tmp_path / "kiosk" / "__init__.py").write_text("")
    (tmp_path / "kiosk" / "x.py").write_text("import os\n\n\ndef later():\n    from . import y\n")
    (tmp_path / "kiosk" / "y.py").write_text("from kiosk.x import later\n")
    (tmp_path / "kiosk" / "z.py").write_text("from kiosk import y\n")
    known = module_names(tmp_path, ("kiosk",))
    graph = {name: imported_modules(name, path, known) for name, path in known.items()}
    assert graph == {"kiosk": set(), "kiosk.x": {"kiosk", "kiosk.y"}, "kiosk.y": {"kiosk.x"}, "kiosk.z": {"kiosk", "kiosk.y"}}
    assert list(import_cycles(graph)) == [["kiosk.x", "kiosk.y"]]


def test_no_import_cycle_in_kiosk_or_training():
    known = module_names(ROOT, ("kiosk", "training"))
    graph = {name: imported_modules(name, path, known) for name, path in known.items()}
    assert len(graph) > 80  # both packages were read
    cycles = ["{" + ", ".join(group) + "}: " + "; ".join(f"{name} imports {', '.join(sorted(graph[name] & set(group)))}"
                                                         for name in group)
              for group in import_cycles(graph)]
    assert cycles == [], "modules that import one another: " + " | ".join(cycles)
