"""Who trains, who validates, who tests: identity-disjoint splits of the prepared LFW crops.

View 1 trains on the people of peopleDevTrain.txt and tests on pairsDevTest.txt. A slice of
the DevTrain people is held out: pairs among them choose the threshold and stop training
early, so neither is set on faces the model has learnt. View 2 fold k trains on the people of
the other nine folds of people.txt and tests on fold k's pairs of pairs.txt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.lfw import LFW, Pair
from training.prepare import PreparedLFW


@dataclass(frozen=True)
class PairSet:
    """Pairs as rows of the prepared crops."""

    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    folds: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.same)

    @property
    def images(self) -> np.ndarray:
        """The rows of every image in the pairs, each once, sorted."""
        return np.unique(np.concatenate([self.a, self.b]))


@dataclass(frozen=True)
class Split:
    train_rows: np.ndarray  # rows of the prepared crops used for training
    train_labels: np.ndarray  # identity index 0..C-1 of each training row
    train_names: tuple[str, ...]  # identity index -> name
    validation: PairSet  # held-out people: threshold and early stopping
    test: PairSet  # never seen in any way during training
    test_names: frozenset[str]
    description: str


def view1_split(lfw: LFW, prepared: PreparedLFW, validation_fraction: float = 0.1,
                min_images: int = 2, seed: int = 0) -> Split:
    """Train on DevTrain minus a held-out slice; test on pairsDevTest.txt."""
    test_pairs = lfw.pairs("devtest")
    return _split(prepared, sorted(lfw.people("devtrain")), test_pairs, validation_fraction, min_images, seed,
                  "View 1: train peopleDevTrain (minus validation slice), test pairsDevTest")


def view2_split(lfw: LFW, prepared: PreparedLFW, fold: int, validation_fraction: float = 0.1,
                min_images: int = 2, seed: int = 0) -> Split:
    """Train on the people of the nine other folds; test on fold `fold` of pairs.txt."""
    folds = lfw.people_folds()
    people = sorted(name for index, members in enumerate(folds) if index != fold for name in members)
    test_pairs = [pair for pair in lfw.pairs("view2") if pair.fold == fold]
    return _split(prepared, people, test_pairs, validation_fraction, min_images, seed,
                  f"View 2 fold {fold}: train the other nine folds of people.txt, test fold {fold} of pairs.txt")


def _split(prepared: PreparedLFW, people: list[str], test_pairs: list[Pair], validation_fraction: float,
           min_images: int, seed: int, description: str) -> Split:
    positions = prepared.positions()
    rows_of: dict[str, list[int]] = {}
    for row, record in enumerate(prepared.records):
        rows_of.setdefault(record["name"], []).append(row)
    test_names = frozenset(name for pair in test_pairs for name in (pair.a.name, pair.b.name))
    people = [name for name in people if name in rows_of and name not in test_names]
    rng = np.random.default_rng(seed)
    # Validation needs people with several images (for same pairs) and a few with one (for variety).
    multi = [name for name in people if len(rows_of[name]) >= 2]
    held_out = set(rng.choice(multi, size=max(2, round(len(multi) * validation_fraction)), replace=False).tolist())
    train_people = [name for name in people if name not in held_out and len(rows_of[name]) >= min_images]
    train_rows, train_labels = [], []
    for label, name in enumerate(train_people):
        train_rows += rows_of[name]
        train_labels += [label] * len(rows_of[name])
    validation = _random_pairs({name: rows_of[name] for name in sorted(held_out)}, count=1000, rng=rng)
    test = PairSet(
        a=np.array([positions[pair.a.relpath] for pair in test_pairs]),
        b=np.array([positions[pair.b.relpath] for pair in test_pairs]),
        same=np.array([pair.same for pair in test_pairs]),
    )
    return Split(np.array(train_rows), np.array(train_labels), tuple(train_people), validation, test,
                 test_names, description)


def _random_pairs(rows_of: dict[str, list[int]], count: int, rng: np.random.Generator) -> PairSet:
    """`count` same and `count` different pairs, drawn without repeats where possible."""
    names = list(rows_of)
    multi = [name for name in names if len(rows_of[name]) >= 2]
    same_pairs: set[tuple[int, int]] = set()
    different_pairs: set[tuple[int, int]] = set()
    for _ in range(count * 20):
        if len(same_pairs) >= count:
            break
        rows = rows_of[multi[rng.integers(len(multi))]]
        a, b = rng.choice(len(rows), 2, replace=False)
        same_pairs.add((min(rows[a], rows[b]), max(rows[a], rows[b])))
    for _ in range(count * 20):
        if len(different_pairs) >= count:
            break
        first, second = rng.choice(len(names), 2, replace=False)
        a = rows_of[names[first]][rng.integers(len(rows_of[names[first]]))]
        b = rows_of[names[second]][rng.integers(len(rows_of[names[second]]))]
        different_pairs.add((min(a, b), max(a, b)))
    pairs = sorted(same_pairs) + sorted(different_pairs)
    same = np.array([True] * len(same_pairs) + [False] * len(different_pairs))
    return PairSet(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), same)


def pk_batches(labels: np.ndarray, identities_per_batch: int, images_per_identity: int,
               rng: np.random.Generator, capped: bool = False):
    """Endless batches of P identities x K images (row positions into `labels`).

    Identities are drawn uniformly, not by image count, so George W. Bush's 530 photos do not
    dominate; people with fewer than K images repeat images (augmentation makes them differ).
    With `capped`, a person is drawn in proportion to min(images, K): a one-photo person a
    K-th as often as a person with K photos or more.
    """
    members: dict[int, np.ndarray] = {}
    for position, label in enumerate(labels):
        members.setdefault(int(label), []).append(position)
    members = {label: np.array(rows) for label, rows in members.items()}
    identities = np.array(sorted(members))
    weights = None
    if capped:
        weights = np.array([min(len(members[label]), images_per_identity) for label in identities], dtype=float)
        weights /= weights.sum()
    while True:
        chosen = rng.choice(identities, size=identities_per_batch, replace=False, p=weights)
        batch = [rng.choice(members[label], size=images_per_identity, replace=len(members[label]) < images_per_identity)
                 for label in chosen]
        yield np.concatenate(batch)
