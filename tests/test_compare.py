"""The study's comparison report (training/compare.py): its two tables, this network's cells and
dlib's backbone's, live in one compare.md/json, and writing either keeps the other."""
from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np

from training.compare import DLIB_AS_IS, dlib_recipes, write_comparison, write_dlib_comparison
from training.metrics import roc_curve, verification_report
from training.recipe import Recipe


def summary_of(recipe: Recipe, separation: float, seed: int = 0) -> dict:
    """A run's summary as experiment.run writes it, from scores of 1,000 made-up pairs (same-person
    pairs `separation` higher on average)."""
    rng = np.random.default_rng(seed)
    same = np.arange(1000) < 500
    scores = rng.normal(size=1000) + separation * same
    test = verification_report(scores, same, folds=np.arange(1000) % 10, threshold=1.0).to_dict()
    far, tar, _ = roc_curve(scores, same)
    return {"recipe": asdict(recipe), "test": test, "validation": test, "best_epoch": recipe.epochs,
            "train_seconds": 12.0, "threshold": {"value": 1.0}, "roc": {"far": far.tolist(), "tar": tar.tolist()},
            "scores": {"test": scores.tolist(), "same": same.tolist(), "validation": scores.tolist(),
                       "validation_same": same.tolist()}}


def test_each_table_is_written_beside_the_other(tmp_path):
    ours = {"triplet-aug-scratch": summary_of(Recipe(epochs=2), 1.0)}
    write_comparison(ours, tmp_path, 2, 10, "python -m training compare --epochs 2 --steps 10")
    first = (tmp_path / "compare.md").read_text()

    untrained, pair_frozen, pair_tuned, triplet_frozen, triplet_tuned = dlib_recipes(2, 40)
    dlib = {untrained.name: summary_of(untrained, 3.0), triplet_tuned.name: summary_of(triplet_tuned, 5.0, seed=1),
            pair_frozen.name: summary_of(pair_frozen, 2.0, seed=2)}
    command = "python -m training compare --backbone dlib --epochs 2 --steps 40"
    write_dlib_comparison(dlib, tmp_path, 2, 40, command)
    report, document = (tmp_path / "compare.md").read_text(), json.loads((tmp_path / "compare.json").read_text())
    assert report.startswith(first)  # the first table as it was
    assert (tmp_path / "compare_dlib_roc.png").stat().st_size > 0
    assert command in report and "2 epochs x 40 steps of 16 identities x 4 images\n(5120 augmented views)" in report
    assert [row["start"] for row in document["dlib"]["rows"]] == [DLIB_AS_IS, "dlib, fine-tuned", "dlib, frozen"]
    assert document["dlib"]["rows"][0]["loss"] == "—" and document["rows"][0]["loss"] == "triplet"
    # The verdict: far better separation beats the untrained backbone, worse does not.
    assert "- triplet, dlib, fine-tuned: beats the backbone as it is" in report
    assert "- pair_bce, dlib, frozen: does not beat the backbone as it is" in report

    # Rewriting the first table keeps the dlib one.
    write_comparison({"triplet-noaug-scratch": summary_of(replace(Recipe(epochs=2), augment=False), 0.5)},
                     tmp_path, 2, 10, "python -m training compare --epochs 2 --steps 10 --only triplet-noaug-scratch")
    again = (tmp_path / "compare.md").read_text()
    assert "| triplet | yes | scratch |" not in again and "| triplet | no | scratch |" in again
    assert report[report.index("## A face-pretrained backbone"):] in again
