"""Where the shipped model and sounds are: inside an installed package, or at the top of a checkout.

A wheel carries assets/ and resources/ as kiosk/assets/ and kiosk/resources/ (setup.py maps
them); a checkout, and an editable install of one, keeps them at its top, where training
exports the model.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """The folder `name` ("assets" or "resources") of the installed package, else of the checkout."""
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else PACKAGE_DIR.parent / name
