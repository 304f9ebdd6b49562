"""Detection with the real MTCNN on real photographs."""
import cv2
import numpy as np
import pytest

from kiosk.errors import InvalidImageError
from kiosk.faces import FaceDetector, face_nearest_center, shared_detector


def _check_plausible_face(face, image_shape):
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= image_shape[1] and 0 <= y1 < y2 <= image_shape[0]
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert np.all((face.landmarks >= face.box[:2] - 2) & (face.landmarks <= face.box[2:] + 2))
    assert 0.9 <= face.score <= 1.0


def test_astronaut_has_one_face_where_it_is(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    _check_plausible_face(face, astronaut.shape)
    # The face is in the upper middle of the photo, about 80 px wide.
    assert 150 < face.center[0] < 300 and 60 < face.center[1] < 180
    assert 60 < face.width < 110
    assert face.quality.size == pytest.approx(face.width)
    assert abs(face.quality.yaw) < 10 and abs(face.quality.roll) < 10


def test_blank_and_noise_images_have_no_face(detector):
    rng = np.random.default_rng(1)
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert detector.detect(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []


def test_several_faces_come_largest_first(detector, astronaut):
    face_region = astronaut[20:260, 120:330]
    small = cv2.resize(face_region, None, fx=0.6, fy=0.6)
    canvas = np.full((300, 420, 3), 90, np.uint8)
    canvas[20:260, 0:210] = face_region
    canvas[40 : 40 + small.shape[0], 260 : 260 + small.shape[1]] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area * 1.8
    assert faces[0].center[0] < 210 < faces[1].center[0]
    for face in faces:
        _check_plausible_face(face, canvas.shape)


@pytest.mark.parametrize("kind", ["grey", "rgba", "float"])
def test_odd_formats_detect_the_same_face(detector, astronaut, kind):
    image = {
        "grey": cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY),
        "rgba": np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)]),
        "float": astronaut.astype(np.float32) / 255,
    }[kind]
    reference = detector.detect(astronaut)[0]
    face = detector.detect(image)[0]
    assert np.abs(face.landmarks - reference.landmarks).max() < 4


def test_huge_image_is_detected_on_a_scaled_copy_with_full_size_coordinates(detector, astronaut):
    big = cv2.resize(astronaut, (3072, 3072), interpolation=cv2.INTER_CUBIC)
    reference = detector.detect(astronaut)[0]
    face = detector.detect(big)[0]
    assert np.abs(face.landmarks / 6.0 - reference.landmarks).max() < 3


def test_invalid_input_raises_a_clear_error(detector):
    with pytest.raises(InvalidImageError, match="empty"):
        detector.detect(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(InvalidImageError, match="shape"):
        detector.detect(np.zeros((10,), np.uint8))


def test_batch_gives_the_same_faces_as_single_calls(detector, astronaut):
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    batch = detector.detect_batch([astronaut, flipped])
    for image, faces in zip([astronaut, flipped], batch):
        single = detector.detect(image)
        assert len(faces) == len(single) == 1
        assert np.abs(faces[0].landmarks - single[0].landmarks).max() < 1e-3


def test_shared_detector_is_built_once():
    assert shared_detector() is shared_detector()


def test_nearest_center_picks_the_central_face(detector, astronaut):
    faces = detector.detect(astronaut)
    assert face_nearest_center(faces, astronaut.shape) is faces[0]
    assert face_nearest_center([], astronaut.shape) is None


def test_min_score_filters_weak_faces(astronaut):
    strict = FaceDetector(min_score=0.99999)
    assert strict.detect(astronaut) == []
