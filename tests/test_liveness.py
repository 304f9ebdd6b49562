"""The liveness challenge and the rate limiter, pure logic: landmarks of a 3D head and of a flat
picture projected through a pinhole camera, fed to the real ChallengeRun / DecisionPolicy.

(The same logic on real detector landmarks, real video files and the real pipeline is in
tests/test_liveness_pipeline.py and tests/test_liveness_calibration.py.)
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from kiosk.liveness import (
    Challenge,
    ChallengeRun,
    LivenessConfig,
    LivenessGate,
    face_shape,
    homography,
    measure,
    nose_parallax,
)
from kiosk.matching import Match
from kiosk.policy import LIVENESS, DecisionPolicy, Observation
from kiosk.quality import Quality
from kiosk.ratelimit import RateLimiter

# Five landmarks in eye distances: x to the image's right, y down, z away from the camera; the
# nose tip stands half an eye distance out of the plane of the eyes and mouth corners.
FACE = np.array([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.6, -0.5], [-0.42, 1.05, -0.05], [0.42, 1.05, -0.05]])
PIVOT = np.array([0.0, 0.5, 1.0])  # heads turn about the neck, behind the face


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    y, p = math.radians(yaw), math.radians(pitch)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return rx @ ry


def face(yaw: float = 0.0, pitch: float = 0.0, flat: bool = False, dx: float = 0.0,
         distance: float = 12.0, eye_px: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks 5x2, box) of a head (or a flat picture of one) turned by `yaw` (negative: to the
    person's left) and `pitch` (positive: chin down), seen by a pinhole camera."""
    points = FACE.copy()
    if flat:
        points[:, 2] = 0.0
    placed = (points - PIVOT) @ _rotation(yaw, pitch).T + PIVOT + np.array([0.0, 0.0, distance])
    landmarks = placed[:, :2] / placed[:, 2:] * distance * eye_px + np.array([320.0 + dx, 200.0])
    centre = np.array([320.0 + dx, 230.0])
    box = np.concatenate([centre - 1.1 * eye_px, centre + 1.1 * eye_px])
    return landmarks, box


def feed(run: ChallengeRun, frames, t0: float = 0.0, step: float = 0.25):
    """Feed (landmarks, box) frames at 4 per second; the results, one per frame."""
    return [run.update(t0 + step * (i + 1), landmarks, box) for i, (landmarks, box) in enumerate(frames)]


# -- geometry ------------------------------------------------------------------------


def test_homography_maps_the_four_points_exactly_and_rejects_degenerate_ones():
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 100, (4, 2))
    target = source @ np.array([[0.9, 0.2], [-0.1, 1.1]]) + 5 + rng.normal(0, 3, (4, 2))
    matrix = homography(source, target)
    mapped = np.c_[source, np.ones(4)] @ matrix.T
    assert np.allclose(mapped[:, :2] / mapped[:, 2:], target)
    with pytest.raises(ValueError, match="degenerate"):
        homography([[0, 0], [1, 1], [2, 2], [3, 3]], target)


def test_a_flat_picture_has_no_nose_parallax_however_it_is_held():
    start, _ = face(flat=True)
    rng = np.random.default_rng(2)
    for _ in range(20):
        # Any projective map: tilts, perspective, shifts, rotation and scale of the picture.
        matrix = np.eye(3) + np.c_[rng.normal(0, 0.1, (3, 2)), rng.normal(0, 20, 3)] * [1, 1, 1]
        matrix[2] = [rng.normal(0, 4e-4), rng.normal(0, 4e-4), 1]
        moved = np.c_[start, np.ones(5)] @ matrix.T
        assert np.abs(nose_parallax(start, moved[:, :2] / moved[:, 2:])).max() < 1e-9


def test_a_real_head_moves_its_nose_off_the_plane_the_way_it_turns():
    start, _ = face()
    left, right, down = face(yaw=-20)[0], face(yaw=20)[0], face(pitch=15)[0]
    assert nose_parallax(start, left)[0] > 0.15 and measure(start, left).yaw < -15
    assert nose_parallax(start, right)[0] < -0.15 and measure(start, right).yaw > 15
    assert nose_parallax(start, down)[1] > 0.1 and measure(start, down).pitch > 10
    # A head's shape (eye distance over eye-to-mouth height) barely changes as it turns...
    assert 0.9 < face_shape(left) / face_shape(start) < 1.0
    # ...a flat picture tilted far enough to fool a detector squeezes it.
    assert face_shape(face(yaw=-50, flat=True)[0]) / face_shape(face(flat=True)[0]) < 0.7


# -- one challenge ----------------------------------------------------------------------


