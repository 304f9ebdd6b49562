"""The door's rule, calibrated to the site: how strict to be with the faces this camera sees.

A model card's threshold is measured on LFW's web photos, where two different people almost
never share a camera, a background and a light. At a door they always do, and every stranger
then scores closer to the enrolled people than an LFW stranger would. So the kiosk measures
what a stranger looks like *here*, from the one sample of site impostors it always has: the
enrolled people themselves, who are strangers to each other.

- Each template of each person is scored against every other person as matching scores them
  (by their most similar template, or by their mean template: the card's strategy), and each
  person keeps their most alike template against each other person: with P people that is
  P x (P - 1) scores of a face from this camera against someone it is not. The most alike, not
  every template: a visitor offers the camera several photos, and strangers who look alike do
  so in every photo, which the many ordinary comparisons of a pair would drown (ORL at 1 in 100:
  7 of 200 stranger photos let in when every template counted, 1 with each person's most alike).
- Those scores are modelled as a normal distribution (their mean and spread). A cosine is bounded
  by 1, so its upper tail is squeezed against that bound: cosines are modelled after Fisher's
  z-transform (atanh), as correlation coefficients are; a fitted back end's scores are unbounded
  and modelled as they are. A visitor who is
  nobody is compared with all P people, so for at most `far` false accepts per visitor each
  comparison must pass at far / P: the site's threshold is that upper quantile, read as a
  one-sided tolerance bound (CONFIDENCE): with 5 people the mean and spread come from only 10
  pairs of people and could be far off, so the bound lies well above the plain quantile; with
  hundreds it is nearly the quantile itself.
- The door uses the stricter of the site's threshold and the model card's own rule for the
  gallery's size; it is never looser than the card.
- With fewer than MIN_SITE_PEOPLE people the site sample is too small to trust, and the door
  asks each comparison for STRICT_START_FAR, read from the card's table, until there are
  enough people to measure.

Everything here is numpy and the standard library: it runs wherever matching runs, and it is
recomputed whenever the gallery changes (FaceEngine caches it per gallery matrix).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from kiosk.matching import group_people, person_means
from kiosk.modelcard import ModelCard

# Visitors per false accept the admin may choose ("1 in 1,000" ...). 1,000 is the shipped rule: at
# 1 in 100, a video of a stranger, which offers the model a new photo every half second, got in 2
# times in 20 at a one-camera site (reports/door.json); LOOSER_RISKS let more strangers in and need
# an explicit confirmation.
RISKS = (20, 100, 1000, 10000)
DEFAULT_RISK = 1000
LOOSER_RISKS = tuple(risk for risk in RISKS if risk < DEFAULT_RISK)
# Fewer enrolled people than this: too few site impostor scores to estimate a tail from.
MIN_SITE_PEOPLE = 5
# How sure the site's threshold must be to hold the chosen rate (a one-sided normal tolerance
# bound): 90% sure, counting each pair of enrolled people as one independent observation.
CONFIDENCE = 0.9
# Until the site can be measured, each comparison must hold this false-accept rate by the card's
# table. Fewer than MIN_SITE_PEOPLE people: a stranger meets at most 4 means, so the card alone
# holds 1 in 2,500 visitors; the rest is margin for a one-camera site, where strangers look more
# alike (ORL with one person enrolled: no stranger in 4,000 photos, 98.6% of the enrolled in:
# reports/door.json).
STRICT_START_FAR = 1e-4
# Cosines are clipped this far inside +-1 before Fisher's transform (a face against its own copy).
FISHER_LIMIT = 1 - 1e-6
# Templates scored at once when measuring a site: bounds its memory to about ROWS_AT_ONCE x people scores.
ROWS_AT_ONCE = 1024
# Templates scored against everyone at most: 3,000 x 10,000 people is 30 million scores (about a
# second), and 1,000 people's against everyone is ample for a mean and a spread.
MOST_ROWS = 3000
# The match shown to people (0-100): the door's threshold sits at GRANT_LINE.
GRANT_LINE = 70


@dataclass(frozen=True)
class SiteCalibration:
    """What the kiosk measured of its own site: the enrolled people scored against each other."""

    people: int
    templates: int
    impostor_scores: int  # person-against-other-person scores measured (each person's most alike template)
    mean: float | None  # of those scores (None without any)
    spread: float | None  # their standard deviation
    closest: tuple[int, int, float] | None  # the two most alike people (ids) and their score
    bounded: bool = False  # cosine scores: mean and spread are of their Fisher z-transforms
    strategy: str = "best"  # how a person was scored (kiosk.matching): their best or their mean template
    templates_per_person: int = 1  # the most templates any one person has

    def _to_model(self, score: float) -> float:
        return math.atanh(min(max(score, -FISHER_LIMIT), FISHER_LIMIT)) if self.bounded else score

    def _from_model(self, value: float) -> float:
        return math.tanh(value) if self.bounded else value

    def site_threshold(self, far_per_visitor: float) -> float | None:
        """The score a comparison must reach for `far_per_visitor` false accepts per visitor at
        this site (None while the site sample is too small to estimate it)."""
        if self.people < MIN_SITE_PEOPLE or self.spread is None or self.spread <= 0:
            return None
        per_person = min(far_per_visitor / self.people, 0.5)
        pairs = self.people * (self.people - 1) // 2
        return self._from_model(self.mean + tolerance_factor(per_person, pairs) * self.spread)

    def estimated_far(self, threshold: float) -> float | None:
        """About how many visitors in one are falsely accepted at `threshold`, by the site's model."""
        if self.people < MIN_SITE_PEOPLE or self.spread is None or self.spread <= 0:
            return None
        per_person = 1.0 - NormalDist(self.mean, self.spread).cdf(self._to_model(threshold))
        return min(1.0, self.people * per_person)


