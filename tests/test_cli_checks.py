"""Misuse of the command line that needs no model: exports, permissions, absurd options, hostile names.

Each case gets one `error: ...` line (or the right behaviour) and loses nothing.
"""
import contextlib
import csv
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kiosk.accesslog import AccessLog
from kiosk.cli import main
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery, GalleryError
from kiosk.keystore import KeyFileError, key_file_path
from kiosk.settings import settings_path


def cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: usage errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
    return vector / np.linalg.norm(vector)


def file_bytes(*paths: Path) -> list[bytes]:
    return [path.read_bytes() for path in paths]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Ada enrolled; two events, one logged under a name a spreadsheet would run as a formula."""
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    conn = open_database(database_path(folder))
    Gallery(conn).enroll("Ada", "B-1", [unit(1)], [1.0], ["a"])
    log = AccessLog(conn)
    log.record(camera="front", decision="granted", reason="match", person_id=1, score=0.9)
    log.record(camera="@front", decision="denied", reason="unknown", name='=HYPERLINK("http://x.invalid","click")')
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return folder


# -- log --export ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["kiosk.db", "keys/kiosk.key", "keys", "export.csv"])
def test_export_never_writes_inside_the_data_directory(data_dir, capsys, target):
    protected = [database_path(data_dir), key_file_path(data_dir)]
    before = file_bytes(*protected)
    code, _, err = cli(capsys, "--data-dir", data_dir, "log", "--export", data_dir / target, "--force")
    assert code == 1 and err.startswith("error: refusing to export to ") and err.count("\n") == 1
    assert file_bytes(*protected) == before and not (data_dir / "export.csv").exists()
    conn = open_database(database_path(data_dir))
    assert len(Gallery(conn).matrix()[1]) == 1
    conn.close()


def test_export_never_writes_over_a_key_file_kept_elsewhere(data_dir, tmp_path, capsys, monkeypatch):
    keys = tmp_path / "vault"
    keys.mkdir(mode=0o700)
    shutil.move(key_file_path(data_dir), keys / "kiosk.key")
    shutil.move(str(key_file_path(data_dir)) + ".state", keys / "kiosk.key.state")
    monkeypatch.setenv("KIOSK_KEY_FILE", str(keys / "kiosk.key"))
    before = (keys / "kiosk.key").read_bytes()
    code, _, err = cli(capsys, "--data-dir", data_dir, "log", "--export", keys / "kiosk.key", "--force")
    assert code == 1 and "inside the key folder" in err
    assert (keys / "kiosk.key").read_bytes() == before


def test_export_refuses_an_existing_file_unless_forced(data_dir, tmp_path, capsys):
    target = tmp_path / "report.csv"
    target.write_text("keep me\n")
    code, _, err = cli(capsys, "--data-dir", data_dir, "log", "--export", target)
    assert code == 1 and "already exists" in err and "--force" in err
    assert target.read_text() == "keep me\n"
    assert cli(capsys, "--data-dir", data_dir, "log", "--export", target, "--force")[0] == 0
    assert target.read_text().startswith("id,time,")


def test_export_is_owner_only_and_cannot_carry_formulas(data_dir, tmp_path, capsys):
    target = tmp_path / "events.csv"
    code, out, err = cli(capsys, "--data-dir", data_dir, "log", "--export", target)
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    forged = next(r for r in rows if r["decision"] == "denied")
    assert forged["name"] == '\'=HYPERLINK("http://x.invalid","click")' and forged["camera"] == "'@front"
    assert next(r for r in rows if r["decision"] == "granted")["name"] == "Ada"


# -- permissions -----------------------------------------------------------------------


def test_a_key_folder_others_can_write_to_is_refused_at_open(data_dir):
    keys = key_file_path(data_dir).parent
    keys.chmod(0o777)
    with pytest.raises(KeyFileError, match=r"key folder .* is writable by group or others .*chmod go-w"):
        open_database(database_path(data_dir))


@pytest.mark.parametrize("loose", ["data", "settings"])
def test_run_refuses_files_others_can_write_to(data_dir, tmp_path, capsys, loose):
    settings = settings_path(data_dir)
    settings.write_text('{"liveness": false}\n')
    (data_dir if loose == "data" else settings).chmod(0o777 if loose == "data" else 0o666)
    code, _, err = cli(capsys, "--data-dir", data_dir, "run", "--headless", "--camera", tmp_path / "none.mp4")
    assert code == 1 and err.startswith("error: refusing to run the kiosk: the ")
    assert ("data directory" if loose == "data" else "settings file") in err and "chmod go-w" in err


@contextlib.contextmanager
def read_only(folder: Path):
    """The folder made read-only for this process: by its mode, or for root by the immutable flag."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("cannot make a folder read-only for root here (chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_data_directory_gets_a_clear_error(data_dir, capsys):
    for extra in data_dir.glob("kiosk.db-*"):
        extra.unlink()
    with read_only(data_dir):
        code, _, err = cli(capsys, "--data-dir", data_dir, "people")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: cannot open the database {database_path(data_dir)}: the data directory")
    assert "is not writable" in err


# -- absurd options --------------------------------------------------------------------


@pytest.mark.parametrize("option", [
    ("--since", "99999999999d"), ("--since", "1" + "0" * 400 + "w"), ("--until", "99999999999999999999s"),
    ("--limit", "99999999999999999999"), ("--since", "9999-12-31T23:59:59-14:00"),
    ("--until", "0001-01-01T00:00:00+14:00"),
])
def test_absurd_log_options_get_an_error_line(data_dir, capsys, option):
    code, _, err = cli(capsys, "--data-dir", data_dir, "log", *option)
    assert code == 2 and "error: argument " + option[0] in err and "Traceback" not in err


@pytest.mark.parametrize("edge", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01"])
def test_dates_at_the_edges_of_the_calendar_are_answered(data_dir, capsys, edge):
    code, out, err = cli(capsys, "--data-dir", data_dir, "log", "--since", edge)
    if code == 2:  # local midnight of 1 January, year 1, may be before the calendar's start in UTC
        assert edge == "0001-01-01" and "outside the calendar" in err and "Traceback" not in err
        return
    assert code == 0, err
    assert ("no access events match" in out) == edge.startswith("9999")


def test_a_name_that_is_not_utf8_gets_an_error_line(data_dir, capsys):
    name = os.fsdecode(b"Ad\xe9la")  # a Latin-1 name from a shell that is not in UTF-8
    before = file_bytes(database_path(data_dir))
    for argv in (["enroll", name, "x.jpg"], ["people", "rename", "Ada", name], ["people", "remove", name],
                 ["log", "--person", name]):
        code, _, err = cli(capsys, "--data-dir", data_dir, *argv)
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
    assert file_bytes(database_path(data_dir)) == before


# -- names and badges ----------------------------------------------------------------


@pytest.mark.parametrize("name, problem", [
    ("Eve\nAda B-1", "control character (U+000A)"),
    ("\x1b[2KAda", "control character (U+001B)"),
    ("Ad\u200ba", "invisible or control character (U+200B)"),  # a zero-width twin of Ada
    ("\u202eevE", "(U+202E)"),  # shows as "Eve" reversed
    ("x" * 100_000, "100000 characters long; at most 100"),
])
def test_hostile_names_and_badges_are_refused(data_dir, capsys, name, problem):
    before = file_bytes(database_path(data_dir))
    code, _, err = cli(capsys, "--data-dir", data_dir, "people", "rename", "Ada", name)
    assert code == 1 and problem in err and err.count("\n") == 1
    code, _, err = cli(capsys, "--data-dir", data_dir, "enroll", "Bob", "x.jpg", "--badge", name[:65])
    assert code == 1 and "a badge" in err and err.count("\n") == 1
    assert file_bytes(database_path(data_dir)) == before
    conn = open_database(database_path(data_dir))
    with pytest.raises(GalleryError, match="a person's name"):
        Gallery(conn).add_person(name)
    conn.close()


def test_names_are_stored_in_one_normal_form(data_dir):
    conn = open_database(database_path(data_dir))
    gallery = Gallery(conn)
    assert gallery.add_person("Ame\u0301lie").name == "Am\u00e9lie"
    with pytest.raises(GalleryError, match="already exists"):
        gallery.add_person("AM\u00c9LIE")
    conn.close()


def test_names_from_before_the_checks_print_harmlessly_and_can_be_removed(data_dir, capsys):
    raw = sqlite3.connect(database_path(data_dir))
    raw.execute("INSERT INTO person (name, name_key, created) VALUES (?, ?, '2024-01-01T00:00:00.000Z')",
                ("\x1b[2KEve", "\x1b[2keve"))
    raw.commit()
    raw.close()
    code, out, _ = cli(capsys, "--data-dir", data_dir, "people")
    assert code == 0 and "\x1b" not in out and "\\x1b[2KEve" in out
    code, _, err = cli(capsys, "--data-dir", data_dir, "people", "remove", "\x1b[2KEve")
    assert code == 0, err
