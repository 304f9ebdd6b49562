"""The access log's tamper-evident hash chain, keyed with the log key (HMAC-SHA256).

Every change to the log appends one chained entry (``log_entry``), numbered 1, 2, 3, ...:

- ``event``: an access decision (its time, camera, decision, reason, plus two keyed MACs:
  one of the personal fields name/score/liveness/has-thumbnail, one of the person link);
- ``door``: the door's outcome for an event, which arrives after the event;
- ``erase``: a privacy erasure of an event's personal fields (the row stays, marked redacted,
  with its MACs, so its place and time stay verifiable);
- ``purge``: an event deleted by the retention purge while later entries had to stay.

digest(n) = HMAC(log key, digest(n - 1) || entry n). Without the key, which is kept apart
from the database, nobody who edits the database can make a changed, inserted, deleted or
reordered entry verify. The retention purge deletes the oldest entries and leaves an anchor
(the last deleted entry's number and digest, itself MACed) that the rest chains from.

A chain alone cannot tell deleted newest entries from a log that ended there, so the head
(number and digest of the newest entry) is also recorded after every commit in the state file
beside the key file (kiosk.sealstate), and ``verify`` compares the chain with it.
"""
from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import logging
import sqlite3
from dataclasses import asdict, dataclass, replace
from typing import Any

from kiosk.connection import on_commit, timestamp, transaction
from kiosk.sealing import SealError, access_thumbnail_aad, sealer
from kiosk.sealstate import SealState, StateFileError, load_state, update_state

log = logging.getLogger(__name__)

GENESIS = bytes(32)  # the "previous digest" of entry 1
KINDS = ("event", "door", "erase", "purge")
_IN_CHUNK = 500  # ids per IN (...) list, below SQLite's variable limit
_COVERED = {  # what an entry's digest covers, for the report
    "event": "the event's time, camera, decision or reason",
    "door": "the door outcome",
    "erase": "the erasure record",
    "purge": "the purge record",
}

