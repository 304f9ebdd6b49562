"""What editing the database cannot undo: removed templates stay removed, damaged rows are skipped
and reported, and a database from before the state file existed is upgraded without loss."""
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from kiosk.accesslog import AccessLog
from kiosk.cli import main
from kiosk.database import SCHEMA_VERSION, database_path, open_database
from kiosk.gallery import Gallery
from kiosk.keystore import key_file_path
from kiosk.privacy import remove_person
from kiosk.sealstate import StateFileError, load_state, state_path

DIM = 16


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Ada (templates 1, 2) and Bob (template 3), one access event."""
    conn = open_database(database_path(tmp_path))
    gallery = Gallery(conn)
    gallery.enroll("Ada", None, [unit(1), unit(2)], [1.0, 1.0], ["a1", "a2"], [b"jpeg1", b"jpeg2"])
    gallery.enroll("Bob", None, [unit(3)], [1.0], ["b1"])
    AccessLog(conn).record(camera="front", decision="granted", reason="match", person_id=1, score=0.9)
    conn.close()
    return tmp_path


def older_copy(data_dir: Path, folder: Path) -> Path:
    """A copy of the database file as a backup would hold it."""
    raw = sqlite3.connect(database_path(data_dir))
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    folder.mkdir()
    return Path(shutil.copy(database_path(data_dir), folder / "old.db"))


def replay(data_dir: Path, old: Path, person_id: int) -> None:
    """Put a person's rows back from an older copy, with plain sqlite3 and no key."""
    raw = sqlite3.connect(database_path(data_dir))
    raw.execute("ATTACH DATABASE ? AS old", (str(old),))
    raw.execute("INSERT INTO person SELECT * FROM old.person WHERE id = ?", (person_id,))
    raw.execute("INSERT INTO template SELECT * FROM old.template WHERE person_id = ?", (person_id,))
    raw.execute("INSERT INTO template_thumbnail SELECT * FROM old.template_thumbnail WHERE template_id IN"
                " (SELECT id FROM old.template WHERE person_id = ?)", (person_id,))
    raw.commit()
    raw.close()


def test_a_removed_person_put_back_from_an_older_copy_is_not_recognised(data_dir, tmp_path):
    old = older_copy(data_dir, tmp_path / "backup")
    conn = open_database(database_path(data_dir))
    gallery = Gallery(conn)
    assert set(gallery.matrix()[1]) == {1, 2}
    remove_person(conn, "Ada")
    replay(data_dir, old, person_id=1)

    matrix, ids = gallery.matrix()
    assert list(ids) == [2] and matrix[0].tobytes() == unit(3).tobytes()  # Bob only
    assert [(d.template_id, d.person_id) for d in gallery.damaged] == [(1, 1), (2, 1)]
    assert all("was removed, and its row was put back" in d.problem for d in gallery.damaged)
    assert gallery.templates("Ada") == []
    conn.close()


def test_a_removed_template_put_back_is_not_used(data_dir, tmp_path):
    old = older_copy(data_dir, tmp_path / "backup")
    conn = open_database(database_path(data_dir))
    gallery = Gallery(conn)
    gallery.remove_template(2)
    raw = sqlite3.connect(database_path(data_dir))
    raw.execute("ATTACH DATABASE ? AS old", (str(old),))
    raw.execute("INSERT INTO template SELECT * FROM old.template WHERE id = 2")
    raw.commit()
    raw.close()
    assert [t.id for t in gallery.templates("Ada")] == [1]
    assert [d.template_id for d in gallery.damaged_templates()] == [2]
    conn.close()


def test_a_damaged_template_row_is_skipped_and_reported(data_dir, capsys):
    raw = sqlite3.connect(database_path(data_dir))
    blob = raw.execute("SELECT embedding FROM template WHERE id = 2").fetchone()[0]
    raw.execute("UPDATE template SET embedding = ? WHERE id = 2", (blob[:-1] + bytes([blob[-1] ^ 1]),))
    raw.commit()
    raw.close()
    conn = open_database(database_path(data_dir))
    gallery = Gallery(conn)
    matrix, ids = gallery.matrix()  # everyone else is still recognised
    assert list(ids) == [1, 2] and matrix.tobytes() == np.stack([unit(1), unit(3)]).tobytes()
    assert [d.template_id for d in gallery.damaged] == [2]
    conn.close()

    assert main(["--data-dir", str(data_dir), "people"]) == 0
    captured = capsys.readouterr()
    assert "Ada" in captured.out and "(1 damaged, not used)" in captured.out
    assert "warning: template 2 (person 1) is skipped: template 2 fails authentication" in captured.err


def test_a_database_from_before_the_state_file_is_upgraded_without_loss(data_dir, tmp_path):
    old = older_copy(data_dir, tmp_path / "backup")
    # As the previous version left it: schema 3, no state file, template 2 removed without a record.
    state_path(key_file_path(data_dir)).unlink()
    raw = sqlite3.connect(database_path(data_dir))
    raw.execute("DELETE FROM template WHERE id = 2")
    raw.execute("DELETE FROM template_thumbnail WHERE template_id = 2")
    raw.execute("ALTER TABLE person DROP COLUMN liveness_exempt")  # schema 5
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()

    conn = open_database(database_path(data_dir))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    gallery = Gallery(conn)
    assert [t.id for t in gallery.templates()] == [1, 3] and gallery.thumbnail(1) == b"jpeg1"
    assert gallery.matrix()[0].tobytes() == np.stack([unit(1), unit(3)]).tobytes()
    report = AccessLog(conn).verify()
    assert report.ok and report.recorded_head_seq == report.head_seq == 1
    conn.close()
    # The template removed before the upgrade counts as removed: its row put back is refused.
    raw = sqlite3.connect(database_path(data_dir))
    raw.execute("ATTACH DATABASE ? AS old", (str(old),))
    raw.execute("INSERT INTO template SELECT * FROM old.template WHERE id = 2")
    raw.commit()
    raw.close()
    conn = open_database(database_path(data_dir))
    assert [d.template_id for d in Gallery(conn).damaged_templates()] == [2]
    conn.close()


def test_an_altered_state_file_is_refused(data_dir):
    path = state_path(key_file_path(data_dir))
    path.write_text(path.read_text().replace('"removed": []', '"removed": [[1, 1]]'))
    conn = open_database(database_path(data_dir))
    with pytest.raises(StateFileError, match="fails authentication"):
        load_state(key_file_path(data_dir), conn.sealer.log_key)
    assert "fails authentication" in AccessLog(conn).verify().first.problem
    conn.close()
