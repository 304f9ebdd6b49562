"""A widget that paints the newest frame, scaled to fit without distortion, with face boxes on top."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor("#000000")
PLACEHOLDER = QColor("#8a8f98")
PLACEHOLDER_TEXT = "Waiting for the camera…"
BOX_COLOUR = QColor("#3fc1ff")  # a face (neutral)
KNOWN_BOX_COLOUR = QColor("#2ecc71")  # a face recognised as an enrolled person
OUTLINE_COLOUR = QColor(255, 255, 255, 150)  # the face outline to step into
OUTLINE_HEIGHT = 0.55  # of the picture's height: a face at a good distance fills it


class VideoView(QWidget):
    """Paints the last frame given to ``set_frame`` and the boxes given to ``set_boxes``.

    Boxes are x1, y1, x2, y2 in the frame's pixel coordinates. With ``mirrored`` (the default)
    the frame and its boxes are painted flipped left to right, as a mirror shows a person: the
    frame itself, and so everything analysed, stays as the camera gives it.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._boxes: list[tuple[float, float, float, float]] = []
        self._known: list[bool] = []  # per box: drawn green (a recognised enrolled person)
        self.mirrored = True
        self.outline = False  # draw a face outline in the middle of the picture to step into
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # every pixel is painted each time
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)

    @property
    def has_frame(self) -> bool:
        return self._image is not None

    @property
    def boxes(self) -> list[tuple[float, float, float, float]]:
        return list(self._boxes)

    def set_frame(self, rgb: np.ndarray) -> None:
        """Show an HxWx3 RGB uint8 frame (copied: the camera shares its buffer with other readers)."""
        rgb = np.ascontiguousarray(rgb)
        height, width = rgb.shape[:2]
        self._image = QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888).copy()
        self.update()

    @property
    def known(self) -> list[bool]:
        return list(self._known)

    def set_boxes(self, boxes: Iterable[Sequence[float]], known: Iterable[bool] | None = None) -> None:
        """Boxes to draw; ``known[i]`` draws box i green (a recognised enrolled person)."""
        self._boxes = [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes]
        flags = list(known) if known is not None else []
        self._known = [bool(flags[i]) if i < len(flags) else False for i in range(len(self._boxes))]
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        if self._image is None:
            painter.setPen(PLACEHOLDER)
            font = painter.font()
            font.setPixelSize(max(14, self.height() // 16))
            painter.setFont(font)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, PLACEHOLDER_TEXT)
            return
        target = self._fit(self._image)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self.mirrored:
            # Flip the painter about the target's vertical centre line: the image and the boxes follow.
            painter.translate(2 * target.center().x(), 0)
            painter.scale(-1, 1)
        painter.drawImage(target, self._image)
        if self.outline:
            self._paint_outline(painter, target)
        if not self._boxes:
            return
        scale = target.width() / self._image.width()
        pen = QPen(BOX_COLOUR, max(2.0, min(target.width(), target.height()) / 160))
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for (x1, y1, x2, y2), known in zip(self._boxes, self._known):
            pen.setColor(KNOWN_BOX_COLOUR if known else BOX_COLOUR)
            painter.setPen(pen)
            top_left = target.topLeft() + QPointF(x1 * scale, y1 * scale)
            painter.drawRoundedRect(QRectF(top_left, QSizeF((x2 - x1) * scale, (y2 - y1) * scale)), 6, 6)

    @staticmethod
    def _paint_outline(painter: QPainter, target: QRectF) -> None:
        height = target.height() * OUTLINE_HEIGHT
        oval = QRectF(0, 0, height * 0.75, height)
        oval.moveCenter(target.center())
        pen = QPen(OUTLINE_COLOUR, max(2.0, target.height() / 150), Qt.PenStyle.DashLine)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(oval)
        painter.restore()

    def _fit(self, image: QImage) -> QRectF:
        """The largest rectangle with the image's aspect ratio, centred in the widget."""
        size = QSizeF(image.size()).scaled(QSizeF(self.size()), Qt.AspectRatioMode.KeepAspectRatio)
        rect = QRectF(QPointF(0, 0), size)
        rect.moveCenter(QRectF(self.rect()).center())
        return rect
