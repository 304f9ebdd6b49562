"""Quality signals of one detected face: size, sharpness, brightness and head pose.

They gate enrollment samples and, later, feed liveness (pose changes across frames). All are
cheap: a few hundred microseconds on the face's region.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from kiosk.alignment import REFERENCE_LANDMARKS_112

# Where the nose sits between the eye line and the mouth line on a frontal face, from the template.
_FRONTAL_NOSE_RATIO = float(
    (REFERENCE_LANDMARKS_112[2, 1] - REFERENCE_LANDMARKS_112[:2, 1].mean())
    / (REFERENCE_LANDMARKS_112[3:, 1].mean() - REFERENCE_LANDMARKS_112[:2, 1].mean())
)
# Sharpness and brightness are measured on the face resized to this size, so that a big face
# and a small face of equal focus score alike.
_PATCH = 64


@dataclass(frozen=True)
class Quality:
    """Per-face quality. Angles are degrees; positive yaw = face turned to the image's left
    (the person's right), positive pitch = looking down, positive roll = tilted clockwise."""

    size: float  # face box width in pixels
    eye_distance: float  # pixels between the eyes
    sharpness: float  # variance of the Laplacian on a 64x64 grey patch (higher is sharper)
    brightness: float  # mean grey level 0..255
    contrast: float  # grey standard deviation
    yaw: float
    pitch: float
    roll: float

    def to_dict(self) -> dict:
        return {key: round(value, 3) for key, value in asdict(self).items()}


def _raw_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees, before subtracting the template's own slight asymmetry.

    A weak-perspective model: the nose tip stands out of the face by about half the distance
    between the eyes, so a head turned by `a` moves it sideways by that depth times sin(a)
    while the eye distance shrinks by cos(a): the offset relative to half the eye distance is
    about tan(a). Rough (a few degrees), but monotonic, which is what gates and liveness need.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    eye_vector = right_eye - left_eye
    roll = math.degrees(math.atan2(eye_vector[1], eye_vector[0]))
    # Undo the roll so that yaw and pitch are measured along the face's own axes.
    cos_r, sin_r = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))
    rotation = np.array([[cos_r, -sin_r], [sin_r, cos_r]])
    eyes_mid = (left_eye + right_eye) / 2
    upright = (points - eyes_mid) @ rotation.T
    eye_distance = max(float(np.linalg.norm(eye_vector)), 1e-6)
    mouth_mid = (upright[3] + upright[4]) / 2
    face_height = max(mouth_mid[1], 1e-6)
    nose_x, nose_y = upright[2]
    midline_x = mouth_mid[0] * (nose_y / face_height)  # the face's midline at the nose's height
    depth = 0.5 * eye_distance
    yaw = -math.degrees(math.atan2(nose_x - midline_x, depth))
    pitch = math.degrees(math.atan2((nose_y / face_height - _FRONTAL_NOSE_RATIO) * face_height, depth))
    return yaw, pitch, roll


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Estimate (yaw, pitch, roll) in degrees from the five landmarks; the template is (0, 0, 0)."""
    yaw, pitch, roll = _raw_pose(landmarks)
    return yaw - _TEMPLATE_POSE[0], pitch - _TEMPLATE_POSE[1], roll - _TEMPLATE_POSE[2]


def measure_quality(rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> Quality:
    """Quality of the face at `box` (x1, y1, x2, y2) with `landmarks` (5x2) in `rgb`."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = box
    left, top = max(int(math.floor(x1)), 0), max(int(math.floor(y1)), 0)
    right, bottom = min(int(math.ceil(x2)), width), min(int(math.ceil(y2)), height)
    region = rgb[top:bottom, left:right]
    if region.size == 0:
        sharpness = brightness = contrast = 0.0
    else:
        grey = cv2.cvtColor(cv2.resize(region, (_PATCH, _PATCH), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
        brightness = float(grey.mean())
        contrast = float(grey.std())
    yaw, pitch, roll = head_pose(landmarks)
    return Quality(
        size=float(x2 - x1),
        eye_distance=float(np.linalg.norm(landmarks[1] - landmarks[0])),
        sharpness=sharpness,
        brightness=brightness,
        contrast=contrast,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
    )


# The template's eyes are not perfectly level nor its nose perfectly central: measure poses from it.
_TEMPLATE_POSE = _raw_pose(REFERENCE_LANDMARKS_112)
