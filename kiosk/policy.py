"""The decision policy: from per-frame observations to "granted" / "denied", no models.

One frame is never trusted on its own. The kiosk feeds the policy one Observation per
analysed frame (how many faces, the match of the largest face, its quality, the time) and
the policy answers None (keep looking) or a Decision. The rules:

1. Each frame with a face casts a vote:
   - ``several_faces`` when more than one face is in view (whom would the door be for?);
   - ``low_quality`` when the face fails a quality gate (too small, turned or tilted away,
     blurred, too dark or too bright; see QualityGates);
   - otherwise the match verdict: ``match`` for a person, ``unknown`` or ``ambiguous``.
2. Grant: at least ``frames_required`` of the last ``window`` votes are ``match`` for the
   same person, and that person is not cooling down.
3. Cooldown: after a grant the person is not granted again until ``cooldown_s`` seconds have
   passed without a frame matching them. Every matching frame restarts the clock, so a person
   standing at the door is granted once, however long they stand there.
4. Denial: at least ``frames_required`` of the last ``window`` votes give the same failure
   (``low_quality`` needs the whole window: a face still far from the camera is no reason to
   deny yet), and no vote in the window is a match. The reason with most votes wins; on a tie
   the more definite one (several_faces, ambiguous, unknown, low_quality in that order).
5. A visit is the time between face-less frames; a frame without a face ends it and clears
   the history. Within a visit each denial reason is given at most once, so a stranger who
   stands there is denied once, not every few frames. A grant starts afresh (a different
   person may follow without a face-less frame between them), but after a grant the rest of
   the visit gives no ``low_quality`` or ``several_faces`` denials: those come from the person
   just let in walking away, not from a new visitor.
6. After any decision the history is cleared: the next decision needs fresh frames.
7. Liveness (when the policy has a LivenessGate, see kiosk.liveness): when rule 2 would grant,
   the person is first asked for a move (turn left, turn right or nod, drawn at random) and
   nothing is decided meanwhile. The challenge passes when the tracked face makes the move as a
   real head does (nose parallax, face shape, held for two frames: kiosk.liveness), and the
   person is then recognised again (in that frame or a later one) before the time limit: only
   then is the grant given. It fails, and the person is
   denied with reason "liveness" and a specific ``detail``, on a timeout, a turn the wrong way,
   a move like a flat picture, a jump of the tracked face, or a frame matching someone else.
   Each challenge is a new attempt: a liveness denial is not limited to one per visit. Every
   grant needs its own passed challenge. A face-less frame ends the challenge with the visit.
   A person exempt from it (someone who cannot turn their head: the Observation says so) is
   granted on recognition alone, and the Decision's ``liveness`` records the exemption.

The Decision's ``liveness`` says how the check went ("passed: turn left: ..." or "failed:
..." or "exempt: ..."), for the access log; None when it was not checked (no gate, or a denial
before it).
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from statistics import median
from typing import Any, Protocol

from kiosk.liveness import ChallengeRun, LivenessGate, LivenessResult, face_shape

GRANTED, DENIED = "granted", "denied"
MATCH, UNKNOWN, AMBIGUOUS, LOW_QUALITY, SEVERAL_FACES = (
    "match", "unknown", "ambiguous", "low_quality", "several_faces"
)
LIVENESS = "liveness"  # the liveness challenge failed
RATE_LIMITED = "rate_limited"  # too many denials in a short time (kiosk.ratelimit, given by the runner)
# Failure reasons, most definite first (breaks ties between equally frequent reasons).
FAILURE_REASONS = (SEVERAL_FACES, AMBIGUOUS, UNKNOWN, LOW_QUALITY)
# The log's liveness field for a grant without the challenge, to a person exempt from it.
LIVENESS_EXEMPT = "exempt: granted without the challenge (the person cannot turn their head)"
VISIT_SHAPES = 30  # frames of the visit whose face shape the liveness check compares against


class MatchLike(Protocol):
    """What the policy reads of a kiosk.matching.Match."""

    person_id: int | None
    score: float
    verdict: str


class QualityLike(Protocol):
    """What the policy reads of a kiosk.quality.Quality."""

    size: float
    sharpness: float
    brightness: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class QualityGates:
    """Limits a face must meet to be recognised (the kiosk) or enrolled (the command line)."""

    min_face_size: float = 60.0  # face box width, pixels
    max_yaw: float = 30.0  # degrees either way
    max_pitch: float = 30.0
    min_sharpness: float = 30.0  # variance of the Laplacian on a 64x64 patch; LFW faces are 130+
    min_brightness: float = 40.0  # mean grey level 0..255
    max_brightness: float = 230.0

    def problem(self, quality: QualityLike) -> str | None:
        """Why the face is not good enough, in words, or None when it is."""
        if quality.size < self.min_face_size:
            return f"face too small ({quality.size:.0f} px wide, need {self.min_face_size:.0f})"
        if abs(quality.yaw) > self.max_yaw:
            return f"face turned away ({quality.yaw:+.0f} degrees, at most {self.max_yaw:.0f})"
        if abs(quality.pitch) > self.max_pitch:
            return f"face tilted up or down ({quality.pitch:+.0f} degrees, at most {self.max_pitch:.0f})"
        if quality.sharpness < self.min_sharpness:
            return f"face too blurred (sharpness {quality.sharpness:.0f}, need {self.min_sharpness:.0f})"
        if quality.brightness < self.min_brightness:
            return f"face too dark (brightness {quality.brightness:.0f}, need {self.min_brightness:.0f})"
        if quality.brightness > self.max_brightness:
            return f"face too bright (brightness {quality.brightness:.0f}, at most {self.max_brightness:.0f})"
        return None


@dataclass(frozen=True)
class Observation:
    """What the kiosk saw in one frame."""

    time: float  # seconds on any steady clock (the camera's time.monotonic() stamps)
    faces: int  # number of faces detected
    match: MatchLike | None = None  # match of the largest face (None: no face or not matched)
    quality: QualityLike | None = None  # quality of the largest face (None: not gated)
    name: str | None = None  # the matched person's name, for the Decision
    landmarks: Any = None  # 5x2 landmarks of the largest face (needed with a LivenessGate)
    box: Any = None  # its box x1, y1, x2, y2 (needed with a LivenessGate)
    liveness_exempt: bool = False  # the matched person is granted without the liveness challenge


@dataclass(frozen=True)
class Decision:
    decision: str  # "granted" | "denied"
    reason: str  # "match" | "unknown" | "ambiguous" | "low_quality" | "several_faces" | "liveness" | "rate_limited"
    person_id: int | None  # the granted person, or whom a failed liveness challenge was for; else None
    name: str | None
    score: float | None  # mean similarity of the deciding frames (None without a match score)
    time: float  # the Observation.time of the deciding frame
    liveness: str | None = None  # how the liveness check went (for the log); None if not checked
    detail: str | None = None  # what to tell the person, when the reason alone does not say it

    @property
    def granted(self) -> bool:
        return self.decision == GRANTED


@dataclass(frozen=True)
class _Vote:
    kind: str  # MATCH or one of FAILURE_REASONS
    person_id: int | None
    score: float | None
    name: str | None
    liveness_exempt: bool = False


@dataclass
class _Pending:
    """A liveness challenge in progress: whom it is for and how it goes."""

    run: ChallengeRun
    person_id: int
    name: str | None
    score: float


class DecisionPolicy:
    """Turns a stream of Observations into Decisions by the rules in the module docstring.

    ``liveness``: a LivenessGate makes every grant wait for a passed challenge (rule 7);
    None grants on recognition alone.
    """

    def __init__(
        self,
        frames_required: int = 3,
        window: int = 5,
        cooldown_s: float = 5.0,
        min_face_size: float = 60.0,
        max_yaw: float = 30.0,
        max_pitch: float = 30.0,
        min_sharpness: float = QualityGates.min_sharpness,
        min_brightness: float = 40.0,
        max_brightness: float = 230.0,
        liveness: LivenessGate | None = None,
    ) -> None:
        if not 1 <= frames_required <= window:
            raise ValueError(f"need 1 <= frames_required <= window, got {frames_required} and {window}")
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must not be negative, got {cooldown_s}")
        self.frames_required = frames_required
        self.window = window
        self.cooldown_s = cooldown_s
        self.gates = QualityGates(min_face_size, max_yaw, max_pitch, min_sharpness, min_brightness, max_brightness)
        self.liveness = liveness
        self._votes: deque[_Vote] = deque(maxlen=window)
        self._denied: set[str] = set()  # reasons already denied in this visit
        self._granted_in_visit = False
        self._last_seen: dict[int, float] = {}  # granted person -> last time a frame matched them
        self._pending: _Pending | None = None
        self._shapes: deque[float] = deque(maxlen=VISIT_SHAPES)  # recent face shapes of the visit (liveness)

    @property
    def challenge(self) -> ChallengeRun | None:
        """The liveness challenge in progress (its prompt is for the screen), or None."""
        return self._pending.run if self._pending is not None else None

    def reset(self) -> None:
        """Forget the current visit and any challenge in progress (cooldowns are kept)."""
        self._votes.clear()
        self._denied.clear()
        self._granted_in_visit = False
        self._pending = None
        self._shapes.clear()

    def cooling_down(self, person_id: int, now: float) -> bool:
        seen = self._last_seen.get(person_id)
        return seen is not None and now - seen < self.cooldown_s

    def update(self, observation: Observation) -> Decision | None:
        """Feed one frame; returns a Decision when this frame settles one, else None."""
        now = observation.time
        if observation.faces <= 0:
            self.reset()
            return None
        if self.liveness is not None and (observation.landmarks is None or observation.box is None):
            raise ValueError("with liveness on, an Observation with a face needs its landmarks and box")
        if self.liveness is not None:
            self._shapes.append(face_shape(observation.landmarks))
        vote = self._vote(observation)
        self._votes.append(vote)
        if vote.kind == MATCH and self.cooling_down(vote.person_id, now):
            self._last_seen[vote.person_id] = now  # still standing there: keep cooling down
        if self._pending is not None:
            decision = self._follow_challenge(now, observation, vote)
        else:
            decision = self._grant(now, observation) or self._deny(now)
        if decision is not None:
            self._votes.clear()
        return decision

    def _vote(self, observation: Observation) -> _Vote:
        if observation.faces > 1:
            return _Vote(SEVERAL_FACES, None, None, None)
        if observation.quality is not None and self.gates.problem(observation.quality) is not None:
            return _Vote(LOW_QUALITY, None, None, None)
        match = observation.match
        if match is None or match.person_id is None:  # nothing to match against: an empty gallery
            return _Vote(UNKNOWN, None, None, None)
        score = float(match.score)
        if match.verdict == MATCH:
            return _Vote(MATCH, int(match.person_id), score, observation.name, observation.liveness_exempt)
        if match.verdict == AMBIGUOUS:
            return _Vote(AMBIGUOUS, None, score, None)
        return _Vote(UNKNOWN, None, score, None)

    def _grant(self, now: float, observation: Observation) -> Decision | None:
        counts = Counter(v.person_id for v in self._votes if v.kind == MATCH)
        if not counts:
            return None
        person_id, count = counts.most_common(1)[0]
        if count < self.frames_required or self.cooling_down(person_id, now):
            return None
        agreeing = [v for v in self._votes if v.kind == MATCH and v.person_id == person_id]
        name = next((v.name for v in reversed(agreeing) if v.name is not None), None)
        score = sum(v.score for v in agreeing) / len(agreeing)
        if self.liveness is not None and any(v.liveness_exempt for v in agreeing):
            return self._granted(person_id, name, score, now, LIVENESS_EXEMPT)
        if self.liveness is not None:
            run = self.liveness.start(now, observation.landmarks, observation.box, median(self._shapes))
            self._pending = _Pending(run, person_id, name, score)
            return None
        return self._granted(person_id, name, score, now, None)

    def _granted(self, person_id: int, name: str | None, score: float, now: float,
                 liveness: str | None) -> Decision:
        self._last_seen[person_id] = now
        self._denied.clear()
        self._granted_in_visit = True
        return Decision(GRANTED, MATCH, person_id, name, score, now, liveness)

    def _follow_challenge(self, now: float, observation: Observation, vote: _Vote) -> Decision | None:
        pending = self._pending
        if vote.kind == MATCH and vote.person_id != pending.person_id:
            return self._liveness_denied(pending, now, pending.run.fail("another person's face appeared"))
        result = pending.run.update(now, observation.landmarks, observation.box)
        if result is None:
            return None
        if not result.passed:
            return self._liveness_denied(pending, now, result)
        if vote.kind == MATCH:  # the same person, recognised again after the move
            self._pending = None
            return self._granted(pending.person_id, pending.name, pending.score, now, result.log_text)
        if now > pending.run.deadline:
            return self._liveness_denied(pending, now, pending.run.fail("the face was not recognised after the move"))
        return None

    def _liveness_denied(self, pending: _Pending, now: float, result: LivenessResult) -> Decision:
        self._pending = None
        return Decision(DENIED, LIVENESS, pending.person_id, pending.name, pending.score, now,
                        result.log_text, f"liveness: {result.detail}")

    def _deny(self, now: float) -> Decision | None:
        if any(v.kind == MATCH for v in self._votes):
            return None
        counts = Counter(v.kind for v in self._votes)
        for reason in sorted(FAILURE_REASONS, key=lambda r: (-counts[r], FAILURE_REASONS.index(r))):
            needed = self.window if reason == LOW_QUALITY else self.frames_required
            if counts[reason] < needed:
                continue
            if reason in self._denied:
                continue
            if self._granted_in_visit and reason in (LOW_QUALITY, SEVERAL_FACES):
                continue
            self._denied.add(reason)
            scores = [v.score for v in self._votes if v.kind == reason and v.score is not None]
            score = sum(scores) / len(scores) if scores else None
            return Decision(DENIED, reason, None, None, score, now)
        return None
