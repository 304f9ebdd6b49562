"""`python -m training view2` on a made-up LFW: ten real (tiny) trainings, each with its pre-training,
the report, and the reuse of finished folds that lets a long recipe be spread over several sittings."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tiny_lfw import tiny_lfw_and_crops

from training.chain import own_seconds
from training.experiment import Pretraining
from training.recipe import Recipe
from training.view2 import view2

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
