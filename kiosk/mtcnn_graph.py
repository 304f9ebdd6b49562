"""MTCNN run as compiled TensorFlow graphs: the `mtcnn` package's networks and weights, fast.

The package runs its three stages eagerly: a call on a 640x480 frame costs 140-270 ms here,
most of it per-op overhead of its image pyramid. This module keeps the package's weights
and its post-processing rules (box decoding, its NMS variant, square boxes, offsets) and
changes only how the work is scheduled:

- the whole pyramid (resize + PNet at every scale) is one `tf.function` call, traced once
  per frame size with a fixed signature, so nothing retraces frame after frame;
- RNet and ONet crop their patches with `tf.image.crop_and_resize` inside one compiled call
  each, with a dynamic batch dimension (one trace for any number of proposals);
- a `min_face_size` above 20 works: the package keeps the scale count of min_face_size=20
  and so asks PNet for maps smaller than its 12 px window, which fails and reports no face;
  here the pyramid stops at the last scale whose image still holds a 12 px window.

tests/test_mtcnn_graph.py checks that boxes and landmarks agree with the package on LFW.
Rows are the package's numpy layout: image index, x1, y1, x2, y2, score, 5 x's, 5 y's.
"""
from __future__ import annotations

import threading

import numpy as np

PNET_WINDOW = 12  # PNet looks at 12x12 windows with a stride of 2 on each pyramid level
PNET_STRIDE = 2
SCALE_FACTOR = 0.709  # the pyramid step of the MTCNN paper and package
MAX_TRACED_SIZES = 8  # frame sizes kept compiled; a camera uses one, LFW another
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


