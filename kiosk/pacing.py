"""How often the kiosk analyses a frame: a cap while someone is in view, a lower one while nobody is.

A camera gives 25-30 frames a second, but a door decides on 3 agreeing frames and a head
move, so analysing every frame buys a few hundredths of a second and costs most of a CPU
(benchmarks/gui_fps.py). An office kiosk sits in front of an empty corridor most of the day,
where one look every 0.2 s finds whoever walks up in time.

    pace = AnalysisPace(busy_fps=15, idle_fps=5)
    wait = pace.wait_s(time.monotonic())      # sleep this long before taking the next frame
    pace.record(started, faces=len(faces))    # after analysing a frame that started at `started`

0 frames/s means no cap. Times are time.monotonic() seconds.
"""
from __future__ import annotations

IDLE_AFTER_S = 2.0  # nobody seen for this long: drop to the idle rate (bridges a missed detection or two)
MAX_FPS = 60.0  # above any camera's rate: a cap this high is no cap


class AnalysisPace:
    """At most `busy_fps` analyses a second while a face was seen within `idle_after_s`,
    at most `idle_fps` otherwise (0: no cap)."""

    def __init__(self, busy_fps: float, idle_fps: float, idle_after_s: float = IDLE_AFTER_S) -> None:
        for name, fps in (("busy_fps", busy_fps), ("idle_fps", idle_fps)):
            if not 0 <= fps <= MAX_FPS:
                raise ValueError(f"{name} must be 0 (no cap) to {MAX_FPS:g} frames/s, got {fps}")
        self.busy_fps = busy_fps
        self.idle_fps = idle_fps
        self.idle_after_s = idle_after_s
        self._last_start: float | None = None
        self._last_face: float | None = None

    @property
    def idle(self) -> bool:
        """Nobody seen lately (or ever): the idle rate applies."""
        # record() sets the start whenever it sets the face, so a face implies a start.
        return self._last_face is None or self._last_start - self._last_face > self.idle_after_s

    def record(self, started: float, faces: int) -> None:
        """One frame analysed, which began at `started` and found `faces` faces."""
        self._last_start = started
        if faces:
            self._last_face = started

    def wait_s(self, now: float) -> float:
        """Seconds to wait from `now` before the next analysis may start (0: go ahead)."""
        fps = self.idle_fps if self.idle else self.busy_fps
        if self._last_start is None or fps == 0:
            return 0.0
        return max(0.0, self._last_start + 1.0 / fps - now)

    def reset(self) -> None:
        """Forget who was seen (a new camera: its first frame is looked at at once)."""
        self._last_start = self._last_face = None

    def describe(self) -> str:
        def rate(fps: float) -> str:
            return f"{fps:g}/s" if fps else "every frame"
        return f"analysis {rate(self.busy_fps)}, {rate(self.idle_fps)} with nobody in view"