@dataclass(frozen=True)
class DoorRule:
    """The threshold in force for one gallery at one risk, and where it comes from."""

    risk: int  # visitors per false accept the rule aims at
    threshold: float  # similarity >= threshold opens the door
    source: str  # "site", "model card" or "strict start"
    card_threshold: float  # the card's rule for this gallery's size
    site_threshold: float | None  # the site's estimate (None: too few people)
    calibration: SiteCalibration
    low: float  # a typical stranger's score (match 0), from the card

    @property
    def estimated_far(self) -> float | None:
        return self.calibration.estimated_far(self.threshold)

    def match_percent(self, score: float) -> int:
        """`score` on the 0-100 scale people see: GRANT_LINE at the threshold, 0 at a typical stranger."""
        return match_percent(score, self.threshold, self.low)

    def describe(self) -> str:
        """The rule in force, in a sentence (the admin window's first line, `run`'s start)."""
        calibration = self.calibration
        if self.source == "strict start":
            people = f"{calibration.people} person" if calibration.people == 1 else f"{calibration.people} people"
            return (f"In force: the model's strict starting rule (threshold {self.threshold:.3f}). With {people} enrolled "
                    f"the kiosk cannot yet measure how alike strangers look through this camera; it will from "
                    f"{MIN_SITE_PEOPLE} people on.")
        far = self.estimated_far
        estimate = f" — estimated 1 in {max(1, round(1 / far)):,}" if far else ""
        origin = "measured at this site" if self.source == "site" else "the model card's, stricter than this site needs"
        return (f"In force: threshold {self.threshold:.3f}, {origin} from {calibration.people} enrolled people "
                f"({calibration.impostor_scores:,} comparisons of people who are not each other), aiming at "
                f"{risk_words(self.risk)} at most{estimate}.")


