import numpy as np
import pytest

from kiosk.matching import Match, match, match_many, person_means

E1, E2, E3 = np.eye(3, dtype=np.float32)


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


# Ada has one template identical to the query and one orthogonal to it; Bob has
# one template at cosine 0.9. "best" picks Ada (1.0), "mean" picks Bob, since
# Ada's mean template (E1 + E2) / sqrt(2) is only at cosine 0.707.
ADA, BOB = 7, 3
TEMPLATES = np.stack([E1, E2, unit(0.9, 0, np.sqrt(1 - 0.81))])
IDS = np.array([ADA, ADA, BOB])


def test_best_versus_mean():
    best = match(E1, TEMPLATES, IDS, threshold=0.5, strategy="best")
    assert best == Match(ADA, pytest.approx(1.0), BOB, pytest.approx(0.9), "match")
    mean = match(E1, TEMPLATES, IDS, threshold=0.5, strategy="mean")
    assert mean == Match(BOB, pytest.approx(0.9), ADA, pytest.approx(np.sqrt(0.5)), "match")


def test_below_threshold_is_unknown_but_names_the_candidate():
    result = match(E3, TEMPLATES, IDS, threshold=0.5)
    assert result.verdict == "unknown"
    assert result.person_id == BOB and result.score == pytest.approx(np.sqrt(0.19))


def test_close_second_person_above_threshold_is_ambiguous():
    templates = np.stack([unit(1, 0.30, 0), unit(1, 0.35, 0), E3])
    ids = np.array([1, 2, 3])
    result = match(E1, templates, ids, threshold=0.8, ambiguity_margin=0.05)
    assert result.verdict == "ambiguous"
    assert {result.person_id, result.second_person_id} == {1, 2}
    # A wider gap, or a runner-up below the threshold, is a plain match.
    assert match(E1, templates, ids, threshold=0.8, ambiguity_margin=0.001).verdict == "match"
    assert match(E1, templates, ids, threshold=0.955).verdict == "match"


def test_two_templates_of_the_same_person_are_not_ambiguous():
    templates = np.stack([unit(1, 0.01, 0), unit(1, 0.02, 0), E3])
    result = match(E1, templates, np.array([5, 5, 6]), threshold=0.5)
    assert result.verdict == "match"
    assert result.person_id == 5 and result.second_person_id == 6


def test_single_person_and_empty_gallery():
    alone = match(E1, TEMPLATES[:2], IDS[:2], threshold=0.5)
    assert alone == Match(ADA, pytest.approx(1.0), None, None, "match")
    empty = match(E1, np.empty((0, 0), np.float32), np.empty(0, np.int64), threshold=0.5)
    assert empty == Match(None, float("-inf"), None, None, "unknown")


def test_results_are_plain_python_numbers():
    result = match(E1, TEMPLATES, IDS, threshold=0.5)
    assert type(result.person_id) is int and type(result.score) is float
    assert type(result.second_person_id) is int and type(result.second_score) is float


def test_invalid_arguments():
    with pytest.raises(ValueError, match="strategy"):
        match(E1, TEMPLATES, IDS, threshold=0.5, strategy="median")
    with pytest.raises(ValueError, match="dimension"):
        match(np.ones(4, np.float32) / 2, TEMPLATES, IDS, threshold=0.5)
    with pytest.raises(ValueError, match="person ids"):
        match(E1, TEMPLATES, IDS[:2], threshold=0.5)
    with pytest.raises(ValueError, match="1-D"):
        match(TEMPLATES, TEMPLATES, IDS, threshold=0.5)


def brute_force(query, templates, ids, strategy):
    """Per-person scores the slow, obvious way."""
    scores = {}
    for person in sorted(set(ids.tolist())):
        own = [t for t, i in zip(templates, ids) if i == person]
        if strategy == "best":
            scores[person] = max(float(np.dot(query, t)) for t in own)
        else:
            mean = np.sum(own, axis=0)
            scores[person] = float(np.dot(query, mean / np.linalg.norm(mean)))
    return sorted(scores.items(), key=lambda item: -item[1])


@pytest.mark.parametrize("strategy", ["best", "mean"])
def test_agrees_with_brute_force_on_random_data(strategy):
    rng = np.random.default_rng(42)
    templates = rng.standard_normal((300, 16)).astype(np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    ids = rng.integers(100, 140, size=300)  # unsorted, uneven counts
    queries = templates[rng.choice(300, 20)] + 0.3 * rng.standard_normal((20, 16))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)

    results = match_many(queries, templates, ids, threshold=0.5, strategy=strategy)
    assert len(results) == 20
    for query, result in zip(queries, results):
        ranking = brute_force(query, templates, ids, strategy)
        (first, first_score), (second, second_score) = ranking[:2]
        assert (result.person_id, result.second_person_id) == (first, second)
        assert result.score == pytest.approx(first_score, abs=1e-5)
        assert result.second_score == pytest.approx(second_score, abs=1e-5)
        if first_score < 0.5:
            assert result.verdict == "unknown"
        elif second_score >= 0.5 and first_score - second_score <= 0.05:
            assert result.verdict == "ambiguous"
        else:
            assert result.verdict == "match"
        # One query alone gives the same answer (up to float rounding of the batch product).
        single = match(query, templates, ids, threshold=0.5, strategy=strategy)
        assert single.person_id == result.person_id
        assert single.score == pytest.approx(result.score, abs=1e-5)


def test_precomputed_means_match_like_the_mean_strategy():
    rng = np.random.default_rng(7)
    templates = rng.standard_normal((50, 8)).astype(np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    ids = np.sort(rng.integers(0, 10, size=50))
    means, people = person_means(templates, ids)
    assert list(people) == sorted(set(ids.tolist()))
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1.0, rtol=1e-5)
    for query in templates[:5]:
        assert match(query, means, people, threshold=0.3) == match(
            query, templates, ids, threshold=0.3, strategy="mean"
        )
