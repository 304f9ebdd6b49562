"""The model card: the JSON beside the model file that tells the kiosk everything it needs.

Crop geometry, embedding size, similarity and threshold are read from here and nowhere else,
so a retrained model with another crop or threshold needs no code change.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from kiosk.alignment import AlignmentSpec
from kiosk.errors import KioskError
from kiosk.packagedata import shipped
from kiosk.scoring import FITTED, CosineScoring, Scoring

CARD_SUFFIX = ".card.json"
SCORING_SUFFIX = ".scoring.npz"
TFLITE_SUFFIX = ".tflite"
MODEL_ENV_VAR = "KIOSK_MODEL"
MEAN_TABLES_KEY = "mean_template_far_tables"  # the card's entry written by training.far_tables
# The shipped model (see assets/face_embedder.card.json for how it was made), in the installed
# package or the checkout: its TFLite file alone, which its card describes.
DEFAULT_MODEL = shipped("assets") / "face_embedder.tflite"


class ModelCardError(KioskError):
    """The model file or its card is missing or does not describe a usable model."""


@dataclass(frozen=True)
class ModelCard:
    path: Path  # the model file: the .keras serving model, or the TFLite backbone its card lists
    alignment: AlignmentSpec
    embedding_size: int
    threshold: float
    threshold_rule: str
    raw: dict  # the whole card, for display (figures, training command, ...)
    target_far: float | None = None  # the false-accept rate per pair the threshold was chosen for
    # (false-accept rate, threshold) measured on held-out impostor pairs, rates ascending.
    far_table: tuple[tuple[float, float], ...] = ()
    # How close a runner-up may come to the best match before it is "ambiguous", on this card's
    # scale (None: the kiosk's default, made for scores on the cosine's usual scale).
    ambiguity_margin: float | None = None
    # Templates per person k -> (false-accept rate, threshold) of a photo against the re-normalised
    # mean of k photos of someone else, rates ascending (training.far_tables). A card that has
    # them is scored by each person's mean template (`strategy`).
    mean_far_tables: dict[int, tuple[tuple[float, float], ...]] = field(default_factory=dict)

    @property
    def strategy(self) -> str:
        """How the door scores a person's templates (kiosk.matching): by their mean where the card
        measured what strangers score against means, else by the best one."""
        return "mean" if self.mean_far_tables else "best"

    def threshold_at_far(self, far: float, templates_per_person: int | None = None) -> float:
        """The similarity threshold whose false-accept rate per comparison is `far`.

        None: one photo against one photo (far_table); k: a photo against someone's mean of k
        templates (the mean table of k, or of the nearest larger k measured, or of the largest:
        beyond a few photos a mean barely changes). Interpolated linearly in log(rate) between
        measured points. Outside the measured range the nearest end is returned, so a rate below
        the smallest measured one gets that one's threshold: the strictest the card can vouch for.
        """
        table = self.far_table if templates_per_person is None else self.mean_far_table(templates_per_person)
        if not table:
            return self.threshold
        if not far > 0:
            raise ValueError(f"far must be positive, got {far}")
        rates = [math.log(rate) for rate, _ in table]
        thresholds = [threshold for _, threshold in table]
        x = math.log(far)
        if x <= rates[0]:
            return thresholds[0]
        for (x0, t0), (x1, t1) in zip(zip(rates, thresholds), zip(rates[1:], thresholds[1:])):
            if x <= x1:
                return t0 + (t1 - t0) * (x - x0) / (x1 - x0)
        return thresholds[-1]

    def mean_far_table(self, templates_per_person: int) -> tuple[tuple[float, float], ...]:
        """The mean table for people of `templates_per_person` templates (empty: the card has none)."""
        counts = sorted(self.mean_far_tables)
        if not counts:
            return ()
        return self.mean_far_tables[next((k for k in counts if k >= templates_per_person), counts[-1])]

    @classmethod
    def load(cls, model_path: str | os.PathLike) -> "ModelCard":
        model_path = Path(model_path)
        card_path = card_path_for(model_path)
        if not model_path.exists():
            raise ModelCardError(f"model file not found: {model_path} (train one with `python -m training train --export`)")
        if not card_path.exists():
            raise ModelCardError(f"model card not found: {card_path} (every model needs its card beside it)")
        try:
            raw = json.loads(card_path.read_text(encoding="utf-8"))
            return cls(
                path=model_path,
                alignment=AlignmentSpec.from_dict(raw["input"]["alignment"]),
                embedding_size=int(raw["embedding_size"]),
                threshold=float(raw["threshold"]["value"]),
                threshold_rule=str(raw["threshold"]["rule"]),
                raw=raw,
                target_far=_optional_float(raw["threshold"].get("target_far")),
                far_table=_far_table(raw.get("impostor_far_table")),
                ambiguity_margin=_optional_float(raw.get("ambiguity_margin")),
                mean_far_tables=_mean_far_tables(raw.get(MEAN_TABLES_KEY)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelCardError(f"{card_path}: not a valid model card ({exc!r})") from exc

    @cached_property
    def identity(self) -> str:
        """Names what makes this card's embeddings: its model file's and scoring file's SHA-256 (short)."""
        scoring = self.raw.get("scoring")
        return f"model {sha256_of(self.path)[:16]}, scoring {scoring['sha256'][:16] if scoring else 'cosine'}"

    @property
    def tflite_path(self) -> Path | None:
        """The TFLite copy of the backbone that export wrote beside the model, if the card lists one."""
        entry = self.raw.get("tflite")
        return self.path.with_name(entry["file"]) if entry else None

    def verified_tflite_path(self) -> Path:
        """`tflite_path`, after checking that the file is the one the card describes.

        A stale TFLite file (say, left from an earlier export) would embed with another network
        than the card's threshold was set for, and every decision would be quietly wrong.
        """
        path, entry = self.tflite_path, self.raw.get("tflite")
        if path is None:
            raise ModelCardError(f"{card_path_for(self.path)} lists no TFLite file; re-export the model to make one")
        if not path.exists():
            raise ModelCardError(f"TFLite file not found: {path} (its card lists it; re-export the model)")
        if sha256_of(path) != entry["sha256"]:
            raise ModelCardError(f"{path} is not the file its card describes (SHA-256 differs); "
                                 f"re-export the model so the two match")
        return path

    def load_scoring(self) -> Scoring:
        """The scoring the card's thresholds were set for: cosine, unless the card names a fitted
        back end, which must be the very file it describes (a stale one would shift every score)."""
        entry = self.raw.get("scoring")
        if not entry:
            return CosineScoring()
        path = self.path.with_name(entry["file"])
        if not path.exists():
            raise ModelCardError(f"scoring file not found: {path} (its card lists it; re-export the model)")
        if sha256_of(path) != entry["sha256"]:
            raise ModelCardError(f"{path} is not the file its card describes (SHA-256 differs); "
                                 f"re-export the model so the two match")
        kind = FITTED.get(entry.get("kind"))
        if kind is None:
            raise ModelCardError(f"{card_path_for(self.path)}: unknown scoring {entry.get('kind')!r}")
        try:
            scoring = kind.load(path)
        except (ValueError, KeyError, OSError) as exc:
            raise ModelCardError(f"{path}: not a usable scoring file ({exc})") from exc
        if scoring.dimension != self.embedding_size:
            raise ModelCardError(f"{path}: scores {scoring.dimension}-d embeddings, the model gives "
                                 f"{self.embedding_size}-d")
        return scoring


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def _far_table(table: dict | None, name: str = "impostor_far_table") -> tuple[tuple[float, float], ...]:
    """{"thresholds": {"1e-05": 0.81, ...}} -> ((1e-05, 0.81), ...) by ascending rate."""
    if not table:
        return ()
    points = sorted((float(rate), float(threshold)) for rate, threshold in table["thresholds"].items())
    if any(rate <= 0 for rate, _ in points):
        raise ValueError(f"{name} rates must be positive")
    if any(t1 > t0 for (_, t0), (_, t1) in zip(points, points[1:])):
        raise ValueError(f"{name} thresholds must fall as the rate rises")
    return tuple(points)


def _mean_far_tables(entry: dict | None) -> dict[int, tuple[tuple[float, float], ...]]:
    """{"by_templates": {"3": {"thresholds": {...}}, ...}} -> {3: ((rate, threshold), ...), ...}."""
    if not entry:
        return {}
    tables = {int(count): _far_table(table, f"{MEAN_TABLES_KEY} of {count}")
              for count, table in entry["by_templates"].items()}
    if not tables or any(count < 1 or not table for count, table in tables.items()):
        raise ValueError(f"{MEAN_TABLES_KEY} needs a non-empty table for each count of templates from 1 up")
    return tables


def card_path_for(model_path: str | os.PathLike) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + CARD_SUFFIX)


def scoring_path_for(model_path: str | os.PathLike) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + SCORING_SUFFIX)


def default_model_path() -> Path:
    return Path(os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL)
