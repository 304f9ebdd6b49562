"""Is one run really better than another? Paired bootstrap intervals of the difference.

Two runs of one split score the same pairs, so each pair's outcome (accepted, correct) can be
compared directly: resampling the pairs, with the same draw for both runs, gives an interval for
the difference that is much narrower than either run's own spread, since most pairs come out the
same for both (Efron and Tibshirani, 1993; the usual test for two classifiers on one test set).
A 1-point gain in validation true accepts at the door's threshold rests on 1,000 pairs: whether
it is more than chance depends on how many pairs changed sides, which this counts.
"""
from __future__ import annotations

import numpy as np

RESAMPLES = 4000
LEVEL = 0.95


def paired_interval(first: np.ndarray, second: np.ndarray, resamples: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, float, float]:
    """(mean of second - first, lower, upper): the difference of two runs' per-pair outcomes (0/1
    or any numbers) on the same pairs, with its 95% percentile interval over resampled pairs."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if first.shape != second.shape or first.ndim != 1 or first.size == 0:
        raise ValueError(f"need two outcomes for each of the same pairs, got {first.shape} and {second.shape}")
    differences = second - first
    draws = np.random.default_rng(seed).integers(0, differences.size, size=(resamples, differences.size))
    means = differences[draws].mean(axis=1)
    tail = (1 - LEVEL) / 2
    return float(differences.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def door_differences(base: dict, other: dict) -> dict[str, tuple[float, float, float]]:
    """Paired differences (other - base, with 95% intervals) of two run summaries of one split: the
    validation true-accept rate at each run's own threshold, and DevTest accuracy at it."""
    base_scores, other_scores = base["scores"], other["scores"]
    for key in ("validation", "validation_same", "test", "same"):
        if key not in base_scores or key not in other_scores:
            raise ValueError(f"a summary holds no per-pair scores {key!r} (written before they were kept)")
    for key in ("validation_same", "same"):
        if base_scores[key] != other_scores[key]:
            raise ValueError(f"the runs did not score the same pairs ({key} differs): not one split")
    same = np.array(base_scores["validation_same"], bool)
    test_same = np.array(base_scores["same"], bool)

    def accepted(summary: dict) -> np.ndarray:
        return np.array(summary["scores"]["validation"])[same] >= summary["threshold"]["value"]

    def correct(summary: dict) -> np.ndarray:
        return (np.array(summary["scores"]["test"]) >= summary["threshold"]["value"]) == test_same

    return {"validation_door_tar": paired_interval(accepted(base), accepted(other)),
            "test_accuracy_at_threshold": paired_interval(correct(base), correct(other))}
