"""The writer process the fault loops kill, fill up and run side by side.

    python tests/faults/writer.py MODE DATA_DIR TAG [--count N | --seconds S] [--pause S] [--fsize-limit BYTES]

It writes through the kiosk's public API only (Gallery, AccessLog, KioskSettings, AdminSecret)
and prints one line per write *after* it is committed, flushed at once, so that whatever the
parent reads was durable before the process died:

    ready
    committed person 12 run003-p00007     (enroll)
    committed event 345 run003-e00017     (log)
    committed settings 17                 (settings)
    committed pin 17                      (pin)
    failed enroll|log|settings|pin KIND MESSAGE    (fill: a write refused, e.g. disk full)
    done

What each write holds is a pure function of its key (expected_person, expected_event), so the
parent can check every byte of it afterwards. No TensorFlow: the templates are seeded unit
vectors, which is all the database sees of a real enrolment.
"""
from __future__ import annotations

import argparse
import errno
import signal
import sqlite3
import sys
import time
import zlib
from dataclasses import dataclass

import numpy as np

from kiosk.modelcard import ModelCard, default_model_path

# The shipped model's: some fault tests enrol through the real kiosk beside these writers, and a
# gallery holds templates of one size (kiosk.gallery.Gallery.check_dimension).
EMBEDDING_SIZE = ModelCard.load(default_model_path()).embedding_size


@dataclass(frozen=True)
class ExpectedPerson:
    name: str
    badge: str
    embeddings: np.ndarray  # k x EMBEDDING_SIZE float32 unit rows
    qualities: list[float]
    sources: list[str]
    thumbnails: list[bytes]


@dataclass(frozen=True)
class ExpectedEvent:
    camera: str
    decision: str
    reason: str
    name: str
    score: float
    thumbnail: bytes | None


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(key.encode()))


