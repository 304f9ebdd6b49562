"""A site of several doors on one PostgreSQL server: how many decisions it logs, how fast, and what a
large gallery costs each door.

1. N door processes (default 8) log access decisions against one server as fast as they can for
   a while: each decision is one AccessLog.record() as the kiosk makes it (committed to the door's
   outbox, then to the server with its chain entry) after a Gallery.matrix() check. Events
   committed per second (all doors), commit latency p50/p99 (one record() call).
2. A 10,000-person gallery (one template each, sealed, of the shipped model's size): the time a
   new door takes to connect and load it (open every sealed template), the time from a removal
   committed at one door to its matrix without that person at another door process, and the
   resident memory of a door process that holds it (the storage side only: no model loaded).

    python benchmarks/site.py                      # 8 doors for 20 s, 10,000 people
    python benchmarks/site.py --doors 4 --seconds 5 --people 2000

The server is the distribution's PostgreSQL (apt-get install postgresql), started as an
unprivileged user in a temporary folder, as the tests do; fsync is off there, so the figures
show the kiosk's own cost and the server's CPU, not a disk's. Writes reports/site.json and
reports/site.md (atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.atomic import atomic_open, atomic_write_json  # noqa: E402
from kiosk.keystore import key_file_path  # noqa: E402

DIM = 528  # the shipped model's template size (assets/face_embedder.card.json)

DOOR = """
import json, sys, time
from kiosk.accesslog import AccessLog
from kiosk.gallery import Gallery
from kiosk.site import open_site_database
url, folder, door, seconds, start_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
conn = open_site_database(url, folder, door)
gallery, log = Gallery(conn), AccessLog(conn)
ids = gallery.matrix()[1]
while time.time() < start_at:
    time.sleep(0.001)
latencies = []
end = start_at + seconds
i = 0
while time.time() < end:
    gallery.matrix()
    began = time.perf_counter()
    log.record(camera="bench", decision="granted", reason="match", person_id=int(ids[i % len(ids)]), score=0.9)
    latencies.append(time.perf_counter() - began)
    i += 1
conn.close()
print(json.dumps(latencies))
"""

HOLDER = """
import sys, time
from kiosk.gallery import Gallery
from kiosk.site import open_site_database
began = time.perf_counter()
conn = open_site_database(sys.argv[1], sys.argv[2], sys.argv[3])
gallery = Gallery(conn)
people = set(gallery.matrix()[1].tolist())
print("loaded", time.perf_counter() - began, len(people), flush=True)
while True:
    now = set(gallery.matrix()[1].tolist())
    if now != people:
        print("changed", time.time(), len(now), flush=True)
        people = now
    time.sleep(0.005)
