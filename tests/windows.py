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


def enter_admin_mode(qtbot, window, pin: str) -> QWidget:
    """Open admin mode on a kiosk window as an admin does (ask, type the PIN, OK); the admin window."""
    window.request_admin()
    qtbot.waitUntil(lambda: window._pin_dialog is not None, timeout=2_000)
    window._pin_dialog.pin.setText(pin)
    window._pin_dialog.ok_button.click()
    qtbot.waitUntil(lambda: window.admin_window is not None, timeout=5_000)
    return window.admin_window
