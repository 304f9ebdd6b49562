"""Section "embedding": aligned crops embedded per second at batch sizes 1, 8 and 32.

Crops are real faces (the LFW photos the frames are built from, aligned as the kiosk aligns),
repeated to fill the largest batch; each batch size is called once untimed, then timed.
"""
from __future__ import annotations

import numpy as np

from benchmarks.speed.options import EMBED_BATCHES
from benchmarks.speed.stats import latency, timed
from kiosk.alignment import align_face, landmarks_in_crop
from kiosk.images import load_image

PER_DETECTOR = False


def run(ctx) -> dict:
    engine = ctx.engine(ctx.reference_detector)
    sources = ctx.sources(min(max(EMBED_BATCHES), ctx.options.warmup_frames + ctx.options.stage_frames))
    faces = np.stack([align_face(load_image(ctx.lfw.images_dir / s.relpath), s.landmarks, engine.card.alignment)
                      for s in sources])
    crops = np.resize(faces, (max(EMBED_BATCHES),) + faces.shape[1:])  # repeats the faces in order
    landmarks = np.stack([landmarks_in_crop(s.landmarks, engine.card.alignment) for s in sources])
    landmarks = np.resize(landmarks, (max(EMBED_BATCHES),) + landmarks.shape[1:])
    result = {"runtime": engine.embedder_runtime, "distinct_faces": len(faces), "crop": list(crops.shape[1:]),
              "batches": {}}
    for batch in EMBED_BATCHES:
        engine.embed_crops(crops[:batch], landmarks[:batch])  # warm-up
        calls = [timed(engine.embed_crops, crops[:batch], landmarks[:batch])[1] for _ in range(ctx.options.embed_repeats)]
        result["batches"][str(batch)] = {
            "crops_per_s": round(batch * len(calls) / sum(calls), 2),
            "per_call": latency(calls),
        }
    return result
