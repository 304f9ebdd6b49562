"""One way to open a TFLite file: LiteRT's interpreter, or TensorFlow's own copy where LiteRT has no wheel.

LiteRT (ai-edge-litert) is a few MB and imports in a fraction of a second; TensorFlow takes
seconds to import. pyproject.toml installs LiteRT wherever it publishes wheels; elsewhere
(Linux on ARM) TensorFlow's interpreter runs the same files.
"""
from __future__ import annotations

import os
from pathlib import Path

from kiosk.errors import KioskError


class LiteModelError(KioskError, ValueError):
    """A TFLite file that cannot be opened (missing, damaged, or not a TFLite model)."""


def open_interpreter(path: str | os.PathLike, threads: int | None = None):
    """An interpreter for `path`, its tensors not yet allocated; `threads` defaults to every core."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    try:
        return Interpreter(model_path=str(Path(path)), num_threads=threads or os.cpu_count())
    except (ValueError, RuntimeError) as exc:
        raise LiteModelError(f"{path}: cannot load the TFLite model ({exc})") from exc
