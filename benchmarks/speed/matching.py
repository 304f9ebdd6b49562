"""Section "matching": latency of matching one face against 1k, 10k and 100k templates.

Templates are random unit vectors of the model's embedding size, three per person and grouped
by person as Gallery.matrix() returns them; each query goes through kiosk.matching.match_many,
the function FaceEngine.match calls, with the card's strategy and the default ambiguity margin.
With strategy "mean" FaceEngine averages each person's templates once per gallery change and
matches every frame against those means: that once-only cost is reported as "means_ms", beside
"site_ms", the door's rule measured again after a gallery change (kiosk.calibration.measure_site).
The threshold (the model card's) only sets the verdicts, not the cost.
"""
from __future__ import annotations

import numpy as np

from benchmarks.speed.options import GALLERY_SIZES
from benchmarks.speed.stats import latency, timed
from kiosk.calibration import measure_site
from kiosk.engine import DEFAULT_AMBIGUITY_MARGIN
from kiosk.matching import match_many, person_means
from kiosk.scoring import CosineScoring

PER_DETECTOR = False
TEMPLATES_PER_PERSON = 3


def run(ctx) -> dict:
    card = ctx.card
    result = {"embedding_size": card.embedding_size, "strategy": card.strategy,
              "templates_per_person": TEMPLATES_PER_PERSON, "templates": {}}
    for size in GALLERY_SIZES:
        rng = np.random.default_rng(size)
        templates = unit_vectors(rng, size, card.embedding_size)
        person_ids = np.arange(size, dtype=np.int64) // TEMPLATES_PER_PERSON
        queries = unit_vectors(rng, ctx.options.match_repeats + 1, card.embedding_size)
        _, site_seconds = timed(measure_site, templates, person_ids, CosineScoring(), card.strategy)
        means_ms = None
        if card.strategy == "mean":
            (templates, person_ids), seconds = timed(person_means, templates, person_ids)
            means_ms = round(1000 * seconds, 3)
        settings = {"threshold": card.threshold, "ambiguity_margin": DEFAULT_AMBIGUITY_MARGIN}
        match_many(queries[:1], templates, person_ids, **settings)  # warm-up
        seconds = [timed(match_many, q[None], templates, person_ids, **settings)[1] for q in queries[1:]]
        result["templates"][str(size)] = {**latency(seconds), "means_ms": means_ms,
                                          "site_ms": round(1000 * site_seconds, 1)}
    return result


def unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
