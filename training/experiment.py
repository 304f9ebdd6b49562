"""One training run end to end: data -> train -> validate -> DevTest report -> (export).

Writes a run folder with the recipe, the training curves, the validation and test figures,
the ROC curve and the backbone weights, so any figure in a report can be traced to a run.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from kiosk.atomic import atomic_write_json
from kiosk.modelcard import sha256_of
from kiosk.scoring import CohortNormScoring, CosineScoring, Scoring
from kiosk.texture import texture_in_words
from training.backend import (
    DEFAULT_SHRINKAGE,
    FUSION_NETWORK_SHRINKAGE,
    fit_calibration,
    fit_joint_bayesian,
    fit_texture_fusion,
)
from training.data import Split, view1_split, view2_split
from training.lfw import FOLDS_FILE, LFW, PAIRS_FILES, PEOPLE_FILES
from training.metrics import impostor_threshold, roc_curve, true_accept_rate, verification_report
from training.model import build_serving_model
from training.plots import plot_roc, plot_training_curves
from training.prepare import PreparedLFW
from training.recipe import DEFAULT_TARGET_FAR, DLIB_INIT, DLIB_INPUT_SIZE, Recipe
from training.run_folder import SCORING_FILE, load_backbone, read_summary, save_scoring
from training.train import TrainResult, embed_rows, pair_scores, pair_vectors, scores_of_pairs, train


def run(recipe: Recipe, lfw: LFW, prepared: PreparedLFW, out_dir: Path, view: int = 1, fold: int = 0,
        target_far: float = DEFAULT_TARGET_FAR, log=print) -> dict:
    split = split_for(recipe, lfw, prepared, view, fold)
    log(f"{split.description}: {len(split.train_rows)} training images of {len(split.train_names)} people, "
        f"{len(split.validation)} validation pairs, {len(split.test)} test pairs")
    result = train(recipe, split, prepared, log=log)
    summary, scoring = evaluate_run(result, split, prepared, target_far)
    write_run(out_dir, result, split, summary, scoring)
    return summary


@dataclass(frozen=True)
class Pretraining:
    """Phase 1 of a two-phase recipe: CosFace over the same training people (and held-out people),
    at the default learning rate, batch shape and margin; phase 2 starts from its backbone."""

    epochs: int
    min_images: int = 2
    sampling: str = "uniform"

    def recipe(self, main: Recipe) -> Recipe:
        defaults = Recipe()
        return replace(main, loss="cosface", init=None, freeze=False, distill_from=(), memory_batches=0, scoring="cosine",
                       margin=None, identities_per_batch=defaults.identities_per_batch,
                       images_per_identity=defaults.images_per_identity,
                       epochs=self.epochs, learning_rate=defaults.learning_rate, min_images=self.min_images,
                       sampling=self.sampling)


def run_phases(recipe: Recipe, lfw: LFW, prepared: PreparedLFW, out_dir: Path, view: int = 1, fold: int = 0,
               target_far: float = DEFAULT_TARGET_FAR, pretraining: Pretraining | None = None, log=print) -> dict:
    """`run`, after the pre-training (in `out_dir/pretrain`) when there is one; the summary also
    gives `total_train_seconds`, both phases together."""
    pretrain_seconds = 0.0
    if pretraining:
        pretrained = run(pretraining.recipe(recipe), lfw, prepared, out_dir / "pretrain", view, fold, target_far, log)
        pretrain_seconds = pretrained["train_seconds"]
        recipe = phase_two(recipe, out_dir)
    summary = run(recipe, lfw, prepared, out_dir, view, fold, target_far, log)
    return {**summary, "total_train_seconds": round(summary["train_seconds"] + pretrain_seconds, 1)}


def phase_two(recipe: Recipe, out_dir: Path) -> Recipe:
    """The recipe of a two-phase run's second phase: it starts from the pre-trained backbone."""
    return replace(recipe, init=str(out_dir / "pretrain" / "backbone.weights.h5"))


def split_for(recipe: Recipe, lfw: LFW, prepared: PreparedLFW, view: int = 1, fold: int = 0) -> Split:
    """The people and pairs `recipe` trains, validates and tests on (its split seed holds people out)."""
    if recipe.init == DLIB_INIT:
        # Its crops (training.dlib_init.prepared_crops) hold View 1's images only, at dlib's template.
        if view != 1:
            raise ValueError(f"--init {DLIB_INIT} trains and tests on View 1 only")
        if prepared.crops.shape[1] != DLIB_INPUT_SIZE or prepared.spec.points is None:
            raise ValueError(f"--init {DLIB_INIT} needs crops aligned onto dlib's template "
                             f"(training.dlib_init.prepared_crops), not {prepared.spec.to_dict()}")
    if view == 1:
        return view1_split(lfw, prepared, min_images=recipe.min_images, seed=recipe.held_out_seed)
    return view2_split(lfw, prepared, fold, min_images=recipe.min_images, seed=recipe.held_out_seed)


