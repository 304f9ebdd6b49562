"""The decision policy: sequences of frames in, grants and denials out (pure, no models).

These are the rules without liveness (DecisionPolicy() has no LivenessGate); the liveness
challenge on top of them is tested in tests/test_liveness.py."""
import pytest

from kiosk.matching import Match
from kiosk.policy import Decision, DecisionPolicy, Observation, QualityGates
from kiosk.quality import Quality

GOOD = Quality(size=120, eye_distance=45, sharpness=300, brightness=120, contrast=40, yaw=2, pitch=-3, roll=1)
SMALL = Quality(size=40, eye_distance=15, sharpness=300, brightness=120, contrast=40, yaw=0, pitch=0, roll=0)
TURNED = Quality(size=120, eye_distance=30, sharpness=300, brightness=120, contrast=40, yaw=45, pitch=0, roll=0)
BLURRED = Quality(size=120, eye_distance=45, sharpness=5, brightness=120, contrast=40, yaw=0, pitch=0, roll=0)
DARK = Quality(size=120, eye_distance=45, sharpness=300, brightness=10, contrast=5, yaw=0, pitch=0, roll=0)

ALICE, BOB = 1, 2
NAMES = {ALICE: "Alice", BOB: "Bob"}


def matched(person: int, score: float = 0.8) -> Match:
    return Match(person, score, None, None, "match")


def unknown(score: float = 0.2) -> Match:
    return Match(ALICE, score, None, None, "unknown")


def ambiguous() -> Match:
    return Match(ALICE, 0.6, BOB, 0.58, "ambiguous")


class Feed:
    """Feeds frames at 5 fps and collects what the policy decides."""

    def __init__(self, policy: DecisionPolicy | None = None, fps: float = 5.0) -> None:
        self.policy = policy or DecisionPolicy()
        self.t = 100.0
        self.step = 1.0 / fps
        self.decisions: list[Decision] = []

    def frames(self, n: int, match: Match | None = None, faces: int = 1,
               quality: Quality = GOOD) -> list[Decision | None]:
        out = []
        for _ in range(n):
            name = NAMES.get(match.person_id) if match is not None and match.verdict == "match" else None
            decision = self.policy.update(Observation(self.t, faces, match, quality, name))
            out.append(decision)
            if decision is not None:
                self.decisions.append(decision)
            self.t += self.step
        return out

    def empty(self, n: int = 1) -> None:
        for _ in range(n):
            assert self.policy.update(Observation(self.t, 0)) is None
            self.t += self.step

    def wait(self, seconds: float) -> None:
        self.t += seconds

    def summary(self) -> list[tuple[str, str, str | None]]:
        return [(d.decision, d.reason, d.name) for d in self.decisions]


def test_grant_needs_frames_required_agreeing_frames():
    feed = Feed()
    results = feed.frames(3, matched(ALICE, 0.7))
    assert results[:2] == [None, None]
    decision = results[2]
    assert decision.decision == "granted" and decision.reason == "match"
    assert decision.person_id == ALICE and decision.name == "Alice"
    assert decision.score == pytest.approx(0.7) and decision.time == pytest.approx(100.4)
    assert decision.granted


def test_grant_tolerates_a_stray_frame_within_the_window():
    feed = Feed()
    feed.frames(1, matched(ALICE))
    feed.frames(1, unknown())
    feed.frames(1, matched(ALICE))
    assert feed.decisions == []
    feed.frames(1, matched(ALICE))
    assert feed.summary() == [("granted", "match", "Alice")]


def test_frames_that_disagree_on_the_person_grant_no_one():
    feed = Feed(DecisionPolicy(frames_required=3, window=4))
    for _ in range(4):
        feed.frames(1, matched(ALICE))
        feed.frames(1, matched(BOB))
    assert feed.decisions == []


def test_no_repeated_grant_while_the_person_stands_there():
    feed = Feed(DecisionPolicy(cooldown_s=5.0))
    feed.frames(60, matched(ALICE))  # 12 s in front of the camera
    assert feed.summary() == [("granted", "match", "Alice")]


def test_cooldown_holds_across_a_short_absence_and_expires_after():
    feed = Feed(DecisionPolicy(cooldown_s=5.0))
    feed.frames(3, matched(ALICE))
    feed.empty(5)  # 1 s away
    feed.frames(5, matched(ALICE))
    assert len(feed.decisions) == 1
    feed.empty(1)
    feed.wait(6.0)
    feed.frames(3, matched(ALICE))
    assert feed.summary() == [("granted", "match", "Alice")] * 2


