import cv2
import numpy as np
import pytest

from kiosk.alignment import AlignmentSpec
from kiosk.quality import head_pose, measure_quality


def test_template_is_frontal():
    yaw, pitch, roll = head_pose(AlignmentSpec().template())
    assert abs(yaw) < 1e-6 and abs(pitch) < 1e-6 and abs(roll) < 1e-6


def test_roll_follows_in_plane_rotation():
    points = AlignmentSpec().template() - 56
    r = np.radians(20)
    rotated = points @ np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]]).T
    yaw, pitch, roll = head_pose(rotated)
    assert roll == pytest.approx(20, abs=1e-6)
    assert abs(yaw) < 1e-6 and abs(pitch) < 1e-6


def test_yaw_and_pitch_signs():
    points = AlignmentSpec().template().copy()
    turned = points.copy()
    turned[2, 0] -= 8  # nose towards the image's left: the person turned to their right
    assert head_pose(turned)[0] > 15
    mirrored = points.copy()
    mirrored[2, 0] += 8
    assert head_pose(mirrored)[0] < -15
    down = points.copy()
    down[2, 1] += 6
    assert head_pose(down)[1] > 10


def test_blur_lowers_sharpness_and_darkness_lowers_brightness(astronaut, detector):
    face = detector.detect(astronaut)[0]
    sharp = measure_quality(astronaut, face.box, face.landmarks)
    blurred = measure_quality(cv2.GaussianBlur(astronaut, (0, 0), 3), face.box, face.landmarks)
    dark = measure_quality((astronaut * 0.3).astype(np.uint8), face.box, face.landmarks)
    assert blurred.sharpness < sharp.sharpness / 3
    assert dark.brightness < sharp.brightness * 0.4
    assert sharp.eye_distance > 30


def test_turned_face_measures_a_yaw(astronaut, detector):
    # A real face with its nose-side compressed: a horizontal squeeze of one half mimics a turn.
    face = detector.detect(astronaut)[0]
    flipped = detector.detect(np.ascontiguousarray(astronaut[:, ::-1]))[0]
    # Mirroring the photo mirrors the pose: yaw changes sign (within the detector's noise).
    assert abs(face.quality.yaw + flipped.quality.yaw) < 6
