"""The benchmark's generated frames and videos hold a face where they say, and only there.

Real LFW photos, the real detector, real Motion-JPEG files read back with OpenCV.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.speed.options import WalkIn
from benchmarks.speed.scenes import iou
from benchmarks.speed.sequences import FPS, walkin_sequence
from benchmarks.speed.sources import choose_sources
from benchmarks.speed.stills import FACE_WIDTH_480, stills
from kiosk.images import load_image

pytestmark = pytest.mark.lfw
MIN_IOU = 0.6  # the detector's box and the placed box: same face, a few pixels apart


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="module")
def sources(lfw, detector, cache):
    return choose_sources(lfw, detector, 3, cache)


def test_sources_are_single_clear_faces_and_cached(lfw, detector, cache, sources):
    assert len({s.relpath for s in sources}) == 3
    for source in sources:
        faces = detector.detect(load_image(lfw.images_dir / source.relpath))
        assert len(faces) == 1 and iou(faces[0].box, source.box) > 0.95
    # A later run asking for fewer gets the same photos from the cache, without detecting again.
    assert [s.relpath for s in choose_sources(lfw, None, 2, cache)] == [s.relpath for s in sources[:2]]


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_stills_have_a_different_face_where_the_manifest_says(lfw, detector, cache, sources, size):
    frames = stills(lfw, sources, size, cache)
    assert [f.source for f in frames] == [s.relpath for s in sources]
    assert [f.background for f in frames] == ["plain", "textured", "plain"]
    low, high = (w * size[1] / 480 for w in FACE_WIDTH_480)
    for still in frames:
        rgb = load_image(still.path)
        assert rgb.shape == (size[1], size[0], 3)
        assert low - 1 <= still.box[2] - still.box[0] <= high + 1
        faces = detector.detect(rgb)
        assert len(faces) == 1, still.path
        assert iou(faces[0].box, still.box) >= MIN_IOU, (still.path, faces[0].box, still.box)
    mtimes = [f.path.stat().st_mtime_ns for f in frames]
    again = stills(lfw, sources, size, cache)  # cached: the same files, not rewritten
    assert [f.path.stat().st_mtime_ns for f in again] == mtimes


def test_walk_in_video_has_the_face_where_the_manifest_says(lfw, detector, cache, sources):
    phases = WalkIn(empty=2, walk=4, approach=3, stand=3)
    sequence = walkin_sequence(lfw, sources[0], (640, 480), phases, cache)
    capture = cv2.VideoCapture(str(sequence.path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    frames = []
    while (read := capture.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    capture.release()
    assert len(frames) == sequence.frames == phases.total
    assert frames[0].shape == (480, 640, 3)
    assert sequence.boxes[:2] == [None, None] and sequence.face_enters_frame == 2
    assert not sequence.in_view[sequence.face_enters_frame]  # it enters from the edge...
    assert all(sequence.in_view[sequence.whole_face_frame:])  # ...and stays once wholly in view
    for index, (rgb, box, whole) in enumerate(zip(frames, sequence.boxes, sequence.in_view)):
        faces = detector.detect(rgb)
        if box is None:
            assert faces == [], f"frame {index} should be an empty doorway"
        elif whole:
            assert len(faces) == 1 and iou(faces[0].box, box) >= MIN_IOU, (index, faces, box)
    widths = [b[2] - b[0] for b in sequence.boxes[sequence.whole_face_frame:]]
    assert widths[-1] > widths[0]  # comes closer
    # The second call reads the cache instead of rendering again.
    mtime = sequence.path.stat().st_mtime_ns
    assert walkin_sequence(lfw, sources[0], (640, 480), phases, cache).path.stat().st_mtime_ns == mtime
    assert np.all(np.isfinite(np.concatenate([b for b in sequence.boxes if b is not None])))
