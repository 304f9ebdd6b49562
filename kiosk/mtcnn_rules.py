"""MTCNN's cascade as the `mtcnn` package runs it, apart from where its three networks run.

The package's weights and its rules between the networks (the image pyramid, box decoding,
its NMS variant, square boxes, box regression, landmarks) live here, once; a subclass of
`Cascade` only says how to run PNet on the pyramid and RNet and ONet on patches: compiled
TensorFlow graphs (kiosk.mtcnn_graph) or TFLite files with no TensorFlow at all
(kiosk.mtcnn_lite). Rows are the package's numpy layout: image index, x1, y1, x2, y2, score,
5 x's, 5 y's.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import numpy as np

PNET_WINDOW = 12  # PNet looks at 12x12 windows with a stride of 2 on each pyramid level
PNET_STRIDE = 2
SCALE_FACTOR = 0.709  # the pyramid step of the MTCNN paper and package
MAX_FRAME_SIZES = 8  # frame sizes kept prepared; a camera uses one, LFW another
EMPTY_ROWS = np.zeros((0, 16), np.float64)


def pyramid_shapes(height: int, width: int, min_face_size: int) -> list[tuple[int, int, float]]:
    """(level height, level width, scale) for each pyramid level that holds a PNet window."""
    scale = PNET_WINDOW / min_face_size
    levels = []
    while min(height, width) * scale >= PNET_WINDOW:
        levels.append((int(height * scale), int(width * scale), scale))
        scale *= SCALE_FACTOR
    return levels


def best_first(rows: np.ndarray) -> np.ndarray:
    """Rows by descending score, ties ordered exactly as the package orders them."""
    return rows[np.argsort(rows[:, 5])[::-1]]


def suppress(rows: np.ndarray, threshold: float, method: str = "union", *, sort: bool = True) -> np.ndarray:
    """The package's non-maximum suppression: drop every box that overlaps a higher-scoring one.

    Unlike greedy NMS, a box is dropped even when the box that overlaps it was itself
    dropped; keeping that rule is what makes the results match the package's.
    """
    if len(rows) <= 1:
        return rows
    if sort:
        rows = best_first(rows)
    x1, y1, x2, y2 = (rows[:, i] for i in range(1, 5))
    area = (x2 - x1) * (y2 - y1)
    inter_w = np.maximum(0.0, np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]))
    inter_h = np.maximum(0.0, np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]))
    inter = inter_w * inter_h
    if method == "union":
        denominator = area[:, None] + area[None, :] - inter
    else:
        denominator = np.minimum(area[:, None], area[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = inter / denominator
    higher = np.triu(np.ones(overlap.shape, bool), k=1)  # row i scores higher than column j > i
    suppressed = ((overlap > threshold) & higher).any(axis=0)
    return rows[~suppressed]


def to_square(rows: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (RNet and ONet look at square patches)."""
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1]
    h = rows[:, 4] - rows[:, 2]
    side = np.maximum(w, h)
    rows[:, 1] += w * 0.5 - side * 0.5
    rows[:, 2] += h * 0.5 - side * 0.5
    rows[:, 3] = rows[:, 1] + side
    rows[:, 4] = rows[:, 2] + side
    return rows


