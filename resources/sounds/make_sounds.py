#!/usr/bin/env python3
"""Write grant.wav, deny.wav and prompt.wav beside this script: short tones the kiosk plays on a
verdict, and when it asks for a liveness move.

    python resources/sounds/make_sounds.py

Deterministic (no randomness, no time stamps): the same numpy gives the same bytes, so a
changed WAV in a diff means a changed recipe here.

- grant: a rising major third then fifth (C6, E6, G6), soft sine notes with a bell-like
  decay: bright and short, heard as "yes".
- deny: two falling low notes (E4 then C4) with a little third harmonic for a buzzier
  timbre: clearly different from grant, still not harsh.
- prompt: the same middle note twice (A5), like a doorbell's "ding ding": "look at the screen,
  you are asked to do something"; neither yes nor no.
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 22050  # Hz: plenty for tones under 3 kHz, half the size of 44.1 kHz
PEAK = 0.5  # of full scale: loud enough in a hallway, no clipping after summing notes
HERE = Path(__file__).resolve().parent


def note(freq: float, seconds: float, *, harmonics: tuple[float, ...] = (), decay: float = 6.0) -> np.ndarray:
    """One note: a sine (plus weighted harmonics 2, 3, ...) with a 5 ms attack and an exponential decay."""
    t = np.arange(round(seconds * RATE)) / RATE
    wave_ = np.sin(2 * np.pi * freq * t)
    for n, weight in enumerate(harmonics, start=2):
        wave_ += weight * np.sin(2 * np.pi * freq * n * t)
    attack = np.minimum(t / 0.005, 1.0)  # no click at the start
    release = np.minimum((seconds - t) / 0.02, 1.0)  # nor at the end
    return wave_ * attack * release * np.exp(-decay * t)


def sequence(notes: list[np.ndarray], step_s: float) -> np.ndarray:
    """Notes started `step_s` apart, overlapping (each rings on under the next), normalised to PEAK."""
    step = round(step_s * RATE)
    out = np.zeros(step * (len(notes) - 1) + max(len(n) for n in notes))
    for i, samples in enumerate(notes):
        out[i * step:i * step + len(samples)] += samples
    return out * (PEAK / np.abs(out).max())


def grant() -> np.ndarray:
    return sequence([note(f, 0.30, harmonics=(0.15,), decay=9.0) for f in (1046.5, 1318.5, 1568.0)], 0.09)


def deny() -> np.ndarray:
    return sequence([note(f, 0.28, harmonics=(0.0, 0.25), decay=5.0) for f in (329.6, 261.6)], 0.17)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """16-bit mono PCM."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def prompt() -> np.ndarray:
    return sequence([note(f, 0.22, harmonics=(0.1,), decay=8.0) for f in (880.0, 880.0)], 0.2)


SOUNDS = {"grant": grant, "deny": deny, "prompt": prompt}


def main(folder: Path = HERE) -> list[Path]:
    return [write_wav(folder / f"{name}.wav", make()) for name, make in SOUNDS.items()]


if __name__ == "__main__":
    for written in main():
        print(written)
