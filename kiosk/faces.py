"""Face detection with MTCNN: every face with its box, five landmarks, confidence and quality.

Three implementations give the same faces (tests/test_mtcnn_lite.py, tests/test_mtcnn_graph.py):
"lite" (the default) runs the `mtcnn` package's networks as the TFLite files shipped in assets/
(kiosk/mtcnn_lite.py: no TensorFlow, opened in milliseconds); "graph" runs them as compiled
TensorFlow graphs (kiosk/mtcnn_graph.py); "package" calls the package itself (6x slower on a
640x480 frame). Each builds its networks once, so a FaceDetector is built once and reused;
`shared_detector()` gives the process-wide one.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from kiosk.alignment import AlignmentSpec, align_face, landmarks_in_crop
from kiosk.images import as_rgb_uint8
from kiosk.quality import Quality, measure_quality

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for kiosk users

# MTCNN's image pyramid costs time in proportion to the pixels; beyond this side a frame is
# detected on a scaled copy and the results are scaled back (faces at a door are not tiny).
DEFAULT_MAX_SIDE = 1280
# The smallest face the kiosk looks for, as a fraction of the picture's shorter side (never below
# the detector's 20 px): 40 px on a 640x480 camera frame, where the door decides on faces from
# 60 px (kiosk.policy) and tells faces from 40 px to come closer; a smaller face there is a
# passer-by far away. Looking for 20 px faces took twice as long per frame (benchmarks.speed).
# Small photos (an ORL portrait, an LFW image) keep the 20 px floor.
KIOSK_MIN_FACE_FRACTION = 1 / 12


@dataclass(frozen=True)
class Face:
    """One detected face in image coordinates."""

    box: np.ndarray  # x1, y1, x2, y2 (float32)
    landmarks: np.ndarray  # 5x2 float32: image-left eye, image-right eye, nose, mouth left, mouth right
    score: float  # detector confidence 0..1
    quality: Quality

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
            "score": round(self.score, 4),
            "quality": self.quality.to_dict(),
        }


IMPLEMENTATIONS = ("lite", "graph", "package")


class FaceDetector:
    """MTCNN wrapper: validated input in, faces largest first out."""

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
        min_score: float = 0.9,
        max_side: int = DEFAULT_MAX_SIDE,
        implementation: str = "lite",
        min_face_fraction: float = 0.0,
    ) -> None:
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        if implementation == "lite":
            from kiosk.mtcnn_lite import LiteMTCNN

            self._cascade = LiteMTCNN(min_face_size=min_face_size, thresholds=thresholds,
                                      min_face_fraction=min_face_fraction)
        elif implementation == "graph":
            _require_mtcnn_package(implementation)
            from kiosk.mtcnn_graph import CompiledMTCNN  # imports TensorFlow, which takes seconds

            self._cascade = CompiledMTCNN(min_face_size=min_face_size, thresholds=thresholds,
                                          min_face_fraction=min_face_fraction)
        else:
            if min_face_fraction:
                raise ValueError("the 'package' detector takes a fixed min_face_size only")
            _require_mtcnn_package(implementation)
            from mtcnn import MTCNN

            self._mtcnn = MTCNN()
        self._options = {
            "min_face_size": min_face_size,
            "threshold_pnet": thresholds[0],
            "threshold_rnet": thresholds[1],
            "threshold_onet": thresholds[2],
        }
        self.implementation = implementation
        self.min_face_fraction = min_face_fraction
        self.min_score = min_score
        self.max_side = max_side

    @property
    def settings(self) -> dict:
        """What shapes the faces this detector returns (part of the training cache key)."""
        return {
            "min_face_size": self._options["min_face_size"],
            # Only when set, so that the cache keys of detectors without it stay as they were.
            **({"min_face_fraction": self.min_face_fraction} if self.min_face_fraction else {}),
            "min_score": self.min_score,
            "implementation": self.implementation,
        }

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in `image` (RGB uint8; grey/RGBA/float are converted), largest first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detect in several images (the package implementation batches them into one call)."""
        rgbs = [as_rgb_uint8(image) for image in images]
        if not rgbs:
            return []
        scaled, factors = zip(*(self._scaled_for_detection(rgb) for rgb in rgbs))
        rows = self._rows(list(scaled))
        results: list[list[Face]] = []
        for index, (rgb, factor) in enumerate(zip(rgbs, factors)):
            faces = [
                self._face_from_row(rgb, row, factor)
                for row in rows[rows[:, 0] == index]
                if row[5] >= self.min_score
            ]
            faces.sort(key=lambda face: face.area, reverse=True)
            results.append(faces)
        return results

    def detect_in_region(self, image: np.ndarray, region: tuple[int, int, int, int], side: int) -> list[Face]:
        """Faces inside `region` (x0, y0, x1, y1) of `image`, in image coordinates, largest first.

        The region is resized to `side` x `side` before detection, so every call has the same
        shape (no retracing) and costs a fraction of a full frame; `region` should be square.
        """
        rgb = as_rgb_uint8(image)
        x0, y0, x1, y1 = region
        crop = rgb[y0:y1, x0:x1]
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            return []
        grow = crop.shape[0] < side
        resized = cv2.resize(crop, (side, side), interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA)
        rows = self._rows([resized])
        rows[:, [1, 3, 6, 7, 8, 9, 10]] = rows[:, [1, 3, 6, 7, 8, 9, 10]] * (crop.shape[1] / side) + x0
        rows[:, [2, 4, 11, 12, 13, 14, 15]] = rows[:, [2, 4, 11, 12, 13, 14, 15]] * (crop.shape[0] / side) + y0
        faces = [self._face_from_row(rgb, row, 1.0) for row in rows if row[5] >= self.min_score]
        return sorted(faces, key=lambda face: face.area, reverse=True)

    def _rows(self, images: list[np.ndarray]) -> np.ndarray:
        """One row per face: image index, x1, y1, x2, y2, score, the five x's, the five y's."""
        if self.implementation != "package":
            per_image = [self._cascade.detect(image) for image in images]
            for index, rows in enumerate(per_image):
                rows[:, 0] = index
            return np.concatenate(per_image)
        rows = self._mtcnn.detect_faces(images, output_type="numpy", box_format="xyxy", **self._options)
        return np.asarray(rows, dtype=np.float64).reshape(-1, 16)

    def _scaled_for_detection(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        longest = max(rgb.shape[:2])
        if longest <= self.max_side:
            return rgb, 1.0
        factor = self.max_side / longest
        size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), factor

    @staticmethod
    def _face_from_row(rgb: np.ndarray, row: np.ndarray, factor: float) -> Face:
        # mtcnn's numpy rows: image index, x1, y1, x2, y2, confidence, then the five x's, then the five y's.
        box = (row[1:5] / factor).astype(np.float32)
        landmarks = (np.stack([row[6:11], row[11:16]], axis=1) / factor).astype(np.float32)
        return Face(box=box, landmarks=landmarks, score=float(row[5]), quality=measure_quality(rgb, box, landmarks))


