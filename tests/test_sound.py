"""The verdict sounds: the committed WAV files, and playing them through the platform's player.

Players are real executables: small shell scripts put on a private PATH that record what
they were asked to play (the machine running the tests may have no audio at all).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import stat
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from kiosk.sound import SOUNDS, SOUNDS_DIR, SoundPlayer, player_commands

posix_only = pytest.mark.skipif(os.name != "posix", reason="the stand-in players are shell scripts")


def read_wav(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        samples = np.frombuffer(wav.readframes(params.nframes), "<i2").astype(np.float64) / 32767
    return params, samples


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[spectrum.argmax()])


def make_sounds_module():
    spec = importlib.util.spec_from_file_location("make_sounds", SOUNDS_DIR / "make_sounds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wav_files_are_short_clean_and_distinct():
    pitch = {}
    for name in SOUNDS:
        params, samples = read_wav(SOUNDS_DIR / f"{name}.wav")
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 22050)
        seconds = params.nframes / params.framerate
        assert 0.2 < seconds < 1.0, f"{name}: {seconds:.2f} s"
        peak = np.abs(samples).max()
        assert 0.3 < peak <= 0.55, f"{name}: peak {peak:.2f} (audible, never clipping)"
        # Faded in and out: no click at either end.
        assert abs(samples[0]) < 0.005 and abs(samples[-1]) < 0.005
        pitch[name] = dominant_hz(samples, params.framerate)
    assert pitch["grant"] > 1000 > pitch["prompt"] > 500 > pitch["deny"], pitch  # bright "yes", low "no", between


def test_committed_wavs_are_what_the_script_makes(tmp_path):
    written = make_sounds_module().main(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{name}.wav" for name in SOUNDS)
    for path in written:
        assert path.read_bytes() == (SOUNDS_DIR / path.name).read_bytes(), f"regenerate {path.name}"


def fake_player(folder: Path, name: str, *, exit_code: int = 0, seconds: float = 0.0) -> Path:
    """An executable `name` in `folder` that appends its arguments to `name`.log, sleeps, exits."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    complaint = f'echo "{name}: no audio device" >&2\n' if exit_code else ""
    script.write_text(f'#!/bin/sh\necho "$@" >> "{folder / name}.log"\nsleep {seconds}\n{complaint}exit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def played(folder: Path, name: str) -> list[str]:
    log = folder / f"{name}.log"
    return log.read_text().splitlines() if log.exists() else []


@posix_only
def test_player_is_chosen_per_platform(tmp_path):
    bin_dir = tmp_path / "bin"
    for name in ("afplay", "paplay", "aplay"):
        fake_player(bin_dir, name)
    path = str(bin_dir)
    assert player_commands("darwin", path) == [[str(bin_dir / "afplay")]]
    assert player_commands("linux", path) == [[str(bin_dir / "paplay")], [str(bin_dir / "aplay"), "-q"]]
    assert player_commands("win32", path) == [["winsound"]]
    assert player_commands("freebsd13", path) == []

    (bin_dir / "paplay").unlink()
    assert player_commands("linux", path) == [[str(bin_dir / "aplay"), "-q"]]
    assert player_commands("linux", str(tmp_path / "empty")) == []


def test_no_player_does_not_raise_logs_once_and_rings_the_bell(caplog):
    caplog.set_level(logging.INFO, logger="kiosk.sound")
    silent = SoundPlayer(commands=[])
    assert silent.player is None
    assert silent.play("grant") is False and silent.play("deny") is False
    bells = []
    player = SoundPlayer(commands=[], fallback=lambda: bells.append(threading.current_thread()))
    assert player.play("grant") and player.play("deny")
    assert bells == [threading.current_thread()] * 2  # the fallback runs on the caller's (GUI) thread
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("no sound player found" in line for line in lines)
    assert "sound is off" in lines[0] and "system bell" in lines[1]
    with pytest.raises(ValueError, match="unknown sound 'hooray'"):
        player.play("hooray")


def test_missing_sound_files_fall_back(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kiosk.sound")
    bells = []
    player = SoundPlayer(tmp_path, commands=[["/bin/true"]], fallback=lambda: bells.append(1))
    assert player.player is None and player.play("deny") and bells == [1]
    assert "sound files missing" in caplog.text


@posix_only
def test_plays_in_the_background_one_sound_at_a_time(tmp_path):
    bin_dir = tmp_path / "bin"
    player = SoundPlayer(commands=[[str(fake_player(bin_dir, "aplay", seconds=0.5)), "-q"]])
    started = time.monotonic()
    assert player.play("grant")
    assert time.monotonic() - started < 0.2, "play() must not wait for the sound"
    assert player.play("deny") is False  # the grant is still playing: skipped, not queued
    assert player.wait(5)
    assert played(bin_dir, "aplay") == [f"-q {SOUNDS_DIR / 'grant.wav'}"]
    assert player.play("deny") and player.wait(5)
    assert played(bin_dir, "aplay")[-1] == f"-q {SOUNDS_DIR / 'deny.wav'}"

    player.enabled = False  # the settings' sound switch
    assert player.play("grant") is False and player.wait(5)
    assert len(played(bin_dir, "aplay")) == 2


@posix_only
def test_a_failing_player_is_dropped_for_the_next_then_the_bell(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="kiosk.sound")
    bin_dir = tmp_path / "bin"
    paplay = fake_player(bin_dir, "paplay", exit_code=1)
    aplay = fake_player(bin_dir, "aplay", exit_code=1)
    bells = []
    player = SoundPlayer(commands=[[str(paplay)], [str(aplay), "-q"]], fallback=lambda: bells.append(1))
    for _ in range(4):
        player.play("grant")
        assert player.wait(5)
    assert len(played(bin_dir, "paplay")) == 1 and len(played(bin_dir, "aplay")) == 1  # each tried once
    assert bells == [1, 1] and player.player is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "paplay failed (exit 1: paplay: no audio device); trying" in warnings[0]
    assert "aplay failed" in warnings[1] and warnings[1].endswith("using the system bell")


@pytest.mark.skipif(sys.platform != "linux", reason="the real players are looked for on Linux here")
def test_this_machines_player_or_none_never_raises():
    player = SoundPlayer()  # whatever the machine has: a real player, one without a device, or none
    player.play("grant")
    assert player.wait(6)
