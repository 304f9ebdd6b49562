"""A full disk: enrol and log until writes fail, check each failure is clear and nothing earlier is
lost, then give the space back and check the kiosk works again.

The data folder sits on a real small file system when this process may mount one (tmpfs, else
an ext4 image on a loop device, both need root); otherwise the writer limits its own file sizes
with RLIMIT_FSIZE, which SQLite sees as a failing write rather than ENOSPC.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .common import (
    Child,
    check_events,
    check_people,
    integrity_check,
    kiosk_cli,
    traceback_in,
)
from .writer import pin_for, settings_for

FS_SIZE_KB = 2048
MARGIN_BYTES = 96 * 1024  # room left beside the filler: the database opens, a few writes succeed
RLIMIT_HEADROOM = 160 * 1024  # without a small file system: files may grow this much past the database


@contextlib.contextmanager
def small_filesystem(work: Path, size_kb: int = FS_SIZE_KB) -> Iterator[tuple[Path | None, str]]:
    """(mount point, "tmpfs" | "loop ext4") of a fresh small file system, or (None, why not)."""
    mount_point = work / "small-fs"
    mount_point.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        yield None, "not root: no file system can be mounted"
        return
    attempts = [("tmpfs", ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(mount_point)])]
    image = work / "small-fs.img"
    if shutil.which("mkfs.ext4"):
        attempts.append(("loop ext4", ["mount", "-o", "loop", str(image), str(mount_point)]))
    why = []
    for kind, command in attempts:
        if kind == "loop ext4":
            with open(image, "wb") as stream:
                stream.truncate(size_kb * 1024)
            made = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=False, capture_output=True,
                                  text=True)
            if made.returncode != 0:
                why.append(f"mkfs.ext4: {made.stderr.strip()}")
                continue
        mounted = subprocess.run(command, check=False, capture_output=True, text=True)
        if mounted.returncode != 0:
            why.append(f"{kind}: {mounted.stderr.strip()}")
            continue
        try:
            yield mount_point, kind
        finally:
            if subprocess.run(["umount", str(mount_point)], check=False, capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)
            image.unlink(missing_ok=True)
        return
    yield None, "; ".join(why)


def fill_up(folder: Path, leave: int) -> Path:
    """Write a filler file until the file system is full, then give `leave` bytes back."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with open(filler, "wb") as stream, contextlib.suppress(OSError):
        while True:
            stream.write(block)
            stream.flush()
    size = filler.stat().st_size
    os.truncate(filler, max(size - leave, 0))
    return filler


@dataclass
class DiskFullFigures:
    method: str = ""
    writes_before_full: int = 0  # committed before the first refusal (baseline + fill)
    refusals: int = 0  # writes refused on the full disk (each must be a clear error)
    unclear: list[str] = field(default_factory=list)  # refusals that were not a clear disk-full error
    refusal_messages: list[str] = field(default_factory=list)
    cli_enroll: str = ""  # what `python -m kiosk enroll` said on the full disk ("" when not tried)
    cli_read: str = ""  # `python -m kiosk people` / `log` on the full disk
    files_intact: bool = False  # settings.json and admin.json still whole after refused saves
    leftover_temp_files: int = 0
    recovered: bool = False  # enrol, log, settings and PIN all worked again once space came back
    checked: int = 0
    lost: int = 0
    orphans: int = 0
    integrity: str = ""
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {key: (value[:10] if isinstance(value, list) else value) for key, value in self.__dict__.items()}


def _run_writer(figures: DiskFullFigures, *args: object) -> Child:
    child = Child.writer(*args)
    code = child.finish(timeout=300)
    if code != 0 or traceback_in(child.stderr):
        figures.problems.append(f"writer {args[0]} exited {code}: {child.stderr.strip()[-400:]}")
    return child


def disk_full(work: Path, face: Path | None = None) -> DiskFullFigures:
    """The whole scenario; `face` (a photo with one face) also tries `python -m kiosk enroll` on the full disk."""
    figures = DiskFullFigures()
    with small_filesystem(work) as (mount_point, method):
        if mount_point is None:
            figures.method = f"RLIMIT_FSIZE ({method})"
            _scenario(figures, work / "rlimit-data", None, face)
        else:
            figures.method = f"{method}, {FS_SIZE_KB} KB"
            _scenario(figures, mount_point / "data", mount_point, face)
    return figures


