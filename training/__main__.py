"""Command line of the training tool: `python -m training COMMAND --help`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.lfw import LFW_ENV_VAR


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lfw-dir", help=f"LFW folder (images or .tgz + protocol files); default ${LFW_ENV_VAR}")
    parser.add_argument("--cache-dir", type=Path, help="where aligned crops are cached; default $KIOSK_CACHE_DIR or ~/.cache/face-kiosk")


def _prepare(args: argparse.Namespace) -> int:
    from kiosk.alignment import AlignmentSpec
    from training.lfw import LFW
    from training.prepare import default_cache_dir, prepare

    lfw = LFW.locate(args.lfw_dir, cache_dir=args.cache_dir)
    lfw.verify()
    prepared = prepare(lfw, args.cache_dir or default_cache_dir(), AlignmentSpec(args.size, args.margin), limit=args.limit)
    summary = prepared.summary
    print(json.dumps(summary, indent=1) if args.json else _prepare_report(prepared.folder, summary))
    return 0


def _prepare_report(folder: Path, summary: dict) -> str:
    speed = summary["images_per_second"]
    return "\n".join([
        f"prepared {summary['images']} images into {folder}",
        f"  no face detected: {summary['undetected']} ({summary['undetected_handling']})",
        f"  several faces: {summary['several_faces']} ({summary['several_faces_handling']})",
        f"  median landmark-to-template error: {summary['median_alignment_error_px']} px "
        f"({summary['median_alignment_error_of_eye_distance'] * 100:.1f}% of the eye distance)",
        f"  throughput this run: {speed} images/s" if speed else "  (everything came from the cache)",
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help="detect and align every LFW image once into a cache",
                                  description="Detect and align every LFW image once (resumable).")
    _add_data_options(prepare)
    prepare.add_argument("--size", type=int, default=112, help="crop size in pixels (default 112)")
    prepare.add_argument("--margin", type=float, default=0.0, help="extra border, fraction of the crop (default 0)")
    prepare.add_argument("--limit", type=int, help="only the first N images (for quick trials)")
    prepare.add_argument("--json", action="store_true", help="print the summary as JSON")
    prepare.set_defaults(handler=_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kiosk.errors import KioskError
    from training.lfw import LFWError

    try:
        return args.handler(args)
    except (LFWError, KioskError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
