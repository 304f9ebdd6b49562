"""Start-up of the kiosk program: seconds from launch to live video, and to recognition ready.

Each run launches ``python main.py``'s entry point (kiosk.app.main) in a fresh process on a
640x480 video of an enrolled person, with a fresh copy of a data folder, and reads the program's
first log line ("face-kiosk VERSION starting": Python and the imports are done) and the window's
log lines "first camera frame shown" (the video is live on screen) and "recognition ready" (the
detector and embedder are loaded and warmed up, the database is open: the next visitor is judged
at full speed). The first run's figures include a cold file cache; the median is over all runs.
Run it under Xvfb for real painting, or with QT_QPA_PLATFORM=offscreen (the default here).

    python benchmarks/startup.py [--runs 5] [--out reports/startup.json]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402

FRAME_SIZE = (640, 480)
TIMEOUT_S = 120.0
EVENTS = {"first camera frame shown": "video_s", "recognition ready": "ready_s"}
STARTING = "start_s"  # the line "face-kiosk VERSION starting": Python and the program's imports are done
# The child logs with wall-clock stamps (the parent's time.time() before launching is the zero).
CHILD = ("import logging, sys\n"
         "logging.basicConfig(level=logging.INFO, format='%(created).3f %(message)s')\n"
         "from kiosk.app import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def make_video(path: Path) -> Path:
    """Five seconds of a wall with a face-sized grey square (what matters is the picture size)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, FRAME_SIZE)
    frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), (96, 110, 120), np.uint8)
    for _ in range(125):
        writer.write(frame)
    writer.release()
    return path


def one_run(video: Path, data_dir: Path) -> dict[str, float]:
    """Launch the kiosk, wait for both log lines, close it (Ctrl+C, as a terminal would)."""
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    started = time.time()
    child = subprocess.Popen([sys.executable, "-c", CHILD, "--camera", str(video), "--loop",
                              "--data-dir", str(data_dir)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    figures: dict[str, float] = {}
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for line in child.stderr:
            stamp, _, message = line.strip().partition(" ")
            key = EVENTS.get(message)
            if key is None and message.startswith("face-kiosk ") and message.endswith(" starting"):
                key = STARTING
            if key is not None and key not in figures:
                figures[key] = float(stamp) - started
            if len(figures) == len(EVENTS) + 1 or time.monotonic() > deadline:
                break
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if len(figures) != len(EVENTS) + 1:
        raise RuntimeError(f"the kiosk did not report both start-up steps within {TIMEOUT_S:.0f} s: {figures}")
    return figures


def markdown(report: dict) -> str:
    rows = "\n".join(f"| {i + 1} | {r['start_s']:.2f} | {r['video_s']:.2f} | {r['ready_s']:.2f} |"
                     for i, r in enumerate(report["runs"]))
    median = report["median"]
    return (f"# Kiosk start-up\n\n`python benchmarks/startup.py --runs {len(report['runs'])}` "
            f"({report['machine']}, {report['cpus']} CPUs, load average {report['load_average']:.1f} "
            f"at the start; Qt platform {report['qt_platform']}).\n\n"
            "Seconds from launching the program to its first log line (Python started and the program's "
            "imports done), to the first camera frame on screen (live video) and to recognition ready "
            "(models loaded and warmed up, database open).\n\n"
            "| run | program started (s) | live video (s) | recognition ready (s) |\n| --- | --- | --- | --- |\n"
            f"{rows}\n| **median** | **{median['start_s']:.2f}** | **{median['video_s']:.2f}** "
            f"| **{median['ready_s']:.2f}** |\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "startup.json")
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    load = os.getloadavg()[0]  # other work on the cores slows the start: say how much there was
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "door.avi")
        runs = []
        for run in range(options.runs):
            data_dir = Path(tmp) / f"data-{run}"
            runs.append(one_run(video, data_dir))
            shutil.rmtree(data_dir, ignore_errors=True)
            print(f"run {run + 1}: live video {runs[-1]['video_s']:.2f} s, "
                  f"recognition ready {runs[-1]['ready_s']:.2f} s", flush=True)
    report = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": load,
        "qt_platform": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        "runs": runs,
        "median": {key: statistics.median(r[key] for r in runs) for key in (STARTING, *EVENTS.values())},
    }
    atomic_write_json(options.out, report)
    atomic_write_bytes(options.out.with_suffix(".md"), markdown(report).encode())
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