def rescore(run_dir: Path, lfw: LFW, prepared: PreparedLFW, target_far: float = DEFAULT_TARGET_FAR,
            scoring: str | None = None, view: int = 1, fold: int = 0) -> dict:
    """Score a finished run folder again with today's evaluation (threshold rule, figures), from
    its saved weights and the recipe it records, without training; rewrites its summary.
    `scoring` replaces the recipe's (the network stays; its recipe then records the new scoring).
    View 2 folds name their `fold` (0-9): the split must be the one the network trained on."""
    old = read_summary(run_dir)
    split_name = "View 1" if view == 1 else f"View 2 fold {fold}:"
    if not old["split"].startswith(split_name):
        raise ValueError(f"{run_dir}: not a run of {split_name.rstrip(':')} (its split: {old['split']!r})")
    recipe = Recipe.from_json(old["recipe"])
    recipe = replace(recipe, scoring=scoring) if scoring else recipe
    backbone = load_backbone(run_dir, recipe)
    split = split_for(recipe, lfw, prepared, view, fold)
    result = TrainResult(backbone, old["history"], old["best_epoch"], old["train_seconds"], recipe)
    evaluation, scoring = evaluate_run(result, split, prepared, target_far)
    summary = {**old, **evaluation}
    write_run(run_dir, result, split, summary, scoring)
    return summary


def evaluate_run(result: TrainResult, split: Split, prepared: PreparedLFW, target_far: float) -> tuple[dict, Scoring]:
    """The run's summary (every figure, from the recipe's scoring) and that scoring, fitted."""
    serving = build_serving_model(result.backbone, prepared.crops.shape[1])
    started = time.perf_counter()
    scoring, held_out_vectors = fitted_scoring(result.recipe.scoring, serving, prepared, split)
    fit_seconds = time.perf_counter() - started
    if held_out_vectors is None:  # once: for the validation pairs and for every pair of their images
        held_out_vectors = embed_rows(serving, prepared, split.validation.images, scoring)
    validation_scores = scores_of_pairs(held_out_vectors, split.validation, scoring)
    held_out = HeldOutPeople.from_vectors(held_out_vectors, prepared, scoring)
    threshold, threshold_rule = held_out.door_threshold(target_far)
    test_scores = pair_scores(serving, prepared, split.test, scoring)
    test = verification_report(test_scores, split.test.same, threshold=threshold)
    fallbacks = _fallback_pairs(prepared, split)
    far, tar, _ = roc_curve(test_scores, split.test.same)
    return {
        "recipe": asdict(result.recipe),
        "name": result.recipe.name,
        "split": split.description,
        "train_images": int(len(split.train_rows)),
        "train_identities": len(split.train_names),
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.seconds, 1),
        "validation": verification_report(validation_scores, split.validation.same).to_dict(),
        "validation_rank1": held_out.rank1(),
        "validation_true_accepts": held_out.true_accept_table(),
        "scoring": {**describe_scoring(scoring), "fit_seconds": round(fit_seconds, 1)},
        "threshold": {"value": float(threshold), "target_far": target_far, "rule": threshold_rule},
        "impostor_far_table": held_out.far_table(),
        "test": test.to_dict(),
        "test_pairs_with_undetected_face": fallbacks,
        "roc": {"far": far.tolist(), "tar": tar.tolist()},
        "scores": {"test": test_scores.round(6).tolist(), "same": split.test.same.tolist(),
                   "validation": validation_scores.round(6).tolist(),
                   "validation_same": split.validation.same.tolist()},
        "history": result.history,
    }, scoring


