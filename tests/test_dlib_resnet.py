"""dlib's face-recognition ResNet in Keras: our reader of dlib's model file, the network, and the
descriptors against dlib's own, on real faces (the astronaut photograph; LFW when $LFW_DIR is set).

Needs the train extra (face-recognition-models ships the .dat file, dlib-bin runs dlib); without
it the dlib tests skip, saying so. The padded sum and the alignment template need neither.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kiosk.alignment import AlignmentSpec, align_face

HAS_TRAIN_EXTRA = all(importlib.util.find_spec(name) for name in ("dlib", "face_recognition_models"))
needs_dlib = pytest.mark.skipif(not HAS_TRAIN_EXTRA, reason='needs the train extra (pip install -e ".[train]"): '
                                "face-recognition-models ships dlib's model file, dlib-bin runs dlib")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def weights():
    from training.dlib_resnet import read_weights

    return read_weights()


@pytest.fixture(scope="module")
def descriptor_model(weights):
    from training.dlib_resnet import build_dlib_resnet

    return build_dlib_resnet(weights, normalize=False)


@pytest.fixture(scope="module")
def reference():
    from training.dlib_reference import DlibReference

    return DlibReference()


@needs_dlib
def test_reader_finds_every_layer_of_the_network(weights):
    from training.dlib_resnet import ARCHITECTURE

    convolutions = [op for op in ARCHITECTURE if op.kind == "con"]
    assert len(convolutions) == 29
    assert weights.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    first = weights.layers["conv"]
    assert first.tensors["kernel"].shape == (32, 3, 7, 7) and first.settings["stride"] == (2, 2)
    assert weights.layers["descriptor"].tensors["kernel"].shape == (256, 128)
    # dlib's frozen batch norm: a scale and an offset per channel, not an identity.
    gamma = weights.layers["level1_down_affine2"].tensors["gamma"]
    assert gamma.shape == (256,) and np.std(gamma) > 0


@needs_dlib
def test_descriptors_match_dlib_on_a_real_face_chip(astronaut, descriptor_model, reference):
    chip = reference.chip(astronaut)
    assert chip is not None and chip.shape == (150, 150, 3)
    chips = np.stack([chip, chip[:, ::-1], np.roll(chip, 7, axis=0)])
    theirs = np.stack([reference.descriptor(c) for c in chips])
    ours = np.asarray(descriptor_model(chips.astype(np.float32) / 255.0))
    assert np.abs(theirs).max() > 0.05  # real descriptors, not zeros
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@needs_dlib
@pytest.mark.lfw
def test_descriptors_match_dlib_on_lfw_faces(lfw, descriptor_model, reference):
    from kiosk.images import load_image

    names = sorted(lfw.people("devtrain"))[::400][:8]
    chips = [reference.chip(load_image(lfw.image_path(lfw.images_of([name])[0]))) for name in names]
    chips = np.stack([chip for chip in chips if chip is not None])
    assert len(chips) >= 6
    theirs = np.stack([reference.descriptor(c) for c in chips])
    ours = np.asarray(descriptor_model(chips.astype(np.float32) / 255.0))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # Different people really differ (the comparison is not between constant outputs).
    assert np.linalg.norm(theirs[0] - theirs[1]) > 0.3


@needs_dlib
def test_reader_refuses_a_damaged_or_foreign_file(tmp_path):
    from training.dlib_format import DlibFormatError
    from training.dlib_resnet import default_model_file, read_weights

    data = default_model_file().read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibFormatError, match="file ends"):
        read_weights(truncated)
    padded = tmp_path / "padded.dat"
    padded.write_bytes(data + b"\x00")
    with pytest.raises(DlibFormatError, match="bytes left"):
        read_weights(padded)
    import face_recognition_models

    shape_predictor = Path(face_recognition_models.pose_predictor_five_point_model_location())
    with pytest.raises(DlibFormatError):
        read_weights(shape_predictor)


@needs_dlib
def test_saved_serving_model_loads_in_the_kiosk_without_the_training_package(weights, tmp_path, astronaut):
    from training.dlib_resnet import build_dlib_resnet
    from training.model import build_serving_model

    serving = build_serving_model(build_dlib_resnet(weights), 150)
    path = tmp_path / "dlib.keras"
    serving.save(path)
    crop = np.ascontiguousarray(astronaut[100:250, 180:330])
    np.save(tmp_path / "crop.npy", crop)
    expected = np.asarray(serving(crop[None]))[0]
    script = (
        "import sys, numpy as np, keras\n"
        "import kiosk.serving\n"
        f"model = keras.saving.load_model({str(path)!r}, compile=False)\n"
        f"vector = np.asarray(model(np.load({str(tmp_path / 'crop.npy')!r})[None]))[0]\n"
        "assert not [m for m in sys.modules if m == 'training' or m.startswith('training.')]\n"
        f"np.save({str(tmp_path / 'vector.npy')!r}, vector)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    np.testing.assert_allclose(np.load(tmp_path / "vector.npy"), expected, atol=1e-6)
    assert np.linalg.norm(expected) == pytest.approx(1.0, abs=1e-5)


def test_padded_add_sums_top_left_aligned_with_zeros_where_one_side_ends():
    from kiosk.serving import PaddedAdd

    rng = np.random.default_rng(0)
    small = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    large = rng.normal(size=(2, 4, 4, 2)).astype(np.float32)
    result = np.asarray(PaddedAdd()([small, large]))
    expected = np.zeros((2, 4, 4, 4), np.float32)
    expected[:, :3, :3, :] += small
    expected[:, :, :, :2] += large
    assert result.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(result, expected, atol=1e-6)


def test_alignment_spec_with_its_own_template_round_trips_and_aligns_there(astronaut, detector):
    points = ((0.32, 0.36), (0.68, 0.36), (0.5, 0.55), (0.35, 0.72), (0.65, 0.72))
    spec = AlignmentSpec(size=150, points=points)
    assert AlignmentSpec.from_dict(spec.to_dict()) == spec
    assert AlignmentSpec.from_dict(AlignmentSpec().to_dict()) == AlignmentSpec()
    face = detector.detect(astronaut)[0]
    crop = align_face(astronaut, face.landmarks, spec)
    assert crop.shape == (150, 150, 3)
    again = detector.detect(crop)[0]
    # MTCNN finds the eyes of the aligned crop near the template's eyes (a few px: the fit is least squares).
    assert np.abs(again.landmarks[:2] - np.array(points[:2]) * 150).max() < 8
    with pytest.raises(ValueError, match="five"):
        AlignmentSpec(points=points[:4])
    with pytest.raises(ValueError, match="unknown alignment template"):
        AlignmentSpec.from_dict({"size": 150, "margin": 0.0, "template": "mystery"})


@needs_dlib
@pytest.mark.slow  # the TFLite conversion of 5.6 M weights takes most of a minute
def test_exported_dlib_model_embeds_through_face_engine(weights, astronaut, detector, tmp_path):
    from kiosk.embedder import Embedder
    from kiosk.engine import FaceEngine
    from training.dlib_resnet import build_dlib_resnet
    from training.export import export_model

    points = ((0.313, 0.299), (0.671, 0.299), (0.486, 0.513), (0.336, 0.689), (0.649, 0.691))
    spec = AlignmentSpec(size=150, points=points)
    card = {"threshold": {"value": 0.9, "target_far": 0.01, "rule": "test"}}
    path = export_model(build_dlib_resnet(weights), 150, spec.to_dict(), tmp_path / "dlib_resnet.keras", card)
    engine = FaceEngine(path, detector)
    assert engine.card.alignment == spec and engine.embedding_size == 128
    face = detector.detect(astronaut)[0]
    np.testing.assert_array_equal(engine.align(astronaut, [face])[0], align_face(astronaut, face.landmarks, spec))
    vector = engine.embed_faces(astronaut, [face])[0]
    assert vector.shape == (128,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    keras_vector = Embedder(path, runtime="keras").embed_crops(engine.align(astronaut, [face]))[0]
    assert float(vector @ keras_vector) > 0.9999  # the TFLite backbone and the .keras model agree
