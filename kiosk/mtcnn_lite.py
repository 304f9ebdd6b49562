"""MTCNN on TFLite: the `mtcnn` package's networks as three small files, and no TensorFlow.

Importing TensorFlow and building the compiled graphs (kiosk.mtcnn_graph) costs a kiosk many
seconds of its start-up; LiteRT opens these files in milliseconds and runs them on XNNPACK.
`python -m training mtcnn-export` writes them from the package's weights (tests check that
they give the package's faces). The rules between the networks are kiosk.mtcnn_rules';
here: the pyramid resized with OpenCV's area filter (TensorFlow's AREA resize, as the
compiled graph uses) and patches cut as `tf.image.crop_and_resize` cuts them, in NumPy.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from kiosk.litert import LiteModelError, allocate, open_interpreter
from kiosk.modelcard import sha256_of
from kiosk.mtcnn_rules import Cascade
from kiosk.packagedata import shipped

MANIFEST = "face_detector.json"  # beside the three files: what they are, where from, their digests
NETWORKS = ("pnet", "rnet", "onet")
PATCH_SIDES = {"rnet": 24, "onet": 48}


def default_detector_dir() -> Path:
    """The folder holding the shipped detector files (the package's, else the checkout's assets/)."""
    return shipped("assets")


def detector_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The three networks' files listed by the folder's manifest, each checked against its digest."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = {name: (folder / manifest["networks"][name]["file"], manifest["networks"][name]["sha256"])
                 for name in NETWORKS}
    except FileNotFoundError as exc:
        raise LiteModelError(f"{manifest_path}: no face detector here (make it with "
                             "`python -m training mtcnn-export --out FOLDER`)") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LiteModelError(f"{manifest_path}: not a face detector manifest ({exc})") from exc
    for name, (path, digest) in files.items():
        if not path.is_file():
            raise LiteModelError(f"{path}: the face detector's {name} file is missing")
        if sha256_of(path) != digest:
            raise LiteModelError(f"{path}: the face detector's {name} file is damaged (its digest differs "
                                 f"from {manifest_path.name}'s)")
    return {name: path for name, (path, _) in files.items()}


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """`tf.image.crop_and_resize(image[None], boxes, zeros, (side, side))` in NumPy: bilinear
    samples of `image` (H x W x C float32) on a side x side grid spanning each box (y1, x1, y2, x2
    as fractions of size - 1); samples outside the image are 0."""
    height, width = image.shape[:2]
    steps = np.arange(side, dtype=np.float32)
    boxes = boxes.astype(np.float32)
    last_row, last_column, last_step = np.float32(height - 1), np.float32(width - 1), np.float32(side - 1)
    # In TensorFlow's order of operations, so that float32 rounds alike.
    ys = boxes[:, 0:1] * last_row + steps * ((boxes[:, 2:3] - boxes[:, 0:1]) * last_row / last_step)
    xs = boxes[:, 1:2] * last_column + steps * ((boxes[:, 3:4] - boxes[:, 1:2]) * last_column / last_step)
    inside = ((ys >= 0) & (ys <= last_row))[:, :, None] & ((xs >= 0) & (xs <= last_column))[:, None, :]
    ys, xs = np.clip(ys, 0, last_row), np.clip(xs, 0, last_column)
    top, left = np.floor(ys).astype(np.intp), np.floor(xs).astype(np.intp)
    bottom, right = np.ceil(ys).astype(np.intp), np.ceil(xs).astype(np.intp)
    dy, dx = (ys - top)[:, :, None, None], (xs - left)[:, None, :, None]
    rows_top, rows_bottom = top[:, :, None], bottom[:, :, None]
    cols_left, cols_right = left[:, None, :], right[:, None, :]
    upper = image[rows_top, cols_left] + (image[rows_top, cols_right] - image[rows_top, cols_left]) * dx
    lower = image[rows_bottom, cols_left] + (image[rows_bottom, cols_right] - image[rows_bottom, cols_left]) * dx
    return np.where(inside[..., None], upper + (lower - upper) * dy, np.float32(0.0)).astype(np.float32)


class _Network:
    """One TFLite network whose tensors are allocated once per input shape it has seen."""

    def __init__(self, path: Path) -> None:
        self._path = path
        # input shape -> (its interpreter, the input's tensor index, the outputs' indices in the order returned)
        self._by_shape: dict[tuple[int, ...], tuple[object, int, list[int]]] = {}

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        """The network's outputs, ordered by the size of their last axis, largest first."""
        prepared = self._by_shape.get(batch.shape)
        if prepared is None:
            prepared = self._by_shape[batch.shape] = self._prepare(batch.shape)
        interpreter, source, outputs = prepared
        interpreter.set_tensor(source, batch)
        interpreter.invoke()
        return [interpreter.get_tensor(index) for index in outputs]

    def _prepare(self, shape: tuple[int, ...]) -> tuple[object, int, list[int]]:
        interpreter = open_interpreter(self._path)
        source = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(source, list(shape))
        allocate(interpreter)
        details = sorted(interpreter.get_output_details(), key=lambda detail: detail["shape"][-1], reverse=True)
        return interpreter, source, [detail["index"] for detail in details]

    def forget(self, keep) -> None:
        """Drop the interpreters of shapes for which `keep(shape)` is false."""
        self._by_shape = {shape: it for shape, it in self._by_shape.items() if keep(shape)}


class LiteMTCNN(Cascade):
    """The cascade with its networks on TFLite (LiteRT's XNNPACK kernels)."""

    def __init__(self, folder: str | os.PathLike | None = None, **settings) -> None:
        """`folder`: the detector's files (default: the shipped ones); `settings`: the Cascade's
        (min_face_size, thresholds, nms, min_face_fraction)."""
        super().__init__(**settings)
        files = detector_files(folder or default_detector_dir())
        self._networks = {name: _Network(path) for name, path in files.items()}

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        with self._lock:  # the interpreters hold their tensors: one image at a time
            return super().detect(rgb)

    def _run_pnet(self, rgb: np.ndarray, levels) -> tuple[np.ndarray, list]:
        image = (rgb.astype(np.float32) - np.float32(127.5)) / np.float32(128.0)
        maps = []
        for level_h, level_w, _ in levels:
            scaled = cv2.resize(image, (level_w, level_h), interpolation=cv2.INTER_AREA)
            reg, prob = self._networks["pnet"](scaled[None])
            maps.append((reg[0], prob[0, :, :, 1]))
        return image, maps

    def _run_rnet(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offsets, probs = self._patches("rnet", image, boxes)  # last axes 4, 2
        return offsets, probs

    def _run_onet(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        landmarks, offsets, probs = self._patches("onet", image, boxes)  # last axes 10, 4, 2
        return offsets, landmarks, probs

    def _patches(self, name: str, image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        patches = crop_and_resize(image, boxes, PATCH_SIDES[name])
        padded = 1 << max(0, len(patches) - 1).bit_length()  # a few batch shapes, each allocated once
        batch = np.zeros((padded, *patches.shape[1:]), np.float32)
        batch[:len(patches)] = patches
        return [output[:len(patches)] for output in self._networks[name](batch)]

    def _forget(self) -> None:
        sizes = {(1, h, w, 3) for frame in self._levels.values() for h, w, _ in frame}
        self._networks["pnet"].forget(lambda shape: shape in sizes)
