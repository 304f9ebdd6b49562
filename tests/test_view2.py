"""`python -m training view2` on a made-up LFW: ten real (tiny) trainings, each with its pre-training,
the report, and the reuse of finished folds that lets a long recipe be spread over several sittings."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from tiny_lfw import tiny_lfw_and_crops

from training.chain import own_seconds
from training.experiment import Pretraining
from training.recipe import Recipe
from training.view2 import FOLD_RECORDS, _read_record, _write_report, door_figures, door_in_words, view2

pytestmark = pytest.mark.slow


def test_view2_pretrains_and_trains_every_fold_and_reuses_finished_ones(tmp_path):
    lfw, prepared = tiny_lfw_and_crops()
    recipe = Recipe(loss="triplet", augment=False, epochs=1, steps_per_epoch=1, identities_per_batch=4,
                    images_per_identity=2, input_size=32, embedding_size=8, widths=(8, 16, 16, 16))
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    path = view2(recipe, lfw, prepared, runs, reports, command="python -m training view2 (tiny)",
                 pretraining=Pretraining(epochs=1), log=lambda line: None)

    report = json.loads((reports / "view2.json").read_text())
    assert [row["fold"] for row in report["folds"]] == list(range(1, 11))
    for fold, row in enumerate(report["folds"]):
        folder = runs / f"fold{fold}"
        summary = json.loads((folder / "summary.json").read_text())
        pretrain = json.loads((folder / "pretrain" / "summary.json").read_text())
        assert summary["split"].startswith(f"View 2 fold {fold}:") and pretrain["split"] == summary["split"]
        assert pretrain["recipe"]["loss"] == "cosface"
        assert summary["recipe"]["init"] == str(folder / "pretrain" / "backbone.weights.h5")
        assert row["seconds"] == round(own_seconds(folder))  # both phases
    text = path.read_text()
    assert "1 pre-training epochs, then 1 epochs x 1 steps at 32 px" in text
    assert "not the shipped model's recipe" in text

    # Run again: every fold is reused, nothing retrains; also a fold recorded before a recipe field existed.
    older = json.loads((runs / "fold3" / "summary.json").read_text())
    del older["recipe"]["sunglasses_prob"]
    (runs / "fold3" / "summary.json").write_text(json.dumps(older))
    stamps = {fold: (runs / f"fold{fold}" / "summary.json").stat().st_mtime_ns for fold in range(10)}
    view2(recipe, lfw, prepared, runs, reports, command="python -m training view2 (tiny)",
          pretraining=Pretraining(epochs=1), log=lambda line: None)
    assert stamps == {fold: (runs / f"fold{fold}" / "summary.json").stat().st_mtime_ns for fold in range(10)}

    # A new scoring: every fold's finished network is scored with it, not trained again.
    trained = {fold: json.loads((runs / f"fold{fold}" / "summary.json").read_text()) for fold in range(10)}
    logged: list[str] = []
    view2(replace(recipe, scoring="joint-bayesian"), lfw, prepared, runs, reports,
          command="python -m training view2 (tiny)", pretraining=Pretraining(epochs=1), log=logged.append)
    assert sum("scoring it again with joint-bayesian" in line for line in logged) == 10
    for fold in range(10):
        summary = json.loads((runs / f"fold{fold}" / "summary.json").read_text())
        assert summary["recipe"]["scoring"] == summary["scoring"]["kind"] == "joint-bayesian"
        assert (runs / f"fold{fold}" / "scoring.npz").exists()
        assert summary["history"] == trained[fold]["history"] and summary["split"] == trained[fold]["split"]
        assert summary["train_seconds"] == trained[fold]["train_seconds"]


def test_view2_keeps_a_record_of_each_fold_that_outlives_its_run_folder(tmp_path):
    """Run folders stay on the machine that trained them; the committed fold records carry the
    figures to a later sitting, which trains only what neither holds, and the report says when it
    covers fewer than ten folds."""
    lfw, prepared = tiny_lfw_and_crops()
    recipe = Recipe(loss="triplet", augment=False, epochs=1, steps_per_epoch=1, identities_per_batch=4,
                    images_per_identity=2, input_size=32, embedding_size=8, widths=(8, 16, 16, 16),
                    scoring="cosine+texture")
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    view2(recipe, lfw, prepared, runs, reports, command="python -m training view2 (tiny)", log=lambda line: None)
    first = json.loads((reports / "view2.json").read_text())
    assert first["folds_finished"] == 10 and not first["partial"]
    records = [json.loads((reports / FOLD_RECORDS / f"fold{fold}.json").read_text()) for fold in range(10)]
    for fold, record in enumerate(records):
        summary = json.loads((runs / f"fold{fold}" / "summary.json").read_text())
        assert record["scores"] == summary["scores"] and record["row"] == first["folds"][fold]
        assert record["row"]["accuracy_door"] == summary["test"]["accuracy_at_threshold"]
        assert record["train_command"].startswith("python -m training train --loss triplet --no-augment")
    # The gap the model card's threshold costs, fold by fold (what issue 3's "within 2 points" asks).
    gaps = [row["accuracy_fold_cv"] - row["accuracy_door"] for row in first["folds"]]
    assert first["door_folds"] == 10 and first["mean_door_gap"] == pytest.approx(np.mean(gaps))
    assert (first["min_door_gap"], first["max_door_gap"]) == (pytest.approx(min(gaps)), pytest.approx(max(gaps)))
    assert "At the door's threshold (as the model card sets it" in (reports / "view2.md").read_text()
    # A record written before the door's figures were kept counts out of them, not as zero.
    older_rows = [dict(row) for row in first["folds"]]
    del older_rows[0]["accuracy_door"]
    assert door_figures(older_rows)["door_folds"] == 9
    assert door_figures(older_rows)["mean_door_gap"] == pytest.approx(np.mean(gaps[1:]))
    assert door_figures([older_rows[0]]) == {} and door_in_words({}) == ""

    # A later machine: folds 2 and 7 were never copied there. Their records stand in; nothing trains.
    for fold in (2, 7):
        shutil.rmtree(runs / f"fold{fold}")
    report_stamps = [(reports / name).stat().st_mtime_ns for name in ("view2.json", "view2.md")]
    logged: list[str] = []
    view2(recipe, lfw, prepared, runs, reports, command="python -m training view2 (tiny)", log=logged.append)
    assert [line for line in logged if "taken from" in line] == [
        f"fold {fold + 1}: taken from {reports / FOLD_RECORDS / f'fold{fold}.json'} (no finished run in {runs / f'fold{fold}'})"
        for fold in (2, 7)]
    assert not (runs / "fold2").exists() and not (runs / "fold7").exists()
    again = json.loads((reports / "view2.json").read_text())
    assert again == first  # the same figures, and its time still that of the first run's last fold
    assert [(reports / name).stat().st_mtime_ns for name in ("view2.json", "view2.md")] == report_stamps

    # A record of another recipe, or of texture scores from another descriptor, is not reused.
    path = reports / FOLD_RECORDS / "fold2.json"
    assert _read_record(path, recipe) == records[2]
    assert _read_record(path, replace(recipe, epochs=2)) is None
    path.write_text(json.dumps({**records[2], "texture_descriptor": "an older descriptor"}))
    assert _read_record(path, recipe) is None

    # Three folds finished: the report says it is partial and averages those three only.
    _write_report(records[:3], recipe, None, reports, "python -m training view2 (tiny)")
    partial = json.loads((reports / "view2.json").read_text())
    assert partial["partial"] and partial["folds_finished"] == 3 and len(partial["folds"]) == 3
    assert partial["mean_accuracy"] == pytest.approx(sum(r["row"]["accuracy"] for r in records[:3]) / 3)
    text = (reports / "view2.md").read_text()
    assert "**PARTIAL: 3 of 10 folds finished.**" in text and "(standard deviation over the 3 finished folds)" in text
