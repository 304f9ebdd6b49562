"""Many frames through the real runner (MTCNN, the shipped model, SQLite) with memory tracked.

A looping video of a face walking up and away (one visit per nine frames) plays losslessly into
KioskRunner with its default policy (liveness included) and tracker; only the rate limiter is
given a limit it never reaches, since a stranger denied at every visit would otherwise lock
recognition out and leave most frames unanalysed. The resident memory of this process is
sampled every `sample_every` frames. The
slope is fitted over the samples after the first fifth of the run, so that TensorFlow's
warm-up (graph tracing, allocator pools) does not count as a leak.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import rss_mb
from .concurrency import face_video

WARM_UP_FRACTION = 0.2


@dataclass
class LongRunFigures:
    frames: int = 0
    seconds: float = 0.0
    analysed_with_faces: int = 0  # frames where a face was found (and embedded, matched)
    decisions: int = 0
    rss_start_mb: float = 0.0  # after the engine is loaded and has seen one frame
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0
    slope_mb_per_1000_frames: float = 0.0  # after the warm-up
    samples: list[tuple[int, float]] = field(default_factory=list)  # (frame, RSS MB)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "samples"},
                "fps": round(self.frames / self.seconds, 2) if self.seconds else None,
                "samples": [[frame, round(mb, 1)] for frame, mb in self.samples]}


def long_run(engine, face: np.ndarray, work: Path, frames: int, sample_every: int = 50) -> LongRunFigures:
    from kiosk.accesslog import AccessLog
    from kiosk.camera import Camera
    from kiosk.database import database_path, open_database
    from kiosk.gallery import Gallery
    from kiosk.ratelimit import RateLimits
    from kiosk.runner import KioskRunner

    work.mkdir(parents=True, exist_ok=True)
    video = face_video(work / "long.avi", face, visits=12)
    engine.embed(face)  # load and trace before the first sample
    figures = LongRunFigures()
    (work / "data").mkdir(exist_ok=True)
    conn = open_database(database_path(work / "data"))
    camera = Camera(video, loop=True, realtime=False)
    figures.rss_start_mb = rss_mb()
    figures.samples.append((0, figures.rss_start_mb))
    started = time.perf_counter()
    try:
        runner = KioskRunner(camera, engine, Gallery(conn), AccessLog(conn),
                             rate_limits=RateLimits(max_denials=10**9))
        for result in runner.run(every_frame=True):
            figures.frames += 1
            figures.decisions += result.decision is not None
            figures.analysed_with_faces += bool(result.faces)
            if figures.frames % sample_every == 0:
                figures.samples.append((figures.frames, rss_mb()))
            if figures.frames >= frames:
                runner.stop()
    finally:
        camera.stop()
        conn.close()
    figures.seconds = round(time.perf_counter() - started, 1)
    figures.rss_end_mb = rss_mb()
    figures.samples.append((figures.frames, figures.rss_end_mb))
    figures.rss_max_mb = max(mb for _, mb in figures.samples)
    figures.slope_mb_per_1000_frames = memory_slope(figures.samples)
    for key in ("rss_start_mb", "rss_end_mb", "rss_max_mb"):
        setattr(figures, key, round(getattr(figures, key), 1))
    return figures


def memory_slope(samples: list[tuple[int, float]]) -> float:
    """Least-squares MB per 1000 frames over the samples after the warm-up (0.0 with fewer than three)."""
    start = samples[-1][0] * WARM_UP_FRACTION
    kept = [(f, mb) for f, mb in samples if f >= start]
    if len(kept) < 3:
        return 0.0
    x, y = np.array(kept, dtype=float).T
    return round(float(np.polyfit(x, y, 1)[0]) * 1000, 2)
