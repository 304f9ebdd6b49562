"""Matching face embeddings against the gallery: pure numpy, no storage.

Templates and queries are L2-normalised embeddings, scored by kiosk.scoring (cosine unless the
model card names a fitted back end), one matrix product either way.
Per-person scores come from one reduceat over the similarity matrix, so the
cost of strategy "best" is essentially one matrix product. Strategy "mean"
first averages each person's templates, which costs several times more; to
match many frames against a large gallery, compute person_means() once per
gallery change and match against it with strategy "best": the result is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kiosk.scoring import CosineScoring, Scoring

STRATEGIES = ("best", "mean")


@dataclass(frozen=True)
class Match:
    """The outcome of matching one face. Only verdict == "match" identifies someone.

    person_id/score describe the most similar person even when the verdict is
    "unknown" or "ambiguous" (useful for logs and threshold tuning); person_id is
    None and score -inf only when there were no templates at all.
    """

    person_id: int | None
    score: float
    second_person_id: int | None  # the runner-up, always a different person
    second_score: float | None
    verdict: str  # "match" | "unknown" | "ambiguous"


def match(
    query: np.ndarray,
    templates: np.ndarray,
    person_ids: np.ndarray,
    *,
    threshold: float,
    ambiguity_margin: float = 0.05,
    strategy: str = "best",
    scoring: Scoring | None = None,
) -> Match:
    """Match one D-dim query against N x D templates labelled with N person ids.

    strategy "best" scores a person by their most similar template, "mean" by
    the similarity to their re-normalised mean template. Below threshold the
    verdict is "unknown"; if the runner-up also reaches the threshold and is
    within ambiguity_margin of the best, it is "ambiguous".
    """
    query = np.asarray(query)
    if query.ndim != 1:
        raise ValueError(f"query must be 1-D, got shape {query.shape}")
    return match_many(
        query[np.newaxis],
        templates,
        person_ids,
        threshold=threshold,
        ambiguity_margin=ambiguity_margin,
        strategy=strategy,
        scoring=scoring,
    )[0]


def match_many(
    queries: np.ndarray,
    templates: np.ndarray,
    person_ids: np.ndarray,
    *,
    threshold: float,
    ambiguity_margin: float = 0.05,
    strategy: str = "best",
    scoring: Scoring | None = None,
) -> list[Match]:
    """match() for an M x D batch of queries; one Match per query."""
    queries = np.asarray(queries, dtype=np.float32)
    templates, person_ids = _check_gallery(templates, person_ids)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if queries.ndim != 2:
        raise ValueError(f"queries must be M x D, got shape {queries.shape}")
    if len(templates) == 0:
        return [Match(None, float("-inf"), None, None, "unknown") for _ in queries]
    if queries.shape[1] != templates.shape[1]:
        raise ValueError(
            f"query dimension {queries.shape[1]} != template dimension {templates.shape[1]}"
        )
    if strategy == "mean":
        templates, person_ids = person_means(templates, person_ids)

    # Per person, the best similarity over their templates.
    order, starts, people = group_people(person_ids)
    similarities = (scoring or CosineScoring()).matrix(queries, templates)
    if order is not None:
        similarities = similarities[:, order]
    scores = np.maximum.reduceat(similarities, starts, axis=1)

    rows = np.arange(len(queries))
    best = scores.argmax(axis=1)
    best_scores = scores[rows, best]  # fancy indexing copies, so masking below is safe
    scores[rows, best] = -np.inf  # scores is our own array
    second = scores.argmax(axis=1)  # meaningless with a single person, see below
    second_scores = scores[rows, second]
    has_second = len(people) > 1

    results = []
    for i in range(len(queries)):
        score = float(best_scores[i])
        second_id = int(people[second[i]]) if has_second else None
        second_score = float(second_scores[i]) if has_second else None
        if score < threshold:
            verdict = "unknown"
        elif (
            second_score is not None
            and second_score >= threshold
            and score - second_score <= ambiguity_margin
        ):
            verdict = "ambiguous"
        else:
            verdict = "match"
        results.append(Match(int(people[best[i]]), score, second_id, second_score, verdict))
    return results


def person_means(templates: np.ndarray, person_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P x D re-normalised mean template of each person, their P ids in ascending order)."""
    templates, person_ids = _check_gallery(templates, person_ids)
    order, starts, people = group_people(person_ids)
    if order is not None:
        templates = templates[order]
    counts = np.diff(np.r_[starts, len(person_ids)])
    # Sum rank by rank (each person's k-th template at step k), people with the
    # most templates first so that each step adds to a prefix: far faster than
    # np.add.reduceat, whose per-segment overhead dominates with few templates each.
    by_count = np.argsort(-counts, kind="stable")
    first_rows, counts = starts[by_count], counts[by_count]
    sums = templates[first_rows]  # fancy indexing copies
    for k in range(1, int(counts.max(initial=0))):
        n = np.count_nonzero(counts > k)
        sums[:n] += templates[first_rows[:n] + k]
    means = np.empty_like(sums)
    means[by_count] = sums
    # Opposite templates could cancel out; tiny keeps the division finite.
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return means, people


def _check_gallery(templates: np.ndarray, person_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    templates = np.asarray(templates, dtype=np.float32)
    person_ids = np.asarray(person_ids)
    if templates.ndim != 2 or person_ids.shape != templates.shape[:1]:
        raise ValueError(
            f"need N x D templates and N person ids, got shapes "
            f"{templates.shape} and {person_ids.shape}"
        )
    return templates, person_ids


def group_people(person_ids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(sorting order or None if already sorted, group starts in sorted order, distinct ids).

    reduceat needs each person's templates contiguous; Gallery.matrix() already
    returns them sorted, so the argsort is usually skipped.
    """
    order = None
    if np.any(person_ids[1:] < person_ids[:-1]):
        order = np.argsort(person_ids, kind="stable")
        person_ids = person_ids[order]
    is_start = np.ones(len(person_ids), dtype=bool)
    is_start[1:] = person_ids[1:] != person_ids[:-1]
    starts = np.flatnonzero(is_start)
    return order, starts, person_ids[starts]
