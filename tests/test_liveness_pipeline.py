"""Liveness and rate limiting end to end: real video files (cv2.VideoWriter) as the camera, the
real detector and model, real SQLite, George W. Bush enrolled from three LFW photos.

- A printed photo of him (another LFW photo), held up and moved by hand (jitter, tilts to 45
  degrees and held at 55 about the vertical axis, a nod-like tilt, hand waves; see
  tests/liveness_media.py), is never granted, whichever move is asked, and is denied with the
  reason "liveness". Held steadily and turned slowly instead, it keeps its track, so the
  challenge judges the move itself and denies it for moving like a flat picture.
- A genuine challenge sequence (real photos of him: frontal, turned the asked way, frontal
  again, at the same place in the frame) is granted, with the liveness outcome in the log.
- `python -m kiosk run` prints the challenge when it starts, and "too many attempts" when
  repeated denials lock it out; the kiosk screen shows both.

These are the kiosk's core promises, so the module is part of the default run (one to two
minutes on two cores, most of it the replays).

Limitation: LFW has photos, not videos. The genuine sequences carry the parallax of a real
head (between real photos at different poses), but not the continuous motion of a live one.
The photo numbers were chosen with the real detector (yaw/pitch of every image of the person);
test_genuine_photos_turn_the_way_their_role_says checks that choice on every run.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from liveness_media import (
    FRAME_H,
    FRAME_W,
    STEADY_TURN_SCRIPT,
    Pose,
    background,
    genuine_frames,
    render,
    replay_frames,
    write_video,
)

from kiosk.accesslog import AccessLog
from kiosk.camera import Camera
from kiosk.cli import main as cli_main
from kiosk.database import database_path, open_database
from kiosk.gallery import Gallery
from kiosk.liveness import Challenge, LivenessConfig, LivenessGate
from kiosk.policy import LIVENESS, DecisionPolicy
from kiosk.quality import head_pose
from kiosk.ratelimit import RateLimits

PERSON, NAME = "George_W_Bush", "George W Bush"
ENROLL = (25, 31, 37)  # frontal photos
PROBES = (15, 78)  # other frontal photos that the shipped model recognises well above its threshold
# Photos of him turned (or nodding) the way of each challenge, two each, and how far from the
# probes (degrees, as the detector reads them on the composited frames).
MOVES = {
    Challenge.TURN_LEFT: (5, 111),  # yaw -19 to -22
    Challenge.TURN_RIGHT: (36, 90),  # yaw +21 to +26
    Challenge.NOD: (6, 170),  # pitch +15 to +20
}
STRANGER = "Gerhard_Schroeder"
NO_LOCKOUT = {"max_denials": 10_000}  # every frame of a replay gets analysed: no rate limiting


def photo(lfw, name: str, number: int) -> np.ndarray:
    from training.lfw import ImageRef

    image = cv2.imread(str(lfw.image_path(ImageRef(name, number))))
    assert image is not None
    return image


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, lfw, engine) -> Path:
    """A data directory with him enrolled through the real command line; liveness is on (default)."""
    from training.lfw import ImageRef

    data_dir = tmp_path_factory.mktemp("kiosk-data")
    images = [str(lfw.image_path(ImageRef(PERSON, n))) for n in ENROLL]
    assert cli_main(["--data-dir", str(data_dir), "enroll", NAME, *images]) == 0
    return data_dir


def run_kiosk(data_dir: Path, engine, video: Path, gate: LivenessGate, limits: RateLimits | None = None):
    """Every frame of `video` through KioskRunner; the FrameResults."""
    from kiosk.runner import KioskRunner

    conn = open_database(database_path(data_dir))
    try:
        runner = KioskRunner(Camera(str(video), realtime=False), engine, Gallery(conn), AccessLog(conn),
                             DecisionPolicy(liveness=gate), None, rate_limits=limits or RateLimits(**NO_LOCKOUT))
        return list(runner.run(every_frame=True))
    finally:
        conn.close()


def logged(data_dir: Path) -> list:
    conn = open_database(database_path(data_dir))
    try:
        return list(reversed(AccessLog(conn).query()))
    finally:
        conn.close()


def test_genuine_photos_turn_the_way_their_role_says(lfw, detector):
    wall, config = background(), LivenessConfig()

    def pose(number: int) -> tuple[float, float]:
        faces = detector.detect(cv2.cvtColor(render(photo(lfw, PERSON, number), Pose(), wall), cv2.COLOR_BGR2RGB))
        yaw, pitch, _ = head_pose(faces[0].landmarks)
        return yaw, pitch

    for probe in PROBES:
        start = pose(probe)
        assert abs(start[0]) < 6, (probe, start)
        for challenge, numbers in MOVES.items():
            for number in numbers:
                yaw, pitch = np.subtract(pose(number), start)
                moved = {Challenge.TURN_LEFT: -yaw, Challenge.TURN_RIGHT: yaw, Challenge.NOD: pitch}[challenge]
                needed = config.min_nod_deg if challenge is Challenge.NOD else config.min_turn_deg
                assert moved >= needed + 2, (challenge, number, yaw, pitch)  # clear of the threshold


@pytest.mark.parametrize("probe", PROBES)
def test_a_replayed_photo_is_never_granted(tmp_path, lfw, engine, enrolled, probe, capsys):
    video = write_video(tmp_path / f"replay-{probe}.avi", replay_frames(photo(lfw, PERSON, probe), seed=probe))
    before = len(logged(enrolled))
    summary = []
    for challenge in Challenge:  # each kind of move asked, over the whole replay
        results = run_kiosk(enrolled, engine, video, LivenessGate(challenges=[challenge]))
        decisions = [r.decision for r in results if r.decision is not None]
        started = sum(r.challenge_started for r in results)
        assert not any(d.granted for d in decisions), [d.liveness for d in decisions if d.granted]
        liveness = [d for d in decisions if d.reason == LIVENESS]
        assert liveness and started >= len(liveness)
        assert all(d.detail.startswith("liveness: ") and d.liveness.startswith("failed: ") for d in liveness)
        judged = sum(r.challenge is not None for r in results)
        summary.append(f"{challenge.value}: {len(results)} frames, {started} challenges over {judged} frames, "
                       f"{len(decisions)} denials ({', '.join(sorted({d.detail or d.reason for d in decisions}))})")
    with capsys.disabled():
        print(f"\nreplay of {PERSON}_{probe:04d}:\n  " + "\n  ".join(summary))
    events = logged(enrolled)[before:]
    assert events and all(e.decision == "denied" for e in events)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_photo_held_steady_and_turned_is_denied_for_moving_like_a_flat_picture(tmp_path, lfw, engine, enrolled,
                                                                                  seed):
    # Held steadily, the photo keeps its track (no "the face jumped"): the challenge judges the
    # move itself. MTCNN reads a turn on some tilted frames (its nose landmark follows the tilt,
    # with parallax to match), and the squeezed shape of a tilted picture gives them away.
    video = write_video(tmp_path / "steady.avi",
                        replay_frames(photo(lfw, PERSON, PROBES[0]), seed=seed, script=STEADY_TURN_SCRIPT))
    results = run_kiosk(enrolled, engine, video, LivenessGate(challenges=[Challenge.TURN_RIGHT]))
    decisions = [r.decision for r in results if r.decision is not None]
    # Never granted; first denied by the challenge (what the tilted photo gets afterwards, a new
    # challenge or "unknown", is not this test's concern).
    assert decisions and not any(d.granted for d in decisions), decisions
    assert (decisions[0].decision, decisions[0].reason) == ("denied", LIVENESS), decisions
    first = next(i for i, r in enumerate(results) if r.decision is not None)
    assert sum(r.challenge_started for r in results[:first]) == 1  # one challenge, one track, to the verdict
    detail = decisions[0].detail
    assert detail.startswith("liveness: the face moved like a flat picture (yaw +"), detail
    assert int(detail.split("yaw +")[1].split("°")[0]) >= LivenessConfig().min_turn_deg  # it read as a turn


@pytest.mark.parametrize("challenge", list(Challenge), ids=lambda c: c.value)
def test_a_genuine_challenge_sequence_is_granted(tmp_path, lfw, engine, enrolled, challenge):
    # The first seed whose gate will ask for this move: the person is staged to make it.
    seed = next(s for s in range(100) if LivenessGate(seed=s).next_challenge is challenge)
    gate = LivenessGate(seed=seed)
    first, second = MOVES[challenge]
    probe = PROBES[seed % 2]
    shots = [probe] * 4 + [first] * 2 + [second] * 2 + [probe] * 3
    frames = genuine_frames([photo(lfw, PERSON, n) for n in shots], seed=seed)
    frames += [np.full((FRAME_H, FRAME_W, 3), 128, np.uint8)] * 2
    before = len(logged(enrolled))
    results = run_kiosk(enrolled, engine, write_video(tmp_path / "genuine.avi", frames), gate)
    decisions = [r.decision for r in results if r.decision is not None]
    assert [(d.decision, d.name) for d in decisions] == [("granted", NAME)], [d.detail for d in decisions]
    started = [i for i, r in enumerate(results) if r.challenge_started]
    granted = next(i for i, r in enumerate(results) if r.decision is not None)
    assert len(started) == 1 and started[0] < granted and results[started[0]].challenge is challenge
    assert decisions[0].liveness.startswith(f"passed: {challenge.words}: ")
    event = logged(enrolled)[before]
    assert (event.decision, event.name) == ("granted", NAME) and event.liveness == decisions[0].liveness


def test_run_prints_the_challenge_and_denies_a_photo(tmp_path, lfw, engine, enrolled, capsys):
    video = write_video(tmp_path / "replay.avi", replay_frames(photo(lfw, PERSON, PROBES[0]), seed=1))
    capsys.readouterr()
    assert cli_main(["--data-dir", str(enrolled), "run", "--camera", str(video), "--headless"]) == 0
    lines = capsys.readouterr().out.splitlines()
    prompts = [line for line in lines if "  CHALLENGE  " in line]
    assert prompts and all(any(c.prompt in line for c in Challenge) and "(within 6 s)" in line for line in prompts)
    assert not any("  GRANTED " in line for line in lines)
    assert any("  DENIED " in line and "liveness: " in line for line in lines)
    assert lines.index(prompts[0]) < next(i for i, line in enumerate(lines) if "liveness: " in line)

    capsys.readouterr()
    assert cli_main(["--data-dir", str(enrolled), "--json", "run", "--camera", str(video), "--headless"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    challenges = [r for r in rows if "challenge" in r]
    assert challenges and {r["challenge"] for r in challenges} <= {c.value for c in Challenge}
    denials = [r for r in rows if r.get("reason") == LIVENESS]
    assert denials and all(r["detail"].startswith("liveness: ") and r["liveness"].startswith("failed: ")
                           for r in denials)
    assert not any(r.get("decision") == "granted" for r in rows)


def test_repeated_denials_lock_the_face_out(tmp_path, lfw, engine, enrolled, capsys):
    # Six visits of a stranger (three frames each, then nobody): five denials, then a lockout.
    stranger = genuine_frames([photo(lfw, STRANGER, 1)] * 18, seed=0)
    blank = np.full((FRAME_H, FRAME_W, 3), 128, np.uint8)
    frames = [frame for visit in range(6) for frame in stranger[3 * visit:3 * visit + 3] + [blank]]
    video = write_video(tmp_path / "strangers.avi", frames + [stranger[0]] * 6)
    before = len(logged(enrolled))
    capsys.readouterr()
    assert cli_main(["--data-dir", str(enrolled), "run", "--camera", str(video), "--headless"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line.split()[1] for line in lines] == ["DENIED"] * 6, lines
    assert all(line.endswith("  unknown") for line in lines[:5]), lines
    assert lines[5].endswith("too many attempts, wait 30 s")
    events = logged(enrolled)[before:]
    assert [e.reason for e in events] == ["unknown"] * 5 + ["rate_limited"]  # one lockout event, then nothing


def test_the_kiosk_screen_shows_the_challenge(qtbot, tmp_path, lfw, engine, enrolled):
    from kiosk.ui.kiosk_window import KioskWindow

    # A photo held still: the kiosk recognises him, asks for a move, and denies after 6 s.
    frames = genuine_frames([photo(lfw, PERSON, PROBES[0])] * 10, seed=2)
    video = write_video(tmp_path / "still.avi", frames)
    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=enrolled)
    qtbot.addWidget(window)
    window.resize(1024, 600)
    window.show()
    prompts = tuple(c.prompt for c in Challenge)
    try:
        qtbot.waitUntil(lambda: window.banner_text.startswith(prompts), timeout=60_000)
        assert window.banner.styleSheet().startswith("background: #1565c0")  # an instruction, not a verdict
        qtbot.waitUntil(lambda: window.banner_text.startswith("ACCESS DENIED — liveness: "), timeout=30_000)
    finally:
        window.close()
    assert window.decisions and not any(d.granted for d in window.decisions)


def test_the_kiosk_screen_says_when_it_is_locked_out(qtbot, tmp_path, lfw, engine, enrolled):
    from kiosk.ui.kiosk_window import KioskWindow

    # A stranger comes and goes again and again (three frames, then nobody): five denials, then
    # the screen says how long to wait.
    stranger = genuine_frames([photo(lfw, STRANGER, 1)] * 3, seed=3)
    blank = np.full((FRAME_H, FRAME_W, 3), 128, np.uint8)
    video = write_video(tmp_path / "again.avi", stranger + [blank] * 2)
    window = KioskWindow(Camera(str(video), loop=True).start(), data_dir=enrolled)
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.banner_text == "ACCESS DENIED — too many attempts, wait 30 s", timeout=90_000)
        qtbot.waitUntil(lambda: window.banner_text.startswith("Too many attempts — wait "), timeout=10_000)
        assert window.banner.styleSheet().startswith("background: #8a6d00")
        # The lockout is that face's: shown while it is in view (it comes and goes), counting down from 30.
        qtbot.waitUntil(lambda: window.banner_text.startswith("Too many attempts — wait 2"), timeout=15_000)
    finally:
        window.close()
    assert [d.reason for d in window.decisions][-2:] == ["unknown", "rate_limited"]
