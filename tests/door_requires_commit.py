"""A door command for the tests: it opens the door (writes the event id to a file) only when the
access event named by $KIOSK_EVENT is already committed as a grant to $KIOSK_PERSON.

It reads the kiosk database from its own process, read-only, as an auditor would: an event the
kiosk has not committed yet is invisible here, and the command exits 3 ("failed: exit 3" in
the log), so a kiosk that opens the door before recording the decision fails the test.

    python tests/door_requires_commit.py DATABASE OPENED_FILE
"""
from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path


def main(database: str, opened: str) -> int:
    event, person = int(os.environ["KIOSK_EVENT"]), os.environ["KIOSK_PERSON"]
    conn = sqlite3.connect(f"{Path(database).resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT decision, name FROM access_event WHERE id = ?", (event,)).fetchone()
    finally:
        conn.close()
    if row != ("granted", person):
        print(f"event {event} is not committed as a grant to {person!r} (found {row!r})", file=sys.stderr)
        return 3
    Path(opened).write_text(str(event))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
