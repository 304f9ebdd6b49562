"""Events to a webhook: each event POSTed as JSON, signed, retried from the outbox until a 2xx.

Headers: Content-Type: application/json; X-Face-Kiosk-Event: the type; X-Face-Kiosk-Id: the
event's id (the same on a retry: receivers can drop a repeat); X-Face-Kiosk-Signature:
sha256=<hex HMAC-SHA256 of the body> with the shared secret ($KIOSK_WEBHOOK_SECRET), when set;
Authorization: the value of $KIOSK_WEBHOOK_AUTH (e.g. "Bearer abc"), when set. Secrets come
from the environment so that they appear neither in `ps` nor in a unit file.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from kiosk import __version__
from kiosk.events import Destination, dumps

AUTH_ENV_VAR = "KIOSK_WEBHOOK_AUTH"
SECRET_ENV_VAR = "KIOSK_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Face-Kiosk-Signature"


def signature(secret: str, body: bytes) -> str:
    """The X-Face-Kiosk-Signature value for `body`; a receiver compares it with hmac.compare_digest."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookDestination(Destination):
    name = "webhook"

    def __init__(self, url: str, *, auth: str | None = None, secret: str | None = None, timeout: float = 10.0,
                 **retry: float) -> None:
        """`auth`, `secret`: default $KIOSK_WEBHOOK_AUTH, $KIOSK_WEBHOOK_SECRET."""
        super().__init__(**retry)
        if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(f"the webhook URL must start with http:// or https://, got {url!r}")
        self.url = url
        self.auth = auth if auth is not None else os.environ.get(AUTH_ENV_VAR) or None
        self.secret = secret if secret is not None else os.environ.get(SECRET_ENV_VAR) or None
        self.timeout = timeout
        self.problem = ""

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"  # no password in logs

    def messages(self, event: dict[str, Any]) -> list[str]:
        return [dumps(event)]

    def send(self, body: str) -> bool:
        data = body.encode("utf-8")
        event = json.loads(body)
        headers = {"Content-Type": "application/json", "User-Agent": f"face-kiosk/{__version__}",
                   "X-Face-Kiosk-Event": event["type"], "X-Face-Kiosk-Id": event["id"]}
        if self.auth:
            headers["Authorization"] = self.auth
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, data)
        request = urllib.request.Request(self.url, data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(1 << 16)
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, TimeoutError, socket.timeout, OSError) as exc:
            self.problem = str(getattr(exc, "reason", exc))
            return False
        self.problem = f"HTTP {status}"
        return 200 <= status < 300
