"""Several real processes writing to one data folder at once: none may see "database is locked",
no write may be lost.

- the recogniser: `python -m kiosk run --headless` on a looping video of a face (the loop the
  GUI's recognition worker runs), logging a denial per visit while the gallery changes under it;
- `python -m kiosk enroll` processes enrolling real photos, one after another;
- writer.py processes enrolling people and logging events in bursts.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .common import (
    Child,
    check_events,
    check_people,
    integrity_check,
    kiosk_cli,
    log_verify,
    traceback_in,
)

SIDE = 256


def face_video(path: Path, face: np.ndarray, visits: int, face_frames: int = 6, blank_frames: int = 3,
               fps: float = 10.0) -> Path:
    """visits x (face_frames of the face, moving a little, then blank_frames of grey): one visit each."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (SIDE, SIDE))
    if not writer.isOpened():
        raise RuntimeError("this OpenCV build cannot write MJPG .avi")
    bgr = cv2.cvtColor(cv2.resize(face, (SIDE, SIDE), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    blank = np.full((SIDE, SIDE, 3), 128, np.uint8)
    for _ in range(visits):
        for k in range(face_frames):
            writer.write(np.roll(bgr, k - face_frames // 2, axis=1))  # a person is never perfectly still
        for _ in range(blank_frames):
            writer.write(blank)
    writer.release()
    return path


@dataclass
class ConcurrencyFigures:
    processes: int = 0
    seconds: float = 0.0
    recogniser_events: int = 0
    cli_enrolled: int = 0
    writer_people: int = 0
    writer_events: int = 0
    locked_errors: int = 0  # "database is locked" anywhere a user would see it
    checked: int = 0
    lost: int = 0
    integrity: str = ""
    log_verify: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return self.recogniser_events + self.cli_enrolled + self.writer_people + self.writer_events

    def to_dict(self) -> dict:
        return {**{k: (v[:10] if isinstance(v, list) else v) for k, v in self.__dict__.items()},
                "concurrent_writes": self.writes}


def concurrent_writers(work: Path, face: np.ndarray, face_file: Path, seconds: float = 20.0,
                       cli_enrolls: int = 2, writers: int = 2, pause: float = 0.02) -> ConcurrencyFigures:
    """Run everything at once for about `seconds`, then check every reported write."""
    figures = ConcurrencyFigures()
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    video = face_video(work / "door.avi", face, visits=40)
    started = time.monotonic()
    recogniser = Child([sys.executable, "-m", "kiosk", "--data-dir", str(data_dir), "--json", "run", "--headless",
                        "--camera", str(video), "--loop"])
    # The others start once the recogniser is deciding (TensorFlow takes seconds to load).
    while not recogniser.lines and recogniser.process.poll() is None and time.monotonic() < started + 120:
        time.sleep(0.1)
    live = time.monotonic()
    # The command-line enrolments run one after another, as an administrator would type them.
    cli_results: list = []
    enroller = threading.Thread(target=lambda: cli_results.extend(
        # One face under several names on purpose: --allow-mismatch lets the enrolment through.
        kiosk_cli("--data-dir", data_dir, "enroll", f"Cli Person {k}", face_file, "--allow-mismatch", timeout=600)
        for k in range(cli_enrolls)), daemon=True)
    enroller.start()
    writer_children = []
    for w in range(writers):
        writer_children.append(Child.writer("enroll", data_dir, f"cw{w}", "--seconds", seconds, "--pause", pause * 4))
        writer_children.append(Child.writer("log", data_dir, f"cw{w}", "--seconds", seconds, "--pause", pause))
    children = [recogniser, *writer_children]
    figures.processes = 1 + cli_enrolls + len(writer_children)

    enroller.join(600)
    for child in writer_children:
        if child.finish(timeout=600) != 0:
            figures.problems.append(f"writer exited {child.process.returncode}: {child.stderr.strip()[-300:]}")
    # Stop the recogniser as a service manager would; it must finish the frame and exit 0.
    if recogniser.process.poll() is None:
        recogniser.process.send_signal(signal.SIGTERM)
    if recogniser.finish(timeout=120) != 0:
        figures.problems.append(f"recogniser exited {recogniser.process.returncode}: {recogniser.stderr[-400:]}")
    figures.seconds = round(time.monotonic() - live, 1)

    for result in cli_results:
        if result.returncode == 0:
            figures.cli_enrolled += 1
        else:
            figures.problems.append(f"python -m kiosk enroll: exit {result.returncode}: {result.stderr[-300:]}")
    texts = [c.stderr for c in children] + [r.stderr + r.stdout for r in cli_results]
    figures.locked_errors = sum(text.lower().count("database is locked") for text in texts)
    if any(traceback_in(text) for text in texts):
        figures.problems.append("a traceback in some process's output")

    recognised = [json.loads(line) for line in recogniser.lines if line.startswith("{")]
    figures.recogniser_events = len(recognised)
    people = [pair for c in writer_children for pair in c.committed("person")]
    events = [pair for c in writer_children for pair in c.committed("event")]
    figures.writer_people, figures.writer_events = len(people), len(events)
    verdict = check_people(data_dir, people, tuple(f"cw{w}" for w in range(writers))).add(
        check_events(data_dir, events))
    figures.checked, figures.lost = verdict.checked, verdict.lost
    figures.problems += verdict.problems
    figures.checked += _check_recogniser_events(data_dir, recognised, figures)
    figures.checked += _check_cli_people(data_dir, cli_enrolls, figures)
    figures.integrity = integrity_check(data_dir / "kiosk.db")
    ok, output = log_verify(data_dir)
    figures.log_verify = "ok" if ok else f"FAILED: {output[-300:]}"
    if not ok:
        figures.problems.append(f"log verify: {output[-300:]}")
    return figures


def _check_recogniser_events(data_dir: Path, recognised: list[dict], figures: ConcurrencyFigures) -> int:
    from kiosk.accesslog import AccessLog
    from kiosk.database import database_path, open_database

    conn = open_database(database_path(data_dir))
    try:
        logged = {e.id: e for e in AccessLog(conn).query()}
    finally:
        conn.close()
    for row in recognised:
        event = logged.get(row["event_id"])
        if event is None or event.decision != row["decision"] or event.time != row["time"]:
            figures.lost += 1
            figures.problems.append(f"recogniser event {row['event_id']} missing or changed")
    return len(recognised)


def _check_cli_people(data_dir: Path, count: int, figures: ConcurrencyFigures) -> int:
    from kiosk.database import database_path, open_database
    from kiosk.gallery import Gallery

    conn = open_database(database_path(data_dir))
    try:
        gallery = Gallery(conn)
        for k in range(figures.cli_enrolled):
            person = gallery.find_person(f"Cli Person {k}")
            if person is None or person.template_count != 1:
                figures.lost += 1
                figures.problems.append(f"Cli Person {k} missing or without a template")
    finally:
        conn.close()
    return figures.cli_enrolled
