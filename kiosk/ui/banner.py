"""The kiosk screen's banner: the verdict or the instruction in big letters, in its colour.

What it says is decided by the window (KioskWindow._refresh_banner); the banner sizes it to the
screen and makes a line that would run off its width smaller, down to half size.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from enum import Enum

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy

WORDS_SCALE = 0.85  # the banner's second line (name or reason) to its headline
BANNER_FILL = 0.94  # of the banner's width a line may take before its text is made smaller


class Tone(Enum):
    """Banner colours (background, text)."""

    NEUTRAL = ("#1d2330", "#e6e9ef")
    INFO = ("#1565c0", "#ffffff")
    WARNING = ("#8a6d00", "#ffffff")
    GRANTED = ("#1b873f", "#ffffff")
    DENIED = ("#c62828", "#ffffff")


@dataclass(frozen=True)
class BannerState:
    """What the banner shows: one line, or a big headline over a smaller second line."""

    text: str  # the whole banner in plain text
    tone: Tone
    headline: str | None = None  # two lines: headline and words
    words: str | None = None


class Banner(QLabel):
    """The banner under the video: show_state() what to say, scale() to the window's size."""

    def __init__(self) -> None:
        super().__init__(alignment=Qt.AlignmentFlag.AlignCenter)
        self.setTextFormat(Qt.TextFormat.RichText)
        # Ignored: a long line must shrink or clip, not widen the window past a small screen.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.state: BannerState | None = None
        self.plain_text = ""  # what it shows, in plain text (it is shown as rich text)
        self.headline_px = 20
        self.words_px = 16  # the second line (a name, a reason), in pixels

    def show_state(self, state: BannerState) -> None:
        if state == self.state:
            return  # restyling is not free; skip it when nothing changed
        self.state = state
        self._paint()

    def scale(self, headline_px: int) -> None:
        """Size the banner for a headline of `headline_px` pixels (the window's size decides it)."""
        font = QFont(self.font())
        font.setPixelSize(headline_px)
        font.setWeight(QFont.Weight.DemiBold)
        self.setFont(font)
        # The second line is the visitor's own name or the reason: read from a step back, like the headline.
        words_px = round(headline_px * WORDS_SCALE)
        self.setFixedHeight(round((headline_px + words_px) * 1.3))
        if (headline_px, words_px) != (self.headline_px, self.words_px):
            self.headline_px, self.words_px = headline_px, words_px
            self._paint()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._paint()  # a long line fitted to the old width may fit the new one otherwise

    def _paint(self) -> None:
        state = self.state
        if state is None:
            return
        background, foreground = state.tone.value
        self.plain_text = state.text
        if state.headline is not None:
            # Two lines: the headline big and bold, the name, reason or earlier verdict under it.
            headline_px = self._fitting_px(state.headline, self.headline_px, QFont.Weight.ExtraBold)
            words_px = self._fitting_px(state.words or "", self.words_px, QFont.Weight.Normal)
            self.setText(
                f'<div style="font-size:{headline_px}px; font-weight:800;">{html.escape(state.headline)}</div>'
                f'<div style="font-size:{words_px}px;">{html.escape(state.words or "")}</div>'
            )
        else:
            px = self._fitting_px(state.text, self.headline_px, QFont.Weight.DemiBold)
            self.setText(f'<span style="font-size:{px}px;">{html.escape(state.text)}</span>')
        self.setStyleSheet(f"background: {background}; color: {foreground};")

    def _fitting_px(self, text: str, px: int, weight: QFont.Weight) -> int:
        """`px`, or smaller so that `text` fits the banner's width on one line (a long reason
        must not run off the screen), but never below half of `px`."""
        font = QFont(self.font())
        font.setPixelSize(px)
        font.setWeight(weight)
        room = self.contentsRect().width() * BANNER_FILL
        wide = QFontMetrics(font).horizontalAdvance(text)
        return px if wide <= room or wide == 0 else max(round(px * room / wide), px // 2)
