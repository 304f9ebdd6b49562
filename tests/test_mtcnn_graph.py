"""The compiled and the TFLite MTCNN give the `mtcnn` package's faces; the graphs never retrace; min_face_size works."""
from __future__ import annotations

import numpy as np
import pytest

from kiosk.faces import FaceDetector
from kiosk.images import load_image
from kiosk.mtcnn_graph import CompiledMTCNN
from kiosk.mtcnn_rules import pyramid_shapes, suppress, to_square


@pytest.fixture(scope="module")
def package_detector() -> FaceDetector:
    return FaceDetector(implementation="package")


@pytest.fixture(scope="module")
def compiled() -> CompiledMTCNN:
    return CompiledMTCNN()


def _door_frame(face: np.ndarray, seed: int, size=(480, 640)) -> np.ndarray:
    """`face` pasted at a random place on a blurred-noise 640x480 background."""
    import cv2

    rng = np.random.default_rng(seed)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (*size, 3), dtype=np.uint8), (31, 31), 0)
    h, w = face.shape[:2]
    y, x = rng.integers(0, size[0] - h), rng.integers(0, size[1] - w)
    frame[y:y + h, x:x + w] = face
    return frame


def _assert_same_faces(expected: list, got: list) -> None:
    assert len(got) == len(expected)
    for a, b in zip(expected, got):
        np.testing.assert_allclose(b.box, a.box, atol=0.01)
        np.testing.assert_allclose(b.landmarks, a.landmarks, atol=0.01)
        assert b.score == pytest.approx(a.score, abs=1e-4)


@pytest.mark.parametrize("implementation", ["lite", "graph"])
def test_same_faces_as_the_package_on_lfw_images_and_door_frames(lfw, implementation, package_detector):
    detector = FaceDetector(implementation=implementation)
    refs = lfw.all_images()[::661][:20]  # people spread over the alphabet; some photos hold several faces
    images = [load_image(lfw.image_path(ref)) for ref in refs]
    frames = [_door_frame(image, seed) for seed, image in enumerate(images[:6])]
    faces_seen = 0
    for image in images + frames:
        expected = package_detector.detect(image)
        _assert_same_faces(expected, detector.detect(image))
        faces_seen += len(expected)
    assert faces_seen >= len(images) + len(frames)  # every image has its subject


def test_no_retracing_across_frames_of_one_size(compiled, astronaut):
    frames = [_door_frame(astronaut[::2, ::2], seed) for seed in range(4)]
    for frame in frames:
        assert len(compiled.detect(frame)) == 1
    assert compiled.pyramid(480, 640).experimental_get_tracing_count() == 1
    assert compiled._rnet_graph.experimental_get_tracing_count() == 1
    assert compiled._onet_graph.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("implementation", ["lite", "graph"])
def test_min_face_size_above_20_still_finds_large_faces(astronaut, implementation):
    # The package keeps min_face_size=20's scale count, so at 40 it runs its first network on
    # scales smaller than its window (finding nothing, or with newer Keras raising); ours works.
    coarse = FaceDetector(min_face_size=40, implementation=implementation)
    faces = coarse.detect(astronaut)
    assert len(faces) == 1 and faces[0].width > 40
    assert coarse.settings["min_face_size"] == 40
    # A face smaller than the minimum is not looked for at all.
    assert FaceDetector(min_face_size=200, implementation=implementation).detect(astronaut[::3, ::3]) == []


def test_pyramid_levels_keep_a_pnet_window():
    levels = pyramid_shapes(480, 640, 20)
    assert levels[0] == (288, 384, 0.6)
    assert all(min(h, w) >= 12 for h, w, _ in levels)
    assert min(levels[-1][:2]) * 0.709 < 12  # one more level would be too small
    assert len(pyramid_shapes(480, 640, 40)) < len(levels)
    assert pyramid_shapes(10, 10, 20) == []


def test_suppression_drops_boxes_overlapping_a_better_one():
    rows = np.array([
        [0, 0, 0, 10, 10, 0.9],
        [0, 1, 1, 11, 11, 0.8],  # IoU 0.68 with the first: dropped
        [0, 20, 20, 30, 30, 0.7],  # apart: kept
    ])
    kept = suppress(rows, 0.5)
    assert kept[:, 5].tolist() == [0.9, 0.7]
    # The package's rule: a box overlapped by a dropped box is dropped too.
    chain = np.array([[0, 0, 0, 10, 10, 0.9], [0, 4, 0, 14, 10, 0.8], [0, 8, 0, 18, 10, 0.7]])
    assert suppress(chain, 0.2)[:, 5].tolist() == [0.9]


def test_to_square_keeps_the_centre():
    square = to_square(np.array([[0, 10, 20, 30, 60, 1.0]]))[0]
    assert square[3] - square[1] == pytest.approx(40)
    assert square[4] - square[2] == pytest.approx(40)
    assert (square[1] + square[3]) / 2 == pytest.approx(20)
    assert (square[2] + square[4]) / 2 == pytest.approx(40)


def test_rejects_a_window_smaller_than_pnet():
    with pytest.raises(ValueError, match="at least 12"):
        CompiledMTCNN(min_face_size=8)
