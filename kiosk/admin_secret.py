"""The admin PIN (or password): set on first start, stored hashed, guessing slowed down.

    secret = AdminSecret(data_dir)
    if not secret.is_set():
        secret.set_pin("2718")
    secret.verify("1234")   # False (or AdminLockedError while locked out)

The file ``admin.json`` in the data directory holds an scrypt hash (random salt, n=2**14,
r=8, p=1), never the PIN, and is readable by its owner only (0o600). Failed attempts are
counted in the same file: from the third on, each one locks verification for
2**(failures - 3) seconds (1, 2, 4, 8 ... capped at MAX_LOCKOUT_S), so restarting the kiosk
does not reset the count. A correct PIN resets it.

Verification costs about 50 ms of CPU (that is scrypt's point); the admin window calls it on
the GUI thread from a modal dialog, where that is not noticeable.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from kiosk.atomic import atomic_path
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

ADMIN_FILENAME = "admin.json"
MIN_PIN_LENGTH = 4
FREE_ATTEMPTS = 3  # failures before the lockout starts
MAX_LOCKOUT_S = 3600.0  # 2**(failures-3) would reach days; an hour per guess is slow enough
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
SALT_BYTES = 16
HASH_BYTES = 32
FILE_MODE = 0o600


class AdminSecretError(KioskError):
    """The PIN cannot be set (too short, already set) or the stored secret is unusable."""


class AdminLockedError(KioskError):
    """Too many wrong PINs: verification refuses to run for `remaining_s` more seconds."""

    def __init__(self, remaining_s: float) -> None:
        self.remaining_s = remaining_s
        super().__init__(f"too many wrong PINs; try again in {format_delay(remaining_s)}")


def format_delay(seconds: float) -> str:
    seconds = max(1, round(seconds + 0.49))  # round up: "1 s" must not turn out to be too soon
    if seconds < 120:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} min"


def lockout_seconds(failures: int) -> float:
    """How long verification stays locked after `failures` consecutive wrong PINs."""
    if failures < FREE_ATTEMPTS:
        return 0.0
    return min(2.0 ** (failures - FREE_ATTEMPTS), MAX_LOCKOUT_S)


class AdminSecret:
    """The admin PIN stored in ``data_dir/admin.json``; re-reads the file on every call, so
    two kiosk processes (or a restart) share one failure count."""

    def __init__(self, data_dir: str | os.PathLike, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(data_dir) / ADMIN_FILENAME
        self._clock = clock  # wall time: the lockout must survive a restart

    def is_set(self) -> bool:
        return self._read() is not None

    def set_pin(self, pin: str, *, replace: bool = False) -> None:
        """Store a new PIN (at least MIN_PIN_LENGTH characters); refuses to overwrite unless `replace`."""
        check_new_pin(pin)
        if self.is_set() and not replace:
            raise AdminSecretError("an admin PIN is already set")
        salt = secrets.token_bytes(SALT_BYTES)
        self._write({
            "version": 1,
            "kdf": "scrypt",
            **SCRYPT,
            "salt": _b64(salt),
            "hash": _b64(_derive(pin, salt, SCRYPT)),
            "failures": 0,
            "locked_until": 0.0,
        })

    def lockout_remaining(self) -> float:
        """Seconds until the next PIN may be tried (0 when it may be tried now)."""
        record = self._read()
        return 0.0 if record is None else self._remaining(record)

    def failures(self) -> int:
        record = self._read()
        return 0 if record is None else int(record.get("failures", 0))

    def verify(self, pin: str) -> bool:
        """True for the right PIN. A wrong one is counted; AdminLockedError while locked out."""
        record = self._read()
        if record is None:
            raise AdminSecretError("no admin PIN is set")
        remaining = self._remaining(record)
        if remaining > 0:
            raise AdminLockedError(remaining)
        expected = _unb64(record["hash"])
        params = {key: int(record[key]) for key in SCRYPT}
        actual = _derive(pin, _unb64(record["salt"]), params)
        if hmac.compare_digest(actual, expected):
            if record.get("failures") or record.get("locked_until"):
                self._write({**record, "failures": 0, "locked_until": 0.0})
            return True
        failures = int(record.get("failures", 0)) + 1
        self._write({**record, "failures": failures, "locked_until": self._clock() + lockout_seconds(failures)})
        log.warning("wrong admin PIN (%d failure%s in a row)", failures, "" if failures == 1 else "s")
        return False

    # -- the file ----------------------------------------------------------------

    def _remaining(self, record: dict) -> float:
        remaining = float(record.get("locked_until", 0.0)) - self._clock()
        # A clock set back must not lock the admin out for longer than a lockout can last.
        return min(max(remaining, 0.0), MAX_LOCKOUT_S)

    def _read(self) -> dict | None:
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # Not "unset": treating a damaged file as "no PIN" would let anyone set a new one.
            raise AdminSecretError(f"{self.path}: unreadable admin secret ({exc}); restore it or delete it "
                                   "to set a new PIN") from exc
        if not isinstance(record, dict) or record.get("kdf") != "scrypt" or not {"salt", "hash", *SCRYPT} <= set(record):
            raise AdminSecretError(f"{self.path}: not an admin secret this kiosk understands; delete it "
                                   "to set a new PIN")
        return record

    def _write(self, record: dict) -> None:
        with atomic_path(self.path) as temporary:
            os.chmod(temporary, FILE_MODE)  # before the hash is written, not after
            temporary.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def check_new_pin(pin: str) -> None:
    """Raise AdminSecretError saying why `pin` cannot be a PIN."""
    if len(pin) < MIN_PIN_LENGTH:
        raise AdminSecretError(f"the PIN needs at least {MIN_PIN_LENGTH} characters")
    if pin != pin.strip():
        raise AdminSecretError("the PIN must not start or end with a space")


def _derive(pin: str, salt: bytes, params: dict) -> bytes:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=params["n"], r=params["r"], p=params["p"],
                          maxmem=64 * 1024 * 1024, dklen=HASH_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
