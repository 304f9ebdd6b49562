"""SIGKILL at random moments while the kiosk writes: nothing it reported committed may be lost.

A writer process (writer.py) enrols people, logs access events, saves the settings or sets the
admin PIN in a loop and prints each write once it is committed. The parent kills it with
SIGKILL after a random delay, checks the database file after every kill and, at the end,
that every reported write is present and intact.
"""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import Child, Verdict, check_events, check_people, integrity_check, log_verify
from .writer import pin_for, settings_for

MAX_DELAY_S = 0.3  # kills land anywhere in the first 0.3 s of writing (hundreds of commits)


@dataclass
class KillFigures:
    mode: str
    kills: int = 0
    committed: int = 0  # writes the killed processes reported committed
    verdict: Verdict = field(default_factory=Verdict)
    integrity_failures: int = 0  # kills after which PRAGMA integrity_check was not "ok"
    leftover_temp_files: int = 0  # atomic-write temporaries a kill left in the data folder
    log_verify: str = ""  # `python -m kiosk log verify` after the log kills: "ok" or "FAILED: ..."

    @property
    def lost(self) -> int:
        return self.verdict.lost

    def to_dict(self) -> dict:
        return {"mode": self.mode, "kills": self.kills, "committed": self.committed,
                "checked": self.verdict.checked, "lost": self.verdict.lost,
                "committed_unreported": self.verdict.extra, "orphan_people": self.verdict.orphans,
                "partial_people": self.verdict.partial, "integrity_failures": self.integrity_failures,
                "leftover_temp_files": self.leftover_temp_files, "log_verify": self.log_verify,
                "problems": self.verdict.problems[:20]}


def _kill_one(mode: str, data_dir: Path, tag: str, rng: np.random.Generator, after_a_commit: bool = False) -> Child:
    """Start a writer and kill it at a random moment of its first MAX_DELAY_S of writing (counted
    from its first reported commit when `after_a_commit`)."""
    child = Child.writer(mode, data_dir, tag)
    if not child.wait_ready():
        child.finish()
        raise RuntimeError(f"writer {mode} did not start: {child.stderr.strip()[-500:]}")
    if after_a_commit and not child.wait_for_line(f"committed {mode}"):
        child.process.kill()  # may still be alive after the wait
        child.finish()
        raise RuntimeError(f"writer {mode} reported no commit: {child.stderr.strip()[-500:]}")
    time.sleep(float(rng.uniform(0, MAX_DELAY_S)))
    os.kill(child.process.pid, signal.SIGKILL)
    code = child.finish()
    if code != -signal.SIGKILL:  # it must have died by our hand, not by its own error
        raise RuntimeError(f"writer {mode} exited with {code} before the kill: {child.stderr.strip()[-500:]}")
    return child


def kill_database_writer(mode: str, data_dir: Path, kills: int, seed: int) -> KillFigures:
    """`mode` "enroll" or "log": kill the writer `kills` times, then check every reported write."""
    rng = np.random.default_rng(seed)
    figures = KillFigures(mode)
    db = data_dir / "kiosk.db"
    reported: list[tuple[int, str]] = []
    tags = []
    for k in range(kills):
        tag = f"k{seed}r{k:03d}"
        tags.append(tag)
        child = _kill_one(mode, data_dir, tag, rng)
        reported += child.committed("person" if mode == "enroll" else "event")
        figures.kills += 1
        if db.exists() and integrity_check(db) != "ok":
            figures.integrity_failures += 1
    figures.committed = len(reported)
    if mode == "enroll":
        figures.verdict = check_people(data_dir, reported, tuple(tags))
    else:
        figures.verdict = check_events(data_dir, reported)
        ok, output = log_verify(data_dir)
        figures.log_verify = "ok" if ok else f"FAILED: {output[-300:]}"
        if not ok:
            figures.verdict.problems.append(f"log verify failed: {output[-300:]}")
    if integrity_check(db) != "ok":
        figures.integrity_failures += 1
    figures.leftover_temp_files = _temp_files(data_dir)
    return figures


def kill_file_writer(mode: str, data_dir: Path, kills: int, seed: int) -> KillFigures:
    """`mode` "settings" or "pin": after each kill the file holds the last reported write or the next."""
    rng = np.random.default_rng(seed)
    figures = KillFigures(mode)
    previous: int | None = None  # the step the file held after the last kill (None: no file yet)
    for k in range(kills):
        # A PIN write hashes slowly: on a loaded machine every kill could land before the first
        # commit and leave nothing to check, so the first kill waits for one.
        child = _kill_one(mode, data_dir, f"k{seed}r{k:03d}", rng, after_a_commit=k == 0)
        steps = [int(line.split()[2]) for line in child.lines if line.startswith(f"committed {mode} ")]
        figures.kills += 1
        figures.committed += len(steps)
        figures.verdict.checked += 1 if steps else 0
        # Each writer counts from 0 again: the file holds its last reported step or the one after
        # it; with nothing reported, what was there before or step 0.
        allowed = {steps[-1], steps[-1] + 1} if steps else {previous, 0}
        found, problem = (_settings_step if mode == "settings" else _pin_step)(data_dir, allowed)
        if problem:
            figures.verdict.lost += 1
            figures.verdict.problems.append(f"{mode} after kill {k}: {problem}")
        previous = found
    figures.leftover_temp_files = _temp_files(data_dir)
    return figures


def _settings_step(data_dir: Path, allowed: set[int | None]) -> tuple[int | None, str | None]:
    """(the step settings.json holds, None) or (None, what is wrong with it)."""
    from kiosk.settings import KioskSettings, settings_path

    path = settings_path(data_dir)
    if not path.exists():
        return None, None if None in allowed else "settings.json is gone"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return None, f"settings.json is not JSON: {exc}"
    for step in allowed - {None}:
        if raw == settings_for(step).to_dict():
            if KioskSettings.load(data_dir) != settings_for(step):
                return None, "KioskSettings.load() differs from the file"
            return step, None
    return None, f"{raw} is none of steps {sorted(s for s in allowed if s is not None)}"


def _pin_step(data_dir: Path, allowed: set[int | None]) -> tuple[int | None, str | None]:
    """(the step whose PIN admin.json verifies, None) or (None, what is wrong)."""
    from kiosk.admin_secret import AdminSecret

    secret = AdminSecret(data_dir)
    if not secret.is_set():  # is_set() raises on a half-written file
        return None, None if None in allowed else "admin.json is gone"
    for step in sorted((s for s in allowed if s is not None), reverse=True):  # at most one wrong try
        if secret.verify(pin_for(step)):
            return step, None
    return None, f"none of steps {sorted(s for s in allowed if s is not None)} verifies"


def _temp_files(data_dir: Path) -> int:
    return sum(1 for p in data_dir.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))
