"""What a benchmark run measures and how much: the full run's sizes, the --quick sizes, sections."""
from __future__ import annotations

from dataclasses import dataclass, replace

from kiosk.errors import KioskError

# Each section is one module of benchmarks.speed; they run in this order (memory last, so that
# its peak RSS covers everything the process did).
SECTIONS = ("stages", "endtoend", "embedding", "matching", "model", "memory")
RESOLUTIONS = ((640, 480), (1280, 720))
EMBED_BATCHES = (1, 8, 32)
GALLERY_SIZES = (1_000, 10_000, 100_000)


class BenchError(KioskError):
    """The benchmark cannot run as asked (unknown section or detector, no LFW person to use...)."""


@dataclass(frozen=True)
class WalkIn:
    """Frames of each phase of a walk-in sequence (25 fps): empty door, walk in, approach, stand."""

    empty: int
    walk: int
    approach: int
    stand: int

    @property
    def total(self) -> int:
        return self.empty + self.walk + self.approach + self.stand


@dataclass(frozen=True)
class BenchOptions:
    sections: tuple[str, ...] = SECTIONS
    detectors: tuple[str, ...] = ()  # kiosk.faces implementations (see benchmarks.speed.detector); () = all
    quick: bool = False
    stage_frames: int = 200  # frames per resolution for the per-stage latencies
    warmup_frames: int = 2  # extra frames per resolution, run first and not measured
    walkin: WalkIn = WalkIn(empty=25, walk=12, approach=38, stand=175)  # 10 s at 25 fps
    stop_after_grant: bool = False  # end-to-end: stop a sequence at its grant (quick runs)
    enrolled_people: int = 20  # LFW people in the end-to-end gallery (3 photos each)
    embed_repeats: int = 30  # timed calls per batch size
    match_repeats: int = 200  # timed queries per gallery size
    long_frames: int = 10_000  # frames of the memory long run
    rss_every: int = 500  # frames between RSS samples in the long run
    train_warmup_steps: int = 2  # traced and run before timing
    train_steps: int = 20
    train_images: int = 2_048  # prepared crops the training pipeline draws from

    def __post_init__(self) -> None:
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown or not self.sections:
            raise BenchError(f"unknown section(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(SECTIONS)}")
        # Imported here: benchmarks.speed.detector imports this module.
        from benchmarks.speed.detector import check_detectors, detector_names

        if not self.detectors:
            object.__setattr__(self, "detectors", detector_names())
        check_detectors(self.detectors)
        if min(self.stage_frames, self.long_frames, self.rss_every) < 1:
            raise BenchError("--frames, --long-frames and --rss-every must be at least 1")


def quick_options(**overrides) -> BenchOptions:
    """A smoke run: every section on real components, a few frames each."""
    quick = BenchOptions(
        quick=True,
        stage_frames=3,
        warmup_frames=1,
        # The stand phase is long so that a grant also comes in real time on a slow CPU; the
        # run stops at the grant, so a fast machine does not play it to the end.
        walkin=WalkIn(empty=3, walk=3, approach=4, stand=150),
        stop_after_grant=True,
        enrolled_people=3,
        embed_repeats=2,
        match_repeats=5,
        long_frames=20,
        rss_every=5,
        train_warmup_steps=1,
        train_steps=2,
        train_images=256,
    )
    return replace(quick, **overrides)
