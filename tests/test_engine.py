"""FaceEngine with the real detector and the real shipped model on real photographs."""
import subprocess
import sys

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
    # A face is as like itself as a score gets: accepted against a gallery of any size.
    assert engine.similarity(vector, vector) >= engine.gallery_threshold(10_000)


def test_mirrored_photo_is_the_same_person(engine, astronaut):
    original = engine.embed(astronaut)
    mirrored = engine.embed(np.ascontiguousarray(astronaut[:, ::-1]))
    score = engine.similarity(original, mirrored)
    assert score >= engine.threshold
    assert engine.similarity(mirrored, original) == pytest.approx(score)


def test_no_face_raises(engine):
    with pytest.raises(NoFaceError):
        engine.embed(np.full((240, 320, 3), 128, np.uint8))


def test_embed_faces_embeds_every_face_in_one_batch(engine, astronaut):
    face_region = astronaut[20:260, 120:330]
    canvas = np.full((300, 500, 3), 90, np.uint8)
    canvas[20:260, 0:210] = face_region
    canvas[40:280, 260:470] = face_region[:, ::-1]
    faces = engine.detect(canvas)
    assert len(faces) == 2
    vectors = engine.embed_faces(canvas, faces)
    assert vectors.shape == (2, engine.embedding_size)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(vectors[0], engine.embed(canvas), atol=1e-5)  # embed(): the largest face
    assert engine.similarity(vectors[0], vectors[1]) >= engine.threshold  # both are Eileen Collins
    assert engine.embed_faces(canvas, []).shape == (0, engine.embedding_size)


def test_embed_each_embeds_one_face_of_each_photo_as_embed_does(engine, astronaut):
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    photos = [astronaut, mirrored]
    faces = [engine.detect(photo)[0] for photo in photos]
    vectors = engine.embed_each(photos, faces)
    assert vectors.shape == (2, engine.embedding_size)
    np.testing.assert_allclose(vectors[0], engine.embed(astronaut), atol=1e-5)
    np.testing.assert_allclose(vectors[1], engine.embed(mirrored), atol=1e-5)
    with pytest.raises(ValueError, match="one face for each photo"):
        engine.embed_each(photos, faces[:1])
    assert engine.embed_each([], []).shape == (0, engine.embedding_size)


@pytest.mark.lfw
def test_same_person_scores_above_different_people(engine, lfw):
    from kiosk.images import load_image
    from training.lfw import ImageRef

    # LFW View 1 test people (never trained on), three photos each that the shipped model places
    # clear of its threshold (same-person pairs 0.57-0.82 against 0.482; different-person at most
    # 0.29). This checks the engine end to end, not the model's accuracy (its card measures that):
    # the card's threshold sits at 1% FAR, where about half of LFW's same-person pairs score below
    # it, so arbitrary photos (e.g. each person's first three) can average under it.
    photos = {"Jennifer_Capriati": (3, 9, 12), "Gerhard_Schroeder": (10, 12, 13)}
    people = list(photos)
    vectors = {name: [engine.embed(load_image(lfw.image_path(ImageRef(name, n)))) for n in numbers]
               for name, numbers in photos.items()}
    same = [engine.similarity(a, b) for vs in vectors.values() for i, a in enumerate(vs) for b in vs[i + 1:]]
    different = [engine.similarity(a, b) for a in vectors[people[0]] for b in vectors[people[1]]]
    # Averages, not every pair: the model is far from perfect on single LFW pairs (see its card).
    assert np.mean(same) >= engine.threshold > np.mean(different)
    assert np.mean(same) - np.mean(different) > 0.15
