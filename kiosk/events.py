"""Events out of the kiosk: access decisions, lockouts, camera states and tamper findings, as JSON,
to MQTT (kiosk.mqtt_events) and webhooks (kiosk.webhook) through the persistent outbox.

    publisher = EventPublisher(Outbox(data_dir / "outbox.sqlite"), door="front", destinations=[...])
    publisher.start()
    publisher.access(decision, event)       # the kiosk loop, after the event is in the access log
    publisher.camera(state, message)        # the camera's on_state, on its reader thread
    publisher.close(drain_s=5)              # what is not delivered by then waits in the outbox

Every event is one JSON object: {"id": 32 hex digits, "type": "access" | "lockout" | "camera" |
"tamper", "time": ISO 8601 UTC, "door": the door's id, ...}; the fields per type are in
docs/events.md. Face thumbnails never leave the kiosk: no event carries one.

Each destination has its own thread that takes its oldest row from the outbox, sends it, and
deletes it once acknowledged; a failure is retried after a pause that doubles up to a minute, so
events go out in order and none is lost while a broker or receiver is down.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from kiosk.outbox import Outbox, Pending

log = logging.getLogger(__name__)

ACCESS, LOCKOUT, CAMERA, TAMPER = "access", "lockout", "camera", "tamper"
TYPES = (ACCESS, LOCKOUT, CAMERA, TAMPER)
DOOR_ID = re.compile(r"[a-z0-9_-]{1,64}")
FIRST_RETRY_S = 1.0
LAST_RETRY_S = 60.0


def check_door_id(door: str) -> str:
    """A door id names MQTT topics and Home Assistant entities: lower-case letters, digits, - and _."""
    if not DOOR_ID.fullmatch(door):
        raise ValueError(f"the door id must be 1 to 64 of a-z, 0-9, - and _, got {door!r}")
    return door


def default_door_id() -> str:
    """The machine's name, made a valid door id."""
    name = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().split(".")[0].lower()).strip("-")[:64]
    return name or "door"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Destination:
    """Where events go. A subclass turns an event into the texts it queues (messages()) and sends
    one such text (send(): True once the far end has acknowledged it)."""

    name = "destination"

    def __init__(self, first_retry_s: float = FIRST_RETRY_S, last_retry_s: float = LAST_RETRY_S) -> None:
        self.first_retry_s = first_retry_s
        self.last_retry_s = last_retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outbox: Outbox | None = None
        self.problem = ""  # what went wrong with the last send, for the log

    def messages(self, event: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def send(self, body: str) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def open(self) -> None:
        """Start connecting (before the thread starts sending)."""

    def shut(self) -> None:
        """Let go of the connection (after the thread has stopped)."""

    def start(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.open()
        self._thread = threading.Thread(target=self._deliver, name=f"events to {self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._outbox is not None:
            self._outbox.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self.shut()

    def _deliver(self) -> None:
        delay, failing = self.first_retry_s, False
        while not self._stop.is_set():
            pending: Pending | None = self._outbox.next(self.name, timeout=1.0)
            if pending is None:
                continue
            try:
                sent = self.send(pending.body)
            except Exception:  # a destination's bug must not end delivery for good
                log.exception("sending an event to %s failed", self.describe())
                sent = False
            if sent:
                self._outbox.done(pending)
                if failing:
                    log.info("%s reachable again; %d events still queued", self.describe(),
                             self._outbox.count(self.name))
                delay, failing = self.first_retry_s, False
                continue
            if not failing:
                log.warning("%s unreachable (%s); events wait in the outbox, retrying", self.describe(),
                            self.problem or "no answer")
                failing = True
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.last_retry_s)


class EventPublisher:
    """Builds the events and queues each for every destination."""

    def __init__(self, outbox: Outbox, door: str, destinations: list[Destination]) -> None:
        self.outbox = outbox
        self.door = check_door_id(door)
        self.destinations = list(destinations)

    def start(self) -> EventPublisher:
        for destination in self.destinations:
            destination.start(self.outbox)
        return self

    def publish(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Queue one event of type `kind` for every destination; returns it."""
        if kind not in TYPES:
            raise ValueError(f"unknown event type {kind!r}")
        event = {"id": uuid.uuid4().hex, "type": kind, "time": now(), "door": self.door, **fields}
        self.outbox.add((d.name, body) for d in self.destinations for body in d.messages(event))
        detail = fields.get("decision") or fields.get("state") or fields.get("finding") or ""
        log.info("event %s %s queued for %s", kind, detail, ", ".join(d.describe() for d in self.destinations))
        return event

    def access(self, decision, event) -> dict[str, Any]:
        """An access decision (kiosk.policy.Decision) and its access-log entry (kiosk.accesslog.AccessEvent)."""
        return self.publish(ACCESS, decision=decision.decision, reason=decision.reason, name=decision.name,
                            person_id=decision.person_id, score=_number(decision.score),
                            liveness=decision.liveness, event_id=event.id, camera=event.camera)

    def lockout(self, seconds: float, event_id: int | None) -> dict[str, Any]:
        """Recognition paused for `seconds` after too many denials."""
        return self.publish(LOCKOUT, seconds=round(float(seconds), 1), event_id=event_id)

    def camera(self, state, message: str) -> dict[str, Any]:
        """A camera state change (kiosk.camera.CameraState): live, reconnecting, ended, stopped."""
        return self.publish(CAMERA, state=getattr(state, "value", str(state)), message=message)

    def tamper(self, finding: str, detail: str) -> dict[str, Any]:
        """A tamper finding, e.g. finding "access_log_chain" when the access log's chain is broken."""
        return self.publish(TAMPER, finding=finding, detail=detail)

    def close(self, drain_s: float = 5.0) -> int:
        """Give the destinations up to `drain_s` s to deliver what is queued, then stop them;
        returns how many messages wait in the outbox for the next start."""
        deadline = threading.Event()
        waited = 0.0
        while self.outbox.count() and waited < drain_s:
            deadline.wait(0.1)
            waited += 0.1
        for destination in self.destinations:
            destination.stop()
        left = self.outbox.count()
        if left:
            log.warning("%d event messages not delivered yet; they are sent on the next start", left)
        self.outbox.close()
        return left


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 4) if value == value and abs(value) != float("inf") else None


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