def test_cooldown_is_per_person():
    feed = Feed()
    feed.frames(3, matched(ALICE))
    feed.frames(3, matched(BOB))
    assert feed.summary() == [("granted", "match", "Alice"), ("granted", "match", "Bob")]


def test_stranger_is_denied_once_per_visit():
    feed = Feed()
    feed.frames(30, unknown(0.25))
    assert feed.summary() == [("denied", "unknown", None)]
    assert feed.decisions[0].score == pytest.approx(0.25)
    assert feed.decisions[0].person_id is None
    feed.empty()  # they leave and come back: a new visit
    feed.frames(30, unknown())
    assert feed.summary() == [("denied", "unknown", None)] * 2


def test_denial_needs_frames_required_failures_and_no_match_in_the_window():
    feed = Feed()
    feed.frames(2, unknown())
    assert feed.decisions == []
    feed.frames(1, matched(ALICE))
    feed.frames(2, unknown())  # window: u u M u u -> a match in view, keep looking
    assert feed.decisions == []
    feed.frames(2, unknown())  # window: M u u u u
    assert feed.decisions == []
    feed.frames(1, unknown())  # window: u u u u u
    assert feed.summary() == [("denied", "unknown", None)]


def test_stranger_right_after_a_grant_is_denied():
    feed = Feed()
    feed.frames(10, matched(ALICE))
    feed.frames(10, unknown())
    assert feed.summary() == [("granted", "match", "Alice"), ("denied", "unknown", None)]


def test_several_faces_are_denied():
    feed = Feed()
    feed.frames(3, matched(ALICE), faces=2)
    assert feed.summary() == [("denied", "several_faces", None)]


def test_ambiguous_matches_are_denied():
    feed = Feed()
    feed.frames(3, ambiguous())
    assert feed.summary() == [("denied", "ambiguous", None)]


@pytest.mark.parametrize("quality", [SMALL, TURNED, BLURRED, DARK], ids=["small", "turned", "blurred", "dark"])
def test_low_quality_faces_are_never_granted_and_denied_after_a_full_window(quality):
    feed = Feed()
    feed.frames(4, matched(ALICE), quality=quality)
    assert feed.decisions == []  # a face still far away is no reason to deny yet
    feed.frames(20, matched(ALICE), quality=quality)
    assert feed.summary() == [("denied", "low_quality", None)]


def test_a_person_who_steps_closer_after_a_low_quality_denial_is_granted():
    feed = Feed()
    feed.frames(5, matched(ALICE), quality=SMALL)
    feed.frames(3, matched(ALICE), quality=GOOD)
    assert feed.summary() == [("denied", "low_quality", None), ("granted", "match", "Alice")]


def test_walking_away_after_a_grant_is_not_a_denial():
    feed = Feed()
    feed.frames(3, matched(ALICE))
    feed.frames(10, matched(ALICE), quality=SMALL)
    feed.frames(5, matched(ALICE), faces=2)
    assert feed.summary() == [("granted", "match", "Alice")]


def test_a_faceless_frame_resets_the_visit():
    feed = Feed()
    feed.frames(2, matched(ALICE))
    feed.empty()
    feed.frames(2, matched(ALICE))
    assert feed.decisions == []
    feed.frames(1, matched(ALICE))
    assert len(feed.decisions) == 1


def test_empty_gallery_means_unknown():
    feed = Feed()
    feed.frames(3, Match(None, float("-inf"), None, None, "unknown"))
    assert feed.summary() == [("denied", "unknown", None)]
    assert feed.decisions[0].score is None


def test_settings_are_validated():
    with pytest.raises(ValueError):
        DecisionPolicy(frames_required=6, window=5)
    with pytest.raises(ValueError):
        DecisionPolicy(cooldown_s=-1)


def test_quality_gates_say_why():
    gates = QualityGates()
    assert gates.problem(GOOD) is None
    assert "too small" in gates.problem(SMALL)
    assert "turned" in gates.problem(TURNED)
    assert "blurred" in gates.problem(BLURRED)
    assert "dark" in gates.problem(DARK)
