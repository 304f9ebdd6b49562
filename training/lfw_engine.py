"""LFW images through the kiosk's own path: FaceEngine's detector, aligner and embedder.

Benchmarks and the model card's door tables read LFW photos as the kiosk reads a frame: the
file is decoded by kiosk.images, the face nearest the image centre (LFW's labelling convention)
is taken, aligned and embedded by the engine.
"""
from __future__ import annotations

import time

import numpy as np

from kiosk.faces import face_nearest_center
from kiosk.images import load_image
from training.lfw import LFW, ImageRef

LOG_EVERY = 640  # images between progress lines


def embed_lfw_images(engine, lfw: LFW, refs: list[ImageRef], batch: int = 1,
                     log=print) -> dict[ImageRef, np.ndarray | None]:
    """Unit embedding of the face nearest the centre of each image (None where no face is found).

    `batch` 1 detects one image per call, exactly as the kiosk detects a frame; a larger batch
    (LFW's images are all 250x250) is several times faster and can move a face by about a pixel
    (benchmarks/lfw_devtest.py measures by how much).
    """
    result: dict[ImageRef, np.ndarray | None] = {}
    start = time.perf_counter()
    for first in range(0, len(refs), batch):
        chunk = refs[first:first + batch]
        images = [load_image(lfw.image_path(ref)) for ref in chunk]
        detections = engine.detector.detect_batch(images) if batch > 1 else [engine.detect(images[0])]
        photos, faces, owners = [], [], []
        for ref, rgb, found in zip(chunk, images, detections):
            face = face_nearest_center(found, rgb.shape)
            result[ref] = None
            if face is not None:
                photos.append(rgb)
                faces.append(face)
                owners.append(ref)
        for ref, vector in zip(owners, engine.embed_each(photos, faces)):
            result[ref] = vector
        done = first + len(chunk)
        if done // LOG_EVERY > first // LOG_EVERY or done == len(refs):
            log(f"  embedded {done}/{len(refs)} images ({time.perf_counter() - start:.0f} s)")
    return result
