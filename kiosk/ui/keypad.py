"""An on-screen keypad for PIN entry: a kiosk often has a touch screen and no keyboard.

Digits go into the field focused last (the keys never take the focus), else the first field;
⌫ deletes the last character, OK submits. The keys are sized from the screen, about a
fingertip each.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QLineEdit, QPushButton, QSizePolicy, QWidget

BACKSPACE = "⌫"
ROWS = (("1", "2", "3"), ("4", "5", "6"), ("7", "8", "9"), (BACKSPACE, "0", "OK"))


def key_side(screen_height: int) -> int:
    """Pixels a key is high: a twelfth of the screen, never under 56 (a fingertip on a small panel)."""
    return max(56, screen_height // 12)


class Keypad(QWidget):
    submitted = Signal()  # OK pressed

    def __init__(self, fields: list[QLineEdit], side: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields = fields
        self.keys: dict[str, QPushButton] = {}
        grid = QGridLayout(self)
        grid.setSpacing(max(6, side // 8))
        grid.setContentsMargins(0, 0, 0, 0)
        font = QFont(self.font())
        font.setPixelSize(round(side * 0.42))
        font.setWeight(QFont.Weight.DemiBold)
        for row, labels in enumerate(ROWS):
            for column, label in enumerate(labels):
                key = QPushButton(label)
                key.setFont(font)
                key.setMinimumSize(round(side * 1.4), side)
                key.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
                key.setAutoDefault(False)
                key.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the PIN field keeps the focus
                key.clicked.connect(lambda _=False, text=label: self.press(text))
                grid.addWidget(key, row, column)
                self.keys[label] = key
        self.keys["OK"].setStyleSheet("background: #1565c0; color: white;")

    @property
    def target(self) -> QLineEdit:
        focused = self.window().focusWidget()  # the last one focused, even while the window is inactive
        return focused if focused in self.fields else self.fields[0]

    @Slot(str)
    def press(self, key: str) -> None:
        if key == "OK":
            self.submitted.emit()
        elif key == BACKSPACE:
            self.target.backspace()
        elif self.target.isEnabled():
            self.target.insert(key)