# As schema version 2 made them, with version 5's chain columns (kiosk.database.MIGRATIONS).
SCHEMA = (
    f"""CREATE TABLE log_entry (
        seq          INTEGER PRIMARY KEY,
        chain        TEXT NOT NULL DEFAULT '',
        kind         TEXT NOT NULL CHECK (kind IN {KINDS!r}),
        event_id     INTEGER NOT NULL,
        time         TEXT NOT NULL,
        detail       TEXT,
        personal_mac BLOB,
        link_mac     BLOB,
        digest       BLOB NOT NULL
    )""",
    "CREATE INDEX log_entry_event ON log_entry (event_id, kind)",
    """CREATE TABLE log_anchor (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        seq    INTEGER NOT NULL,
        digest BLOB NOT NULL,
        time   TEXT NOT NULL,
        mac    BLOB NOT NULL,
        chain  TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE UNIQUE INDEX log_anchor_chain ON log_anchor (chain)",
)


@dataclass(frozen=True)
class EventFields:
    """An access event as the chain authenticates it."""

    event_id: int
    time: str
    camera: str
    decision: str
    reason: str
    thumbnail: bool
    person_id: int | None
    name: str | None
    score: float | None
    liveness: str | None
    door_name: str | None = None  # the door that decided (covered when named)


@dataclass(frozen=True)
class ChainProblem:
    seq: int | None  # the chain entry; None for an event that has no entry
    event_id: int | None
    time: str | None
    problem: str


@dataclass(frozen=True)
class ChainReport:
    entries: int
    events: int  # event entries still in the chain
    redacted: int  # of those, erased
    anchor_seq: int  # entries up to this number were purged (0: none)
    head_seq: int  # the newest entry's number (anchor_seq when the chain is empty)
    head_digest: str  # its digest, hex
    problems: tuple[ChainProblem, ...]
    recorded_head_seq: int | None = None  # the head recorded beside the key file (None: no record)
    chains: tuple[str, ...] = ()  # the doors' chains checked besides this connection's own

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "first": asdict(self.first) if self.first else None,
                "problems": [asdict(p) for p in self.problems]}


# -- writing (inside the caller's write transaction) --------------------------------


def chain_event(conn: sqlite3.Connection, event: EventFields) -> int:
    """Append an event entry; returns its number."""
    key = sealer(conn).log_key
    personal = _personal_mac(key, event.event_id, event.name, event.score, event.liveness, event.thumbnail)
    link = _link_mac(key, event.event_id, event.person_id)
    body = _event_body(event.camera, event.decision, event.reason, personal, link, event.door_name)
    return _append(conn, "event", event.event_id, event.time, body, personal=personal, link=link)


def chain_record(
    conn: sqlite3.Connection, kind: str, event_id: int, detail: str | None = None, time: str | None = None
) -> int:
    """Append a door, erase or purge entry about an event; returns its number."""
    if kind not in KINDS[1:]:
        raise ValueError(f"kind must be one of {KINDS[1:]}, got {kind!r}")
    return _append(conn, kind, event_id, time or timestamp(), _record_body(kind, detail), detail=detail)


def forget_events(conn: sqlite3.Connection, event_ids: list[int]) -> None:
    """After the purge deleted these events: drop the chain's prefix that no longer refers to any
    remaining event (anchoring the rest), and append a purge entry for each deleted event
    whose entry had to stay because later entries follow it."""
    for chain in chains(conn):
        keep_from = conn.execute(
            "SELECT min(l.seq) FROM log_entry l WHERE l.chain = ?"
            " AND EXISTS (SELECT 1 FROM access_event e WHERE e.id = l.event_id)", (chain,)
        ).fetchone()[0]
        _trim_before(conn, chain, keep_from)
    stayed: list[int] = []
    for start in range(0, len(event_ids), _IN_CHUNK):
        chunk = event_ids[start:start + _IN_CHUNK]
        stayed += [row[0] for row in conn.execute(
            f"SELECT event_id FROM log_entry WHERE kind = 'event' AND event_id IN ({_marks(chunk)})"
            " ORDER BY seq", chunk,
        )]
    for event_id in stayed:
        chain_record(conn, "purge", event_id)


def _append(
    conn: sqlite3.Connection, kind: str, event_id: int, time: str, body: dict[str, Any], *,
    detail: str | None = None, personal: bytes | None = None, link: bytes | None = None,
) -> int:
    key = sealer(conn).log_key
    chain = own_chain(conn)
    seq, previous = _head(conn, chain)
    seq += 1
    digest = _digest(key, previous, seq, kind, event_id, time, body, chain)
    conn.execute(
        "INSERT INTO log_entry (chain, seq, kind, event_id, time, detail, personal_mac, link_mac, digest)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (chain, seq, kind, int(event_id), time, detail, personal, link, digest),
    )
    on_commit(conn, record_head)
    return seq


def record_head(conn: sqlite3.Connection) -> None:
    """Record the committed chain head in the state file beside the key file (never moving it back).

    Called after the commit: the record may lag the database after a crash, never lead it.
    The event is already committed, so a failure here is logged, not raised.
    """
    keys = sealer(conn)
    seq, digest = _head(conn, own_chain(conn))

    def advance(state: SealState) -> SealState | None:
        if seq > state.head_seq or not state.recorded:
            return replace(state, head_seq=seq, head_digest=digest)
        return None

    try:
        update_state(keys.keyring.path, keys.log_key, advance)
    except (OSError, StateFileError) as exc:
        log.warning("cannot record the access log's head beside the key file: %s", exc)


def own_chain(conn: sqlite3.Connection) -> str:
    """The chain this connection extends: its door's on a site database, "" in a kiosk's own file."""
    return getattr(conn, "chain", "")


def chains(conn: sqlite3.Connection) -> list[str]:
    """Every chain in the log (with or without entries left), this connection's own first."""
    own = own_chain(conn)
    found = {row[0] for row in conn.execute("SELECT DISTINCT chain FROM log_entry")}
    found |= {row[0] for row in conn.execute("SELECT chain FROM log_anchor")}
    return [own] + sorted(found - {own})


def head(conn: sqlite3.Connection) -> tuple[int, bytes]:
    """(number, digest) of this connection's chain's newest entry, or of its anchor, or (0, GENESIS)."""
    return _head(conn, own_chain(conn))


def _head(conn: sqlite3.Connection, chain: str) -> tuple[int, bytes]:
    row = conn.execute(
        "SELECT seq, digest FROM log_entry WHERE chain = ? ORDER BY seq DESC LIMIT 1", (chain,)).fetchone()
    if row is None:
        row = conn.execute("SELECT seq, digest FROM log_anchor WHERE chain = ?", (chain,)).fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def _trim_before(conn: sqlite3.Connection, chain: str, keep_from: int | None) -> None:
    """Delete the chain's entries numbered below keep_from (all if None); anchor at the last deleted."""
    where, params = ("AND seq < ?", [keep_from]) if keep_from is not None else ("", [])
    last = conn.execute(
        f"SELECT seq, digest FROM log_entry WHERE chain = ? {where} ORDER BY seq DESC LIMIT 1", [chain, *params]
    ).fetchone()
    if last is None:
        return
    conn.execute("DELETE FROM log_entry WHERE chain = ? AND seq <= ?", (chain, last[0]))
    now = timestamp()
    mac = _anchor_mac(sealer(conn).log_key, last[0], last[1], now, chain)
    conn.execute(
        "INSERT INTO log_anchor (id, chain, seq, digest, time, mac) VALUES (1, ?, ?, ?, ?, ?)"
        " ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, digest = excluded.digest,"
        " time = excluded.time, mac = excluded.mac",
        (chain, last[0], last[1], now, mac),
    )


# -- verifying ------------------------------------------------------------------------


_ENTRIES = """
    SELECT l.seq, l.kind, l.event_id, l.time, l.detail, l.personal_mac, l.link_mac, l.digest,
           e.id, e.time, e.camera, e.person_id, e.name, e.score, e.decision, e.reason, e.liveness,
           e.door, e.redacted, t.key_id, t.jpeg, e.door_name
    FROM log_entry l
    LEFT JOIN access_event e ON l.kind = 'event' AND e.id = l.event_id
    LEFT JOIN access_thumbnail t ON l.kind = 'event' AND t.event_id = l.event_id
    WHERE l.chain = ?
    ORDER BY l.seq"""


@dataclass
class _ChainCheck:
    entries: int = 0
    events: int = 0
    redacted: int = 0
    anchor_seq: int = 0
    head_seq: int = 0
    head: bytes = GENESIS


def verify(conn: sqlite3.Connection) -> ChainReport:
    """Check every chain (one per door) and every event against them, and this connection's
    chain's head against the recorded one; problems in chain order, this connection's chain first."""
    keys = sealer(conn)
    problems: list[tuple[tuple[int, float], ChainProblem]] = []
    # Read before the database: the record never leads what was committed before it was read.
    try:
        recorded: SealState | None = load_state(keys.keyring.path, keys.log_key)
    except StateFileError as exc:
        recorded = None
        problems.append(((-1, float("inf")), ChainProblem(None, None, None, str(exc))))
    with transaction(conn, "DEFERRED"):  # one consistent snapshot
        later = {(kind, event_id): (chain, seq) for kind, event_id, chain, seq in conn.execute(
            "SELECT kind, event_id, chain, max(seq) FROM log_entry WHERE kind != 'event'"
            " GROUP BY kind, event_id, chain")}
        last_door = {event_id: detail for event_id, detail in conn.execute(
            "SELECT event_id, detail FROM log_entry WHERE kind = 'door' ORDER BY chain, seq")}
        names = chains(conn)
        named = names != [""]
        total = _ChainCheck()
        own = _ChainCheck()
        event_positions: list[tuple[int, int]] = []  # (event id, seq), to place orphan events
        for index, chain in enumerate(names):
            found: list[tuple[float, ChainProblem]] = []
            check = _verify_chain(conn, keys, chain, later, last_door, found, event_positions)
            if index == 0:
                own = check
                if recorded is not None and recorded.recorded:
                    found += _check_recorded_head(conn, chain, recorded, check.head_seq, check.anchor_seq)
            for place, problem in found:
                if named:
                    problem = replace(problem, problem=f"door {chain or '(unnamed)'}: {problem.problem}")
                problems.append(((index, place), problem))
            total.entries += check.entries
            total.events += check.events
            total.redacted += check.redacted
        # Placed among their neighbours in a kiosk's one chain; after all the doors' chains on a site.
        orphans_at = len(names) if named else 0
        problems += [((orphans_at, place), problem) for place, problem in _orphans(conn, event_positions)]
    return ChainReport(
        total.entries, total.events, total.redacted, own.anchor_seq, own.head_seq, own.head.hex(),
        tuple(problem for _, problem in sorted(problems, key=lambda p: p[0])),
        recorded.head_seq if recorded is not None and recorded.recorded else None,
        tuple(names[1:]),
    )


def _verify_chain(conn: sqlite3.Connection, keys, chain: str, later: dict, last_door: dict,
                  problems: list[tuple[float, ChainProblem]], event_positions: list[tuple[int, int]]) -> _ChainCheck:
    """Check one door's chain; its problems are appended to `problems`."""
    key = keys.log_key
    check = _ChainCheck()
    anchor = conn.execute("SELECT seq, digest, time, mac FROM log_anchor WHERE chain = ?", (chain,)).fetchone()
    previous, expected = GENESIS, 1
    if anchor is not None:
        previous, expected = anchor[1], anchor[0] + 1
        check.anchor_seq = anchor[0]
        if not hmac.compare_digest(anchor[3], _anchor_mac(key, anchor[0], anchor[1], anchor[2], chain)):
            problems.append((anchor[0], ChainProblem(
                anchor[0], None, anchor[2], "the purge anchor was altered (entries deleted at the start?)")))
    for row in conn.execute(_ENTRIES, (chain,)):
        seq, kind, event_id, time, detail, personal, link, stored = row[:8]
        found: list[str] = []
        trouble: list[str] = []
        if kind == "event":
            check.events += 1
            event_positions.append((event_id, seq))
            body, trouble = _check_event(keys, chain, row, later, last_door)
            check.redacted += bool(row[18])
            time = row[9] or time  # the event's own time is what the digest covers
        else:
            body = _record_body(kind, detail)
        if seq != expected:  # which also breaks this entry's digest: one problem, not two
            missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected} to {seq - 1}"
            found.append(f"{missing} missing (deleted from the log)")
        elif body is not None and not hmac.compare_digest(
            stored, _digest(key, previous, seq, kind, event_id, time, body, chain)
        ):
            found.append(f"{_COVERED[kind]} altered, or entries reordered or forged (digest mismatch)")
        for text in found + trouble:
            problems.append((seq, ChainProblem(seq, event_id, time, text)))
        previous, expected = stored, seq + 1
        check.entries += 1
    check.head_seq, check.head = expected - 1, previous
    return check


