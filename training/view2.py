"""`python -m training view2`: LFW View 2, the ten folds of pairs.txt, each scored by a model
trained without that fold's people; reports the mean and standard deviation over folds.

The protocol's rule is that a test fold never chooses its own threshold. Here each fold's
threshold is the accuracy-maximising one on the validation pairs of that fold's run: pairs of
people held out from its training, drawn from the other nine folds' people. (Pairs of the
nine training folds would be scored by a model that saw those people: optimistic scores and
a threshold set too loose.) The accuracy with thresholds cross-validated inside each test
fold, which the first version reported, is kept beside it for comparison."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from kiosk.atomic import atomic_open, atomic_write_json
from kiosk.modelcard import card_path_for, default_model_path
from kiosk.texture import DESCRIPTOR
from training.chain import own_seconds
from training.experiment import Pretraining, phase_two, rescore, run_phases
from training.export import training_command
from training.metrics import accuracy_at, best_threshold
from training.plots import markdown_table
from training.recipe import DEFAULT_TARGET_FAR, Recipe
from training.run_folder import finished_summary, read_summary, scoring_is_current

DOOR_RULE = (f"as the model card sets it: the lowest score with a false-accept rate of at most "
             f"{DEFAULT_TARGET_FAR:g} over every different-person pair of the people held out from training")
THRESHOLD_RULE = ("the accuracy-maximising score on the run's validation pairs (people held out from its "
                  "training, from the other nine folds), applied unchanged to the test fold")


def view2(recipe: Recipe, lfw, prepared, runs_dir: Path, out_dir: Path, command: str,
          pretraining: Pretraining | None = None, log=print) -> Path:
    """Train (or reuse) one run per fold, then write view2.md/json. Finished folds of the same
    recipe are reused, so a long recipe can be spread over several sittings: rerun the command.
    A finished fold whose recipe differs only in its scoring, or whose scoring file was fitted on an
    older descriptor, is scored again, not retrained.

    Each finished fold also leaves a small record in `out_dir/folds/` (its figures and pair scores),
    and the report is rewritten after every fold, marked partial until all ten are done. The
    records are meant to be committed: run folders (weights, gigabytes of a sitting's work) stay on
    the machine that trained them, and a fold whose folder is gone is taken from its record."""
    records = []
    for fold in range(10):
        record_path = out_dir / FOLD_RECORDS / f"fold{fold}.json"
        before = json.loads(record_path.read_text()) if record_path.exists() else None
        records.append(_finished_fold(recipe, pretraining, lfw, prepared, runs_dir / f"fold{fold}", record_path,
                                      fold, log))
        # The report after every fold that changed (an interrupted run leaves a partial one), and at the end.
        if fold == 9 or _as_json(records[-1]) != before:
            path = _write_report(records, recipe, pretraining, out_dir, command)
        log(f"fold {fold + 1}: accuracy {records[-1]['row']['accuracy']:.4f} at the held-out threshold "
            f"{records[-1]['row']['threshold']:.3f}")
    return path


FOLD_RECORDS = "folds"  # under the report folder


def _finished_fold(recipe: Recipe, pretraining: Pretraining | None, lfw, prepared, folder: Path, record_path: Path,
                   fold: int, log) -> dict:
    """The fold's record: from its run folder (trained now, reused or scored again) or, when the
    folder holds no run of this recipe, from an earlier record of it."""
    wanted = phase_two(recipe, folder) if pretraining else recipe
    summary = _rescored(folder, wanted, lfw, prepared, fold, log) or finished_summary(folder, wanted)
    if summary is None:
        record = _read_record(record_path, wanted)
        if record is not None:
            log(f"fold {fold + 1}: taken from {record_path} (no finished run in {folder})")
            return record
        summary = run_phases(recipe, lfw, prepared, folder, view=2, fold=fold, pretraining=pretraining, log=log)
    threshold, accuracy = held_out_threshold_accuracy(summary["scores"])
    test = summary["test"]
    record = {"recipe": summary["recipe"], "texture_descriptor": DESCRIPTOR,
              # The recipe as the View 1 `train` command the model card records: says whether this is the shipped one.
              "train_command": training_command(folder, summary),
              "row": {"fold": fold + 1, "accuracy": accuracy, "threshold": round(threshold, 4),
                      "accuracy_fold_cv": test["accuracy"], "accuracy_door": test["accuracy_at_threshold"],
                      "auc": test["auc"], "eer": test["eer"],
                      "tar_far1": test["tar_at_far_1e2"], "seconds": round(own_seconds(folder))},
              "scores": summary["scores"]}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record_path, record)
    return record


def _read_record(path: Path, wanted: Recipe) -> dict | None:
    """A fold record of `wanted`, or None (none there, another recipe, or texture scores of an older descriptor)."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if Recipe.from_json(record["recipe"]) != wanted:
        return None
    if wanted.scoring == "cosine+texture" and record["texture_descriptor"] != DESCRIPTOR:
        return None
    return record


def _write_report(records: list[dict], recipe: Recipe, pretraining: Pretraining | None, out_dir: Path,
                  command: str) -> Path:
    """view2.json and view2.md over the folds finished so far; partial (and saying so) before all ten."""
    rows = [record["row"] for record in records]
    done = len(rows)
    partial = done < 10
    accuracies = np.array([row["accuracy"] for row in rows])
    within_fold = np.array([row["accuracy_fold_cv"] for row in rows])
    door = door_figures(rows)
    result = {"command": command, "recipe": recipe.name, "folds_finished": done, "partial": partial,
              "mean_accuracy": float(accuracies.mean()), "std_accuracy": float(accuracies.std()),
              "threshold_rule": THRESHOLD_RULE,
              "mean_accuracy_fold_cv": float(within_fold.mean()), "std_accuracy_fold_cv": float(within_fold.std()),
              **door, "folds": rows}
    path = out_dir / "view2.md"
    if _same_report(out_dir / "view2.json", result) and path.exists():
        return path  # folds reused as they were: keep the time the report last changed
    result["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "view2.json", result)
    table = markdown_table(rows, [("fold", "fold"), ("accuracy", "accuracy"), ("threshold", "threshold"),
                                  ("accuracy_fold_cv", "accuracy, CV in fold"),
                                  ("accuracy_door", "accuracy at the door's threshold"), ("auc", "AUC"), ("eer", "EER"),
                                  ("tar_far1", "TAR @ FAR 1%"), ("seconds", "train s")])
    over = f"the {done} finished folds" if partial else "the ten folds"
    status = (f"**PARTIAL: {done} of 10 folds finished.** The mean below covers those only and is not the "
              f"View 2 figure; rerun the command to train the rest (finished folds are reused).\n\n"
              if partial else "")
    with atomic_open(path, "w", encoding="utf-8") as stream:
        stream.write(f"# LFW View 2 (10 folds of pairs.txt)\n\n{status}Recipe `{recipe.name}`: "
                     f"{schedule(recipe, pretraining)} per fold ({shipped_or_not(records[0]['train_command'])}). "
                     f"Each fold's model trained on the people of the other nine folds of people.txt. "
                     f"Threshold: {THRESHOLD_RULE}.\n\n"
                     f"**Mean accuracy {accuracies.mean() * 100:.2f}% ± {accuracies.std() * 100:.2f}** "
                     f"(standard deviation over {over}). With thresholds cross-validated inside each "
                     f"test fold instead (not the protocol's rule): {within_fold.mean() * 100:.2f}% ± "
                     f"{within_fold.std() * 100:.2f}.{door_in_words(door)}\n\n```\n{command}\n```\n\n{table}\n")
    return path


def door_figures(rows: list[dict]) -> dict:
    """Accuracy at the door's threshold (the model card's rule) and its gap under the in-fold
    cross-validated accuracy, over the folds that record it (older records do not)."""
    rows = [row for row in rows if row.get("accuracy_door") is not None]
    if not rows:
        return {}
    door = np.array([row["accuracy_door"] for row in rows])
    gaps = np.array([row["accuracy_fold_cv"] for row in rows]) - door
    return {"door_threshold_rule": DOOR_RULE, "door_folds": len(rows), "mean_accuracy_door": float(door.mean()),
            "std_accuracy_door": float(door.std()), "mean_door_gap": float(gaps.mean()),
            "min_door_gap": float(gaps.min()), "max_door_gap": float(gaps.max())}


def door_in_words(door: dict) -> str:
    """door_figures() as a sentence of the report ("" when no fold records them)."""
    if not door:
        return ""
    return (f" At the door's threshold ({door['door_threshold_rule']}; {door['door_folds']} folds): "
            f"{door['mean_accuracy_door'] * 100:.2f}% ± {door['std_accuracy_door'] * 100:.2f}, "
            f"{door['mean_door_gap'] * 100:.2f} points under the accuracy cross-validated in the fold "
            f"({door['min_door_gap'] * 100:.2f} to {door['max_door_gap'] * 100:.2f} fold by fold).")


def _same_report(path: Path, result: dict) -> bool:
    """Whether the view2.json at `path` holds `result` (its write time aside)."""
    if not path.exists():
        return False
    written = json.loads(path.read_text())
    written.pop("finished", None)
    return written == _as_json(result)


def _as_json(value):
    """`value` as it reads back from JSON (tuples as lists), to compare with what a file holds."""
    return json.loads(json.dumps(value))


def _rescored(folder: Path, wanted: Recipe, lfw, prepared, fold: int, log) -> dict | None:
    """The fold's finished network scored with `wanted`'s scoring, if it is `wanted` but for that
    scoring or for its scoring file's version."""
    if not (folder / "summary.json").exists():
        return None
    trained = Recipe.from_json(read_summary(folder)["recipe"])
    if replace(trained, scoring=wanted.scoring) != wanted:
        return None
    if trained.scoring == wanted.scoring and scoring_is_current(folder, trained):
        return None
    log(f"fold {fold + 1}: its network is finished; scoring it again with {wanted.scoring}")
    return rescore(folder, lfw, prepared, scoring=wanted.scoring, view=2, fold=fold)


def schedule(recipe: Recipe, pretraining: Pretraining | None) -> str:
    steps = f"{recipe.epochs} epochs x {recipe.steps_per_epoch} steps at {recipe.input_size} px"
    return f"{pretraining.epochs} pre-training epochs, then {steps}" if pretraining else steps


def shipped_or_not(train_command: str, card_path: Path | None = None) -> str:
    """Whether a fold's run used the shipped model's recipe (its `train` command, bar the folder,
    equals the one on the model card), said plainly: a shorter CPU schedule must say so."""
    card_path = card_path or card_path_for(default_model_path())
    if card_path.exists():
        shipped = json.loads(card_path.read_text()).get("training", {}).get("command", "")
        if _without_out(train_command) == _without_out(shipped):
            return "the shipped model's recipe"
    return ("not the shipped model's recipe, a shorter or different schedule: compare the command below with "
            "the model card's")


def _without_out(command: str) -> str:
    return command.split(" --out ")[0]


def held_out_threshold_accuracy(scores: dict) -> tuple[float, float]:
    """(threshold chosen on a run's validation pairs, test accuracy at that threshold)."""
    threshold = best_threshold(scores["validation"], scores["validation_same"])
    return float(threshold), float(accuracy_at(scores["test"], scores["same"], threshold))
