"""A made-up LFW (protocol data only) for split and View 2 tests: no images, no files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kiosk.alignment import AlignmentSpec
from training.lfw import ImageRef, Pair
from training.prepare import PreparedLFW


class TinyLFW:
    """Protocol data for a made-up LFW: 10 folds of 8 people, View 1 = folds 0-6 train / 7-9 test."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.folds: list[dict[str, int]] = []
        for fold in range(10):
            # Mostly 6..12 images; one person with a single image per fold.
            counts = [1] + rng.integers(6, 13, size=7).tolist()
            self.folds.append({f"P{fold}_{index}": int(n) for index, n in enumerate(counts)})
        self.counts = {name: n for fold in self.folds for name, n in fold.items()}
        self.view2 = [pair for fold in range(10) for pair in self._fold_pairs(fold, rng)]
        # A stray test pair naming a person of another fold: its people must not train either.
        self.view2.append(Pair(ImageRef("P0_1", 1), ImageRef("P5_2", 1), False, 0))
        devtest_people = [name for fold in self.folds[7:] for name in fold]
        self.devtest_pairs = [Pair(p.a, p.b, p.same, 0) for p in self.view2 if p.fold >= 7]
        # A stray View 1 test pair naming a DevTrain person.
        self.devtest_pairs.append(Pair(ImageRef("P1_3", 2), ImageRef(devtest_people[1], 1), False, 0))

    def _fold_pairs(self, fold: int, rng) -> list[Pair]:
        people = sorted(self.folds[fold])
        multi = [name for name in people if self.counts[name] >= 2]
        pairs = []
        for index in range(4):
            name = multi[index % len(multi)]
            n1, n2 = sorted(rng.choice(np.arange(1, self.counts[name] + 1), 2, replace=False).tolist())
            pairs.append(Pair(ImageRef(name, n1), ImageRef(name, n2), True, fold))
        for index in range(4):
            a, b = people[index], people[-1 - index]
            pairs.append(Pair(ImageRef(a, 1), ImageRef(b, self.counts[b]), False, fold))
        return pairs

    def pairs(self, view: str) -> list[Pair]:
        return {"view2": self.view2, "devtest": self.devtest_pairs}[view]

    def people(self, split: str) -> dict[str, int]:
        folds = {"devtrain": self.folds[:7], "devtest": self.folds[7:], "all": self.folds}[split]
        return {name: n for fold in folds for name, n in fold.items()}

    def people_folds(self) -> list[dict[str, int]]:
        return self.folds

    def all_images(self) -> list[ImageRef]:
        return sorted(ImageRef(name, number) for name, n in self.counts.items() for number in range(1, n + 1))


def tiny_lfw_and_crops(crop_size: int = 8) -> tuple[TinyLFW, PreparedLFW]:
    """The made-up LFW and random-pixel "crops" of every image it names."""
    lfw = TinyLFW()
    refs = sorted(ImageRef(name, number) for name, n in lfw.counts.items() for number in range(1, n + 1))
    spec = AlignmentSpec(max(crop_size, 16))  # landmarks as if the crops were made at the template
    records = [{"relpath": ref.relpath, "name": ref.name, "number": ref.number, "detected": True,
                "landmarks": spec.template().tolist()} for ref in refs]
    crops = np.random.default_rng(0).integers(0, 256, (len(records), crop_size, crop_size, 3), dtype=np.uint8)
    return lfw, PreparedLFW(Path("unused"), crops, records, {"images": len(records), "alignment": spec.to_dict()})
