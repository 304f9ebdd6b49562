"""Packaging beyond pyproject.toml: the model and the sounds inside the wheel.

The shipped model stays at the top of a checkout (assets/, where `python -m training export`
writes it) and so do the sounds (resources/sounds/); a wheel or sdist carries them as the
package data kiosk/assets/ and kiosk/resources/sounds/, mapped here rather than copied so that
git holds each file once. kiosk.packagedata finds them in either place.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["kiosk*", "training*"]) + ["kiosk.assets", "kiosk.resources.sounds"],
    package_dir={"kiosk.assets": "assets", "kiosk.resources": "resources"},
    package_data={
        "kiosk.assets": ["face_embedder.tflite", "face_embedder.card.json",
                         "face_detector.json", "face_detector_*.tflite"],
        "kiosk.resources.sounds": ["*.wav"],
    },
)
