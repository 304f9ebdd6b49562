"""Settings changed while the kiosk runs, applied on the recognition thread between frames.

The recognition thread owns the SQLite connection and runs TensorFlow, so the GUI thread
never calls into it. When the admin saves settings, the GUI thread puts them (and a camera
it has opened for a changed source) into a SettingsMailbox; the recognition loop takes
what is there between two frames and applies it to its KioskRunner with LiveSettings.apply:

- risk (visitors per stranger let in) -> the runner's RiskEngine (kiosk.calibration's door rule);
- door command / URL / timeout -> a new DoorAction (None when unusable, with a logged error);
- thumbnails on/off (every event, or denials only) -> the runner;
- liveness on/off -> the policy's LivenessGate (the visit in progress starts afresh);
- analysed frames a second -> the runner's AnalysisPace;
- retention -> purged at once on the thread's own connection;
- camera -> the runner reads the new camera (the caller restarts its frame loop).

Sound, the mirrored preview and the admin timeout are GUI-side and applied there; where events
go (MQTT, webhook, door id) is read at start (kiosk.loop).
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass

from kiosk.accesslog import AccessLog
from kiosk.calibration import DoorRule, risk_words
from kiosk.camera import Camera
from kiosk.door import DoorAction
from kiosk.liveness import LivenessGate
from kiosk.pacing import AnalysisPace
from kiosk.settings import KioskSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pending:
    """What the GUI thread handed over since the last take(); None: unchanged."""

    settings: KioskSettings | None = None
    camera: Camera | None = None

    def __bool__(self) -> bool:
        return self.settings is not None or self.camera is not None


class SettingsMailbox:
    """A newest-wins handoff between threads: put from any thread, take on the recognition thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = Pending()

    def put_settings(self, settings: KioskSettings) -> None:
        with self._cond:
            self._pending = Pending(settings, self._pending.camera)
            self._cond.notify_all()

    def put_camera(self, camera: Camera) -> None:
        with self._cond:
            self._pending = Pending(self._pending.settings, camera)
            self._cond.notify_all()

    def take(self) -> Pending:
        """Everything handed over so far (and empty the mailbox); never waits."""
        with self._cond:
            pending, self._pending = self._pending, Pending()
            return pending

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for something to take; True when there is."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._pending), timeout)


def door_from_settings(settings: KioskSettings) -> DoorAction | None:
    """The door action the settings describe; None for none, or (logged) for an unusable one."""
    try:
        return DoorAction.from_config(settings.door_command, settings.door_url, settings.door_timeout_s)
    except ValueError as exc:
        log.error("door action not usable (%s); the door will not be opened", exc)
        return None


def pace_from_settings(settings: KioskSettings) -> AnalysisPace:
    return AnalysisPace(settings.analysis_fps, settings.idle_analysis_fps)


def liveness_from_settings(settings: KioskSettings) -> LivenessGate | None:
    """The liveness gate every grant must pass, unless an admin switched it off."""
    return LivenessGate() if settings.liveness else None


@dataclass(frozen=True)
class Applied:
    """What one LiveSettings.apply did."""

    settings: KioskSettings  # now in force
    rule: DoorRule  # the door's rule now in force for the gallery
    changes: tuple[str, ...]  # what changed, in words, e.g. "risk 1 in 1,000 visitors", "purged 3 access events"
    camera: Camera | None = None  # the runner's new camera: restart its frame loop


class LiveSettings:
    """The recognition thread's side: holds the settings in force and applies new ones to a runner.

    Use it only on the thread that owns the runner (and `conn`)."""

    def __init__(self, runner, settings: KioskSettings, conn: sqlite3.Connection) -> None:
        """`runner`: a kiosk.runner.KioskRunner whose engine is a kiosk.engine.RiskEngine."""
        self._runner = runner
        self._conn = conn
        self.settings = settings

    @property
    def rule(self) -> DoorRule:
        """The door's rule in force now, for the runner's gallery as it is now."""
        return self._runner.engine.door_rule(*self._runner.gallery.matrix())

    def apply(self, pending: Pending) -> Applied:
        """Apply what `pending` holds (between frames); returns what changed."""
        old, new = self.settings, pending.settings or self.settings
        runner = self._runner
        changes: list[str] = []
        if new.risk != old.risk:
            runner.engine.risk = new.risk
            changes.append(f"risk {risk_words(new.risk)}")
        if (new.door_command, new.door_url, new.door_timeout_s) != (old.door_command, old.door_url,
                                                                     old.door_timeout_s):
            # A door action still in flight finishes on its own thread and reports as before.
            runner.door = door_from_settings(new)
            changes.append(f"door {runner.door.description if runner.door else 'none'}")
        if new.store_thumbnails != old.store_thumbnails:
            runner.thumbnails = new.store_thumbnails
            changes.append(f"thumbnails {'on' if new.store_thumbnails else 'off'}")
        if new.denied_thumbnails != old.denied_thumbnails:
            runner.denied_thumbnails = new.denied_thumbnails
            changes.append(f"thumbnails of denied faces {'on' if new.denied_thumbnails else 'off'}")
        if new.liveness != old.liveness:
            runner.policy.liveness = liveness_from_settings(new)
            runner.policy.reset()  # a challenge half-way through belongs to the old rule
            changes.append(f"liveness {'on' if new.liveness else 'off'}")
        if (new.analysis_fps, new.idle_analysis_fps) != (old.analysis_fps, old.idle_analysis_fps):
            runner.pace = pace_from_settings(new)
            changes.append(runner.pace.describe())
        if new.retention_days != old.retention_days:
            changes.append(self._purge(new.retention_days))
        if pending.camera is not None:
            self._switch_camera(pending.camera)
            changes.append(pending.camera.spec.label)
        self.settings = new
        if changes:
            log.info("settings applied: %s", ", ".join(changes))
        return Applied(new, self.rule, tuple(changes), pending.camera)

    def _purge(self, days: int) -> str:
        if days <= 0:
            return "retention: keep forever"
        try:
            removed = AccessLog(self._conn).purge_older_than(days)
        except Exception:  # a failed purge must not stop recognition; the hourly purge retries
            log.exception("retention purge failed")
            return f"retention {days} days (purge failed)"
        return f"retention {days} days (purged {removed} access event{'s' if removed != 1 else ''})"

    def _switch_camera(self, camera: Camera) -> None:
        runner = self._runner
        runner.camera = camera
        runner.camera_name = camera.spec.label
        runner.policy.reset()  # a new scene: frames from the old camera must not vote
        if runner.pace is not None:
            runner.pace.reset()
        if runner.tracker is not None:
            runner.tracker.reset()  # the last face was in the old camera's picture
