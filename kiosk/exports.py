"""Where an export (the access log as CSV) may be written: never over the kiosk's own files.

An export replaces its target atomically, so a mistyped path could otherwise put a CSV file
where the database or the key file was, and every template would be lost for good.
"""
from __future__ import annotations

import os
from pathlib import Path

from kiosk.errors import KioskError


class ExportRefused(KioskError):
    """The export's target is inside the data directory, is a key file, or already exists."""


def check_export_target(target: str | os.PathLike, data_dir: str | os.PathLike,
                        key_file: str | os.PathLike, force: bool = False) -> Path:
    """The target as an absolute path, or ExportRefused saying why it may not be written.

    Refused: anything inside the data directory or the key file's folder (symbolic links
    followed), the key file itself, and an existing file unless `force`.
    """
    path = Path(target).expanduser().absolute()
    real = path.resolve()
    key = Path(key_file).absolute()
    protected = ((Path(data_dir).absolute().resolve(), "the data directory"),
                 (key.parent.resolve(), "the key folder"))
    for folder, what in protected:
        if real == folder or folder in real.parents:
            raise ExportRefused(f"refusing to export to {path}: it is inside {what} {folder}, "
                                "where the kiosk keeps its own files; choose a file elsewhere")
    if real == key.resolve():
        raise ExportRefused(f"refusing to export to {path}: it is the key file")
    if path.is_dir():
        raise ExportRefused(f"refusing to export to {path}: it is a folder; name a file")
    if path.exists() and not force:
        raise ExportRefused(f"{path} already exists; choose another name, or give --force to replace it")
    return path
