"""Face-recognition access kiosk: camera -> MTCNN -> alignment -> Siamese embedding -> decision."""
from kiosk.errors import InvalidImageError, KioskError, NoFaceError

__all__ = ["InvalidImageError", "KioskError", "NoFaceError"]
__version__ = "0.1.0"
