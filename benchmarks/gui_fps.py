"""Frame rates of the kiosk screen while it recognises: displayed frames/s and analysed frames/s.

The real KioskWindow (the GUI thread paints, the recognition worker runs MTCNN and the model
on its own thread) plays a 640x480 video at 25 frames/s, looped like a live camera: a person
enrolled from three LFW photos walks slowly across the picture, then a stranger, with empty
frames between them (``--scene empty``: the empty wall only, a kiosk's usual view). After a warm-up, the counts of frames shown and frames analysed are
sampled over the measuring window. Run it under Xvfb for real painting, or with
QT_QPA_PLATFORM=offscreen (the default here) where Qt paints into memory.

The kiosk analyses at most so many frames a second (kiosk.pacing; the settings' defaults
unless --analysis-fps / --idle-analysis-fps say otherwise, 0 for every frame it can).

    python benchmarks/gui_fps.py [--seconds 30] [--fps 25] [--scene door|empty] [--analysis-fps N]
                                 [--idle-analysis-fps N] [--out reports/gui_fps.json]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from kiosk.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from kiosk.live_settings import pace_from_settings  # noqa: E402
from kiosk.settings import KioskSettings  # noqa: E402

PERSON, STRANGER = "Jennifer_Capriati", "Gerhard_Schroeder"  # as in tests/test_ui_kiosk.py
NAME = "Jennifer Capriati"
FRAME_SIZE = (640, 480)
WARM_UP_S = 8.0  # model loading, first traces and the first decisions happen here
SEGMENT_S = 4.0  # seconds of each part of the looped video
SCENES = ("door", "empty")


def door_video(path: Path, segments: list[np.ndarray | None], fps: float) -> Path:
    """One loop of the camera: a segment per entry, the empty wall (None) or that face crossing it slowly."""
    width, height = FRAME_SIZE
    wall = np.full((height, width, 3), (96, 110, 120), np.uint8)
    frames_per_segment = int(SEGMENT_S * fps)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME_SIZE)
    if not writer.isOpened():
        raise RuntimeError("this OpenCV build cannot write MJPG .avi")
    for face in segments:
        for k in range(frames_per_segment):
            frame = wall.copy()
            if face is not None:
                x = 120 + int(200 * k / frames_per_segment)  # a slow walk across the door
                frame[100:100 + face.shape[0], x:x + face.shape[1]] = face
            writer.write(frame)
    writer.release()
    return path


def measure(seconds: float, fps: float, lfw_dir: str | None, settings, scene: str) -> dict:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from kiosk.camera import Camera
    from kiosk.cli import main as cli_main
    from kiosk.ui.kiosk_window import KioskWindow
    from training.lfw import LFW

    lfw = LFW.locate(lfw_dir)
    photos = {name: [lfw.image_path(ref) for ref in lfw.images_of([name])[:14]] for name in (PERSON, STRANGER)}
    _application = QApplication.instance() or QApplication([])  # must outlive the window
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        if cli_main(["--data-dir", str(data_dir), "enroll", NAME, *map(str, photos[PERSON][:3])]) != 0:
            raise RuntimeError("enrolling the test person failed")
        settings.save(data_dir)
        person, stranger = (cv2.resize(cv2.imread(str(photos[name][index])), (300, 300)) for name, index in
                            ((PERSON, 11), (STRANGER, 0)))
        segments = [None, person, None, stranger] if scene == "door" else [None]
        video = door_video(Path(tmp) / "door.avi", segments, fps=fps)
        window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=data_dir)
        window.resize(1024, 600)
        window.show()

        def run_for(duration: float) -> None:
            loop = QEventLoop()
            QTimer.singleShot(int(duration * 1000), loop.quit)
            loop.exec()

        try:
            run_for(WARM_UP_S)
            shown, analysed, started = window.frames_shown, window.frames_analysed, time.monotonic()
            cpu_started = time.process_time()
            run_for(seconds)
            elapsed = time.monotonic() - started
            result = {
                "displayed_fps": round((window.frames_shown - shown) / elapsed, 2),
                "analysed_fps": round((window.frames_analysed - analysed) / elapsed, 2),
                "seconds": round(elapsed, 1),
                "process_cpu_percent": round(100 * (time.process_time() - cpu_started) / elapsed, 1),
                "status_line": window.technical_text,
            }
        finally:
            window.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring window after the warm-up")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the played video")
    parser.add_argument("--analysis-fps", type=float, help="the settings' analysis_fps (default: theirs)")
    parser.add_argument("--idle-analysis-fps", type=float, help="the settings' idle_analysis_fps (default: theirs)")
    parser.add_argument("--scene", choices=SCENES, default="door",
                        help="door: the person, then a stranger, with the empty wall between them; "
                             "empty: the wall only, as a kiosk sees most of the day")
    parser.add_argument("--lfw-dir", help="LFW folder (default: $LFW_DIR)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "gui_fps.json")
    args = parser.parse_args(argv)
    settings = KioskSettings().with_rates(args.analysis_fps, args.idle_analysis_fps)
    settings.validate()
    figures = measure(args.seconds, args.fps, args.lfw_dir, settings, args.scene)
    report = {
        "benchmark": "kiosk screen frame rates while recognising (benchmarks/gui_fps.py)",
        "source": f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]} MJPG video at {args.fps:g} frames/s, looped as a live camera, "
                  f"scene {args.scene!r}",
        "pace": pace_from_settings(settings).describe(),
        "qt_platform": os.environ.get("QT_QPA_PLATFORM", ""),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        **figures,
        "command": "python benchmarks/gui_fps.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(args.out, report)
    md = args.out.with_suffix(".md")
    atomic_write_bytes(md, (
        "# Kiosk screen frame rates\n\n"
        f"Source: {report['source']}; Qt platform `{report['qt_platform']}`; {report['machine']['cores']} cores; "
        f"{report['pace']}.\n\n"
        f"| displayed frames/s | analysed frames/s | process CPU | seconds |\n|---|---|---|---|\n"
        f"| {figures['displayed_fps']} | {figures['analysed_fps']} | {figures['process_cpu_percent']}% | "
        f"{figures['seconds']} |\n\nCommand: `{report['command']}`\n").encode("utf-8"))
    print(f"displayed {figures['displayed_fps']} frames/s, analysed {figures['analysed_fps']} frames/s "
          f"over {figures['seconds']} s (video {args.fps:g} fps); wrote {args.out} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
