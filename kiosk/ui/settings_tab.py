"""The admin window's "Settings" tab: the KioskSettings fields and Save.

The threshold override is limited to the model card's threshold ± THRESHOLD_SPAN (within
[0, 1]): past that the card's measured error rates say nothing about what the door does.
Without a model card the override cannot be edited (a stored one is kept as it is).

Save writes the file and emits ``saved``; a running kiosk window applies the settings at once
and puts how that went in ``message``.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kiosk.admin_secret import AdminSecret
from kiosk.camera import Camera, CameraError, parse_source
from kiosk.modelcard import ModelCard
from kiosk.pacing import MAX_FPS
from kiosk.settings import ADMIN_TIMEOUT_RANGE_S, MAX_RETENTION_DAYS, KioskSettings
from kiosk.ui.pin_dialog import SetPinDialog

THRESHOLD_SPAN = 0.15


def threshold_range(card_threshold: float) -> tuple[float, float]:
    return max(0.0, card_threshold - THRESHOLD_SPAN), min(1.0, card_threshold + THRESHOLD_SPAN)


def card_summary(card: ModelCard) -> str:
    """The card's threshold and LFW figures in a line or two."""
    raw = card.raw
    parts = [f"Model card threshold {card.threshold:.3f}"]
    target_far = (raw.get("threshold") or {}).get("target_far")
    if target_far is not None:
        parts[0] += f" (false accepts ≤ {target_far:g} on validation pairs)"
    test = raw.get("devtest") or {}
    figures = []
    if test.get("accuracy") is not None:
        figures.append(f"accuracy {test['accuracy']:.1%}")
    if test.get("accuracy_at_threshold") is not None:
        figures.append(f"{test['accuracy_at_threshold']:.1%} at this threshold")
    if test.get("tar_at_far_1e3") is not None:
        figures.append(f"TAR {test['tar_at_far_1e3']:.1%} at FAR 0.1%")
    if figures:
        parts.append("LFW: " + ", ".join(figures))
    return "\n".join(parts)


def camera_problem(source: str) -> str | None:
    """Why `source` cannot be the kiosk's camera, or None. A file or folder is opened once (quick),
    so that a broken one is refused before it is saved and the kiosk cannot start with it;
    devices and streams are only parsed: they reconnect until they work."""
    try:
        if not parse_source(source).live:
            Camera(source).start().stop()
    except CameraError as exc:
        return str(exc)
    return None


