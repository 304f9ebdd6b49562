"""Which denied face is which, across visits: the keys of the kiosk's per-face lockouts.

A face that is denied becomes a track, remembered by its embeddings (up to `references` of
them, the latest kept). A later face belongs to a track when it matches one at the model card's
threshold (one comparison: "the same person?"), scored as the engine scores faces; so a
stranger who steps away and comes back, or
holds up the same photo again, is still the same track, while anyone else is a different
face and is never locked out by that track's denials. Only faces that were denied are kept,
at most `max_tracks` of them (the one seen longest ago goes first).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from kiosk.matching import match_many
from kiosk.scoring import Scoring


class FaceTracks:
    def __init__(self, max_tracks: int = 64, references: int = 8) -> None:
        if max_tracks < 1 or references < 1:
            raise ValueError(f"max_tracks and references must be at least 1, got {max_tracks} and {references}")
        self.max_tracks = max_tracks
        self.references = references
        self._tracks: OrderedDict[int, list[np.ndarray]] = OrderedDict()  # least recently seen first
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._tracks)

    def find(self, embedding: np.ndarray, threshold: float, scoring: Scoring | None = None) -> int | None:
        """The track this face belongs to (similarity >= `threshold` by `scoring`), or None."""
        if not self._tracks:
            return None
        ids = np.array([track for track, refs in self._tracks.items() for _ in refs], dtype=np.int64)
        templates = np.stack([ref for refs in self._tracks.values() for ref in refs])
        found = match_many(np.asarray(embedding, np.float32)[None], templates, ids,
                           threshold=threshold, scoring=scoring)[0]
        if found.verdict == "unknown" or found.person_id is None:
            return None
        # "ambiguous" between two tracks still means a face seen before: the closer one.
        track = int(found.person_id)
        self._tracks.move_to_end(track)
        return track

    def add(self, embedding: np.ndarray, track: int | None = None) -> int:
        """Remember this face's embedding under `track` (a new track when None); the track's id."""
        if track is None or track not in self._tracks:
            track, self._next_id = self._next_id, self._next_id + 1
            self._tracks[track] = []
            while len(self._tracks) > self.max_tracks:
                self._tracks.popitem(last=False)
        refs = self._tracks[track]
        refs.append(np.asarray(embedding, np.float32).copy())
        del refs[:-self.references]
        self._tracks.move_to_end(track)
        return track