def measure_site(templates: np.ndarray, person_ids: np.ndarray, scoring, strategy: str = "best") -> SiteCalibration:
    """Score every template against every other enrolled person, as matching with `strategy`
    scores them (their best template, or their mean template), and keep each person's most alike
    template against each other person.

    The templates of about ROWS_AT_ONCE templates' worth of people are scored at a time, so a site
    of 10,000 people needs a few hundred MB, not the whole matrix at once; beyond MOST_ROWS
    templates an evenly spread share of the people is scored against everyone (the closest pair is
    then the closest among them).
    """
    templates = np.asarray(templates, np.float32)
    person_ids = np.asarray(person_ids)
    if len(templates) == 0:
        return SiteCalibration(0, 0, 0, None, None, None, strategy=strategy)
    order, starts, people = group_people(person_ids)
    if order is not None:
        templates, person_ids = templates[order], person_ids[order]
    counts = np.diff(np.r_[starts, len(templates)])
    if len(people) < 2:
        return SiteCalibration(len(people), len(templates), 0, None, None, None, strategy=strategy,
                               templates_per_person=int(counts.max()))
    bounded = getattr(scoring, "kind", None) == "cosine"
    against = person_means(templates, person_ids)[0] if strategy == "mean" else templates
    moments = _Moments()
    closest = (-math.inf, 0, 1)
    for group in _parts(counts):
        rows = np.concatenate([np.arange(starts[person], starts[person] + counts[person]) for person in group])
        scores = np.asarray(scoring.matrix(templates[rows], against), np.float64)
        if strategy != "mean":  # template x person: the best template of each
            scores = np.maximum.reduceat(scores, starts, axis=1)
        # person x person: each person of the group's most alike template against everyone.
        alike = np.maximum.reduceat(scores, np.r_[0, np.cumsum(counts[group])[:-1]], axis=0)
        other = np.ones_like(alike, dtype=bool)
        other[np.arange(len(group)), group] = False
        impostor = alike[other]
        moments.add(np.arctanh(np.clip(impostor, -FISHER_LIMIT, FISHER_LIMIT)) if bounded else impostor)
        row, person = np.unravel_index(int(np.argmax(np.where(other, alike, -np.inf))), alike.shape)
        if alike[row, person] > closest[0]:
            closest = (float(alike[row, person]), int(group[row]), int(person))
    score, a, b = closest
    return SiteCalibration(
        people=len(people), templates=len(templates), impostor_scores=moments.count,
        mean=moments.mean, spread=moments.spread, closest=(int(people[min(a, b)]), int(people[max(a, b)]), score),
        bounded=bounded, strategy=strategy, templates_per_person=int(counts.max()),
    )


def _parts(counts: np.ndarray) -> list[np.ndarray]:
    """The people to score (indices; all of them, or an even share when they hold more than
    MOST_ROWS templates), in parts of whole people of about ROWS_AT_ONCE templates each."""
    chosen = np.arange(len(counts))
    if counts.sum() > MOST_ROWS:
        share = max(2, round(len(counts) * MOST_ROWS / counts.sum()))
        chosen = np.unique(np.linspace(0, len(counts) - 1, share).astype(np.int64))
    part = (np.cumsum(counts[chosen]) - counts[chosen]) // ROWS_AT_ONCE
    return [chosen[part == index] for index in np.unique(part)]


class _Moments:
    """Mean and sample standard deviation of values added in batches (shifted by the first
    batch's mean, so that millions of values close together lose no precision)."""

    def __init__(self) -> None:
        self.count, self._shift, self._sum, self._squares = 0, 0.0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        if self.count == 0 and values.size:
            self._shift = float(values.mean())
        centred = values - self._shift
        self.count += int(values.size)
        self._sum += float(centred.sum())
        self._squares += float(np.dot(centred, centred))

    @property
    def mean(self) -> float:
        return self._shift + self._sum / self.count

    @property
    def spread(self) -> float | None:
        if self.count < 2:
            return None
        return math.sqrt(max(self._squares - self._sum ** 2 / self.count, 0.0) / (self.count - 1))


