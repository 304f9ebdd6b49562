"""Enroll a person (or add samples to one): from image files, or guided capture from the camera.

Every image is checked on the worker thread (kiosk.ui.enroll_worker): one face, big and sharp
enough, then embedded. The dialog lists each result (used, or why not), shows the accepted
samples as thumbnails (removable), warns before saving when a sample already matches someone
enrolled, and saves person and templates through the worker.

Guided capture: the kiosk window passes camera frames to ``offer_frame(rgb)``; while capturing,
the newest frame goes to the worker whenever it is free (older ones are dropped), and each
of the CAPTURE_STEPS (straight, a little left, a little right) takes the first frame that
passes the quality gates and the step's pose. Under the step, a feedback line says what the
newest frame lacks and how the head is turned now.
"""
from __future__ import annotations

import os
from collections import deque

import numpy as np
from PySide6.QtCore import QSize, Qt, QThread, Signal, Slot
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kiosk.calibration import DEFAULT_RISK, GRANT_LINE
from kiosk.enrollment import CAPTURE_STEPS, CaptureStep, Sample
from kiosk.gallery import Person
from kiosk.store import Store
from kiosk.ui.enroll_worker import EngineFactory, EnrollWorker, SaveRequest, default_engine
from kiosk.ui.pixmaps import THUMB, pixmap_from_jpeg
from kiosk.ui.video_view import VideoView

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff);;All files (*)"
STRAIGHT_DEG = 4.0  # a head turned less than this reads as facing the camera
FEEDBACK_STYLE = "color: #8a5a00;"  # amber: not yet, not an error
PREVIEW_SIZE = QSize(320, 240)  # the capture's live picture, at least


def turn_words(yaw: float) -> str:
    """The head's turn in the person's own terms (kiosk.quality: negative yaw = to their left)."""
    if abs(yaw) < STRAIGHT_DEG:
        return "facing the camera"
    return f"turned {abs(yaw):.0f}° to your {'left' if yaw < 0 else 'right'}"


def sample_label(sample: Sample) -> str:
    """Short text under a sample's thumbnail: the file name, or the camera and the pose."""
    if sample.face is None or not sample.source.startswith("camera:"):
        return sample.source
    yaw = sample.face.quality.yaw
    if abs(yaw) < STRAIGHT_DEG:
        return "camera: straight"
    return f"camera: {abs(yaw):.0f}° {'left' if yaw < 0 else 'right'}"


