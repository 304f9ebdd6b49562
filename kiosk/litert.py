"""One way to open a TFLite file: LiteRT's interpreter, or TensorFlow's own copy where LiteRT has no wheel.

LiteRT (ai-edge-litert) is a few MB and imports in a fraction of a second; TensorFlow takes
seconds to import. pyproject.toml installs LiteRT wherever it publishes wheels; elsewhere
(Linux on ARM) TensorFlow's interpreter runs the same files.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from kiosk.errors import KioskError


class LiteModelError(KioskError, ValueError):
    """A TFLite file that cannot be opened (missing, damaged, or not a TFLite model)."""


def open_interpreter(path: str | os.PathLike, threads: int | None = None):
    """An interpreter for `path`, its tensors not yet allocated; `threads` defaults to every core."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise LiteModelError(f"{path}: neither LiteRT (ai-edge-litert) nor TensorFlow is installed to run "
                                 "it; pip install ai-edge-litert, or tensorflow where LiteRT has no wheel") from exc
        Interpreter = tf.lite.Interpreter  # noqa: N806
    try:
        return Interpreter(model_path=str(Path(path)), num_threads=threads or os.cpu_count())
    except (ValueError, RuntimeError) as exc:
        raise LiteModelError(f"{path}: cannot load the TFLite model ({exc})") from exc


_quiet = threading.Lock()
_announced = False  # whether the process's first allocation (which prints) is done


def allocate(interpreter) -> None:
    """`interpreter.allocate_tensors()`. The first allocation in a process prints "INFO: Created
    TensorFlow Lite XNNPACK delegate for CPU." on the C level's stderr, past Python's logging,
    before every command's own output: that one runs with file descriptor 2 pointed at the null
    device, for the few milliseconds it takes."""
    global _announced
    with _quiet:
        if _announced:
            interpreter.allocate_tensors()
            return
        _announced = True
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            interpreter.allocate_tensors()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
