"""The card's mean-template tables (training.far_tables): what a stranger scores against the mean
of k photos of someone else, measured only on people the model never trained on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kiosk.alignment import AlignmentSpec
from kiosk.errors import KioskError
from kiosk.modelcard import ModelCard
from kiosk.scoring import CosineScoring
from training.far_tables import mean_template_table, people_to_measure


def faces(people: int, photos: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors as a face model gives them: every face shares one direction (all faces look
    alike), each person has their own, each photo adds its own noise."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=32)
    rows, names = [], []
    for person in range(people):
        centre = rng.normal(size=32)
        for _ in range(photos):
            vector = 2.0 * shared / np.linalg.norm(shared) + centre / np.linalg.norm(centre) + 0.8 * rng.normal(size=32) / 5
            rows.append(vector / np.linalg.norm(vector))
            names.append(f"person {person:03d}")
    return np.asarray(rows, np.float32), np.asarray(names)


def test_every_photo_of_every_other_person_is_compared_with_each_mean():
    vectors, names = faces(people=5, photos=7)
    one = mean_template_table(vectors, names, 1, CosineScoring())
    assert (one["people"], one["means"], one["impostor_pairs"]) == (5, 35, 35 * 28)
    three = mean_template_table(vectors, names, 3, CosineScoring())
    # Seven photos make two means of three (the seventh photo is still a stranger to the others).
    assert (three["people"], three["means"], three["impostor_pairs"]) == (5, 10, 10 * 28)
    # The threshold for a rate lets at most that share of the comparisons pass.
    scores = vectors @ vectors.T
    different = names[:, None] != names[None, :]
    threshold = one["thresholds"]["0.01"]
    assert np.mean(scores[different] >= threshold) <= 0.01 < np.mean(scores[different] >= threshold - 0.002)


def test_a_stranger_comes_closer_to_a_mean_than_to_one_photo_so_its_table_is_stricter():
    vectors, names = faces(people=60, photos=6)
    tables = [mean_template_table(vectors, names, count, CosineScoring())["thresholds"] for count in (1, 3, 6)]
    for rate in ("0.001", "0.01", "0.1"):
        assert tables[0][rate] < tables[1][rate] < tables[2][rate], rate
    # Only rates the sample can measure: 1e-6 of 60 x 5 x 6 x 59 comparisons would be no pair at all.
    assert "1e-06" not in tables[0] and "0.001" in tables[0]


def test_nobody_with_enough_photos_is_a_clear_error():
    vectors, names = faces(people=3, photos=2)
    with pytest.raises(ValueError, match="nobody has 3 photos"):
        mean_template_table(vectors, names, 3, CosineScoring())


def test_a_model_trained_on_lfw_is_never_measured_on_the_people_it_trained_on():
    trained = ModelCard(Path("net.keras"), AlignmentSpec(112, 0.0), 128, 0.5, "FAR 1%",
                        {"training": {"command": "python -m training train --epochs 30"}})
    with pytest.raises(KioskError, match="trained on LFW.*--people validation"):
        people_to_measure(None, trained, "devtrain")
    with pytest.raises(ValueError, match="--people must be one of"):
        people_to_measure(None, trained, "devtest")


@pytest.mark.lfw
def test_the_tables_are_measured_on_devtrain_people_never_on_devtest(lfw, engine):
    devtest = set(lfw.people("devtest"))
    devtrain = set(lfw.people("devtrain"))
    held_out = people_to_measure(lfw, engine.card, "validation")
    everyone = people_to_measure(lfw, engine.card, "devtrain")  # the shipped card: no training run made it
    assert 100 < len(held_out) < len(everyone) == len(devtrain)
    assert set(held_out) <= devtrain and not (set(everyone) & devtest)
