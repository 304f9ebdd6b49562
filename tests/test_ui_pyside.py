"""The installed PySide6 keeps Python's reference counts: the kiosk emits a signal per frame
for days, so a binding that drops a reference per call aborts the interpreter after hours
("Fatal Python error: bool_dealloc"). PySide6 6.12.0 does this on Python < 3.12 (True and None
are immortal from 3.12 on, which hides it); pyproject.toml excludes that version."""
from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication

CALLS = 200  # far below the few thousand references True and None hold: the test never crashes


def restore(obj: object, lost: int) -> None:
    """Give back references a broken binding took, so a failing test fails instead of aborting."""
    for _ in range(max(lost, 0)):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


class Emitter(QObject):
    value = Signal(object)


def test_signal_emit_keeps_the_reference_to_its_result(qapp):
    emitter = Emitter()
    received = []
    emitter.value.connect(received.append)
    before = sys.getrefcount(True)
    for i in range(CALLS):
        emitter.value.emit(i)
    lost = before - sys.getrefcount(True)
    restore(True, lost)
    assert len(received) == CALLS
    assert lost < CALLS // 10, f"PySide6 dropped {lost} references to True in {CALLS} emits: use another version"


def test_process_events_keeps_the_reference_to_none(qapp):
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        QApplication.processEvents()
    lost = before - sys.getrefcount(None)
    restore(None, lost)
    assert lost < CALLS // 10, f"PySide6 dropped {lost} references to None in {CALLS} calls: use another version"