def test_turning_the_asked_way_passes_and_says_how():
    start, box = face()
    run = ChallengeRun(Challenge.TURN_LEFT, 0.0, start, box)
    results = feed(run, [face(yaw=-8), face(yaw=-20), face(yaw=-22)])
    assert results[:2] == [None, None]  # one frame is not enough: a held move is
    assert results[2].passed and results[2].challenge is Challenge.TURN_LEFT
    assert results[2].detail.startswith("turned left (yaw -2")
    assert results[2].log_text.startswith("passed: turn left: turned left")


@pytest.mark.parametrize("challenge, move", [(Challenge.TURN_RIGHT, {"yaw": 20}), (Challenge.NOD, {"pitch": 18})])
def test_the_other_moves_pass_too(challenge, move):
    start, box = face()
    run = ChallengeRun(challenge, 0.0, start, box)
    results = feed(run, [face(**move), face(**move)])
    assert results[-1] is not None and results[-1].passed


def test_a_turn_the_wrong_way_fails_at_once():
    start, box = face()
    run = ChallengeRun(Challenge.TURN_LEFT, 0.0, start, box)
    results = feed(run, [face(yaw=20), face(yaw=22)])
    assert results[-1] is not None and not results[-1].passed
    assert results[-1].detail == "the head turned right, not left"


def test_no_move_within_the_time_limit_fails():
    start, box = face()
    run = ChallengeRun(Challenge.NOD, 0.0, start, box, LivenessConfig(time_limit_s=2.0))
    results = feed(run, [face(yaw=3)] * 9)  # 2.25 s of standing still
    assert results[:8] == [None] * 8
    assert not results[8].passed and results[8].detail == "the head did not nod within 2 s"
    assert run.time_left(1.0) == pytest.approx(1.0) and run.time_left(5.0) == 0.0


def test_a_photo_tilted_until_the_detector_reads_a_turn_moves_like_a_flat_picture():
    # What MTCNN does on a photo tilted 50 degrees about its vertical axis: it places the nose
    # as if the head had turned (measured: 10-20 degrees, with a matching residual). The
    # parallax check alone would pass it; the face's squeezed shape gives it away.
    start, box = face(flat=True)
    tilted, _ = face(yaw=-50, flat=True)
    eye_distance = np.linalg.norm(tilted[1] - tilted[0])
    tilted[2, 0] += 0.2 * eye_distance  # the detector's nose, pulled the way of a left turn
    motion = measure(start, tilted)
    assert motion.progress(Challenge.TURN_LEFT)[0] > 14 and motion.parallax[0] > 0.08
    run = ChallengeRun(Challenge.TURN_LEFT, 0.0, start, box)
    results = feed(run, [(tilted, box)] * 3)
    assert not results[-1].passed and results[-1].detail.startswith("the face moved like a flat picture")


def keystone(points: np.ndarray, strength: float, centre: np.ndarray) -> np.ndarray:
    """`points` of a flat picture under a pure perspective map: its left edge grows and its
    right edge shrinks (negative `strength`: the other way). Every point, the nose included,
    moves by one homography, so there is no nose parallax, yet the nose leaves the midline
    between the eyes and the mouth as on a turned head, and the face keeps a head's shape."""
    relative = (points - centre) / 60.0
    mapped = np.c_[relative, np.ones(len(relative))] @ np.array([[0.95, 0, 0], [0, 1, 0], [strength, 0, 1]]).T
    return mapped[:, :2] / mapped[:, 2:] * 60.0 + centre


@pytest.mark.parametrize("challenge, sign", [(Challenge.TURN_LEFT, 1), (Challenge.TURN_RIGHT, -1)],
                         ids=["left", "right"])
def test_a_flat_picture_that_reads_as_a_turn_without_distortion_fails_on_its_missing_parallax(challenge, sign):
    # Only the nose parallax can tell this picture from a head: it turns the asked way by more
    # than the minimum, its shape stays in the head's band, and its frames agree with each other.
    start, box = face(flat=True)
    centre = start[[0, 1, 3, 4]].mean(axis=0)
    turned = keystone(start, sign * 0.8, centre)
    motion = measure(start, turned)
    config = LivenessConfig()
    assert motion.progress(challenge)[0] > config.min_turn_deg + 2 and abs(motion.pitch) < motion.progress(challenge)[0]
    assert abs(motion.progress(challenge)[1]) < 1e-9  # no parallax at all: one homography
    assert config.turn_shape[0] < motion.shape < config.turn_shape[1] and face_shape(turned) > config.min_shape
    run = ChallengeRun(challenge, 0.0, start, box, config)
    results = feed(run, [(keystone(start, sign * 0.4, centre), box)] + [(turned, box)] * 3)
    assert results[:3] == [None] * 3  # the first frame is not yet a turn; two flat ones are not yet a verdict
    assert not results[3].passed
    assert results[3].detail.startswith("the face moved like a flat picture (")
    assert re.search(r"nose parallax [+-]0\.00,", results[3].detail)


