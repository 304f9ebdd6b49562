"""Verification metrics for face pairs: ROC, AUC, EER, TAR@FAR, thresholds and LFW accuracy.

Every function takes `scores` (similarities: higher means more alike, e.g. cosine) and
`same` (True where both faces are the same person). A pair is accepted when its score is
>= the threshold, exactly as the kiosk decides at the door. Only numpy is used, so the
evaluation runs wherever training does; scikit-learn serves as the reference in the tests.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def _labels(same: ArrayLike) -> np.ndarray:
    """`same` as a 1-D bool array; 0/1 integers are accepted, anything else is an error."""
    labels = np.asarray(same)
    if labels.ndim != 1:
        raise ValueError(f"same must be 1-D, got shape {labels.shape}")
    if labels.dtype != bool:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("same must be boolean or 0/1")
        labels = labels.astype(bool)
    return labels


def _pairs(scores: ArrayLike, same: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated (scores, same): equally long, scores finite."""
    scores, labels = np.asarray(scores, dtype=np.float64), _labels(same)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and same must be equally long, got {scores.shape} and {labels.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite (a NaN would sort arbitrarily)")
    return scores, labels


def _both_classes(same: np.ndarray) -> None:
    # TAR needs genuine pairs and FAR needs impostor pairs; without one the rate is 0/0.
    if same.all() or not same.any():
        raise ValueError("need both same-person and different-person pairs")


def roc_curve(scores: ArrayLike, same: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds) with thresholds descending, one per distinct score.

    The first point is (0, 0) at threshold +inf (accept nobody); the last accepts every pair.
    Tied scores form one point, as in sklearn's `roc_curve(..., drop_intermediate=False)`.
    """
    scores, same = _pairs(scores, same)
    _both_classes(same)
    order = np.argsort(-scores, kind="stable")
    scores, same = scores[order], same[order]
    # The last index of each run of equal scores: accepting it accepts the whole tie.
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    true_accepts = np.cumsum(same)[last]
    false_accepts = (last + 1) - true_accepts
    far = np.r_[0.0, false_accepts / (scores.size - same.sum())]
    tar = np.r_[0.0, true_accepts / same.sum()]
    return far, tar, np.r_[np.inf, scores[last]]


def roc_auc(scores: ArrayLike, same: ArrayLike) -> float:
    """Area under the ROC curve (ties count half, as the trapezoid over tied points gives)."""
    far, tar, _ = roc_curve(scores, same)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def equal_error_rate(scores: ArrayLike, same: ArrayLike) -> tuple[float, float]:
    """(eer, threshold) where FAR equals FRR, interpolated linearly between ROC points.

    The threshold is interpolated the same way; when the crossing lies between the +inf
    point and the top score, the top score is returned (there is nothing finite above it).
    """
    far, tar, thresholds = roc_curve(scores, same)
    gap = far - (1.0 - tar)  # FAR - FRR: -1 at the first point, +1 at the last, non-decreasing
    i = int(np.argmax(gap >= 0))
    if gap[i] == 0:
        return float(far[i]), float(thresholds[i])
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    eer = far[i - 1] + t * (far[i] - far[i - 1])
    if np.isinf(thresholds[i - 1]):
        return float(eer), float(thresholds[i])
    return float(eer), float(thresholds[i - 1] + t * (thresholds[i] - thresholds[i - 1]))


def best_balanced_accuracy(scores: ArrayLike, same: ArrayLike) -> tuple[float, float]:
    """(highest mean of TAR and 1 - FAR over thresholds, the threshold giving it): the accuracy a
    perfectly placed threshold reaches on pairs of any mix, e.g. every pair of a set of images,
    where different-person pairs outnumber same-person pairs a thousand to one."""
    far, tar, thresholds = roc_curve(scores, same)
    balanced = (tar + 1.0 - far) / 2
    best = int(np.argmax(balanced))
    return float(balanced[best]), float(thresholds[best])


def _check_rate(far: float) -> None:
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be a rate between 0 and 1, got {far}")


def _last_within(far_curve: np.ndarray, far: float) -> int:
    # FAR never decreases along the curve, and the +inf point (FAR 0) always qualifies.
    return int(np.searchsorted(far_curve, far, side="right")) - 1


def tar_at_far(scores: ArrayLike, same: ArrayLike, far: float) -> float:
    """The highest TAR reachable with FAR <= `far` on these pairs (0 when only rejecting all is)."""
    _check_rate(far)
    far_curve, tar, _ = roc_curve(scores, same)
    return float(tar[_last_within(far_curve, far)])


def impostor_threshold(impostor: ArrayLike, far: float) -> float:
    """The lowest threshold that accepts at most `far` of these different-person scores.

    With n scores, floor(far * n) may pass: the threshold lies just above the next one down
    (rounded up to 6 decimals, as a model card stores it). Use enough scores: a target that
    allows no accept at all puts the threshold just above the highest score.
    """
    _check_rate(far)
    ranked = np.sort(np.asarray(impostor, dtype=np.float64).ravel())[::-1]
    if ranked.size == 0:
        raise ValueError("need at least one different-person score")
    if not np.isfinite(ranked).all():
        raise ValueError("scores must be finite (a NaN would sort arbitrarily)")
    allowed = int(far * ranked.size)
    if allowed >= ranked.size:
        return math.floor(float(ranked[-1]) * 1e6) / 1e6  # every score may pass
    return round(float(ranked[allowed]) + 1e-6, 6)


def accuracy_at(scores: ArrayLike, same: ArrayLike, threshold: float) -> float:
    """Fraction of pairs decided correctly when accepting scores >= threshold."""
    scores, same = _pairs(scores, same)
    if scores.size == 0:
        raise ValueError("no pairs")
    return float(np.mean((scores >= threshold) == same))


def true_accept_rate(scores: ArrayLike, same: ArrayLike, threshold: float) -> float:
    """Fraction of the same-person pairs accepted (score >= threshold)."""
    scores, same = _pairs(scores, same)
    if not same.any():
        raise ValueError("no same-person pairs")
    return float(np.mean(scores[same] >= threshold))


def best_threshold(scores: ArrayLike, same: ArrayLike) -> float:
    """The threshold with the highest accuracy on these pairs.

    Candidates lie midway between neighbouring distinct scores (plus -inf and +inf), so the
    chosen one keeps a margin to both classes instead of sitting on a training score. When
    several are equally accurate, the middle one of them is taken.
    """
    scores, same = _pairs(scores, same)
    if scores.size == 0:
        raise ValueError("no pairs")
    distinct = np.unique(scores)
    low, high = distinct[:-1], distinct[1:]
    middle = low + (high - low) / 2
    # Two adjacent floats have no float between them; the upper one then separates them.
    middle = np.where(middle > low, middle, high)
    candidates = np.r_[-np.inf, middle, np.inf]
    genuine, impostor = np.sort(scores[same]), np.sort(scores[~same])
    correct = (genuine.size - np.searchsorted(genuine, candidates)) + np.searchsorted(impostor, candidates)
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[best.size // 2]])


def stratified_folds(same: ArrayLike, n_folds: int = 10) -> np.ndarray:
    """Fold index per pair: same pairs i::n_folds and different pairs i::n_folds go to fold i.

    Deterministic, and each fold keeps the overall ratio of same to different pairs.
    """
    same = _labels(same)
    if n_folds < 2:
        raise ValueError("need at least 2 folds")
    folds = np.empty(same.size, dtype=np.int64)
    for mask in (same, ~same):
        folds[mask] = np.arange(int(mask.sum())) % n_folds
    return folds


def cross_validated_correct(
    scores: ArrayLike, same: ArrayLike, folds: np.ndarray | None = None, n_folds: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """(whether each pair is decided correctly at its fold's threshold, the fold of each pair).

    Each fold is scored with the `best_threshold` of all *other* folds, so no fold helps
    choose its own threshold. `folds` gives a fold id per pair (e.g. LFW's 10 splits of
    pairs.txt); without it `stratified_folds(same, n_folds)` is used.
    """
    scores, same = _pairs(scores, same)
    folds = stratified_folds(same, n_folds) if folds is None else np.asarray(folds)
    if folds.shape != scores.shape:
        raise ValueError(f"folds must give one fold per pair, got shape {folds.shape}")
    if np.unique(folds).size < 2:
        raise ValueError("need at least 2 non-empty folds")
    correct = np.empty(scores.size, bool)
    for fold in np.unique(folds):
        test = folds == fold
        correct[test] = (scores[test] >= best_threshold(scores[~test], same[~test])) == same[test]
    return correct, folds


def cross_validated_accuracy(
    scores: ArrayLike, same: ArrayLike, folds: np.ndarray | None = None, n_folds: int = 10
) -> tuple[float, float, list[float]]:
    """LFW protocol accuracy: (mean, std, per-fold accuracies) of `cross_validated_correct`.
    The std is the population std over folds (ddof=0), as in the usual LFW evaluation code."""
    correct, folds = cross_validated_correct(scores, same, folds, n_folds)
    accuracies = [float(np.mean(correct[folds == fold])) for fold in np.unique(folds)]
    return float(np.mean(accuracies)), float(np.std(accuracies)), accuracies


@dataclass(frozen=True)
class VerificationReport:
    """The numbers an evaluation reports; rates are fractions (0.8735 means 87.35%)."""

    pairs: int
    accuracy: float  # cross-validated (LFW protocol)
    accuracy_std: float
    auc: float
    eer: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    accuracy_at_threshold: float | None  # with a fixed (shipped) threshold, when one is given
    threshold: float | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def verification_report(
    scores: ArrayLike, same: ArrayLike, folds: np.ndarray | None = None, threshold: float | None = None
) -> VerificationReport:
    """All metrics for one set of scored pairs; `threshold` adds the accuracy of a fixed threshold."""
    scores, same = _pairs(scores, same)
    accuracy, accuracy_std, _ = cross_validated_accuracy(scores, same, folds)
    return VerificationReport(
        pairs=int(scores.size),
        accuracy=accuracy,
        accuracy_std=accuracy_std,
        auc=roc_auc(scores, same),
        eer=equal_error_rate(scores, same)[0],
        tar_at_far_1e2=tar_at_far(scores, same, 1e-2),
        tar_at_far_1e3=tar_at_far(scores, same, 1e-3),
        accuracy_at_threshold=None if threshold is None else accuracy_at(scores, same, threshold),
        threshold=None if threshold is None else float(threshold),
    )
