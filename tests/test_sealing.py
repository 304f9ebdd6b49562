"""Templates and thumbnails at rest: sealed (AES-GCM) and bound to their rows; plain databases migrated."""
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from kiosk import connection, database
from kiosk.accesslog import AccessLog
from kiosk.database import SCHEMA_VERSION, database_path, open_database
from kiosk.errors import KioskError
from kiosk.gallery import Gallery, GalleryError
from kiosk.sealing import SealError

DIM = 128
THUMB = b"\xff\xd8\xff\xe0" + b"a face thumbnail, plain JPEG bytes " * 20


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def every_file_byte(folder: Path) -> bytes:
    """What someone who copies the data directory's database (and its WAL) gets."""
    return b"".join(path.read_bytes() for path in folder.glob("kiosk.db*"))


def make_v1_database(path: Path, embeddings: list[np.ndarray], thumbnails: list[bytes]) -> None:
    """A database as the previous kiosk version wrote it: plain float32 embeddings and JPEGs."""
    raw = sqlite3.connect(path)
    for statement in database.MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    raw.execute("INSERT INTO person (name, name_key, created) VALUES ('Ada', 'ada', '2024-01-01T00:00:00.000Z')")
    for i, (embedding, thumbnail) in enumerate(zip(embeddings, thumbnails), start=1):
        raw.execute(
            "INSERT INTO template (id, person_id, dim, embedding, quality, source, created)"
            " VALUES (?, 1, ?, ?, 0.9, 'cam', '2024-01-01T00:00:00.000Z')",
            (i, embedding.size, embedding.astype("<f4").tobytes()),
        )
        raw.execute("INSERT INTO template_thumbnail (template_id, jpeg) VALUES (?, ?)", (i, thumbnail))
    raw.execute(
        "INSERT INTO access_event (time, camera, person_id, name, score, decision, reason, door)"
        " VALUES ('2024-01-02T08:00:00.000Z', 'front', 1, 'Ada', 0.8, 'granted', 'match', 'ok')"
    )
    raw.execute("INSERT INTO access_thumbnail (event_id, jpeg) VALUES (1, ?)", (thumbnails[0],))
    raw.commit()
    raw.close()


def test_a_copied_database_reveals_no_embedding_or_thumbnail(tmp_path):
    conn = open_database(database_path(tmp_path))
    gallery = Gallery(conn)
    gallery.add_person("Ada")
    embeddings = [unit(s) for s in range(20)]
    gallery.add_templates("Ada", embeddings, [0.9] * 20, ["cam"] * 20, thumbnails=[THUMB] * 20)
    AccessLog(conn).record(camera="front", decision="granted", reason="match", person_id=1, thumbnail=THUMB)
    conn.close()

    raw = sqlite3.connect(database_path(tmp_path))  # no key: what a thief of the file has
    blobs = [row[0] for row in raw.execute("SELECT embedding FROM template")]
    jpegs = [row[0] for row in raw.execute("SELECT jpeg FROM template_thumbnail UNION ALL SELECT jpeg FROM access_thumbnail")]
    raw.close()
    assert len(blobs) == 20 and len(jpegs) == 21
    for blob in blobs:
        # Neither the stored bytes nor any 4*DIM-byte window of them decode to a unit vector.
        for start in range(0, len(blob) - 4 * DIM + 1, 4):
            with np.errstate(all="ignore"):  # random bytes include NaN and huge values
                decoded = np.frombuffer(blob[start:start + 4 * DIM], dtype="<f4").astype(np.float64)
                assert not np.isclose(np.linalg.norm(decoded), 1.0, atol=1e-3)
    assert not any(jpeg.startswith(b"\xff\xd8") for jpeg in jpegs)
    stored = every_file_byte(tmp_path)
    for embedding in embeddings:
        assert embedding.astype("<f4").tobytes()[:32] not in stored
    assert b"a face thumbnail" not in stored


