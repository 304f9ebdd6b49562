"""Liveness: is the face at the door a live head, or a photo held up to the camera?

Two checks on the five detector landmarks (eyes, nose tip, mouth corners), pure numpy.

**Active challenge.** When a person is recognised, the kiosk asks for one move, drawn at
random from a seedable generator: turn the head to the left, to the right, or nod (chin down).
The same tracked face (its box may not jump or change size abruptly between frames) must make
it within ``time_limit_s``. Moves are yaw/pitch *changes* from the face's own pose at the start
of the challenge (kiosk.quality.head_pose), never absolute angles: MTCNN reads a frontal face
at pitch +3 (LFW median) to +17 degrees (scikit-image's astronaut). A turn the other way fails.

**Passive parallax.** A flat picture, however it is moved, tilted or turned in the hand, maps
its points between two frames by a homography. A real head does not: the nose tip stands out
of the plane of the eyes and mouth corners, so when the head turns it moves further than that
plane's own motion predicts. For each frame that shows the asked move, the homography of the
four eye and mouth points from the start frame is fitted exactly, the start frame's nose is
mapped through it, and the nose's residual (in eye distances, along the face's own axes) must
point the asked way by at least ``min_parallax``.

MTCNN's landmarks are not exact, and that is what an attacker works with: on a photo tilted
40-60 degrees about its vertical axis the detector places the nose as if the head had turned
10-20 degrees, with a matching residual; and about one frame in a hundred carries landmarks
that are simply misplaced. So a frame counts as the move made *like a head* only if, besides
the parallax, the face keeps a head's shape (eye distance over eye-to-mouth height: a head
turned by 25 degrees narrows by cos 25 = 0.91, a photo tilted 45 degrees by 0.71; relative to
the widest and narrowest view of the challenge, so that a photo swung from one side through
straight to the other gets no credit, and never below ``min_shape`` absolute), the move stays
on its axis (a turn is not a nod), and ``hold_frames`` consecutive frames agree with each other.

Calibration: ``pytest tests/test_liveness_calibration.py -m slow -s`` prints the figures (its
docstring has them), on flat LFW photos replayed by hand (shifts, scale, roll, tilts to 45
degrees and held at 55 about the vertical axis, 35 about the horizontal one, noise and JPEG)
and on genuine sequences (LFW photos of the same person at different head poses, which carry a
real head's parallax), with the real detector. Thresholds were chosen on four people (Bush,
Powell, Blair, Rumsfeld) and checked unchanged on four others (Schroeder, Sharon, Chretien,
S. Williams): 0 of 144 replays granted by the policy at the door; a challenge started at every
single replay frame passed 4 times in 3,552 runs (all in the first set); a frontal photo
followed by a turned one (held two frames) passed 39-73% of LFW pairs, depending on the move.

What it cannot stop: a video of the person replayed on a screen, photos of the person at
different poses swapped in at the same place, a 3D mask; those have a real head's geometry.
A photo swung quickly between strong tilts on either side without passing through straight
can still fool it now and then (the calibration counts how often). Live motion (a webcam
recording) has not been tried: it needs a real camera recording.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from kiosk.quality import head_pose

_PLANE = (0, 1, 3, 4)  # eyes and mouth corners: nearly one plane on a real face
_NOSE = 2


class Challenge(str, Enum):
    """A move the person is asked to make. Left and right are the person's own."""

    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    NOD = "nod"

    @property
    def prompt(self) -> str:
        """The instruction shown on the screen and printed by the headless kiosk."""
        return _PROMPTS[self]

    @property
    def words(self) -> str:
        return self.value.replace("_", " ")


_PROMPTS = {
    Challenge.TURN_LEFT: "Turn your head to your left",
    Challenge.TURN_RIGHT: "Turn your head to your right",
    Challenge.NOD: "Nod: chin down, then up",
}


