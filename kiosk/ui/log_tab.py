"""The admin window's "Access log" tab: the table, its filters, the face thumbnail, CSV export.

The table is an AccessLogModel (pages from the database, live updates). CSV export runs on a
thread of the tab's own pool with its own connection: a long log must not freeze the window.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from PySide6.QtCore import QDate, QItemSelection, QObject, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from kiosk.accesslog import DECISIONS, AccessLog
from kiosk.connection import DatabaseUnavailable
from kiosk.exports import ExportRefused, check_export_target
from kiosk.keystore import key_file_path
from kiosk.store import Store, connect
from kiosk.ui.log_model import TIME_COLUMN, AccessLogModel, local_time, reason_words
from kiosk.ui.pixmaps import pixmap_from_jpeg

SEARCH_DELAY_MS = 250  # wait for a pause in typing before querying
THUMB_SIDE = 160
ANY_PERSON = "Anyone"
ANY_DECISION = "Any decision"
ALL_DOORS = "All doors"


class _ExportSignals(QObject):
    done = Signal(str, int)  # path, rows
    failed = Signal(str)


class LogTab(QWidget):
    exported = Signal(str, int)  # path, rows written
    export_failed = Signal(str)

    def __init__(self, db_path: Path | Store, people_names: Callable[[], list[str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._db_path = db_path
        self._people_names = people_names
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._export_signals = _ExportSignals(self)
        self._export_signals.done.connect(self._on_exported)
        self._export_signals.failed.connect(self._on_export_failed)

        self.model = AccessLogModel(db_path, self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        self.view.setAlternatingRowColors(True)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setSortIndicator(TIME_COLUMN, Qt.SortOrder.DescendingOrder)
        header.setSortIndicatorShown(True)
        header.setSectionsClickable(True)
        header.sectionClicked.connect(self._on_header_clicked)
        self.view.selectionModel().selectionChanged.connect(self._on_selection)

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search name, camera, reason, door… (Ctrl+F)")
        self.search_edit.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.apply_filters)
        self.search_edit.textChanged.connect(lambda _: self._search_timer.start())
        self.person_combo = QComboBox()
        # The doors seen in the log: a site's doors share it (a kiosk of its own has one door).
        self.door_combo = QComboBox()
        self.door_combo.setToolTip("Only the events of one door")
        self.decision_combo = QComboBox()
        self.decision_combo.addItem(ANY_DECISION, None)
        for decision in DECISIONS:
            self.decision_combo.addItem(decision, decision)
        self.dates_check = QCheckBox("From")
        today = QDate.currentDate()
        self.from_date = QDateEdit(today.addDays(-7), calendarPopup=True)
        self.to_date = QDateEdit(today, calendarPopup=True)
        for edit in (self.from_date, self.to_date):
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
            edit.dateChanged.connect(self.apply_filters)
        self.dates_check.toggled.connect(self.from_date.setEnabled)
        self.dates_check.toggled.connect(self.to_date.setEnabled)
        self.dates_check.toggled.connect(self.apply_filters)
        self.person_combo.currentIndexChanged.connect(self.apply_filters)
        self.door_combo.currentIndexChanged.connect(self.apply_filters)
        self.decision_combo.currentIndexChanged.connect(self.apply_filters)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Write the rows the filters select to a CSV file (Ctrl+E)")
        self.export_button.clicked.connect(lambda: self.export_csv())

        filters = QHBoxLayout()
        filters.addWidget(self.search_edit, stretch=2)
        filters.addWidget(self.person_combo)
        filters.addWidget(self.door_combo)
        filters.addWidget(self.decision_combo)
        filters.addWidget(self.dates_check)
        filters.addWidget(self.from_date)
        filters.addWidget(QLabel("to"))
        filters.addWidget(self.to_date)
        filters.addWidget(self.export_button)

        self.thumbnail = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.thumbnail.setFixedSize(THUMB_SIDE, THUMB_SIDE)
        self.thumbnail.setStyleSheet("border: 1px solid palette(mid);")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setFixedWidth(THUMB_SIDE)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop)
        side = QVBoxLayout()
        side.addWidget(self.thumbnail)
        side.addWidget(self.details, stretch=1)
        body = QHBoxLayout()
        body.addWidget(self.view, stretch=1)
        body.addLayout(side)

        self.summary = QLabel()
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addLayout(body, stretch=1)
        layout.addWidget(self.summary)

        self.model.modelReset.connect(self._update_summary)
        self.model.modelReset.connect(lambda: self._on_selection())  # new rows: the panel follows them
        self.model.rowsInserted.connect(self._update_summary)
        self.model.new_events.connect(self.refresh_doors)
        self.refresh_people()
        self.refresh_doors()
        self._update_summary()
        self._show_selected(None)

    # -- filters -------------------------------------------------------------------

    def refresh_people(self) -> None:
        """Refill the person filter (after people were enrolled, renamed or removed)."""
        current = self.person_combo.currentData()
        self.person_combo.blockSignals(True)
        self.person_combo.clear()
        self.person_combo.addItem(ANY_PERSON, None)
        for name in self._people_names():
            self.person_combo.addItem(name, name)
        index = self.person_combo.findData(current) if current is not None else 0
        self.person_combo.setCurrentIndex(max(index, 0))
        self.person_combo.blockSignals(False)
        if current is not None and index < 0:
            self.apply_filters()  # the person filtered on is gone (renamed or removed)

    @Slot()
    def refresh_doors(self) -> None:
        """Refill the door filter with the doors seen in the log (a new door's first event adds it)."""
        try:
            doors = AccessLog(self.model.connection).doors()
        except DatabaseUnavailable:
            return  # the list stays as it was; the next new event refreshes it
        current = self.door_combo.currentData()
        if [self.door_combo.itemData(i) for i in range(1, self.door_combo.count())] == doors:
            return
        self.door_combo.blockSignals(True)
        self.door_combo.clear()
        self.door_combo.addItem(ALL_DOORS, None)
        for door in doors:
            self.door_combo.addItem(door, door)
        self.door_combo.setCurrentIndex(max(self.door_combo.findData(current), 0) if current is not None else 0)
        self.door_combo.blockSignals(False)

    @Slot()
    def reload(self) -> None:
        """Read the shown events again (after entries were changed in place, e.g. erased)."""
        self.model.refresh()

    def date_range(self) -> tuple[datetime | None, datetime | None]:
        """[since, until) from the date edits, as local midnights (aware), when enabled."""
        if not self.dates_check.isChecked():
            return None, None
        first, last = self.from_date.date().toPython(), self.to_date.date().toPython()
        if last < first:
            first, last = last, first
        since = datetime.combine(first, dtime()).astimezone()
        until = datetime.combine(last + timedelta(days=1), dtime()).astimezone()
        return since, until

    @Slot()
    def apply_filters(self) -> None:
        self._search_timer.stop()
        since, until = self.date_range()
        self.model.update_filter(
            since=since, until=until,
            person=self.person_combo.currentData(),
            decision=self.decision_combo.currentData(),
            door_name=self.door_combo.currentData(),
            search=self.search_edit.text().strip() or None,
        )

    def focus_search(self) -> None:
        self.search_edit.setFocus()
        self.search_edit.selectAll()

    @Slot(int)
    def _on_header_clicked(self, section: int) -> None:
        header = self.view.horizontalHeader()
        if section != TIME_COLUMN:  # only time order is offered (see AccessLogModel.sort)
            header.setSortIndicator(TIME_COLUMN, Qt.SortOrder.DescendingOrder if self.model.newest_first
                                    else Qt.SortOrder.AscendingOrder)
            return
        order = Qt.SortOrder.AscendingOrder if self.model.newest_first else Qt.SortOrder.DescendingOrder
        header.setSortIndicator(TIME_COLUMN, order)
        self.model.sort(TIME_COLUMN, order)

    # -- the selected row ----------------------------------------------------------

    @Slot(QItemSelection, QItemSelection)
    def _on_selection(self, *_: object) -> None:
        rows = self.view.selectionModel().selectedRows()
        self._show_selected(rows[0].row() if rows else None)

    def _show_selected(self, row: int | None) -> None:
        if row is None:
            self.thumbnail.clear()
            self.thumbnail.setText("Select an event")
            self.details.clear()
            return
        event = self.model.event_at(row)
        pixmap = pixmap_from_jpeg(self.model.thumbnail(row), THUMB_SIDE)
        if pixmap.isNull():
            self.thumbnail.clear()
            self.thumbnail.setText("No thumbnail\nstored")
        else:
            self.thumbnail.setPixmap(pixmap)
        score = "" if event.score is None else f"\nscore {event.score:.3f}"
        liveness = f"\nliveness {event.liveness}" if event.liveness else ""
        door = f"\nat door {event.door_name}" if event.door_name else ""
        self.details.setText(f"{event.name or 'Unknown'}\n{event.decision} ({reason_words(event.reason)}){score}"
                             f"{liveness}{door}"
                             f"\n{local_time(event.time)}")

    def selected_thumbnail_shown(self) -> bool:
        return self.thumbnail.pixmap() is not None and not self.thumbnail.pixmap().isNull()

    @Slot()
    def _update_summary(self) -> None:
        total = self.model.total()
        if total is None:
            self.summary.setText("The site database cannot be reached: the events shown may not be the newest")
            return
        order = "newest first" if self.model.newest_first else "oldest first"
        self.summary.setText(f"{total} event{'s' if total != 1 else ''} ({order}); new events appear as they happen")

    # -- export ----------------------------------------------------------------------

    def export_csv(self, path: str | os.PathLike | None = None) -> bool:
        """Write the filtered rows to CSV on a pool thread (asks where without `path`); `exported` follows.

        As `log --export`: never into the data directory or the key folder, nor over an existing
        file unless the person confirmed replacing it in the file dialog; a refusal is said on the
        tab and through `export_failed`."""
        confirmed = path is None  # the dialog itself asks before replacing a file
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Export the access log", str(Path.home() / "access-log.csv"), "CSV files (*.csv)")
            if not chosen:
                return False
            path = chosen if chosen.lower().endswith(".csv") else chosen + ".csv"
        data_dir = self._db_path.data_dir if isinstance(self._db_path, Store) else Path(self._db_path).parent
        try:
            path = os.fspath(check_export_target(path, data_dir, key_file_path(data_dir), force=confirmed))
        except ExportRefused as exc:
            self._on_export_failed(str(exc))
            return False
        params = self.model.log_filter.params()
        newest_first = self.model.newest_first
        db_path, signals = self._db_path, self._export_signals
        self.export_button.setEnabled(False)
        self.summary.setText(f"Exporting to {path}…")

        def run() -> None:  # on the pool's thread: its own connection
            try:
                conn = connect(db_path)
                try:
                    rows = AccessLog(conn).export_csv(path, newest_first=newest_first, **params)
                finally:
                    conn.close()
            except Exception as exc:
                signals.failed.emit(f"export to {path} failed: {exc}")
                return
            signals.done.emit(path, rows)

        self._pool.start(run)
        return True

    @Slot(str, int)
    def _on_exported(self, path: str, rows: int) -> None:
        self.export_button.setEnabled(True)
        self.summary.setText(f"Exported {rows} event{'s' if rows != 1 else ''} to {path}")
        self.exported.emit(path, rows)

    @Slot(str)
    def _on_export_failed(self, message: str) -> None:
        self.export_button.setEnabled(True)
        self.summary.setText(message)
        self.export_failed.emit(message)

    def stop(self) -> None:
        """Wait for an export in progress and close the model's connection."""
        self._pool.waitForDone()
        self.model.close()
