"""Opening the door on a grant: run a command or POST to a URL, on a background thread.

Recognition never waits for the door: trigger() returns at once and the outcome ("ok",
"failed: exit 3", "failed: HTTP 500", "timeout", ...) arrives later through a callback, on the
door's thread. SQLite connections belong to their thread, so the callback should hand the
outcome to the thread that owns the access log (a queue), which records it with
AccessLog.set_door_outcome(). The event itself is logged before trigger() is called.

The command is split like a shell would (shlex) but run without one, so a name or badge can
never inject shell syntax; it gets KIOSK_PERSON and KIOSK_EVENT in its environment. The URL
receives a JSON body {"event": id, "person": name}.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

OK = "ok"
TIMEOUT = "timeout"

DoorCallback = Callable[[int, str], None]  # (event_id, outcome)


class DoorAction:
    """One way to open the door: a command (argument list) or an http(s) URL."""

    def __init__(self, *, command: Sequence[str] | None = None, url: str | None = None, timeout: float = 5.0) -> None:
        if (command is None) == (url is None):
            raise ValueError("a door action needs exactly one of a command or a URL")
        if not timeout > 0:
            raise ValueError(f"the door timeout must be positive, got {timeout}")
        if command is not None and not command:
            raise ValueError("the door command is empty")
        if url is not None and urlsplit(url).scheme.lower() not in ("http", "https"):
            raise ValueError(f"the door URL must start with http:// or https://, got {url!r}")
        self.command = list(command) if command is not None else None
        self.url = url
        self.timeout = float(timeout)
        self._pending: set[threading.Thread] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, command: str | Sequence[str] | None = None, url: str | None = None, timeout: float = 5.0
    ) -> DoorAction | None:
        """The action for a command line (a string, split like a shell) or a URL; None when neither is set."""
        command = command or None
        url = (url or "").strip() or None
        if command is None and url is None:
            return None
        if command is not None and url is not None:
            raise ValueError("give a door command or a door URL, not both")
        if isinstance(command, str):
            try:
                command = shlex.split(command)
            except ValueError as exc:
                raise ValueError(f"cannot split the door command {command!r}: {exc}") from exc
        return cls(command=command, url=url, timeout=timeout)

    @property
    def description(self) -> str:
        return f"command {shlex.join(self.command)}" if self.command is not None else f"POST {self.url}"

    def trigger(self, event_id: int, name: str | None, on_done: DoorCallback | None = None) -> threading.Thread:
        """Open the door for access event `event_id` on a new thread; returns that thread at once.

        `on_done(event_id, outcome)` is called on that thread when the action has finished.
        """
        thread = threading.Thread(
            target=self._run, args=(int(event_id), name or "", on_done), name=f"door event {event_id}", daemon=True
        )
        with self._lock:
            self._pending.add(thread)
        thread.start()
        return thread

    def open_now(self, event_id: int, name: str | None) -> str:
        """Run the action on this thread and return its outcome (never raises)."""
        try:
            if self.command is not None:
                return self._run_command(event_id, name or "")
            return self._post(event_id, name or "")
        except Exception as exc:  # the outcome is a string in the log, never a crash
            log.exception("door action failed")
            return f"failed: {exc}"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the actions in flight (e.g. before exiting); True if none is left."""
        with self._lock:
            pending = list(self._pending)
        for thread in pending:
            thread.join(timeout)
        with self._lock:
            return not any(t.is_alive() for t in self._pending)

    def _run(self, event_id: int, name: str, on_done: DoorCallback | None) -> None:
        try:
            outcome = self.open_now(event_id, name)
            log.info("door for event %d: %s", event_id, outcome)
            if on_done is not None:
                try:
                    on_done(event_id, outcome)
                except Exception:
                    log.exception("door callback failed")
        finally:
            with self._lock:
                self._pending.discard(threading.current_thread())

    def _run_command(self, event_id: int, name: str) -> str:
        """Run the command in a process group of its own, judged by its exit status alone.

        Its stderr goes to a file, not a pipe: a background child that keeps the pipe open must
        not make a command that already exited look hung. On timeout the whole group is killed,
        so no grandchild of a hung script stays behind.
        """
        env = {**os.environ, "KIOSK_PERSON": name, "KIOSK_EVENT": str(event_id)}
        with tempfile.TemporaryFile() as stderr:
            try:
                process = subprocess.Popen(
                    self.command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=stderr, start_new_session=True,
                )
            except FileNotFoundError:
                return f"failed: command not found: {self.command[0]}"
            except PermissionError:
                return f"failed: not allowed to run {self.command[0]}"
            try:
                returncode = process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                return TIMEOUT
            if returncode == 0:
                return OK
            if returncode < 0:
                try:
                    signal_name = signal.Signals(-returncode).name
                except ValueError:
                    signal_name = f"signal {-returncode}"
                return f"failed: killed by {signal_name}"
            stderr.seek(max(0, os.fstat(stderr.fileno()).st_size - 2000))  # its last words only
            detail = stderr.read().decode("utf-8", "replace").strip()
        if detail:
            log.warning("door command exited with %d: %s", returncode, detail)
        return f"failed: exit {returncode}"

    def _post(self, event_id: int, name: str) -> str:
        body = json.dumps({"event": event_id, "person": name}).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(1 << 16)
                status = response.status
        except urllib.error.HTTPError as exc:
            return f"failed: HTTP {exc.code}"
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                return TIMEOUT
            return f"failed: {exc.reason}"
        except (TimeoutError, socket.timeout):
            return TIMEOUT
        except OSError as exc:  # connection reset mid-response and the like
            return f"failed: {exc}"
        return OK if 200 <= status < 300 else f"failed: HTTP {status}"


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the command's process group (it leads it: start_new_session) and reap the command."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is already gone
        pass
    process.wait()
