"""Command line: python -m benchmarks.speed [--quick] [--sections a,b] [--detector graph,package] [--out DIR]."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks.speed.detector import detector_names
from benchmarks.speed.machine import ROOT
from benchmarks.speed.options import SECTIONS, BenchError, BenchOptions, quick_options


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description="Speed and memory of the kiosk pipeline.")
    parser.add_argument("--quick", action="store_true", help="a smoke run: every section, a few frames each")
    parser.add_argument("--sections", type=_names, default=SECTIONS, help=f"comma-separated, from {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--detector", type=_names,
                        help=f"face detector implementation(s), comma-separated, each reported on its own "
                             f"(default: all of {','.join(detector_names())}; the first also finds the faces the test frames are built from)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports", help="folder for bench.json and bench.md (default: reports/)")
    parser.add_argument("--frames", type=int, help="frames per resolution for the per-stage latencies (default 200; --quick 3)")
    parser.add_argument("--long-frames", type=int, help="frames of the memory long run (default 10000; --quick 20)")
    parser.add_argument("--rss-every", type=int, help="frames between RSS samples in the long run (default 500; --quick 5)")
    parser.add_argument("--lfw-dir", help="LFW folder (default: $LFW_DIR)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = {"sections": args.sections, "detectors": args.detector, "stage_frames": args.frames,
             "long_frames": args.long_frames, "rss_every": args.rss_every}
    overrides = {key: value for key, value in given.items() if value is not None}
    try:
        options = quick_options(**overrides) if args.quick else BenchOptions(**overrides)
        from benchmarks.speed.report import markdown, write_reports
        from benchmarks.speed.runner import failed_sections, run_bench

        command = "python -m benchmarks.speed " + shlex.join(sys.argv[1:] if argv is None else argv)
        report = run_bench(options, command.strip(), args.lfw_dir)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json_path, md_path = write_reports(report, args.out)
    print(markdown(report))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    failed = failed_sections(report)
    if failed:
        print(f"sections not measured: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
