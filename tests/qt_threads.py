"""The check every kiosk-window test ends with: closing left no thread running."""
from __future__ import annotations

import threading

from PySide6.QtCore import QThread


def assert_no_thread_left(window, threads_before: set[threading.Thread]) -> None:
    """The window's QThreads have stopped and no Python thread started since `threads_before` lives."""
    threads = window.findChildren(QThread)
    assert threads and not any(t.isRunning() for t in threads)
    # threading.current_thread() on a QThread (Thread.join does it) registers a "Dummy" thread,
    # which Python 3.11 reports alive for ever.
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()
                and not isinstance(t, threading._DummyThread)]
    assert leftover == []  # camera readers, retention purge, sound: all ended
