"""Distillation: the loss by hand, the teachers' vectors against their serving models, the split
check that keeps a teacher from leaking the student's validation people, and real training steps."""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.distill import load_teacher, teacher_vectors
from training.losses import relational_distillation_loss
from training.model import build_backbone, build_serving_model
from training.recipe import Recipe
from training.train import build_training, model_inputs

SIZE = 32
WIDTHS = (8, 16, 16, 16)
SPLIT = "tiny synthetic split"


def test_relational_distillation_loss_hand_example():
    student = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    # Teacher cosines: images 0 and 1 alike (1), image 2 unlike both (0).
    teacher = tf.constant([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # Student cosines 0, 0.6, 0.8 against 1, 0, 0: (1 + 0.36 + 0.64) x 2 over 6 ordered pairs.
    assert float(relational_distillation_loss(student, teacher)) == pytest.approx(4.0 / 6.0)


def test_relational_distillation_loss_is_zero_for_the_same_relations_in_another_space():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(10, 8))
    student /= np.linalg.norm(student, axis=1, keepdims=True)
    rotation, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    teacher = np.pad(student, ((0, 0), (0, 4))) @ rotation  # other size, other axes, same cosines
    assert float(relational_distillation_loss(tf.constant(student, tf.float32), tf.constant(teacher, tf.float32))) < 1e-10
    assert float(relational_distillation_loss(tf.constant(student, tf.float32), tf.constant(teacher[::-1], tf.float32))) > 0.01


def save_teacher(folder: Path, seed: int, split: str = SPLIT, recipe_seed: int = 0,
                 split_seed: int | None = None) -> keras.Model:
    keras.utils.set_random_seed(seed)
    backbone = build_backbone(SIZE, 16, WIDTHS)
    folder.mkdir(parents=True)
    backbone.save_weights(folder / "backbone.weights.h5")
    recipe = Recipe(input_size=SIZE, embedding_size=16, widths=WIDTHS, seed=recipe_seed, split_seed=split_seed)
    (folder / "summary.json").write_text(json.dumps({"recipe": recipe.as_json(), "split": split}))
    return backbone


def test_teacher_vectors_give_the_teachers_mean_cosine_as_the_kiosk_embeds(tmp_path):
    teachers = [save_teacher(tmp_path / f"t{seed}", seed) for seed in (1, 2)]
    crops = np.random.default_rng(5).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    student = Recipe(input_size=SIZE, distill_from=(str(tmp_path / "t1"), str(tmp_path / "t2")))
    vectors = teacher_vectors(student, SPLIT, crops.astype("float32") / 255.0, batch=4)
    assert vectors.shape == (6, 32)
    served = [np.asarray(build_serving_model(teacher, SIZE)(crops)) for teacher in teachers]
    expected = np.mean([v @ v.T for v in served], axis=0)
    np.testing.assert_allclose(vectors @ vectors.T, expected, atol=1e-5)
    np.testing.assert_allclose(np.diag(vectors @ vectors.T), 1.0, atol=1e-5)


def test_a_teacher_that_may_have_seen_the_students_validation_people_is_refused(tmp_path):
    save_teacher(tmp_path / "other_seed", 1, recipe_seed=1)
    save_teacher(tmp_path / "other_split", 1, split="View 2 fold 3")
    student = Recipe(input_size=SIZE)
    with pytest.raises(ValueError, match="another split"):
        load_teacher(tmp_path / "other_seed", student, SPLIT)
    with pytest.raises(ValueError, match="another split"):
        load_teacher(tmp_path / "other_split", student, SPLIT)
    with pytest.raises(FileNotFoundError, match="not a finished run folder"):
        load_teacher(tmp_path / "missing", student, SPLIT)
    # Another seed that held out the same people (--split-seed) may teach.
    save_teacher(tmp_path / "same_people", 1, recipe_seed=1, split_seed=0)
    assert load_teacher(tmp_path / "same_people", student, SPLIT).input_shape[1] == SIZE


def test_distillation_teaches_the_relations_of_the_very_images_in_each_batch(tiny_data):
    """A teacher that calls two training images alike exactly when they show one person helps the
    student separate people; the same rows shuffled across people (teachers' vectors paired with
    the wrong images) do not. Catches a missing term as well as rows that do not match the images."""
    split, prepared = tiny_data
    images = model_inputs(prepared.crops, split.train_rows, SIZE)
    labels = split.train_labels
    recipe = Recipe(loss="triplet", augment=False, input_size=SIZE, embedding_size=16, widths=WIDTHS,
                    identities_per_batch=4, images_per_identity=2, distill_from=("teachers",), distill_weight=100.0)
    one_hot = np.eye(labels.max() + 1)[labels]

    def separation(teachers: np.ndarray) -> float:
        keras.utils.set_random_seed(0)
        training = build_training(recipe, images, labels, 0.005, teachers)
        for index in range(150):
            training.step(index)
        vectors = np.asarray(training.backbone(images, training=False))
        cosine = vectors @ vectors.T
        same = (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)
        return float(cosine[same].mean() - cosine[labels[:, None] != labels[None, :]].mean())

    # Rows reordered 0, 6, 12, 1, 7, 13, ...: each person's three rows now come from three different people.
    shuffled = one_hot[np.arange(len(labels)).reshape(3, -1).T.ravel()]
    assert separation(one_hot) > separation(shuffled) + 0.05
