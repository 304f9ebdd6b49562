"""Runs the chosen sections, each in its own module, and gathers one report."""
from __future__ import annotations

import dataclasses
import importlib
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.speed.context import BenchContext
from benchmarks.speed.machine import machine_facts
from benchmarks.speed.options import SECTIONS, BenchOptions
from benchmarks.speed.stats import peak_rss_mb
from kiosk.errors import KioskError


def run_bench(options: BenchOptions, command: str = "", lfw_dir: str | None = None, log=None) -> dict:
    """Run `options.sections` in their fixed order; a section that cannot run records its error."""
    from training.lfw import LFWError
    from training.prepare import default_cache_dir

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    report: dict = {
        "benchmark": "benchmarks.speed: speed and memory of the kiosk pipeline",
        "command": command,
        "quick": options.quick,
        "options": dataclasses.asdict(options),
        "machine": machine_facts(),
        "sections": {},
        "section_seconds": {},
        "peak_rss_mb_after_section": {},
    }
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as workdir:
        ctx = BenchContext(options, Path(workdir), default_cache_dir() / "bench", lfw_dir)
        for name in (s for s in SECTIONS if s in options.sections):
            section = importlib.import_module(f"benchmarks.speed.{name}")
            log(f"[bench] {name} ...")
            started = time.perf_counter()
            try:
                if section.PER_DETECTOR:
                    result = {detector: section.run(ctx, detector) for detector in options.detectors}
                else:
                    result = section.run(ctx)
            except (KioskError, LFWError) as exc:  # bad setup (no LFW, ...): say so, run the rest
                result = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"[bench] {name} failed: {exc}")
            report["sections"][name] = result
            report["section_seconds"][name] = round(time.perf_counter() - started, 1)
            report["peak_rss_mb_after_section"][name] = round(peak_rss_mb(), 2)
            log(f"[bench] {name} done in {report['section_seconds'][name]} s")
    report["peak_rss_mb"] = round(peak_rss_mb(), 2)  # the sections' precision: it bounds their peaks
    return report


def failed_sections(report: dict) -> list[str]:
    return [name for name, result in report["sections"].items() if "error" in result]
