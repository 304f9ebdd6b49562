"""Face-recognition access kiosk: camera -> MTCNN -> alignment -> Siamese embedding -> decision.

``from kiosk import FaceEngine`` is the public API. It is loaded on first use, so that
``import kiosk`` (and the command-line tools that need no model) stay free of TensorFlow.
"""
from kiosk.errors import InvalidImageError, KioskError, NoFaceError

__all__ = ["FaceEngine", "InvalidImageError", "KioskError", "NoFaceError"]
__version__ = "0.1.0"

_LAZY = {"FaceEngine": "kiosk.engine"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'kiosk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
