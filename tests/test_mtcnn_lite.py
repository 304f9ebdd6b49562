"""The kiosk's detector on TFLite: TensorFlow's patch sampling in NumPy, checked files, and no TensorFlow at all."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kiosk.errors import KioskError
from kiosk.litert import LiteModelError
from kiosk.mtcnn_lite import MANIFEST, LiteMTCNN, crop_and_resize, default_detector_dir

REPO = Path(__file__).resolve().parent.parent


def test_patches_are_cut_exactly_as_tensorflow_cuts_them():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (61, 83, 3)).astype(np.float32)
    # Boxes inside, across the border, wholly outside, thin, and flipped (y2 < y1), as RNet gets them.
    boxes = np.concatenate([rng.uniform(-0.3, 1.3, (40, 4)), [[0.2, 0.9, 0.6, 0.1], [0.5, 0.5, 0.5, 0.5]]])
    boxes = boxes.astype(np.float32)
    for side in (24, 48):
        expected = tf.image.crop_and_resize(image[None], boxes, np.zeros(len(boxes), np.int32), (side, side))
        np.testing.assert_allclose(crop_and_resize(image, boxes, side), expected.numpy(), atol=2e-6)


def test_faces_agree_with_the_compiled_graphs_to_a_thousandth_of_a_pixel(astronaut):
    from kiosk.mtcnn_graph import CompiledMTCNN

    lite, graph = LiteMTCNN(), CompiledMTCNN()
    for image in (astronaut, astronaut[::2, ::2], np.ascontiguousarray(astronaut[:, ::-1])):
        expected, got = graph.detect(image), lite.detect(image)
        assert len(got) == len(expected) >= 1
        np.testing.assert_allclose(got[:, 1:], expected[:, 1:], atol=1e-3)


def _copy_of_detector(tmp_path: Path) -> Path:
    folder = tmp_path / "detector"
    folder.mkdir()
    manifest = json.loads((default_detector_dir() / MANIFEST).read_text())
    shutil.copy(default_detector_dir() / MANIFEST, folder)
    for entry in manifest["networks"].values():
        shutil.copy(default_detector_dir() / entry["file"], folder)
    return folder


def test_a_damaged_or_missing_detector_file_is_named(tmp_path):
    folder = _copy_of_detector(tmp_path)
    assert len(LiteMTCNN(folder=folder).detect(np.zeros((64, 64, 3), np.uint8))) == 0
    onet = folder / "face_detector_onet.tflite"
    data = bytearray(onet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onet.write_bytes(bytes(data))
    with pytest.raises(LiteModelError, match="onet file is damaged"):
        LiteMTCNN(folder=folder)
    onet.unlink()
    with pytest.raises(LiteModelError, match="onet file is missing"):
        LiteMTCNN(folder=folder)
    with pytest.raises(LiteModelError, match="no face detector here.*mtcnn-export"):
        LiteMTCNN(folder=tmp_path)
    assert issubclass(LiteModelError, KioskError)  # the command line prints it as one "error:" line


def test_the_kiosk_detects_and_embeds_without_importing_tensorflow(tmp_path, astronaut):
    # Importing TensorFlow costs seconds of every start-up: the shipped detector and model must not need it.
    photo = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(photo), astronaut[:, :, ::-1])
    script = (
        "import sys\n"
        "from kiosk.engine import FaceEngine\n"
        "from kiosk.images import load_image\n"
        f"embedding = FaceEngine().embed(load_image({str(photo)!r}))\n"
        "print(embedding.shape, [m for m in ('tensorflow', 'keras', 'mtcnn') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "(128,) []"
    assert "XNNPACK" not in result.stderr  # LiteRT's one INFO line per process is not the operator's business


def test_the_kiosk_looks_for_faces_from_a_twelfth_of_the_picture_never_below_20_px(astronaut):
    from kiosk.faces import FaceDetector, shared_detector

    cascade = shared_detector()._cascade
    assert cascade.smallest_face(480, 640) == 40  # a camera frame: passers-by far away are not looked for
    assert cascade.smallest_face(112, 92) == 20  # a small portrait keeps the detector's floor
    assert cascade.levels(480, 640)[0][2] == pytest.approx(12 / 40)  # the pyramid starts at 40 px faces
    # A face a third of the size in a 640x480 frame is not looked for; in a small photo it is found.
    import cv2

    frame = np.full((480, 640, 3), 127, np.uint8)
    frame[192:288, 272:368] = cv2.resize(astronaut[60:290, 140:370], (96, 96), interpolation=cv2.INTER_AREA)
    assert shared_detector().detect(frame)  # a face at the door
    third = cv2.resize(frame, (213, 160), interpolation=cv2.INTER_AREA)
    far = np.pad(third, ((160, 160), (213, 214), (0, 0)), constant_values=127)  # the same face far away
    assert FaceDetector().detect(far)  # found by a detector that looks for 20 px faces...
    assert not shared_detector().detect(far)  # ...not looked for by the kiosk's
    assert shared_detector().detect(third[40:120, 53:160])  # in an 80x107 photo: found
