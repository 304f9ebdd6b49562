import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery, GalleryError
from kiosk.sealing import template_aad

DIM = 8


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return database_path(tmp_path)


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(db_path)
    yield connection
    connection.close()


@pytest.fixture
def gallery(conn: sqlite3.Connection) -> Gallery:
    return Gallery(conn)


def enrol(gallery: Gallery, name: str, seeds: list[int]) -> None:
    gallery.add_person(name)
    gallery.add_templates(name, [unit(s) for s in seeds], [0.9] * len(seeds), ["test"] * len(seeds))


# People


def test_add_and_look_up_people(gallery):
    ada = gallery.add_person("  Ada Lovelace ", external_id="E-1")
    assert ada.name == "Ada Lovelace"
    assert ada.external_id == "E-1"
    assert ada.active and ada.template_count == 0
    assert ada.created.endswith("Z")
    assert gallery.get_person("ada lovelace") == ada
    assert gallery.get_person(ada.id) == ada
    assert gallery.find_person("ADA LOVELACE") == ada
    assert gallery.find_person("Nobody") is None
    with pytest.raises(GalleryError, match="no person named 'Nobody'"):
        gallery.get_person("Nobody")
    with pytest.raises(GalleryError, match="no person with id"):
        gallery.get_person(12345)


def test_names_are_unique_ignoring_case_and_not_empty(gallery):
    gallery.add_person("Émile", external_id="E-1")
    with pytest.raises(GalleryError, match="already exists"):
        gallery.add_person("ÉMILE")  # beyond ASCII, which SQLite's NOCASE would miss
    with pytest.raises(GalleryError, match="empty"):
        gallery.add_person("   ")
    with pytest.raises(GalleryError, match="external id"):
        gallery.add_person("Other", external_id="E-1")
    assert [p.name for p in gallery.people()] == ["Émile"]


def test_rename(gallery):
    gallery.add_person("Bob")
    gallery.add_person("Carol")
    assert gallery.rename("bob", "Robert").name == "Robert"
    assert gallery.find_person("Bob") is None
    assert gallery.rename("Robert", "ROBERT").name == "ROBERT"  # case-only change of own name
    with pytest.raises(GalleryError, match="already exists"):
        gallery.rename("Robert", "carol")


def test_deactivate_excludes_from_people_filter_and_matrix(gallery):
    enrol(gallery, "Ada", [1])
    enrol(gallery, "Bob", [2])
    bob = gallery.set_active("Bob", False)
    assert not bob.active
    assert [p.name for p in gallery.people(include_inactive=False)] == ["Ada"]
    assert [p.name for p in gallery.people()] == ["Ada", "Bob"]
    _, ids = gallery.matrix()
    assert set(ids) == {gallery.get_person("Ada").id}
    gallery.set_active("Bob", True)
    assert set(gallery.matrix()[1]) == {gallery.get_person("Ada").id, bob.id}


def test_remove_deletes_person_and_templates(gallery):
    gallery.add_person("Ada")
    templates = gallery.add_templates(
        "Ada", [unit(1), unit(2)], [0.9, 0.8], ["a", "b"], thumbnails=[b"jpeg1", None]
    )
    enrol(gallery, "Bob", [3])
    assert gallery.remove("Ada") == 2
    assert gallery.find_person("Ada") is None
    assert all(t.person_id != templates[0].person_id for t in gallery.templates())
    assert gallery.thumbnail(templates[0].id) is None
    with pytest.raises(GalleryError):
        gallery.remove("Ada")


# Templates


def test_embeddings_round_trip_bit_identical(gallery, db_path):
    gallery.add_person("Ada")
    embeddings = [unit(s, 512) for s in range(3)]
    stored = gallery.add_templates("Ada", embeddings, [0.5, 0.6, 0.7], ["cam", "cam", "file"])
    assert gallery.get_person("Ada").template_count == 3

    reopened = open_database(db_path)
    loaded = Gallery(reopened).templates("Ada")
    reopened.close()
    assert [t.id for t in loaded] == [t.id for t in stored]
    for original, template in zip(embeddings, loaded):
        assert template.embedding.dtype == np.float32
        assert template.embedding.tobytes() == original.tobytes()
    assert [t.quality for t in loaded] == [0.5, 0.6, 0.7]
    assert [t.source for t in loaded] == ["cam", "cam", "file"]


def test_templates_are_sealed_little_endian_with_dim(gallery, conn):
    gallery.add_person("Ada")
    embedding = unit(1)
    (template,) = gallery.add_templates("Ada", [embedding], [1.0], ["cam"])
    dim, key_id, blob = conn.execute("SELECT dim, key_id, embedding FROM template").fetchone()
    assert dim == DIM
    assert blob != embedding.astype("<f4").tobytes()  # sealed, see test_sealing.py
    aad = template_aad(template.id, template.person_id, dim)
    assert conn.sealer.open(key_id, blob, aad, "test") == embedding.astype("<f4").tobytes()


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones((2, 4), np.float32) / np.sqrt(8), "1-D"),
        (np.array([np.nan] * DIM, np.float32), "NaN"),
        (np.ones(DIM, np.float32), "L2-normalised"),
        (np.arange(DIM), "float"),
        (unit(9, DIM + 1), "same dimension"),
    ],
)
def test_add_templates_is_all_or_nothing(gallery, bad, message):
    gallery.add_person("Ada")
    with pytest.raises(GalleryError, match=message):
        gallery.add_templates("Ada", [unit(1), bad, unit(2)], [1.0] * 3, ["cam"] * 3)
    assert gallery.templates() == []
    assert gallery.get_person("Ada").template_count == 0


