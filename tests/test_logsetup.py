"""The operator's log: --log-level, a time-stamped rotating file in the data directory, JSON lines,
plain stderr under a service manager; INFO records of the kiosk's modules (database migrations,
camera states, door outcomes, the screen's start-up) reach it. Real commands, a real video file
as a camera, a real door command."""
from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

from kiosk import logsetup
from kiosk.app import main as screen_main
from kiosk.camera import Camera
from kiosk.cli import main as cli_main
from kiosk.door import DoorAction
from tests.videos import write_video

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_a_command_logs_info_with_time_stamps_to_a_private_file_in_the_data_directory(tmp_path, capsys):
    assert cli_main(["--data-dir", str(tmp_path), "people"]) == 0
    log_file = tmp_path / logsetup.LOG_FILE_NAME
    migrated = [line for line in lines(log_file) if "migrated schema" in line]
    assert migrated and all(re.match(STAMP + r" INFO    kiosk\.database: .+ to version \d+$", line) for line in migrated)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600  # door events name people
    assert capsys.readouterr().err == ""  # a terminal sees warnings and errors only


def test_log_level_json_lines_and_an_explicit_file(tmp_path, capsys):
    quiet = tmp_path / "quiet.log"
    assert cli_main(["--data-dir", str(tmp_path / "a"), "people", "--log-level", "WARNING", "--log-file", str(quiet)]) == 0
    assert lines(quiet) == []  # the migrations were INFO
    assert not (tmp_path / "a" / logsetup.LOG_FILE_NAME).exists()

    as_json = tmp_path / "json.log"
    assert cli_main(["--log-json", "--log-file", str(as_json), "--data-dir", str(tmp_path / "b"), "people"]) == 0
    entries = [json.loads(line) for line in lines(as_json)]
    assert entries and all(set(e) == {"time", "level", "logger", "message"} for e in entries)
    assert re.fullmatch(STAMP, entries[0]["time"]) and entries[0]["level"] == "INFO"
    assert any(e["logger"] == "kiosk.database" and "migrated schema" in e["message"] for e in entries)

    assert cli_main(["--data-dir", str(tmp_path / "c"), "people", "--log-file", "off"]) == 0
    assert not (tmp_path / "c" / logsetup.LOG_FILE_NAME).exists()


def test_an_unwritable_log_file_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert cli_main(["--data-dir", str(tmp_path), "people", "--log-file", str(tmp_path / "a-file" / "k.log")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write the log file ") and err.count("\n") == 1, err


def test_errors_reach_the_file_once_and_stderr_once(tmp_path, capsys):
    log_file = tmp_path / "k.log"
    assert cli_main(["--data-dir", str(tmp_path), "--log-file", str(log_file), "people", "rename", "A", "B"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert [line for line in lines(log_file) if " ERROR " in line][0].endswith("kiosk.cli: " + err[len("error: "):-1])


def test_under_a_service_manager_stderr_carries_every_record_without_time_stamps(tmp_path):
    env = {**os.environ, "INVOCATION_ID": "0123456789abcdef"}
    done = subprocess.run([sys.executable, "-m", "kiosk", "--data-dir", str(tmp_path), "people"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    records = [line for line in done.stderr.splitlines() if "kiosk.database" in line]
    assert records and all(line.startswith("INFO    kiosk.database: ") for line in records)
    assert not (tmp_path / logsetup.LOG_FILE_NAME).exists()  # the journal keeps the log


def test_the_file_rotates(tmp_path):
    log_file = tmp_path / "k.log"
    logsetup.configure("info", log_file, max_bytes=2000)
    for i in range(200):
        logging.getLogger("kiosk.test").info("line %d of the rotation test", i)
    logsetup.reset()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["k.log", *(f"k.log.{i}" for i in range(1, logsetup.BACKUPS + 1))]
    assert all((tmp_path / name).stat().st_size <= 2000 for name in files)
    assert all(stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600 for name in files)
    assert lines(log_file)[-1].endswith("line 199 of the rotation test")


def test_camera_states_and_door_outcomes_reach_the_file(tmp_path):
    log_file = tmp_path / "k.log"
    logsetup.configure("info", log_file)
    video = write_video(tmp_path / "door.avi", [np.full((120, 160, 3), 90, np.uint8)] * 3)
    camera = Camera(str(video), realtime=False).start()
    list(camera.frames())
    camera.stop()
    door = DoorAction(command=[sys.executable, "-c", "pass"])
    door.trigger(7, "Ada")
    assert door.wait(30)
    logsetup.reset()
    text = log_file.read_text()
    assert re.search(STAMP + r" INFO    kiosk\.camera: playing video door\.avi", text), text
    assert re.search(STAMP + r" INFO    kiosk\.door: door for event 7: ok", text), text


def test_the_screen_logs_its_start_and_why_it_could_not(qtbot, tmp_path, capsys):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from kiosk.ui.startup_problem import StartupProblemWindow

    def close_the_problem_window() -> None:  # shown in the window (no terminal at boot); closed as a person would
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, StartupProblemWindow) and widget.isVisible():
                widget.close()

    log_file = tmp_path / "k.log"
    QTimer.singleShot(0, close_the_problem_window)
    assert screen_main(["--camera", str(tmp_path / "missing.avi"), "--log-file", str(log_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("face-kiosk: error: ") and err.count("\n") == 1, err
    text = log_file.read_text()
    assert re.search(STAMP + r" INFO    kiosk\.app: face-kiosk \S+ starting", text), text
    assert re.search(STAMP + r" ERROR   kiosk\.app: cannot start: .*missing\.avi", text), text


def test_a_log_file_on_a_full_disk_costs_one_warning_line_not_a_traceback(capfd):
    # /dev/full refuses every write with ENOSPC, as the data directory's disk does when full.
    handler = logsetup.PrivateRotatingFileHandler(Path("/dev/full"), max_bytes=0)
    logger = logging.getLogger("kiosk.test.fulldisk")
    logger.addHandler(handler)
    try:
        for n in range(3):
            logger.error("decision %d", n)
    finally:
        logger.removeHandler(handler)
        handler.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err
    assert err.count("warning: cannot write the log file /dev/full") == 1, err