@dataclass(frozen=True)
class LivenessConfig:
    """Thresholds of the challenge; see the module docstring for where they come from."""

    time_limit_s: float = 6.0
    min_turn_deg: float = 14.0  # yaw change that counts as a turn
    min_nod_deg: float = 10.0  # pitch change (chin down) that counts as a nod
    min_parallax: float = 0.08  # nose residual, in eye distances, in the asked direction
    # The face's shape (face_shape) stays in this band, against its widest view (also the visit's
    # usual shape) and its narrowest, while a head turns or nods; a photo tilted far enough to
    # fool the detector's nose landmark is squeezed further.
    turn_shape: tuple[float, float] = (0.8, 1.2)
    nod_shape: tuple[float, float] = (0.9, 1.3)
    # And never below this, at the start or in the held frames (LFW, MTCNN landmarks: 0.2% of
    # 11,072 faces turned less than 30 degrees are narrower; the median face tilted 45 degrees is 0.66).
    min_shape: float = 0.72
    hold_frames: int = 2  # consecutive frames that must show the move...
    max_wobble_deg: float = 6.0  # ...agreeing with each other to within these (a held pose,
    max_wobble_parallax: float = 0.08  # not one frame of misplaced landmarks)
    flat_frames: int = 3  # frames with the move made but not like a head that fail the challenge
    max_shift: float = 0.5  # the tracked face's centre may move this many face widths per frame
    max_resize: float = 1.5  # and its width change by at most this factor per frame

    def __post_init__(self) -> None:
        for name in ("time_limit_s", "min_turn_deg", "min_nod_deg", "min_parallax", "min_shape",
                     "max_wobble_deg", "max_wobble_parallax", "max_shift"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("hold_frames", "flat_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("turn_shape", "nod_shape"):
            low, high = getattr(self, name)
            if not 0 < low < 1 < high:
                raise ValueError(f"{name} must be (low, high) with 0 < low < 1 < high, got {getattr(self, name)}")
        if not self.max_resize > 1:
            raise ValueError(f"max_resize must be above 1, got {self.max_resize}")


def homography(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3x3 projective map taking four `source` points exactly onto four `target` points."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != (4, 2) or target.shape != (4, 2):
        raise ValueError(f"need 4x2 point arrays, got {source.shape} and {target.shape}")
    rows, values = [], []
    for (x, y), (u, v) in zip(source, target):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values += [u, v]
    try:
        h = np.linalg.solve(np.array(rows), np.array(values))
    except np.linalg.LinAlgError:
        raise ValueError("the four points are degenerate (three on one line)") from None
    return np.append(h, 1.0).reshape(3, 3)


def nose_parallax(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """How far the nose moved off the plane of the eyes and mouth corners from `start` to `end`.

    Both are 5x2 landmark arrays. Returns (x, y) in eye distances along the `end` face's own
    axes: x from its image-left eye to its image-right eye, y from the eyes towards the mouth.
    A flat picture gives about (0, 0); a real head turned to its left gives x > 0 (the nose
    runs ahead towards the image's right), turned to its right x < 0, a nod down y > 0.
    """
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    plane = list(_PLANE)
    mapped = homography(start[plane], end[plane]) @ np.array([*start[_NOSE], 1.0])
    residual = end[_NOSE] - mapped[:2] / mapped[2]
    eye_axis = end[1] - end[0]
    eye_distance = (np.linalg.norm(eye_axis) + np.linalg.norm(start[1] - start[0])) / 2
    x_axis = eye_axis / max(np.linalg.norm(eye_axis), 1e-9)
    y_axis = np.array([-x_axis[1], x_axis[0]])
    return np.array([residual @ x_axis, residual @ y_axis]) / max(eye_distance, 1e-9)


def face_shape(landmarks: np.ndarray) -> float:
    """Eye distance over the eye-to-mouth height: a head turn shrinks it by cos(yaw), a nod
    grows it by 1/cos(pitch); a photo tilted in the hand changes it far more for the same reading."""
    points = np.asarray(landmarks, dtype=np.float64)
    height = np.linalg.norm((points[3] + points[4]) / 2 - (points[0] + points[1]) / 2)
    return float(np.linalg.norm(points[1] - points[0]) / max(height, 1e-9))


@dataclass(frozen=True)
class Motion:
    """One frame measured against the challenge's start frame."""

    yaw: float  # change in degrees; negative = turned to the person's left
    pitch: float  # change in degrees; positive = chin down
    parallax: tuple[float, float]  # nose_parallax(start, this frame)
    shape: float  # face_shape(this frame) / face_shape(start)

    def progress(self, challenge: Challenge) -> tuple[float, float]:
        """(degrees moved the asked way, parallax the asked way); negative = the other way."""
        if challenge is Challenge.TURN_LEFT:
            return -self.yaw, self.parallax[0]
        if challenge is Challenge.TURN_RIGHT:
            return self.yaw, -self.parallax[0]
        return self.pitch, self.parallax[1]

    def describe(self, challenge: Challenge) -> str:
        parallax = self.progress(challenge)[1]
        return (f"yaw {self.yaw:+.0f}°, pitch {self.pitch:+.0f}°, nose parallax {parallax:+.2f}, "
                f"shape {self.shape:.2f}")


def measure(start: np.ndarray, end: np.ndarray) -> Motion:
    """How the face moved from the `start` landmarks to the `end` ones."""
    yaw0, pitch0, _ = head_pose(start)
    yaw1, pitch1, _ = head_pose(end)
    x, y = nose_parallax(start, end)
    return Motion(yaw1 - yaw0, pitch1 - pitch0, (float(x), float(y)), face_shape(end) / face_shape(start))


@dataclass(frozen=True)
class LivenessResult:
    passed: bool
    challenge: Challenge
    detail: str  # what happened, in words: "the head did not turn left within 6 s"

    @property
    def log_text(self) -> str:
        """The outcome for the access log's liveness column."""
        return f"{'passed' if self.passed else 'failed'}: {self.challenge.words}: {self.detail}"


class ChallengeRun:
    """One challenge in progress, for one tracked face. Feed it every frame with update().

    A frame *shows the move* when the face turned (or nodded) the asked way by the minimum angle
    since the start frame. It shows it *like a head* when, besides, the nose parallax points the
    asked way by ``min_parallax`` and the face's shape stays in the head's band. The challenge
    passes on ``hold_frames`` consecutive such frames that agree with each other; it fails on
    ``flat_frames`` frames that show the move but not like a head, on ``hold_frames``
    consecutive frames turned the other way, on a broken track, or at the time limit.
    """

    def __init__(self, challenge: Challenge, time: float, landmarks: np.ndarray, box: Sequence[float],
                 config: LivenessConfig | None = None, visit_shape: float | None = None) -> None:
        """``visit_shape``: the face's usual face_shape earlier in the visit (the median of its frames)."""
        self.challenge = challenge
        self.config = config or LivenessConfig()
        self.started = float(time)
        self.deadline = self.started + self.config.time_limit_s
        self._start = _landmarks(landmarks)
        self._box = _box(box)
        # The narrowest and widest face seen (the widest also counting the visit's usual shape): a
        # head turns away from its straight view, while a photo tilted, or flipped from side to
        # side, stays narrower than the straight view it was recognised in.
        self._start_shape = face_shape(self._start)
        self._shapes = [self._start_shape, max(self._start_shape, visit_shape or 0.0)]
        self._held: list[tuple[np.ndarray, Motion]] = []  # consecutive frames showing the move like a head
        self._wrong_way = 0  # consecutive frames turned the other way
        self._flat: list[Motion] = []
        self.result: LivenessResult | None = None

    def time_left(self, now: float) -> float:
        return max(self.deadline - now, 0.0)

    def update(self, time: float, landmarks: np.ndarray, box: Sequence[float]) -> LivenessResult | None:
        """Feed the tracked face of one frame; returns the result once there is one, else None.

        After a pass, later frames still check that the face stays the same tracked face (the
        caller may wait for it to be recognised again): a broken track turns the pass into a failure.
        """
        if self.result is not None and not self.result.passed:
            return self.result
        box = _box(box)
        if not self._same_track(box):
            return self._settle(False, "the face jumped or another face took its place")
        self._box = box
        if self.result is not None:
            return self.result
        points = _landmarks(landmarks)
        motion = measure(self._start, points)
        kind = self._classify(points, motion)
        self._held = self._held if kind == _LIKE_A_HEAD else []
        self._wrong_way = self._wrong_way + 1 if kind == _WRONG_WAY else 0
        if kind == _LIKE_A_HEAD:
            if self._held and not self._agrees(*self._held[-1], points, motion):
                self._held = []
            self._held.append((points, motion))
            if len(self._held) >= self.config.hold_frames:
                return self._settle(True, f"{_DONE[self.challenge]} ({motion.describe(self.challenge)})")
        elif kind == _FLAT:
            self._flat.append(motion)
            if len(self._flat) >= self.config.flat_frames:
                return self._settle(False, f"the face moved like a flat picture ({motion.describe(self.challenge)})")
        elif self._wrong_way >= self.config.hold_frames:
            asked, other = ("left", "right") if self.challenge is Challenge.TURN_LEFT else ("right", "left")
            return self._settle(False, f"the head turned {other}, not {asked}")
        if time > self.deadline:
            if self._flat:
                return self._settle(False, f"the face moved like a flat picture ({self._flat[-1].describe(self.challenge)})")
            return self._settle(False, f"the head did not {self.challenge.words} within {self.config.time_limit_s:g} s")
        return None

    def _classify(self, points: np.ndarray, motion: Motion) -> str:
        """Whether this frame shows the move like a head, like a flat picture, the other way, or not at all."""
        shape = face_shape(points)
        self._shapes = [min(self._shapes[0], shape), max(self._shapes[1], shape)]
        moved, parallax = motion.progress(self.challenge)
        nod = self.challenge is Challenge.NOD
        if moved < (self.config.min_nod_deg if nod else self.config.min_turn_deg):
            return _WRONG_WAY if not nod and -moved >= self.config.min_turn_deg else _NO_MOVE
        low, high = self.config.nod_shape if nod else self.config.turn_shape
        head_shaped = (shape / self._shapes[1] >= low and shape / self._shapes[0] <= high
                       and min(shape, self._start_shape) >= self.config.min_shape)
        sideways = abs(motion.yaw if nod else motion.pitch)  # a turn is not a nod, nor a nod a turn
        if parallax >= self.config.min_parallax and head_shaped and sideways <= moved:
            return _LIKE_A_HEAD
        return _FLAT

    def fail(self, detail: str) -> LivenessResult:
        """End the challenge as failed for a reason seen outside it (another person recognised...)."""
        return self._settle(False, detail)

    def _agrees(self, points: np.ndarray, motion: Motion, next_points: np.ndarray, next_motion: Motion) -> bool:
        wobble = abs(motion.progress(self.challenge)[0] - next_motion.progress(self.challenge)[0])
        return (wobble <= self.config.max_wobble_deg
                and float(np.linalg.norm(nose_parallax(points, next_points))) <= self.config.max_wobble_parallax)

    def _same_track(self, box: np.ndarray) -> bool:
        width = max(self._box[2] - self._box[0], 1e-6)
        shift = np.hypot(*((box[:2] + box[2:]) / 2 - (self._box[:2] + self._box[2:]) / 2)) / width
        resize = max(box[2] - box[0], 1e-6) / width
        return shift <= self.config.max_shift and 1 / self.config.max_resize <= resize <= self.config.max_resize

    def _settle(self, passed: bool, detail: str) -> LivenessResult:
        self.result = LivenessResult(passed, self.challenge, detail)
        return self.result


_LIKE_A_HEAD, _FLAT, _WRONG_WAY, _NO_MOVE = "like a head", "flat", "wrong way", "no move"
_DONE = {
    Challenge.TURN_LEFT: "turned left",
    Challenge.TURN_RIGHT: "turned right",
    Challenge.NOD: "nodded",
}


class LivenessGate:
    """Draws challenges from a seedable random generator and starts them."""

    def __init__(self, config: LivenessConfig | None = None, seed: int | None = None,
                 challenges: Sequence[Challenge] = tuple(Challenge)) -> None:
        if not challenges:
            raise ValueError("need at least one kind of challenge")
        self.config = config or LivenessConfig()
        self._challenges = tuple(Challenge(c) for c in challenges)
        self._rng = np.random.default_rng(seed)
        self.next_challenge = self._draw()  # drawn ahead, so a test can stage the right move

    def start(self, time: float, landmarks: np.ndarray, box: Sequence[float],
              visit_shape: float | None = None) -> ChallengeRun:
        """A challenge for the face with `landmarks` and `box`; `visit_shape` as for ChallengeRun."""
        challenge, self.next_challenge = self.next_challenge, self._draw()
        return ChallengeRun(challenge, time, landmarks, box, self.config, visit_shape)

    def _draw(self) -> Challenge:
        return self._challenges[int(self._rng.integers(len(self._challenges)))]


def _landmarks(value) -> np.ndarray:
    points = np.asarray(value, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"liveness needs 5x2 finite landmarks, got shape {points.shape}")
    return points


def _box(value) -> np.ndarray:
    box = np.asarray(value, dtype=np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"liveness needs a box (x1, y1, x2, y2), got {value!r}")
    return box

