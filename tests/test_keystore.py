"""The key file: apart from the database, owner-only, made once, never silently replaced."""
import json
import multiprocessing
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.keystore import KEY_FILE_ENV, KeyFileError, create_keyring, key_file_path, load_keyring


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def enrol_one(data_dir) -> None:
    data_dir.mkdir(exist_ok=True)
    conn = open_database(database_path(data_dir))
    Gallery(conn).add_person("Ada")
    Gallery(conn).add_templates("Ada", [np.ones(4, np.float32) / 2], [1.0], ["x"])
    conn.close()


def test_key_file_is_made_on_first_use_owner_only_beside_the_database(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    open_database(database_path(tmp_path)).close()
    key_file = tmp_path / "keys" / "kiosk.key"
    assert key_file_path(tmp_path) == key_file
    assert mode(key_file) == 0o600 and mode(key_file.parent) == 0o700
    assert mode(database_path(tmp_path)) == 0o600
    ring = load_keyring(key_file)
    assert ring.current == 1 and len(ring.data_keys[1]) == 32 and len(ring.log_key) == 32
    # No temporary left; the state file (kiosk.sealstate) and its lock beside the key.
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["kiosk.key", "kiosk.key.state",
                                                                  "kiosk.key.state.lock"]
    assert mode(key_file.with_name("kiosk.key.state")) == 0o600
    raw = database_path(tmp_path).read_bytes()
    assert ring.data_keys[1] not in raw and ring.log_key not in raw
    open_database(database_path(tmp_path)).close()
    assert load_keyring(key_file).data_keys == ring.data_keys  # reused, not remade


def test_key_file_location_from_the_environment(tmp_path, monkeypatch):
    elsewhere = tmp_path / "other-volume" / "site.key"
    monkeypatch.setenv(KEY_FILE_ENV, str(elsewhere))
    data = tmp_path / "data"
    enrol_one(data)
    assert elsewhere.is_file() and mode(elsewhere) == 0o600
    assert not (data / "keys").exists()
    monkeypatch.delenv(KEY_FILE_ENV)
    with pytest.raises(KeyFileError, match="key file .* is missing; restore the key file"):
        open_database(database_path(data))
    assert not (data / "keys" / "kiosk.key").exists()  # refused, and no new key was made


def test_missing_key_is_an_error_never_a_new_key(tmp_path):
    enrol_one(tmp_path)
    before = database_path(tmp_path).read_bytes()
    shutil.move(tmp_path / "keys", tmp_path / "keys-away")
    with pytest.raises(KeyFileError, match="holds data sealed with a key, but its key file .* is missing"):
        open_database(database_path(tmp_path))
    assert not (tmp_path / "keys" / "kiosk.key").exists()
    assert database_path(tmp_path).read_bytes() == before
    shutil.move(tmp_path / "keys-away", tmp_path / "keys")
    conn = open_database(database_path(tmp_path))
    assert Gallery(conn).matrix()[0].shape == (1, 4)
    conn.close()


def test_another_databases_key_file_is_refused(tmp_path, monkeypatch):
    enrol_one(tmp_path / "a")
    enrol_one(tmp_path / "b")
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "b" / "keys" / "kiosk.key"))
    with pytest.raises(KeyFileError, match="does not hold this database's keys"):
        open_database(database_path(tmp_path / "a"))


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path, bad_mode):
    enrol_one(tmp_path)
    key_file = tmp_path / "keys" / "kiosk.key"
    os.chmod(key_file, bad_mode)
    with pytest.raises(KeyFileError, match=f"readable or writable by group or others \\(mode 0{bad_mode:o}\\).*chmod 600"):
        open_database(database_path(tmp_path))
    os.chmod(key_file, 0o600)
    open_database(database_path(tmp_path)).close()


def test_key_folder_writable_by_others_is_refused(tmp_path):
    (tmp_path / "keys").mkdir(mode=0o700)
    os.chmod(tmp_path / "keys", 0o777)
    with pytest.raises(KeyFileError, match="key folder .* writable by group or others"):
        open_database(database_path(tmp_path))


@pytest.mark.parametrize("content, message", [
    ("not json", "not a kiosk key file"),
    (json.dumps({"format": 1, "current": 1, "data_keys": {"1": "c2hvcnQ="}, "log_key": "x"}), "bytes, not 32"),
    (json.dumps({"format": 9}), "unknown format"),
])
def test_malformed_key_file_is_a_clear_error(tmp_path, content, message):
    key_file = tmp_path / "kiosk.key"
    key_file.write_text(content)
    os.chmod(key_file, 0o600)
    with pytest.raises(KeyFileError, match=message):
        load_keyring(key_file)


def _create(path: str, queue) -> None:
    queue.put(create_keyring(Path(path)).data_keys[1])


def test_concurrent_first_use_ends_with_one_key(tmp_path):
    # Two processes opening a new data directory at once must not each make (and use) a key.
    target = tmp_path / "keys" / "kiosk.key"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_create, args=(str(target), queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    keys = {queue.get(timeout=60) for _ in workers}
    for worker in workers:
        worker.join(60)
    assert keys == {load_keyring(target).data_keys[1]}
