"""Section "model": size of the shipped model, its weights, and training images/s.

Training speed runs the training code's own pipeline and step (training.train: the tf.data
input with augmentation, the recipe's loss and optimiser) for a few steps of the shipped
model's recipe, from scratch, on the prepared LFW crops when `python -m training prepare`
has made them, else on synthetic crops; the report says which.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

PER_DETECTOR = False


def run(ctx) -> dict:
    import keras

    import training.model  # noqa: F401  registers the custom layers of the saved model

    card = ctx.card
    model = keras.saving.load_model(card.path, compile=False)
    return {
        "file": card.path.name,
        "bytes": card.path.stat().st_size,
        "parameters": int(model.count_params()),
        "parameters_in_card": card.raw.get("parameters"),
        "training": training_speed(ctx),
    }


def training_speed(ctx) -> dict:
    from training.recipe import Recipe
    from training.train import build_training, model_inputs

    options = ctx.options
    fields = {f.name for f in dataclasses.fields(Recipe)}
    shipped = {k: v for k, v in (ctx.card.raw.get("recipe") or {}).items() if k in fields}
    # Speed of the recipe's own training steps: from scratch, no teachers.
    recipe = dataclasses.replace(Recipe(**{**shipped, "init": None, "freeze": False, "distill_from": ()}),
                                 widths=tuple(shipped.get("widths", Recipe.widths)))
    crops, labels, data = _training_crops(ctx, options.train_images)
    batch = recipe.identities_per_batch * recipe.images_per_identity
    training = build_training(recipe, model_inputs(crops, np.arange(len(crops)), recipe.input_size), labels,
                              recipe.learning_rate)

    def run_steps(count: int, first: int) -> float:
        start = time.perf_counter()
        for index in range(first, first + count):
            training.step(index)
        return time.perf_counter() - start

    run_steps(options.train_warmup_steps, 0)  # the first step traces the graph
    seconds = run_steps(options.train_steps, options.train_warmup_steps)
    return {
        "data": data,
        "loss": recipe.loss,
        "input_size": recipe.input_size,
        "augment": recipe.augment,
        "mixed_precision": recipe.mixed_precision,
        "batch": batch,
        "steps": options.train_steps,
        "seconds": round(seconds, 3),
        "images_per_s": round(options.train_steps * batch / seconds, 2),
    }


def _training_crops(ctx, count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(crops, identity labels, where they came from): prepared LFW crops if cached, else synthetic."""
    from training.prepare import largest_prepared

    prepared = largest_prepared(ctx.card.alignment)
    if prepared is None:
        rng = np.random.default_rng(0)
        size = ctx.card.alignment.size
        crops = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
        # Four images per identity, as the P x K batches draw them.
        return crops, np.arange(count, dtype=np.int32) // 4, "synthetic crops (no prepared LFW cache; see `python -m training prepare`)"
    # Spread over the whole cache so that a batch finds enough different people.
    rows = np.linspace(0, len(prepared.records) - 1, min(count, len(prepared.records))).astype(int)
    names = [prepared.records[row]["name"] for row in rows]
    ids = {name: i for i, name in enumerate(sorted(set(names)))}
    labels = np.array([ids[name] for name in names], dtype=np.int32)
    return (np.asarray(prepared.crops[rows]), labels,
            f"prepared LFW crops ({len(rows)} of the {len(prepared.records)} in {prepared.folder})")
