"""What the database cannot be trusted to remember, kept beside the key file.

Someone who can write the database but not the key folder could delete the newest access-log
entries (a hash chain cannot tell that from a log that ended there), or re-insert the template
rows of a removed person copied from an older copy of the database (they are still sealed
with a valid key). So two facts live in a small file next to the key file, ``<key file>.state``
(0600, in the key's 0700 folder, MACed with the log key), where editing the database cannot
reach them:

- the log chain's head: the newest entry's number and digest, recorded after every commit
  that extends the chain (kiosk.logchain); ``log verify`` compares the chain with it;
- the ids of removed templates, recorded before the removal commits: a template row with such
  an id is refused whatever it holds (template ids are never reused).

Writers take ``<state file>.lock``; the file itself is replaced atomically, so readers never lock.
"""
from __future__ import annotations

import bisect
import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from kiosk.atomic import atomic_path
from kiosk.errors import KioskError

FORMAT_VERSION = 1
SUFFIX = ".state"


class StateFileError(KioskError):
    """The state file beside the key file is unreadable or fails authentication."""


@dataclass(frozen=True)
class SealState:
    head_seq: int = 0  # the newest log entry recorded (0: none yet)
    head_digest: bytes | None = None
    removed: tuple[tuple[int, int], ...] = ()  # removed template ids, as sorted inclusive ranges
    recorded: bool = False  # False when there is no state file (yet)

    def is_removed(self, template_id: int) -> bool:
        i = bisect.bisect_right(self.removed, (template_id, float("inf"))) - 1
        return i >= 0 and self.removed[i][0] <= template_id <= self.removed[i][1]

    def with_removed(self, ranges: Iterable[tuple[int, int]]) -> SealState:
        """Also the template ids in these inclusive ranges removed."""
        return replace(self, removed=_merge([*self.removed, *ranges]))


def state_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + SUFFIX)


def load_state(key_file: Path, log_key: bytes) -> SealState:
    """The recorded state (an empty one when no file exists); StateFileError if it was altered."""
    path = state_path(key_file)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SealState()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StateFileError(f"the state file {path} is unreadable ({exc})") from None
    try:
        body = {k: v for k, v in raw.items() if k != "mac"}
        if not hmac.compare_digest(bytes.fromhex(raw["mac"]), _mac(log_key, body)):
            raise ValueError("it fails authentication (altered, or made with another log key)")
        if body["format"] != FORMAT_VERSION:
            raise ValueError(f"unknown format {body['format']!r}")
        digest = body["head_digest"]
        return SealState(int(body["head_seq"]), bytes.fromhex(digest) if digest else None,
                         tuple((int(a), int(b)) for a, b in body["removed"]), True)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"the state file {path} cannot be trusted: {exc}") from None


def update_state(key_file: Path, log_key: bytes, change: Callable[[SealState], SealState | None]) -> SealState:
    """Read, change and atomically rewrite the state under its lock; `change` returns None to keep it."""
    with _lock(state_path(key_file)):
        state = load_state(key_file, log_key)
        new = change(state)
        if new is None or (new == state and state.recorded):
            return state
        body = {"format": FORMAT_VERSION, "head_seq": new.head_seq,
                "head_digest": new.head_digest.hex() if new.head_digest else None,
                "removed": [list(r) for r in new.removed]}
        with atomic_path(state_path(key_file)) as temporary:
            os.chmod(temporary, 0o600)
            temporary.write_text(json.dumps({**body, "mac": _mac(log_key, body).hex()}) + "\n", encoding="utf-8")
        return replace(new, recorded=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    import fcntl  # POSIX only, like the kiosk's deployment target

    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _mac(key: bytes, body: dict) -> bytes:
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, b"state\0" + text, hashlib.sha256).digest()


def id_ranges(ids: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Ids as inclusive ranges."""
    return _merge([(int(i), int(i)) for i in ids])


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, disjoint, non-adjacent ranges covering the same ids."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)
