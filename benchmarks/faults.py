"""The fault suite's long loops: does the kiosk lose anything, crash or hang when things go wrong?

Runs the loops of tests/faults/ (the tests run a few iterations of each) for real:

1. fuzzed and odd images through load_image, FaceEngine, the enrolment import, the command line
   (in-process and as real processes) and the folder camera under the runner;
2. cameras failing in use (folder deleted, video cut or deleted, stream never connecting or
   stalling, a FIFO as the camera, a source that ends), through the runner;
3. SIGKILL at random moments while enrolling, logging, saving the settings and the admin PIN,
   then every write the killed process reported committed is checked;
4. a full disk (a small tmpfs or loop file system as root, else RLIMIT_FSIZE), then space again;
5. the recogniser, `python -m kiosk enroll` and busy writers at once on one data folder;
6. a long run through KioskRunner (MTCNN, the shipped model, SQLite) with RSS sampled.

    python benchmarks/faults.py                          # the full run: 300 inputs, 50 kills each, 10,000 frames
    python benchmarks/faults.py --kills 20 --frames 300  # a modest run

Prints a summary and writes reports/faults.json and reports/faults.md (atomically). Exit status 1
when any check failed (data lost, a crash, a hang, a defect found), 0 when all held.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fault loops live beside their tests, as the package `faults`
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
from faults import camera_faults, concurrency, diskfull, fuzz, kills, longrun  # noqa: E402

from kiosk.atomic import atomic_open, atomic_write_json  # noqa: E402


def section(title: str):
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run_fuzz(args, engine, face, work: Path) -> dict:
    started = section(f"1. odd images: {args.fuzz} mutations + fixed cases, seed {args.seed}")
    folder = work / "fuzz" / "inputs"
    cases = fuzz.make_cases(folder, face, args.fuzz, args.seed, bomb_side=15000)
    entry = {
        "load_image": fuzz.check_load_image(cases),
        "engine": fuzz.check_engine(engine, cases, fuzz.odd_arrays(args.seed, max(args.fuzz // 5, 10))),
        "enroll_import": fuzz.check_enroll_import(engine, cases, _fresh(work / "fuzz" / "import")),
        "cli": fuzz.check_cli(cases, folder / "face.jpg", _fresh(work / "fuzz" / "cli")),
        "cli_processes": fuzz.check_cli_process(cases, _fresh(work / "fuzz" / "processes")),
        "folder_camera": fuzz.check_folder_camera(engine, cases, folder, _fresh(work / "fuzz" / "camera")),
    }
    unreadable = fuzz.check_unreadable(work / "fuzz", (folder / "face.jpg").read_bytes())
    for name, figures in entry.items():
        print(f"  {name:<14} {figures.tried:>5} tried, {figures.accepted:>4} accepted, {figures.refused:>4} refused,"
              f" {len(figures.problems)} problems, slowest {figures.slowest_s:.2f} s")
        for problem in figures.problems[:5]:
            print(f"      ! {problem}")
    print(f"  unreadable file: {unreadable[0]} ({unreadable[1][-120:]})")
    problems = sum(len(f.problems) for f in entry.values()) + (unreadable[0] not in ("refused", "skipped"))
    return {"inputs": len(cases), "kinds": fuzz.kinds(cases), "calls": sum(f.tried for f in entry.values()) + 1,
            "problems": problems, "entry_points": {k: f.to_dict() for k, f in entry.items()},
            "unreadable": {"outcome": unreadable[0], "message": unreadable[1]},
            "seconds": round(time.perf_counter() - started, 1)}


def run_cameras(engine, work: Path) -> dict:
    started = section("2. cameras failing in use (through the runner)")
    results = camera_faults.all_cases(work / "cameras", engine)
    for r in results:
        print(f"  {'ok  ' if r['ok'] else 'FAIL'} {r['case']:<34} {r['frames']:>4} frames, "
              f"states {'>'.join(r['states'])}: {r['message'][:70]} {r['detail'][:80]}")
    return {"cases": results, "failed": sum(not r["ok"] for r in results),
            "seconds": round(time.perf_counter() - started, 1)}


def run_kills(args, work: Path) -> dict:
    started = section(f"3. SIGKILL: {args.kills} kills each while enrolling, logging, saving settings and PIN")
    out = {}
    for mode in ("enroll", "log"):
        out[mode] = kills.kill_database_writer(mode, _fresh(work / "kills" / mode), args.kills, args.seed).to_dict()
    for mode in ("settings", "pin"):
        out[mode] = kills.kill_file_writer(mode, _fresh(work / "kills" / mode), args.kills, args.seed).to_dict()
    for mode, f in out.items():
        print(f"  {mode:<8} {f['kills']:>3} kills, {f['committed']:>6} committed, {f['checked']:>6} checked, "
              f"lost {f['lost']}, orphans {f['orphan_people']}, integrity failures {f['integrity_failures']}, "
              f"temp files left {f['leftover_temp_files']}")
    print(f"  log verify after the log kills: {out['log']['log_verify']}")
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def run_disk_full(work: Path, face_file: Path) -> dict:
    started = section("4. disk full, then space again")
    figures = diskfull.disk_full(_fresh(work / "disk"), face_file).to_dict()
    print(f"  method {figures['method']}: {figures['refusals']} refused writes "
          f"({', '.join(figures['refusal_messages'])}), unclear {len(figures['unclear'])}, "
          f"lost {figures['lost']}, orphans {figures['orphans']}, recovered {figures['recovered']}, "
          f"integrity {figures['integrity']}")
    print(f"  python -m kiosk enroll on the full disk: {figures['cli_enroll'] or 'not tried'}")
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures


def run_concurrency(args, face, face_file: Path, work: Path) -> dict:
    started = section(f"5. concurrent writers for {args.concurrent_seconds:g} s")
    figures = concurrency.concurrent_writers(_fresh(work / "concurrent"), face, face_file,
                                             seconds=args.concurrent_seconds).to_dict()
    print(f"  {figures['processes']} processes, {figures['concurrent_writes']} writes "
          f"(recogniser {figures['recogniser_events']}, CLI enrolments {figures['cli_enrolled']}, "
          f"writer people {figures['writer_people']}, writer events {figures['writer_events']}); "
          f"'database is locked' {figures['locked_errors']}, lost {figures['lost']}, "
          f"integrity {figures['integrity']}, log verify {figures['log_verify'][:60]}")
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    return figures


def run_long(args, engine, face, work: Path) -> dict:
    started = section(f"6. long run: {args.frames} frames, RSS every {args.sample_every}")
    figures = longrun.long_run(engine, face, work / "long", args.frames, args.sample_every).to_dict()
    print(f"  {figures['frames']} frames in {figures['seconds']} s ({figures['fps']} fps), "
          f"{figures['analysed_with_faces']} with a face, {figures['decisions']} decisions; RSS start {figures['rss_start_mb']} MB, end {figures['rss_end_mb']} MB, "
          f"max {figures['rss_max_mb']} MB, slope {figures['slope_mb_per_1000_frames']} MB / 1000 frames")
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    return figures


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def summarise(report: dict) -> dict:
    k, d, c, f, cam = (report.get(key, {}) for key in ("kills", "disk_full", "concurrent", "fuzz", "cameras"))
    db_kills = [k[m] for m in ("enroll", "log") if m in k]
    file_kills = [k[m] for m in ("settings", "pin") if m in k]
    checked = sum(x["checked"] for x in db_kills + file_kills) + d.get("checked", 0) + c.get("checked", 0)
    lost = sum(x["lost"] for x in db_kills + file_kills) + d.get("lost", 0) + c.get("lost", 0)
    orphans = sum(x["orphan_people"] for x in db_kills) + d.get("orphans", 0)
    defects = (f.get("problems", 0) + cam.get("failed", 0) + sum(x["integrity_failures"] for x in db_kills)
               + len(d.get("unclear", [])) + len([p for p in d.get("problems", []) if "without templates" not in p])
               + c.get("locked_errors", 0) + len(c.get("problems", [])) + orphans)
    return {
        "inputs_tried": f.get("inputs", 0), "entry_point_calls": f.get("calls", 0),
        "camera_faults": len(cam.get("cases", [])), "camera_faults_failed": cam.get("failed", 0),
        "kills_during_enrollment": k.get("enroll", {}).get("kills", 0),
        "kills_during_logging": k.get("log", {}).get("kills", 0),
        "kills_during_settings_save": k.get("settings", {}).get("kills", 0),
        "kills_during_pin_save": k.get("pin", {}).get("kills", 0),
        "committed_writes_checked": checked, "data_lost": lost, "people_without_templates": orphans,
        "disk_full_refusals": d.get("refusals", 0), "disk_full_method": d.get("method"),
        "concurrent_writes": c.get("concurrent_writes", 0), "database_locked_errors": c.get("locked_errors", 0),
        "frames": report.get("long_run", {}).get("frames", 0),
        "frames_with_face": report.get("long_run", {}).get("analysed_with_faces", 0),
        "rss_start_mb": report.get("long_run", {}).get("rss_start_mb"),
        "rss_end_mb": report.get("long_run", {}).get("rss_end_mb"),
        "rss_max_mb": report.get("long_run", {}).get("rss_max_mb"),
        "memory_slope_mb_per_1000_frames": report.get("long_run", {}).get("slope_mb_per_1000_frames"),
        "defects": defects,
    }


def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [
        "# Fault suite", "",
        f"`{report['command']}` on {report['machine']}, {report['date']}, {report['seconds']:.0f} s.", "",
        "| fault | figure |", "| --- | --- |",
        f"| odd images: inputs tried (entry-point calls) | {s['inputs_tried']} ({s['entry_point_calls']}) |",
        f"| camera faults (failed) | {s['camera_faults']} ({s['camera_faults_failed']}) |",
        f"| SIGKILL during enrolment / logging | {s['kills_during_enrollment']} / {s['kills_during_logging']} |",
        f"| SIGKILL during settings / PIN save | {s['kills_during_settings_save']} / {s['kills_during_pin_save']} |",
        f"| committed writes checked | {s['committed_writes_checked']} |",
        f"| **data lost** | **{s['data_lost']}** |",
        f"| people left without templates (enrolment not atomic) | {s['people_without_templates']} |",
        f"| disk full: refused writes ({s['disk_full_method']}) | {s['disk_full_refusals']} |",
        f"| concurrent writes / \"database is locked\" | {s['concurrent_writes']} / {s['database_locked_errors']} |",
        f"| long run: frames (with a face found and embedded) | {s['frames']} ({s['frames_with_face']}) |",
        f"| RSS start / end / max (MB) | {s['rss_start_mb']} / {s['rss_end_mb']} / {s['rss_max_mb']} |",
        f"| RSS slope after warm-up (MB per 1000 frames) | {s['memory_slope_mb_per_1000_frames']} |",
        f"| defects found | {s['defects']} |", "",
    ]
    if "cameras" in report:
        lines += ["## Cameras", "", "| case | ok | frames | states | message |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['case']} | {'yes' if r['ok'] else '**no**'} | {r['frames']} | {' > '.join(r['states'])} "
                  f"| {r['message'][:80]} |" for r in report["cameras"]["cases"]]
        lines.append("")
    problems = []
    for key in ("fuzz", "kills", "disk_full", "concurrent"):
        part = report.get(key, {})
        if key == "fuzz":
            for name, entry in part.get("entry_points", {}).items():
                problems += [f"{name}: {p}" for p in entry["problem_examples"]]
        elif key == "kills":
            for mode in ("enroll", "log", "settings", "pin"):
                problems += [f"kills/{mode}: {p}" for p in part.get(mode, {}).get("problems", [])[:5]]
        else:
            problems += [f"{key}: {p}" for p in part.get("problems", [])[:5]]
    lines += ["## Problems found", ""] + ([f"- {p}" for p in problems] or ["none"]) + [""]
    lines += ["Figures in full: reports/faults.json. What each loop does: tests/faults/ and this script's docstring.",
              ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--fuzz", type=int, default=300, help="mutated image files (besides the fixed cases)")
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs per kind of write")
    parser.add_argument("--frames", type=int, default=10_000, help="frames for the long run")
    parser.add_argument("--sample-every", type=int, default=100, help="RSS sample every N frames")
    parser.add_argument("--concurrent-seconds", type=float, default=30.0)
    parser.add_argument("--only", nargs="+", choices=("fuzz", "cameras", "kills", "disk", "concurrent", "long"),
                        help="run only these loops")
    parser.add_argument("--out-json", type=Path, default=ROOT / "reports" / "faults.json")
    parser.add_argument("--out-md", type=Path, default=ROOT / "reports" / "faults.md")
    args = parser.parse_args(argv)
    chosen = set(args.only or ("fuzz", "cameras", "kills", "disk", "concurrent", "long"))

    started = time.perf_counter()
    from skimage import data

    from kiosk.engine import shared_engine

    face = data.astronaut()  # a real photograph with one face
    engine = shared_engine()
    report: dict = {
        "command": "python benchmarks/faults.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    with tempfile.TemporaryDirectory(prefix="kiosk-faults-") as tmp:
        work = Path(tmp)
        face_file = work / "eileen.jpg"
        cv2.imwrite(str(face_file), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        if "fuzz" in chosen:
            report["fuzz"] = run_fuzz(args, engine, face, work)
        if "cameras" in chosen:
            report["cameras"] = run_cameras(engine, work)
        if "kills" in chosen:
            report["kills"] = run_kills(args, work)
        if "disk" in chosen:
            report["disk_full"] = run_disk_full(work, face_file)
        if "concurrent" in chosen:
            report["concurrent"] = run_concurrency(args, face, face_file, work)
        if "long" in chosen:
            report["long_run"] = run_long(args, engine, face, work)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["summary"] = summary = summarise(report)

    section("summary")
    for key, value in summary.items():
        print(f"  {key.replace('_', ' ')}: {value}")
    atomic_write_json(args.out_json, report)
    with atomic_open(args.out_md, "w", encoding="utf-8") as stream:
        stream.write(markdown(report))
    print(f"\nwrote {args.out_json} and {args.out_md}")
    return 1 if summary["data_lost"] or summary["defects"] else 0


if __name__ == "__main__":
    sys.exit(main())
