"""The Joint Bayesian back end: its fit, its calibration, and the kiosk scoring with it.

The log-likelihood ratio is checked against Gaussian densities computed directly, the
calibration against scikit-learn, and the kiosk's use (matching, engine, card) end to end
with a real exported model.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from kiosk.matching import match_many
from kiosk.modelcard import ModelCard, ModelCardError, card_path_for, scoring_path_for
from kiosk.scoring import LOG_ODDS_PER_UNIT, CohortNormScoring, CosineScoring, JointBayesianScoring
from training.backend import fit_calibration, fit_joint_bayesian


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def people(count: int, images: int, dimension: int = 6, nuisance: float = 0.6, seed: int = 0):
    """Unit vectors of `count` people: an identity direction each, plus per-image variation that
    is large along the first two axes (a nuisance shared by everyone: pose, light) and small elsewhere."""
    rng = np.random.default_rng(seed)
    identities = rng.normal(size=(count, dimension))
    identities[:, :2] = 0.2 * identities[:, :2]
    scale = np.array([nuisance, nuisance] + [0.15] * (dimension - 2))
    vectors = identities[:, None, :] + rng.normal(size=(count, images, dimension)) * scale
    labels = np.repeat(np.arange(count), images)
    return unit(vectors.reshape(-1, dimension)), labels


def all_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = np.triu_indices(len(labels), k=1)
    return a, b, labels[a] == labels[b]


def test_the_ratio_is_the_gaussian_log_likelihood_ratio_up_to_a_constant():
    vectors, labels = people(40, 5, dimension=4)
    shrinkage = 0.5
    scoring = fit_joint_bayesian(vectors, labels, shrinkage=shrinkage)
    # The model's two covariances, estimated by hand as the docstring says.
    centre = vectors.mean(axis=0)
    means = np.stack([vectors[labels == person].mean(axis=0) for person in range(40)])
    variation = vectors - means[labels]
    within = variation.T @ variation / len(vectors)
    within += shrinkage * np.trace(within) / 4 * np.eye(4)
    between = (means - centre).T @ (means - centre) / 40
    same = np.block([[between + within, between], [between, between + within]])
    different = np.block([[between + within, np.zeros((4, 4))], [np.zeros((4, 4)), between + within]])

    rng = np.random.default_rng(1)
    x, y = vectors[rng.integers(0, 200, 12)], vectors[rng.integers(0, 200, 12)]
    stacked = np.concatenate([x, y], axis=1) - np.concatenate([centre, centre])
    expected = (multivariate_normal(np.zeros(8), same).logpdf(stacked)
                - multivariate_normal(np.zeros(8), different).logpdf(stacked))
    ratios = scoring.log_likelihood_ratios(x, y)
    assert ratios - ratios[0] == pytest.approx(expected - expected[0], abs=1e-8)


def test_it_discounts_variation_that_every_person_shows_where_the_cosine_cannot():
    vectors, labels = people(60, 6, nuisance=0.8)
    scoring = fit_joint_bayesian(vectors, labels, shrinkage=0.0)
    test_vectors, test_labels = people(30, 4, nuisance=0.8, seed=7)  # other people, same nuisance
    a, b, same = all_pairs(test_labels)
    cosine_auc = roc_auc_score(same, CosineScoring().pairs(test_vectors[a], test_vectors[b]))
    joint_bayesian_auc = roc_auc_score(same, scoring.log_likelihood_ratios(test_vectors[a], test_vectors[b]))
    assert joint_bayesian_auc > cosine_auc + 0.03


def test_one_photo_people_are_left_out_and_two_people_are_needed():
    vectors, labels = people(10, 3)
    with_singletons = np.concatenate([labels, [100, 101]])
    singles = unit(np.random.default_rng(3).normal(size=(2, vectors.shape[1])))
    fitted = fit_joint_bayesian(np.concatenate([vectors, singles]), with_singletons)
    assert fitted.mean == pytest.approx(fit_joint_bayesian(vectors, labels).mean)
    with pytest.raises(ValueError, match="two people"):
        fit_joint_bayesian(vectors[:3], labels[:3])


def test_the_calibration_is_the_unpenalised_logistic_regression():
    rng = np.random.default_rng(0)
    ratios = np.concatenate([rng.normal(4, 3, 300), rng.normal(-6, 4, 300)])
    same = np.r_[np.ones(300), np.zeros(300)]
    slope, intercept = fit_calibration(ratios, same)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(ratios[:, None], same)
    assert slope == pytest.approx(reference.coef_[0, 0], rel=1e-4)
    assert intercept == pytest.approx(reference.intercept_[0], rel=1e-4)
    with pytest.raises(ValueError, match="same-person and different-person"):
        fit_calibration(ratios[:300], same[:300])


@pytest.fixture
def fitted() -> JointBayesianScoring:
    vectors, labels = people(30, 4)
    a, b, same = all_pairs(labels)
    scoring = fit_joint_bayesian(vectors, labels)
    return scoring.with_calibration(*fit_calibration(scoring.log_likelihood_ratios(vectors[a], vectors[b]), same))


def test_matrix_and_pairs_agree_are_symmetric_and_read_the_log_odds_linearly(fitted):
    queries, templates = people(3, 2, seed=4)[0], people(4, 3, seed=5)[0]
    matrix = fitted.matrix(queries, templates)
    log_odds = fitted.slope * fitted.log_likelihood_ratio_matrix(queries, templates) + fitted.intercept
    assert matrix.shape == (6, 12) and matrix == pytest.approx(0.5 + log_odds / LOG_ODDS_PER_UNIT)
    i, j = np.meshgrid(np.arange(6), np.arange(12), indexing="ij")
    assert fitted.pairs(queries[i.ravel()], templates[j.ravel()]) == pytest.approx(matrix.ravel(), abs=1e-6)
    assert fitted.matrix(templates, queries) == pytest.approx(matrix.T, abs=1e-6)


def test_a_read_only_gallery_is_reused_and_a_writable_one_is_read_every_time(fitted):
    queries, templates = people(2, 1, seed=4)[0], people(5, 2, seed=5)[0]
    expected = fitted.matrix(queries, templates)
    changing = templates.copy()
    assert fitted.matrix(queries, changing) == pytest.approx(expected)
    changing[0] = changing[1]  # written in place: the score must follow
    assert fitted.matrix(queries, changing)[:, 0] == pytest.approx(expected[:, 1])
    frozen = templates.copy()
    frozen.flags.writeable = False
    assert fitted.matrix(queries, frozen) == pytest.approx(expected)
    assert fitted.matrix(queries[:1], frozen) == pytest.approx(expected[:1])


def test_save_and_load_give_identical_scores(fitted, tmp_path):
    fitted.save(tmp_path / "s.npz")
    loaded = JointBayesianScoring.load(tmp_path / "s.npz")
    vectors = people(5, 2, seed=9)[0]
    assert np.array_equal(loaded.matrix(vectors, vectors), fitted.matrix(vectors, vectors))


def test_matching_ranks_people_by_the_scoring_given(fitted):
    templates, ids = people(6, 3, seed=11)
    queries = people(6, 3, seed=12)[0][::3]
    matches = match_many(queries, templates, ids, threshold=0.0, scoring=fitted)
    scores = fitted.matrix(queries, templates)
    for match, row in zip(matches, scores):
        best = int(np.argmax(row))
        assert match.person_id == ids[best] and match.score == pytest.approx(row[best])


def test_as_norm_normalises_each_face_by_its_nearest_cohort_images():
    cohort = unit(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]]))
    scoring = CohortNormScoring(cohort, top_k=2, centre=0.5, spread=0.1)
    x, y = unit(np.array([[1.0, 0.2]])), unit(np.array([[0.3, 1.0]]))

    def usual(v):  # mean and spread of its two best cosines with the cohort, by hand
        best = np.sort((cohort @ v[0]))[-2:]
        return best.mean(), best.std()

    (mx, sx), (my, sy), cosine = usual(x), usual(y), float(x[0] @ y[0])
    expected = 0.5 + 0.1 * 0.5 * ((cosine - mx) / sx + (cosine - my) / sy)
    assert scoring.pairs(x, y)[0] == pytest.approx(expected)
    assert scoring.matrix(x, y)[0, 0] == pytest.approx(expected) and scoring.matrix(y, x)[0, 0] == pytest.approx(expected)


def test_as_norm_takes_its_scale_from_the_cohort_without_self_matches(tmp_path):
    cohort, _ = people(20, 3)
    scoring = CohortNormScoring.fit(cohort, top_k=5)
    similarities = cohort.astype(np.float16).astype(np.float32) @ scoring.cohort.T
    np.fill_diagonal(similarities, -np.inf)
    top = -np.partition(-similarities, 4, axis=1)[:, :5]
    assert scoring.centre == pytest.approx(top.mean(axis=1).mean(), abs=1e-5)
    assert scoring.spread == pytest.approx(top.std(axis=1).mean(), abs=1e-5)
    scoring.save(tmp_path / "c.npz")
    loaded = CohortNormScoring.load(tmp_path / "c.npz")
    queries = people(4, 2, seed=8)[0]
    assert np.array_equal(loaded.matrix(queries, cohort[:7]), scoring.matrix(queries, cohort[:7]))
    with pytest.raises(ValueError, match="top_k"):
        CohortNormScoring.fit(cohort[:5], top_k=5)


def test_a_face_like_everyone_needs_a_higher_cosine_under_as_norm():
    # The same cosine with a template: accepted less readily for the face that resembles the cohort.
    cohort = unit(np.random.default_rng(0).normal([1.0, 0.0, 0.0], 0.3, size=(60, 3)))
    scoring = CohortNormScoring.fit(cohort, top_k=10)
    template = unit(np.array([[0.0, 1.0, 0.0]]))
    typical, unusual = unit(np.array([[0.8, 0.6, 0.0]])), unit(np.array([[0.0, 0.6, 0.8]]))
    assert (typical @ template.T).item() == pytest.approx((unusual @ template.T).item())
    assert scoring.pairs(typical, template)[0] < scoring.pairs(unusual, template)[0]


# -- the kiosk reading a fitted scoring from its card ------------------------------------------

@pytest.fixture(scope="module", params=["joint-bayesian", "as-norm"])
def exported_with_scoring(request, tmp_path_factory):
    from training.export import export_model
    from training.model import build_backbone

    backbone = build_backbone(input_size=32, widths=(8, 16, 16, 16), blocks=(1, 1, 1, 1), embedding_size=6)
    vectors, labels = people(20, 3)
    scoring = (fit_joint_bayesian(vectors, labels).with_calibration(0.5, 1.0) if request.param == "joint-bayesian"
               else CohortNormScoring.fit(vectors, top_k=10))
    folder = tmp_path_factory.mktemp("model")
    card = {"threshold": {"value": 0.5, "rule": "a test threshold"}}
    return export_model(backbone, 40, {"size": 40, "margin": 0.0}, folder / "jb.keras", card, scoring), scoring


def test_export_writes_the_scoring_its_card_describes_and_the_engine_scores_with_it(exported_with_scoring):
    from kiosk.engine import FaceEngine

    model, scoring = exported_with_scoring
    card = json.loads(card_path_for(model).read_text())
    assert card["scoring"]["file"] == scoring_path_for(model).name and card["similarity"].startswith(scoring.kind)
    assert card["scoring"]["kind"] == scoring.kind
    engine = FaceEngine(model)
    vectors, ids = people(4, 2, seed=3)
    assert engine.similarity(vectors[0], vectors[1]) == pytest.approx(float(scoring.pairs(vectors[:1], vectors[1:2])[0]))
    expected = scoring.matrix(vectors[:2], vectors[2:])
    matches = engine.match(vectors[:2], vectors[2:], ids[2:], threshold=0.0)
    assert [m.score for m in matches] == pytest.approx(expected.max(axis=1).tolist(), abs=1e-6)


def test_a_scoring_file_that_is_not_the_cards_is_refused(exported_with_scoring, tmp_path):
    model, scoring = exported_with_scoring
    for suffix in (".keras", ".tflite", ".scoring.npz", ".card.json"):
        (tmp_path / f"jb{suffix}").write_bytes(model.with_name(f"jb{suffix}").read_bytes())
    copy = tmp_path / "jb.keras"
    other = people(20, 3, seed=5)[0]
    (fit_joint_bayesian(other, np.repeat(np.arange(20), 3)) if scoring.kind == "joint-bayesian"
     else CohortNormScoring.fit(other, top_k=10)).save(scoring_path_for(copy))
    with pytest.raises(ModelCardError, match="SHA-256 differs"):
        ModelCard.load(copy).load_scoring()
    scoring_path_for(copy).unlink()
    with pytest.raises(ModelCardError, match="scoring file not found"):
        ModelCard.load(copy).load_scoring()


def test_a_cosine_export_leaves_no_scoring_file_behind(exported_with_scoring, tmp_path):
    from training.export import export_model
    from training.model import build_backbone

    model, _ = exported_with_scoring
    target = tmp_path / "jb.keras"
    scoring_path_for(target).write_bytes(scoring_path_for(model).read_bytes())  # left from an earlier export
    backbone = build_backbone(input_size=32, widths=(8, 16, 16, 16), blocks=(1, 1, 1, 1), embedding_size=6)
    export_model(backbone, 40, {"size": 40, "margin": 0.0}, target, {"threshold": {"value": 0.5, "rule": "t"}})
    assert not scoring_path_for(target).exists()
    assert isinstance(ModelCard.load(target).load_scoring(), CosineScoring)