def test_one_frame_of_misplaced_landmarks_does_not_pass():
    start, box = face()
    glitch, _ = face(yaw=-20)
    glitch[3] += [0.0, 25.0]  # a mouth corner far off, as MTCNN now and then returns
    run = ChallengeRun(Challenge.TURN_LEFT, 0.0, start, box)
    results = feed(run, [face(yaw=-20), (glitch, box), face(), face()])
    assert results == [None] * 4


def test_a_face_that_jumps_or_changes_size_breaks_the_challenge():
    start, box = face()
    run = ChallengeRun(Challenge.TURN_LEFT, 0.0, start, box)
    result = run.update(0.25, *face(dx=150))  # another face, elsewhere in the picture
    assert not result.passed and result.detail == "the face jumped or another face took its place"
    assert run.update(0.5, *face(yaw=-20)) is result  # settled: it stays failed
    run = ChallengeRun(Challenge.TURN_LEFT, 0.0, start, box)
    assert not run.update(0.25, *face(eye_px=100)).passed  # much closer from one frame to the next


def test_after_a_pass_a_broken_track_turns_it_into_a_failure():
    start, box = face()
    run = ChallengeRun(Challenge.TURN_RIGHT, 0.0, start, box)
    assert feed(run, [face(yaw=20), face(yaw=20)])[-1].passed
    assert run.update(1.0, *face(yaw=5)).passed  # still the same face, turning back
    assert not run.update(1.25, *face(dx=-200)).passed


def test_bad_input_is_refused_clearly():
    start, box = face()
    with pytest.raises(ValueError, match="5x2"):
        ChallengeRun(Challenge.NOD, 0.0, start[:4], box)
    with pytest.raises(ValueError, match="box"):
        ChallengeRun(Challenge.NOD, 0.0, start, [1, 2, 3])
    with pytest.raises(ValueError, match="min_parallax"):
        LivenessConfig(min_parallax=0)
    with pytest.raises(ValueError, match="turn_shape"):
        LivenessConfig(turn_shape=(1.1, 1.2))
    with pytest.raises(ValueError, match="at least one"):
        LivenessGate(challenges=())


def test_the_challenge_is_drawn_at_random_from_a_seed():
    def draws(gate: LivenessGate, n: int = 30) -> list[Challenge]:
        start, box = face()
        return [gate.start(0.0, start, box).challenge for _ in range(n)]

    first, again = draws(LivenessGate(seed=7)), draws(LivenessGate(seed=7))
    assert first == again  # reproducible
    assert set(first) == set(Challenge)  # every kind comes up
    assert draws(LivenessGate(seed=8)) != first
    gate = LivenessGate(seed=3)
    upcoming = gate.next_challenge  # drawn ahead, so a test can stage the right move
    assert gate.start(0.0, *face()).challenge is upcoming
    assert set(draws(LivenessGate(seed=1, challenges=[Challenge.NOD]), 5)) == {Challenge.NOD}
    assert Challenge.TURN_LEFT.prompt == "Turn your head to your left"


# -- the policy with liveness ------------------------------------------------------------

GOOD = Quality(size=130, eye_distance=60, sharpness=300, brightness=120, contrast=40, yaw=0, pitch=3, roll=0)
ALICE, BOB = 1, 2


class Door:
    """Feeds the policy one frame every 0.25 s."""

    def __init__(self, challenge: Challenge = Challenge.TURN_LEFT, **policy) -> None:
        self.policy = DecisionPolicy(liveness=LivenessGate(challenges=[challenge]), **policy)
        self.t = 100.0
        self.decisions = []

    def frame(self, person: int | None = ALICE, yaw: float = 0.0, pitch: float = 0.0, dx: float = 0.0,
              verdict: str = "match"):
        landmarks, box = face(yaw=yaw, pitch=pitch, dx=dx)
        match = Match(person, 0.8, None, None, verdict) if person is not None else None
        name = {ALICE: "Alice", BOB: "Bob"}.get(person) if verdict == "match" else None
        decision = self.policy.update(Observation(self.t, 1, match, GOOD, name, landmarks, box))
        self.t += 0.25
        if decision is not None:
            self.decisions.append(decision)
        return decision

    def nobody(self):
        self.policy.update(Observation(self.t, 0))
        self.t += 0.25


def test_with_liveness_a_recognised_person_is_asked_first_and_granted_after_the_move():
    door = Door(Challenge.TURN_LEFT)
    for _ in range(3):
        assert door.frame() is None  # recognised: no grant yet, a challenge instead
    run = door.policy.challenge
    assert run is not None and run.challenge is Challenge.TURN_LEFT
    door.frame(yaw=-20, verdict="unknown")  # turned faces match worse: that is fine
    assert door.frame(yaw=-22, verdict="unknown") is None  # the move is made...
    decision = door.frame(yaw=-3)  # ...and the face is recognised again: granted
    assert decision.granted and decision.name == "Alice" and decision.reason == "match"
    assert decision.liveness.startswith("passed: turn left: turned left (yaw -2")
    assert door.policy.challenge is None
    door.frame()
    assert len(door.decisions) == 1  # cooling down: standing there grants nothing more