def expected_person(name: str) -> ExpectedPerson:
    """The person enrolled under `name`: 1 to 3 templates, each with a thumbnail."""
    rng = _rng(name)
    count = 1 + int(rng.integers(0, 3))
    vectors = rng.standard_normal((count, EMBEDDING_SIZE)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ExpectedPerson(
        name=name,
        badge=f"badge-{name}",
        embeddings=vectors,
        qualities=[round(float(q), 4) for q in rng.uniform(0.9, 1.0, count)],
        sources=[f"{name}-{k}.jpg" for k in range(count)],
        thumbnails=[rng.bytes(int(rng.integers(1500, 4000))) for _ in range(count)],
    )


def expected_event(key: str) -> ExpectedEvent:
    """The access event logged under `key` (its name); every fourth carries a thumbnail."""
    rng = _rng(key)
    granted = bool(rng.integers(0, 2))
    return ExpectedEvent(
        camera=f"fault {key.split('-')[0]}",
        decision="granted" if granted else "denied",
        reason="match" if granted else "unknown",
        name=key,
        score=round(float(rng.uniform(-1, 1)), 4),
        thumbnail=rng.bytes(int(rng.integers(1000, 3000))) if rng.integers(0, 4) == 0 else None,
    )


def settings_for(i: int):
    """The settings saved at step i (retention_days identifies the step)."""
    from kiosk.settings import MAX_RETENTION_DAYS, KioskSettings

    return KioskSettings(camera=f"camera-{i}", retention_days=1 + i % MAX_RETENTION_DAYS, sound=i % 2 == 0)


def pin_for(i: int) -> str:
    return f"{i:06d}"


# -- one write of each kind ------------------------------------------------------------


def enroll(gallery, name: str) -> int:
    """Enrol as `python -m kiosk enroll` does: the person and their templates in one transaction."""
    person = expected_person(name)
    return gallery.enroll(person.name, person.badge, list(person.embeddings), person.qualities, person.sources,
                          person.thumbnails).id


def log_event(access_log, key: str) -> int:
    event = expected_event(key)
    return access_log.record(camera=event.camera, decision=event.decision, reason=event.reason, name=event.name,
                             score=event.score, thumbnail=event.thumbnail).id


# -- modes ----------------------------------------------------------------------------


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def write_loop(mode: str, data_dir: str, tag: str, count: int | None, seconds: float | None, pause: float) -> None:
    """Write until killed (or `count` writes, or `seconds`), printing each committed one."""
    from kiosk.accesslog import AccessLog
    from kiosk.admin_secret import AdminSecret
    from kiosk.database import database_path, open_database
    from kiosk.gallery import Gallery

    conn = open_database(database_path(data_dir)) if mode in ("enroll", "log") else None
    rng = np.random.default_rng(zlib.crc32(tag.encode()))
    say("ready")
    deadline = None if seconds is None else time.monotonic() + seconds
    i = 0
    while (count is None or i < count) and (deadline is None or time.monotonic() < deadline):
        if mode == "enroll":
            name = f"{tag}-p{i:05d}"
            say(f"committed person {enroll(Gallery(conn), name)} {name}")
        elif mode == "log":
            key = f"{tag}-e{i:05d}"
            say(f"committed event {log_event(AccessLog(conn), key)} {key}")
        elif mode == "settings":
            settings_for(i).save(data_dir)
            say(f"committed settings {i}")
        elif mode == "pin":
            AdminSecret(data_dir).set_pin(pin_for(i), replace=True)
            say(f"committed pin {i}")
        i += 1
        if pause:
            time.sleep(float(rng.uniform(0, pause)))  # a kiosk's writes come in bursts, not a tight loop
    say("done")


def _failure_kind(exc: BaseException) -> str:
    """'full' for the errors a full disk (or a file size limit) should give, else 'unclear'."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "disk i/o error" in text):
        return "full"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return "full"
    return "unclear"


def fill(data_dir: str, tag: str, fsize_limit: int | None, failures: int = 5) -> None:
    """Enrol and log until writes fail, then keep trying: every failure must be a clear error.

    Then try to save the settings and the admin PIN on the full disk. The parent frees space
    afterwards and checks that everything committed here is intact.
    """
    from kiosk.accesslog import AccessLog
    from kiosk.admin_secret import AdminSecret
    from kiosk.database import database_path, open_database
    from kiosk.gallery import Gallery

    if fsize_limit is not None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
    conn = open_database(database_path(data_dir))
    gallery, access_log = Gallery(conn), AccessLog(conn)
    say("ready")
    for mode in ("enroll", "log"):
        refused = 0
        for i in range(100_000):
            key = f"{tag}-{'p' if mode == 'enroll' else 'e'}{i:05d}"
            try:
                if mode == "enroll":
                    say(f"committed person {enroll(gallery, key)} {key}")
                else:
                    say(f"committed event {log_event(access_log, key)} {key}")
            except Exception as exc:  # noqa: BLE001 - classified and reported, never raised
                refused += 1
                say(f"failed {mode} {_failure_kind(exc)} {type(exc).__name__}: {exc}")
                gallery.people()  # the database still reads after a refused write
                if refused >= failures:
                    break
    for mode, write in (("settings", lambda: settings_for(10**6).save(data_dir)),
                        ("pin", lambda: AdminSecret(data_dir).set_pin(pin_for(10**6), replace=True))):
        try:
            write()
            say(f"committed {mode} {10**6}")
        except Exception as exc:  # noqa: BLE001
            say(f"failed {mode} {_failure_kind(exc)} {type(exc).__name__}: {exc}")
    conn.close()
    say("done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("enroll", "log", "settings", "pin", "fill"))
    parser.add_argument("data_dir")
    parser.add_argument("tag", help="prefix of the names written, unique per process")
    parser.add_argument("--count", type=int, help="stop after this many writes (default: until killed)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--pause", type=float, default=0.0, help="up to this many seconds between writes")
    parser.add_argument("--fsize-limit", type=int, help="fill: RLIMIT_FSIZE in bytes (no small file system)")
    args = parser.parse_args(argv)
    if args.mode == "fill":
        fill(args.data_dir, args.tag, args.fsize_limit)
    else:
        write_loop(args.mode, args.data_dir, args.tag, args.count, args.seconds, args.pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