"""


def door_folder(work: Path, name: str, key_from: Path | None) -> Path:
    folder = work / name
    folder.mkdir(mode=0o700)
    if key_from is not None:
        key = key_file_path(folder)
        key.parent.mkdir(mode=0o700)
        shutil.copy2(key_file_path(key_from), key)
    return folder


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def throughput(url: str, work: Path, first: Path, doors: int, seconds: float) -> dict:
    from kiosk.gallery import Gallery
    from kiosk.site import open_site_database

    print(f"\n== {doors} doors logging decisions for {seconds:g} s", flush=True)
    conn = open_site_database(url, first, "setup")
    gallery = Gallery(conn)
    for i, vector in enumerate(unit_vectors(20, 1)):
        gallery.enroll(f"person {i}", None, [vector], [0.9], ["bench"])
    conn.close()
    start_at = time.time() + 8.0  # every door connected and its gallery loaded by then
    processes = [subprocess.Popen([sys.executable, "-c", DOOR, url, str(door_folder(work, f"door{i}", first)),
                                   f"door{i}", str(seconds), str(start_at)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
                 for i in range(doors)]
    latencies: list[float] = []
    for process in processes:
        out, _ = process.communicate(timeout=seconds + 120)
        if process.returncode != 0:
            raise SystemExit(f"a door process failed (exit status {process.returncode})")
        latencies += json.loads(out)
    ms = np.array(latencies) * 1000
    result = {"doors": doors, "seconds": seconds, "events": len(latencies),
              "events_per_s": round(len(latencies) / seconds, 1),
              "commit_ms_p50": round(float(np.percentile(ms, 50)), 2),
              "commit_ms_p99": round(float(np.percentile(ms, 99)), 2)}
    conn = open_site_database(url, first, "setup")
    from kiosk.accesslog import AccessLog

    started = time.perf_counter()
    report = AccessLog(conn).verify()
    result["verify_s"] = round(time.perf_counter() - started, 2)
    result["verify_ok"] = report.ok
    conn.close()
    print(f"{result['events']} events, {result['events_per_s']} events/s; commit p50 {result['commit_ms_p50']} ms, "
          f"p99 {result['commit_ms_p99']} ms; log verify {'passes' if report.ok else 'FAILS'} "
          f"({result['verify_s']} s)", flush=True)
    return result


def large_gallery(url: str, work: Path, people: int) -> dict:
    from kiosk.connection import transaction
    from kiosk.gallery import Gallery
    from kiosk.site import open_site_database

    print(f"\n== a {people}-person gallery", flush=True)
    admin_dir = door_folder(work, "admin", None)
    conn = open_site_database(url, admin_dir, "admin")
    gallery = Gallery(conn)
    started = time.perf_counter()
    vectors = unit_vectors(people, 2)
    with transaction(conn):
        for i, vector in enumerate(vectors):
            gallery.enroll(f"person {i:05d}", None, [vector], [0.9], ["bench"])
    enrol_s = time.perf_counter() - started
    print(f"enrolled {people} people in {enrol_s:.1f} s", flush=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(door_folder(work, "holder", admin_dir)),
                               "holder"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        _, load_s, count = holder.stdout.readline().split()
        load_s = float(load_s)
        with open(f"/proc/{holder.pid}/status") as status:
            rss_mb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
        visible = []
        for i in range(5):
            gallery.remove(f"person {i:05d}")
            removed = time.time()
            kind, stamp, left = holder.stdout.readline().split()
            visible.append(float(stamp) - removed)
    finally:
        holder.kill()
        holder.wait()
        conn.close()
    result = {"people": people, "template_dim": DIM, "enrol_s": round(enrol_s, 1), "load_s": round(load_s, 2),
              "change_visible_s_median": round(float(np.median(visible)), 3),
              "change_visible_s_max": round(float(np.max(visible)), 3), "door_rss_mb": round(rss_mb, 1)}
    print(f"a new door loads it in {load_s:.2f} s; a removal is seen at another door after "
          f"{result['change_visible_s_median']:.3f} s (median of 5, max {result['change_visible_s_max']:.3f}); "
          f"a door process holding it: {rss_mb:.0f} MB resident", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doors", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    args = parser.parse_args()
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    work = Path(tempfile.mkdtemp(prefix="site-bench-"))
    try:
        first = door_folder(work, "first", None)
        result = {
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
            "server": subprocess.run([str(server.bin / "postgres"), "--version"], capture_output=True,
                                     text=True).stdout.strip(),
            "throughput": throughput(server.new_database(), work, first, args.doors, args.seconds),
            "gallery": large_gallery(server.new_database(), work, args.people),
        }
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(exist_ok=True)
    atomic_write_json(args.out / "site.json", result)
    t, g = result["throughput"], result["gallery"]
    with atomic_open(args.out / "site.md", "w", encoding="utf-8") as out:
        out.write(f"""# A site of several doors on one PostgreSQL server

`python benchmarks/site.py --doors {t['doors']} --seconds {t['seconds']:g} --people {g['people']}`
({result['server']}, fsync off; {result['host']['cpus']} CPU cores shared by the server and every door;
{result['when']}).

## {t['doors']} doors logging decisions at once

Each door process logs decisions as fast as it can: every decision is one `AccessLog.record()`, as
the kiosk makes it (committed to the door's outbox, then to the server with its entry in the door's
log chain). No camera and no model: the storage path only.

| events | events committed per second | commit latency p50 | p99 | `log verify` afterwards |
|---:|---:|---:|---:|---|
| {t['events']} | {t['events_per_s']} | {t['commit_ms_p50']} ms | {t['commit_ms_p99']} ms | {'passes' if t['verify_ok'] else 'FAILS'} ({t['verify_s']} s) |

## A {g['people']:,}-person gallery

One sealed {g['template_dim']}-value template per person (the shipped model's size).

| a new door connects and loads it | a removal seen at another door (median of 5) | max | resident memory of a door process holding it (no model) |
|---:|---:|---:|---:|
| {g['load_s']} s | {g['change_visible_s_median']} s | {g['change_visible_s_max']} s | {g['door_rss_mb']} MB |

A change is seen at the other doors through LISTEN/NOTIFY; the time includes reloading the whole
gallery there (every template opened again).
""")
    print(f"\nwrote {args.out / 'site.json'} and {args.out / 'site.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
