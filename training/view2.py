"""`python -m training view2`: LFW View 2, the ten folds of pairs.txt, each scored by a model
trained without that fold's people; reports the mean and standard deviation over folds."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from kiosk.atomic import atomic_open, atomic_write_json
from training.experiment import run
from training.plots import markdown_table
from training.recipe import Recipe


def view2(recipe: Recipe, lfw, prepared, runs_dir: Path, out_dir: Path, command: str, log=print) -> Path:
    rows = []
    for fold in range(10):
        folder = runs_dir / f"fold{fold}"
        previous = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").exists() else None
        reusable = previous is not None and previous["recipe"] == recipe.as_json()
        summary = previous if reusable else run(recipe, lfw, prepared, folder, view=2, fold=fold, log=log)
        test = summary["test"]
        rows.append({"fold": fold + 1, "accuracy": test["accuracy"], "auc": test["auc"], "eer": test["eer"],
                     "tar_far1": test["tar_at_far_1e2"], "seconds": round(summary["train_seconds"])})
        log(f"fold {fold + 1}: accuracy {test['accuracy']:.4f}")
    accuracies = np.array([row["accuracy"] for row in rows])
    result = {"command": command, "recipe": recipe.name, "mean_accuracy": float(accuracies.mean()),
              "std_accuracy": float(accuracies.std()), "folds": rows,
              "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "view2.json", result)
    path = out_dir / "view2.md"
    table = markdown_table(rows, [("fold", "fold"), ("accuracy", "accuracy"), ("auc", "AUC"), ("eer", "EER"),
                                  ("tar_far1", "TAR @ FAR 1%"), ("seconds", "train s")])
    with atomic_open(path, "w", encoding="utf-8") as stream:
        stream.write(f"# LFW View 2 (10 folds of pairs.txt)\n\nRecipe `{recipe.name}`, {recipe.epochs} epochs x "
                     f"{recipe.steps_per_epoch} steps per fold (a short CPU schedule, not the shipped model's). "
                     f"Each fold's model trained on the people of the other nine folds of people.txt; accuracy "
                     f"within a fold uses thresholds cross-validated over that fold's 600 pairs.\n\n"
                     f"**Mean accuracy {accuracies.mean() * 100:.2f}% ± {accuracies.std() * 100:.2f}** "
                     f"(standard deviation over the ten folds).\n\n```\n{command}\n```\n\n{table}\n")
    return path
