"""The kiosk screen: live video with face boxes, a big banner for the verdict, a status line.

The GUI thread only paints: a timer shows the newest camera frame, and analysis results
arrive by signal from the worker thread (see kiosk.ui.workers).

Settings saved in admin mode apply at once (``apply_settings``): sound here, a new camera
source opened here and handed to the recognition worker, the rest on the worker's thread
between two frames (kiosk.live_settings).
"""
from __future__ import annotations

import html
import logging
import math
import os
import sqlite3
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QThread, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QFont, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kiosk.admin_secret import AdminSecret, AdminSecretError
from kiosk.camera import Camera, CameraError, CameraState, SourceKind, parse_source
from kiosk.datadir import resolve_data_dir
from kiosk.errors import KioskError
from kiosk.policy import AMBIGUOUS, LIVENESS, LOW_QUALITY, RATE_LIMITED, SEVERAL_FACES, UNKNOWN, Decision
from kiosk.settings import KioskSettings
from kiosk.sound import SoundPlayer
from kiosk.store import Store
from kiosk.ui.banner import Banner, BannerState, Tone
from kiosk.ui.guidance import hint
from kiosk.ui.pin_dialog import EnterPinDialog, SetPinDialog
from kiosk.ui.video_view import VideoView
from kiosk.ui.workers import Analyse, Analysis, AnalysisWorker

if TYPE_CHECKING:  # imported when first used: the first video frame does not wait for them
    from kiosk.calibration import DoorRule
    from kiosk.faces import Face
    from kiosk.live_settings import Applied
    from kiosk.ui.admin_window import AdminWindow
    from kiosk.ui.recognition import EngineInfo, Recognition, RecognitionWorker

log = logging.getLogger(__name__)

FRAME_INTERVAL_MS = 33  # ~30 Hz, the rate cameras deliver; showing a frame is only a copy and a paint
STATUS_INTERVAL_MS = 500  # figures that change 30 times a second cannot be read
BACKGROUND = "#0e1116"
VERDICT_S = 3.0  # how long ACCESS GRANTED / DENIED stays on the banner
CAMERA_CHECK_MS = 3000  # after switching to a device or stream: the time it gets to give a picture
# Analysis starts once the first frame is on screen: loading the recogniser holds the interpreter
# lock for seconds, so starting it beside the window's own start delays the live video
# (benchmarks/startup.py). A camera that gives no picture at first does not hold recognition back.
ANALYSIS_AFTER_FRAME_MS = 100
ANALYSIS_AT_THE_LATEST_MS = 2000

# Why access was denied, in words a visitor understands.
DENIAL_WORDS = {
    UNKNOWN: "not recognised",
    SEVERAL_FACES: "several faces — one person at a time",
    LOW_QUALITY: "face not clear — look at the camera",
    AMBIGUOUS: "ambiguous match",
    LIVENESS: "liveness check failed",
    RATE_LIMITED: "too many attempts",
}


def verdict_words(decision: Decision) -> tuple[str, str]:
    """("ACCESS GRANTED", name) or ("ACCESS DENIED", reason in words, the specific one if there is one)."""
    if decision.granted:
        return "ACCESS GRANTED", decision.name or "welcome"
    return "ACCESS DENIED", decision.detail or DENIAL_WORDS.get(decision.reason, decision.reason.replace("_", " "))


class RateMeter:
    """Events per second, and the mean of the value each carries, over the last few seconds."""

    def __init__(self, window_s: float = 2.0) -> None:
        self._window_s = window_s
        self._events: deque[tuple[float, float]] = deque()  # (time.monotonic(), value)

    def tick(self, value: float = 0.0) -> None:
        self._events.append((time.monotonic(), value))

    def rate(self) -> float:
        self._forget_old()
        return len(self._events) / self._window_s

    def mean(self) -> float | None:
        self._forget_old()
        return sum(value for _, value in self._events) / len(self._events) if self._events else None

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - self._window_s
        while self._events and self._events[0][0] < cutoff:
            self._events.popleft()


