"""How alike two face embeddings are: the score every decision compares with a threshold.

The model card says which scoring its threshold was set for:

- cosine: the dot product of the unit embeddings (-1..1).
- joint-bayesian: the log-likelihood ratio of "same person" against "different people" under
  a Gaussian model of identities (Chen et al., "Bayesian Face Revisited", ECCV 2012), fitted
  on the training people's embeddings, calibrated to log-odds by a logistic fitted on held-out
  validation pairs, and read on the cosine's scale: score = 0.5 + log-odds / 11.4 (0.5 at even
  odds). Linear, so the kiosk's ambiguity margin (0.05) means the same thing everywhere: the
  best match 0.57 nats likelier than the runner-up; a probability would crowd every good match
  just under 1. Unlike the cosine it also weighs how typical each face is: more true matches at a
  false-accept rate of 1%, fewer far down the impostor tail (reports/recipe_search.md).
- as-norm: the cosine, normalised by each face's usual cosine with the training people's images
  (adaptive score normalisation; CohortNormScoring): more true matches far down the tail on the
  validation people, not on DevTest.
- cosine+texture: the network's cosine, a Joint Bayesian ratio of the network's vectors and one of
  hand-made LBP and LPQ texture vectors around the face's landmarks (kiosk.texture), weighed by a
  logistic fitted on validation pairs, on the same scale as joint-bayesian. The embedding then
  holds both vectors (TextureFusionScoring.extend): more true matches at every false-accept rate
  measured, down to 1e-4 (reports/recipe_search.md).

Each turns an M x D block of queries and an N x D block of templates into an M x N score
matrix; what depends on the gallery alone is computed once per gallery, not per frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiosk.texture import DESCRIPTOR, CellAxes, TextureProjection


class StaleScoringError(ValueError):
    """A fitted scoring file made for another version of the descriptor it scores."""


KINDS = ("cosine", "joint-bayesian", "as-norm", "cosine+texture")
# Nats of calibrated log-odds per unit of a Joint Bayesian score (see the module docstring). Chosen
# so that the kiosk's ambiguity margin weighs as it does with the cosine: for the shipped network the
# thresholds from FAR 0.2 to 1e-5 then span 0.44-1.03 (cosine: 0.19-0.78). At 20 nats the span was
# 0.47-0.80, the 0.05 margin a whole nat, and 801 of 1,809 enrolled LFW probes came out ambiguous
# instead of 521 (benchmarks/identification.py).
LOG_ODDS_PER_UNIT = 11.4


class _NetworkOnly:
    """A scoring of the network's embeddings alone."""

    def extend(self, vectors: np.ndarray, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The kiosk's embeddings of `crops`, given the network's: the network's, unchanged."""
        return vectors


class CosineScoring(_NetworkOnly):
    kind = "cosine"

    def matrix(self, queries: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """M x N scores of every query against every template."""
        return np.asarray(queries, np.float32) @ np.asarray(templates, np.float32).T

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The score of each row of `a` with the same row of `b`."""
        return np.einsum("ij,ij->i", np.asarray(a, np.float64), np.asarray(b, np.float64))


@dataclass(frozen=True, eq=False)
class JointBayesianScoring(_NetworkOnly):
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
        return _per_gallery(self, templates, self._sides)

    @property
    def dimension(self) -> int:
        return self.mean.shape[0]

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
            return cls.from_saved(data, path, slope, intercept)

    @classmethod
    def from_saved(cls, data, path: str | Path, slope: float = 1.0, intercept: float = 0.0,
                   prefix: str = "") -> "JointBayesianScoring":
        """The ratio from the "mean", "cross" and "quadratic" arrays (names after `prefix`) of an open
        .npz file, shapes checked."""
        scoring = cls(data[prefix + "mean"].astype(np.float64), data[prefix + "cross"].astype(np.float64),
                      data[prefix + "quadratic"].astype(np.float64), slope, intercept)
        dimension = scoring.mean.shape[0]
        if scoring.cross.shape != (dimension, dimension) or scoring.quadratic.shape != (dimension, dimension):
            raise ValueError(f"{path}: parameter shapes do not agree ({scoring.mean.shape}, {scoring.cross.shape}, "
                             f"{scoring.quadratic.shape})")
        return scoring


@dataclass(frozen=True, eq=False)
class CohortNormScoring(_NetworkOnly):
    """Adaptive score normalisation (AS-norm): the cosine of two faces, less each face's usual
    cosine with strangers, over its spread, averaged over the two faces; "strangers" are each
    face's `top_k` most similar images of a cohort (the training people's images). A face that
    resembles everyone (blur, sunglasses, a common look) needs a higher cosine to be let in,
    which keeps out the strangers a fixed cosine threshold lets in far down its tail.

    Read on the cosine's scale: centre + spread * z, with the cohort images' own typical centre
    and spread, so that the kiosk's margins mean about what they mean with the cosine.
    """

    cohort: np.ndarray  # C x D unit embeddings
    top_k: int
    centre: float
    spread: float
    kind = "as-norm"

    def statistics(self, vectors: np.ndarray, skip_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) of each vector's top_k cosines with the cohort; `skip_self`
        drops each vector's best match, for vectors that are themselves in the cohort."""
        similarities = np.asarray(vectors, np.float32) @ self.cohort.T
        count = self.top_k + int(skip_self)
        top = -np.partition(-similarities, count - 1, axis=1)[:, :count]
        if skip_self:
            top = np.sort(top, axis=1)[:, :-1]
        return top.mean(axis=1, dtype=np.float64), np.maximum(top.std(axis=1, dtype=np.float64), 1e-6)

    def matrix(self, queries: np.ndarray, templates: np.ndarray) -> np.ndarray:
        query_mean, query_spread = self.statistics(queries)
        template_mean, template_spread = _per_gallery(self, templates, self.statistics)
        cosines = np.asarray(queries, np.float64) @ np.asarray(templates, np.float64).T
        z = 0.5 * ((cosines - query_mean[:, None]) / query_spread[:, None]
                   + (cosines - template_mean[None, :]) / template_spread[None, :])
        return self.centre + self.spread * z

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        (a_mean, a_spread), (b_mean, b_spread) = self.statistics(a), self.statistics(b)
        cosines = np.einsum("ij,ij->i", np.asarray(a, np.float64), np.asarray(b, np.float64))
        return self.centre + self.spread * 0.5 * ((cosines - a_mean) / a_spread + (cosines - b_mean) / b_spread)

    @classmethod
    def fit(cls, cohort: np.ndarray, top_k: int = 200) -> "CohortNormScoring":
        """The scoring with `cohort` (unit embeddings), its centre and spread from the cohort itself."""
        cohort = np.asarray(cohort, np.float16).astype(np.float32)  # as saved, so a reload scores alike
        if not 1 <= top_k < len(cohort):
            raise ValueError(f"top_k must be 1..{len(cohort) - 1} for a cohort of {len(cohort)}, got {top_k}")
        unscaled = cls(cohort, top_k, 0.0, 1.0)
        means, spreads = unscaled.statistics(cohort, skip_self=True)
        return cls(cohort, top_k, float(means.mean()), float(spreads.mean()))

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as stream:
            np.savez(stream, kind=self.kind, cohort=self.cohort.astype(np.float16),
                     parameters=np.array([self.top_k, self.centre, self.spread]))

    @classmethod
    def load(cls, path: str | Path) -> "CohortNormScoring":
        with np.load(path, allow_pickle=False) as data:
            if str(data["kind"]) != cls.kind:
                raise ValueError(f"{path} holds {str(data['kind'])!r} scoring, not {cls.kind!r}")
            top_k, centre, spread = data["parameters"].tolist()
            scoring = cls(data["cohort"].astype(np.float32), int(top_k), centre, spread)
        if not 1 <= scoring.top_k < len(scoring.cohort):
            raise ValueError(f"{path}: top_k {scoring.top_k} does not fit a cohort of {len(scoring.cohort)}")
        return scoring

    @property
    def dimension(self) -> int:
        return self.cohort.shape[1]


@dataclass(frozen=True, eq=False)
class TextureFusionScoring:
    """score = 0.5 + (w_cosine * cosine + w_network * r_network + w_texture * r_texture + bias) /
    LOG_ODDS_PER_UNIT: the network's cosine and the Joint Bayesian ratios of the two faces' network
    vectors and of their texture vectors (kiosk.texture), weighed as a logistic fitted on validation
    pairs weighs them (calibrated log-odds, read like joint-bayesian). The network's ratio also weighs
    how typical each face is, which its cosine does not. An embedding is [network vector, texture
    vector] / sqrt(2): a unit vector, as the gallery stores every template."""

    texture: TextureProjection
    network_joint_bayesian: JointBayesianScoring  # fitted on the training images' network vectors; uncalibrated
    texture_joint_bayesian: JointBayesianScoring  # fitted on their texture vectors; uncalibrated
    weights: tuple[float, float, float, float]  # (w_cosine, w_network, w_texture, bias)
    kind = "cosine+texture"

    def extend(self, vectors: np.ndarray, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The kiosk's embeddings of `crops`, given the network's unit vectors of them and where the
        faces' landmarks are in the crops (N x 5 x 2)."""
        return self.join(vectors, self.texture.describe(crops, landmarks))

    @staticmethod
    def join(vectors: np.ndarray, texture: np.ndarray) -> np.ndarray:
        """The kiosk's embeddings from the network's unit vectors and the faces' texture vectors."""
        return (np.concatenate([np.asarray(vectors, np.float32), texture], axis=1) / np.sqrt(2)).astype(np.float32)

    def matrix(self, queries: np.ndarray, templates: np.ndarray) -> np.ndarray:
        query_network, query_texture = self._parts(queries)
        template_network, template_texture = _per_gallery(self, templates, self._read_only_parts)
        return self._on_cosine_scale(
            query_network @ template_network.T,
            self.network_joint_bayesian.log_likelihood_ratio_matrix(query_network, template_network),
            self.texture_joint_bayesian.log_likelihood_ratio_matrix(query_texture, template_texture))

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        (a_network, a_texture), (b_network, b_texture) = self._parts(a), self._parts(b)
        return self._on_cosine_scale(np.einsum("ij,ij->i", a_network, b_network),
                                     self.network_joint_bayesian.log_likelihood_ratios(a_network, b_network),
                                     self.texture_joint_bayesian.log_likelihood_ratios(a_texture, b_texture))

    def _on_cosine_scale(self, cosines: np.ndarray, network_ratios: np.ndarray, texture_ratios: np.ndarray) -> np.ndarray:
        w_cosine, w_network, w_texture, bias = self.weights
        return 0.5 + (w_cosine * cosines + w_network * network_ratios + w_texture * texture_ratios + bias) / LOG_ODDS_PER_UNIT

    def _parts(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.asarray(vectors, np.float64) * np.sqrt(2)
        if vectors.shape[1] != self.dimension:
            raise ValueError(f"embeddings must be {self.dimension}-d, got {vectors.shape[1]}-d")
        return vectors[:, :self.network_dimension], vectors[:, self.network_dimension:]

    def _read_only_parts(self, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Read-only, so each Joint Bayesian keeps its side of a gallery's part too.
        parts = self._parts(templates)
        for part in parts:
            part.flags.writeable = False
        return parts

    @property
    def network_dimension(self) -> int:
        return self.network_joint_bayesian.dimension

    @property
    def dimension(self) -> int:
        return self.network_dimension + self.texture.dimension

    def save(self, path: str | Path) -> None:
        cells = {}
        for index, cell in enumerate(self.texture.cells):
            cells[f"texture_cell_mean{index}"] = cell.mean
            cells[f"texture_cell_axes{index}"] = cell.axes.astype(np.float16)
        network, texture = self.network_joint_bayesian, self.texture_joint_bayesian
        with open(path, "wb") as stream:
            np.savez(stream, kind=self.kind, weights=np.array(self.weights), texture_descriptor=DESCRIPTOR, **cells,
                     texture_mean=self.texture.mean, texture_axes=self.texture.axes.astype(np.float16),
                     texture_spread=self.texture.spread, mean=texture.mean, cross=texture.cross,
                     quadratic=texture.quadratic, network_mean=network.mean, network_cross=network.cross,
                     network_quadratic=network.quadratic)

    @classmethod
    def load(cls, path: str | Path) -> "TextureFusionScoring":
        with np.load(path, allow_pickle=False) as data:
            if str(data["kind"]) != cls.kind:
                raise ValueError(f"{path} holds {str(data['kind'])!r} scoring, not {cls.kind!r}")
            descriptor = str(data["texture_descriptor"]) if "texture_descriptor" in data else "an older one"
            rescore = f"score the run again: python -m training rescore RUN --scoring {cls.kind}"
            if descriptor != DESCRIPTOR:
                raise StaleScoringError(f"{path} was fitted on another texture descriptor ({descriptor}), not on "
                                        f"this version's ({DESCRIPTOR}); {rescore}")
            if "network_mean" not in data:
                raise StaleScoringError(f"{path} was fitted without the Joint Bayesian of the network's vectors "
                                        f"that this version weighs in; {rescore}")
            blocks = sum(key.startswith("texture_cell_mean") for key in data.files)
            cells = tuple(CellAxes(data[f"texture_cell_mean{index}"].astype(np.float32),
                                   data[f"texture_cell_axes{index}"].astype(np.float32)) for index in range(blocks))
            texture = TextureProjection(cells, data["texture_mean"].astype(np.float32),
                                        data["texture_axes"].astype(np.float32),
                                        data["texture_spread"].astype(np.float32))
            w_cosine, w_network, w_texture, bias = data["weights"].tolist()
            scoring = cls(texture, JointBayesianScoring.from_saved(data, path, prefix="network_"),
                          JointBayesianScoring.from_saved(data, path), (w_cosine, w_network, w_texture, bias))
        reduced = sum(cell.axes.shape[0] * cell.axes.shape[2] for cell in cells)
        if not (reduced == texture.mean.shape[0] == texture.axes.shape[0]
                and texture.axes.shape[1] == texture.spread.shape[0] == scoring.texture_joint_bayesian.dimension
                and all(cell.mean.shape == cell.axes.shape[:2] for cell in cells)):
            raise ValueError(f"{path}: texture parameter shapes do not agree ({texture.mean.shape}, "
                             f"{texture.axes.shape}, {texture.spread.shape}, "
                             f"{scoring.texture_joint_bayesian.mean.shape})")
        return scoring


Scoring = CosineScoring | JointBayesianScoring | CohortNormScoring | TextureFusionScoring
FITTED = {scoring.kind: scoring for scoring in (JointBayesianScoring, CohortNormScoring, TextureFusionScoring)}


def _per_gallery(scoring, templates: np.ndarray, compute):
    """compute(templates), kept while the same read-only gallery matrix comes back: Gallery.matrix()
    returns one read-only array until the gallery changes, so a frame does not redo the gallery's side."""
    cached = scoring.__dict__.get("_gallery_cache")
    if cached is not None and cached[0] is templates:
        return cached[1]
    result = compute(templates)
    if isinstance(templates, np.ndarray) and not templates.flags.writeable:
        object.__setattr__(scoring, "_gallery_cache", (templates, result))
    return result