TRUE_ACCEPT_RATES = (1e-2, 1e-3, 1e-4)
# How many of its nearest cohort images set a face's usual cosine with strangers (AS-norm). Of 50, 200
# and 1,000 tried on four runs, 200 raised the true accepts at FAR 1e-4 on every one.
COHORT_TOP_K = 200
FAR_TABLE_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class HeldOutPeople:
    """Embeddings of every image in the validation pairs (people held out from training; 686
    images of 118 people for View 1), for the figures that need more than the 1,000 + 1,000
    pairs themselves: the door's threshold, the impostor table and 1:N identification."""

    vectors: np.ndarray  # N x D unit embeddings
    names: np.ndarray  # N person names
    scoring: Scoring = field(default_factory=CosineScoring)

    @classmethod
    def embed(cls, serving, prepared: PreparedLFW, split: Split, scoring: Scoring | None = None) -> "HeldOutPeople":
        return cls.from_vectors(embed_rows(serving, prepared, split.validation.images, scoring), prepared, scoring)

    @classmethod
    def from_vectors(cls, by_row: dict[int, np.ndarray], prepared: PreparedLFW,
                     scoring: Scoring | None = None) -> "HeldOutPeople":
        """From embed_rows' vectors of the validation pairs' images."""
        rows = sorted(by_row)
        return cls(np.stack([by_row[row] for row in rows]), np.array([prepared.records[row]["name"] for row in rows]),
                   scoring or CosineScoring())

    @cached_property
    def similarity(self) -> np.ndarray:
        """N x N scores of every two images; computed once."""
        return self.scoring.matrix(self.vectors, self.vectors)

    @cached_property
    def _every_pair(self) -> tuple[np.ndarray, np.ndarray]:
        """(score, same person?) of every two different images, each pair once."""
        upper = np.triu_indices(len(self.names), k=1)
        return self.similarity[upper], self.names[upper[0]] == self.names[upper[1]]

    @property
    def impostor_scores(self) -> np.ndarray:
        """Score of every different-person pair (about 229,000 for View 1)."""
        scores, same = self._every_pair
        return scores[~same]

    @property
    def genuine_scores(self) -> np.ndarray:
        """Score of every same-person pair (5,487 for View 1 at seed 0, against 1,000 validation pairs)."""
        scores, same = self._every_pair
        return scores[same]

    def true_accept_table(self, rates: tuple[float, ...] = TRUE_ACCEPT_RATES) -> dict:
        """The share of every same-person pair accepted at the thresholds of `rates` over every
        impostor pair. A kiosk with N templates asks each for about FAR / N (Engine.gallery_threshold),
        so its door lives far down this table, where 1,000 validation pairs cannot look."""
        genuine, impostor = self.genuine_scores, self.impostor_scores
        return {"genuine_pairs": int(len(genuine)), "impostor_pairs": int(len(impostor)),
                "tar": {f"{rate:g}": float(np.mean(genuine >= impostor_threshold(impostor, rate))) for rate in rates}}

    def door_threshold(self, target_far: float) -> tuple[float, str]:
        """The threshold at `target_far` over every impostor pair, and the rule in words.

        From all of them rather than the 1,000 different-person validation pairs, where a 1%
        rate rests on 10 pairs; it then agrees with the impostor table the kiosk reads for
        galleries of several templates, so the threshold does not jump between 1 and 2.
        """
        impostor = self.impostor_scores
        rule = (f"lowest {self.scoring.kind} score with FAR <= {target_far:g} over all {len(impostor)} different-person pairs "
                f"of the validation images ({len(set(self.names.tolist()))} people held out from training)")
        return impostor_threshold(impostor, target_far), rule

    def far_table(self) -> dict:
        """Thresholds for a range of false-accept rates (rates down to 1e-5 are measurable).

        A kiosk compares a stranger with every enrolled template, so it needs far smaller
        per-comparison rates than a 1:1 check; this table lets it choose one for its gallery size.
        """
        impostor = self.impostor_scores
        rates = [rate for rate in FAR_TABLE_RATES if rate * len(impostor) >= 1]
        return {"impostor_pairs": int(len(impostor)),
                "thresholds": {f"{rate:g}": impostor_threshold(impostor, rate) for rate in rates}}

    def rank1(self) -> float:
        """1:N identification: the share of images (of people with two or more) whose most
        similar other validation image shows the same person. Verification pairs do not
        measure this, and a model can verify better yet identify worse."""
        similarity = self.similarity.copy()
        np.fill_diagonal(similarity, -np.inf)
        _, person, images = np.unique(self.names, return_inverse=True, return_counts=True)
        probes = images[person] >= 2
        nearest = np.argmax(similarity[probes], axis=1)
        return float(np.mean(self.names[nearest] == self.names[probes]))


def fitted_scoring(kind: str, serving, prepared: PreparedLFW, split: Split
                   ) -> tuple[Scoring, dict[int, np.ndarray] | None]:
    """The scoring of `kind` for a trained network, from its embeddings of the training people (never
    test people): Joint Bayesian is fitted on them and calibrated on the validation pairs; AS-norm
    keeps them as its cohort; the texture fusion fits its texture model on their crops. Also the
    held-out images' embeddings (as embed_rows gives them) when the fit made them, else None."""
    if kind == "cosine":
        return CosineScoring(), None
    if kind == "cosine+texture":
        pairs = split.validation
        validation_rows = split.validation.images
        train_rows = np.sort(split.train_rows)
        scoring, validation_vectors = fit_texture_fusion(
            _faces(serving, prepared, train_rows), np.array([prepared.records[row]["name"] for row in train_rows]),
            _faces(serving, prepared, validation_rows),
            (np.searchsorted(validation_rows, pairs.a), np.searchsorted(validation_rows, pairs.b)), pairs.same)
        return scoring, dict(zip(validation_rows.tolist(), validation_vectors))
    by_row = embed_rows(serving, prepared, split.train_rows)
    rows = sorted(by_row)
    vectors = np.stack([by_row[row] for row in rows])
    if kind == "as-norm":
        return CohortNormScoring.fit(vectors, COHORT_TOP_K), None
    joint_bayesian = fit_joint_bayesian(vectors, np.array([prepared.records[row]["name"] for row in rows]))
    ratios = joint_bayesian.log_likelihood_ratios(*pair_vectors(serving, prepared, split.validation))
    return joint_bayesian.with_calibration(*fit_calibration(ratios, split.validation.same)), None


