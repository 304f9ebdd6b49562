"""Errors the kiosk raises on purpose, so callers can tell bad input from bugs."""


class KioskError(Exception):
    """Base class: every error here carries a message meant for the person at the keyboard."""


class InvalidImageError(KioskError, ValueError):
    """The input is not an image we can use (corrupt file, wrong dtype, empty, absurd size...)."""


class NoFaceError(KioskError):
    """The image is fine but holds no face."""
