"""Section "endtoend": frames/s through KioskRunner, and the time from a face appearing to the grant.

Each walk-in video (see benchmarks.speed.sequences) is played twice through the kiosk's own loop
(Camera -> KioskRunner.run -> detect, embed, match, DecisionPolicy, AccessLog with thumbnails)
against a real SQLite gallery of enrolled LFW people (see benchmarks.speed.people):

- lossless: every frame is analysed (Camera(realtime=False)); the time to the decision is the
  processing time of the frames from the first one with the face to the grant;
- realtime: the video plays at its 25 fps and the runner takes the newest frame, dropping what
  it cannot keep up with, as with a live camera; the time to the decision runs on the wall
  clock from the moment the first face frame was shown (the camera's time stamps) to the grant;
- paced: as realtime, with the analysis rate caps of the kiosk's default settings
  (kiosk.pacing: fewer frames analysed a second, fewer still before anyone is in view), as
  the kiosk window and `python -m kiosk run` on a camera run it. Realtime is the uncapped
  case (settings at 0), which shows what the caps cost in time to the grant and save in CPU.

Each run also reports the process's CPU time over its wall time (100% = one core busy).

Both are measured from the frame where the face enters the picture (part of its box inside)
and from the first frame with the whole face in view. Each video is played once untimed
first (losslessly, up to the grant): first calls trace TensorFlow functions for new shapes.

Liveness is off (the challenge aside): the policy grants on recognition alone.
The runner runs as the kiosk runs it, with its defaults (face tracking between full searches
included, where the runner has it); the report says whether tracking was on.
The policy needs several agreeing frames, so the number of frames is reported beside the time.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.speed.options import RESOLUTIONS
from benchmarks.speed.sequences import Sequence
from benchmarks.speed.stats import latency
from kiosk.accesslog import AccessLog
from kiosk.camera import Camera
from kiosk.database import open_database
from kiosk.gallery import Gallery
from kiosk.live_settings import pace_from_settings
from kiosk.pacing import AnalysisPace
from kiosk.policy import Decision, DecisionPolicy
from kiosk.runner import KioskRunner
from kiosk.settings import KioskSettings

MODES = ("lossless", "realtime", "paced")

PER_DETECTOR = True


@dataclass(frozen=True)
class Analysed:
    index: int  # the video frame
    shown: float  # time.monotonic() when the camera read it
    done: float  # time.monotonic() when the runner had finished with it
    faces: int
    decision: Decision | None


def run(ctx, detector: str) -> dict:
    engine, database = ctx.engine(detector), ctx.database(detector)
    cast = ctx.cast
    result: dict = {
        "walker": cast.walker, "walker_photo": cast.probe.relpath, "walker_photo_score": cast.probe_score,
        "gallery_people": len(cast.enrolled),
        "threshold": _door_threshold(engine, database),
        "liveness": "off (DecisionPolicy() without a liveness gate)",
        "pace": pace_from_settings(KioskSettings()).describe(),
    }
    for size in RESOLUTIONS:
        sequence = ctx.walkin(size)
        play(engine, database, sequence, realtime=False, stop_after_grant=True)  # warm-up
        result[f"{size[0]}x{size[1]}"] = {
            "video": {"file": sequence.path.name, "frames": sequence.frames, "fps": sequence.fps,
                      "face_enters_frame": sequence.face_enters_frame, "whole_face_frame": sequence.whole_face_frame},
            "lossless": play(engine, database, sequence, realtime=False, stop_after_grant=ctx.options.stop_after_grant),
            "realtime": play(engine, database, sequence, realtime=True, stop_after_grant=ctx.options.stop_after_grant),
            "paced": play(engine, database, sequence, realtime=True, stop_after_grant=ctx.options.stop_after_grant,
                          pace=pace_from_settings(KioskSettings())),
        }
    return result


def _door_threshold(engine, database: Path) -> float:
    """The threshold the door applies to the bench's gallery (kiosk.calibration)."""
    conn = open_database(database)
    try:
        return engine.door_rule(*Gallery(conn).matrix()).threshold
    finally:
        conn.close()


def play(engine, database: Path, sequence: Sequence, *, realtime: bool, stop_after_grant: bool,
         pace: AnalysisPace | None = None) -> dict:
    """Run the kiosk loop over `sequence`; frames/s, CPU and the time to the grant."""
    conn = open_database(database)
    analysed: list[Analysed] = []
    try:
        with Camera(sequence.path, realtime=realtime) as camera:
            runner = KioskRunner(camera, engine, Gallery(conn), AccessLog(conn), DecisionPolicy(),
                                 thumbnails=True, camera_name="bench", pace=pace)
            tracking = getattr(runner, "tracker", None) is not None  # the runner's own default
            started, cpu_started = time.monotonic(), time.process_time()
            for frame in runner.run(every_frame=True):
                analysed.append(Analysed(frame.frame.index, frame.frame.timestamp, time.monotonic(),
                                         len(frame.faces), frame.decision))
                if stop_after_grant and frame.decision is not None and frame.decision.granted:
                    runner.stop()
        cpu_percent = round(100 * (time.process_time() - cpu_started) / (time.monotonic() - started), 1)
    finally:
        conn.close()
    return {"tracking": tracking, "cpu_percent": cpu_percent, **_throughput(analysed, started),
            "decision": _time_to_grant(analysed, sequence, realtime, started)}


def _throughput(analysed: list[Analysed], started: float) -> dict:
    # The gap between two results is one frame's analysis (plus, in real time, any wait for a new frame).
    gaps = [(b.done - a.done, b.faces > 0) for a, b in itertools.pairwise(analysed)]
    span = analysed[-1].done - analysed[0].done if len(analysed) > 1 else 0.0
    played = analysed[-1].index + 1 if analysed else 0
    return {
        "frames_analysed": len(analysed),
        "frames_played": played,
        "frames_dropped": played - len(analysed),
        "frames_per_s": round((len(analysed) - 1) / span, 3) if span > 0 else None,
        "seconds": round((analysed[-1].done if analysed else started) - started, 3),
        "per_frame_with_face": latency([gap for gap, face in gaps if face]),
        "per_frame_without_face": latency([gap for gap, face in gaps if not face]),
    }


def _time_to_grant(analysed: list[Analysed], sequence: Sequence, realtime: bool, started: float) -> dict:
    denials = [a.decision.reason for a in analysed if a.decision is not None and not a.decision.granted]
    grant = next((a for a in analysed if a.decision is not None and a.decision.granted
                  and a.index >= sequence.face_enters_frame), None)
    if grant is None:
        return {"granted": False, "denials": denials}

    def since(first: int) -> dict:
        before = [a for a in analysed if a.index < first]
        if realtime:
            # When frame `first` was shown: from the time stamp of the last frame analysed
            # before it (or of the first analysed at all), at the video's frame rate.
            anchor = before[-1] if before else analysed[0]
            appeared = anchor.shown + (first - anchor.index) / sequence.fps
        else:
            appeared = before[-1].done if before else started  # the processing of frame `first` starts here
        return {
            "frame": first,
            "video_frames": grant.index - first + 1,
            "frames_analysed": sum(1 for a in analysed if first <= a.index <= grant.index),
            "seconds": round(grant.done - appeared, 3),
        }

    return {
        "granted": True,
        "denials": denials,
        "grant_frame": grant.index,
        "name": grant.decision.name,
        "score": round(grant.decision.score, 4) if grant.decision.score is not None else None,
        "from_face_entering": since(sequence.face_enters_frame),
        "from_whole_face": since(min(sequence.whole_face_frame, grant.index)),
    }
