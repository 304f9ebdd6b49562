"""Settings a site shares: kept in the site database, laid over each door's own settings.json.

The people are the site's by construction; of the settings, how strict the doors are (`risk`, with
its confirmation) and how long the access log is kept (`retention_days`) are the site's too, once
an admin sets them with ``face-kiosk-admin site settings NAME=VALUE``. Until then each door uses
its own. What belongs to one door (its camera, its door action, its rates, how long it may decide
offline) stays in that door's settings.json.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from typing import Any

from kiosk.connection import DatabaseUnavailable, transaction
from kiosk.settings import KioskSettings

SITE_WIDE = ("risk", "looser_risk_confirmed", "retention_days")


class SiteSettingError(ValueError):
    """A site-wide setting that is unknown, or a value it cannot take."""


def _is_site(conn: sqlite3.Connection) -> bool:
    return getattr(conn, "backend", "sqlite") == "postgresql"


def site_values(conn: sqlite3.Connection) -> dict[str, Any]:
    """The site-wide settings set in the site database (none for a kiosk's own file)."""
    if not _is_site(conn):
        return {}
    try:
        rows = conn.execute("SELECT name, value FROM site_setting").fetchall()
    except DatabaseUnavailable:
        # A door started while the server is away: the values its gallery copy was made with.
        state = conn.copy.state() if conn.copy is not None else None
        if state is None:
            raise
        return dict(state.site_settings)
    return {name: json.loads(value) for name, value in rows if name in SITE_WIDE}


def with_site(settings: KioskSettings, conn: sqlite3.Connection) -> KioskSettings:
    """A door's settings with the site's values laid over them (checked as a settings file is)."""
    values = site_values(conn)
    if not values:
        return settings
    return KioskSettings.from_dict({**asdict(settings), **values}, source="the site's settings")


def set_site_values(conn: sqlite3.Connection, assignments: dict[str, str]) -> dict[str, Any]:
    """Set site-wide settings from NAME -> text (JSON, or a bare word); returns them all as set now.
    SiteSettingError, with nothing changed, if one is unknown or the result is not valid."""
    if not _is_site(conn):
        raise SiteSettingError("site-wide settings need a site database (--database)")
    unknown = sorted(set(assignments) - set(SITE_WIDE))
    if unknown:
        raise SiteSettingError(f"{', '.join(unknown)} is not a site-wide setting; those are {', '.join(SITE_WIDE)} "
                               "(the others are each door's own, in its settings.json)")
    parsed = {name: _parse(text) for name, text in assignments.items()}
    with transaction(conn):
        merged = {**site_values(conn), **parsed}
        problems = [p for p in KioskSettings(**merged).problems() if p.startswith(SITE_WIDE)]
        if problems:
            raise SiteSettingError("; ".join(problems))
        for name, value in parsed.items():
            conn.execute("INSERT INTO site_setting (name, value) VALUES (?, ?)"
                         " ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, json.dumps(value)))
        return site_values(conn)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
