"""Where the kiosk keeps its database: the per-user data directory, private to its owner."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from kiosk.errors import KioskError

APP_NAME = "face-kiosk"
ENV_VAR = "KIOSK_DATA_DIR"


def default_data_dir() -> Path:
    """The platform's conventional per-user data directory for the kiosk."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / APP_NAME


def chosen_data_dir(explicit: str | Path | None = None) -> Path:
    """The data directory resolve_data_dir() would use (argument > $KIOSK_DATA_DIR > default), not created."""
    chosen = explicit or os.environ.get(ENV_VAR) or default_data_dir()
    return Path(chosen).expanduser().absolute()


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """Pick the data directory (argument > $KIOSK_DATA_DIR > default) and make sure it exists.

    A directory created here is private to the user (0o700): it holds face
    templates, which are biometric data. An existing directory is left as it is.
    """
    path = chosen_data_dir(explicit)
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered through the umask
    return path


class UnsafePermissionsError(KioskError):
    """The data directory or database can be changed by other users: admin commands refuse."""


def require_private(data_dir: str | Path, db_file: str | Path, settings_file: str | Path | None = None,
                    refusing: str = "refusing an admin command") -> None:
    """Refuse (UnsafePermissionsError) if the data directory, the database file or the settings
    file is writable by group or others: anyone who can write there could replace the gallery
    or turn liveness off, so neither the admin commands nor the kiosk will vouch for it. See
    SECURITY.md."""
    if os.name != "posix":
        return
    checked = [(Path(data_dir), "data directory"), (Path(db_file), "database")]
    if settings_file is not None:
        checked.append((Path(settings_file), "settings file"))
    for path, what in checked:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o022:
            raise UnsafePermissionsError(
                f"{refusing}: the {what} {path} is writable by group or others "
                f"(mode {mode:04o}); make it private first: chmod go-w {path}"
            )


def create_private_file(path: str | os.PathLike) -> None:
    """Create `path` readable and writable by its owner only, if it does not exist yet (a SQLite
    file's -wal and -shm files then take its mode). An existing file is left as it is."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
