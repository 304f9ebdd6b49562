"""Identity-disjoint splits and P x K batches (training/data.py).

The split tests run on a small hand-built LFW: `TinyLFW` below serves the protocol data
(`pairs`, `people`, `people_folds`) that `view1_split`/`view2_split` read, built from the real
`ImageRef`/`Pair` types, and the prepared cache is a real `PreparedLFW` with small random
crops. With $LFW_DIR set, the same properties are checked on the real LFW protocol files as
well (a split is decided from the names alone: no prepare cache is needed).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tiny_lfw import tiny_lfw_and_crops

from training.data import Split, _random_pairs, pk_batches, view1_split, view2_split
from training.lfw import ImageRef, Pair
from training.prepare import PreparedLFW

# pk_batches


def batches(labels, p, k, count, seed=0):
    generator = pk_batches(np.asarray(labels), p, k, np.random.default_rng(seed))
    return [next(generator) for _ in range(count)]


def test_pk_batches_are_p_distinct_identities_of_k_rows():
    # Identity sizes: 1, 2, 3, ... 8 images, shuffled positions.
    labels = np.concatenate([[label] * (label + 1) for label in range(8)])
    labels = labels[np.random.default_rng(0).permutation(len(labels))]
    p, k = 4, 3
    for batch in batches(labels, p, k, 200):
        assert batch.shape == (p * k,)
        groups = batch.reshape(p, k)
        group_labels = labels[groups]
        assert (group_labels == group_labels[:, :1]).all(), "a group of K rows mixes identities"
        assert len(set(group_labels[:, 0])) == p, "identities repeat within a batch"
        for rows, label in zip(groups, group_labels[:, 0]):
            if (labels == label).sum() >= k:
                assert len(set(rows)) == k, f"identity {label} has enough images but repeats one"


def test_pk_batches_repeat_rows_only_for_small_identities():
    labels = np.array([0, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    k = 3
    repeated = Counter()
    for batch in batches(labels, 4, k, 100, seed=1):
        for rows in batch.reshape(4, k):
            label = int(labels[rows[0]])
            if len(set(rows)) < k:
                repeated[label] += 1
    assert repeated[0] == 100  # one image: every group is that image three times
    assert repeated[1] == 100  # two images for three slots: a repeat every time
    assert repeated[2] == 0 and repeated[3] == 0


def test_pk_batches_draw_identities_uniformly_not_by_image_count():
    # Identity 0 has 100x the images of each other identity (think George W. Bush).
    labels = np.array([0] * 300 + [label for label in range(1, 10) for _ in range(3)])
    p, k, count = 4, 2, 2000
    picks = Counter()
    for batch in batches(labels, p, k, count, seed=2):
        picks.update(int(label) for label in labels[batch.reshape(p, k)[:, 0]])
    expected = count * p / 10  # 800 each
    assert set(picks) == set(range(10))
    for label, times in picks.items():
        assert abs(times - expected) < 0.15 * expected, f"identity {label} picked {times} times"
    assert picks[0] < 1.15 * expected


def test_capped_pk_batches_draw_people_by_images_up_to_k():
    # 1, 2, 4 and 50 images with K = 4: weights 1 : 2 : 4 : 4.
    labels = np.repeat([0, 1, 2, 3], [1, 2, 4, 50])
    generator = pk_batches(labels, 1, 4, np.random.default_rng(3), capped=True)
    picks = Counter(int(labels[next(generator)[0]]) for _ in range(5500))
    for label, expected in {0: 500, 1: 1000, 2: 2000, 3: 2000}.items():
        assert abs(picks[label] - expected) < 0.1 * expected, f"identity {label} picked {picks[label]} times"


# _random_pairs

def check_pairs(pairs, rows_of):
    name_of = {row: name for name, rows in rows_of.items() for row in rows}
    seen = set()
    for a, b, same in zip(pairs.a.tolist(), pairs.b.tolist(), pairs.same.tolist()):
        assert a < b, "a pair of one image with itself, or not ordered"
        assert (name_of[a] == name_of[b]) == same, f"pair ({a}, {b}) labelled same={same}"
        assert (a, b) not in seen, "a repeated pair"
        seen.add((a, b))


def test_random_pairs_balance_and_labels():
    rows_of = {"ann": [0, 1, 2, 3], "bob": [4, 5, 6], "cy": [7], "dee": [8, 9, 10, 11, 12], "eve": [13, 14]}
    pairs = _random_pairs(rows_of, count=12, rng=np.random.default_rng(0))
    assert len(pairs) == 24
    assert pairs.same.sum() == 12 and (~pairs.same).sum() == 12
    check_pairs(pairs, rows_of)


def test_random_pairs_are_capped_by_the_same_pairs_that_exist():
    # Only one person has two images: a single same pair exists, the different pairs still fill up.
    rows_of = {"ann": [0, 1], "bob": [2], "cy": [3], "dee": [4], "eve": [5]}
    pairs = _random_pairs(rows_of, count=5, rng=np.random.default_rng(1))
    assert pairs.same.sum() == 1 and (~pairs.same).sum() == 5
    check_pairs(pairs, rows_of)


# view1_split / view2_split on a tiny hand-built LFW

@pytest.fixture(scope="module")
def tiny():
    return tiny_lfw_and_crops()


def check_split(split: Split, prepared, test_pairs: list[Pair], min_images: int = 2) -> None:
    """The properties every split must have, whatever data it was built from."""
    names = np.array([record["name"] for record in prepared.records])
    relpaths = [record["relpath"] for record in prepared.records]
    test_names = {name for pair in test_pairs for name in (pair.a.name, pair.b.name)}
    assert split.test_names == frozenset(test_names)

    train_names = set(names[split.train_rows])
    validation_rows = np.concatenate([split.validation.a, split.validation.b])
    validation_names = set(names[validation_rows])
    assert not train_names & test_names, "a test identity is in the training rows"
    assert not validation_names & test_names, "a test identity is in the validation pairs"
    assert not validation_names & train_names, "a validation identity is in the training rows"

    # Labels 0..C-1, one per name, in agreement with train_names and the records.
    labels = split.train_labels
    assert len(labels) == len(split.train_rows)
    assert sorted(set(labels.tolist())) == list(range(len(split.train_names)))
    assert len(set(split.train_names)) == len(split.train_names)
    for row, label in zip(split.train_rows.tolist(), labels.tolist()):
        assert names[row] == split.train_names[label]
    # Every image of a training person is used, once; nobody with fewer than min_images trains.
    counts = Counter(names.tolist())
    assert len(set(split.train_rows.tolist())) == len(split.train_rows)
    for name in split.train_names:
        assert (names[split.train_rows] == name).sum() == counts[name] >= min_images

    # Validation pairs are correctly labelled, both kinds present.
    for a, b, same in zip(split.validation.a.tolist(), split.validation.b.tolist(), split.validation.same.tolist()):
        assert a != b and (names[a] == names[b]) == same
    assert split.validation.same.any() and not split.validation.same.all()

    # Test pairs are exactly the protocol pairs, in order, as rows of the crops.
    assert len(split.test) == len(test_pairs)
    for a, b, same, pair in zip(split.test.a.tolist(), split.test.b.tolist(), split.test.same.tolist(), test_pairs):
        assert relpaths[a] == pair.a.relpath and relpaths[b] == pair.b.relpath and same == pair.same


@pytest.mark.parametrize("fold", [0, 3, 9])
def test_view2_split_is_identity_disjoint(tiny, fold):
    lfw, prepared = tiny
    split = view2_split(lfw, prepared, fold, validation_fraction=0.25)
    test_pairs = [pair for pair in lfw.pairs("view2") if pair.fold == fold]
    check_split(split, prepared, test_pairs)
    names = {record["name"] for record in prepared.records}
    fold_people = set(lfw.people_folds()[fold])
    assert not fold_people & set(split.train_names), f"a person of fold {fold} trains"
    # Everyone eligible from the other folds either trains or validates.
    validation_names = {prepared.records[row]["name"] for row in np.concatenate([split.validation.a, split.validation.b])}
    eligible = {name for index, members in enumerate(lfw.people_folds()) if index != fold
                for name, n in members.items() if n >= 2 and name in names} - split.test_names
    assert eligible - validation_names <= set(split.train_names)
    if fold == 0:  # the stray pair's other-fold person is a test identity and must not train
        assert "P5_2" in split.test_names and "P5_2" not in split.train_names


def test_view1_split_is_identity_disjoint(tiny):
    lfw, prepared = tiny
    split = view1_split(lfw, prepared, validation_fraction=0.25)
    check_split(split, prepared, lfw.pairs("devtest"))
    assert set(split.train_names) <= set(lfw.people("devtrain"))
    assert "P1_3" not in split.train_names  # named by a test pair, though a DevTrain person


def test_single_photo_people_train_only_when_asked_and_never_from_the_test(tiny):
    lfw, prepared = tiny
    counts = Counter(record["name"] for record in prepared.records)
    default = view1_split(lfw, prepared, validation_fraction=0.25)
    with_singles = view1_split(lfw, prepared, validation_fraction=0.25, min_images=1)
    check_split(with_singles, prepared, lfw.pairs("devtest"), min_images=1)
    singles = set(with_singles.train_names) - set(default.train_names)
    assert singles and all(counts[name] == 1 for name in singles)
    # The held-out validation people do not depend on who trains.
    np.testing.assert_array_equal(default.validation.a, with_singles.validation.a)


def test_splits_are_deterministic_for_a_seed(tiny):
    lfw, prepared = tiny
    one, two = (view2_split(lfw, prepared, 2, validation_fraction=0.25, seed=5) for _ in range(2))
    np.testing.assert_array_equal(one.train_rows, two.train_rows)
    np.testing.assert_array_equal(one.validation.a, two.validation.a)
    np.testing.assert_array_equal(one.validation.b, two.validation.b)


# The same properties on the real LFW protocol files (CI provides them). Who trains, validates
# and tests is decided from the names alone, so no prepared crops are needed.

def protocol_images(lfw) -> PreparedLFW:
    """Every LFW image as lfw-names.txt counts them, in LFW order, in place of a prepare cache (a
    split reads only its records' names and paths; the crops are placeholders)."""
    refs = sorted(ImageRef(name, n) for name, count in lfw.people("all").items() for n in range(1, count + 1))
    records = [{"name": ref.name, "relpath": ref.relpath} for ref in refs]
    return PreparedLFW(Path("protocol files"), np.zeros((len(records), 1, 1, 3), np.uint8), records, {})


@pytest.mark.lfw
def test_real_lfw_splits_are_identity_disjoint(lfw):
    prepared = protocol_images(lfw)
    assert len(prepared.records) == 13233  # the whole of LFW
    split = view1_split(lfw, prepared)
    check_split(split, prepared, lfw.pairs("devtest"))
    # No View 1 test person trains or validates, whether or not a test pair names them.
    names = np.array([record["name"] for record in prepared.records])
    validating = set(names[np.concatenate([split.validation.a, split.validation.b])])
    assert not set(lfw.people("devtest")) & (set(split.train_names) | validating)
    for fold in (0, 9):
        split = view2_split(lfw, prepared, fold)
        check_split(split, prepared, [pair for pair in lfw.pairs("view2") if pair.fold == fold])
        assert not set(lfw.people_folds()[fold]) & set(split.train_names)
