"""Verification metrics against scikit-learn and hand-worked examples; plots and tables."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training.metrics import (
    accuracy_at,
    best_balanced_accuracy,
    best_threshold,
    cross_validated_accuracy,
    cross_validated_correct,
    equal_error_rate,
    impostor_threshold,
    roc_auc,
    roc_curve,
    stratified_folds,
    tar_at_far,
    verification_report,
)
from training.plots import _metric_families, markdown_table, plot_roc, plot_training_curves

# Six pairs worked out by hand. Sorted by score: 0.9 S, 0.8 S, 0.7 D, 0.3 S, 0.2 D, 0.1 D, so
# the ROC points (FAR, TAR) are (0,0) (0,1/3) (0,2/3) (1/3,2/3) (1/3,1) (2/3,1) (1,1).
HAND_SCORES = np.array([0.3, 0.9, 0.1, 0.7, 0.8, 0.2])
HAND_SAME = np.array([True, True, False, False, True, False])


def random_pairs(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes with scores rounded to 2 decimals, so there are many ties."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    scores = np.round(rng.normal(np.where(same, 0.5, 0.2), 0.2), 2)
    return scores, same


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_curve_and_auc_match_sklearn_with_ties(seed: int) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    scores, same = random_pairs(seed)
    assert np.unique(scores).size < scores.size  # the ties this test is about

    far, tar, thresholds = roc_curve(scores, same)
    ref_far, ref_tar, ref_thresholds = sklearn_metrics.roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, ref_far)
    np.testing.assert_allclose(tar, ref_tar)
    assert thresholds[0] == np.inf
    np.testing.assert_allclose(thresholds[1:], ref_thresholds[1:])
    assert np.all(np.diff(thresholds) < 0)
    assert roc_auc(scores, same) == pytest.approx(sklearn_metrics.roc_auc_score(same, scores))


def test_roc_curve_hand_example_and_0_1_labels() -> None:
    far, tar, thresholds = roc_curve(HAND_SCORES, HAND_SAME.astype(int))
    np.testing.assert_allclose(far, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tar, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    assert roc_auc(HAND_SCORES, HAND_SAME) == pytest.approx(8 / 9)


@pytest.mark.parametrize(
    ("scores", "same", "eer", "threshold"),
    [
        # FAR = FRR = 1/3 exactly at the ROC point of threshold 0.7 (no interpolation).
        (HAND_SCORES, HAND_SAME, 1 / 3, 0.7),
        # Points (0, TAR 1/2) at 0.8 and (1/2, 1) at the tied 0.5: FAR - FRR goes -1/2 -> +1/2,
        # crossing halfway, where FAR = FRR = 1/4 and the threshold is 0.65.
        ([0.8, 0.5, 0.5, 0.2], [True, True, False, False], 0.25, 0.65),
        # Unequal classes: FAR stays 1/2 from 0.6 to 0.5 while FRR falls 2/3 -> 1/3.
        ([0.9, 0.6, 0.5, 0.4, 0.1], [True, False, True, True, False], 0.5, 0.55),
        # Separable: EER 0 at the lowest genuine score.
        ([0.9, 0.8, 0.2, 0.1], [True, True, False, False], 0.0, 0.8),
        # Crossing between +inf and the top score: the top score is the threshold.
        ([0.9, 0.9, 0.1], [True, False, False], 1 / 3, 0.9),
    ],
)
def test_equal_error_rate_hand_examples(scores, same, eer: float, threshold: float) -> None:
    assert equal_error_rate(scores, same) == pytest.approx((eer, threshold))


@pytest.mark.parametrize(("far", "tar"), [(0.0, 2 / 3), (0.33, 2 / 3), (1 / 3, 1.0), (0.5, 1.0), (1.0, 1.0)])
def test_tar_at_far_hand_example(far: float, tar: float) -> None:
    assert tar_at_far(HAND_SCORES, HAND_SAME, far) == pytest.approx(tar)


def test_top_scoring_impostor_means_nobody_is_accepted_at_far_0() -> None:
    assert tar_at_far([0.5, 0.9, 0.1], [True, False, False], 0.0) == 0.0


@pytest.mark.parametrize(("far", "threshold"), [(0.0, 0.700001), (0.2, 0.700001), (0.25, 0.200001),
                                                (0.5, 0.100001), (1.0, 0.05)])
def test_impostor_threshold_hand_example(far: float, threshold: float) -> None:
    # Four impostor scores: 0.7, 0.2, 0.1, 0.05. A quarter may pass at 0.25: only 0.7.
    assert impostor_threshold([0.1, 0.7, 0.05, 0.2], far) == pytest.approx(threshold)


@pytest.mark.parametrize("target", [0.0, 0.001, 0.01, 0.05, 0.1, 0.3])
def test_impostor_threshold_keeps_far_on_the_data_and_is_the_lowest(target: float) -> None:
    scores, same = random_pairs(3, n=3000)
    impostor = scores[~same]  # two decimals: many ties
    threshold = impostor_threshold(impostor, target)
    assert (impostor >= threshold).mean() <= target
    # The next score below would break the target.
    lower = impostor[impostor < threshold].max()
    assert (impostor >= lower).mean() > target


def test_impostor_threshold_needs_scores() -> None:
    with pytest.raises(ValueError, match="at least one"):
        impostor_threshold([], 0.01)
    with pytest.raises(ValueError, match="finite"):
        impostor_threshold([0.2, float("nan")], 0.01)


def test_rates_must_be_fractions() -> None:
    with pytest.raises(ValueError):
        tar_at_far(HAND_SCORES, HAND_SAME, 1.5)
    with pytest.raises(ValueError):
        impostor_threshold(HAND_SCORES, -0.1)


@pytest.mark.parametrize(
    ("scores", "same"),
    [
        ([0.1, 0.2], [True, True]),  # no impostor pairs
        ([0.1, 0.2, 0.3], [True, False]),  # lengths differ
        ([0.1, np.nan], [True, False]),  # NaN score
        ([0.1, 0.2], [1, 2]),  # not a label
    ],
)
def test_bad_input_is_rejected(scores, same) -> None:
    with pytest.raises(ValueError):
        roc_curve(scores, same)


def test_accuracy_at_accepts_scores_equal_to_the_threshold() -> None:
    assert accuracy_at(HAND_SCORES, HAND_SAME, 0.7) == pytest.approx(4 / 6)
    assert accuracy_at(HAND_SCORES, HAND_SAME, 0.3) == pytest.approx(5 / 6)


def test_best_threshold_is_a_midpoint_between_scores() -> None:
    assert best_threshold([0.9, 0.7, 0.4, 0.2], [True, True, False, False]) == pytest.approx(0.55)
    # 4/5 correct only when accepting 0.9 alone: the midpoint to the next score, 0.6.
    scores, same = [0.9, 0.3, 0.6, 0.5, 0.1], [True, True, False, False, False]
    assert best_threshold(scores, same) == pytest.approx(0.75)
    assert accuracy_at(scores, same, 0.75) == pytest.approx(0.8)


def test_best_threshold_rejects_all_when_that_is_best() -> None:
    assert best_threshold([0.9, 0.1], [False, False]) == np.inf


# Two folds whose own best thresholds are incompatible: fold 0 (0.8 same, 0.6 different)
# separates at 0.7, fold 1 (0.5 same, 0.3 different) at 0.4. Fold 0 scored with fold 1's 0.4
# accepts both pairs, fold 1 scored with 0.7 rejects both: 1/2 each. Any leak of a fold into
# its own threshold would score it higher.
CV_SCORES = np.array([0.8, 0.6, 0.5, 0.3])
CV_SAME = np.array([True, False, True, False])


def test_cross_validation_never_uses_the_scored_fold() -> None:
    mean, std, per_fold = cross_validated_accuracy(CV_SCORES, CV_SAME, folds=np.array([0, 0, 1, 1]))
    assert per_fold == [0.5, 0.5]
    assert (mean, std) == (0.5, 0.0)


def test_default_folds_are_stratified_in_given_order() -> None:
    # Same pairs are indices 0, 2 and different pairs 1, 3: fold i takes the i-th of each.
    np.testing.assert_array_equal(stratified_folds(CV_SAME, 2), [0, 0, 1, 1])
    assert cross_validated_accuracy(CV_SCORES, CV_SAME, n_folds=2) == (0.5, 0.0, [0.5, 0.5])
    folds = stratified_folds(np.arange(25) % 5 == 0, 10)
    np.testing.assert_array_equal(folds[::5], np.arange(5))  # the 5 same pairs, folds 0..4
    np.testing.assert_array_equal(np.bincount(folds[np.arange(25) % 5 != 0]), [2] * 10)


def test_cross_validation_per_fold_and_std() -> None:
    # Fold 2 inverts the classes: folds 0 and 1 put its threshold at 0.5, which gets both of
    # its pairs wrong. Folds 0 and 1 separate at 0.5 and at every threshold tied best on
    # their training folds (0.275/0.725 and 0.325/0.675), so they score 1 whatever the tie-break.
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.45, 0.55])
    same = np.array([True, False, True, False, True, False])
    mean, std, per_fold = cross_validated_accuracy(scores, same, folds=np.array([0, 0, 1, 1, 2, 2]))
    assert per_fold == [1.0, 1.0, 0.0]
    assert mean == pytest.approx(2 / 3)
    assert std == pytest.approx(np.std([1.0, 1.0, 0.0]))


def test_verification_report() -> None:
    scores, same = random_pairs(4, n=200)
    report = verification_report(scores, same, threshold=0.35)
    mean, std, _ = cross_validated_accuracy(scores, same)
    assert report.pairs == 200
    assert (report.accuracy, report.accuracy_std) == (mean, std)
    assert report.auc == roc_auc(scores, same)
    assert report.eer == equal_error_rate(scores, same)[0]
    assert report.tar_at_far_1e2 == tar_at_far(scores, same, 0.01)
    assert report.tar_at_far_1e3 == tar_at_far(scores, same, 0.001)
    assert report.accuracy_at_threshold == accuracy_at(scores, same, 0.35)
    assert json.loads(json.dumps(report.to_dict()))["threshold"] == 0.35

    plain = verification_report(CV_SCORES, CV_SAME, folds=np.array([0, 0, 1, 1]))
    assert plain.accuracy == 0.5
    assert (plain.accuracy_at_threshold, plain.threshold) == (None, None)


def _assert_only_png(folder, name: str) -> None:
    from matplotlib.image import imread

    assert [path.name for path in folder.iterdir()] == [name]  # no temp file left behind
    image = imread(folder / name)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_plot_roc_writes_a_png(tmp_path) -> None:
    scores, same = random_pairs(5)
    far, tar, _ = roc_curve(scores, same)
    plot_roc({f"model (AUC {roc_auc(scores, same):.3f})": (far, tar), "other": (far, tar**2)}, tmp_path / "roc.png")
    _assert_only_png(tmp_path, "roc.png")


def test_plot_training_curves_writes_a_png(tmp_path) -> None:
    history = {"loss": [1.0, 0.6, 0.5], "val_loss": [1.1, 0.8, 0.7], "val_accuracy": [0.6, 0.7, 0.75]}
    assert _metric_families(history) == {"loss": ["loss", "val_loss"], "accuracy": ["val_accuracy"]}
    plot_training_curves(history, tmp_path / "training.png", title="run 1")
    _assert_only_png(tmp_path, "training.png")


def test_markdown_table_formats_rates_numbers_and_gaps() -> None:
    rows = [
        {"model": "a|b", "accuracy": 0.87354, "tar_at_far_1e3": 0.5, "threshold": 0.412345, "pairs": 6000},
        {"model": "base", "accuracy": 0.9, "tar_at_far_1e3": None, "threshold": float("nan")},
    ]
    columns = [("model", "Model"), ("accuracy", "Accuracy"), ("tar_at_far_1e3", "TAR@1e-3"),
               ("threshold", "Threshold"), ("pairs", "Pairs")]
    assert markdown_table(rows, columns).splitlines() == [
        "| Model | Accuracy | TAR@1e-3 | Threshold | Pairs |",
        "|---|---|---|---|---|",
        r"| a\|b | 87.35% | 50.00% | 0.4123 | 6000 |",
        "| base | 90.00% | — | — | — |",
    ]


def test_true_accept_rate_counts_same_person_pairs_at_or_above_the_threshold():
    from training.metrics import true_accept_rate

    scores, same = [0.9, 0.5, 0.49, 0.95, 0.1], [True, True, True, False, False]
    assert true_accept_rate(scores, same, 0.5) == pytest.approx(2 / 3)   # impostor scores play no part
    assert true_accept_rate(scores, same, 0.0) == 1.0
    with pytest.raises(ValueError, match="no same-person pairs"):
        true_accept_rate([0.3], [False], 0.5)


def test_best_balanced_accuracy_weighs_both_classes_equally() -> None:
    # 2 same-person pairs, 8 different-person: accepting >= 0.7 takes both same pairs and 1 of 8
    # others, (1 + 7/8) / 2; plain accuracy ties it with accepting only the 0.9 (9 of 10 right).
    scores = np.array([0.9, 0.7, 0.75, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    same = np.array([True, True] + [False] * 8)
    assert best_balanced_accuracy(scores, same) == (pytest.approx((1 + 7 / 8) / 2), 0.7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_balanced_accuracy_is_the_best_of_every_threshold(seed: int) -> None:
    scores, same = random_pairs(seed, n=300)
    same[:250] = False  # unbalanced, as every pair of a set of images is
    value, threshold = best_balanced_accuracy(scores, same)
    brute = max((np.mean(scores[same] >= t) + np.mean(scores[~same] < t)) / 2 for t in np.r_[scores, np.inf])
    assert value == pytest.approx(brute)
    assert (np.mean(scores[same] >= threshold) + np.mean(scores[~same] < threshold)) / 2 == pytest.approx(value)


def test_cross_validated_correct_gives_each_pair_its_folds_decision() -> None:
    correct, folds = cross_validated_correct(CV_SCORES, CV_SAME, folds=np.array([0, 0, 1, 1]))
    # Fold 0 is judged at fold 1's threshold (0.4): 0.8 accepted (right), 0.6 accepted (wrong);
    # fold 1 at fold 0's (0.7): both rejected, the 0.5 wrongly.
    np.testing.assert_array_equal(correct, [True, False, False, True])
    np.testing.assert_array_equal(folds, [0, 0, 1, 1])
