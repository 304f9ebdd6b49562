"""`keys rotate`: every template and thumbnail re-sealed with a new key, readable after a SIGKILL anywhere."""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kiosk.accesslog import AccessLog
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.keystore import load_keyring
from kiosk.rotation import rotate_keys, rows_by_key
from kiosk.sealing import Sealer, access_thumbnail_aad, template_aad, template_thumbnail_aad

REPO = Path(__file__).resolve().parent.parent
DIM = 128
TEMPLATES = 1200  # enough batches of kiosk.rotation.BATCH_ROWS to kill the rotation mid-way
EVENTS = 300


def thumbnail(i: int) -> bytes:
    return b"\xff\xd8" + i.to_bytes(4, "little") * 500


def embeddings(count: int) -> np.ndarray:
    vectors = np.random.default_rng(7).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    """A data directory with TEMPLATES templates and EVENTS events, all with thumbnails (key 1)."""
    folder = tmp_path_factory.mktemp("filled")
    os.chmod(folder, 0o700)
    conn = open_database(database_path(folder))
    gallery, log = Gallery(conn), AccessLog(conn)
    gallery.add_person("Many")
    gallery.add_templates("Many", list(embeddings(TEMPLATES)), [1.0] * TEMPLATES, ["x"] * TEMPLATES,
                          [thumbnail(i) for i in range(TEMPLATES)])
    for i in range(EVENTS):
        log.record(camera="front", decision="denied", reason="unknown", thumbnail=thumbnail(i))
    conn.close()
    return folder


@pytest.fixture
def data_dir(filled, tmp_path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(filled, copy)
    return copy


def every_row_opens(data_dir: Path) -> set[int]:
    """Open every sealed row with the keys the key file holds now, as a fresh process would,
    without finishing anything; returns the key ids the rows use."""
    keys = Sealer(load_keyring(data_dir / "keys" / "kiosk.key"))
    raw = sqlite3.connect(database_path(data_dir))
    used = set()
    expected = embeddings(TEMPLATES)
    for template_id, person_id, dim, key_id, blob in raw.execute(
        "SELECT id, person_id, dim, key_id, embedding FROM template ORDER BY id"
    ):
        plain = keys.open(key_id, blob, template_aad(template_id, person_id, dim), "template")
        assert plain == expected[template_id - 1].astype("<f4").tobytes()
        used.add(key_id)
    for template_id, key_id, blob in raw.execute("SELECT template_id, key_id, jpeg FROM template_thumbnail"):
        assert keys.open(key_id, blob, template_thumbnail_aad(template_id), "thumb") == thumbnail(template_id - 1)
        used.add(key_id)
    for event_id, key_id, blob in raw.execute("SELECT event_id, key_id, jpeg FROM access_thumbnail"):
        assert keys.open(key_id, blob, access_thumbnail_aad(event_id), "thumb") == thumbnail(event_id - 1)
        used.add(key_id)
    raw.close()
    return used


def test_rotation_reseals_everything_and_drops_the_old_key(data_dir):
    conn = open_database(database_path(data_dir))
    stale = open_database(database_path(data_dir))  # e.g. the kiosk, running through the rotation
    old = load_keyring(data_dir / "keys" / "kiosk.key")
    added_during: list[int] = []

    def progress(line: str) -> None:  # called between batches: another process enrols meanwhile
        if len(added_during) < 2 and line.startswith("re-sealed"):
            extra = embeddings(TEMPLATES + 2)[TEMPLATES + len(added_during)]
            added_during.append(Gallery(stale).add_templates("Many", [extra], [1.0], ["mid"])[0].id)

    version = conn.execute("SELECT version FROM gallery_state").fetchone()[0]
    done = rotate_keys(conn, progress)
    # Re-sealing leaves the embeddings as they were: a running kiosk keeps its cached matrix.
    assert conn.execute("SELECT version FROM gallery_state").fetchone()[0] == version + len(added_during)
    ring = load_keyring(data_dir / "keys" / "kiosk.key")
    assert (done.old_keys, done.new_key, ring.current, ring.retiring) == ((1,), 2, 2, ())
    assert set(ring.data_keys) == {2} and ring.data_keys[2] != old.data_keys[1]
    assert ring.log_key == old.log_key  # the chain stays verifiable
    assert done.resealed == 2 * TEMPLATES + EVENTS
    assert rows_by_key(conn) == {2: 2 * TEMPLATES + EVENTS + 2}  # rows added meanwhile: new key too
    matrix = Gallery(stale).matrix()[0]  # the stale connection re-reads the key file by itself
    assert matrix.tobytes() == embeddings(TEMPLATES + 2).tobytes()
    assert AccessLog(stale).thumbnail(5) == thumbnail(4) and AccessLog(conn).verify().ok
    stale.close()
    conn.close()
    conn = open_database(database_path(data_dir))  # key check of the new key passes
    assert len(Gallery(conn).templates()) == TEMPLATES + 2
    conn.close()


# The rotation prints a line per batch of rows (about 25 ms each here; 28 lines in all):
# killing it after line 1 lands before or just after the database names the new key,
# after 3 or 8 lines among the re-sealed batches. "locked": the test holds the database's
# write lock, so the kill lands exactly between writing the key file and the database.
@pytest.mark.parametrize("kill_after_lines", [1, 3, 8, "locked"])
def test_sigkill_during_rotation_leaves_every_row_readable(data_dir, kill_after_lines):
    blocker = sqlite3.connect(database_path(data_dir), isolation_level=None)
    if kill_after_lines == "locked":
        blocker.execute("BEGIN IMMEDIATE")
    rotation = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--data-dir", str(data_dir), "keys", "rotate"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lines = []
    while len(lines) < (1 if kill_after_lines == "locked" else kill_after_lines):
        line = rotation.stderr.readline()
        assert line, f"rotation ended early: {lines}"
        lines.append(line)
    rotation.send_signal(signal.SIGKILL)
    rotation.wait(30)
    blocker.close()
    assert rotation.returncode == -signal.SIGKILL
    ring = load_keyring(data_dir / "keys" / "kiosk.key")
    assert ring.retiring == (1,) and set(ring.data_keys) == {1, 2}  # killed mid-rotation
    used = every_row_opens(data_dir)
    assert used == {1} if kill_after_lines == "locked" else used <= {1, 2}

    conn = open_database(database_path(data_dir))  # finishes the rotation
    ring = load_keyring(data_dir / "keys" / "kiosk.key")
    assert (ring.current, ring.retiring, set(ring.data_keys)) == (2, (), {2})
    assert rows_by_key(conn) == {2: 2 * TEMPLATES + EVENTS}
    assert Gallery(conn).matrix()[0].tobytes() == embeddings(TEMPLATES).tobytes()
    assert AccessLog(conn).verify().ok
    conn.close()
    assert every_row_opens(data_dir) == {2}


def test_keys_command(data_dir, capsys):
    from kiosk.cli import main

    assert main(["--data-dir", str(data_dir), "--json", "keys"]) == 0
    assert f'"rows_by_key": {{"1": {2 * TEMPLATES + EVENTS}}}' in capsys.readouterr().out
    assert main(["--data-dir", str(data_dir), "keys", "rotate"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"rotated to key 2: re-sealed {2 * TEMPLATES + EVENTS} rows; old key 1 removed")
    assert "new key 2 added" in captured.err
    os.chmod(data_dir, 0o770)
    assert main(["--data-dir", str(data_dir), "keys", "rotate"]) == 1
    assert "writable by group or others" in capsys.readouterr().err
    assert load_keyring(data_dir / "keys" / "kiosk.key").current == 2  # refused: nothing rotated