def _check_recorded_head(conn: sqlite3.Connection, chain: str, recorded: SealState, head_seq: int,
                         anchor_seq: int) -> list[tuple[float, ChainProblem]]:
    """The chain must reach the recorded head, and hold the recorded digest there."""
    if head_seq < recorded.head_seq:
        missing = (f"entry {recorded.head_seq}" if head_seq + 1 == recorded.head_seq
                   else f"entries {head_seq + 1} to {recorded.head_seq}")
        return [(head_seq + 0.5, ChainProblem(
            head_seq + 1, None, None,
            f"{missing} missing at the end (deleted from the log: the kiosk recorded entry "
            f"{recorded.head_seq} as written)"))]
    row = conn.execute("SELECT digest FROM log_entry WHERE chain = ? AND seq = ?",
                       (chain, recorded.head_seq)).fetchone()
    if row is None and anchor_seq and anchor_seq == recorded.head_seq:
        row = conn.execute("SELECT digest FROM log_anchor WHERE chain = ?", (chain,)).fetchone()
    if row is not None and recorded.head_digest is not None and not hmac.compare_digest(row[0], recorded.head_digest):
        return [(recorded.head_seq, ChainProblem(
            recorded.head_seq, None, None,
            f"entry {recorded.head_seq} differs from the one the kiosk recorded (the log was replaced)"))]
    return []


