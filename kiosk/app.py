"""The kiosk program: ``face-kiosk`` / ``python main.py``.

Arguments are parsed before Qt starts, so ``--help`` never waits for anything (the detector
and the face model load on the analysis thread once the window is up). A camera or data folder that
cannot be used is shown in a window with what to do and a Try again button (kiosk.ui.startup_problem),
and printed as a one-line error; closing that window exits with status 2.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMainWindow

from kiosk import __version__, logsetup
from kiosk.camera import ACCEPTED_SOURCES, Camera, CameraError
from kiosk.datadir import chosen_data_dir, resolve_data_dir
from kiosk.events import check_door_id
from kiosk.settings import KioskSettings
from kiosk.store import Store
from kiosk.ui.kiosk_window import KioskWindow
from kiosk.ui.startup_problem import StartupProblem, StartupProblemWindow

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
    parser.add_argument("--database", metavar="URL",
                        help="a site's shared PostgreSQL database, postgresql://USER@HOST/DB, for several doors "
                             "(else $KIOSK_DATABASE_URL, else the data folder's own database)")
    parser.add_argument("--door-id", metavar="ID",
                        help="this door's name in the access log: a-z, 0-9, - and _ (default: the settings' "
                             "door id, else the host name)")
    logsetup.add_options(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def open_data_dir(explicit: Path | None) -> tuple[Path, bool]:
    """The data folder (created, owner-only, when missing) and whether it was just created;
    StartupProblem when it cannot be made or written."""
    chosen = chosen_data_dir(explicit)
    existed = chosen.is_dir()
    todo = (f"Create the folder {chosen} for the user the kiosk runs as, or start the kiosk with "
            "--data-dir pointing to a folder that user may write; then press Try again.")
    try:
        path = resolve_data_dir(explicit)
    except OSError as exc:
        raise StartupProblem("The kiosk's data folder cannot be created", todo,
                             f"{chosen}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupProblem("The kiosk's data folder cannot be written", todo, f"{path}: permission denied")
    return path, not existed


def open_kiosk(options: argparse.Namespace, created: bool = False) -> KioskWindow:
    """The kiosk window on the chosen data folder and camera; StartupProblem when either cannot be used.
    `created`: the data folder was made earlier in this start (the first-run screen says so)."""
    data_dir, made = open_data_dir(options.data_dir)
    created = created or made
    try:
        store = Store.choose(data_dir, options.database, options.door_id)
        check_door_id(store.door_name())
    except ValueError as exc:
        raise StartupProblem("The kiosk's database cannot be used",
                             "Correct --database (a postgresql:// URL) or --door-id in the kiosk's start command, "
                             "then press Try again.", str(exc)) from exc
    source = options.camera
    if source is None:  # the camera chosen in admin mode, kept in the data dir's settings
        source = KioskSettings.load(data_dir).camera
        todo = ("Connect the camera, then press Try again. To use another camera, start the kiosk with "
                "--camera SOURCE (a device number, video file, image folder or stream URL).")
    else:
        todo = ("Correct --camera in the kiosk's start command (a device number, video file, image folder "
                "or stream URL), or connect the camera it names; then press Try again.")
    try:
        camera = Camera(source, loop=options.loop).start()
    except CameraError as exc:
        raise StartupProblem("The camera cannot be opened", todo, str(exc)) from exc
    try:
        return KioskWindow(camera, data_dir=data_dir, loop=options.loop, new_data_dir=created, store=store)
    except BaseException:
        camera.stop()
        raise


def show(window: QMainWindow, fullscreen: bool) -> None:
    if fullscreen:
        # Sized by hand too: without a window manager (a bare X session) nobody else resizes it.
        window.setGeometry(window.screen().geometry())
        window.showFullScreen()
    else:
        available = window.screen().availableGeometry()
        window.resize(min(DEFAULT_SIZE[0], available.width()), min(DEFAULT_SIZE[1], available.height()))
        window.show()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    created = False
    try:
        _, created = open_data_dir(options.data_dir)  # made now if missing: the log file goes there
        log_dir = lambda: resolve_data_dir(options.data_dir)  # noqa: E731
    except StartupProblem:  # said in the window below; meanwhile no log file in it
        log_dir = None
    try:
        logsetup.configure_from(options, log_dir)
    except logsetup.LogSetupError as exc:
        print(f"face-kiosk: error: {exc}", file=sys.stderr)
        return 2
    log.info("face-kiosk %s starting", __version__)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("face-kiosk")
    app.setApplicationDisplayName("Face kiosk")
    # Qt 6 scales for high-DPI screens by itself; the windows size their fonts from their own size.
    current: list[QMainWindow] = []
    try:
        current.append(open_kiosk(options, created))
    except StartupProblem as problem:
        # Said in the window too: a kiosk started at boot has no terminal.
        log.error("cannot start: %s", problem, extra={logsetup.SHOWN: True})
        print(f"face-kiosk: error: {problem}", file=sys.stderr)
        problem_window = StartupProblemWindow(problem, lambda: open_kiosk(options, created))

        def started(window: QMainWindow) -> None:
            current.append(window)
            show(window, options.fullscreen)

        problem_window.started.connect(started)
        current.append(problem_window)
    previous_sigint = signal.getsignal(signal.SIGINT)
    # Python sees Ctrl+C only between Qt events; the windows' timers provide those.
    signal.signal(signal.SIGINT, lambda *_: current[-1].close())
    try:
        show(current[-1], options.fullscreen)
        status = app.exec()
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
        current[-1].close()  # stops the kiosk's camera and threads if the loop ended another way
    return 2 if isinstance(current[-1], StartupProblemWindow) else status