def refine(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply RNet/ONet box regression (offsets are fractions of the box size, inclusive pixels)."""
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1] + 1
    h = rows[:, 4] - rows[:, 2] + 1
    rows[:, 1:5] += offsets * np.stack([w, h, w, h], axis=-1)
    return rows


def decode_pnet(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """Candidate boxes (rows with 6 columns) in image coordinates from one pyramid level."""
    ys, xs = np.nonzero(prob > threshold)
    if len(ys) == 0:
        return np.zeros((0, 6))
    offsets = reg[ys, xs]  # x1, y1, x2, y2 as fractions of the window's side
    # The package's window spans pixels stride*i + 1 .. stride*i + 12 (side 11); kept as is.
    left, top = xs * PNET_STRIDE + 1, ys * PNET_STRIDE + 1
    side = PNET_WINDOW - 1
    boxes = np.stack([
        left + offsets[:, 0] * side,
        top + offsets[:, 1] * side,
        left + side + offsets[:, 2] * side,
        top + side + offsets[:, 3] * side,
    ], axis=1) / scale
    return best_first(np.column_stack([np.zeros(len(ys)), boxes, prob[ys, xs]]))


def patch_boxes(rows: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rows' boxes as crop_and_resize takes them: y1, x1, y2, x2 as fractions of the image."""
    # The package divides by the image size (not size - 1); kept so patches match its own.
    return (rows[:, [2, 1, 4, 3]] / np.array([height, width, height, width])).astype(np.float32)


def fit_to_image(rows: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rows with their boxes clipped to the image."""
    if not len(rows):
        return EMPTY_ROWS
    rows = rows.copy()
    rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, width - 1)
    rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, height - 1)
    return rows


class Cascade(ABC):
    """Detect faces in one RGB uint8 image; returns the package's numpy rows (xyxy boxes), best first.

    A `min_face_size` above 20 works: the package keeps the scale count of min_face_size=20 and
    so asks PNet for maps smaller than its 12 px window, which fails and reports no face; here
    the pyramid stops at the last scale whose image still holds a 12 px window. With
    `min_face_fraction` the smallest face looked for grows with the image: that fraction of its
    shorter side, when it is more than `min_face_size`.
    """

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
        nms: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7),
        min_face_fraction: float = 0.0,
    ) -> None:
        if min_face_size < PNET_WINDOW:
            raise ValueError(f"min_face_size must be at least {PNET_WINDOW} px, got {min_face_size}")
        if not 0.0 <= min_face_fraction < 1.0:
            raise ValueError(f"min_face_fraction must be in [0, 1), got {min_face_fraction}")
        self.min_face_size = int(min_face_size)
        self.min_face_fraction = float(min_face_fraction)
        self.thresholds = thresholds
        self.nms = nms  # PNet per level, PNet across levels, RNet, ONet
        self._levels: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
        self._lock = threading.RLock()  # guards the per-size caches (and, in a subclass, its networks)

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """All faces of `rgb` (H x W x 3 uint8) as rows of 16 numbers, best score first."""
        height, width = rgb.shape[:2]
        if min(height, width) < self.smallest_face(height, width):
            return EMPTY_ROWS  # smaller than the smallest face looked for
        levels = self.levels(height, width)
        image, maps = self._run_pnet(rgb, levels)
        rows = self._proposals(maps, levels)
        if len(rows):
            offsets, probs = self._run_rnet(image, patch_boxes(rows, height, width))
            rows = self._after_rnet(rows, offsets, probs)
        if len(rows):
            offsets, landmarks, probs = self._run_onet(image, patch_boxes(rows, height, width))
            rows = self._after_onet(rows, offsets, landmarks, probs)
        return fit_to_image(rows, height, width)

    def smallest_face(self, height: int, width: int) -> int:
        """The side of the smallest face looked for in an image of this size, in pixels."""
        return max(self.min_face_size, int(min(height, width) * self.min_face_fraction))

    def levels(self, height: int, width: int) -> list[tuple[int, int, float]]:
        """The pyramid for one frame size (kept for the last few sizes seen)."""
        key = (height, width)
        with self._lock:
            levels = self._levels.get(key)
            if levels is None:
                if len(self._levels) >= MAX_FRAME_SIZES:
                    del self._levels[next(iter(self._levels))]
                    self._forget()
                levels = self._levels[key] = pyramid_shapes(height, width, self.smallest_face(height, width))
        return levels

    # -- where the networks run: the subclass's part ------------------------------

    @abstractmethod
    def _run_pnet(self, rgb: np.ndarray, levels: list[tuple[int, int, float]]) -> tuple[object, list]:
        """(the normalised image, as the patch stages take it; PNet's (offsets, face probability)
        maps as numpy arrays, one pair per level)."""

    @abstractmethod
    def _run_rnet(self, image, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RNet on 24 px patches of `image` cut at `boxes`: (offsets N x 4, probabilities N x 2)."""

    @abstractmethod
    def _run_onet(self, image, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ONet on 48 px patches: (offsets N x 4, landmarks N x 10, probabilities N x 2)."""

    def _forget(self) -> None:
        """Drop what was prepared for frame sizes no longer among the kept pyramids (nothing by default)."""

    # -- the package's rules between the networks ----------------------------------

    def _proposals(self, maps, levels) -> np.ndarray:
        per_level = []
        for (reg, prob), (_, _, scale) in zip(maps, levels):
            rows = decode_pnet(reg, prob, scale, self.thresholds[0])
            per_level.append(suppress(rows, self.nms[0], sort=False))
        rows = np.concatenate(per_level) if per_level else np.zeros((0, 6))
        return to_square(suppress(rows, self.nms[1]))

    def _after_rnet(self, rows: np.ndarray, offsets: np.ndarray, probs: np.ndarray) -> np.ndarray:
        rows = rows.copy()
        rows[:, 5] = probs[:, 1]
        rows = refine(rows, offsets)
        rows = rows[rows[:, 5] > self.thresholds[1]]
        return to_square(suppress(rows, self.nms[2]))

    def _after_onet(self, rows: np.ndarray, offsets: np.ndarray, landmarks: np.ndarray,
                    probs: np.ndarray) -> np.ndarray:
        landmarks = landmarks.astype(np.float64)
        w = rows[:, 3:4] - rows[:, 1:2] + 1
        h = rows[:, 4:5] - rows[:, 2:3] + 1
        landmarks[:, 0:5] = w * landmarks[:, 0:5] + rows[:, 1:2] - 1
        landmarks[:, 5:10] = h * landmarks[:, 5:10] + rows[:, 2:3] - 1
        rows = rows.copy()
        rows[:, 5] = probs[:, 1]
        rows = np.concatenate([refine(rows, offsets), landmarks], axis=1)
        rows = rows[rows[:, 5] > self.thresholds[2]]
        return suppress(rows, self.nms[3], method="min")
