"""Finding the windows kiosk.app.main opened. Windows of earlier tests stay among Qt's top-level
widgets after they are closed, so only visible ones count."""
from __future__ import annotations

from PySide6.QtWidgets import QApplication, QWidget


def shown(kind: type[QWidget]) -> QWidget | None:
    """The visible top-level window of this kind, or None."""
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()), None)


def close_all_shown() -> None:
    """Close every visible top-level window, so that main()'s event loop ends even when a test failed."""
    for window in QApplication.topLevelWidgets():
        if window.isVisible():
            window.close()
