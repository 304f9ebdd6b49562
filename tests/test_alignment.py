import numpy as np
import pytest

from kiosk.alignment import AlignmentSpec, align_face, alignment_error, apply_transform, similarity_transform
from kiosk.faces import crop_faces


def _rotation(degrees):
    r = np.radians(degrees)
    return np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (5, 2))
    moved = 1.7 * points @ _rotation(25).T + np.array([12.0, -7.0])
    matrix = similarity_transform(points, moved)
    assert np.allclose(apply_transform(matrix, points), moved, atol=1e-9)
    assert np.allclose(matrix[:, :2], 1.7 * _rotation(25))


def test_mirrored_points_still_give_a_proper_rotation():
    template = AlignmentSpec().template()
    mirrored = template * np.array([-1.0, 1.0])
    matrix = similarity_transform(mirrored, template)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_degenerate_landmarks_are_refused():
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.ones((5, 2)), AlignmentSpec().template())


@pytest.mark.parametrize("size, margin", [(112, 0.0), (96, 0.0), (128, 0.1)])
def test_template_fits_spec(size, margin):
    spec = AlignmentSpec(size, margin)
    template = spec.template()
    assert np.all((template > 0) & (template < size))
    eye_distance = np.linalg.norm(template[1] - template[0])
    assert eye_distance == pytest.approx(35.24 * size / 112 / (1 + 2 * margin), rel=1e-3)


def test_bad_specs_are_refused():
    with pytest.raises(ValueError):
        AlignmentSpec(size=8)
    with pytest.raises(ValueError):
        AlignmentSpec(margin=0.7)


def test_landmarks_land_on_the_template(astronaut, detector):
    face = detector.detect(astronaut)[0]
    spec = AlignmentSpec()
    crop = align_face(astronaut, face.landmarks, spec)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    assert alignment_error(face.landmarks, spec) < 6
    # Detect again inside the crop: the face is upright and where the template puts it.
    padded = np.pad(crop, ((40, 40), (40, 40), (0, 0)), mode="edge")
    again = detector.detect(padded)
    assert again, "the aligned crop should still show a face"
    assert np.abs(again[0].landmarks - 40 - spec.template()).mean() < 5


def test_alignment_is_deterministic(astronaut, detector):
    face = detector.detect(astronaut)[0]
    first = crop_faces(astronaut, [face], AlignmentSpec())
    second = crop_faces(astronaut, [face], AlignmentSpec())
    assert np.array_equal(first, second)


def test_rotated_photo_gives_an_upright_crop(astronaut, detector):
    import cv2

    spec = AlignmentSpec()
    upright = align_face(astronaut, detector.detect(astronaut)[0].landmarks, spec)
    matrix = cv2.getRotationMatrix2D((256, 256), 30, 1.0)
    rotated = cv2.warpAffine(astronaut, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
    face = detector.detect(rotated)[0]
    assert abs(face.quality.roll + 30) < 10  # MTCNN landmarks are looser on rotated faces
    crop = align_face(rotated, face.landmarks, spec)
    difference = np.abs(crop.astype(int) - upright.astype(int)).mean()
    assert difference < 20, f"mean pixel difference {difference:.1f}"


def test_exact_template_landmarks_have_no_error():
    spec = AlignmentSpec()
    assert alignment_error(spec.template() * 2.0 + 10, spec) == pytest.approx(0.0, abs=1e-9)
