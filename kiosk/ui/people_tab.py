"""The admin window's "People" tab: who is enrolled; rename, (de)activate, delete, enroll, add samples.

A kiosk enrolls tens or hundreds of people, so the list is read whole from the gallery (on the
GUI thread, through the admin window's connection: a few small queries) and refreshed after
each change. Enrollment itself happens in an EnrollDialog, whose worker does the heavy part.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kiosk.calibration import DEFAULT_RISK
from kiosk.gallery import Gallery, GalleryError, Person
from kiosk.privacy import remove_person
from kiosk.store import Store
from kiosk.ui.enroll_dialog import EnrollDialog
from kiosk.ui.enroll_worker import EngineFactory, default_engine
from kiosk.ui.pixmaps import pixmap_from_jpeg

ICON = 48
COLUMNS = ("Name", "Badge", "Samples", "Active", "Head move", "Enrolled")
EXEMPT_WARNING = ("{name} will be let in without the head move (for someone who cannot turn their head). "
                  "A photo or video of them could then open the door; each such grant is recorded in the "
                  "access log.")


class PeopleTab(QWidget):
    people_changed = Signal()
    log_erased = Signal()  # a deleted person's access-log entries were redacted

    def __init__(self, gallery: Gallery, db_path: Path | Store, *, risk: Callable[[], int] = lambda: DEFAULT_RISK,
                 engine_factory: EngineFactory = default_engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._gallery = gallery
        self._db_path = db_path
        self._risk = risk  # the admin's setting, read when a dialog opens
        self._engine_factory = engine_factory
        self._people: list[Person] = []
        self._dialogs: list[EnrollDialog] = []
        self._closing = False

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(ICON, ICON))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(ICON + 8)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _: self.rename_selected())

        self.enroll_button = QPushButton("Enroll a person…")
        self.enroll_button.clicked.connect(lambda: self.enroll_new())
        self.add_samples_button = QPushButton("Add samples…")
        self.add_samples_button.clicked.connect(lambda: self.add_samples_to_selected())
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(lambda: self.rename_selected())
        self.active_button = QPushButton("Deactivate")
        self.active_button.clicked.connect(lambda: self.toggle_active_selected())
        self.exempt_button = QPushButton("No head move…")
        self.exempt_button.setToolTip("Let the selected person in without the liveness head move "
                                      "(someone who cannot turn their head)")
        self.exempt_button.clicked.connect(lambda: self.toggle_liveness_exempt_selected())
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Delete the person and all their samples (Delete)")
        self.delete_button.clicked.connect(lambda: self.delete_selected())
        buttons = QHBoxLayout()
        for button in (self.enroll_button, self.add_samples_button, self.rename_button, self.active_button,
                       self.exempt_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.message = QLabel()
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table, stretch=1)
        layout.addWidget(self.message)

        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(lambda: self.delete_selected())
        self.refresh()

    # -- the list ----------------------------------------------------------------------

    @property
    def people(self) -> list[Person]:
        return list(self._people)

    def refresh(self) -> None:
        selected = self.selected_person()
        self._people = self._gallery.people()
        damaged = self._gallery.damaged_templates()  # skipped by recognition; shown, not hidden
        self.table.setRowCount(len(self._people))
        for row, person in enumerate(self._people):
            name = QTableWidgetItem(self._sample_icon(person), person.name)
            if not person.active:
                name.setForeground(Qt.GlobalColor.gray)
            count = QTableWidgetItem(str(person.template_count))
            unusable = [d for d in damaged if d.person_id == person.id]
            if unusable:
                count.setText(f"{person.template_count} ({len(unusable)} damaged)")
                count.setToolTip("\n".join(d.problem for d in unusable))
                count.setForeground(Qt.GlobalColor.darkRed)
            cells = (name, QTableWidgetItem(person.external_id or ""), count,
                     QTableWidgetItem("yes" if person.active else "no"),
                     QTableWidgetItem("exempt" if person.liveness_exempt else "asked"),
                     QTableWidgetItem(person.created[:10]))
            for column, cell in enumerate(cells):
                self.table.setItem(row, column, cell)
        if selected is not None:
            self.select(selected.id)
        self.message.setText(f"{len(self._people)} people enrolled, "
                             f"{sum(p.active for p in self._people)} active"
                             + (f"; {len(damaged)} damaged face sample{'s' if len(damaged) != 1 else ''} not used"
                                if damaged else ""))
        self._update_buttons()

    def _sample_icon(self, person: Person) -> QIcon:
        for template in self._gallery.templates(person.id)[:5]:
            pixmap = pixmap_from_jpeg(self._gallery.thumbnail(template.id), ICON)
            if not pixmap.isNull():
                return QIcon(pixmap)
        return QIcon()

    def select(self, person: int | str) -> bool:
        """Select a person by id or name (any case); False when not listed."""
        for row, candidate in enumerate(self._people):
            if candidate.id == person or (isinstance(person, str) and candidate.name.casefold() == person.casefold()):
                self.table.selectRow(row)
                return True
        return False

    def selected_person(self) -> Person | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self._people):
            return None
        return self._people[rows[0].row()]

    def _update_buttons(self) -> None:
        person = self.selected_person()
        for button in (self.add_samples_button, self.rename_button, self.active_button, self.exempt_button,
                       self.delete_button):
            button.setEnabled(person is not None)
        self.active_button.setText("Activate" if person is not None and not person.active else "Deactivate")
        exempt = person is not None and person.liveness_exempt
        self.exempt_button.setText("Ask for the head move" if exempt else "No head move…")

    # -- changes -------------------------------------------------------------------------

    def rename_selected(self, new_name: str | None = None) -> bool:
        person = self.selected_person()
        if person is None:
            return False
        if new_name is None:
            new_name, ok = QInputDialog.getText(self, "Rename", f"New name for {person.name}:",
                                                QLineEdit.EchoMode.Normal, person.name)
            if not ok or self._closing:
                return False
        return self._change(lambda: self._gallery.rename(person.id, new_name), f"Renamed {person.name} to {{}}")

    def toggle_active_selected(self) -> bool:
        person = self.selected_person()
        if person is None:
            return False
        verb = "Activated" if not person.active else "Deactivated"
        return self._change(lambda: self._gallery.set_active(person.id, not person.active), f"{verb} {{}}")

    def toggle_liveness_exempt_selected(self, confirm: bool = True) -> bool:
        """Exempt the selected person from the liveness head move (after saying what it costs,
        unless `confirm` is False), or ask them for it again."""
        person = self.selected_person()
        if person is None:
            return False
        if not person.liveness_exempt and confirm:
            answer = QMessageBox.question(self, "No head move", EXEMPT_WARNING.format(name=person.name),
                                          QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel,
                                          QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Ok or self._closing:
                return False
        done = "{} is asked for the head move again" if person.liveness_exempt else \
            "{} is let in without the head move (recorded in the access log each time)"
        return self._change(lambda: self._gallery.set_liveness_exempt(person.id, not person.liveness_exempt), done)

    def delete_selected(self, confirm: bool = True, erase_log: bool = False) -> bool:
        """Delete the selected person and all their templates (after asking, unless `confirm` is False).

        With `erase_log` (or its box ticked in the question) their access-log entries are
        redacted too: a person who asks to be forgotten leaves no name, score or photo behind,
        and the tamper-evident chain still verifies.
        """
        person = self.selected_person()
        if person is None:
            return False
        if confirm:
            box = QMessageBox(QMessageBox.Icon.Question, "Delete",
                              f"Delete {person.name} and all {person.template_count} of their face samples?\n"
                              "This cannot be undone.",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            erase_box = QCheckBox("Also erase their name, scores and photos from the access log")
            erase_box.setChecked(erase_log)
            box.setCheckBox(erase_box)
            box.exec()
            confirmed = box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)
            erase_log = erase_box.isChecked()
            box.deleteLater()
            if not confirmed or self._closing:
                return False
        try:
            removal = remove_person(self._gallery.connection, person.id, erase_log=erase_log)
        except GalleryError as exc:
            self.message.setText(str(exc))
            return False
        self.refresh()
        samples = f"{removal.templates} sample{'s' if removal.templates != 1 else ''}"
        erased = f"; erased {removal.events_erased} log entr{'ies' if removal.events_erased != 1 else 'y'}"
        self.message.setText(f"Deleted {person.name} and {samples}" + (erased if erase_log else ""))
        self.people_changed.emit()
        if removal.events_erased:
            self.log_erased.emit()
        return True

    def _change(self, action: Callable[[], Person], done: str) -> bool:
        try:
            person = action()
        except GalleryError as exc:
            self.message.setText(str(exc))
            return False
        self.refresh()
        self.select(person.id)
        self.message.setText(done.format(person.name))
        self.people_changed.emit()
        return True

    # -- enrollment ------------------------------------------------------------------------

    def enroll_new(self) -> EnrollDialog:
        return self._open_dialog(None)

    def add_samples_to_selected(self) -> EnrollDialog | None:
        person = self.selected_person()
        return None if person is None else self._open_dialog(person)

    def _open_dialog(self, person: Person | None) -> EnrollDialog:
        dialog = EnrollDialog(self._db_path, person, risk=self._risk(),
                              engine_factory=self._engine_factory, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(self._on_enrolled)
        dialog.finished.connect(lambda _: self._forget(dialog))
        self._dialogs.append(dialog)
        dialog.show()
        return dialog

    @property
    def enroll_dialogs(self) -> list[EnrollDialog]:
        return list(self._dialogs)

    def _forget(self, dialog: EnrollDialog) -> None:
        if dialog in self._dialogs:
            self._dialogs.remove(dialog)

    @Slot(object)
    def _on_enrolled(self, person: Person) -> None:
        self.refresh()
        self.select(person.id)
        self.message.setText(f"Saved {person.name}: {person.template_count} sample"
                             f"{'s' if person.template_count != 1 else ''}")
        self.people_changed.emit()

    def offer_frame(self, rgb: np.ndarray) -> None:
        """Camera frames for enroll dialogs that are capturing."""
        for dialog in self._dialogs:
            dialog.offer_frame(rgb)

    def stop(self) -> None:
        """Close the enroll dialogs (their threads stop before this returns)."""
        self._closing = True
        for dialog in list(self._dialogs):
            dialog.reject()
