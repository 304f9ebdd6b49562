"""The report: JSON with every figure, and a markdown summary (the tables printed at the end)."""
from __future__ import annotations

from pathlib import Path

from benchmarks.speed.endtoend import MODES
from benchmarks.speed.stages import STAGES
from kiosk.atomic import atomic_write_bytes, atomic_write_json

JSON_NAME, MARKDOWN_NAME = "bench.json", "bench.md"


def write_reports(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write bench.json and bench.md into `out_dir`, each complete or not at all."""
    json_path, md_path = Path(out_dir) / JSON_NAME, Path(out_dir) / MARKDOWN_NAME
    atomic_write_json(json_path, report)
    atomic_write_bytes(md_path, markdown(report).encode("utf-8"))
    return json_path, md_path


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Kiosk benchmark" + (" (--quick smoke run: few frames, figures are rough)" if report["quick"] else ""),
        "",
        f"`{report['command']}` on {m['date']}, commit `{(m['git_commit'] or 'unknown')[:12]}`"
        + (" with uncommitted changes" if m["git_dirty"] else "") + ".",
        "",
        (f"Machine: {m['cpu_model']}, {m['cpu_cores_usable']} of {m['cpu_cores']} cores usable, "
         f"{m['memory_gb']} GB; Python {m['python']}, TensorFlow {m['tensorflow']} on **{m['tensorflow_device']}**; "
         f"load average at start {m['load_average_at_start']}."
         + (f" Model: {m['model']}." if m.get("model") else "")),
        "",
    ]
    sections = report["sections"]
    for name, render in _RENDERERS.items():
        if name in sections:
            result = sections[name]
            lines += [f"## {_TITLES[name]}", ""]
            lines += [f"Not measured: {result['error']}", ""] if "error" in result else render(result) + [""]
    lines += [(f"Peak RSS of the whole run (ru_maxrss): {report['peak_rss_mb']} MB. "
               f"Section times (s): {report['section_seconds']}."), ""]
    return "\n".join(lines)


def _ms(figures: dict) -> str:
    if not figures or figures.get("median_ms") is None:
        return "-"
    return f"{_short(figures['median_ms'])} / {_short(figures['p90_ms'])}"


def _optional_ms(value: float | None) -> str:
    return "-" if value is None else _short(value)


def _short(value: float) -> str:
    """Three significant figures or so, without exponents: 0.0412, 5.91, 45.9, 1234."""
    return f"{value:.{3 if value < 1 else 2 if value < 10 else 1 if value < 100 else 0}f}"


def _stages(result: dict) -> list[str]:
    lines = ["Milliseconds, median / p90; a different person in every frame.", "",
             "| detector | frame | frames (face found) | " + " | ".join(STAGES) + " | all six |",
             "|---|---|---|" + "---|" * (len(STAGES) + 1)]
    for detector, sizes in result.items():
        for size, r in sizes.items():
            cells = [_ms(r["stages"][stage]) for stage in STAGES] + [_ms(r["frame_total"])]
            lines.append(f"| {detector} | {size} | {r['frames']} ({r['frames_with_face_found']}) | " + " | ".join(cells) + " |")
    return lines


def _endtoend(result: dict) -> list[str]:
    lines = [("KioskRunner over walk-in videos (25 fps), time to the grant from the face entering the picture and "
              "from the whole face in view: lossless = processing time of every frame, realtime = wall clock, "
              "newest frame (frames dropped), paced = realtime with the default analysis caps (kiosk.pacing). "
              "CPU: process CPU time over wall time (100% = one core)."), "",
             ("| detector | frame | mode | frames/s | CPU | analysed / played | to grant from entering: frames analysed "
              "(video frames), s | from whole face: frames, s |"),
             "|---|---|---|---|---|---|---|---|"]
    notes = []
    for detector, r in result.items():
        for size, runs in ((k, v) for k, v in r.items() if isinstance(v, dict) and "lossless" in v):
            for mode in MODES:
                run, d = runs[mode], runs[mode]["decision"]
                if d["granted"]:
                    a, b = d["from_face_entering"], d["from_whole_face"]
                    grant = (f"{a['frames_analysed']} ({a['video_frames']}), {a['seconds']:.2f}",
                             f"{b['frames_analysed']}, {b['seconds']:.2f}")
                else:
                    grant = (f"no grant (denied: {', '.join(d['denials']) or 'never'})", "-")
                fps = "-" if run["frames_per_s"] is None else f"{run['frames_per_s']:.1f}"
                lines.append(f"| {detector} | {size} | {mode} | {fps} | {run['cpu_percent']:.0f}% | {run['frames_analysed']} / "
                             f"{run['frames_played']} | {grant[0]} | {grant[1]} |")
        tracking = {run["tracking"] for runs in r.values() if isinstance(runs, dict) and "lossless" in runs
                    for run in (runs[mode] for mode in MODES)}
        notes.append(f"{detector}: {r['walker']} walks in ({r['walker_photo']}, score {r['walker_photo_score']} "
                     f"against the gallery's threshold {r['threshold']:.3f}), {r['gallery_people']} people enrolled; "
                     f"face tracking {'on' if tracking == {True} else 'off' if tracking == {False} else 'mixed'}; "
                     f"liveness {r['liveness']}; paced: {r['pace']}.")
    return lines + [""] + notes


def _embedding(result: dict) -> list[str]:
    lines = [f"Runtime: {result.get('runtime', 'keras')} (kiosk.embedder).", "",
             "| batch | crops/s | ms per call (median / p90) |", "|---|---|---|"]
    lines += [f"| {b} | {r['crops_per_s']} | {_ms(r['per_call'])} |" for b, r in result["batches"].items()]
    return lines


def _matching(result: dict) -> list[str]:
    lines = [(f"One face against random unit templates ({result['embedding_size']}-d, "
              f"{result['templates_per_person']} per person, strategy {result['strategy']!r})."), "",
             "| templates | ms (median / p90) | once per gallery change: averaging each person (ms) | "
             "measuring the site (ms) |", "|---|---|---|---|"]
    lines += [f"| {n} | {_ms(r)} | {_optional_ms(r.get('means_ms'))} | {_optional_ms(r.get('site_ms'))} |"
              for n, r in result["templates"].items()]
    return lines


def _model(result: dict) -> list[str]:
    t = result["training"]
    return [f"`{result['file']}`: {result['bytes']:,} bytes, {result['parameters']:,} weights.", "",
            (f"Training ({t['loss']}, {t['input_size']} px, augment {t['augment']}, "
             f"{'bfloat16 compute' if t.get('mixed_precision') else 'float32'}, batch {t['batch']}): "
             f"**{t['images_per_s']} images/s** over {t['steps']} steps; data: {t['data']}.")]


def _memory(result: dict) -> list[str]:
    lines = ["| detector | frames | RSS start MB | end MB | max MB | slope MB / 1000 frames | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for detector, r in result.items():
        run = r["long_run"]
        lines.append(f"| {detector} | {run['frames']} | {run['rss_start_mb']} | {run['rss_end_mb']} | "
                     f"{run['rss_max_mb']} | {run['rss_slope_mb_per_1000_frames']} | {r['peak_rss_mb']} |")
    return lines


_RENDERERS = {"stages": _stages, "endtoend": _endtoend, "embedding": _embedding, "matching": _matching,
              "model": _model, "memory": _memory}
_TITLES = {"stages": "Per-stage latency", "endtoend": "End to end", "embedding": "Embedding throughput",
           "matching": "Matching latency", "model": "Model", "memory": "Memory"}
