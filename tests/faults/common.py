"""What the fault loops share: child processes, and the checks that nothing was lost."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .writer import expected_event, expected_person

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("writer.py")


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.update(extra)
    return env


def kiosk_cli(*args: object, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`python -m kiosk ARGS` as a real process (its exit status, stdout and stderr)."""
    return subprocess.run([sys.executable, "-m", "kiosk", *map(str, args)], check=False, capture_output=True, text=True,
                          timeout=timeout, env=child_env(), cwd=ROOT)


def traceback_in(text: str) -> bool:
    return "Traceback (most recent call last)" in text


class Child:
    """A process whose stdout lines are collected on a thread (so a full pipe never blocks it)."""

    def __init__(self, argv: list[str], **kwargs) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=kwargs.pop("env", child_env()), cwd=ROOT, **kwargs)
        self.lines: list[str] = []
        self.stderr = ""
        self._ready = threading.Event()
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    @classmethod
    def writer(cls, *args: object) -> Child:
        return cls([sys.executable, str(WRITER), *map(str, args)])

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("ready"):
                self._ready.set()
        self._ready.set()  # ended without "ready": do not wait for it any longer

    def _read_stderr(self) -> None:
        self.stderr = self.process.stderr.read()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        return self._ready.wait(timeout) and self.process.poll() is None

    def wait_for_line(self, prefix: str, timeout: float = 60.0) -> bool:
        """Whether a stdout line starting with `prefix` came before the timeout (or the exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(prefix) for line in list(self.lines)):
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def finish(self, timeout: float = 120.0) -> int:
        """Wait for the exit and for all output; the exit status."""
        code = self.process.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    def committed(self, kind: str) -> list[tuple[int, str]]:
        """(id, key) of every `committed KIND ID KEY` line."""
        found = []
        for line in self.lines:
            parts = line.split()
            if len(parts) == 4 and parts[:2] == ["committed", kind]:
                found.append((int(parts[2]), parts[3]))
        return found


def dump(data_dir: Path) -> dict[str, list]:
    """Every row of every table (empty when there is no database yet)."""
    path = data_dir / "kiosk.db"
    if not path.exists():
        return {}
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    finally:
        conn.close()



# -- checks ---------------------------------------------------------------------------


def integrity_check(db_path: Path) -> str:
    """SQLite's own verdict on the file ("ok" when sound), from a fresh plain connection."""
    conn = sqlite3.connect(db_path)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


@dataclass
class Verdict:
    """What a check of committed writes found. `lost` must stay 0."""

    checked: int = 0  # reported-committed writes checked
    lost: int = 0  # reported committed, then missing or different
    extra: int = 0  # committed but never reported (killed between COMMIT and print): fine
    orphans: int = 0  # people with no template (all-or-nothing enrolment broken)
    partial: int = 0  # people with some but not all of their templates
    problems: list[str] = field(default_factory=list)

    def add(self, other: Verdict) -> Verdict:
        return Verdict(self.checked + other.checked, self.lost + other.lost, self.extra + other.extra,
                       self.orphans + other.orphans, self.partial + other.partial,
                       self.problems + other.problems)


def check_people(data_dir: Path, reported: list[tuple[int, str]], prefixes: tuple[str, ...]) -> Verdict:
    """Every reported person is there with exactly their templates; no one under `prefixes` is half there."""
    from kiosk.database import database_path, open_database
    from kiosk.gallery import Gallery

    verdict = Verdict()
    conn = open_database(database_path(data_dir))  # must open normally
    try:
        gallery = Gallery(conn)
        by_name = {p.name: p for p in gallery.people()}
        for person_id, name in reported:
            verdict.checked += 1
            person = by_name.get(name)
            problem = None if person is not None else "missing"
            if person is not None:
                problem = _person_problem(gallery, person, person_id)
            if problem:
                verdict.lost += 1
                verdict.problems.append(f"person {name}: {problem}")
        names = {name for _, name in reported}
        for person in by_name.values():
            if not person.name.startswith(prefixes) or person.name in names:
                continue
            expected = len(expected_person(person.name).embeddings)
            if person.template_count == 0:
                verdict.orphans += 1
                verdict.problems.append(f"person {person.name}: enrolled without templates")
            elif person.template_count != expected:
                verdict.partial += 1
                verdict.problems.append(f"person {person.name}: {person.template_count} of {expected} templates")
            elif _person_problem(gallery, person, person.id) is None:
                verdict.extra += 1
    finally:
        conn.close()
    return verdict


def _person_problem(gallery, person, person_id: int) -> str | None:
    expected = expected_person(person.name)
    if person.id != person_id:
        return f"id {person.id}, reported {person_id}"
    if person.external_id != expected.badge:
        return f"badge {person.external_id!r}"
    templates = gallery.templates(person)
    if len(templates) != len(expected.embeddings):
        return f"{len(templates)} templates, expected {len(expected.embeddings)}"
    for template, embedding, source, thumbnail in zip(templates, expected.embeddings, expected.sources,
                                                      expected.thumbnails):
        if not np.array_equal(np.asarray(template.embedding, np.float32), embedding):
            return f"template {template.id}: embedding differs"
        if template.source != source or gallery.thumbnail(template.id) != thumbnail:
            return f"template {template.id}: source or thumbnail differs"
    return None


def check_events(data_dir: Path, reported: list[tuple[int, str]], camera_prefix: str = "fault ") -> Verdict:
    """Every reported access event is there, field for field, thumbnail included."""
    from kiosk.accesslog import AccessLog
    from kiosk.database import database_path, open_database

    verdict = Verdict()
    conn = open_database(database_path(data_dir))
    try:
        access_log = AccessLog(conn)
        events = {e.id: e for e in access_log.query(newest_first=False)}
        for event_id, key in reported:
            verdict.checked += 1
            problem = _event_problem(access_log, events.get(event_id), key)
            if problem:
                verdict.lost += 1
                verdict.problems.append(f"event {event_id} {key}: {problem}")
        keys = {key for _, key in reported}
        verdict.extra = sum(1 for e in events.values() if e.camera.startswith(camera_prefix) and e.name not in keys)
    finally:
        conn.close()
    return verdict


def _event_problem(access_log, event, key: str) -> str | None:
    if event is None:
        return "missing"
    expected = expected_event(key)
    got = (event.camera, event.decision, event.reason, event.name, event.score)
    want = (expected.camera, expected.decision, expected.reason, expected.name, expected.score)
    if got != want:
        return f"{got} != {want}"
    if access_log.thumbnail(event.id) != expected.thumbnail:
        return "thumbnail differs"
    return None


# -- the access log's hash chain -------------------------------------------------------------


def log_verify(data_dir: Path) -> tuple[bool, str]:
    """(ok, output) of `python -m kiosk log verify` on `data_dir`."""
    result = kiosk_cli("--data-dir", data_dir, "log", "verify", timeout=300)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def rss_mb() -> float:
    """Resident memory of this process now (Linux), in MB."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
