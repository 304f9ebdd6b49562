"""Section "memory": peak RSS, and whether memory grows over a long run of the kiosk loop.

The long run loops the 640x480 walk-in video through Camera -> KioskRunner (lossless, so
every frame is analysed) for --long-frames frames: people keep arriving, are granted and
logged with thumbnails, as at a busy door. RSS is sampled every --rss-every frames; the slope
(MB per 1,000 frames, least squares) says whether anything leaks.
"""
from __future__ import annotations

import time

from benchmarks.speed.stats import peak_rss_mb, rss_mb, slope
from kiosk.accesslog import AccessLog
from kiosk.camera import Camera
from kiosk.database import open_database
from kiosk.gallery import Gallery
from kiosk.policy import DecisionPolicy
from kiosk.runner import KioskRunner

PER_DETECTOR = True
LONG_RUN_SIZE = (640, 480)


def run(ctx, detector: str) -> dict:
    options = ctx.options
    engine, database = ctx.engine(detector), ctx.database(detector)
    sequence = ctx.walkin(LONG_RUN_SIZE)
    samples: list[tuple[int, float]] = []
    frames = decisions = 0
    conn = open_database(database)
    try:
        with Camera(sequence.path, realtime=False, loop=True) as camera:
            runner = KioskRunner(camera, engine, Gallery(conn), AccessLog(conn), DecisionPolicy(),
                                 thumbnails=True, camera_name="bench-long")
            started = time.perf_counter()
            for result in runner.run(every_frame=True):
                frames += 1
                decisions += result.decision is not None
                if frames == 1 or frames % options.rss_every == 0 or frames >= options.long_frames:
                    samples.append((frames, round(rss_mb(), 2)))
                if frames >= options.long_frames:
                    runner.stop()
            seconds = time.perf_counter() - started
    finally:
        conn.close()
    per_frame = slope([f for f, _ in samples], [mb for _, mb in samples])
    return {
        "peak_rss_mb": round(peak_rss_mb(), 2),  # ru_maxrss of the whole process, at the samples' precision (it bounds them)
        "long_run": {
            "frames": frames,
            "video": sequence.path.name,
            "decisions_logged": decisions,
            "frames_per_s": round(frames / seconds, 3) if seconds > 0 else None,
            "rss_every": options.rss_every,
            "rss_start_mb": samples[0][1] if samples else None,
            "rss_end_mb": samples[-1][1] if samples else None,
            "rss_max_mb": max(mb for _, mb in samples) if samples else None,
            "rss_slope_mb_per_1000_frames": None if per_frame is None else round(per_frame * 1000, 3),
            "samples": samples,
        },
    }