def test_a_timeout_denies_with_the_liveness_reason_and_a_specific_detail():
    door = Door(Challenge.TURN_RIGHT)
    for _ in range(3 + 25):  # recognised, then 6.25 s of a face that does not move
        door.frame()
    assert len(door.decisions) == 1
    denied = door.decisions[0]
    assert (denied.decision, denied.reason) == ("denied", LIVENESS)
    assert denied.detail == "liveness: the head did not turn right within 6 s"
    assert denied.liveness == "failed: turn right: the head did not turn right within 6 s"
    assert denied.person_id == ALICE and denied.name == "Alice"  # whose face it was, for the log
    assert not any(d.granted for d in door.decisions)


def test_every_failed_challenge_is_a_new_denial_in_the_same_visit():
    door = Door(Challenge.TURN_LEFT)
    for _ in range(2):
        for _ in range(3):
            door.frame()
        door.frame(yaw=20)
        door.frame(yaw=20)  # the wrong way
    assert [d.detail for d in door.decisions] == ["liveness: the head turned right, not left"] * 2


def test_another_person_recognised_mid_challenge_fails_it():
    door = Door(Challenge.NOD)
    for _ in range(3):
        door.frame(ALICE)
    decision = door.frame(BOB)  # a face swap at the same place
    assert decision.reason == LIVENESS and decision.detail == "liveness: another person's face appeared"
    assert decision.name == "Alice"


def test_a_face_swap_at_another_place_fails_it():
    door = Door(Challenge.NOD)
    for _ in range(3):
        door.frame(ALICE)
    decision = door.frame(None, dx=200)
    assert decision.detail == "liveness: the face jumped or another face took its place"


def test_a_move_without_being_recognised_again_is_not_enough():
    door = Door(Challenge.TURN_LEFT)
    for _ in range(3):
        door.frame()
    for _ in range(26):  # turned for 6.5 s, never matched again (someone else's real head)
        door.frame(yaw=-20, verdict="unknown")
    assert [d.detail for d in door.decisions] == ["liveness: the face was not recognised after the move"]


def test_leaving_ends_the_challenge_without_a_decision():
    door = Door(Challenge.TURN_LEFT)
    for _ in range(3):
        door.frame()
    door.nobody()
    assert door.policy.challenge is None and door.decisions == []


def test_without_a_gate_grants_come_on_recognition_alone():
    policy = DecisionPolicy()
    decisions = [policy.update(Observation(float(i), 1, Match(ALICE, 0.8, None, None, "match"), GOOD, "Alice"))
                 for i in range(3)]
    assert decisions[2].granted and decisions[2].liveness is None


def test_with_liveness_the_landmarks_are_required():
    policy = DecisionPolicy(liveness=LivenessGate())
    with pytest.raises(ValueError, match="landmarks and box"):
        policy.update(Observation(0.0, 1, Match(ALICE, 0.8, None, None, "match"), GOOD, "Alice"))


# -- the rate limiter ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_denials_within_a_minute_lock_out_for_30_s():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(4):
        assert limiter.record_denial() == 0.0
        clock.now += 10
    assert limiter.remaining() == 0.0
    assert limiter.record_denial() == 30.0  # the fifth within 60 s
    assert limiter.remaining() == 30.0
    clock.now += 12
    assert limiter.remaining() == pytest.approx(18.0)
    assert limiter.record_denial() == 0.0 and limiter.remaining() == pytest.approx(18.0)  # not extended
    clock.now += 18
    assert limiter.remaining() == 0.0


def test_denials_spread_over_more_than_the_window_do_not_lock_out():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(20):
        assert limiter.record_denial() == 0.0
        clock.now += 16  # four per minute at most
    assert limiter.remaining() == 0.0


def test_lockouts_double_up_to_the_cap_and_are_forgiven_after_a_quiet_spell():
    clock = Clock()
    limiter = RateLimiter(first_lockout_s=30, max_lockout_s=100, forgive_after_s=600, clock=clock)

    def lockout() -> float:
        for _ in range(4):
            limiter.record_denial()
            clock.now += 1
        length = limiter.record_denial()
        clock.now += length
        return length

    assert [lockout() for _ in range(4)] == [30, 60, 100, 100]
    clock.now += 601
    assert lockout() == 30


def test_rate_limiter_settings_are_checked():
    with pytest.raises(ValueError):
        RateLimiter(max_denials=0)
    with pytest.raises(ValueError):
        RateLimiter(first_lockout_s=60, max_lockout_s=30)
