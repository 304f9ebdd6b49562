"""The kiosk's secret keys: one small file kept apart from the database.

The key file (JSON, mode 0600, in a 0700 folder) holds

- data keys: AES-256-GCM keys, by id (1, 2, ...), that seal face templates and thumbnails;
- current: the id new data is sealed with;
- retiring: ids a key rotation is still moving rows away from (empty when none is under way);
- the log key: the HMAC-SHA256 key of the access log's hash chain.

It lives in the data directory's own ``keys/`` folder unless ``$KIOSK_KEY_FILE`` names another
file (on another volume, say), and is made on first use. Readers never lock: every change
replaces the whole file atomically. Writers (first creation, rotation) hold ``<file>.lock``.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from kiosk.atomic import atomic_path
from kiosk.errors import KioskError

KEY_FILE_ENV = "KIOSK_KEY_FILE"
KEYS_DIRNAME = "keys"
KEY_FILENAME = "kiosk.key"
FORMAT_VERSION = 1
KEY_BYTES = 32  # AES-256 and a 256-bit HMAC key


class KeyFileError(KioskError):
    """The key file is missing, unreadable, not private, or not the one this database needs."""


@dataclass(frozen=True)
class Keyring:
    path: Path
    data_keys: dict[int, bytes] = field(repr=False)
    current: int
    log_key: bytes = field(repr=False)
    retiring: tuple[int, ...] = ()

    def with_new_key(self) -> Keyring:
        """A new data key becomes current; every older one is retiring until rotation ends."""
        new_id = max(self.data_keys) + 1
        return replace(self, data_keys={**self.data_keys, new_id: secrets.token_bytes(KEY_BYTES)},
                       current=new_id, retiring=tuple(sorted(set(self.data_keys))))

    def without_retiring(self) -> Keyring:
        """Rotation done: only the current data key is kept."""
        return replace(self, data_keys={self.current: self.data_keys[self.current]}, retiring=())


def key_file_path(data_dir: str | os.PathLike) -> Path:
    """$KIOSK_KEY_FILE, else <data_dir>/keys/kiosk.key."""
    override = os.environ.get(KEY_FILE_ENV, "").strip()
    if override:
        return Path(override).expanduser().absolute()
    return Path(data_dir).absolute() / KEYS_DIRNAME / KEY_FILENAME


def load_keyring(path: Path) -> Keyring:
    """Read the key file; KeyFileError if it is missing, not private, in a folder others can
    write to, or malformed."""
    check_private_file(path)
    check_key_folder(path.parent)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown format {raw.get('format')!r}")
        ring = Keyring(
            path=path,
            data_keys={int(k): _key(v) for k, v in raw["data_keys"].items()},
            current=int(raw["current"]),
            log_key=_key(raw["log_key"]),
            retiring=tuple(int(k) for k in raw.get("retiring", ())),
        )
        if ring.current not in ring.data_keys or not set(ring.retiring) <= set(ring.data_keys):
            raise ValueError("its current or retiring key ids name no key")
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} is missing") from None
    except (OSError, UnicodeDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise KeyFileError(f"key file {path} is unreadable or not a kiosk key file ({exc})") from None
    return ring


def create_keyring(path: Path) -> Keyring:
    """Make a key file with fresh keys, unless one appeared meanwhile (then that one is returned).

    Never replaces an existing file: two processes opening a new database at once must
    end up with the same keys.
    """
    ensure_key_folder(path.parent)
    ring = Keyring(path, {1: secrets.token_bytes(KEY_BYTES)}, 1, secrets.token_bytes(KEY_BYTES))
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    try:  # mkstemp makes the file 0600 before any secret is written to it
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(_dump(ring))
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(temporary, path)  # unlike a rename, fails if the file exists
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)
    _fsync_folder(path.parent)
    return load_keyring(path)


def save_keyring(ring: Keyring) -> None:
    """Replace the key file atomically (hold keyring_lock)."""
    with atomic_path(ring.path) as temporary:
        os.chmod(temporary, 0o600)
        temporary.write_text(_dump(ring), encoding="utf-8")


@contextlib.contextmanager
def keyring_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the key file's writer lock; yields False at once if `wait` is off and it is taken."""
    import fcntl  # POSIX only, like the kiosk's deployment target

    ensure_key_folder(path.parent)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)  # closing releases the lock


def ensure_key_folder(folder: Path) -> None:
    """Create the key folder owner-only (0700); refuse an existing one others can write to."""
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode passes through the umask
    check_key_folder(folder)


def check_key_folder(folder: Path) -> None:
    """Refuse a key folder that group or others can write to: they could swap the key file."""
    mode = stat.S_IMODE(folder.stat().st_mode)
    if os.name == "posix" and mode & 0o022:
        raise KeyFileError(
            f"key folder {folder} is writable by group or others (mode {mode:04o}), so the key "
            f"file could be replaced; run: chmod go-w {folder}"
        )


def check_private_file(path: Path) -> None:
    """Refuse a key file that anyone but its owner may read or write."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} is missing") from None
    if os.name == "posix" and mode & 0o077:
        raise KeyFileError(
            f"key file {path} is readable or writable by group or others (mode {mode:04o}); "
            f"refusing to use it. Run: chmod 600 {path} (and consider the keys exposed)"
        )


def _key(text: str) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"bad key encoding ({exc})") from None
    if len(value) != KEY_BYTES:
        raise ValueError(f"a key has {len(value)} bytes, not {KEY_BYTES}")
    return value


def _dump(ring: Keyring) -> str:
    encode = lambda key: base64.b64encode(key).decode("ascii")  # noqa: E731
    return json.dumps({
        "format": FORMAT_VERSION,
        "current": ring.current,
        "retiring": list(ring.retiring),
        "data_keys": {str(k): encode(v) for k, v in sorted(ring.data_keys.items())},
        "log_key": encode(ring.log_key),
    }, indent=1) + "\n"


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
