"""Whether a door holds its site's key: the check every door makes before it opens the site's
gallery (on connecting, on each reload, and from its local copy), so that a door whose key file
is missing the key the site is sealed with now says which key it needs instead of deciding."""
from __future__ import annotations

import hmac

from kiosk.keystore import KeyFileError
from kiosk.sealing import Sealer


def check_site_key(keys: Sealer, current: int, check: bytes | None, log_check: bytes, where: str) -> None:
    """KeyFileError naming the key this door needs, unless its key file holds the site's current data key
    and log key (`where`: the site database, or the copy, that names them). Reads the key file again when
    the key is missing: a key file copied into place after a rotation is used at once."""
    if not keys.has_key(current):
        raise KeyFileError(
            f"this door's key file {keys.keyring.path} does not hold data key {current}, which {where} is "
            f"sealed with (the site's keys were rotated): copy the key file from the door where `keys rotate` "
            f"ran; the door cannot decide until then")
    if check is None or not keys.matches_key_check(current, check) or not hmac.compare_digest(
            bytes(log_check), keys.log_key_check()):
        raise KeyFileError(
            f"the key file {keys.keyring.path} holds another data key {current} or log key than {where}: "
            f"is it another site's key file? Copy the key file from a door of this site")
