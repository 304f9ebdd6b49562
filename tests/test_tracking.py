"""FaceTracker: region searches between full searches find the same face; new faces are not missed."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from kiosk.tracking import FaceTracker


@pytest.fixture(scope="module")
def head(astronaut) -> np.ndarray:
    return cv2.resize(astronaut[20:300, 100:380], (220, 220), interpolation=cv2.INTER_AREA)


def _frame(faces: list[tuple[np.ndarray, int, int]]) -> np.ndarray:
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, :, 1] = 120
    for image, x, y in faces:
        frame[y:y + image.shape[0], x:x + image.shape[1]] = image
    return frame


def _eye_distance(face) -> float:
    return float(np.hypot(*(face.landmarks[0] - face.landmarks[1])))


def test_region_searches_find_the_face_a_full_search_finds(detector, head):
    tracker = FaceTracker(detector, full_every=4)
    errors = []
    for step in range(8):
        frame = _frame([(head, 120 + 5 * step, 100 + 3 * step)])
        tracked, full = tracker.detect(frame), detector.detect(frame)
        assert len(tracked) == len(full) == 1
        error = np.abs(tracked[0].landmarks - full[0].landmarks).max() / _eye_distance(full[0])
        assert error < 0.3, f"frame {step}: landmarks {error:.0%} of the eye distance apart"
        errors.append(error)
        assert abs(tracked[0].center[0] - full[0].center[0]) < 0.1 * full[0].width
    assert np.median(errors) < 0.08  # MTCNN's own jitter under a pure shift is ~3% (median)
    assert tracker.region_searches == 6 and tracker.full_searches == 2  # frames 0 and 4 search the whole frame


def test_a_second_face_is_seen_by_the_next_full_search(detector, head):
    tracker = FaceTracker(detector, full_every=3)
    seen = [len(tracker.detect(_frame([(head, 60, 120)]))) for _ in range(2)]
    mirrored = np.ascontiguousarray(head[:, ::-1])
    for _ in range(3):
        seen.append(len(tracker.detect(_frame([(head, 60, 120), (mirrored, 380, 120)]))))
    assert seen[:2] == [1, 1]
    assert 2 in seen[2:]  # within full_every frames of entering


def test_a_face_that_leaves_ends_tracking(detector, head):
    tracker = FaceTracker(detector)
    assert len(tracker.detect(_frame([(head, 200, 150)]))) == 1
    assert tracker.detect(_frame([])) == []  # region empty -> full search -> nothing
    searches = tracker.full_searches
    assert tracker.detect(_frame([])) == []
    assert tracker.full_searches == searches + 1 and tracker.region_searches == 1


def test_region_is_a_square_inside_the_frame(detector, head):
    tracker = FaceTracker(detector)
    face = tracker.detect(_frame([(head, 0, 0)]))[0]  # in the corner: the square is moved inside
    x0, y0, x1, y1 = FaceTracker.region(face, (480, 640, 3))
    assert x1 - x0 == y1 - y0 > face.width
    assert 0 <= x0 and 0 <= y0 and x1 <= 640 and y1 <= 480
    with pytest.raises(ValueError):
        FaceTracker(detector, full_every=0)
