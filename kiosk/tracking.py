"""Detection for one video stream: a full-frame search now and then, a small region in between.

A person at the door moves little between frames, so after a face is found the next frames
are searched only in a square around it (about three face widths), resized to a fixed side
so MTCNN's compiled pyramid never retraces. That costs a fraction of a full frame. A full
search still runs every `full_every` frames, and at once when the region holds no face, so
a second person stepping into the picture or a face that moved away is seen within a few
frames. The landmarks come from MTCNN on the region, not from motion extrapolation: what the
aligner and the liveness check get is always a real detection.
"""
from __future__ import annotations

import numpy as np

from kiosk.faces import Face, FaceDetector

DEFAULT_REGION_SIDE = 192  # pixels the region is resized to: a tracked face is ~64 px there
DEFAULT_FULL_EVERY = 5  # frames between full-frame searches while tracking
REGION_FACE_WIDTHS = 3.0  # region side in widths of the last face's box


class FaceTracker:
    """FaceDetector.detect for consecutive frames of one stream; not thread-safe (one per stream)."""

    def __init__(
        self,
        detector: FaceDetector,
        *,
        region_side: int = DEFAULT_REGION_SIDE,
        full_every: int = DEFAULT_FULL_EVERY,
    ) -> None:
        if full_every < 1:
            raise ValueError(f"full_every must be at least 1, got {full_every}")
        self.detector = detector
        self.region_side = region_side
        self.full_every = full_every
        self._last: Face | None = None
        self._since_full = 0
        self.full_searches = 0  # counters for benchmarks and tests
        self.region_searches = 0

    @property
    def following(self) -> bool:
        """Whether a face from an earlier frame narrows the next search."""
        return self._last is not None

    def reset(self) -> None:
        """Forget the tracked face (e.g. when the camera restarts)."""
        self._last = None
        self._since_full = 0

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """The faces of this frame, largest first, as FaceDetector.detect would find them."""
        faces: list[Face] = []
        if self._last is not None and self._since_full < self.full_every:
            self.region_searches += 1
            faces = self.detector.detect_in_region(rgb, self.region(self._last, rgb.shape), self.region_side)
            self._since_full += 1
        if not faces:
            self.full_searches += 1
            faces = self.detector.detect(rgb)
            self._since_full = 1
        self._last = faces[0] if faces else None
        return faces

    @staticmethod
    def region(face: Face, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """A square around `face`, REGION_FACE_WIDTHS of its size, moved inside the frame."""
        height, width = shape[:2]
        side = int(min(max(face.width, face.height) * REGION_FACE_WIDTHS, height, width))
        cx, cy = face.center
        x0 = int(np.clip(round(cx - side / 2), 0, width - side))
        y0 = int(np.clip(round(cy - side / 2), 0, height - side))
        return x0, y0, x0 + side, y0 + side
