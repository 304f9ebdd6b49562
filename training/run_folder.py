"""A finished run folder (`runs/NAME/`, written by `experiment.run`): its summary and its weights."""
from __future__ import annotations

import json
from pathlib import Path

import keras

from kiosk.atomic import atomic_path
from kiosk.scoring import FITTED, CosineScoring, Scoring, StaleScoringError
from training.model import recipe_backbone
from training.recipe import Recipe

SCORING_FILE = "scoring.npz"


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
    backbone = recipe_backbone(recipe)
    backbone.load_weights(Path(run_dir) / "backbone.weights.h5")
    return backbone


def save_scoring(path: Path, scoring: Scoring) -> None:
    """Write a fitted back end to `path` atomically, beside the weights or the exported model (cosine
    needs nothing: a stale file there goes, since it would mislead whoever reads the folder)."""
    path = Path(path)
    if scoring.kind == "cosine":
        path.unlink(missing_ok=True)
        return
    with atomic_path(path) as temporary:
        scoring.save(temporary)


def load_scoring(run_dir: Path, recipe: Recipe) -> Scoring:
    """The scoring the run's figures and threshold were computed with."""
    if recipe.scoring == "cosine":
        return CosineScoring()
    path = Path(run_dir) / SCORING_FILE
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: its recipe scores with {recipe.scoring} but {SCORING_FILE} is missing; "
                                f"`python -m training rescore {run_dir}` fits it again")
    return FITTED[recipe.scoring].load(path)


def scoring_is_current(run_dir: Path, recipe: Recipe) -> bool:
    """False when the run's scoring file was fitted on another version of its descriptor (the run's
    network is still good: `rescore` fits the file again)."""
    try:
        load_scoring(run_dir, recipe)
    except StaleScoringError:
        return False
    return True
