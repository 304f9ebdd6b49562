"""The admin window's "Settings" tab: the KioskSettings fields and Save.

The admin sets a risk, not a score: at most one stranger let in per so many visitors
(kiosk.calibration). The shipped rule is 1 in 1,000; a stricter one is a choice away, a looser
one needs its own tick box. Under the choice the tab says what the door uses now for the people
enrolled (`describe_rule`, given by the admin window) and which two people look most alike.

Save writes the file and emits ``saved``; a running kiosk window applies the settings at once
and puts how that went in ``message``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
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
from kiosk.calibration import DEFAULT_RISK, LOOSER_RISKS, RISKS, risk_words
from kiosk.camera import Camera, CameraError, parse_source
from kiosk.modelcard import ModelCard
from kiosk.pacing import MAX_FPS
from kiosk.settings import ADMIN_TIMEOUT_RANGE_S, MAX_RETENTION_DAYS, KioskSettings
from kiosk.ui.pin_dialog import SetPinDialog

# Face pictures in the log: each choice's words, and its (store_thumbnails, denied_thumbnails).
THUMBNAIL_CHOICES = {
    "none": ("No face pictures", (False, False)),
    "denied": ("A face picture with each denial (who tried)", (False, True)),
    "all": ("A face picture with every event", (True, False)),
}
THUMBNAILS_NOTE = (
    "A face picture lets a guard see who was denied, but it is personal data about people who "
    "never agreed to be enrolled, passers-by included. Pictures are stored encrypted, shown only in "
    "admin mode, and deleted with their events when the log's keeping time ends.")


def card_summary(card: ModelCard) -> str:
    """The model, its LFW figures and what it gave at a one-camera site, in a few lines."""
    raw = card.raw
    parts = [f"Model {card.path.stem}"]
    test = raw.get("devtest") or {}
    figures = []
    if test.get("accuracy") is not None:
        figures.append(f"accuracy {test['accuracy']:.1%}")
    if test.get("accuracy_at_threshold") is not None:
        figures.append(f"{test['accuracy_at_threshold']:.1%} at its threshold")
    if test.get("tar_at_far_1e3") is not None:
        figures.append(f"TAR {test['tar_at_far_1e3']:.1%} at FAR 0.1%")
    if figures:
        parts.append("LFW: " + ", ".join(figures))
    site = ((raw.get("door") or {}).get("single_photos_20_enrolled") or {}).get(f"door_1_in_{DEFAULT_RISK}")
    if site:
        parts.append(f"One camera, one room (ORL, 20 people enrolled), one photo per decision, at the door's rule: "
                     f"{site['enrolled_granted']:.1%} of enrolled let in, {site['strangers_granted']:.1%} of strangers")
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
                 describe_rule: Callable[[int], list[str]] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self._data_dir = data_dir
        self._card = card
        self._describe_rule = describe_rule  # risk -> the rule in force for the people enrolled, in lines

        self.camera_edit = QLineEdit()
        self.camera_edit.setToolTip("Device number (0), video file, image folder or stream URL")
        self.risk_combo = QComboBox()
        for risk in RISKS:
            label = risk_words(risk)
            if risk == DEFAULT_RISK:
                label += " (as shipped)"
            elif risk in LOOSER_RISKS:
                label += " (looser than shipped)"
            self.risk_combo.addItem(f"At most {label}", risk)
        self.risk_combo.setToolTip("How many visitors who are not enrolled may pass for one stranger let in. "
                                   "Stricter means fewer strangers, and enrolled people turned away a little "
                                   "more often")
        self.looser_check = QCheckBox("I accept a looser door than shipped (more strangers let in)")
        self.risk_combo.currentIndexChanged.connect(self._show_rule)
        self.rule_label = QLabel()
        self.rule_label.setWordWrap(True)
        self.rule_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.card_label = QLabel(card_summary(card) if card is not None else "No model card found.")
        self.card_label.setWordWrap(True)
        risk_box = QVBoxLayout()
        risk_box.addWidget(self.risk_combo)
        risk_box.addWidget(self.looser_check)
        risk_box.addWidget(self.rule_label)
        risk_box.addWidget(self.card_label)
        self.liveness_check = QCheckBox("Check liveness: ask for a head turn or nod before granting")
        self.retention_spin = QSpinBox(minimum=0, maximum=MAX_RETENTION_DAYS, suffix=" days")
        self.retention_spin.setSpecialValueText("keep forever")
        self.door_command_edit = QLineEdit()
        self.door_command_edit.setPlaceholderText("e.g. /usr/local/bin/open-door --seconds 3")
        self.door_url_edit = QLineEdit()
        self.door_url_edit.setPlaceholderText("e.g. http://door-controller.local/open")
        self.thumbnails_combo = QComboBox()
        for key, (text, _) in THUMBNAIL_CHOICES.items():
            self.thumbnails_combo.addItem(text, key)
        self.thumbnails_note = QLabel(THUMBNAILS_NOTE)
        self.thumbnails_note.setWordWrap(True)
        thumbnails_box = QVBoxLayout()
        thumbnails_box.addWidget(self.thumbnails_combo)
        thumbnails_box.addWidget(self.thumbnails_note)
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
        # Read only: chosen when the kiosk starts (--database), with the server's state on a site.
        self.database_label = QLabel()
        self.database_label.setWordWrap(True)
        self.database_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Database", self.database_label)
        form.addRow("Camera", self.camera_edit)
        form.addRow("Strangers let in", risk_box)
        form.addRow("Liveness", self.liveness_check)
        form.addRow("Keep access log", self.retention_spin)
        form.addRow("Door command", self.door_command_edit)
        form.addRow("Door URL", self.door_url_edit)
        form.addRow("Faces in the log", thumbnails_box)
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
        self.risk_combo.setCurrentIndex(self.risk_combo.findData(settings.risk))
        self.looser_check.setChecked(settings.looser_risk_confirmed)
        self._show_rule()
        self.liveness_check.setChecked(settings.liveness)
        self.retention_spin.setValue(settings.retention_days)
        self.door_command_edit.setText(settings.door_command)
        self.door_url_edit.setText(settings.door_url)
        kept = "all" if settings.store_thumbnails else "denied" if settings.denied_thumbnails else "none"
        self.thumbnails_combo.setCurrentIndex(self.thumbnails_combo.findData(kept))
        self.sound_check.setChecked(settings.sound)
        self.mirror_check.setChecked(settings.mirror_preview)
        self.timeout_spin.setValue(settings.admin_timeout_s)
        self.analysis_spin.setValue(round(settings.analysis_fps))
        self.idle_analysis_spin.setValue(round(settings.idle_analysis_fps))

    def edited(self) -> KioskSettings:
        """The settings as the widgets show them; those without a widget (events, door timeout) kept as saved."""
        risk = int(self.risk_combo.currentData())
        every_event, denials = THUMBNAIL_CHOICES[self.thumbnails_combo.currentData()][1]
        return replace(
            self._settings,
            camera=self.camera_edit.text().strip(),
            risk=risk,
            looser_risk_confirmed=risk in LOOSER_RISKS and self.looser_check.isChecked(),
            liveness=self.liveness_check.isChecked(),
            retention_days=self.retention_spin.value(),
            door_command=self.door_command_edit.text().strip(),
            door_url=self.door_url_edit.text().strip(),
            store_thumbnails=every_event,
            denied_thumbnails=denials,
            sound=self.sound_check.isChecked(),
            admin_timeout_s=self.timeout_spin.value(),
            analysis_fps=float(self.analysis_spin.value()),
            idle_analysis_fps=float(self.idle_analysis_spin.value()),
            mirror_preview=self.mirror_check.isChecked(),
        )

    @property
    def settings(self) -> KioskSettings:
        return self._settings

    @Slot()
    def _show_rule(self) -> None:
        """What the door uses now at the chosen risk, and the most alike pair of people."""
        risk = self.risk_combo.currentData()
        self.looser_check.setVisible(risk in LOOSER_RISKS)
        if risk is None or self._describe_rule is None:
            self.rule_label.setText("")
            return
        self.rule_label.setText("\n".join(self._describe_rule(int(risk))))

    def refresh_rule(self) -> None:
        """Say again what the door uses (after people were enrolled or removed)."""
        self._show_rule()

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
