"""The kiosk program: ``face-kiosk`` / ``python main.py``.

Arguments are parsed and the camera opened before Qt starts, so a bad source ends with a
one-line error instead of an empty window, and ``--help`` never waits for TensorFlow
(the detector loads on the analysis thread once the window is up).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication

from kiosk import __version__, logsetup
from kiosk.camera import ACCEPTED_SOURCES, Camera, CameraError
from kiosk.datadir import resolve_data_dir
from kiosk.settings import KioskSettings
from kiosk.ui.kiosk_window import KioskWindow

log = logging.getLogger(__name__)

DEFAULT_SIZE = (1280, 720)  # windowed mode; shrunk to fit smaller screens


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="face-kiosk",
        description="Face-recognition access kiosk: shows the camera and who is at the door.",
        epilog="Enrolling from photos, the access log and a kiosk without a screen: face-kiosk-admin.",
    )
    parser.add_argument("--camera", metavar="SOURCE",
                        help=f"{ACCEPTED_SOURCES} (default: the camera in the admin settings, at first 0)")
    parser.add_argument("--fullscreen", action="store_true", help="fill the screen (for the kiosk itself)")
    parser.add_argument("--loop", action="store_true", help="play a video file or image folder over and over")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="where the kiosk keeps its database of enrolled people, access events, "
                             "settings and admin PIN (default: $KIOSK_DATA_DIR or the per-user data folder)")
    logsetup.add_options(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        logsetup.configure_from(options, lambda: resolve_data_dir(options.data_dir))
    except logsetup.LogSetupError as exc:
        print(f"face-kiosk: error: {exc}", file=sys.stderr)
        return 2
    log.info("face-kiosk %s starting", __version__)
    source = options.camera
    if source is None:  # the camera chosen in admin mode, kept in the data dir's settings
        source = KioskSettings.load(resolve_data_dir(options.data_dir)).camera
    try:
        camera = Camera(source, loop=options.loop).start()
    except CameraError as exc:
        log.error("cannot start: %s", exc, extra={logsetup.SHOWN: True})
        print(f"face-kiosk: error: {exc}", file=sys.stderr)
        return 2
    previous_sigint = signal.getsignal(signal.SIGINT)
    try:
        app = QApplication.instance() or QApplication(sys.argv[:1])
        app.setApplicationName("face-kiosk")
        app.setApplicationDisplayName("Face kiosk")
        # Qt 6 scales for high-DPI screens by itself; the window sizes its fonts from its own size.
        window = KioskWindow(camera, data_dir=options.data_dir, loop=options.loop)
        # Python sees Ctrl+C only between Qt events; the window's timers provide those.
        signal.signal(signal.SIGINT, lambda *_: window.close())
        if options.fullscreen:
            # Sized by hand too: without a window manager (a bare X session) nobody else resizes it.
            window.setGeometry(window.screen().geometry())
            window.showFullScreen()
        else:
            available = window.screen().availableGeometry()
            window.resize(min(DEFAULT_SIZE[0], available.width()), min(DEFAULT_SIZE[1], available.height()))
            window.show()
        return app.exec()
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
        camera.stop()  # the window stops it on close; this covers a failure before that
