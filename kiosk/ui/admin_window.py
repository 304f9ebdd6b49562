"""Admin mode: the access log, the enrolled people and the settings, in three tabs.

Opened from the kiosk window after the admin PIN (kiosk.ui.pin_dialog). Leaves admin mode by
itself after ``admin_timeout_s`` without input (kiosk.ui.idle), closing any dialog it opened.

Keys: Ctrl+F search the log, Ctrl+E export it, Delete deletes the selected person (after
asking), Ctrl+W or Esc closes.

Database use: the window and the log model each open their own connection on the GUI thread
and run small, indexed queries there (listing people, a page of events, a rename); face
analysis, enrollment saves and CSV export run on worker threads with their own connections.
The database is the data directory's file or a site's, shared by several doors (kiosk.store):
the status bar and the Settings tab say which, and on a site how the server stands (connected,
or since when not, and the events waiting in this door's outbox).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QLabel, QMainWindow, QTabWidget, QWidget

from kiosk.calibration import door_rule, measure_site, site_summary
from kiosk.gallery import Gallery, GalleryError
from kiosk.modelcard import ModelCard, ModelCardError, default_model_path
from kiosk.settings import KioskSettings
from kiosk.site_status import admin_words, site_state
from kiosk.store import Store
from kiosk.ui.enroll_worker import EngineFactory, default_engine
from kiosk.ui.idle import IdleWatcher
from kiosk.ui.log_tab import LogTab
from kiosk.ui.people_tab import PeopleTab
from kiosk.ui.settings_tab import SettingsTab

log = logging.getLogger(__name__)

SITE_STATE_MS = 1000  # how often the site server's state is looked at


def load_card() -> ModelCard | None:
    """The shipped model's card (a small JSON file), or None when there is no model yet."""
    try:
        return ModelCard.load(default_model_path())
    except ModelCardError as exc:
        log.info("no model card: %s", exc)
        return None


