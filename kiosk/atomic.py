"""Atomic file writes: write a temporary file beside the target, fsync, then rename over it.

A crash or a full disk leaves either the old file or the new one, never half of either.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator

import numpy as np

# A temporary this old belongs to no write in progress: a killed process (SIGKILL, power cut) left
# it, since its `finally` never ran. Removed at the next successful write of the same file.
STALE_TEMPORARY_S = 3600.0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `path`.

    The file gets `mode` when given (0o600 for what names people), else the umask's default.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    # mkstemp makes the file owner-only; a normal file honours the umask (secrets chmod themselves).
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temporary, mode)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
        _remove_stale_temporaries(path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", permissions: int | None = None, **kwargs) -> Iterator[IO]:
    """open() for writing whose result appears at `path` only when the block succeeds."""
    with atomic_path(path, permissions) as temporary, open(temporary, mode, **kwargs) as stream:
        yield stream


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as stream:
        stream.write(data)


def atomic_write_json(path: str | os.PathLike, value: object) -> None:
    with atomic_open(path, "w", encoding="utf-8") as stream:
        json.dump(value, stream, indent=1)
        stream.write("\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as stream:
        np.save(stream, array)


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_open(path, "wb") as stream:
        np.savez(stream, **arrays)


def _remove_stale_temporaries(path: Path) -> None:
    cutoff = time.time() - STALE_TEMPORARY_S
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if stale.stat().st_mtime < cutoff:
                stale.unlink()


def _fsync_folder(folder: Path) -> None:
    # The rename itself is only durable once the folder entry is flushed (POSIX only).
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
