"""FaceEngine: the public face-recognition API, from RGB pixels to embeddings and matches.

    from kiosk import FaceEngine
    engine = FaceEngine()                     # the shipped model (or $KIOSK_MODEL) + MTCNN
    a = engine.embed(load_image("a.jpg"))     # unit vector of the largest face
    b = engine.embed(load_image("b.jpg"))
    engine.similarity(a, b) >= engine.threshold   # same person?

Everything model-specific (crop geometry, scoring, threshold) comes from the model card; the
detector, the aligner and the embedder are the same objects the kiosk, the command line,
the tests and the benchmarks use.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from kiosk.calibration import DEFAULT_RISK, DoorRule, SiteCalibration, door_rule, measure_site
from kiosk.errors import NoFaceError
from kiosk.faces import Face, FaceDetector, crop_faces, crop_landmarks, shared_detector
from kiosk.images import as_rgb_uint8
from kiosk.matching import STRATEGIES, Match, match_many, person_means
from kiosk.modelcard import ModelCard, default_model_path

T = TypeVar("T")

# A best match this close to the runner-up is "ambiguous" rather than a match; a card whose scores
# live on another scale names its own margin (ModelCard.ambiguity_margin).
DEFAULT_AMBIGUITY_MARGIN = 0.05


class FaceEngine:
    """Detector + aligner + embedder, loaded once; thread-compatible, not thread-safe.

    Use one engine per thread (the detector itself is shared and built once per process).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        detector: FaceDetector | None = None,
        *,
        strategy: str | None = None,  # None: the card's (ModelCard.strategy)
        ambiguity_margin: float | None = None,  # None: the card's, else DEFAULT_AMBIGUITY_MARGIN
    ) -> None:
        from kiosk.embedder import Embedder  # imports TensorFlow: only when an engine is built

        self._embedder = Embedder(model_path)
        self.scoring = self._embedder.scoring
        self._detector = detector if detector is not None else shared_detector()
        card = self._embedder.card
        # How a person's templates are scored (kiosk.matching). The door's thresholds are read from
        # the card's table for that kind of comparison, so "mean" needs a card that measured it.
        self.strategy = strategy or card.strategy
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.strategy == "mean" and not card.mean_far_tables:
            raise ValueError(f"{card.path.name}'s card has no mean-template tables (python -m training far-tables); "
                             f"it can only score a person's best template")
        if ambiguity_margin is None:
            ambiguity_margin = self._embedder.card.ambiguity_margin or DEFAULT_AMBIGUITY_MARGIN
        self.ambiguity_margin = ambiguity_margin
        self._site = KeptPerGallery(lambda templates, person_ids: measure_site(
            templates, person_ids, self.scoring, self.strategy))
        self._means = KeptPerGallery(person_means)

    # -- what the model card says ---------------------------------------------

    @property
    def card(self) -> ModelCard:
        return self._embedder.card

    @property
    def threshold(self) -> float:
        """The model card's accept threshold: similarity >= threshold means "same person"."""
        return self._embedder.card.threshold

    @property
    def embedding_size(self) -> int:
        return self._embedder.card.embedding_size

    @property
    def model_identity(self) -> str:
        """What makes this engine's embeddings (ModelCard.identity): a gallery is bound to one."""
        return self._embedder.card.identity

    @property
    def embedder_runtime(self) -> str:
        """"tflite" or "keras": which copy of the model embeds (kiosk.embedder)."""
        return self._embedder.runtime

    @property
    def detector(self) -> FaceDetector:
        return self._detector

    # -- pixels to embeddings -----------------------------------------------------

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image, largest first (InvalidImageError for unusable input)."""
        return self._detector.detect(rgb)

    def align(self, rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """N x S x S x 3 uint8 crops of `faces`, aligned as the model was trained."""
        return crop_faces(as_rgb_uint8(rgb), faces, self.card.alignment)

    def crop_landmarks(self, faces: Sequence[Face]) -> np.ndarray:
        """N x 5 x 2: where each face's landmarks fall in its crop from align()."""
        return crop_landmarks(faces, self.card.alignment)

    def embed_crops(self, crops: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """N x D unit float32 embeddings of aligned crops (from align()), given their crop_landmarks()
        (None: unknown, see Embedder.embed_crops)."""
        return self._embedder.embed_crops(crops, landmarks)

    def embed_faces(self, rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """N x D unit float32 embeddings of `faces` of `rgb`, in one model call."""
        # The kiosk's per-frame path: the frame is checked and aligned from once, not once a face.
        return self.embed_crops(self.align(rgb, faces), self.crop_landmarks(faces))

    def embed_each(self, photos: Sequence[np.ndarray], faces: Sequence[Face]) -> np.ndarray:
        """N x D unit float32 embeddings of faces[i] of photos[i] (one face of each of several photos,
        as enrolment takes them), in one model call."""
        if len(photos) != len(faces):
            raise ValueError(f"one face for each photo: {len(photos)} photos, {len(faces)} faces")
        if not faces:
            return np.zeros((0, self.embedding_size), np.float32)
        crops = np.concatenate([self.align(photo, [face]) for photo, face in zip(photos, faces)])
        return self.embed_crops(crops, self.crop_landmarks(faces))

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """The unit embedding (D float32) of the largest face; NoFaceError when there is none."""
        faces = self.detect(rgb)
        if not faces:
            raise NoFaceError("no face found in the image")
        return self.embed_faces(rgb, faces[:1])[0]

    # -- deciding -----------------------------------------------------------------

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """How alike two embeddings are, as the card's threshold reads it (higher means more alike):
        cosine (-1..1) or the card's fitted back end (on the cosine's scale), see kiosk.scoring."""
        a = np.asarray(a, dtype=np.float32).ravel()
        b = np.asarray(b, dtype=np.float32).ravel()
        if a.shape != b.shape:
            raise ValueError(f"embeddings differ in size: {a.size} and {b.size}")
        norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        if norm_a == 0.0 or norm_b == 0.0:
            raise ValueError("cannot compare a zero vector")
        # Embeddings are unit vectors; normalising again forgives callers' rounding.
        return float(self.scoring.pairs((a / norm_a)[None], (b / norm_b)[None])[0])

    def is_same(self, a: np.ndarray, b: np.ndarray) -> bool:
        return self.similarity(a, b) >= self.threshold

    def measure_site(self, templates: np.ndarray, person_ids: np.ndarray) -> SiteCalibration:
        """The enrolled people scored against each other (kiosk.calibration); kept while the same
        read-only gallery matrix (Gallery.matrix()) comes back, so a frame does not redo it."""
        return self._site(templates, person_ids)

    def door_rule(self, templates: np.ndarray, person_ids: np.ndarray, risk: int = DEFAULT_RISK) -> DoorRule:
        """The rule the door applies to this gallery at `risk` visitors per false accept: the stricter
        of the site's measured threshold and the card's rule (kiosk.calibration)."""
        return door_rule(self.card, self.measure_site(templates, person_ids), risk)

    def match(self, embeddings: np.ndarray, templates: np.ndarray, person_ids: np.ndarray,
              threshold: float | None = None, risk: int = DEFAULT_RISK) -> list[Match]:
        """Match M x D embeddings against a gallery (e.g. Gallery.matrix()).

        At the door's rule for this gallery and `risk` (door_rule()), or at `threshold` when one is
        given (for experiments and benchmarks; the kiosk never passes one).
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim == 1:
            embeddings = embeddings[None]
        if threshold is None:
            threshold = self.door_rule(templates, person_ids, risk).threshold
        if self.strategy == "mean":  # each person's mean template, then the best of those is the same
            templates, person_ids = self._means(templates, person_ids)
        return match_many(embeddings, templates, person_ids, threshold=threshold,
                          ambiguity_margin=self.ambiguity_margin, scoring=self.scoring)

class KeptPerGallery:
    """What `compute(templates, person_ids)` gives, kept while the same read-only gallery matrix
    (Gallery.matrix(), rebuilt only when the gallery changes) comes back: a frame does not redo it."""

    def __init__(self, compute: Callable[[np.ndarray, np.ndarray], T]) -> None:
        self._compute = compute
        self._kept: tuple[np.ndarray, np.ndarray, T] | None = None

    def __call__(self, templates: np.ndarray, person_ids: np.ndarray) -> T:
        kept = self._kept
        if kept is not None and kept[0] is templates and kept[1] is person_ids:
            return kept[2]
        value = self._compute(templates, person_ids)
        if isinstance(templates, np.ndarray) and not templates.flags.writeable:
            self._kept = (templates, person_ids, value)
        return value


class RiskEngine:
    """A FaceEngine seen at the risk an admin chose: what the kiosk loop matches with.

    The engine itself is shared by the whole process (shared_engine), so the risk lives here,
    one per kiosk loop; `risk` may be changed while the loop runs (kiosk.live_settings).
    """

    def __init__(self, engine: FaceEngine, risk: int = DEFAULT_RISK) -> None:
        self.engine = engine
        self.risk = int(risk)

    def __getattr__(self, name: str):
        # detect, embed_faces, detector, card, embedding_size, model_identity, ...: the engine's own.
        return getattr(self.engine, name)

    def door_rule(self, templates: np.ndarray, person_ids: np.ndarray) -> DoorRule:
        return self.engine.door_rule(templates, person_ids, self.risk)

    def match(self, embeddings: np.ndarray, templates: np.ndarray, person_ids: np.ndarray) -> list[Match]:
        return self.engine.match(embeddings, templates, person_ids, risk=self.risk)


_shared: dict[tuple[str, float], FaceEngine] = {}
_shared_lock = threading.Lock()


def shared_engine(model_path: str | os.PathLike | None = None, detector: FaceDetector | None = None) -> FaceEngine:
    """The process-wide engine for a model file (default: $KIOSK_MODEL or the shipped model).

    Built on first use and kept, like shared_detector(): loading a model takes seconds. A model
    file replaced on disk (another modification time) gets a new engine. `detector` is only
    used when the engine is built (default: shared_detector()).
    """
    path = Path(model_path).expanduser() if model_path else default_model_path()
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:
        return FaceEngine(path, detector)  # missing: let ModelCard.load say so
    with _shared_lock:
        if key not in _shared:
            _shared[key] = FaceEngine(path, detector)
        return _shared[key]