def _scenario(figures: DiskFullFigures, data_dir: Path, mount_point: Path | None, face: Path | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    people: list[tuple[int, str]] = []
    events: list[tuple[int, str]] = []
    # What is there before the disk fills: three people, five events, settings and a PIN.
    people += _run_writer(figures, "enroll", data_dir, "before", "--count", 3).committed("person")
    events += _run_writer(figures, "log", data_dir, "before", "--count", 5).committed("event")
    _run_writer(figures, "settings", data_dir, "before", "--count", 1)
    _run_writer(figures, "pin", data_dir, "before", "--count", 1)
    settings_before = (data_dir / "settings.json").read_bytes()
    admin_before = (data_dir / "admin.json").read_bytes()

    filler = None
    limit_args: list[object] = []
    if mount_point is not None:
        filler = fill_up(mount_point, MARGIN_BYTES)
    else:
        limit_args = ["--fsize-limit", (data_dir / "kiosk.db").stat().st_size + RLIMIT_HEADROOM]
    child = _run_writer(figures, "fill", data_dir, "full", *limit_args)
    people += child.committed("person")
    events += child.committed("event")
    figures.writes_before_full = len(people) + len(events)
    failed = [line.split(" ", 3) for line in child.lines if line.startswith("failed ")]
    figures.refusals = len(failed)
    figures.refusal_messages = sorted({parts[3] for parts in failed if len(parts) > 3})
    figures.unclear = [" ".join(parts[1:]) for parts in failed if parts[2] != "full"]
    if not any(parts[1] == "enroll" for parts in failed) or not any(parts[1] == "log" for parts in failed):
        figures.problems.append("the disk never filled up for both enrolment and logging")

    # On the full disk: reading still works, the command line fails with one clear line.
    for argv in (["people"], ["log", "--limit", "3"]):
        result = kiosk_cli("--data-dir", data_dir, *argv, timeout=120)
        figures.cli_read += f"{' '.join(argv)}: exit {result.returncode}; "
        if result.returncode != 0:
            figures.problems.append(f"`{' '.join(argv)}` on the full disk: {result.stderr.strip()[-300:]}")
    if face is not None and mount_point is not None:
        result = kiosk_cli("--data-dir", data_dir, "enroll", "Full Disk", face, "--allow-mismatch", timeout=300)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        figures.cli_enroll = f"exit {result.returncode}: {errors[-1] if errors else result.stderr.strip()[-200:]}"
        if result.returncode != 1 or len(errors) != 1 or traceback_in(result.stderr):
            figures.problems.append(f"enroll on the full disk: {figures.cli_enroll}")

    settings_now, admin_now = (data_dir / "settings.json").read_bytes(), (data_dir / "admin.json").read_bytes()
    saved = {line.split()[1] for line in child.lines if line.startswith(("committed settings", "committed pin"))}
    figures.files_intact = ((settings_now == settings_before or "settings" in saved)
                            and (admin_now == admin_before or "pin" in saved))
    figures.leftover_temp_files = sum(1 for p in data_dir.iterdir() if p.name.endswith(".tmp"))
    if not figures.files_intact:
        figures.problems.append("settings.json or admin.json changed although the save failed")

    # Space comes back: everything works again and nothing earlier is lost.
    if filler is not None:
        filler.unlink()
    people += _run_writer(figures, "enroll", data_dir, "after", "--count", 2).committed("person")
    events += _run_writer(figures, "log", data_dir, "after", "--count", 2).committed("event")
    settings_ok = _run_writer(figures, "settings", data_dir, "after", "--count", 2).lines[-1] == "done"
    pin_ok = _run_writer(figures, "pin", data_dir, "after", "--count", 1).lines[-1] == "done"
    from kiosk.admin_secret import AdminSecret
    from kiosk.settings import KioskSettings

    figures.recovered = (settings_ok and pin_ok and KioskSettings.load(data_dir) == settings_for(1)
                         and AdminSecret(data_dir).verify(pin_for(0)))
    people_verdict = check_people(data_dir, people, ("before", "full", "after"))
    events_verdict = check_events(data_dir, events)
    figures.checked = people_verdict.checked + events_verdict.checked
    figures.lost = people_verdict.lost + events_verdict.lost
    figures.orphans = people_verdict.orphans
    figures.problems += people_verdict.problems + events_verdict.problems
    figures.integrity = integrity_check(data_dir / "kiosk.db")
    if not figures.recovered:
        figures.problems.append("the kiosk did not work again after space came back")
