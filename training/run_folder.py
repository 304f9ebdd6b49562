"""A finished run folder (`runs/NAME/`, written by `experiment.run`): its summary and its weights."""
from __future__ import annotations

import json
from pathlib import Path

import keras

from training.model import build_backbone
from training.recipe import Recipe


def read_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no summary.json (not a finished run folder)")
    return json.loads(path.read_text())


def finished_summary(run_dir: Path, recipe: Recipe) -> dict | None:
    """The summary of `run_dir` if it holds a finished run of `recipe` (to reuse instead of retraining).
    Read back as a Recipe: a run recorded before a recipe field existed has that field's default."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    return summary if Recipe.from_json(summary["recipe"]) == recipe else None


def load_backbone(run_dir: Path, recipe: Recipe) -> keras.Model:
    """The run's trained backbone (float32, whatever it trained in), built from its recipe."""
    backbone = build_backbone(recipe.input_size, recipe.embedding_size, recipe.widths)
    backbone.load_weights(Path(run_dir) / "backbone.weights.h5")
    return backbone
