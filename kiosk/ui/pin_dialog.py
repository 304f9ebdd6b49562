"""The two PIN dialogs: choose the admin PIN on first start, and enter it afterwards.

Both accept() only when the PIN is right (or, first time, valid and typed twice), so callers
connect ``accepted`` to whatever admin mode opens. A wrong PIN keeps the dialog open with a
message; during a lockout the OK key stays disabled and the message counts down. Both have an
on-screen keypad (kiosk.ui.keypad) and are sized from the screen, for a touch screen without a
keyboard; Enter on a keyboard submits too.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kiosk.admin_secret import (
    MIN_PIN_LENGTH,
    AdminLockedError,
    AdminSecret,
    AdminSecretError,
    check_new_pin,
    format_delay,
)
from kiosk.ui.keypad import Keypad, key_side


def sentence(message: str) -> str:
    """An error message as a sentence: capitalised, the rest (e.g. "PIN") left as it is."""
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _pin_edit() -> QLineEdit:
    edit = QLineEdit()
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    edit.setInputMethodHints(Qt.InputMethodHint.ImhSensitiveData | Qt.InputMethodHint.ImhNoPredictiveText)
    return edit


class _PinDialogBase(QDialog):
    def __init__(self, secret: AdminSecret, title: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.secret = secret
        self.setWindowTitle(title)
        self.setModal(True)
        screen = (parent or self).screen().availableGeometry()
        self.key_side = key_side(screen.height())
        font = QFont(self.font())
        font.setPixelSize(max(14, round(self.key_side * 0.3)))
        self.setFont(font)  # the labels, fields and message; the keys set their own
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c62828;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setMinimumHeight(round(self.key_side * 0.8))
        self.form = QFormLayout()
        layout = QVBoxLayout(self)
        layout.setSpacing(max(8, self.key_side // 6))
        layout.addLayout(self.form)
        layout.addWidget(self.message)
        self._layout = layout
        self.setMinimumWidth(min(round(self.key_side * 6), screen.width()))

    def _add_keypad(self, fields: list[QLineEdit]) -> None:
        """The keypad under the fields (called once they exist), then the Cancel button."""
        for field in fields:
            field.setMinimumHeight(round(self.key_side * 0.8))
            field.returnPressed.connect(self.submit)
        self.keypad = Keypad(fields, self.key_side)
        self.keypad.submitted.connect(self.submit)
        self._layout.addWidget(self.keypad)
        self._layout.addWidget(self.buttons)

    @property
    def ok_button(self) -> QPushButton:
        return self.keypad.keys["OK"]

    def submit(self) -> None:
        raise NotImplementedError


class SetPinDialog(_PinDialogBase):
    """First start: the PIN twice; stores it hashed and accepts."""

    def __init__(self, secret: AdminSecret, parent: QWidget | None = None, *, replace: bool = False) -> None:
        super().__init__(secret, "Change the admin PIN" if replace else "Choose an admin PIN", parent)
        self._replace = replace
        intro = QLabel(f"The admin PIN protects the access log, the enrolled people and the settings. "
                       f"Use at least {MIN_PIN_LENGTH} characters.")
        intro.setWordWrap(True)
        self.form.addRow(intro)
        self.pin = _pin_edit()
        self.repeat = _pin_edit()
        self.form.addRow("New PIN", self.pin)
        self.form.addRow("Repeat it", self.repeat)
        self._add_keypad([self.pin, self.repeat])

    @Slot()
    def submit(self) -> None:
        pin, repeat = self.pin.text(), self.repeat.text()
        try:
            check_new_pin(pin)
            if pin != repeat:
                raise AdminSecretError("the two PINs differ")
            self.secret.set_pin(pin, replace=self._replace)
        except AdminSecretError as exc:
            self.message.setText(sentence(str(exc)))
            self.repeat.clear()
            self.repeat.setFocus()
            return
        self.accept()


class EnterPinDialog(_PinDialogBase):
    """Asks for the PIN; accepts when it verifies, says why not otherwise."""

    def __init__(self, secret: AdminSecret, parent: QWidget | None = None) -> None:
        super().__init__(secret, "Admin", parent)
        self.pin = _pin_edit()
        self.form.addRow("Admin PIN", self.pin)
        self._add_keypad([self.pin])
        self._countdown = QTimer(self, interval=250)
        self._countdown.timeout.connect(self._tick)
        self._deadline = 0.0
        self._wrong = False
        self._show_lockout()

    @Slot()
    def submit(self) -> None:
        try:
            ok = self.secret.verify(self.pin.text())
        except AdminLockedError:
            ok = False
        except AdminSecretError as exc:
            self.message.setText(str(exc))
            return
        if ok:
            self.accept()
            return
        self.pin.clear()
        self.pin.setFocus()
        self._show_lockout(wrong=True)

    def _show_lockout(self, wrong: bool = False) -> None:
        """Read the lockout from the secret once; the countdown then runs on the clock."""
        try:
            remaining = self.secret.lockout_remaining()
        except AdminSecretError as exc:
            self.message.setText(str(exc))
            self.ok_button.setEnabled(False)
            return
        self._deadline = time.monotonic() + remaining
        self._wrong = wrong
        if wrong and remaining <= 0:
            self.message.setText("Wrong PIN. Try again.")
        self._tick()

    @Slot()
    def _tick(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining > 0:
            prefix = "Wrong PIN. " if self._wrong else ""
            self.message.setText(f"{prefix}Too many wrong PINs: try again in {format_delay(remaining)}.")
            self.ok_button.setEnabled(False)
            self.pin.setEnabled(False)
            if not self._countdown.isActive():
                self._countdown.start()
            return
        if self._countdown.isActive():
            self._countdown.stop()
            self.message.setText("You may try again now.")
        self.ok_button.setEnabled(True)
        self.pin.setEnabled(True)
        self.pin.setFocus()
