"""What it took to make a run: the runs it starts from or learns from, each with its own training.

A distilled run needs its teachers (and the run whose pre-trained backbone it starts from) to
exist first, so its reproduction and its training time include theirs.
"""
from __future__ import annotations

import json
from pathlib import Path

from training.run_folder import read_summary


def chain(run_dir: Path) -> list[Path]:
    """The run folders `run_dir` needs, in the order to make them, ending with `run_dir` itself:
    the run whose pre-training its `init` names and its distillation teachers, with their own
    (each once)."""
    order: list[Path] = []
    seen: set[Path] = set()

    def visit(folder: Path) -> None:
        if folder.resolve() in seen:
            return
        seen.add(folder.resolve())
        recipe = read_summary(folder)["recipe"]
        needs = [Path(teacher) for teacher in recipe.get("distill_from", [])]
        init_folder = Path(recipe["init"]).parent if recipe.get("init") else None
        # Weights from <run>/pretrain/ were made by <run>'s own command (its --pretrain-epochs).
        if init_folder and init_folder.name == "pretrain" and init_folder.parent.resolve() != folder.resolve():
            needs.insert(0, init_folder.parent)
        for needed in needs:
            visit(needed)
        order.append(folder)

    visit(Path(run_dir))
    return order


def chain_seconds(run_dir: Path) -> float:
    """Training seconds of every run in `chain(run_dir)`, pre-training included."""
    return sum(own_seconds(folder) for folder in chain(run_dir))


def own_seconds(run_dir: Path) -> float:
    """A run's training seconds with those of its own pre-training (`<run>/pretrain/`) and of
    fitting its scoring back end (the texture fusion's fit is part of making the model)."""
    summary = read_summary(run_dir)
    seconds = summary["train_seconds"] + summary.get("scoring", {}).get("fit_seconds", 0.0)
    pretrain = Path(run_dir) / "pretrain" / "summary.json"
    return seconds + (json.loads(pretrain.read_text())["train_seconds"] if pretrain.exists() else 0.0)