class AdminWindow(QMainWindow):
    """Close it (or let it time out) rather than dropping it: closing stops its threads."""

    timed_out = Signal()  # left admin mode for lack of input
    closed = Signal()  # stopped: threads ended, connections closed

    def __init__(self, data_dir: str | os.PathLike | Store, *, card: ModelCard | None = None,
                 engine_factory: EngineFactory = default_engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Face kiosk — admin")
        available = self.screen().availableGeometry()  # a kiosk panel may be 1024x600
        self.resize(min(1000, available.width()), min(680, available.height()))
        self.store = data_dir if isinstance(data_dir, Store) else Store(Path(data_dir))
        self._data_dir = self.store.data_dir
        self._conn = self.store.open()  # the GUI thread's: people list and edits
        self._gallery = Gallery(self._conn)
        self._closed = False
        self.settings = KioskSettings.load(self._data_dir)

        self.log_tab = LogTab(self.store, self._people_names)
        self.people_tab = PeopleTab(self._gallery, self.store, risk=lambda: self.settings.risk,
                                    engine_factory=engine_factory)
        self._card = card
        self._scoring = None  # the card's scoring, loaded when the rule is first described
        self.settings_tab = SettingsTab(self.settings, self._data_dir, card, describe_rule=self.describe_rule)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.log_tab, "Access log")
        self.tabs.addTab(self.people_tab, "People")
        self.tabs.addTab(self.settings_tab, "Settings")
        self.setCentralWidget(self.tabs)
        # The kiosk's figures (camera, rates, model, threshold): for the admin, not the visitor's screen.
        self.technical = QLabel()
        self.technical.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.statusBar().addWidget(self.technical, 1)
        # Which database, and on a site the server's state: for the admin, never the visitor's screen.
        self.database = QLabel()
        self.database.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.statusBar().addPermanentWidget(self.database)
        self._site_timer = QTimer(self, interval=SITE_STATE_MS)
        self._site_timer.timeout.connect(self.refresh_database)
        if self.store.is_site:
            self._site_timer.start()
        self.refresh_database()
        self.people_tab.people_changed.connect(self.log_tab.refresh_people)
        self.people_tab.log_erased.connect(self.log_tab.reload)
        self.people_tab.people_changed.connect(self.settings_tab.refresh_rule)
        self.settings_tab.saved.connect(self._on_settings_saved)

        self.idle = IdleWatcher(self, self.settings.admin_timeout_s)
        self.idle.timed_out.connect(self._on_idle)

        self._shortcut(QKeySequence.StandardKey.Find, self.focus_search)  # Ctrl+F
        self._shortcut(QKeySequence("Ctrl+E"), self.export_log)
        self._shortcut(QKeySequence("Ctrl+W"), self.close)
        self._shortcut(QKeySequence(Qt.Key.Key_Escape), self.close)

    def _shortcut(self, keys: QKeySequence | QKeySequence.StandardKey, slot) -> QShortcut:
        shortcut = QShortcut(QKeySequence(keys), self)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(slot)
        return shortcut

    def _people_names(self) -> list[str]:
        return [person.name for person in self._gallery.people()]

    def describe_rule(self, risk: int) -> list[str]:
        """The door's rule at `risk` for the people enrolled now, measured as the kiosk measures it."""
        if self._card is None:
            return ["No face model: the door's rule cannot be measured."]
        try:
            if self._scoring is None:
                self._scoring = self._card.load_scoring()
            templates, person_ids = self._gallery.matrix()
        except (ModelCardError, GalleryError) as exc:
            return [f"The door's rule cannot be measured: {exc}"]
        if len(templates) and templates.shape[1] != self._card.embedding_size:
            return ["The enrolled faces are from another face model: re-enrol to measure the door's rule."]
        rule = door_rule(self._card, measure_site(templates, person_ids, self._scoring, self._card.strategy), risk)
        return site_summary(rule, {person.id: person.name for person in self._gallery.people()})

    # -- actions ------------------------------------------------------------------------

    @Slot()
    def focus_search(self) -> None:
        self.tabs.setCurrentWidget(self.log_tab)
        self.log_tab.focus_search()

    @Slot()
    def export_log(self) -> None:
        self.tabs.setCurrentWidget(self.log_tab)
        self.log_tab.export_csv()

    def _unsaved_enrolment(self) -> bool:
        return any(d.samples or d.capturing or d.busy for d in self.people_tab.enroll_dialogs)

    @property
    def enrolling(self) -> bool:
        """Whether an enrolment dialog is open (the kiosk pauses its door decisions meanwhile)."""
        return not self._closed and bool(self.people_tab.enroll_dialogs)

    def offer_frame(self, rgb: np.ndarray) -> None:
        """A camera frame from the kiosk window, for guided enrollment capture."""
        if not self._closed:
            self.people_tab.offer_frame(rgb)

    @Slot()
    def refresh_database(self) -> None:
        """Which database the kiosk uses; on a site, connected or offline since when, what waits."""
        state = site_state(self._conn)
        text = f"database {self.store.describe()}" if state is None else admin_words(state)
        if text != self.database.text():
            self.database.setText(text)
            self.settings_tab.database_label.setText(text)

    def set_technical(self, text: str) -> None:
        """The kiosk's technical status line (kiosk.ui.kiosk_window refreshes it twice a second)."""
        if text != self.technical.text():
            self.technical.setText(text)

    @Slot(object)
    def _on_settings_saved(self, settings: KioskSettings) -> None:
        self.settings = settings
        self.idle.set_timeout(settings.admin_timeout_s)

    @Slot()
    def _on_idle(self) -> None:
        if self._unsaved_enrolment():
            # Never thrown away for lack of input: a capture has the admin at the camera, not the keyboard.
            log.info("admin mode stays open: an enrolment has unsaved samples")
            self.idle.set_timeout(self.idle.timeout_s)  # look again after another timeout
            return
        log.info("leaving admin mode after %d s without input", self.settings.admin_timeout_s)
        self.close()
        self.timed_out.emit()

    # -- lifetime -----------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop()
        super().closeEvent(event)

    def stop(self) -> None:
        """Close every dialog opened from here, stop the threads, close the connections (once)."""
        if self._closed:
            return
        self._closed = True
        self.idle.stop()
        self._site_timer.stop()
        self.people_tab.stop()
        for dialog in self.findChildren(QDialog):  # PIN change, file and message boxes
            if dialog.isVisible():
                dialog.reject()
        self.log_tab.stop()
        self._conn.close()
        self.closed.emit()
