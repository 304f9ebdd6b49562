"""The training losses against hand-computed values and plain-numpy loops on tiny inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from training import losses

MARGIN = 0.3


def chord(degrees: float) -> float:
    """Distance between two unit vectors `degrees` apart."""
    return 2.0 * math.sin(math.radians(degrees) / 2.0)


def on_circle(*degrees: float) -> tf.Tensor:
    """2-D unit vectors at the given angles."""
    radians = np.radians(degrees)
    return tf.constant(np.stack([np.cos(radians), np.sin(radians)], axis=1), tf.float32)


def random_unit(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# Plain-numpy references: loops, in float64, written from the papers' definitions.

def ref_distances(e: np.ndarray) -> np.ndarray:
    n = len(e)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = math.sqrt(sum((e[i] - e[j]) ** 2))
    return out


def ref_batch_hard(e: np.ndarray, labels, margin: float) -> float:
    d = ref_distances(e)
    terms = []
    for a in range(len(e)):
        positives = [d[a, p] for p in range(len(e)) if p != a and labels[p] == labels[a]]
        negatives = [d[a, n] for n in range(len(e)) if labels[n] != labels[a]]
        if not positives:
            continue  # an anchor without a positive makes no triplet
        terms.append(max(0.0, margin + max(positives) - min(negatives)))
    return sum(terms) / len(terms)


def ref_semi_hard(e: np.ndarray, labels, margin: float) -> tuple[float, int, int]:
    """Mean loss over all (anchor, positive) pairs, and how often each negative rule was used."""
    d = ref_distances(e)
    terms, semi_hard_used, fallback_used = [], 0, 0
    for a in range(len(e)):
        negatives = [d[a, n] for n in range(len(e)) if labels[n] != labels[a]]
        for p in range(len(e)):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [x for x in negatives if x > d[a, p]]
            if farther:
                chosen, semi_hard_used = min(farther), semi_hard_used + 1
            else:
                chosen, fallback_used = min(negatives), fallback_used + 1
            terms.append(max(0.0, margin + d[a, p] - chosen))
    return sum(terms) / len(terms), semi_hard_used, fallback_used


# pairwise_distances

def test_pairwise_distances_by_hand():
    d = losses.pairwise_distances(on_circle(0, 60, 180)).numpy()
    expected = np.array([[0, 1, 2], [1, 0, math.sqrt(3)], [2, math.sqrt(3), 0]])
    np.testing.assert_allclose(d, expected, atol=1e-5)


def test_pairwise_distances_match_numpy_loop():
    e = random_unit(7, 5, seed=1)
    d = losses.pairwise_distances(tf.constant(e, tf.float32)).numpy()
    off_diagonal = ~np.eye(len(e), dtype=bool)
    np.testing.assert_allclose(d[off_diagonal], ref_distances(e)[off_diagonal], atol=1e-5)
    np.testing.assert_allclose(d, d.T, atol=1e-6)
    # sqrt(2 - 2 cos) in float32: a self-distance is sqrt(float32 rounding of cos), up to ~5e-4,
    # not 0. Harmless: the triplet losses never use the diagonal, but it is not exact.
    assert (np.diag(d) < 1e-3).all()


def test_pairwise_distances_gradient_is_finite_on_the_diagonal():
    e = tf.Variable(random_unit(4, 3, seed=2), dtype=tf.float32)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(losses.pairwise_distances(e))
    assert np.isfinite(tape.gradient(total, e).numpy()).all()


# contrastive_loss

def test_contrastive_loss_by_hand():
    distance = tf.constant([0.5, 0.5, 1.5, 0.2])
    same = tf.constant([True, False, False, True])
    # same: d^2 -> 0.25 and 0.04; different: relu(1 - d)^2 -> 0.25 and 0.
    expected = (0.25 + 0.25 + 0.0 + 0.04) / 4
    assert float(losses.contrastive_loss(distance, same, margin=1.0)) == pytest.approx(expected, abs=1e-6)


def test_contrastive_loss_matches_numpy_loop_with_margin():
    rng = np.random.default_rng(3)
    distance = rng.uniform(0, 2, size=8)
    same = rng.integers(0, 2, size=8).astype(bool)
    margin = 1.3
    expected = np.mean([d * d if s else max(0.0, margin - d) ** 2 for d, s in zip(distance, same)])
    got = float(losses.contrastive_loss(tf.constant(distance, tf.float32), tf.constant(same), margin=margin))
    assert got == pytest.approx(expected, abs=1e-5)


# pair_bce_loss

def test_pair_bce_loss_by_hand_and_numpy():
    probability = np.array([0.9, 0.2, 0.6, 0.05, 0.5])
    same = np.array([True, False, True, True, False])
    expected = -np.mean([math.log(p) if s else math.log(1 - p) for p, s in zip(probability, same)])
    got = float(losses.pair_bce_loss(tf.constant(probability, tf.float32), tf.constant(same)))
    assert got == pytest.approx(expected, rel=1e-5)
    # By hand for one pair: -log(0.9).
    one = float(losses.pair_bce_loss(tf.constant([0.9]), tf.constant([True])))
    assert one == pytest.approx(-math.log(0.9), rel=1e-5)


# batch_hard_triplet_loss

def test_batch_hard_triplet_loss_by_hand():
    # Angles 0 (A), 60 (B), 180 (A). Anchor 0: positive at 180 (d=2), nearest negative 60 (d=1).
    # Anchor 2: positive 0 (d=2), nearest negative 60 (d=sqrt 3). Anchor 1 has no positive: excluded.
    e = on_circle(0, 60, 180)
    labels = tf.constant([0, 1, 0])
    expected = ((MARGIN + 2 - 1) + (MARGIN + 2 - math.sqrt(3))) / 2
    assert float(losses.batch_hard_triplet_loss(e, labels, MARGIN)) == pytest.approx(expected, abs=1e-5)


def test_batch_hard_triplet_loss_matches_numpy_loop():
    e = random_unit(8, 4, seed=4)
    labels = [0, 0, 0, 1, 1, 2, 2, 3]  # identity 3 has a single image: no triplet from it as anchor
    got = float(losses.batch_hard_triplet_loss(tf.constant(e, tf.float32), tf.constant(labels), MARGIN))
    assert got == pytest.approx(ref_batch_hard(e, labels, MARGIN), abs=1e-5)
    # A larger margin makes every term active: still the same per-anchor definition.
    got = float(losses.batch_hard_triplet_loss(tf.constant(e, tf.float32), tf.constant(labels), 2.5))
    assert got == pytest.approx(ref_batch_hard(e, labels, 2.5), abs=1e-5)


def test_batch_hard_triplet_loss_is_zero_without_any_positive():
    e = tf.constant(random_unit(3, 4, seed=5), tf.float32)
    assert float(losses.batch_hard_triplet_loss(e, tf.constant([0, 1, 2]), MARGIN)) == 0.0


def test_batch_hard_triplet_loss_seeks_the_nearest_impostor_in_the_memory_too():
    # The batch of the hand example above, and a memory holding: an impostor at 20 degrees
    # (nearer anchor 0 than the batch's 60), an image of person 0 at 10 degrees (same person: not an
    # impostor) and an empty row (label -1) at 1 degree.
    e, labels = on_circle(0, 60, 180), tf.constant([0, 1, 0])
    memory, memory_labels = on_circle(20, 10, 1), tf.constant([5, 0, -1])
    # Anchor 0: nearest negative now 20 deg away; anchor 2 (180): still 60 deg away in the batch (120 deg).
    expected = ((MARGIN + 2 - chord(20)) + (MARGIN + 2 - math.sqrt(3))) / 2
    got = losses.batch_hard_triplet_loss(e, labels, MARGIN, memory=memory, memory_labels=memory_labels)
    assert float(got) == pytest.approx(expected, abs=1e-5)
    # An empty memory changes nothing.
    empty = losses.batch_hard_triplet_loss(e, labels, MARGIN, memory=memory, memory_labels=tf.constant([-1, -1, -1]))
    assert float(empty) == pytest.approx(float(losses.batch_hard_triplet_loss(e, labels, MARGIN)), abs=1e-6)


def test_cross_batch_memory_keeps_the_latest_rows_and_wraps_around():
    memory = losses.CrossBatchMemory(size=5, dimension=2)
    assert memory.labels.numpy().tolist() == [-1] * 5
    memory.push(tf.constant([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]), tf.constant([1, 2, 3]))
    memory.push(tf.constant([[0.8, 0.6], [-1.0, 0.0], [0.0, -1.0]]), tf.constant([4, 5, 6]))
    # Six rows into five: the first row was overwritten by the last.
    assert memory.labels.numpy().tolist() == [6, 2, 3, 4, 5]
    np.testing.assert_allclose(memory.embeddings.numpy()[0], [0.0, -1.0])
    assert int(memory.next_row.numpy()) == 1


# semi_hard_triplet_loss

def test_semi_hard_triplet_loss_by_hand():
    # A at 0 and 90 degrees, B at 45 and 170 degrees.
    e = on_circle(0, 90, 45, 170)
    labels = tf.constant([0, 0, 1, 1])
    terms = [
        # (0, 90): negatives at 45 deg (0.765) and 170 deg (1.992); semi-hard: 170 -> negative term.
        max(0.0, MARGIN + chord(90) - chord(170)),
        # (90, 0): negatives at 45 deg and 80 deg, both nearer than the positive: hardest (45).
        MARGIN + chord(90) - chord(45),
        # (45, 170): negatives at 45 deg and 45 deg, both nearer than the positive (125): hardest.
        MARGIN + chord(125) - chord(45),
        # (170, 45): negatives at 170 and 80 deg; only 170 is farther than 125: semi-hard.
        MARGIN + chord(125) - chord(170),
    ]
    assert terms[0] == 0.0
    got = float(losses.semi_hard_triplet_loss(e, labels, MARGIN))
    assert got == pytest.approx(sum(terms) / 4, abs=1e-5)


def test_semi_hard_triplet_loss_matches_numpy_loop():
    e = random_unit(8, 3, seed=1)
    labels = [0, 0, 0, 1, 1, 2, 2, 3]
    expected, semi_hard_used, fallback_used = ref_semi_hard(e, labels, MARGIN)
    assert semi_hard_used and fallback_used, "the fixture must exercise both negative rules"
    got = float(losses.semi_hard_triplet_loss(tf.constant(e, tf.float32), tf.constant(labels), MARGIN))
    assert got == pytest.approx(expected, abs=1e-5)


# cosface_loss

def ref_cosface(cosines: np.ndarray, labels, scale: float, margin: float) -> float:
    terms = []
    for row, label in zip(cosines, labels):
        logits = [scale * (c - (margin if j == label else 0.0)) for j, c in enumerate(row)]
        top = max(logits)
        log_sum = top + math.log(sum(math.exp(x - top) for x in logits))
        terms.append(log_sum - logits[label])
    return sum(terms) / len(terms)


def test_cosface_loss_by_hand():
    # Two classes, true cosine 0.5, other 0.0, s=2, m=0.25: logits (0.5, 0) -> CE = log(1 + e^-0.5).
    got = float(losses.cosface_loss(tf.constant([[0.5, 0.0]]), tf.constant([0]), scale=2.0, margin=0.25))
    assert got == pytest.approx(math.log(1 + math.exp(-0.5)), rel=1e-6)


@pytest.mark.parametrize("scale, margin", [(30.0, 0.25), (16.0, 0.4), (1.0, 0.0)])
def test_cosface_loss_matches_numpy_loop(scale, margin):
    rng = np.random.default_rng(7)
    cosines = rng.uniform(-1, 1, size=(4, 5))
    labels = [3, 0, 4, 3]
    got = float(losses.cosface_loss(tf.constant(cosines, tf.float32), tf.constant(labels), scale=scale, margin=margin))
    assert got == pytest.approx(ref_cosface(cosines, labels, scale, margin), rel=1e-5, abs=1e-5)


# mine_pairs

P, K = 4, 3


def pk_batch(seed: int):
    e = random_unit(P * K, 6, seed)
    labels = np.repeat(np.arange(P), K)[np.random.default_rng(seed).permutation(P * K)]
    return e, labels


def mined(e, labels, seed, hard_fraction=0.5):
    first, second, same = losses.mine_pairs(tf.constant(e, tf.float32), tf.constant(labels, tf.int32),
                                            tf.constant(seed, tf.int32), hard_fraction=hard_fraction)
    return first.numpy(), second.numpy(), same.numpy()


@pytest.mark.parametrize("hard_fraction", [0.0, 0.5, 1.0])
def test_mine_pairs_are_balanced_and_correctly_labelled(hard_fraction):
    e, labels = pk_batch(seed=8)
    n = P * K
    first, second, same = mined(e, labels, [1, 2], hard_fraction)
    assert len(first) == len(second) == len(same) == 2 * n
    assert same.sum() == n and (~same).sum() == n
    np.testing.assert_array_equal(first, np.concatenate([np.arange(n), np.arange(n)]))
    for a, b, s in zip(first, second, same):
        assert 0 <= b < n
        if s:
            assert b != a and labels[b] == labels[a]  # a different image of the same person
        else:
            assert labels[b] != labels[a]


def test_mine_pairs_hard_negative_is_the_most_similar_other_identity():
    e, labels = pk_batch(seed=9)
    n = P * K
    _, second, _ = mined(e, labels, [3, 4], hard_fraction=1.0)
    for anchor in range(n):
        others = [j for j in range(n) if labels[j] != labels[anchor]]
        nearest = max(others, key=lambda j: float(np.dot(e[anchor], e[j])))
        assert second[n + anchor] == nearest


def test_mine_pairs_random_negatives_are_not_always_the_hardest():
    e, labels = pk_batch(seed=10)
    n = P * K
    _, hard, _ = mined(e, labels, [0, 0], hard_fraction=1.0)
    _, soft, _ = mined(e, labels, [0, 0], hard_fraction=0.0)
    assert (hard[n:] != soft[n:]).any()


def test_mine_pairs_is_deterministic_for_a_seed():
    e, labels = pk_batch(seed=11)
    one = mined(e, labels, [5, 6])
    two = mined(e, labels, [5, 6])
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)
    other = mined(e, labels, [5, 7])
    assert not np.array_equal(one[1], other[1])  # another seed draws other positives/negatives
