"""How alike two face embeddings are: the score every decision compares with a threshold.

The model card says which scoring its threshold was set for:

- cosine: the dot product of the unit embeddings (-1..1).
- joint-bayesian: the log-likelihood ratio of "same person" against "different people" under
  a Gaussian model of identities (Chen et al., "Bayesian Face Revisited", ECCV 2012), fitted
  on the training people's embeddings, calibrated to log-odds by a logistic fitted on held-out
  validation pairs, and read on the cosine's scale: score = 0.5 + log-odds / 11.4 (0.5 at even
  odds). Linear, so the kiosk's ambiguity margin (0.05) means the same thing everywhere: the
  best match 0.57 nats likelier than the runner-up; a probability would crowd every good match
  just under 1. Unlike the cosine it also weighs how typical each
  face is, which accepts more true matches at the same false-accept rate (reports/recipe_search.md).

Both turn an M x D block of queries and an N x D block of templates into an M x N score
matrix with one matrix product, so matching a frame against a gallery costs the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("cosine", "joint-bayesian")
# Nats of calibrated log-odds per unit of a Joint Bayesian score (see the module docstring). Chosen
# so that the kiosk's ambiguity margin weighs as it does with the cosine: for the shipped network the
# thresholds from FAR 0.2 to 1e-5 then span 0.44-1.03 (cosine: 0.19-0.78). At 20 nats the span was
# 0.47-0.80, the 0.05 margin a whole nat, and 801 of 1,809 enrolled LFW probes came out ambiguous
# instead of 521 (benchmarks/identification.py).
LOG_ODDS_PER_UNIT = 11.4


class CosineScoring:
    kind = "cosine"

    def matrix(self, queries: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """M x N scores of every query against every template."""
        return np.asarray(queries, np.float32) @ np.asarray(templates, np.float32).T

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The score of each row of `a` with the same row of `b`."""
        return np.einsum("ij,ij->i", np.asarray(a, np.float64), np.asarray(b, np.float64))


@dataclass(frozen=True, eq=False)
class JointBayesianScoring:
    """score(x, y) = 0.5 + (slope * r(x, y) + intercept) / LOG_ODDS_PER_UNIT, with the log-likelihood
    ratio r = q(x) + q(y) + (x - mean)' cross (y - mean) and q(x) = (x - mean)' quadratic (x - mean)."""

    mean: np.ndarray  # D
    cross: np.ndarray  # D x D, symmetric
    quadratic: np.ndarray  # D x D, symmetric
    slope: float = 1.0
    intercept: float = 0.0
    kind = "joint-bayesian"

    def log_likelihood_ratio_matrix(self, queries: np.ndarray, templates: np.ndarray) -> np.ndarray:
        query_side, query_q = self._sides(queries)
        template_side, template_q = self._template_sides(templates)
        return (query_side @ self.cross) @ template_side.T + query_q[:, None] + template_q[None, :]

    def matrix(self, queries: np.ndarray, templates: np.ndarray) -> np.ndarray:
        return self._on_cosine_scale(self.log_likelihood_ratio_matrix(queries, templates))

    def log_likelihood_ratios(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a_side, a_q = self._sides(a)
        b_side, b_q = self._sides(b)
        return np.einsum("ij,ij->i", a_side @ self.cross, b_side) + a_q + b_q

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._on_cosine_scale(self.log_likelihood_ratios(a, b))

    def _on_cosine_scale(self, ratios: np.ndarray) -> np.ndarray:
        return 0.5 + (self.slope * ratios + self.intercept) / LOG_ODDS_PER_UNIT

    def _sides(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = np.asarray(vectors, np.float64) - self.mean
        return centred, np.einsum("ij,jk,ik->i", centred, self.quadratic, centred)

    def _template_sides(self, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # A gallery's matrix is read-only and the same object until it changes (Gallery.matrix()),
        # so its centred copy is kept rather than recomputed for every frame.
        cached = self.__dict__.get("_template_cache")
        if cached is not None and cached[0] is templates:
            return cached[1]
        sides = self._sides(templates)
        if isinstance(templates, np.ndarray) and not templates.flags.writeable:
            object.__setattr__(self, "_template_cache", (templates, sides))
        return sides

    def with_calibration(self, slope: float, intercept: float) -> "JointBayesianScoring":
        return JointBayesianScoring(self.mean, self.cross, self.quadratic, float(slope), float(intercept))

    def save(self, path: str | Path) -> None:
        """Write the parameters to an .npz file (not atomic: callers stage it, see training.export)."""
        with open(path, "wb") as stream:
            np.savez(stream, kind=self.kind, mean=self.mean, cross=self.cross, quadratic=self.quadratic,
                     calibration=np.array([self.slope, self.intercept]))

    @classmethod
    def load(cls, path: str | Path) -> "JointBayesianScoring":
        with np.load(path, allow_pickle=False) as data:
            if str(data["kind"]) != cls.kind:
                raise ValueError(f"{path} holds {str(data['kind'])!r} scoring, not {cls.kind!r}")
            slope, intercept = data["calibration"].tolist()
            scoring = cls(data["mean"].astype(np.float64), data["cross"].astype(np.float64),
                          data["quadratic"].astype(np.float64), slope, intercept)
        dimension = scoring.mean.shape[0]
        if scoring.cross.shape != (dimension, dimension) or scoring.quadratic.shape != (dimension, dimension):
            raise ValueError(f"{path}: parameter shapes do not agree ({scoring.mean.shape}, {scoring.cross.shape}, "
                             f"{scoring.quadratic.shape})")
        return scoring


Scoring = CosineScoring | JointBayesianScoring