def _faces(serving, prepared: PreparedLFW, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops, landmarks in them, the network's vectors) of sorted unique prepared rows."""
    vectors = embed_rows(serving, prepared, rows)
    return (np.asarray(prepared.crops[rows]), prepared.crop_landmarks(rows),
            np.stack([vectors[row] for row in rows.tolist()]))


def describe_scoring(scoring: Scoring) -> dict:
    if scoring.kind == "cosine":
        return {"kind": "cosine"}
    if scoring.kind == "as-norm":
        return {"kind": scoring.kind, "cohort": f"{len(scoring.cohort)} training images", "top_k": scoring.top_k,
                "centre": scoring.centre, "spread": scoring.spread}
    if scoring.kind == "cosine+texture":
        w_cosine, w_network, w_texture, bias = scoring.weights
        return {"kind": scoring.kind, "texture": f"{texture_in_words(scoring.texture)}, Joint Bayesian on them",
                "network": f"Joint Bayesian on the network's vectors, shrinkage {FUSION_NETWORK_SHRINKAGE:g}",
                "weights": {"cosine": w_cosine, "network": w_network, "texture": w_texture, "bias": bias,
                            "fitted_on": "the validation pairs (logistic regression on the three scores)"}}
    return {"kind": scoring.kind, "shrinkage": DEFAULT_SHRINKAGE, "fitted_on": "the training people's embeddings",
            "calibration": {"slope": scoring.slope, "intercept": scoring.intercept,
                            "fitted_on": "the validation pairs (logistic regression on the log-likelihood ratio)"}}


def _fallback_pairs(prepared: PreparedLFW, split: Split) -> int:
    detected = np.array([record["detected"] for record in prepared.records])
    return int((~detected[split.test.a] | ~detected[split.test.b]).sum())


def write_run(out_dir: Path, result: TrainResult, split: Split, summary: dict, scoring: Scoring) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result.backbone.save_weights(out_dir / "backbone.weights.h5")
    save_scoring(out_dir / SCORING_FILE, scoring)
    atomic_write_json(out_dir / "summary.json", summary)
    plot_training_curves(result.history, out_dir / "curves.png", title=result.recipe.name)
    plot_roc({f"{result.recipe.name} (AUC {summary['test']['auc']:.3f})":
              (np.array(summary["roc"]["far"]), np.array(summary["roc"]["tar"]))}, out_dir / "roc.png",
             title=f"{split.description}")


def protocol_checksums(lfw: LFW) -> dict[str, str]:
    files = (*PAIRS_FILES.values(), *PEOPLE_FILES.values(), FOLDS_FILE)
    return {name: sha256_of(lfw.root / name) for name in files if (lfw.root / name).exists()}


def door_true_accept_rate(summary: dict) -> float:
    """How many same-person validation pairs the run's own door threshold accepts: the figure the door
    lives on (the threshold holds the false accepts of held-out people at the target rate), from 1,000
    pairs rather than DevTest's 500, and the one that decides the accuracy at that threshold."""
    scores = summary["scores"]
    return true_accept_rate(scores["validation"], scores["validation_same"], summary["threshold"]["value"])


def describe(summary: dict) -> str:
    test, validation = summary["test"], summary["validation"]
    return (f"{summary['name']}: DevTest accuracy {test['accuracy'] * 100:.2f}% ± {test['accuracy_std'] * 100:.2f} "
            f"(10-fold CV threshold), {test['accuracy_at_threshold'] * 100:.2f}% at the shipped threshold "
            f"{summary['threshold']['value']:.3f}; AUC {test['auc']:.4f}, EER {test['eer'] * 100:.2f}%, "
            f"TAR@FAR1% {test['tar_at_far_1e2'] * 100:.1f}%, TAR@FAR0.1% {test['tar_at_far_1e3'] * 100:.1f}%; "
            f"validation AUC {validation['auc']:.4f}, rank-1 {summary['validation_rank1'] * 100:.1f}%, "
            f"TAR at the threshold {door_true_accept_rate(summary) * 100:.1f}%; "
            f"{summary['train_seconds']:.0f} s training")