class SettingsTab(QWidget):
    saved = Signal(object)  # KioskSettings

    def __init__(self, settings: KioskSettings, data_dir: Path, card: ModelCard | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self._data_dir = data_dir
        self._card = card

        self.camera_edit = QLineEdit()
        self.camera_edit.setToolTip("Device number (0), video file, image folder or stream URL")
        self.threshold_check = QCheckBox("Override")
        self.threshold_spin = QDoubleSpinBox(decimals=3, singleStep=0.01)
        self.threshold_label = QLabel()
        self.threshold_label.setWordWrap(True)
        self.threshold_check.toggled.connect(self.threshold_spin.setEnabled)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold_check)
        threshold_row.addWidget(self.threshold_spin)
        threshold_row.addWidget(self.threshold_label, stretch=1)
        if card is not None:
            low, high = threshold_range(card.threshold)
            self.threshold_spin.setRange(low, high)
            self.threshold_label.setText(card_summary(card))
        else:
            self.threshold_check.setEnabled(False)
            self.threshold_spin.setRange(0.0, 1.0)
            self.threshold_label.setText("No model card found: the threshold cannot be changed here.")
        self.liveness_check = QCheckBox("Check liveness: ask for a head turn or nod before granting")
        self.retention_spin = QSpinBox(minimum=0, maximum=MAX_RETENTION_DAYS, suffix=" days")
        self.retention_spin.setSpecialValueText("keep forever")
        self.door_command_edit = QLineEdit()
        self.door_command_edit.setPlaceholderText("e.g. /usr/local/bin/open-door --seconds 3")
        self.door_url_edit = QLineEdit()
        self.door_url_edit.setPlaceholderText("e.g. http://door-controller.local/open")
        self.thumbnails_check = QCheckBox("Store a face thumbnail with each access event")
        self.sound_check = QCheckBox("Sound")
        self.mirror_check = QCheckBox("Show the camera as a mirror (recognition is the same either way)")
        self.timeout_spin = QSpinBox(minimum=ADMIN_TIMEOUT_RANGE_S[0], maximum=ADMIN_TIMEOUT_RANGE_S[1],
                                     suffix=" s")
        # Whole frames a second are what an admin can judge; 0 shows as "every frame" (no cap).
        self.analysis_spin = QSpinBox(minimum=0, maximum=int(MAX_FPS), suffix=" frames/s")
        self.analysis_spin.setSpecialValueText("every frame")
        self.idle_analysis_spin = QSpinBox(minimum=0, maximum=int(MAX_FPS), suffix=" frames/s with nobody in view")
        self.idle_analysis_spin.setSpecialValueText("every frame with nobody in view")
        self.analysis_spin.setToolTip("Frames analysed a second while someone is in view: fewer use less CPU, "
                                      "but a decision needs 3 agreeing frames, so it comes later")
        self.idle_analysis_spin.setToolTip("Frames analysed a second while nobody has been in view for 2 s: "
                                           "how soon someone walking up is first seen")
        analysis_row = QHBoxLayout()
        analysis_row.addWidget(self.analysis_spin)
        analysis_row.addWidget(self.idle_analysis_spin)
        analysis_row.addStretch(1)
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(lambda: self.save())
        self.change_pin_button = QPushButton("Change admin PIN…")
        self.change_pin_button.clicked.connect(self.change_pin)
        self.message = QLabel()
        self.message.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Camera", self.camera_edit)
        form.addRow("Match threshold", threshold_row)
        form.addRow("Liveness", self.liveness_check)
        form.addRow("Keep access log", self.retention_spin)
        form.addRow("Door command", self.door_command_edit)
        form.addRow("Door URL", self.door_url_edit)
        form.addRow("Privacy", self.thumbnails_check)
        form.addRow("Feedback", self.sound_check)
        form.addRow("Preview", self.mirror_check)
        form.addRow("Analyse at most", analysis_row)
        form.addRow("Leave admin mode after", self.timeout_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.change_pin_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addStretch(1)
        self.show_settings(settings)

    def show_settings(self, settings: KioskSettings) -> None:
        self.camera_edit.setText(settings.camera)
        override = settings.threshold is not None and self._card is not None
        self.threshold_check.setChecked(override)
        self.threshold_spin.setEnabled(override)
        if settings.threshold is not None:
            self.threshold_spin.setValue(settings.threshold)  # clamped to the safe range
        elif self._card is not None:
            self.threshold_spin.setValue(self._card.threshold)
        self.liveness_check.setChecked(settings.liveness)
        self.retention_spin.setValue(settings.retention_days)
        self.door_command_edit.setText(settings.door_command)
        self.door_url_edit.setText(settings.door_url)
        self.thumbnails_check.setChecked(settings.store_thumbnails)
        self.sound_check.setChecked(settings.sound)
        self.mirror_check.setChecked(settings.mirror_preview)
        self.timeout_spin.setValue(settings.admin_timeout_s)
        self.analysis_spin.setValue(round(settings.analysis_fps))
        self.idle_analysis_spin.setValue(round(settings.idle_analysis_fps))

    def edited(self) -> KioskSettings:
        """The settings as the widgets show them."""
        if self._card is None:
            threshold = self._settings.threshold  # not editable: keep what is stored
        else:
            threshold = round(self.threshold_spin.value(), 3) if self.threshold_check.isChecked() else None
        return KioskSettings(
            camera=self.camera_edit.text().strip(),
            threshold=threshold,
            liveness=self.liveness_check.isChecked(),
            retention_days=self.retention_spin.value(),
            door_command=self.door_command_edit.text().strip(),
            door_url=self.door_url_edit.text().strip(),
            store_thumbnails=self.thumbnails_check.isChecked(),
            sound=self.sound_check.isChecked(),
            admin_timeout_s=self.timeout_spin.value(),
            analysis_fps=float(self.analysis_spin.value()),
            idle_analysis_fps=float(self.idle_analysis_spin.value()),
            mirror_preview=self.mirror_check.isChecked(),
        )

    @property
    def settings(self) -> KioskSettings:
        return self._settings

    def save(self) -> bool:
        settings = self.edited()
        problems = settings.problems()
        if not problems and settings.camera != self._settings.camera:
            problem = camera_problem(settings.camera)
            if problem is not None:
                problems.append(f"camera: {problem}")
        if problems:
            self.message.setText("Not saved: " + "; ".join(problems))
            return False
        try:
            settings.save(self._data_dir)  # one small atomic file
        except OSError as exc:
            self.message.setText(f"Not saved: {exc}")
            return False
        self._settings = settings
        self.message.setText("Saved.")
        self.saved.emit(settings)
        return True

    @Slot()
    def change_pin(self) -> None:
        dialog = SetPinDialog(AdminSecret(self._data_dir), self, replace=True)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.message.setText("Admin PIN changed."))
        dialog.open()
