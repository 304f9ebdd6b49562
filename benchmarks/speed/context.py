"""What the sections share, built on first use: LFW, the engines, frames, sequences, the gallery."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from benchmarks.speed.detector import build_detector
from benchmarks.speed.options import BenchOptions
from benchmarks.speed.people import Cast, choose_cast, enrol
from benchmarks.speed.sequences import Sequence, walkin_sequence
from benchmarks.speed.sources import Source, choose_sources
from benchmarks.speed.stills import Still, stills
from kiosk.database import database_path, open_database
from kiosk.modelcard import ModelCard, default_model_path


class BenchContext:
    """Shared, lazily built resources of one benchmark run; `workdir` is a temporary folder."""

    def __init__(self, options: BenchOptions, workdir: Path, cache_dir: Path, lfw_dir: str | None = None) -> None:
        self.options = options
        self.workdir = workdir
        self.cache_dir = cache_dir  # $KIOSK_CACHE_DIR/bench: generated frames and videos
        self._lfw_dir = lfw_dir
        self._engines: dict = {}
        self._databases: dict[str, Path] = {}

    @cached_property
    def lfw(self):
        from training.lfw import LFW

        return LFW.locate(self._lfw_dir)

    @cached_property
    def card(self) -> ModelCard:
        return ModelCard.load(default_model_path())

    @property
    def reference_detector(self) -> str:
        """The detector that finds the faces frames are built from, and picks who walks in."""
        return self.options.detectors[0]

    def engine(self, detector: str):
        """The shipped model with detector `detector` (one engine per detector)."""
        if detector not in self._engines:
            from kiosk.engine import FaceEngine

            self._engines[detector] = FaceEngine(self.card.path, build_detector(detector))
        return self._engines[detector]

    def sources(self, count: int) -> list[Source]:
        return choose_sources(self.lfw, self.engine(self.reference_detector).detector, count, self.cache_dir)

    def stills(self, size: tuple[int, int]) -> list[Still]:
        """Warm-up frames first, then the measured ones: a different person in each."""
        count = self.options.warmup_frames + self.options.stage_frames
        return stills(self.lfw, self.sources(count), size, self.cache_dir)

    @cached_property
    def cast(self) -> Cast:
        return choose_cast(self.lfw, self.engine(self.reference_detector), self.options.enrolled_people)

    def database(self, detector: str) -> Path:
        """A kiosk database with the cast enrolled through `detector`'s engine."""
        if detector not in self._databases:
            path = database_path(self.workdir / f"gallery-{detector}")
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = open_database(path)
            try:
                enrol(conn, self.lfw, self.engine(detector), self.cast)
            finally:
                conn.close()
            self._databases[detector] = path
        return self._databases[detector]

    def walkin(self, size: tuple[int, int]) -> Sequence:
        return walkin_sequence(self.lfw, self.cast.probe, size, self.options.walkin, self.cache_dir)
