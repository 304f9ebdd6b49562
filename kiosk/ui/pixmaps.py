"""Small JPEG thumbnails (gallery samples, access-log faces) as pixmaps."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap

THUMB = 96


def pixmap_from_jpeg(data: bytes | None, side: int = THUMB) -> QPixmap:
    """The image scaled to fit `side` x `side`; a null pixmap for no data or undecodable data."""
    pixmap = QPixmap()
    if data:
        pixmap.loadFromData(data)
    if pixmap.isNull():
        return pixmap
    return pixmap.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
