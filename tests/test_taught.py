"""A small network taught online by dlib's ResNet (`Recipe(teacher="dlib")`): the recipe is checked,
the network pools dlib's 150 px crop inside itself, and in training it learns where the teacher
puts each view (its cosine with the teacher's centred embedding of the same view rises).

Needs the train extra (face-recognition-models ships dlib's model file); without it the training
test skips, saying so.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_dlib_resnet import needs_dlib

from training.recipe import DLIB_INIT, Recipe

TAUGHT = Recipe(teacher=DLIB_INIT, input_size=150, input_pool=2, embedding_size=128, widths=(8, 16, 16, 16),
                epochs=1, steps_per_epoch=1, identities_per_batch=2, images_per_identity=2, learning_rate=3e-3,
                augment=False)


def test_taught_recipes_are_checked_named_and_reproduced():
    from training.export import training_command

    with pytest.raises(ValueError, match="unknown teacher"):
        replace(TAUGHT, teacher="resnet")
    with pytest.raises(ValueError, match="--input-size 150 --embedding-size 128"):
        replace(TAUGHT, input_size=64, input_pool=1)
    with pytest.raises(ValueError, match="drop --init dlib and --distill-from"):
        replace(TAUGHT, distill_from=("runs/a",))
    with pytest.raises(ValueError, match="divide --input-size"):
        replace(TAUGHT, input_pool=4)
    with pytest.raises(ValueError, match="not --init dlib"):
        Recipe(init=DLIB_INIT, input_size=150, input_pool=2)
    assert TAUGHT.name == "triplet-noaug-scratch-taught-by-dlib"
    assert Recipe.from_json(TAUGHT.as_json()) == TAUGHT
    command = training_command(Path("runs/x"), {"recipe": TAUGHT.as_json()})
    assert "--teacher dlib" in command and "--input-pool 2" in command and "--input-size 150" in command


def test_the_network_pools_the_crop_inside_itself():
    from training.model import recipe_backbone

    backbone = recipe_backbone(TAUGHT)
    assert backbone.input_shape[1:] == (150, 150, 3)
    assert backbone.get_layer("input_pool").output.shape[1:3] == (75, 75)
    # An area resize: a 75 px picture blown up into 2x2 blocks comes back as it was.
    small = np.random.default_rng(0).uniform(0, 1, (1, 75, 75, 3)).astype(np.float32)
    blocky = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(np.asarray(backbone.get_layer("input_pool")(blocky)), small, atol=1e-6)


@pytest.mark.slow  # a hundred steps with dlib's ResNet in each: about a minute on two cores
@needs_dlib
def test_online_teaching_brings_the_network_to_the_teachers_embeddings(astronaut):
    from training.dlib_init import build_dlib_backbone
    from training.train import build_training

    crop = np.ascontiguousarray(astronaut[90:260, 170:340])[:150, :150]
    faces = np.stack([crop, crop[:, ::-1], np.roll(crop, 8, axis=0), np.roll(crop, -8, axis=1)]).astype(np.float32)
    faces /= 255.0
    teacher = np.asarray(build_dlib_backbone()(faces))
    teacher = teacher - teacher.mean(axis=0)  # centred on the training images' mean (all four here)
    teacher = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    training = build_training(TAUGHT, faces, np.array([0, 0, 1, 1]), TAUGHT.learning_rate)

    def agreement() -> float:
        return float(np.mean(np.sum(np.asarray(training.backbone(faces)) * teacher, axis=1)))

    before = agreement()
    for index in range(100):
        training.step(index)
    assert agreement() > before + 0.2, (before, agreement())
