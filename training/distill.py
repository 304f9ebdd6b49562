"""Teachers for distillation: finished runs whose cosines between training images a student learns.

An ensemble of runs verifies better than any one of them (mean cosine of several networks), but
a kiosk runs one network. A student trained with `Recipe.distill_from` matches the teachers'
mean cosine between every two images of each batch (`losses.relational_distillation_loss`) as
well as its own loss. The teachers embed each training image once, un-augmented, as the kiosk
would (crop and mirror summed), so they cost a minute, not a forward pass per step.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from training.model import resize_crops
from training.recipe import Recipe
from training.run_folder import load_backbone, read_summary


def teacher_vectors(recipe: Recipe, split_description: str, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Rows whose dot products are the teachers' mean cosine between two of `images` (float
    crops in [0, 1] at the student's input size): every teacher's unit embeddings side by side,
    each scaled by 1 / sqrt(teachers).

    A teacher must have held out the student's validation people (same split and split seed): it has
    then never trained on them, so the student's threshold and early stopping stay honest.
    """
    parts = [_embed(load_teacher(Path(run_dir), recipe, split_description), images, batch)
             for run_dir in recipe.distill_from]
    return np.concatenate(parts, axis=1) / np.sqrt(len(parts))


def load_teacher(run_dir: Path, student: Recipe, split_description: str):
    """A finished run's backbone (float32), refused if it may have trained on the student's held-out people."""
    summary = read_summary(run_dir)
    teacher = Recipe.from_json(summary["recipe"])
    if summary["split"] != split_description or teacher.held_out_seed != student.held_out_seed:
        raise ValueError(
            f"distillation teacher {run_dir} was trained on another split ({summary['split']!r}, split seed "
            f"{teacher.held_out_seed}) than the student ({split_description!r}, split seed "
            f"{student.held_out_seed}): it may have trained on the student's validation people")
    return load_backbone(run_dir, teacher)


def _embed(backbone, images: np.ndarray, batch: int) -> np.ndarray:
    size = backbone.input_shape[1]
    vectors = []
    for start in range(0, len(images), batch):
        x = resize_crops(tf.constant(images[start:start + batch]), size)
        summed = backbone(x, training=False) + backbone(tf.reverse(x, axis=[2]), training=False)
        vectors.append(np.asarray(tf.math.l2_normalize(summed, axis=1)))
    return np.concatenate(vectors)
