"""Where a kiosk keeps its people and its access log: the data directory's own SQLite file, or a
site's PostgreSQL database shared by several doors (kiosk.site). The command line and the kiosk
window open it the same way:

    store = Store.choose(data_dir, url=None, door=None)   # --database, else $KIOSK_DATABASE_URL
    conn = store.open()                                    # a new connection, for this thread
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from kiosk.database import DATABASE_URL_ENV, database_path, open_database

URL_PREFIXES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class Store:
    data_dir: Path
    url: str | None = None  # a site's database; None: the data directory's file
    door: str | None = None  # the door's name in the log; None: the settings' door_id, else the host name

    @classmethod
    def choose(cls, data_dir: str | os.PathLike, url: str | None = None, door: str | None = None) -> Store:
        """`url`, else $KIOSK_DATABASE_URL, else the data directory's file; ValueError for a URL
        that is not PostgreSQL's."""
        url = url or os.environ.get(DATABASE_URL_ENV, "").strip() or None
        if url is not None and not url.startswith(URL_PREFIXES):
            raise ValueError(f"--database must be a postgresql:// URL, got {url[:60]!r}")
        return cls(Path(data_dir), url, door)

    @property
    def is_site(self) -> bool:
        return self.url is not None

    @property
    def path(self) -> Path:
        """The data directory's database file (a kiosk of its own)."""
        return database_path(self.data_dir)

    def door_name(self) -> str:
        from kiosk.events import default_door_id
        from kiosk.settings import KioskSettings

        return self.door or KioskSettings.load(self.data_dir).door_id or default_door_id()

    def describe(self) -> str:
        """Which database, for people: the site's URL without its password, or the file."""
        if self.url is None:
            return str(self.path)
        from kiosk.sitedb import redacted_url

        return redacted_url(self.url)

    def open(self) -> sqlite3.Connection:
        """A new connection. On a site: kiosk.site.open_site_database (DatabaseUnavailable when the
        server is away and this door has no copy of the site's gallery to start from)."""
        if self.url is None:
            return open_database(self.path, door=self.door_name())
        from kiosk.settings import KioskSettings
        from kiosk.site import open_site_database

        return open_site_database(self.url, self.data_dir, self.door_name(),
                                  KioskSettings.load(self.data_dir).offline_hours)


def connect(target: Store | str | os.PathLike) -> sqlite3.Connection:
    """A connection to a Store, or to a kiosk database file given by its path."""
    if isinstance(target, Store):
        return target.open()
    return open_database(Path(target))
