"""Inactivity timeout: a signal after some time without user input to one window (or its dialogs)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QWidget

INPUT_EVENTS = frozenset({
    QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick, QEvent.Type.MouseMove,
    QEvent.Type.Wheel, QEvent.Type.TouchBegin, QEvent.Type.TouchUpdate, QEvent.Type.TabletPress,
})


class IdleWatcher(QObject):
    """Emits ``timed_out`` once `timeout_s` pass without input to `window` or a widget it owns.

    An application-wide event filter, so that input to child widgets and to dialogs opened
    from the window counts; input to other windows (the kiosk screen behind) does not.
    """

    timed_out = Signal()

    def __init__(self, window: QWidget, timeout_s: float) -> None:
        super().__init__(window)
        self._window = window
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.timed_out)
        self.set_timeout(timeout_s)
        QApplication.instance().installEventFilter(self)

    def set_timeout(self, timeout_s: float) -> None:
        self._timer.setInterval(round(timeout_s * 1000))
        self._timer.start()

    @property
    def timeout_s(self) -> float:
        return self._timer.interval() / 1000

    def remaining_ms(self) -> int:
        return self._timer.remainingTime()

    def stop(self) -> None:
        self._timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in INPUT_EVENTS and self._timer.isActive() and self._owns(watched):
            self._timer.start()
        return False  # only watching: every event goes on as usual

    def _owns(self, watched: QObject) -> bool:
        widget = watched if isinstance(watched, QWidget) else None
        while widget is not None:
            if widget is self._window:
                return True
            widget = widget.parentWidget()
        return False