class EnrollDialog(QDialog):
    """Not modal by default: the kiosk keeps running (and feeding frames) while it is open."""

    saved = Signal(object)  # the Person, after a successful save

    def __init__(self, db_path: str | os.PathLike | Store, person: Person | None = None, *,
                 risk: int = DEFAULT_RISK, engine_factory: EngineFactory = default_engine,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._person = person
        self._samples: list[Sample] = []  # accepted, in order
        self._results: list[Sample] = []  # every image or capture result
        self._batches: deque[int] = deque()  # files still to report, per add_files() call
        self._saving = False
        self._capturing = False
        self._step = 0
        self._frame_in_flight = False
        self._newest_frame: np.ndarray | None = None
        self._stopped = False
        self.setWindowTitle(f"Add samples for {person.name}" if person else "Enroll a person")
        self.resize(640, 560)

        self.name_edit = QLineEdit(person.name if person else "")
        self.badge_edit = QLineEdit(person.external_id or "" if person else "")
        self.badge_edit.setPlaceholderText("optional")
        if person is not None:
            self.name_edit.setReadOnly(True)
            self.badge_edit.setReadOnly(True)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Badge id", self.badge_edit)

        self.add_files_button = QPushButton("Add photos…")
        self.add_files_button.clicked.connect(lambda: self.add_files())
        self.capture_button = QPushButton("Capture from camera")
        self.capture_button.setCheckable(True)
        self.capture_button.toggled.connect(self._on_capture_toggled)
        sources = QHBoxLayout()
        sources.addWidget(self.add_files_button)
        sources.addWidget(self.capture_button)
        sources.addStretch(1)

        self.instruction = QLabel()  # the capture step
        self.instruction.setWordWrap(True)
        self.instruction.setStyleSheet("font-weight: bold;")
        self.instruction.hide()
        self.feedback = QLabel()  # what the newest camera frame lacks, live
        self.feedback.setWordWrap(True)
        self.feedback.setStyleSheet(FEEDBACK_STYLE)
        self.feedback.hide()
        # The capture's own live picture: the dialog may cover the kiosk's video.
        self.preview = VideoView()
        self.preview.setMinimumSize(PREVIEW_SIZE)
        self.preview.setMaximumHeight(PREVIEW_SIZE.height())
        self.preview.hide()

        self.samples_view = QListWidget()
        self.samples_view.setViewMode(QListWidget.ViewMode.IconMode)
        self.samples_view.setIconSize(QSize(THUMB, THUMB))
        self.samples_view.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.samples_view.setMovement(QListWidget.Movement.Static)
        # Fixed cells, one line of text each: five samples fit a row of the 640 px dialog.
        self.samples_view.setGridSize(QSize(THUMB + 24, THUMB + 28))
        self.samples_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.samples_view.setWordWrap(False)
        self.samples_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.samples_view.setMinimumHeight(THUMB + 40)
        self.remove_button = QPushButton("Remove selected samples")
        self.remove_button.clicked.connect(self.remove_selected_samples)
        self.results_view = QListWidget()
        self.status = QLabel()
        self.status.setWordWrap(True)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._on_save_clicked)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(sources)
        layout.addWidget(self.preview, alignment=Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.instruction)
        layout.addWidget(self.feedback)
        layout.addWidget(QLabel("Accepted samples"))
        layout.addWidget(self.samples_view, stretch=2)
        layout.addWidget(self.remove_button, alignment=Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(QLabel("Results"))
        layout.addWidget(self.results_view, stretch=1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.name_edit.textChanged.connect(self._update_buttons)

        self._thread = QThread(self)
        self._thread.setObjectName("enrollment")
        self._worker = EnrollWorker(db_path, engine_factory, risk, person.id if person else None)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.finished.connect(self._thread.quit)
        self._worker.sample_ready.connect(self._on_sample)
        self._worker.files_done.connect(self._on_files_done)
        self._worker.capture_assessed.connect(self._on_capture_assessed)
        self._worker.saved.connect(self._on_saved)
        self._worker.failed.connect(self._on_failed)
        self._thread.start()
        self._update_buttons()

    # -- state the admin window and the tests read --------------------------------------

    @property
    def samples(self) -> list[Sample]:
        return list(self._samples)

    @property
    def results(self) -> list[Sample]:
        return list(self._results)

    @property
    def busy(self) -> bool:
        return bool(self._batches) or self._saving or self._frame_in_flight

    @property
    def capturing(self) -> bool:
        return self._capturing

    def duplicate_warning(self) -> str | None:
        """Text naming enrolled people the accepted samples already match, or None."""
        matches: dict[str, int] = {}
        for sample in self._samples:
            if sample.match_name is not None and sample.match_percent is not None:
                matches[sample.match_name] = max(matches.get(sample.match_name, -1), sample.match_percent)
        if not matches:
            return None
        who = ", ".join(f"{name} (match {percent}/100, the door opens at {GRANT_LINE})"
                        for name, percent in sorted(matches.items()))
        return f"These samples already match someone enrolled: {who}."

    # -- image files ------------------------------------------------------------------

    def add_files(self, paths: list[str | os.PathLike] | None = None) -> None:
        """Check image files on the worker thread; without `paths`, ask for them."""
        if paths is None:
            chosen, _ = QFileDialog.getOpenFileNames(self, "Photos of this person", "", IMAGE_FILTER)
            paths = chosen
        paths = [os.fspath(p) for p in paths]
        if not paths:
            return
        self._batches.append(len(paths))
        pending = sum(self._batches)
        self.status.setText(f"Checking {pending} image{'s' if pending != 1 else ''}…")
        self._update_buttons()
        self._worker.analyse_files(paths)

    @Slot(object)
    def _on_sample(self, sample: Sample) -> None:
        if self._batches:
            self._batches[0] -= 1
        self._add_result(sample)
        pending = sum(self._batches)
        if pending > 0:
            self.status.setText(f"Checking {pending} more…")

    @Slot()
    def _on_files_done(self) -> None:
        if self._batches:
            self._batches.popleft()  # whatever it did not report (a failure) is not coming
        if not self.busy:
            self.status.setText(self._summary())
        self._update_buttons()

    def _add_result(self, sample: Sample) -> None:
        self._results.append(sample)
        if sample.used:
            text = f"✓ {sample.source}: used"
            if sample.match_name:
                text += f" — looks like {sample.match_name} (match {sample.match_percent}/100)"
        else:
            text = f"✗ {sample.source}: {sample.reason}"
        item = QListWidgetItem(text)
        item.setToolTip(text)
        if not sample.used:
            item.setForeground(Qt.GlobalColor.darkRed)
        self.results_view.addItem(item)
        self.results_view.scrollToBottom()
        if sample.used:
            self._samples.append(sample)
            thumb = QListWidgetItem(QIcon(pixmap_from_jpeg(sample.thumbnail)), sample_label(sample))
            thumb.setData(Qt.ItemDataRole.UserRole, sample)
            thumb.setToolTip(sample.source)
            self.samples_view.addItem(thumb)
        self._update_buttons()

    def remove_selected_samples(self) -> None:
        for item in self.samples_view.selectedItems():
            sample = item.data(Qt.ItemDataRole.UserRole)
            self._samples = [s for s in self._samples if s is not sample]
            self.samples_view.takeItem(self.samples_view.row(item))
        self.status.setText(self._summary())
        self._update_buttons()

    def _summary(self) -> str:
        used = len(self._samples)
        rejected = sum(not s.used for s in self._results)
        return f"{used} sample{'s' if used != 1 else ''} ready" + (f", {rejected} not usable" if rejected else "")

    # -- guided capture ------------------------------------------------------------------

    def start_capture(self) -> None:
        self.capture_button.setChecked(True)

    def stop_capture(self) -> None:
        self.capture_button.setChecked(False)

    @Slot(bool)
    def _on_capture_toggled(self, on: bool) -> None:
        self._capturing = on
        self._newest_frame = None
        self.capture_button.setText("Stop capturing" if on else "Capture from camera")
        if on:
            self._step = 0
            self._show_step()
            self.feedback.setText("Waiting for the camera…")
        self.instruction.setVisible(on)
        self.feedback.setVisible(on)
        self.preview.setVisible(on)
        if on:
            self.resize(self.width(), max(self.height(), 560 + PREVIEW_SIZE.height()))
        self._update_buttons()

    def _show_step(self) -> None:
        step = CAPTURE_STEPS[self._step]
        self.instruction.setText(f"Step {self._step + 1} of {len(CAPTURE_STEPS)}: {step.instruction}")

    @property
    def capture_step(self) -> CaptureStep | None:
        return CAPTURE_STEPS[self._step] if self._capturing and self._step < len(CAPTURE_STEPS) else None

    def offer_frame(self, rgb: np.ndarray) -> None:
        """A camera frame from the kiosk window; used only while capturing, newest first."""
        if not self._capturing or self._stopped:
            return
        self._newest_frame = np.array(rgb, copy=True)  # the camera may reuse its buffer
        self.preview.set_frame(self._newest_frame)
        self._send_newest_frame()

    def _send_newest_frame(self) -> None:
        step = self.capture_step
        if self._frame_in_flight or self._newest_frame is None or step is None:
            return
        frame, self._newest_frame = self._newest_frame, None
        self._frame_in_flight = True
        self._worker.assess_frame(frame, step)

    @Slot(object)
    def _on_capture_assessed(self, sample: Sample) -> None:
        self._frame_in_flight = False
        step = self.capture_step
        if step is None:  # capture stopped meanwhile
            self._update_buttons()
            return
        if not sample.used:
            now = f" (now {turn_words(sample.face.quality.yaw)})" if sample.face is not None else ""
            self.feedback.setText(f"{sample.reason}{now}")
        else:
            self._add_result(sample)
            self._step += 1
            if self._step >= len(CAPTURE_STEPS):
                self.stop_capture()
                self.status.setText(f"Capture complete. {self._summary()}")
                return
            self._show_step()
            self.feedback.setText(f"Captured ({sample_label(sample)}).")
            if not self._batches:
                self.status.setText(self._summary())
        self._send_newest_frame()

    # -- saving ------------------------------------------------------------------------

    @Slot()
    def _on_save_clicked(self) -> None:
        warning = self.duplicate_warning()
        if warning is not None:
            answer = QMessageBox.warning(
                self, "Already enrolled?", f"{warning}\n\nSave anyway?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Save:
                return
        self.save()

    def save(self) -> bool:
        """Ask the worker to store the person and the accepted samples; `saved` follows.

        No confirmation here: the Save button asks first when duplicate_warning() says so.
        """
        name = self.name_edit.text().strip()
        if not name or not self._samples or self.busy:
            return False
        self._saving = True
        self.status.setText("Saving…")
        self._update_buttons()
        badge = self.badge_edit.text().strip() or None
        self._worker.save(SaveRequest(name, badge if self._person is None else None,
                                    self._person.id if self._person else None, tuple(self._samples)))
        return True

    @Slot(object)
    def _on_saved(self, person: Person) -> None:
        self._saving = False
        self.saved.emit(person)
        self.accept()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._saving = False
        self.status.setText(message)
        self._update_buttons()

    def _update_buttons(self) -> None:
        can_save = bool(self.name_edit.text().strip()) and bool(self._samples) and not self.busy
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(can_save)
        self.remove_button.setEnabled(bool(self._samples) and not self._saving)

    # -- lifetime ----------------------------------------------------------------------

    def done(self, result: int) -> None:
        self.stop()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop()
        super().closeEvent(event)

    def stop(self) -> None:
        """Stop the worker thread (once); waits for the image in hand, never for the rest."""
        if self._stopped:
            return
        self._stopped = True
        self._capturing = False
        self._worker.stop()
        self._thread.quit()
        self._thread.wait()  # no timeout: destroying a running QThread aborts the process
