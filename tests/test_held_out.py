"""The figures taken from every held-out validation image: impostor pairs, the door's threshold,
its table of rates and 1:N identification, on hand-made embeddings."""
from __future__ import annotations

import numpy as np
import pytest

from training.experiment import HeldOutPeople


def unit(*angles_deg: float) -> np.ndarray:
    """Unit vectors in the plane at the given angles: cosine = cos(angle difference)."""
    radians = np.deg2rad(np.array(angles_deg))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


@pytest.fixture
def people() -> HeldOutPeople:
    # Ann twice (0 and 10 degrees), Bob once (50), Cid twice (55 and 120): Cid's first image is
    # closer to Bob (5 degrees) than to his own second image (65 degrees).
    return HeldOutPeople(unit(0, 10, 50, 55, 120), np.array(["Ann", "Ann", "Bob", "Cid", "Cid"]))


def test_impostor_scores_are_every_different_person_pair(people):
    scores = np.sort(people.impostor_scores)
    # 10 pairs of 5 images, less the 2 same-person pairs.
    expected = np.sort(np.cos(np.deg2rad([50, 55, 120, 40, 45, 110, 5, 70])))
    np.testing.assert_allclose(scores, expected, atol=1e-12)


def test_rank1_counts_each_image_of_a_person_seen_twice(people):
    # Ann's images find each other; Cid's first finds Bob; Cid's second finds Cid's first
    # (65 degrees, nearer than Bob at 70). Bob has no second image and is no probe.
    assert people.rank1() == pytest.approx(3 / 4)


def test_door_threshold_agrees_with_the_table_the_kiosk_reads(people):
    threshold, rule = people.door_threshold(0.2)
    # 8 impostor scores: one may pass at 20% (Bob-Cid, cos 5 degrees); the next is cos 40 degrees.
    assert threshold == pytest.approx(np.cos(np.deg2rad(40)) + 1e-6, abs=1e-6)
    assert people.far_table()["thresholds"]["0.2"] == threshold
    assert people.far_table()["impostor_pairs"] == 8
    assert "8 different-person pairs" in rule and "3 people" in rule


def test_true_accepts_count_every_same_person_pair_at_each_impostor_rate(people):
    # Two same-person pairs: Ann-Ann (cos 10 degrees) and Cid-Cid (cos 65 degrees).
    np.testing.assert_allclose(np.sort(people.genuine_scores), np.cos(np.deg2rad([65, 10])), atol=1e-12)
    table = people.true_accept_table(rates=(0.2, 0.125))
    assert table["genuine_pairs"] == 2 and table["impostor_pairs"] == 8
    # At 20% the threshold is just above cos 40 degrees: Ann-Ann passes, Cid-Cid does not. At 12.5%
    # (one of 8) it is just above cos 40 too, and at any smaller rate above cos 5 degrees: nobody.
    assert table["tar"] == {"0.2": 0.5, "0.125": 0.5}
    assert people.true_accept_table(rates=(0.01,))["tar"]["0.01"] == 0.0
