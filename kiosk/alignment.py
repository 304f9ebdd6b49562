"""Five-point face alignment: the one function that makes crops for training and for the door.

A similarity transform (rotation, uniform scale, translation) maps the detected landmarks
onto a canonical template; the crop is the image warped by it. Training imports this module,
so a crop made for training and a crop made at the door come from the same code.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Canonical landmark positions in a 112x112 crop, in the order
# image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
# These are the widely used ArcFace/InsightFace reference points: a tight crop from brows to chin.
REFERENCE_LANDMARKS_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class AlignmentSpec:
    """Output crop geometry. `margin` adds that fraction of the crop as border on every side.

    `points` replaces the ArcFace template with another one (five (x, y) pairs as fractions of
    the crop, in LANDMARK_NAMES order): a model trained on other crops, e.g. dlib's face chips,
    names its own in its card.
    """

    size: int = 112
    margin: float = 0.0
    points: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"crop size must be at least 16 px, got {self.size}")
        if not 0.0 <= self.margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {self.margin}")
        if self.points is not None:
            points = np.asarray(self.points, dtype=np.float64)
            if points.shape != (5, 2) or not np.all((points > 0) & (points < 1)):
                raise ValueError(f"template points must be five (x, y) pairs inside (0, 1), got {self.points}")
            if points[1, 0] - points[0, 0] <= 0:
                raise ValueError("template points: the image-left eye must be left of the image-right eye")

    def template(self) -> np.ndarray:
        """The 5x2 target landmark positions for this crop size and margin."""
        unit = REFERENCE_LANDMARKS_112 / 112.0 if self.points is None else np.asarray(self.points, dtype=np.float64)
        shrink = 1.0 / (1.0 + 2.0 * self.margin)
        return ((unit - 0.5) * shrink + 0.5) * self.size

    def to_dict(self) -> dict:
        if self.points is None:
            return {"size": self.size, "margin": self.margin, "template": "arcface-5pt"}
        return {"size": self.size, "margin": self.margin, "template": "points-5pt",
                "points": [[round(float(x), 6), round(float(y), 6)] for x, y in self.points]}

    @classmethod
    def from_dict(cls, entry: dict) -> "AlignmentSpec":
        """The spec `to_dict` wrote (a card's or a prepare cache's "alignment"); raises ValueError
        or KeyError for an unknown template or bad values."""
        template = entry.get("template", "arcface-5pt")
        if template == "arcface-5pt":
            return cls(size=int(entry["size"]), margin=float(entry["margin"]))
        if template == "points-5pt":
            points = tuple((float(x), float(y)) for x, y in entry["points"])
            return cls(size=int(entry["size"]), margin=float(entry["margin"]), points=points)
        raise ValueError(f"unknown alignment template {template!r} (known: arcface-5pt, points-5pt)")


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama 1991) taking `source` points onto `target`.

    Returns the 2x3 matrix for cv2.warpAffine. Closed form, so the same landmarks always
    give the same crop.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2:
        raise ValueError(f"need two Nx2 point sets of equal shape, got {source.shape} and {target.shape}")
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    source_variance = (source_centred**2).sum() / len(source)
    if source_variance < 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    reflection = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflection[1, 1] = -1.0  # a mirror image is not a pose: force a proper rotation
    rotation = u @ reflection @ vt
    scale = float(np.trace(np.diag(singular) @ reflection)) / source_variance
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(rgb: np.ndarray, landmarks: np.ndarray, spec: AlignmentSpec = AlignmentSpec()) -> np.ndarray:
    """Warp `rgb` so that `landmarks` (5x2, image coordinates) land on the template of `spec`."""
    matrix = similarity_transform(landmarks, spec.template())
    # Replicated borders: a face near the frame edge gets smeared edge pixels rather than a
    # black wedge the model never saw in training.
    return cv2.warpAffine(
        rgb, matrix, (spec.size, spec.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to Nx2 points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def landmarks_in_crop(landmarks: np.ndarray, spec: AlignmentSpec = AlignmentSpec()) -> np.ndarray:
    """Where `landmarks` (5x2, image coordinates) fall in the face's aligned crop: near the
    template's points, off by the face's own proportions, pose and expression."""
    return apply_transform(similarity_transform(landmarks, spec.template()), landmarks)


def alignment_error(landmarks: np.ndarray, spec: AlignmentSpec = AlignmentSpec()) -> float:
    """Mean distance, in crop pixels, between the aligned landmarks and the template.

    Zero means the face has exactly the template's proportions; large values flag odd
    poses or bad landmarks.
    """
    return float(np.linalg.norm(landmarks_in_crop(landmarks, spec) - spec.template(), axis=1).mean())
