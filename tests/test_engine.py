"""FaceEngine with the real detector and the real shipped model on real photographs."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from kiosk.errors import NoFaceError
from kiosk.modelcard import default_model_path


def test_import_kiosk_stays_free_of_tensorflow():
    code = "import sys, kiosk; kiosk.FaceEngine; kiosk.NoFaceError; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"


def test_engine_reads_the_model_card(engine):
    card = engine.card
    assert engine.threshold == card.threshold and -1.0 < engine.threshold < 1.0
    assert engine.embedding_size == card.embedding_size
    assert card.path == default_model_path()


def test_embedding_of_the_astronaut_is_a_unit_vector(engine, astronaut):
    faces = engine.detect(astronaut)
    assert len(faces) == 1
    vector = engine.embed(astronaut)
    assert vector.shape == (engine.embedding_size,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.isfinite(vector))
    # The same pixels give the same vector.
    np.testing.assert_allclose(engine.embed(astronaut.copy()), vector, atol=1e-5)


def retaken(photo: np.ndarray, scale: float, angle: float, gain: float, offset: float, quality: int) -> np.ndarray:
    """The same face photographed again: smaller, turned in the picture, another exposure, JPEG."""
    height, width = photo.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    moved = cv2.warpAffine(photo, matrix, (width, height), borderValue=(90, 90, 90))
    exposed = np.clip(moved.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", exposed, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)  # channel order kept: cv2 round-trips what it was given


def lfw_photo(lfw, name: str, number: int) -> np.ndarray:
    from kiosk.images import load_image
    from training.lfw import ImageRef

    return load_image(lfw.image_path(ImageRef(name, number)))


@pytest.mark.lfw
def test_the_same_face_photographed_again_is_accepted_and_another_person_is_not(engine, astronaut, lfw):
    original = engine.embed(astronaut)
    # Another woman (an LFW View 1 test person, never trained on) whom the model places far below its threshold.
    stranger = engine.embed(lfw_photo(lfw, "Jennifer_Capriati", 3))
    assert engine.similarity(original, stranger) < engine.threshold
    for again in (retaken(astronaut, 0.6, 8, 0.8, 20, 50), retaken(astronaut, 0.45, -10, 1.2, -10, 35)):
        vector = engine.embed(again)
        score = engine.similarity(original, vector)
        # Other pixels, another detection and alignment, the same face: accepted even by the card's
        # rule for 10,000 people of one photo each at 1 in 1,000 visitors (its strictest point).
        assert score >= engine.card.threshold_at_far(1e-3 / 10_000, 1 if engine.strategy == "mean" else None)
        assert engine.similarity(vector, original) == pytest.approx(score)
        assert engine.similarity(vector, stranger) < engine.threshold


def test_no_face_raises(engine):
    with pytest.raises(NoFaceError):
        engine.embed(np.full((240, 320, 3), 128, np.uint8))


@pytest.mark.lfw
def test_embed_faces_embeds_every_face_in_one_batch(engine, astronaut, lfw):
    # Two people side by side: each vector must be its own face's, not one face's twice.
    stranger = lfw_photo(lfw, "Gerhard_Schroeder", 10)
    canvas = np.full((300, 500, 3), 90, np.uint8)
    canvas[20:260, 0:210] = astronaut[20:260, 120:330]
    canvas[40:280, 260:470] = stranger[5:245, 20:230]
    faces = engine.detect(canvas)
    assert len(faces) == 2
    vectors = engine.embed_faces(canvas, faces)
    assert vectors.shape == (2, engine.embedding_size)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(vectors[0], engine.embed(canvas), atol=1e-5)  # embed(): the largest face
    left, right = (vectors[i] for i in np.argsort([face.box[0] for face in faces]))
    assert engine.similarity(left, engine.embed(astronaut)) >= engine.threshold  # Eileen Collins
    assert engine.similarity(right, engine.embed(stranger)) >= engine.threshold  # Gerhard Schroeder
    assert engine.similarity(left, right) < engine.threshold
    assert engine.embed_faces(canvas, []).shape == (0, engine.embedding_size)


@pytest.mark.lfw
def test_embed_each_embeds_one_face_of_each_photo_as_embed_does(engine, astronaut, lfw):
    stranger = lfw_photo(lfw, "Gerhard_Schroeder", 10)
    photos = [astronaut, stranger]
    faces = [engine.detect(photo)[0] for photo in photos]
    vectors = engine.embed_each(photos, faces)
    assert vectors.shape == (2, engine.embedding_size)
    np.testing.assert_allclose(vectors[0], engine.embed(astronaut), atol=1e-5)
    np.testing.assert_allclose(vectors[1], engine.embed(stranger), atol=1e-5)
    with pytest.raises(ValueError, match="one face for each photo"):
        engine.embed_each(photos, faces[:1])
    assert engine.embed_each([], []).shape == (0, engine.embedding_size)


@pytest.mark.lfw
def test_same_person_scores_above_different_people(engine, lfw):
    # LFW View 1 test people (never trained on), three photos each. This checks the engine end to
    # end, not the model's accuracy (its card measures that): every same-person pair above the
    # card's threshold, every different-person pair below it (0.97-0.99 and 0.83-0.86 against 0.913).
    photos = {"Jennifer_Capriati": (3, 9, 12), "Gerhard_Schroeder": (10, 12, 13)}
    people = list(photos)
    vectors = {name: [engine.embed(lfw_photo(lfw, name, n)) for n in numbers]
               for name, numbers in photos.items()}
    same = [engine.similarity(a, b) for vs in vectors.values() for i, a in enumerate(vs) for b in vs[i + 1:]]
    different = [engine.similarity(a, b) for a in vectors[people[0]] for b in vectors[people[1]]]
    assert min(same) >= engine.threshold > max(different)


def test_the_engine_scores_each_person_by_their_mean_template_as_its_card_says(engine, tmp_path, detector):
    import json
    import shutil

    from kiosk.engine import FaceEngine
    from kiosk.matching import match_many
    from kiosk.modelcard import card_path_for

    assert engine.card.strategy == engine.strategy == "mean"  # the shipped card measured its mean tables
    rng = np.random.default_rng(1)
    templates = rng.normal(size=(15, engine.embedding_size)).astype(np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    ids = np.repeat(np.arange(5), 3)
    templates.flags.writeable = ids.flags.writeable = False
    queries = templates[[1, 7, 12]] + 0.2 * templates[[0, 6, 13]]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    settings = {"threshold": 0.5, "ambiguity_margin": engine.ambiguity_margin, "scoring": engine.scoring}
    got = engine.match(queries, templates, ids, threshold=0.5)
    assert got == match_many(queries, templates, ids, strategy="mean", **settings)
    assert got != match_many(queries, templates, ids, strategy="best", **settings)  # scores differ
    assert [m.person_id for m in got] == [0, 2, 4]
    # A card without mean tables can only score the best template: asked for means, it says so.
    model = tmp_path / default_model_path().name
    shutil.copy(default_model_path(), model)
    raw = json.loads(card_path_for(default_model_path()).read_text())
    raw.pop("mean_template_far_tables")
    card_path_for(model).write_text(json.dumps(raw))
    assert FaceEngine(model, detector).strategy == "best"
    with pytest.raises(ValueError, match="no mean-template tables.*far-tables"):
        FaceEngine(model, detector, strategy="mean")
