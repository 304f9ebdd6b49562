"""Plain hints for the person at the camera before a verdict, as door terminals give them.

Read from the faces the last analysed frame found (largest first) and the policy's quality
gates: one person at a time, come closer, step sideways into the outline, look at the camera,
then hold still while the kiosk recognises. Directions are the person's own (their left is the
camera picture's right), so they read the same whether the preview is mirrored or not.
"""
from __future__ import annotations

from collections.abc import Sequence

from kiosk.faces import Face
from kiosk.policy import QualityGates

OFF_CENTRE = 0.22  # a face centre further than this fraction of the width from the middle: step sideways
GATES = QualityGates()  # the kiosk's own gates (DecisionPolicy's defaults)


def hint(faces: Sequence[Face], width: int, gates: QualityGates = GATES) -> str:
    """What the person in front of the camera should do next, in a few words."""
    if not faces:
        return "Look at the camera"
    if len(faces) > 1:
        return "One person at a time, please"
    face = faces[0]
    quality = face.quality
    if quality is not None and quality.size < gates.min_face_size:
        return "Come closer"
    offset = face.center[0] / width - 0.5
    if offset > OFF_CENTRE:  # the picture's right is the person's left: they should step to their right
        return "Step a little to your right"
    if offset < -OFF_CENTRE:
        return "Step a little to your left"
    if quality is not None and (abs(quality.yaw) > gates.max_yaw or abs(quality.pitch) > gates.max_pitch):
        return "Look straight at the camera"
    return "Hold still…"
