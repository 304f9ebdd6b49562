"""The model card: the JSON beside the model file that tells the kiosk everything it needs.

Crop geometry, embedding size, similarity and threshold are read from here and nowhere else,
so a retrained model with another crop or threshold needs no code change.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kiosk.alignment import AlignmentSpec
from kiosk.errors import KioskError

CARD_SUFFIX = ".card.json"
MODEL_ENV_VAR = "KIOSK_MODEL"
# The model shipped in the repository (see assets/face_embedder.card.json for how it was made).
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "face_embedder.keras"


class ModelCardError(KioskError):
    """The model file or its card is missing or does not describe a usable model."""


@dataclass(frozen=True)
class ModelCard:
    path: Path  # the model file
    alignment: AlignmentSpec
    embedding_size: int
    threshold: float
    threshold_rule: str
    raw: dict  # the whole card, for display (figures, training command, ...)

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
            alignment = raw["input"]["alignment"]
            return cls(
                path=model_path,
                alignment=AlignmentSpec(size=int(alignment["size"]), margin=float(alignment["margin"])),
                embedding_size=int(raw["embedding_size"]),
                threshold=float(raw["threshold"]["value"]),
                threshold_rule=str(raw["threshold"]["rule"]),
                raw=raw,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelCardError(f"{card_path}: not a valid model card ({exc!r})") from exc


def card_path_for(model_path: str | os.PathLike) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + CARD_SUFFIX)


def default_model_path() -> Path:
    return Path(os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL)