def tolerance_factor(rate: float, observations: int, confidence: float = CONFIDENCE) -> float:
    """k such that mean + k * spread of `observations` normal values lies above the (1 - rate)
    quantile with probability `confidence` (Natrella's approximation of the one-sided factor)."""
    z_rate, z_conf = NormalDist().inv_cdf(1.0 - rate), NormalDist().inv_cdf(confidence)
    n = max(observations, 2)
    a = 1.0 - z_conf ** 2 / (2.0 * (n - 1))
    b = z_rate ** 2 - z_conf ** 2 / n
    if a <= 0:  # too few observations for the approximation: a wide bound
        return z_rate + 3.0 * z_conf
    return (z_rate + math.sqrt(max(z_rate ** 2 - a * b, 0.0))) / a


def door_rule(card: ModelCard, calibration: SiteCalibration, risk: int = DEFAULT_RISK) -> DoorRule:
    """The rule the door applies to a gallery measured as `calibration`, at `risk` visitors per false accept."""
    if risk <= 0:
        raise ValueError(f"risk must be a positive number of visitors, got {risk}")
    far = 1.0 / risk
    card_threshold = card_rule(card, far, calibration)
    site = calibration.site_threshold(far)
    low = card.threshold_at_far(card.far_table[-1][0]) if card.far_table else card.threshold - 0.3
    if site is None:
        threshold = max(card_threshold, card.threshold_at_far(STRICT_START_FAR, _per_person(calibration)))
        return DoorRule(risk, threshold, "strict start", card_threshold, None, calibration, low)
    source = "site" if site >= card_threshold else "model card"
    return DoorRule(risk, max(site, card_threshold), source, card_threshold, site, calibration, low)


def card_rule(card: ModelCard, far: float, calibration: SiteCalibration) -> float:
    """The card's threshold for `far` false accepts per visitor against the gallery of `calibration`.

    A stranger is compared with every template (strategy "best") or with every person's mean
    template ("mean"), so each comparison must pass at far / that many, read from the card's
    table for that kind of comparison. At the shipped risk or stricter never below the card's
    own threshold; a looser risk (chosen explicitly) may go below it.
    """
    per_person = _per_person(calibration)
    comparisons = calibration.people if per_person else calibration.templates
    threshold = card.threshold_at_far(far / max(comparisons, 1), per_person)
    shipped = card.target_far if card.target_far is not None else 1.0 / DEFAULT_RISK
    return max(threshold, card.threshold) if far <= shipped else threshold


def _per_person(calibration: SiteCalibration) -> int | None:
    """The templates per person whose mean table applies (None: one photo against one photo)."""
    return max(calibration.templates_per_person, 1) if calibration.strategy == "mean" else None


def match_percent(score: float, threshold: float, low: float) -> int:
    """A score as 0-100: 0 at a typical stranger's score `low`, GRANT_LINE at `threshold`, 100 well above it."""
    span = max(threshold - low, 1e-6)
    if score <= threshold:
        value = GRANT_LINE * (score - low) / span
    else:
        value = GRANT_LINE + (100 - GRANT_LINE) * (score - threshold) / span
    return int(min(100, max(0, math.floor(value))))


def site_summary(rule: DoorRule, names: dict[int, str]) -> list[str]:
    """What the kiosk measured and uses, in lines an admin can read (`names`: person id -> name)."""
    lines = [rule.describe()]
    if rule.calibration.closest is not None:
        a, b, score = rule.calibration.closest
        percent = rule.match_percent(score)
        look = "look alike to the model" if percent >= GRANT_LINE else "are the most alike pair"
        lines.append(f"{names.get(a, f'person {a}')} and {names.get(b, f'person {b}')} {look} "
                     f"(match {percent}/100; the door opens at {GRANT_LINE}).")
    return lines


def risk_words(risk: int) -> str:
    """1000 -> "1 in 1,000 visitors"."""
    return f"1 in {risk:,} visitors"