def _require_mtcnn_package(implementation: str) -> None:
    try:
        import mtcnn  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"the {implementation!r} detector needs the mtcnn package and TensorFlow (the train or "
                         "test extra); the kiosk's own is 'lite'") from exc


@functools.lru_cache(maxsize=1)
def shared_detector() -> FaceDetector:
    """The kiosk's detector, one per process (built on first use)."""
    return kiosk_detector()


def kiosk_detector(implementation: str = "lite") -> FaceDetector:
    """A new detector with the kiosk's settings: faces from KIOSK_MIN_FACE_FRACTION of the picture's
    shorter side (the "package" implementation, for comparisons, takes a fixed size only)."""
    return FaceDetector(implementation=implementation,
                        min_face_fraction=0.0 if implementation == "package" else KIOSK_MIN_FACE_FRACTION)


def face_nearest_center(faces: Sequence[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The face whose centre is nearest the image centre (LFW's convention for its subject)."""
    cy, cx = image_shape[0] / 2, image_shape[1] / 2
    return min(faces, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2, default=None)


def crop_faces(rgb: np.ndarray, faces: Sequence[Face], spec: AlignmentSpec) -> np.ndarray:
    """Aligned crops (N x size x size x 3 uint8) for `faces` of `rgb`."""
    if not faces:
        return np.zeros((0, spec.size, spec.size, 3), np.uint8)
    return np.stack([align_face(rgb, face.landmarks, spec) for face in faces])


def crop_landmarks(faces: Sequence[Face], spec: AlignmentSpec) -> np.ndarray:
    """N x 5 x 2: where each face's landmarks fall in its crop from crop_faces."""
    return np.array([landmarks_in_crop(face.landmarks, spec) for face in faces], np.float32).reshape(-1, 5, 2)
