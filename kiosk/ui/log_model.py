"""The access log as a Qt table model: pages fetched from the database as the view scrolls.

The model holds only the rows the view has asked for so far (``canFetchMore`` / ``fetchMore``,
PAGE_SIZE at a time) and never a copy of the whole log. Filters become query parameters of
AccessLog.query; changing them reloads the first page. Paging is by key (the last row's time
and id), not by offset, so rows arriving or being purged meanwhile neither repeat nor vanish.

Live updates: a QTimer polls ``AccessLog.latest_id()`` (one indexed lookup) and, when it
moved, fetches the new events that pass the filters and inserts them at the top. Rows that
arrived without a door outcome are re-read for a while, as the door reports after the event.

Threading: the model owns its SQLite connection, opened in the thread that creates the model
(the GUI thread; sqlite3 connections belong to one thread). Queries run on the GUI thread:
each is a LIMITed read on an indexed column, well under a millisecond on a kiosk's log.
Long jobs (CSV export) run elsewhere with their own connection.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor

from kiosk.accesslog import AccessEvent, AccessLog
from kiosk.connection import DatabaseUnavailable, utc_datetime
from kiosk.store import Store, connect

PAGE_SIZE = 200
POLL_INTERVAL_MS = 1000
DOOR_WATCH_S = 30.0  # how long a new row's missing door outcome is looked for
COLUMNS = ("Time", "Camera", "Name", "Decision", "Reason", "Score", "Door action", "Door")
REASON_COLUMN = 4
OUTCOME_COLUMN = 6  # what the door did (opened, its command's outcome)
DOOR_COLUMN = 7  # which door (kiosk) decided: a site's doors share one log
# A reason as a guard reads it (the code stays in the tooltip, the CSV export and the search).
REASON_WORDS = {
    "match": "recognised",
    "unknown": "not recognised",
    "ambiguous": "could be two people",
    "low_quality": "face not clear",
    "several_faces": "several faces",
    "liveness": "liveness check failed",
    "rate_limited": "too many attempts",
}


def reason_words(reason: str) -> str:
    return REASON_WORDS.get(reason, reason.replace("_", " "))
TIME_COLUMN = 0
_ONE_MS = timedelta(milliseconds=1)
_DECISION_COLOURS = {"granted": QColor("#2e7d32"), "denied": QColor("#c62828")}

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class LogFilter:
    """What the log view shows; None means "any". Times are aware datetimes ([since, until))."""

    since: datetime | None = None
    until: datetime | None = None
    person: str | None = None
    decision: str | None = None
    search: str | None = None
    door_name: str | None = None  # one door's events (a site database holds every door's)

    def params(self) -> dict[str, Any]:
        """Keyword arguments for AccessLog.query / count / export_csv."""
        return {
            "since": self.since,
            "until": self.until,
            "person": self.person or None,
            "decision": self.decision or None,
            "search": (self.search or "").strip() or None,
            "door_name": self.door_name or None,
        }


def local_time(stamp: str) -> str:
    """A stored UTC timestamp as local wall time, to the second."""
    return utc_datetime(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


class AccessLogModel(QAbstractTableModel):
    """Access events, newest first by default (sort on the time column to flip)."""

    new_events = Signal()  # events were logged since the last poll (at any door, shown or not)
    reachable = Signal(bool)  # a site database: whether the last poll reached the server

    def __init__(self, db_path: str | os.PathLike | Store, parent: QObject | None = None,
                 poll_interval_ms: int = POLL_INTERVAL_MS, page_size: int = PAGE_SIZE) -> None:
        super().__init__(parent)
        self._page_size = page_size
        self._conn = connect(db_path)
        self._log = AccessLog(self._conn)
        self._filter = LogFilter()
        self._newest_first = True
        self._rows: list[AccessEvent] = []
        self._exhausted = False
        self._seen_id = 0  # newest event id looked at; events above it are new
        self._door_watch: dict[int, float] = {}  # event id -> monotonic time it was added
        self._stale = False  # the rows are not those of the filters (a site's server was away)
        self._reload()
        self._poll_timer = QTimer(self, interval=poll_interval_ms)
        self._poll_timer.timeout.connect(self.poll)
        self._poll_timer.start()

    # -- what the view asks --------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        event = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(event, column)
        if role == Qt.ItemDataRole.ToolTipRole and column == TIME_COLUMN:
            return f"{event.time} (UTC)"
        if role == Qt.ItemDataRole.ToolTipRole and column == REASON_COLUMN:
            return event.reason
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            return _DECISION_COLOURS.get(event.decision)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 5:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return event
        return None

    @staticmethod
    def _display(event: AccessEvent, column: int) -> str:
        if column == TIME_COLUMN:
            return local_time(event.time)
        if column == 1:
            return event.camera
        if column == 2:
            return "(erased)" if event.redacted else event.name or "—"
        if column == 3:
            return event.decision
        if column == REASON_COLUMN:
            return reason_words(event.reason)
        if column == 5:
            return "" if event.score is None else f"{event.score:.3f}"
        if column == OUTCOME_COLUMN:
            return event.door or ""
        return event.door_name or ""

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        if parent.isValid() or self._exhausted:
            return
        try:
            page = self._next_page()
        except DatabaseUnavailable:
            return  # the rows shown stay; scrolling fetches more once the server is back
        if not page:
            return
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(page) - 1)
        self._rows.extend(page)
        self.endInsertRows()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Only time order is offered: other orders would need the whole log in memory."""
        if column != TIME_COLUMN:
            return
        newest_first = order == Qt.SortOrder.DescendingOrder
        if newest_first != self._newest_first:
            self._newest_first = newest_first
            self._reload()

    # -- what the admin window asks -----------------------------------------------------

    @property
    def connection(self):
        """The model's database connection (the GUI thread's), for small lookups beside the table."""
        return self._conn

    @property
    def log_filter(self) -> LogFilter:
        return self._filter

    @property
    def newest_first(self) -> bool:
        return self._newest_first

    def set_filter(self, log_filter: LogFilter) -> None:
        if log_filter != self._filter:
            self._filter = log_filter
            self._reload()

    def update_filter(self, **changes: Any) -> None:
        self.set_filter(replace(self._filter, **changes))

    def event_at(self, row: int) -> AccessEvent:
        return self._rows[row]

    def thumbnail(self, row: int) -> bytes | None:
        event = self._rows[row]
        try:
            return self._log.thumbnail(event.id) if event.has_thumbnail else None
        except DatabaseUnavailable:
            return None

    def total(self) -> int | None:
        """How many events pass the filters (not just the rows fetched so far); None while a site's
        server is away."""
        try:
            return self._log.count(**self._filter.params())
        except DatabaseUnavailable:
            return None

    def refresh(self) -> None:
        self._reload()

    def close(self) -> None:
        """Stop polling and close the connection (from the thread that made the model)."""
        self._poll_timer.stop()
        self._conn.close()

    @Slot()
    def poll(self) -> None:
        """Add the events recorded since the last poll and fill in late door outcomes. While a site's
        server is away the rows shown stay, and the next poll that reaches it catches up."""
        try:
            if self._stale:  # the filters changed while the server was away
                self._reload()
            self._poll()
        except DatabaseUnavailable:
            self.reachable.emit(False)
            return
        self.reachable.emit(True)

    def _poll(self) -> None:
        latest = self._log.latest_id()
        if latest > self._seen_id:
            self.new_events.emit()
            fresh = self._log.query(**self._filter.params(), after_id=self._seen_id,
                                    newest_first=self._newest_first)
            self._seen_id = latest
            if fresh:
                self._insert_fresh(fresh)
        if self._door_watch:
            self._update_doors()

    # -- loading ------------------------------------------------------------------

    def _reload(self) -> None:
        self.beginResetModel()
        self._rows = []
        self._exhausted = False
        self._door_watch.clear()
        try:
            self._seen_id = self._log.latest_id()  # before the page: a newer event then comes by poll()
            self._rows = self._next_page()
            self._stale = False
        except DatabaseUnavailable:
            self._stale = self._exhausted = True  # read again by the first poll that reaches the server
        finally:
            self.endResetModel()

    def _next_page(self) -> list[AccessEvent]:
        """The next page of rows after the last one held, in the current order (key-set paging)."""
        params = self._filter.params()
        if not self._rows:
            page = self._log.query(**params, limit=self._page_size, newest_first=self._newest_first)
        else:
            last = self._rows[-1]
            last_time = utc_datetime(last.time)
            # Rows sharing the last row's millisecond that come after it in (time, id) order...
            tie_params = {**params, "since": last_time, "until": last_time + _ONE_MS}
            ties = [e for e in self._log.query(**tie_params, newest_first=self._newest_first)
                    if (e.id < last.id if self._newest_first else e.id > last.id)]
            ties = [e for e in ties if self._passes_range(e)]
            # ...then the rows strictly beyond it, both within the filter's own date range.
            if self._newest_first:
                bound = {"until": _earlier(last_time, params["until"])}
            else:
                bound = {"since": _later(last_time + _ONE_MS, params["since"])}
            page = ties[:self._page_size] + self._log.query(
                **{**params, **bound}, limit=max(self._page_size - len(ties), 0), newest_first=self._newest_first
            )
        if len(page) < self._page_size:
            self._exhausted = True
        return page

    def _passes_range(self, event: AccessEvent) -> bool:
        stamp = utc_datetime(event.time)
        return ((self._filter.since is None or stamp >= utc_datetime(self._filter.since))
                and (self._filter.until is None or stamp < utc_datetime(self._filter.until)))

    def _insert_fresh(self, fresh: list[AccessEvent]) -> None:
        known = {e.id for e in self._rows}
        fresh = [e for e in fresh if e.id not in known]
        if not fresh:
            return
        if self._newest_first:
            self.beginInsertRows(QModelIndex(), 0, len(fresh) - 1)
            self._rows[:0] = fresh
            self.endInsertRows()
        elif self._exhausted:  # all older rows are loaded: new ones go at the end
            start = len(self._rows)
            self.beginInsertRows(QModelIndex(), start, start + len(fresh) - 1)
            self._rows.extend(fresh)
            self.endInsertRows()
        else:
            return  # fetchMore will reach them
        now = time.monotonic()
        for event in fresh:
            if event.door is None:
                self._door_watch[event.id] = now

    def _update_doors(self) -> None:
        now = time.monotonic()
        for event_id, added in list(self._door_watch.items()):
            if now - added > DOOR_WATCH_S:
                del self._door_watch[event_id]
        if not self._door_watch:
            return
        first = min(self._door_watch)
        updated = {e.id: e for e in self._log.query(after_id=first - 1, newest_first=False,
                                                    limit=len(self._door_watch) + self._page_size)
                   if e.id in self._door_watch and e.door is not None}
        if not updated:
            return
        for row, event in enumerate(self._rows):
            if event.id in updated:
                self._rows[row] = updated[event.id]
                del self._door_watch[event.id]
                cell = self.index(row, OUTCOME_COLUMN)
                self.dataChanged.emit(cell, cell)


def _earlier(a: datetime, b: datetime | None) -> datetime:
    return a if b is None else min(a, utc_datetime(b))


def _later(a: datetime, b: datetime | None) -> datetime:
    return a if b is None else max(a, utc_datetime(b))