class KioskWindow(QMainWindow):
    """Owns the camera it is given (started) and the analysis thread; closing stops both.

    Close it before letting go of it: Qt aborts the process when a running QThread is destroyed.
    """

    def __init__(self, camera: Camera, analyse: Analyse | None = None,
                 data_dir: str | os.PathLike | None = None,
                 model_path: str | os.PathLike | None = None, *, loop: bool = False,
                 new_data_dir: bool = False, store: Store | None = None) -> None:
        """``analyse=None`` (the kiosk): recognition with the data dir's gallery, settings and log,
        or with a site's database shared by several doors (``store``, kiosk.store).
        A callable instead runs only that on each frame (detection, for a screen without a gallery).
        ``loop``: a video file or image folder chosen in the settings later plays over and over.
        ``new_data_dir``: the data folder was just created (the first-run screen says where)."""
        super().__init__()
        self.setWindowTitle("Face kiosk")
        self._camera = camera
        self._last_index = -1
        self._faces: list[Face] | None = None  # the latest analysis result; None until the first one
        self._analysis_error = ""
        self._display_rate = RateMeter()
        self._analysis_rate = RateMeter()
        self._stopped = False
        self._data_dir = Path(data_dir) if data_dir is not None else None  # None: resolved when first needed
        self._pin_dialog: EnterPinDialog | SetPinDialog | None = None
        self._recognising = analyse is None
        self._engine_info: EngineInfo | None = None
        self._fatal: tuple[str, str] | None = None  # (banner, status details): recognition is off
        self._verdict: tuple[str, str, Tone] | None = None  # (headline, words, tone) on the banner
        self._verdict_until = 0.0
        self._challenge: tuple[str, float] | None = None  # (prompt, time.monotonic() deadline) on the banner
        self._locked_until = 0.0  # time.monotonic() when the lockout of the face in view ends
        self._paused = False  # door decisions paused while an admin enrols someone
        self._starting = "Starting…"  # the start-up step, on the banner until recognition is ready
        self._hint = "Face detected"  # what the person at the camera should do (kiosk.ui.guidance)
        self._gallery_people: int | None = None
        self._rule_in_use: DoorRule | None = None  # from the latest analysed frame
        self.technical_text = ""  # camera, rates, model, threshold: shown in the admin window, not to visitors
        self.decisions: list[Decision] = []  # every decision shown, oldest first
        self.frames_shown = 0
        self.frames_analysed = 0
        if self._recognising:  # created when missing (kiosk.app says so when it cannot be)
            self._data_dir = resolve_data_dir(store.data_dir if store is not None else data_dir)
        self._store = store if store is not None or self._data_dir is None else Store(self._data_dir)
        self._site_words = ("", "")  # a site database: its state for the admin, a line for the visitor
        self._loop = loop
        # As last saved: a save changes the camera only when its camera field was changed.
        self._settings = KioskSettings.load(self._data_dir) if self._recognising else None
        # Enabled once the worker has read the settings (no verdict comes before that).
        self._sound = SoundPlayer(enabled=False, fallback=QApplication.beep)
        self.admin_window: AdminWindow | None = None

        self.video = VideoView()
        self.video.outline = self._recognising  # where to stand, for the person at the door
        self._new_data_dir = new_data_dir
        # How to set the kiosk up, over the video, until an admin PIN is chosen and someone is enrolled.
        self.setup_hint = QLabel(self.video)
        self.setup_hint.setWordWrap(True)
        self.setup_hint.setTextFormat(Qt.TextFormat.RichText)
        self.setup_hint.setStyleSheet("background: rgb(14, 17, 22); color: #e6e9ef; border-radius: 12px;")  # opaque: no text shows through
        self.setup_hint.hide()
        if self._settings is not None:
            self.video.mirrored = self._settings.mirror_preview
        self.banner = Banner()
        self.status = QLabel()
        # Ignored: a long status message must clip, not widen the window past a small screen.
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.setStyleSheet(f"color: #aab2bf; background: {BACKGROUND};")
        central = QWidget()
        central.setStyleSheet(f"background: {BACKGROUND};")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.video, stretch=1)
        layout.addWidget(self.banner)
        # The admin entry sits at the end of the status line: small, out of a visitor's way.
        self.admin_button = QPushButton("Admin")
        self.admin_button.setFlat(True)
        self.admin_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.admin_button.setToolTip("Admin mode (Ctrl+Shift+A)")
        self.admin_button.setStyleSheet(f"color: #6b7380; background: {BACKGROUND}; border: none; padding: 0 8px;")
        self.admin_button.clicked.connect(self.request_admin)
        status_line = QHBoxLayout()
        status_line.setContentsMargins(0, 0, 0, 0)
        status_line.setSpacing(0)
        status_line.addWidget(self.status, stretch=1)
        status_line.addWidget(self.admin_button)
        layout.addLayout(status_line)
        self.setCentralWidget(central)
        self._pin_set = self._admin_pin_set()
        self._setup_hint_key: tuple | None = None
        admin_keys = QShortcut(QKeySequence("Ctrl+Shift+A"), self)
        admin_keys.activated.connect(self.request_admin)
        self._refresh_banner()
        self._scale_fonts()

        self._thread = QThread(self)
        self._thread.setObjectName("analysis")
        self._analyse = analyse
        self._model_path = model_path
        self._worker: RecognitionWorker | AnalysisWorker | None = None  # made by _start_analysis
        QTimer.singleShot(ANALYSIS_AT_THE_LATEST_MS, self, self._start_analysis)
        self._verdict_timer = QTimer(self, singleShot=True)
        self._verdict_timer.timeout.connect(self._refresh_banner)

        self._frame_timer = QTimer(self, interval=FRAME_INTERVAL_MS)
        self._frame_timer.timeout.connect(self._show_newest_frame)
        self._frame_timer.start()
        self._status_timer = QTimer(self, interval=STATUS_INTERVAL_MS)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start()
        self._refresh_status()

    # -- analysis ----------------------------------------------------------------

    @Slot()
    def _start_analysis(self) -> None:
        """Make the worker and start its thread (once; after the first frame is on screen)."""
        if self._worker is not None or self._stopped:
            return
        if self._recognising:
            from kiosk.ui.recognition import RecognitionWorker

            worker = RecognitionWorker(self._camera, self._store, self._model_path)
            worker.analysed.connect(self._on_recognition)
            worker.site.connect(self._on_site)
            worker.ready.connect(self._on_ready)
            worker.progress.connect(self._on_progress)
            worker.fatal.connect(self._on_fatal)
            worker.reconfigured.connect(self._on_reconfigured)
            worker.pause(self._paused)  # it reads the settings file as saved now
        else:
            worker = AnalysisWorker(self._camera, self._analyse)
            worker.analysed.connect(self._on_analysis)
        worker.moveToThread(self._thread)
        self._thread.started.connect(worker.run)
        worker.finished.connect(self._thread.quit)
        worker.failed.connect(self._on_failure)
        self._worker = worker
        self._thread.start()

    # -- painting --------------------------------------------------------------

    @Slot()
    def _show_newest_frame(self) -> None:
        frame = self._camera.latest(timeout=0, newer_than=self._last_index)  # never waits
        if frame is None:
            return
        self._last_index = frame.index
        if self.frames_shown == 0:
            log.info("first camera frame shown")  # benchmarks/startup.py times the start-up by these lines
            QTimer.singleShot(ANALYSIS_AFTER_FRAME_MS, self, self._start_analysis)
        self.video.set_frame(frame.rgb)
        self._display_rate.tick()
        self.frames_shown += 1
        if self.admin_window is not None:
            self.admin_window.offer_frame(frame.rgb)  # guided enrollment capture, when it is on

    @Slot(object)
    def _on_analysis(self, analysis: Analysis) -> None:
        self._faces = list(analysis.result)
        self._analysis_rate.tick(analysis.seconds)
        self._analysis_error = ""
        self.video.set_boxes(face.box for face in self._faces)
        self._refresh_banner()

    @Slot(object)
    def _on_recognition(self, recognition: Recognition) -> None:
        result = recognition.result
        self._faces = list(result.faces)
        self._gallery_people = recognition.gallery_people
        self._rule_in_use = recognition.rule
        self._analysis_rate.tick(recognition.seconds)
        self.frames_analysed += 1
        self._analysis_error = ""
        # A locked-out face is never drawn as recognised, whoever it matches; nor is one under a denial.
        denied = self._verdict is not None and self._verdict[2] is Tone.DENIED and time.monotonic() < self._verdict_until
        self.video.set_boxes((face.box for face in self._faces),
                             (name is not None and result.locked_s <= 0 and not denied for name in result.names))
        self._hint = hint(self._faces, result.frame.rgb.shape[1])
        now = time.monotonic()
        self._locked_until = now + result.locked_s if result.locked_s > 0 else 0.0
        self._challenge = (result.challenge.prompt, now + result.challenge_left_s) if result.challenge else None
        if result.challenge_started:
            self._sound.play("prompt")  # heard as well as read: look at the screen, a move is asked
        if result.decision is not None:
            self._show_decision(result.decision)
        self._refresh_banner()

    def _show_decision(self, decision: Decision) -> None:
        headline, words = verdict_words(decision)
        if decision.reason == LOW_QUALITY and self._hint not in ("Hold still…", "Face detected"):
            words = f"face not clear — {self._hint[:1].lower()}{self._hint[1:]}"  # e.g. come closer
        if not decision.granted:
            self.video.set_boxes(self.video.boxes)  # no green box under a red banner
        self._verdict = (headline, words, Tone.GRANTED if decision.granted else Tone.DENIED)
        self._verdict_until = time.monotonic() + VERDICT_S
        self._verdict_timer.start(round(VERDICT_S * 1000) + 20)
        self.decisions.append(decision)
        self._sound.play("grant" if decision.granted else "deny")  # in the background; never waits

    @Slot(str)
    def _on_progress(self, step: str) -> None:
        self._starting = step
        self._refresh_banner()
        log.info("start-up: %s", self.banner_text)

    @Slot(object)
    def _on_ready(self, info: EngineInfo) -> None:
        self._engine_info = info
        log.info("recognition ready")
        self._sound.enabled = info.sound
        self._faces = []  # ready: idle until the first frame says otherwise
        self._refresh_status()

    @Slot(str, str)
    def _on_fatal(self, banner: str, details: str) -> None:
        self._fatal = (banner, details)
        self._refresh_status()

    @Slot(str, str)
    def _on_site(self, admin: str, visitor: str) -> None:
        self._site_words = (admin, visitor)
        self._refresh_status()

    @Slot(str)
    def _on_failure(self, message: str) -> None:
        self._analysis_error = message

    def _pause_while_enrolling(self) -> None:
        """Door decisions wait while an admin enrols someone at this camera."""
        enrolling = self.admin_window is not None and self.admin_window.enrolling
        if enrolling != self._paused and self._recognising:
            self._paused = enrolling
            if self._worker is not None:  # else it starts paused
                self._worker.pause(enrolling)

    @Slot()
    def _refresh_status(self) -> None:
        self._pause_while_enrolling()
        self.technical_text = self._technical_line()
        if self.admin_window is not None:
            self.admin_window.set_technical(self.technical_text)
        self.status.setText(self._visitor_line())
        self._refresh_banner()  # the camera may have been lost or found since the last result
        self._refresh_setup_hint()

    def _visitor_line(self) -> str:
        """The status line a visitor reads: plain words, never figures (those go to admin mode)."""
        if self._fatal is not None:
            return "Recognition is off — please ask a member of staff"
        if self._camera.state is CameraState.RECONNECTING:
            return "The camera is reconnecting…"
        if self._analysis_error:
            return "Recognition is having trouble — please ask a member of staff if this stays"
        if self._site_words[1]:
            return self._site_words[1]
        if self._faces is None:
            return "Starting…"
        return "Ready"

    def _technical_line(self) -> str:
        """Camera, rates, gallery, model and the door's threshold: for the admin window."""
        seconds = self._analysis_rate.mean()
        if self._fatal is not None:
            analysis = self._fatal[1]
        elif self._analysis_error:
            analysis = self._analysis_error
        elif seconds is None:
            analysis = "analysis idle" if self._faces is not None else "analysis starting"
        else:
            analysis = f"analysis {self._analysis_rate.rate():.1f}/s ({seconds * 1000:.0f} ms)"
        parts = [self._camera.message, f"display {self._display_rate.rate():.1f} fps", analysis]
        if self._engine_info is not None:
            if self._gallery_people is not None:
                parts.append(f"gallery {self._gallery_people} {'person' if self._gallery_people == 1 else 'people'}")
            model = f"model {self._engine_info.model}"
            if self._engine_info.devtest_accuracy is not None:
                model += f" (DevTest {self._engine_info.devtest_accuracy * 100:.1f}%)"
            rule = self._rule_in_use if self._rule_in_use is not None else self._engine_info.rule
            parts.append(f"{model}, threshold {rule.threshold:.3f} ({rule.source})")
        if self._site_words[0]:
            parts.append(self._site_words[0])
        return "  ·  ".join(parts)

    def _refresh_banner(self) -> None:
        if self._verdict is not None and time.monotonic() >= self._verdict_until:
            self._verdict = None
        if self._fatal is not None:
            state = BannerState(self._fatal[0], Tone.DENIED)
        elif self._paused:
            state = BannerState("Enrolment in progress — the door is paused", Tone.WARNING)
        elif self._camera.state is CameraState.ENDED and self._verdict is None:
            # A video file or image folder played to its end: nothing more comes, not even a
            # challenge's next frame (its verdict, if the last frame gave one, shows first).
            what = "image folder" if self._camera.spec.kind is SourceKind.FOLDER else "video"
            if self._camera.message.startswith("end of "):
                state = BannerState(f"End of the {what} — nothing more to recognise", Tone.WARNING)
            else:  # it failed: admin mode's technical line has the camera's own words
                state = BannerState(f"The {what} cannot be read — recognition has stopped", Tone.WARNING)
        elif self._challenge is not None:
            # The instruction running now always shows; a denial just before it goes under it.
            prompt, deadline = self._challenge
            prompt = f"{prompt} ({max(math.ceil(deadline - time.monotonic()), 0)} s)"
            if self._verdict is not None:
                headline, words, _ = self._verdict
                state = BannerState(f"{prompt} — {headline}: {words}", Tone.INFO, prompt, f"{headline}: {words}")
            else:
                state = BannerState(prompt, Tone.INFO)
        elif self._verdict is not None:
            headline, words, tone = self._verdict
            state = BannerState(f"{headline} — {words}", tone, headline, words)
        elif time.monotonic() < self._locked_until:
            state = BannerState(f"Too many attempts — wait {math.ceil(self._locked_until - time.monotonic())} s",
                                Tone.WARNING)
        elif self._camera.state is CameraState.RECONNECTING:
            state = BannerState("Camera unavailable", Tone.WARNING)
        elif self._faces is None:
            state = BannerState(self._starting, Tone.NEUTRAL)
        elif self._faces:
            state = BannerState(self._hint, Tone.INFO)
        else:
            state = BannerState("Look at the camera", Tone.NEUTRAL)
        self.banner.show_state(state)

    @property
    def banner_text(self) -> str:
        """The banner in plain text (it is shown as rich text)."""
        return self.banner.plain_text

    # -- size and lifetime -----------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._scale_fonts()
        self._refresh_setup_hint()

    def _scale_fonts(self) -> None:
        # One unit per 1/16 of the width or 1/9 of the height, whichever is smaller, so the
        # text keeps its proportions from a 1024x600 panel to a 1080p screen, in either orientation.
        unit = min(self.width() / 16, self.height() / 9)
        banner_px = max(20, round(unit * 0.6))
        status_px = max(12, round(unit * 0.19))  # small: the status line and the Admin link stay out of the way
        self.banner.scale(banner_px)
        font = QFont(self.font())
        font.setPixelSize(status_px)
        self.status.setFont(font)
        self.status.setFixedHeight(round(status_px * 2.0))
        self.status.setContentsMargins(status_px, 0, status_px, 0)
        self.admin_button.setFont(font)
        self.admin_button.setFixedHeight(round(status_px * 2.0))

    # -- admin mode ------------------------------------------------------------

    @Slot()
    def request_admin(self) -> None:
        """Ask for the admin PIN (choose one on first start), then open the admin window."""
        if self.admin_window is not None:
            self.admin_window.raise_()
            self.admin_window.activateWindow()
            return
        if self._pin_dialog is not None:
            self._pin_dialog.raise_()
            return
        if self._data_dir is None:
            self._data_dir = resolve_data_dir()
        secret = AdminSecret(self._data_dir)
        try:
            first_time = not secret.is_set()
        except AdminSecretError as exc:  # a damaged admin.json: say so, never fall back to "no PIN"
            self._admin_problem(str(exc))
            return
        dialog = SetPinDialog(secret, self) if first_time else EnterPinDialog(secret, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(self._open_admin)
        dialog.finished.connect(self._forget_pin_dialog)
        self._pin_dialog = dialog
        dialog.open()  # window-modal, not exec(): the video keeps running behind it

    @Slot()
    def _forget_pin_dialog(self) -> None:
        self._pin_dialog = None

    @Slot()
    def _open_admin(self) -> None:
        if self._stopped or self.admin_window is not None:
            return
        from kiosk.ui.admin_window import AdminWindow, load_card

        try:
            window = AdminWindow(self._store or self._data_dir, card=load_card(), parent=self)
        except (KioskError, sqlite3.Error, OSError) as exc:  # e.g. a database from a newer kiosk
            self._admin_problem(f"cannot open admin mode: {exc}")
            return
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.closed.connect(self._forget_admin)
        window.settings_tab.saved.connect(self.apply_settings)
        self.admin_window = window
        window.set_technical(self.technical_text)
        note = self._running_camera_note()
        if note:
            window.settings_tab.message.setText(note)
        window.show()

    @Slot()
    def _forget_admin(self) -> None:
        self.admin_window = None
        self._pin_set = self._admin_pin_set()
        self._refresh_setup_hint()

    def _admin_pin_set(self) -> bool:
        if not self._recognising:
            return True  # a detection-only screen has nothing to set up
        try:
            return AdminSecret(self._data_dir).is_set()
        except AdminSecretError:
            return True  # damaged: admin mode says so; this is no first run

    def _refresh_setup_hint(self) -> None:
        """The first-run screen: shown until a PIN is chosen and someone is enrolled."""
        # Until the first analysed frame says how many are enrolled, only a missing PIN counts.
        nobody = self._gallery_people == 0
        shown = self._recognising and self._fatal is None and (not self._pin_set or nobody)
        key = (shown, self._pin_set, self.banner.headline_px, self.video.width(), self.video.height())
        if key == self._setup_hint_key:
            return  # laying the text out again is not free
        self._setup_hint_key = key
        if not shown:
            self.setup_hint.hide()
            return
        steps = []
        if not self._pin_set:
            steps.append("Press <b>Admin</b> (bottom right, or Ctrl+Shift+A) and choose an admin PIN.")
        steps.append("In <b>People</b>, press <b>Enroll a person…</b> and add the people who may enter "
                     "(three photos each, or a live capture).")
        where = (f'<p style="font-size:{round(self.banner.headline_px * 0.4)}px;">A new data folder was created: '
                 f"{html.escape(str(self._data_dir))}</p>" if self._new_data_dir else "")
        self.setup_hint.setText(
            f'<p style="font-size:{self.banner.headline_px}px; font-weight:800;">This kiosk is not set up yet</p>'
            f'<ol style="font-size:{round(self.banner.headline_px * 0.55)}px;">'
            + "".join(f"<li>{step}</li>" for step in steps) + f"</ol>{where}")
        self._place_setup_hint()
        self.setup_hint.show()

    def _place_setup_hint(self) -> None:
        margin = max(12, self.video.width() // 12)
        self.setup_hint.setContentsMargins(self.banner.headline_px, self.banner.headline_px // 2, self.banner.headline_px, self.banner.headline_px // 2)
        self.setup_hint.setFixedWidth(max(self.video.width() - 2 * margin, 100))
        self.setup_hint.adjustSize()
        self.setup_hint.move(margin, max((self.video.height() - self.setup_hint.height()) // 2, 0))

    # -- settings saved while running ------------------------------------------

    @Slot(object)
    def apply_settings(self, settings: KioskSettings) -> None:
        """Use newly saved settings now (the admin window's Settings tab calls this on Save)."""
        self._sound.enabled = settings.sound
        self.video.mirrored = settings.mirror_preview
        self.video.update()
        if not self._recognising:  # a detection-only screen has no recogniser to reconfigure
            return
        outcome = "Saved; the kiosk is using it now."
        if self._settings is not None and settings.camera != self._settings.camera:
            outcome = self._switch_camera(settings.camera)
        self._settings = settings
        if self._worker is not None:  # else it starts with these
            self._worker.apply_settings(settings)  # taken by the worker between two frames
        if self.admin_window is not None:
            self.admin_window.settings_tab.message.setText(outcome)

    def _switch_camera(self, source: str) -> str:
        """Open `source`, hand it to the worker, then stop the old camera; says how it went."""
        try:
            camera = Camera(source, loop=self._loop).start()
        except CameraError as exc:  # e.g. a file OpenCV cannot decode: keep the camera that works
            log.error("cannot switch to camera %r: %s", source, exc)
            return f"Saved, but the camera cannot be used ({exc}); still using {self._camera.spec.label}."
        old, self._camera = self._camera, camera
        self._last_index = -1
        if self._worker is not None:  # else it starts on this camera
            self._worker.switch_camera(camera)
        old.stop()  # also ends the worker's wait for the old camera's next frame
        log.info("camera switched from %s to %s", old.spec.label, camera.spec.label)
        self._refresh_status()
        if not camera.spec.live:  # a file or folder was opened above: it plays
            return f"Saved; the kiosk is using it now, with {camera.spec.label}."
        # A device or stream opens on its reader thread: say how it went once it had time to.
        QTimer.singleShot(CAMERA_CHECK_MS, self, lambda: self._report_camera(camera))
        return f"Saved; connecting to {camera.spec.label}…"

    def _report_camera(self, camera: Camera) -> None:
        """The settings tab's message once a newly chosen live camera had time to give a picture."""
        if camera is not self._camera or self.admin_window is None:
            return
        if camera.state is CameraState.LIVE:
            text = f"Saved; the kiosk is using {camera.spec.label} now."
        else:
            text = (f"Saved, but {camera.spec.label} gives no picture ({camera.message}); the kiosk keeps "
                    "trying. Check the camera number and its cable, or choose another camera.")
        self.admin_window.settings_tab.message.setText(text)

    def _running_camera_note(self) -> str:
        """What the settings tab adds when the camera running is not the one saved (--camera)."""
        try:
            saved = parse_source(self._settings.camera).label if self._settings is not None else None
        except CameraError:
            saved = None
        if saved is None or saved == self._camera.spec.label:
            return ""
        return (f"Running now: {self._camera.spec.label} (chosen when the kiosk was started), not the "
                "camera saved here; saving a camera here switches to it.")

    @Slot(object)
    def _on_reconfigured(self, applied: Applied) -> None:
        if self._engine_info is not None:
            self._engine_info = replace(self._engine_info, rule=applied.rule, sound=applied.settings.sound)
            self._rule_in_use = None  # until the next analysed frame says what the gallery needs
        if applied.camera is not None:
            self._faces = []  # boxes from the old camera's picture mean nothing on the new one
            self.video.set_boxes([])
        self._refresh_status()

    def _admin_problem(self, message: str) -> None:
        log.error("%s", message)
        box = QMessageBox(QMessageBox.Icon.Warning, "Admin", message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._stop()
        super().closeEvent(event)

    def _stop(self) -> None:
        """Stop the worker, its thread and the camera (once); waits for the analysis in progress."""
        if self._stopped:
            return
        self._stopped = True
        if self._pin_dialog is not None:
            self._pin_dialog.reject()
        if self.admin_window is not None:
            self.admin_window.close()  # stops its threads before the window goes
        self._frame_timer.stop()
        self._status_timer.stop()
        # The camera first: its last state goes out with the worker's events before they close.
        self._camera.stop()  # also wakes the worker if it is waiting for a frame
        if self._worker is not None:  # None until the recogniser started loading
            self._worker.stop()
        self._sound.wait(1.0)  # let a verdict sound end rather than cut it (it is under a second)
        self._thread.quit()
        self._thread.wait()  # no timeout: destroying a QThread that still runs aborts the process