def test_sealed_blobs_are_bound_to_their_rows(tmp_path):
    conn = open_database(database_path(tmp_path))
    gallery = Gallery(conn)
    gallery.add_person("Ada")
    gallery.add_person("Bob")
    ada, ada2 = gallery.add_templates("Ada", [unit(1), unit(2)], [1.0, 1.0], ["a", "a"], [THUMB, THUMB + b"2"])
    (bob,) = gallery.add_templates("Bob", [unit(3)], [1.0], ["b"])
    with connection.transaction(conn):  # an attacker with write access swaps two ciphertexts
        first, second = (conn.execute("SELECT embedding FROM template WHERE id = ?", (t.id,)).fetchone()[0]
                         for t in (ada, ada2))
        conn.execute("UPDATE template SET embedding = ? WHERE id = ?", (second, ada.id))
        conn.execute("UPDATE template SET embedding = ? WHERE id = ?", (first, ada2.id))
    # Neither is used; Bob is still recognised.
    matrix, ids = gallery.matrix()
    assert list(ids) == [bob.person_id] and matrix[0].tobytes() == unit(3).tobytes()
    assert [(d.template_id, "fails authentication" in d.problem) for d in gallery.damaged] == [
        (ada.id, True), (ada2.id, True)]
    with connection.transaction(conn):  # put them back, then give Bob's face to Ada instead
        conn.execute("UPDATE template SET embedding = ? WHERE id = ?", (first, ada.id))
        conn.execute("UPDATE template SET embedding = ? WHERE id = ?", (second, ada2.id))
        conn.execute("UPDATE template SET person_id = ? WHERE id = ?", (ada.person_id, bob.id))
    assert [t.id for t in gallery.templates("Ada")] == [ada.id, ada2.id]
    assert [(d.template_id, d.person_id) for d in gallery.damaged_templates()] == [(bob.id, ada.person_id)]
    assert f"template {bob.id} fails authentication" in gallery.damaged_templates()[0].problem
    with connection.transaction(conn):
        conn.execute("UPDATE template SET person_id = ? WHERE id = ?", (bob.person_id, bob.id))
        jpegs = dict(conn.execute("SELECT template_id, jpeg FROM template_thumbnail").fetchall())
        conn.execute("UPDATE template_thumbnail SET jpeg = ? WHERE template_id = ?", (jpegs[ada2.id], ada.id))
    assert gallery.matrix()[0].shape == (3, DIM)
    with pytest.raises(SealError, match="thumbnail"):
        gallery.thumbnail(ada.id)
    conn.close()


def test_plain_database_is_sealed_by_migration_in_place(tmp_path):
    path = database_path(tmp_path)
    embeddings = [unit(s) for s in range(30)]
    thumbnails = [THUMB + bytes([i]) for i in range(30)]
    make_v1_database(path, embeddings, thumbnails)

    conn = open_database(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    gallery, log = Gallery(conn), AccessLog(conn)
    matrix, ids = gallery.matrix()
    assert matrix.tobytes() == np.stack(embeddings).astype("<f4").tobytes() and set(ids) == {1}
    assert [gallery.thumbnail(i + 1) for i in range(30)] == thumbnails
    assert log.thumbnail(1) == thumbnails[0]
    assert log.verify().ok and log.verify().entries == 2  # the event and its door outcome, chained
    assert log.query()[0].door == "ok"
    # New templates continue the old ids, never reusing one.
    (new,) = gallery.add_templates("Ada", [unit(99)], [1.0], ["cam"])
    assert new.id == 31
    # No one recorded which model made the old templates: no model may take the gallery over.
    with pytest.raises(GalleryError, match=r"another model \(a model from before models were recorded"):
        gallery.bind_model(embeddings[0].size, "model 0123, scoring cosine")
    conn.close()
    stored = every_file_byte(tmp_path)
    for embedding in embeddings:  # the plain pages were overwritten, not just unlinked
        assert embedding.astype("<f4").tobytes()[:32] not in stored
    assert b"a face thumbnail" not in stored


def test_failed_sealing_migration_leaves_the_plain_database_as_it_was(tmp_path):
    path = database_path(tmp_path)
    make_v1_database(path, [unit(1)], [THUMB])
    raw = sqlite3.connect(path)  # a template of nobody (written with foreign keys off)
    raw.execute("INSERT INTO template (person_id, dim, embedding, quality, source, created)"
                " VALUES (42, ?, ?, 1.0, 'x', 'x')", (DIM, unit(2).tobytes()))
    raw.commit()
    before = raw.execute("SELECT * FROM template ORDER BY id").fetchall()
    raw.close()
    with pytest.raises(sqlite3.IntegrityError, match="foreign key"):
        open_database(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert raw.execute("SELECT * FROM template ORDER BY id").fetchall() == before
    raw.close()


def test_matrix_opens_templates_once_per_gallery_version(tmp_path):
    conn = open_database(database_path(tmp_path))
    gallery = Gallery(conn)
    count = 2000
    gallery.add_person("Many")
    gallery.add_templates("Many", [unit(s) for s in range(count)], [1.0] * count, ["x"] * count)
    started = time.perf_counter()
    first = gallery.matrix()[0]
    opening = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(100):
        assert gallery.matrix()[0] is first  # served from memory: nothing opened again
    cached = (time.perf_counter() - started) / 100
    assert first.shape == (count, DIM)
    assert cached < opening / 20, (cached, opening)
    conn.close()


def test_connections_without_keys_are_refused(tmp_path):
    open_database(database_path(tmp_path)).close()
    raw = sqlite3.connect(database_path(tmp_path))
    with pytest.raises(KioskError, match="open_database"):
        Gallery(raw)
    with pytest.raises(KioskError, match="open_database"):
        AccessLog(raw)
    raw.close()