def _check_event(keys, chain: str, row, later: dict, last_door: dict) -> tuple[dict[str, Any] | None, list[str]]:
    """The digest body of an event entry (None when its row was purged) and its problems."""
    key = keys.log_key
    seq, _, event_id, _, _, personal, link = row[:7]
    (row_id, _, camera, person_id, name, score, decision, reason, liveness, door, is_redacted,
     thumb_key, thumb, door_name) = row[8:]

    def after_this(kind: str) -> int:
        # A later entry about this event: in this chain after it, or in another door's chain at all.
        where, number = later.get((kind, event_id), (chain, -1))
        return number if where == chain else (seq + 1 if number >= 0 else -1)

    if row_id is None:
        if after_this("purge") > seq:
            return None, []  # purged by the retention rule: nothing left to check
        return None, [f"event {event_id} was deleted from the log"]
    trouble: list[str] = []
    erased_at = after_this("erase")
    if is_redacted:
        if erased_at < seq:
            trouble.append(f"event {event_id} is marked erased, but no erasure was logged")
        elif (person_id, name, score, liveness, thumb) != (None,) * 5:
            trouble.append(f"event {event_id} was erased, but holds a name, link, score, liveness or "
                           "thumbnail again (written in after the erasure)")
    elif erased_at > seq:
        trouble.append(f"event {event_id} was erased (entry {erased_at}), but is no longer marked erased "
                       "and holds personal details again")
    elif not hmac.compare_digest(
        personal or b"", _personal_mac(key, event_id, name, score, liveness, thumb is not None)
    ):
        trouble.append(f"event {event_id}: name, score, liveness or thumbnail altered")
    if person_id is not None and not hmac.compare_digest(link or b"", _link_mac(key, event_id, person_id) or b""):
        trouble.append(f"event {event_id}: linked to another person than it was logged for")
    if thumb is not None:
        try:
            keys.open(thumb_key, thumb, access_thumbnail_aad(event_id), f"thumbnail of event {event_id}")
        except SealError as exc:
            trouble.append(str(exc))
    if door != last_door.get(event_id):
        trouble.append(f"event {event_id}: door outcome {door!r} differs from the logged {last_door.get(event_id)!r}")
    return _event_body(camera, decision, reason, personal, link, door_name), trouble


