"""Paired bootstrap differences between two runs scored on the same pairs."""
import numpy as np
import pytest

from training.paired import door_differences, paired_interval


def test_identical_outcomes_differ_by_exactly_nothing():
    outcomes = np.random.default_rng(0).random(500) < 0.8
    assert paired_interval(outcomes, outcomes) == (0.0, 0.0, 0.0)


def test_the_interval_counts_the_pairs_that_changed_sides():
    first = np.zeros(1000, bool)
    second = first.copy()
    second[:30] = True  # 30 of 1,000 pairs newly accepted, none lost: +3 points, surely positive
    mean, low, high = paired_interval(first, second)
    assert mean == pytest.approx(0.03)
    assert 0.0 < low < 0.03 < high
    # The same +3 points from 60 gained and 30 lost is far less certain.
    mixed = first.copy()
    mixed[:60] = True
    base = first.copy()
    base[900:930] = True
    mean_mixed, low_mixed, high_mixed = paired_interval(base, mixed)
    assert mean_mixed == pytest.approx(0.03)
    assert high_mixed - low_mixed > 1.5 * (high - low)
    # A binomial difference of +/-1 per changed pair: the interval's half-width is about 1.96
    # sqrt(changed) / n (here sqrt(90) / 1000), as a hand calculation gives.
    assert (high_mixed - low_mixed) / 2 == pytest.approx(1.96 * np.sqrt(90 - 30 ** 2 / 1000) / 1000, rel=0.15)


def test_outcomes_of_other_pairs_are_refused():
    with pytest.raises(ValueError, match="same pairs"):
        paired_interval(np.ones(10), np.ones(11))


def summary(validation, validation_same, test, same, threshold):
    return {"scores": {"validation": validation, "validation_same": validation_same, "test": test, "same": same},
            "threshold": {"value": threshold}}


def test_door_differences_use_each_runs_own_threshold():
    validation_same = [True, True, True, True, False, False]
    same = [True, True, False, False]
    base = summary([0.9, 0.6, 0.4, 0.2, 0.1, 0.0], validation_same, [0.9, 0.4, 0.7, 0.1], same, 0.5)
    # Another scale altogether, with its own threshold: three of four same-person pairs accepted
    # instead of two; on DevTest the third pair (different people) is now refused, the second (the
    # same person) still is.
    other = summary([9.0, 6.0, 4.5, 2.0, 1.0, 0.0], validation_same, [9.0, 3.9, 3.0, 1.0], same, 4.0)
    differences = door_differences(base, other)
    assert differences["validation_door_tar"][0] == pytest.approx(0.75 - 0.5)
    assert differences["test_accuracy_at_threshold"][0] == pytest.approx(0.75 - 0.5)
    with pytest.raises(ValueError, match="not one split"):
        door_differences(base, summary([0.9] * 6, [True] * 6, [0.9] * 4, same, 0.5))