def test_add_templates_rejects_a_dimension_other_than_the_gallerys(gallery):
    enrol(gallery, "Ada", [1])
    gallery.add_person("Bob")
    with pytest.raises(GalleryError, match="dimension"):
        gallery.add_templates("Bob", [unit(2, DIM * 2)], [1.0], ["cam"])
    with pytest.raises(GalleryError, match="same length"):
        gallery.add_templates("Bob", [unit(2)], [1.0, 1.0], ["cam"])
    with pytest.raises(GalleryError, match="no person named"):
        gallery.add_templates("Nobody", [unit(2)], [1.0], ["cam"])
    assert len(gallery.templates()) == 1


def test_a_gallery_is_bound_to_the_model_that_made_its_templates(gallery, db_path):
    gallery.bind_model(DIM, "model A")  # empty: any model may take it
    enrol(gallery, "Ada", [1])
    gallery.bind_model(DIM, "model A")
    # Templates of the same size from another model mean something else: refused, nothing changed.
    with pytest.raises(GalleryError, match=r"another model \(model A\), not by this one \(model B\).*re-enrol"):
        gallery.bind_model(DIM, "model B")
    with pytest.raises(GalleryError, match="dimension"):
        gallery.bind_model(DIM + 1, "model A")
    reopened = open_database(db_path)  # the binding is in the file, for every process
    try:
        with pytest.raises(GalleryError, match="another model"):
            Gallery(reopened).bind_model(DIM, "model B")
    finally:
        reopened.close()
    # Once everyone is removed the gallery may change model.
    gallery.remove("Ada")
    gallery.bind_model(DIM, "model B")
    enrol(gallery, "Bob", [2])
    with pytest.raises(GalleryError, match="another model"):
        gallery.bind_model(DIM, "model A")
    with pytest.raises(GalleryError, match="another model"):
        gallery.check_model(DIM, "model A")
    gallery.check_model(DIM, "model B")


def test_checking_the_model_writes_nothing(gallery, db_path):
    def contents() -> list:
        conn = open_database(db_path)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    before = contents()
    gallery.check_model(DIM, "model A")  # an empty gallery: `identify` and the kiosk only check
    assert contents() == before
    gallery.bind_model(DIM, "model A")  # storing templates records the model
    recorded = contents()
    assert recorded != before
    gallery.bind_model(DIM, "model A")
    assert contents() == recorded


def test_thumbnails_and_remove_template(gallery):
    gallery.add_person("Ada")
    first, second = gallery.add_templates(
        "Ada", [unit(1), unit(2)], [1.0, 1.0], ["cam", "cam"], thumbnails=[b"\xff\xd8jpeg", None]
    )
    assert gallery.thumbnail(first.id) == b"\xff\xd8jpeg"
    assert gallery.thumbnail(second.id) is None
    gallery.remove_template(first.id)
    assert [t.id for t in gallery.templates("Ada")] == [second.id]
    assert gallery.thumbnail(first.id) is None
    with pytest.raises(GalleryError, match="no template"):
        gallery.remove_template(first.id)


# The matching matrix


def test_matrix_is_grouped_by_person_and_cached(gallery):
    assert gallery.matrix()[0].shape[0] == 0
    enrol(gallery, "Ada", [1, 2])
    enrol(gallery, "Bob", [3])
    gallery.add_templates("Ada", [unit(4)], [1.0], ["cam"])
    embeddings, ids = gallery.matrix()
    ada, bob = gallery.get_person("Ada").id, gallery.get_person("Bob").id
    assert embeddings.dtype == np.float32 and embeddings.shape == (4, DIM)
    assert list(ids) == [ada, ada, ada, bob]
    assert embeddings[3].tobytes() == unit(3).tobytes()
    assert gallery.matrix()[0] is embeddings  # unchanged: served from the cache
    with pytest.raises(ValueError):
        embeddings[0, 0] = 0.0  # the cache is shared, so it is read-only

    gallery.rename("Ada", "Ada L.")  # does not change the matrix
    assert gallery.matrix()[0] is embeddings
    gallery.remove("Bob")
    assert list(gallery.matrix()[1]) == [ada, ada, ada]


def test_matrix_sees_changes_made_through_another_connection(gallery, db_path):
    enrol(gallery, "Ada", [1])
    assert gallery.matrix()[0].shape == (1, DIM)

    other = open_database(db_path)  # e.g. the CLI enrolling while the kiosk runs
    enrol(Gallery(other), "Bob", [2])
    assert gallery.matrix()[0].shape == (2, DIM)
    Gallery(other).set_active("Ada", False)
    other.close()
    _, ids = gallery.matrix()
    assert list(ids) == [gallery.get_person("Bob").id]