def _orphans(conn: sqlite3.Connection, positions: list[tuple[int, int]]) -> list[tuple[float, ChainProblem]]:
    """Events with no chain entry: each placed just before the entry of the next later event."""
    positions = sorted(positions)
    ids = [event_id for event_id, _ in positions]
    following = [float("inf")] * (len(positions) + 1)  # smallest seq among events from index i on
    for i in range(len(positions) - 1, -1, -1):
        following[i] = min(following[i + 1], positions[i][1])
    found = []
    for event_id, time in conn.execute(
        "SELECT e.id, e.time FROM access_event e WHERE NOT EXISTS"
        " (SELECT 1 FROM log_entry l WHERE l.kind = 'event' AND l.event_id = e.id) ORDER BY e.id"
    ):
        place = following[bisect.bisect_right(ids, event_id)] - 0.5
        found.append((place, ChainProblem(
            None, event_id, time, f"event {event_id} is not in the chain: inserted into the database directly (forged)"
        )))
    return found


# -- digests --------------------------------------------------------------------------


def _canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(key: bytes, label: bytes, value: dict[str, Any]) -> bytes:
    return hmac.new(key, label + b"\0" + _canonical(value), hashlib.sha256).digest()


def _personal_mac(key: bytes, event_id: int, name, score, liveness, thumbnail: bool) -> bytes:
    return _mac(key, b"personal", {"event": event_id, "name": name, "score": score,
                                   "liveness": liveness, "thumbnail": bool(thumbnail)})


def _link_mac(key: bytes, event_id: int, person_id: int | None) -> bytes | None:
    # Checked only while the link exists: removing a person unlinks their events (SET NULL).
    return None if person_id is None else _mac(key, b"link", {"event": event_id, "person": int(person_id)})


def _anchor_mac(key: bytes, seq: int, digest: bytes, time: str, chain: str = "") -> bytes:
    named = {"chain": chain} if chain else {}  # a kiosk's own file's one chain: as before doors
    return _mac(key, b"anchor", {"seq": seq, "digest": digest.hex(), "time": time, **named})


def _event_body(camera, decision, reason, personal: bytes | None, link: bytes | None,
                door_name: str | None = None) -> dict[str, Any]:
    named = {"door_name": door_name} if door_name is not None else {}  # events from before doors: as then
    return {"camera": camera, "decision": decision, "reason": reason,
            "personal": personal.hex() if personal else None, "link": link.hex() if link else None, **named}


def _record_body(kind: str, detail: str | None) -> dict[str, Any]:
    return {"outcome": detail} if kind == "door" else {}


def _digest(key: bytes, previous: bytes, seq: int, kind: str, event_id: int, time: str,
            body: dict[str, Any], chain: str = "") -> bytes:
    named = {"chain": chain} if chain else {}  # an entry of a door's chain cannot pass for another's
    entry = _canonical({"seq": seq, "kind": kind, "event": event_id, "time": time, **body, **named})
    return hmac.new(key, previous + entry, hashlib.sha256).digest()


def _marks(values: list) -> str:
    return ", ".join("?" * len(values))
