"""The runtime stands alone: no module of the kiosk package imports the trainer (`training`), so a
kiosk install needs neither it nor its dependencies."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
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
