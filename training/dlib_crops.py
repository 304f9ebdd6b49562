"""The crops dlib's backbone trains and is scored on (`Recipe(init="dlib")`, training.dlib_init).

150 px, aligned by the kiosk's detector and aligner onto the template that reproduces dlib's own
face chips (training.dlib_export.fitted_template, fitted on DevTrain images: the shipped model's
crops), for the View 1 images a split needs: every image of the DevTrain people it can train or
hold out, and the images of the DevTest pairs.
"""
from __future__ import annotations

from pathlib import Path

from training.dlib_export import fitted_template
from training.lfw import LFW, ImageRef
from training.prepare import PreparedLFW, prepare


def view1_refs(lfw: LFW, min_images: int = 2) -> list[ImageRef]:
    """The images a View 1 split of the dlib backbone's crops needs, in LFW order: every image of each
    DevTrain person with at least min(`min_images`, 2) images (so the held-out validation people,
    drawn from those with two or more, are the same as on crops of all of LFW) and every image of
    the DevTest pairs. Nothing else of LFW is aligned."""
    least = min(min_images, 2)
    people = {name for name, count in lfw.people("devtrain").items() if count >= least}
    tested = {ref for pair in lfw.pairs("devtest") for ref in (pair.a, pair.b)}
    return [ref for ref in lfw.all_images() if ref.name in people or ref in tested]


def prepared_crops(lfw: LFW, cache_dir: Path, min_images: int = 2) -> PreparedLFW:
    """The View 1 crops at the dlib template (aligned once, then read from `cache_dir`)."""
    spec, _ = fitted_template(lfw, cache_dir)
    return prepare(lfw, cache_dir, spec, refs=view1_refs(lfw, min_images))

