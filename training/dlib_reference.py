"""dlib's own face pipeline, as the reference the Keras backbone and its alignment are checked against.

dlib's frontal face detector, its 5-point shape predictor and `get_face_chip` (150 px, padding
0.25: what dlib's face-recognition examples feed the network), and dlib's own descriptor of a chip.
Needs `dlib` (the dlib-bin wheel) and face-recognition-models, both in the `train` extra; the
kiosk never uses this module.
"""
from __future__ import annotations

import numpy as np

from training.dlib_resnet import CHIP_SIZE, default_model_file

CHIP_PADDING = 0.25  # dlib's default for face-recognition chips


class DlibReference:
    """dlib's detector, landmarks, chips and descriptors."""

    def __init__(self) -> None:
        try:
            import dlib
            import face_recognition_models
        except ImportError as exc:
            raise ImportError('dlib\'s reference pipeline needs the train extra: pip install -e ".[train]"') from exc
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self._recognizer = dlib.face_recognition_model_v1(str(default_model_file()))

    def chip(self, rgb: np.ndarray) -> np.ndarray | None:
        """dlib's 150x150 face chip of the face nearest the image centre (LFW's convention), or
        None where dlib's detector finds no face."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        faces = list(self._detector(rgb, 1))
        if not faces:
            return None
        middle = np.array([rgb.shape[1], rgb.shape[0]]) / 2.0
        face = min(faces, key=lambda box: float(np.hypot(box.center().x - middle[0], box.center().y - middle[1])))
        shape = self._landmarks(rgb, face)
        return np.asarray(self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING), dtype=np.uint8)

    def descriptor(self, chip: np.ndarray) -> np.ndarray:
        """dlib's 128-d descriptor of a 150x150 chip (not unit length: dlib compares by distance)."""
        chip = np.ascontiguousarray(chip, dtype=np.uint8)
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"a dlib chip is {CHIP_SIZE}x{CHIP_SIZE}x3, got {chip.shape}")
        return np.asarray(self._recognizer.compute_face_descriptor(chip), dtype=np.float32)
