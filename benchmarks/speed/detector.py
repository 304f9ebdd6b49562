"""The one place where the benchmark picks a face-detector implementation (--detector).

kiosk.faces offers several implementations of the same MTCNN (kiosk.faces.IMPLEMENTATIONS:
"lite", the default on TFLite, "graph", compiled TensorFlow graphs, and "package", the `mtcnn`
package itself); FaceEngine and
FaceDetector keep one API whichever runs. Every section takes the FaceDetector built here
and reports per implementation name, so a new implementation is benchmarked by name alone.
"""
from __future__ import annotations

from benchmarks.speed.options import BenchError


def detector_names() -> tuple[str, ...]:
    """Every implementation kiosk.faces offers, the kiosk's default first."""
    from kiosk.faces import IMPLEMENTATIONS

    return IMPLEMENTATIONS


def check_detectors(names: tuple[str, ...]) -> None:
    """Refuse unknown implementations before any work starts."""
    known = detector_names()
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise BenchError(f"unknown detector(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")


def build_detector(name: str):
    """A kiosk.faces.FaceDetector running implementation `name`, the kiosk's settings otherwise."""
    check_detectors((name,))
    from kiosk.faces import kiosk_detector, shared_detector

    shared = shared_detector()  # the kiosk's own: reuse it rather than build its networks twice
    return shared if shared.implementation == name else kiosk_detector(name)
