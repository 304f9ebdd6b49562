"""How a door stands with its site's server, in words: for the admin window (the technical state)
and for the kiosk screen (a plain line for the visitor, only when it changes what the door does)."""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SiteState:
    database: str  # the site database's URL, password masked
    online: bool
    offline_for_s: float  # how long the door has decided without the server (0 while connected)
    waiting: int  # events committed in the outbox, not yet on the server
    limit_s: float | None  # how long the door may decide offline (offline_hours); None: no limit

    @property
    def past_limit(self) -> bool:
        return not self.online and self.limit_s is not None and self.offline_for_s > self.limit_s


def site_state(conn: sqlite3.Connection) -> SiteState | None:
    """The state of a site database connection (its gallery watch started); None for a kiosk's own file."""
    if getattr(conn, "backend", "sqlite") != "postgresql":
        return None
    from kiosk.sitedb import redacted_url

    watch = conn.start_watch()
    waiting = conn.outbox.count() if conn.outbox is not None else 0
    return SiteState(redacted_url(conn.url), watch.online, watch.offline_for(), waiting, conn.offline_limit_s)


def admin_words(state: SiteState) -> str:
    """One line for the admin: which database, connected or since when not, what waits, for how long
    the door may go on deciding from its gallery."""
    waiting = f"{state.waiting} event{'s' if state.waiting != 1 else ''} waiting in the outbox"
    if state.online:
        return f"site database {state.database}: connected" + (f", {waiting}" if state.waiting else "")
    since = time.strftime("%H:%M", time.localtime(time.time() - state.offline_for_s))
    text = f"site database {state.database}: offline since {since}, {waiting}; "
    if state.limit_s is None:
        return text + f"deciding from the gallery as of {since}"
    allowed = _duration(state.limit_s)
    if state.past_limit:
        return text + f"the gallery of {since} is past the {allowed} allowed offline: nobody is recognised"
    return text + f"deciding from the gallery as of {since} ({_duration(state.offline_for_s)} of the {allowed} allowed)"


def visitor_words(state: SiteState | None) -> str:
    """The visitor's line: empty unless the door cannot recognise anyone because of the server."""
    if state is None or not state.past_limit:
        return ""
    return "Nobody can be recognised now (no connection to the site) — please ask a member of staff"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
