"""The operator's log: one set-up, made at start-up by the kiosk screen and the command line.

    --log-level LEVEL   debug, info (default), warning or error
    --log-file FILE     a rotating file (1 MB, 5 old ones kept); default: face-kiosk.log in the
                        data directory; "off" for none
    --log-json          one JSON object per line instead of text

Every record at the level goes to the file, with its local time and zone. On a terminal, stderr
shows only warnings and errors (a person typing a command wants its answer, not the chatter),
also time-stamped. Under a service manager (systemd sets $INVOCATION_ID or $JOURNAL_STREAM)
stderr carries every record at the level without a time stamp, since the journal adds its own,
and there is no file unless --log-file names one.

The file is private to its owner (0600): door events name people.
"""
from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kiosk.errors import KioskError

LEVELS = ("debug", "info", "warning", "error")
LOG_FILE_NAME = "face-kiosk.log"
OFF = "off"
MAX_BYTES = 1 << 20
BACKUPS = 5
# A record logged with extra={SHOWN: True} was already printed for the person at the terminal
# (an `error: ...` line): it goes to the file, not to stderr a second time.
SHOWN = "shown"
SERVICE_MANAGER_VARS = ("INVOCATION_ID", "JOURNAL_STREAM")  # set by systemd for the processes it starts


class LogSetupError(KioskError):
    """The log file cannot be opened."""


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default=None) -> None:
    """--log-level, --log-file and --log-json; `default` as for the command line's global options
    (argparse.SUPPRESS on subcommands, so that the top-level values stand)."""
    parser.add_argument("--log-level", type=str.lower, choices=LEVELS, metavar="LEVEL",
                        default="info" if default is None else default,
                        help=f"least important log records kept: {', '.join(LEVELS)} (default: info)")
    parser.add_argument("--log-file", metavar="FILE", default=default,
                        help=f"rotating log file (default: {LOG_FILE_NAME} in the data directory; "
                             f"none under a service manager); {OFF!r} for none")
    parser.add_argument("--log-json", action="store_true", default=False if default is None else default,
                        help="log one JSON object per line")


def under_service_manager() -> bool:
    return any(os.environ.get(name) for name in SERVICE_MANAGER_VARS)


def configure(level: str = "info", log_file: str | os.PathLike | None = None, *, json_lines: bool = False,
              data_dir: Callable[[], Path] | None = None, max_bytes: int = MAX_BYTES) -> Path | None:
    """Send the kiosk's log records where the operator reads them; returns the log file, if any.

    `data_dir` is asked for only when the default file is wanted. Calling again replaces the
    handlers set up before (the tests run many commands in one process)."""
    reset()
    root = logging.getLogger()
    threshold = getattr(logging, level.upper())
    service = under_service_manager()

    console = StderrHandler()
    console.setLevel(threshold if service else max(threshold, logging.WARNING))
    console.setFormatter(JsonFormatter() if json_lines and service else TextFormatter(stamped=not service))
    console.addFilter(lambda record: not getattr(record, SHOWN, False))
    _add(root, console)  # first: a file that cannot be opened is then reported once, on stderr

    path = None
    if str(log_file or "").lower() != OFF and (log_file or (data_dir is not None and not service)):
        path = Path(log_file) if log_file else data_dir() / LOG_FILE_NAME
        try:
            file = PrivateRotatingFileHandler(path, max_bytes)
        except OSError as exc:
            if log_file:  # asked for by name: refused
                raise LogSetupError(f"cannot write the log file {path}: {exc.strerror or exc}") from exc
            # The default file beside the database: the data directory's own problem (read-only,
            # missing) is what the command reports next, with its cause; no second error line.
            path = None
        else:
            file.setLevel(threshold)
            file.setFormatter(JsonFormatter() if json_lines else TextFormatter(stamped=True))
            _add(root, file)

    # The kiosk's own records at the chosen level; the libraries' (TensorFlow's chatter) from warnings up.
    logging.getLogger("kiosk").setLevel(threshold)
    root.setLevel(max(threshold, logging.WARNING))
    return path


def reset() -> None:
    """Undo configure(): its handlers closed and removed, the kiosk's level back to the root's."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_kiosk", False)]:
        root.removeHandler(handler)
        handler.close()
    logging.getLogger("kiosk").setLevel(logging.NOTSET)


def _add(root: logging.Logger, handler: logging.Handler) -> None:
    handler._kiosk = True  # ours, to replace on the next configure()
    root.addHandler(handler)


def configure_from(options: argparse.Namespace, data_dir: Callable[[], Path]) -> Path | None:
    """configure() from the parsed --log-* options."""
    return configure(options.log_level, options.log_file, json_lines=options.log_json, data_dir=data_dir)


def _local_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each record (like logging.lastResort), not as it was at start-up."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class TextFormatter(logging.Formatter):
    """2026-05-01T08:30:00.123+02:00 INFO    kiosk.door: door for event 12: ok"""

    def __init__(self, stamped: bool) -> None:
        super().__init__("%(levelname)-7s %(name)s: %(message)s")
        self.stamped = stamped

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{_local_time(record)} {text}" if self.stamped else text


class JsonFormatter(logging.Formatter):
    """{"time": ..., "level": "INFO", "logger": "kiosk.door", "message": ..., "error": traceback?}"""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": _local_time(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are created readable by their owner only. A record it
    cannot write (a full disk) is dropped with one line on stderr, not logging's traceback: the
    log file shares the data directory's disk, and the kiosk goes on without it."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, maxBytes=max_bytes, backupCount=BACKUPS, encoding="utf-8")
        self._failing = False  # the last record could not be written (said once on stderr)
        self._failed_now = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)
        if not self._failed_now:
            self._failing = False

    def flush(self) -> None:
        try:
            super().flush()
        except OSError:  # buffered lines that the disk refused
            self.handleError(None)

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # closing flushes: the same refusal, and the file is closed all the same
            self.handleError(None)

    def handleError(self, record: logging.LogRecord | None) -> None:  # noqa: N802 (logging's name)
        self._failed_now = True
        if not self._failing:
            self._failing = True
            problem = sys.exc_info()[1]
            sys.stderr.write(f"warning: cannot write the log file {self.baseFilename}: {problem}; "
                             "log lines are dropped until it can be written again\n")

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)
