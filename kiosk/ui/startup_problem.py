"""The window a kiosk shows when it cannot start: what is wrong, what to do, and Try again.

A kiosk started at boot has no terminal, so a missing camera or an unusable data folder must be
said on the screen, in words a receptionist can act on; the technical line stays under it for
whoever fixes it.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QPushButton, QSizePolicy, QVBoxLayout, QWidget

BACKGROUND = "#0e1116"
PROBLEM_COLOUR = "#ff8a80"


class StartupProblem(Exception):
    """Why the kiosk cannot start, and what to do about it."""

    def __init__(self, headline: str, todo: str, detail: str) -> None:
        super().__init__(f"{headline}: {detail}")
        self.headline = headline  # e.g. "The camera cannot be opened"
        self.todo = todo  # what to do, in a sentence or two
        self.detail = detail  # the technical line (the error as the system gives it)


class StartupProblemWindow(QMainWindow):
    """Shows a StartupProblem; ``Try again`` calls ``retry``, which either gives the working
    kiosk window (shown in this one's place) or raises the StartupProblem that still stands."""

    started = Signal(QMainWindow)  # the window that replaced this one after a successful retry

    def __init__(self, problem: StartupProblem, retry: Callable[[], QMainWindow]) -> None:
        super().__init__()
        self.setWindowTitle("Face kiosk")
        self._retry = retry
        self.headline = QLabel(alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.todo = QLabel(alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.detail = QLabel(alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry_button = QPushButton("Try again")
        self.retry_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.retry_button.clicked.connect(self.try_again)
        self.headline.setStyleSheet(f"color: {PROBLEM_COLOUR};")
        self.todo.setStyleSheet("color: #e6e9ef;")
        self.detail.setStyleSheet("color: #8a8f98;")
        self.retry_button.setStyleSheet("background: #1565c0; color: white; border-radius: 8px; padding: 12px 36px;")
        central = QWidget()
        central.setStyleSheet(f"background: {BACKGROUND};")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(48, 48, 48, 48)
        layout.addStretch(2)
        layout.addWidget(self.headline)
        layout.addSpacing(24)
        layout.addWidget(self.todo)
        layout.addSpacing(24)
        layout.addWidget(self.retry_button, alignment=Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(3)
        layout.addWidget(self.detail)
        self.setCentralWidget(central)
        self.show_problem(problem)

    def show_problem(self, problem: StartupProblem) -> None:
        self.problem = problem
        self.headline.setText(problem.headline)
        self.todo.setText(problem.todo)
        self.detail.setText(problem.detail)

    @Slot()
    def try_again(self) -> None:
        """Retry the start; on success the kiosk window takes this one's place."""
        try:
            window = self._retry()
        except StartupProblem as problem:
            self.show_problem(problem)
            return
        self.started.emit(window)
        self.close()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        unit = min(self.width() / 16, self.height() / 9)  # as the kiosk window scales its text
        for label, scale, weight in ((self.headline, 0.7, QFont.Weight.Bold), (self.todo, 0.38, QFont.Weight.Normal),
                                     (self.retry_button, 0.38, QFont.Weight.DemiBold),
                                     (self.detail, 0.2, QFont.Weight.Normal)):
            font = QFont(self.font())
            font.setPixelSize(max(12, round(unit * scale)))
            font.setWeight(weight)
            label.setFont(font)