class CompiledMTCNN:
    """Detect faces in one RGB uint8 image; returns the package's numpy rows (xyxy boxes)."""

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
        nms: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7),
    ) -> None:
        import tensorflow as tf
        from mtcnn.network.onet import ONet
        from mtcnn.network.pnet import PNet
        from mtcnn.network.rnet import RNet
        from mtcnn.utils.tensorflow import load_weights

        if min_face_size < PNET_WINDOW:
            raise ValueError(f"min_face_size must be at least {PNET_WINDOW} px, got {min_face_size}")
        self.min_face_size = int(min_face_size)
        self.thresholds = thresholds
        self.nms = nms  # PNet per level, PNet across levels, RNet, ONet
        self._tf = tf
        self._pnet, self._rnet, self._onet = PNet(), RNet(), ONet()
        for net, weights in ((self._pnet, "pnet.lz4"), (self._rnet, "rnet.lz4"), (self._onet, "onet.lz4")):
            net.build()
            net.set_weights(load_weights(weights))
        patch_signature = [
            tf.TensorSpec((1, None, None, 3), tf.float32),  # the normalised image
            tf.TensorSpec((None, 4), tf.float32),  # boxes as y1, x1, y2, x2 fractions
        ]
        self._run_rnet = tf.function(self._patch_stage(self._rnet, 24), input_signature=patch_signature)
        self._run_onet = tf.function(self._patch_stage(self._onet, 48), input_signature=patch_signature)
        self._pyramids: dict[tuple[int, int], tuple[object, list]] = {}  # size -> (compiled, levels)
        self._lock = threading.Lock()  # guards the cache of compiled pyramids

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """All faces of `rgb` (H x W x 3 uint8) as rows of 16 numbers, best score first."""
        height, width = rgb.shape[:2]
        if min(height, width) * PNET_WINDOW / self.min_face_size < PNET_WINDOW:
            return EMPTY_ROWS  # smaller than the smallest face looked for
        compiled, levels = self._pyramid(height, width)
        image, outputs = compiled(rgb[None])
        rows = self._proposals(outputs, levels)
        if len(rows):
            rows = self._refine_with_rnet(image, rows, height, width)
        if len(rows):
            rows = self._refine_with_onet(image, rows, height, width)
        return self._fit_to_image(rows, height, width)

    # -- stage 1: the pyramid --------------------------------------------------

    def _pyramid(self, height: int, width: int) -> tuple[object, list[tuple[int, int, float]]]:
        """(the compiled pyramid + PNet for this frame size, its levels)."""
        key = (height, width)
        with self._lock:
            pyramid = self._pyramids.get(key)
            if pyramid is None:
                if len(self._pyramids) >= MAX_TRACED_SIZES:
                    self._pyramids.pop(next(iter(self._pyramids)))
                pyramid = self._compile_pyramid(height, width)
                self._pyramids[key] = pyramid
        return pyramid

    def _compile_pyramid(self, height: int, width: int) -> tuple[object, list[tuple[int, int, float]]]:
        tf = self._tf
        levels = pyramid_shapes(height, width, self.min_face_size)

        def run(rgb):
            image = (tf.cast(rgb, tf.float32) - 127.5) / 128.0
            outputs = []
            for level_h, level_w, _ in levels:
                scaled = tf.image.resize(image, (level_h, level_w), method=tf.image.ResizeMethod.AREA)
                reg, prob = self._pnet(scaled)
                outputs.append((reg[0], prob[0, :, :, 1]))
            return image, outputs

        return tf.function(run, input_signature=[tf.TensorSpec((1, height, width, 3), tf.uint8)]), levels

    def _proposals(self, outputs, levels) -> np.ndarray:
        per_level = []
        for (reg, prob), (_, _, scale) in zip(outputs, levels):
            rows = decode_pnet(reg.numpy(), prob.numpy(), scale, self.thresholds[0])
            per_level.append(suppress(rows, self.nms[0], sort=False))
        rows = np.concatenate(per_level) if per_level else np.zeros((0, 6))
        return to_square(suppress(rows, self.nms[1]))

    # -- stages 2 and 3: refinement on patches -----------------------------------

    @staticmethod
    def _patch_stage(network, size: int):
        import tensorflow as tf

        def run(image, boxes):
            patches = tf.image.crop_and_resize(image, boxes, tf.zeros(tf.shape(boxes)[0], tf.int32), (size, size))
            return network(patches)

        return run

    @staticmethod
    def _patch_boxes(rows: np.ndarray, height: int, width: int) -> np.ndarray:
        # The package divides by the image size (not size - 1); kept so patches match its own.
        return (rows[:, [2, 1, 4, 3]] / np.array([height, width, height, width])).astype(np.float32)

    def _refine_with_rnet(self, image, rows: np.ndarray, height: int, width: int) -> np.ndarray:
        offsets, probs = self._run_rnet(image, self._patch_boxes(rows, height, width))
        rows = rows.copy()
        rows[:, 5] = probs.numpy()[:, 1]
        rows = refine(rows, offsets.numpy())
        rows = rows[rows[:, 5] > self.thresholds[1]]
        return to_square(suppress(rows, self.nms[2]))

    def _refine_with_onet(self, image, rows: np.ndarray, height: int, width: int) -> np.ndarray:
        offsets, landmarks, probs = self._run_onet(image, self._patch_boxes(rows, height, width))
        landmarks = landmarks.numpy().astype(np.float64)
        w = rows[:, 3:4] - rows[:, 1:2] + 1
        h = rows[:, 4:5] - rows[:, 2:3] + 1
        landmarks[:, 0:5] = w * landmarks[:, 0:5] + rows[:, 1:2] - 1
        landmarks[:, 5:10] = h * landmarks[:, 5:10] + rows[:, 2:3] - 1
        rows = rows.copy()
        rows[:, 5] = probs.numpy()[:, 1]
        rows = np.concatenate([refine(rows, offsets.numpy()), landmarks], axis=1)
        rows = rows[rows[:, 5] > self.thresholds[2]]
        return suppress(rows, self.nms[3], method="min")

    @staticmethod
    def _fit_to_image(rows: np.ndarray, height: int, width: int) -> np.ndarray:
        if not len(rows):
            return EMPTY_ROWS
        rows = rows.copy()
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, width - 1)
        rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, height - 1)
        return rows
