"""Sealing secrets stored in the database: AES-256-GCM, each blob bound to its row.

A sealed blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)`` and is stored with the
id of the data key that sealed it. The associated data names the row (table, id and, for
templates, the owner and dimension), so a blob copied into another row, or a row moved to
another person, fails authentication instead of decrypting.

Each database connection made by ``kiosk.database.open_database`` carries a Sealer. New data
is sealed with the key the database names as current (``key_state``), read inside the
writer's transaction: during a key rotation by another process that is the new key, which
this process may not have loaded yet, so an unknown key id makes the Sealer re-read the key file.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk.errors import KioskError
from kiosk.keystore import Keyring, load_keyring

NONCE_BYTES = 12
SEAL_OVERHEAD = NONCE_BYTES + 16  # nonce + GCM tag
_KEY_CHECK = b"face-kiosk key check"
_LOG_KEY_CHECK = b"face-kiosk log key check"


class SealError(KioskError):
    """A sealed blob cannot be opened: the key is missing, or the data was altered or moved."""


def template_aad(template_id: int, person_id: int, dim: int) -> bytes:
    return f"template:{int(template_id)}:{int(person_id)}:{int(dim)}".encode()


def template_thumbnail_aad(template_id: int) -> bytes:
    return f"template_thumbnail:{int(template_id)}".encode()


def access_thumbnail_aad(event_id: int) -> bytes:
    return f"access_thumbnail:{int(event_id)}".encode()


def _key_check_aad(key_id: int) -> bytes:
    return f"key_check:{int(key_id)}".encode()


class Sealer:
    """Seals and opens blobs with one connection's keyring (re-read when a key id is unknown)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._ciphers: dict[int, AESGCM] = {}

    @property
    def log_key(self) -> bytes:
        return self.keyring.log_key

    def seal(self, conn: sqlite3.Connection, plaintext: bytes, aad: bytes) -> tuple[int, bytes]:
        """(key id, sealed blob) with the database's current key; call inside the write transaction."""
        return self.seal_with(current_key_id(conn), plaintext, aad)

    def seal_with(self, key_id: int, plaintext: bytes, aad: bytes) -> tuple[int, bytes]:
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: safe far beyond a kiosk's 2**32 seals
        return key_id, nonce + self._cipher(key_id).encrypt(nonce, bytes(plaintext), aad)

    def open(self, key_id: int, blob: bytes, aad: bytes, what: str) -> bytes:
        """The plaintext of a sealed blob; SealError naming `what` if it cannot be opened."""
        blob = bytes(blob)
        if len(blob) < SEAL_OVERHEAD:
            raise SealError(f"{what} is not sealed data (only {len(blob)} bytes); the database was altered")
        try:
            return self._cipher(key_id).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SealError(
                f"{what} fails authentication: it was altered or moved from another row, "
                f"or key {key_id} in {self.keyring.path} is not the key it was sealed with"
            ) from None

    def key_check(self, key_id: int) -> bytes:
        """A sealed constant that tells, at open, whether key `key_id` is the database's key."""
        return self.seal_with(key_id, _KEY_CHECK, _key_check_aad(key_id))[1]

    def matches_key_check(self, key_id: int, sealed: bytes) -> bool:
        try:
            return self.open(key_id, sealed, _key_check_aad(key_id), "key check") == _KEY_CHECK
        except SealError:
            return False

    def log_key_check(self) -> bytes:
        return hmac.new(self.log_key, _LOG_KEY_CHECK, hashlib.sha256).digest()

    def has_key(self, key_id: int) -> bool:
        try:
            self._cipher(key_id)
        except SealError:
            return False
        return True

    def reload(self) -> None:
        self.keyring = load_keyring(self.keyring.path)
        self._ciphers.clear()

    def _cipher(self, key_id: int) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            if key_id not in self.keyring.data_keys:
                self.reload()  # a rotation elsewhere may have added it
            if key_id not in self.keyring.data_keys:
                raise SealError(
                    f"the database uses data key {key_id}, which the key file {self.keyring.path} "
                    "does not hold; restore the key file this database was made with"
                )
            cipher = self._ciphers[key_id] = AESGCM(self.keyring.data_keys[key_id])
        return cipher


def current_key_id(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT current_key FROM key_state").fetchone()[0]


def sealer(conn: sqlite3.Connection) -> Sealer:
    """The Sealer of a connection made by kiosk.database.open_database()."""
    found = getattr(conn, "sealer", None)
    if found is None:
        raise KioskError(
            "this connection has no keys: open the kiosk database with kiosk.database.open_database()"
        )
    return found
