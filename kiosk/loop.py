"""The kiosk loop, one for the kiosk window and for ``face-kiosk-admin run --headless``:
camera -> KioskRunner (faces, matches, policy, access log, door) -> operator log and events out,
every part built from the kiosk's settings, so that each setting means the same in both.

    loop = KioskLoop(camera, engine, conn, data_dir, settings, events=open_events(settings, data_dir))
    loop.start()                      # events out, the access log's chain check, the retention purge
    for result in loop.results():     # each decision logged (and its door opened) by the runner,
        show(result)                  # then written to the operator's log and published here
    loop.apply(pending)               # settings saved or a camera chosen meanwhile (between frames)
    loop.close()

What the settings decide here: the risk (the door's rule), liveness, the door action and its
timeout, face thumbnails in the access log, the analysis rates (real-time sources only: a file
read frame by frame is analysed whole), the retention purge, and where events go (MQTT, webhook,
the door's id). The caller only shows what happens: the window draws it, `run --headless` prints
it. Use a KioskLoop on one thread, the one that owns `conn`.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from kiosk.accesslog import AccessLog
from kiosk.calibration import DoorRule
from kiosk.camera import Camera
from kiosk.engine import RiskEngine
from kiosk.events import EventPublisher, check_door_id, default_door_id
from kiosk.gallery import Gallery
from kiosk.live_settings import (
    Applied,
    LiveSettings,
    Pending,
    door_from_settings,
    liveness_from_settings,
    pace_from_settings,
)
from kiosk.outbox import FILE_NAME, Outbox
from kiosk.policy import RATE_LIMITED, DecisionPolicy
from kiosk.retention import RetentionPurge
from kiosk.runner import FrameResult, KioskRunner
from kiosk.settings import KioskSettings

log = logging.getLogger(__name__)


def open_events(settings: KioskSettings, data_dir: str | os.PathLike) -> EventPublisher | None:
    """The publisher for the settings' MQTT broker and webhook (None without either); its outbox
    lives in the data directory. ValueError for an unusable URL or door id."""
    if not (settings.mqtt or settings.webhook):
        return None
    door = check_door_id(settings.door_id or default_door_id())
    destinations = []
    if settings.mqtt:
        from kiosk.mqtt_events import MqttDestination  # paho-mqtt: only when used

        destinations.append(MqttDestination(settings.mqtt, door, prefix=settings.mqtt_prefix,
                                            ca_file=settings.mqtt_ca or None))
    if settings.webhook:
        from kiosk.webhook import WebhookDestination

        destinations.append(WebhookDestination(settings.webhook))
    return EventPublisher(Outbox(Path(data_dir) / FILE_NAME), door, destinations)


class KioskLoop:
    """The runner, its settings and what leaves the kiosk after each decision."""

    def __init__(
        self,
        camera: Camera,
        engine,  # kiosk.engine.FaceEngine
        conn: sqlite3.Connection,
        data_dir: str | os.PathLike,
        settings: KioskSettings,
        *,
        events: EventPublisher | None = None,
        on_door_outcome: Callable[[int, str], None] | None = None,
        open_database: Callable[[], sqlite3.Connection] | None = None,
    ) -> None:
        """GalleryError when the enrolled faces are from another model. `open_database`: how the
        hourly retention purge opens its own connection (default: the data directory's file)."""
        self._conn = conn
        self.events = events
        self._retention = RetentionPurge(data_dir, opener=open_database)
        self.runner = KioskRunner(
            camera, RiskEngine(engine, settings.risk), Gallery(conn), AccessLog(conn),
            DecisionPolicy(liveness=liveness_from_settings(settings)), door_from_settings(settings),
            thumbnails=settings.store_thumbnails, denied_thumbnails=settings.denied_thumbnails,
            on_door_outcome=on_door_outcome,
            # A file read frame by frame has no pace to keep: every frame is analysed.
            pace=pace_from_settings(settings) if camera.realtime else None,
        )
        self._live = LiveSettings(self.runner, settings, conn)
        if events is not None:
            camera.watch(events.camera)

    @property
    def settings(self) -> KioskSettings:
        return self._live.settings

    @property
    def rule(self) -> DoorRule:
        """The door's rule in force now, for the gallery as it is now."""
        return self._live.rule

    def start(self) -> int:
        """Start sending events (a broken access-log chain is the first: a tamper finding) and the
        retention purge; returns the access events purged now."""
        if self.events is not None:
            self.events.start()
            first = AccessLog(self._conn).verify().first
            if first is not None:
                detail = f"access log chain broken at entry {first.seq} (event {first.event_id}): {first.problem}"
                log.warning("tamper: %s", detail)
                self.events.tamper("access_log_chain", detail)
        return self._retention.start(self._conn)

    def results(self, every_frame: bool = False, newer_than: int = -1) -> Iterator[FrameResult]:
        """KioskRunner.run(), each decision written to the operator's log and published before
        it is yielded."""
        frames = self.runner.run(every_frame, newer_than)
        try:
            for result in frames:
                if result.decision is not None:
                    self._record(result)
                yield result
        finally:
            frames.close()

    def apply(self, pending: Pending) -> Applied:
        """Settings saved or a camera chosen meanwhile; call between frames (see LiveSettings).
        Events settings take effect at the next start."""
        applied = self._live.apply(pending)
        if applied.camera is not None and self.events is not None:
            applied.camera.watch(self.events.camera)
        return applied

    def close(self, drain_s: float = 5.0) -> None:
        """Stop the purge and the events (given `drain_s` seconds to deliver what is queued)."""
        self._retention.stop()
        if self.events is not None:
            self.runner.camera.watch(None)  # a state change from now on has no outbox to go to
            self.events.close(drain_s)

    def _record(self, result: FrameResult) -> None:
        """One line in the operator's log per decision (the name stays in the access log, erasable
        there), and the events."""
        decision = result.decision
        log.info("access %s (%s), event %d", decision.decision, decision.reason, result.event.id)
        locked = decision.reason == RATE_LIMITED
        if locked:
            log.warning("recognition locked out for %.0f s after repeated denials", result.locked_s)
        if self.events is not None:
            self.events.access(decision, result.event)
            if locked:
                self.events.lockout(result.locked_s, result.event.id)
