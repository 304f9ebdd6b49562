"""Short sounds on a verdict (resources/sounds/grant.wav, deny.wav) and when a liveness move is
asked for (prompt.wav: a cue for whoever cannot see the screen well), played by the platform.

PySide6-Essentials has no QtMultimedia, and a media library would be a heavy dependency for
two half-second tones, so the platform plays them: ``winsound`` on Windows, ``afplay`` on
macOS, ``paplay`` (PulseAudio/PipeWire) or ``aplay`` (ALSA) on Linux.

    player = SoundPlayer(fallback=QApplication.beep)   # built once, on the GUI thread
    player.play("grant")                               # returns at once; never overlaps

Playing happens on a short-lived background thread, one sound at a time: a sound asked for
while another plays is skipped (verdicts are seconds apart; a skipped beep loses nothing).
With no player on the machine, one line is logged and ``fallback`` (the system bell) is used
instead, or nothing if there is none. A player that fails (no audio device, no sound server)
is dropped with one logged line and the next candidate is tried on the next sound. No Qt here.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from kiosk.packagedata import shipped

log = logging.getLogger(__name__)

SOUNDS_DIR = shipped("resources") / "sounds"
SOUNDS = ("grant", "deny", "prompt")
WINSOUND = "winsound"  # not a command: the standard library's module on Windows
PLAY_TIMEOUT_S = 5.0  # a player that hangs (a stuck sound server) must not block the next sounds

# Command-line players per platform (sys.platform prefix), best first.
PLAYERS: dict[str, tuple[str, ...]] = {
    "win32": (WINSOUND,),
    "darwin": ("afplay",),
    "linux": ("paplay", "aplay"),
}


def player_commands(platform: str = sys.platform, path: str | None = None) -> list[list[str]]:
    """The players found for `platform`, best first, each as the command to run before the
    WAV file's path; `path` is searched like $PATH (default: $PATH). Empty when there is none."""
    names = next((names for prefix, names in PLAYERS.items() if platform.startswith(prefix)), ())
    found = []
    for name in names:
        if name == WINSOUND:
            found.append([WINSOUND])
            continue
        executable = shutil.which(name, path=path)
        if executable is not None:
            # aplay prints a line per file on stderr; -q keeps the kiosk's log clean.
            found.append([executable, "-q"] if name == "aplay" else [executable])
    return found


class SoundPlayer:
    """Plays the kiosk's sounds in the background, one at a time; ``enabled`` can be switched live."""

    def __init__(self, sounds_dir: str | os.PathLike = SOUNDS_DIR, *, enabled: bool = True,
                 commands: list[list[str]] | None = None, fallback: Callable[[], None] | None = None) -> None:
        """`commands`: the players to try, best first (default: player_commands()).
        `fallback`: called (on the caller's thread) when no player is left, e.g. QApplication.beep."""
        self.enabled = enabled
        self._files = {name: Path(sounds_dir) / f"{name}.wav" for name in SOUNDS}
        self._commands = list(player_commands() if commands is None else commands)
        self._fallback = fallback
        self._busy = threading.Lock()  # held while a sound plays
        self._thread: threading.Thread | None = None
        missing = [str(path) for path in self._files.values() if not path.is_file()]
        if missing:
            log.warning("sound files missing (%s); %s", ", ".join(missing),
                        "using the system bell" if fallback else "sound is off")
            self._commands = []
        elif not self._commands:
            log.warning("no sound player found (%s); %s",
                        "winsound" if sys.platform == "win32" else "afplay, paplay or aplay",
                        "using the system bell" if fallback else "sound is off")

    @property
    def player(self) -> str | None:
        """The player in use (its command's first word), or None: the fallback, if any."""
        return self._commands[0][0] if self._commands else None

    def play(self, name: str) -> bool:
        """Start playing "grant", "deny" or "prompt"; False when sound is off or another sound is playing.

        Never waits for the sound. Never raises for a missing or failing player."""
        if name not in self._files:
            raise ValueError(f"unknown sound {name!r}; expected one of {', '.join(SOUNDS)}")
        if not self.enabled:
            return False
        if not self._busy.acquire(blocking=False):
            return False  # one at a time: this one is skipped
        if not self._commands:  # none found, or every one failed
            self._busy.release()
            if self._fallback is None:
                return False
            self._fallback()
            return True
        self._thread = threading.Thread(target=self._play, args=(self._files[name],), name="sound", daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the sound playing now, if any; True when none is left playing."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _play(self, path: Path) -> None:
        try:
            command = self._commands[0]  # only this thread removes players, and play() saw one
            problem = _run(command, path)
            if problem is not None:
                # Dropped for good (one line in the log, not one per visitor); the next is tried next time.
                self._commands.pop(0)
                log.warning("sound player %s failed (%s); %s", command[0], problem,
                            f"trying {self._commands[0][0]} next" if self._commands
                            else "using the system bell" if self._fallback else "sound is off")
        finally:
            self._busy.release()


def _run(command: list[str], path: Path) -> str | None:
    """Play `path` with `command`, waiting for the end; None on success, else what went wrong."""
    if command == [WINSOUND]:
        try:
            import winsound

            winsound.PlaySound(str(path), winsound.SND_FILENAME | winsound.SND_NODEFAULT)
        except (ImportError, RuntimeError) as exc:
            return str(exc)
        return None
    try:
        result = subprocess.run([*command, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, timeout=PLAY_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"still playing after {PLAY_TIMEOUT_S:g} s"
    except OSError as exc:
        return str(exc)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        return f"exit {result.returncode}" + (f": {detail[-1]}" if detail else "")
    return None
