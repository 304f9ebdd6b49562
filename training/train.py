"""Training loops for every Siamese form, one recipe at a time.

All forms share one input pipeline: batches of P identities x K images (`data.pk_batches`),
augmented per image in `tf.data`. From such a batch,
- `pair_bce` and `contrastive` mine balanced pairs (one positive and one negative per anchor,
  half of the negatives the hardest in the batch) and score them with the study's pair head
  or with the contrastive loss on the embedding distance;
- `triplet` (batch-hard) and `semihard` mine triplets online inside the batch;
- `cosface` classifies the training identities with a margin: the pre-training that gives
  the fine-tuning experiments their pretrained backbone.
After every epoch the model is scored on the held-out validation pairs (never the test
pairs); the best epoch's weights are kept and training stops when it stops improving.

A recipe may start from a pretrained backbone (`init`): a weights file of this network, or
dlib's face-recognition ResNet (training.dlib_init); `freeze` trains only the embedding layers
on top of it, and `backbone_learning_rate` lets the pretrained layers learn more slowly than
the new ones. With 0 epochs the pretrained backbone is scored as it is.

A recipe with a `teacher` (dlib's ResNet) learns from it online: in each step the teacher
embeds the very augmented views the network sees, and the network learns their embeddings and
the cosines between them besides its own loss: a small, fast network with a face model's
knowledge, learnt from LFW images alone.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from kiosk.scoring import CosineScoring, Scoring
from training import losses
from training.augment import NO_AUGMENTATION, AugmentConfig, make_augmenter
from training.data import PairSet, Split, pk_batches
from training.distill import teacher_vectors
from training.metrics import accuracy_at, best_threshold, roc_auc
from training.model import CosineClassifier, PairHead, build_serving_model, recipe_backbone, resize_crops
from training.prepare import PreparedLFW
from training.recipe import DLIB_INIT, Recipe


@dataclass
class TrainResult:
    backbone: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    seconds: float
    recipe: Recipe


def train(recipe: Recipe, split: Split, prepared: PreparedLFW, log=print) -> TrainResult:
    """Train `recipe` on `split`'s training identities; keep the best epoch on its validation pairs."""
    keras.utils.set_random_seed(recipe.seed)
    if recipe.epochs == 0:  # the pretrained backbone as it is
        return TrainResult(initial_backbone(recipe), {"loss": [], "val_auc": [], "val_accuracy": []}, 0, 0.0, recipe)
    started = time.perf_counter()
    images = model_inputs(prepared.crops, split.train_rows, recipe.input_size)
    teachers = teacher_vectors(recipe, split.description, images) if recipe.distill_from else None
    backbone_rate = (None if recipe.backbone_learning_rate is None
                     else _schedule(recipe, recipe.backbone_learning_rate))
    training = build_training(recipe, images, split.train_labels, _schedule(recipe, recipe.learning_rate), teachers,
                              backbone_learning_rate=backbone_rate)
    backbone = training.backbone
    # Validation scores the backbone as the kiosk will run it: in float32, whatever it trains in,
    # and with the averaged weights when the recipe keeps an average (on a copy: training goes on).
    evaluated = recipe_backbone(recipe) if recipe.mixed_precision or recipe.ema_decay else backbone
    serving = build_serving_model(evaluated, prepared.crops.shape[1])
    history: dict[str, list[float]] = {"loss": [], "val_auc": [], "val_accuracy": []}
    best = (-1.0, 0, backbone.get_weights())
    average = WeightAverage(backbone.get_weights(), recipe.ema_decay) if recipe.ema_decay else None
    for epoch in range(recipe.epochs):
        epoch_loss = 0.0
        for index in range(recipe.steps_per_epoch):
            epoch_loss += training.step(epoch * recipe.steps_per_epoch + index)
            if average:
                average.update(backbone.get_weights())
        if average:
            evaluated.set_weights(average.weights)
        elif evaluated is not backbone:
            evaluated.set_weights(backbone.get_weights())
        scores = pair_scores(serving, prepared, split.validation)
        auc = roc_auc(scores, split.validation.same)
        accuracy = accuracy_at(scores, split.validation.same, best_threshold(scores, split.validation.same))
        history["loss"].append(epoch_loss / recipe.steps_per_epoch)
        history["val_auc"].append(auc)
        history["val_accuracy"].append(accuracy)
        log(f"[{recipe.name}] epoch {epoch + 1}/{recipe.epochs} loss {history['loss'][-1]:.4f} "
            f"val AUC {auc:.4f} val acc {accuracy:.4f} ({time.perf_counter() - started:.0f} s)")
        if auc > best[0]:
            best = (auc, epoch, evaluated.get_weights())
        elif epoch - best[1] >= recipe.patience:
            log(f"[{recipe.name}] stopping early: no better validation AUC for {recipe.patience} epochs")
            break
    evaluated.set_weights(best[2])
    return TrainResult(evaluated, history, best[1] + 1, time.perf_counter() - started, recipe)


def _schedule(recipe: Recipe, target: float) -> keras.optimizers.schedules.LearningRateSchedule:
    """One epoch of warm-up to `target`, then a cosine decay to 1% of it over the other epochs."""
    total_steps = recipe.epochs * recipe.steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0, max(total_steps - recipe.steps_per_epoch, 1), alpha=0.01,
        warmup_target=target, warmup_steps=recipe.steps_per_epoch)


class WeightAverage:
    """An exponential moving average of a network's weights (all of them, batch-norm statistics
    included): weights = decay * weights + (1 - decay) * latest, starting from the first."""

    def __init__(self, weights: list[np.ndarray], decay: float):
        self.weights = [np.array(w, dtype=np.float32) for w in weights]
        self.decay = decay

    def update(self, latest: list[np.ndarray]) -> None:
        for average, new in zip(self.weights, latest):
            average *= self.decay
            average += (1.0 - self.decay) * new


@dataclass
class Training:
    """A backbone (and head) with its optimizer and augmented P x K batches, ready to step."""

    recipe: Recipe
    backbone: keras.Model
    batches: Iterator[tuple[tf.Tensor, tf.Tensor, tf.Tensor]]  # images, labels, their rows in `images`
    train_step: Callable
    memory: losses.CrossBatchMemory | None = None

    def step(self, index: int) -> float:
        """One optimiser step on the next batch; its loss (waits for the step to finish)."""
        x, y, rows = next(self.batches)
        return float(self.train_step(x, y, rows, tf.constant([self.recipe.seed, index], tf.int32)))


def build_training(recipe: Recipe, images: np.ndarray, labels: np.ndarray, learning_rate,
                   teachers: np.ndarray | None = None, backbone_learning_rate=None) -> Training:
    """Everything `recipe` trains with, on `images` (at the network's input size) and their
    identity labels; `learning_rate` is a number or a Keras schedule, and so is
    `backbone_learning_rate` (default: the recipe's, constant) for a recipe that sets one;
    `teachers`, for a recipe that distills, holds the teachers' vectors of each image
    (`distill.teacher_vectors`)."""
    labels = labels.astype(np.int32)
    batch = recipe.identities_per_batch * recipe.images_per_identity
    backbone = initial_backbone(recipe)
    head = _head(recipe, int(labels.max()) + 1)
    groups = _optimised(recipe, backbone, head, learning_rate, backbone_learning_rate)
    memory = (losses.CrossBatchMemory(recipe.memory_batches * batch, recipe.embedding_size)
              if recipe.memory_batches else None)
    teacher = _online_teacher(recipe, images)
    step = _train_step(recipe, backbone, head, groups, teachers, memory, teacher)
    return Training(recipe, backbone, iter(_dataset(images, labels, recipe, batch)), step, memory)


CENTRE_SAMPLE = 512  # training images whose mean teacher embedding is the centre taken away


def _online_teacher(recipe: Recipe, images: np.ndarray) -> Callable | None:
    """For a recipe taught online (`teacher`): crops -> dlib's unit embeddings, centred. dlib's
    descriptors crowd into a narrow cone (two strangers' cosine is about 0.9), so a student matching
    them as they are learns that cone's axis and little else; with the mean of the teacher's
    embeddings of a sample of the training images taken away (and unit length again), the teacher's
    cosines spread over the whole range and say who is who. Else None."""
    if recipe.teacher != DLIB_INIT:
        return None
    from training.dlib_init import build_dlib_backbone  # reads dlib's model file: only when asked for

    network = build_dlib_backbone()
    network.trainable = False
    sample = np.random.default_rng(recipe.seed).choice(len(images), min(CENTRE_SAMPLE, len(images)), replace=False)
    centre = tf.constant(np.mean(np.asarray(network.predict(images[np.sort(sample)], batch_size=64, verbose=0)),
                                 axis=0), tf.float32)

    def embed(crops):
        return tf.math.l2_normalize(network(crops, training=False) - centre, axis=1)

    return embed


def initial_backbone(recipe: Recipe) -> keras.Model:
    """The network `recipe` starts from: pretrained weights loaded when it has any, and with
    `freeze` only its embedding layers left trainable."""
    backbone = recipe_backbone(recipe, mixed_precision=recipe.mixed_precision)
    if recipe.init == DLIB_INIT:
        from training.dlib_init import freeze_all_but_head

        if recipe.freeze:
            freeze_all_but_head(backbone)
    elif recipe.init:
        backbone.load_weights(recipe.init)
        if recipe.freeze:
            for layer in backbone.layers:
                layer.trainable = layer.name.startswith(("embedding", "dropout"))
    return backbone


def _optimised(recipe: Recipe, backbone: keras.Model, head, learning_rate,
               backbone_learning_rate) -> list[tuple[keras.optimizers.Optimizer, list]]:
    """(optimizer, the variables it updates) pairs: one for everything trainable, or, when the
    recipe gives the pretrained layers their own learning rate, one for the new layers on top
    (the loss's head, dlib's embedding head) and one for the pretrained ones."""
    head_variables = list(head.trainable_variables) if head else []
    if recipe.backbone_learning_rate is None:
        return [(keras.optimizers.AdamW(learning_rate, weight_decay=recipe.weight_decay),
                 backbone.trainable_variables + head_variables)]
    if recipe.init == DLIB_INIT:
        from training.dlib_init import head_variables as dlib_head

        head_variables += dlib_head(backbone)
    new = {id(variable) for variable in head_variables}
    pretrained = [variable for variable in backbone.trainable_variables if id(variable) not in new]
    rate = recipe.backbone_learning_rate if backbone_learning_rate is None else backbone_learning_rate
    return [(keras.optimizers.AdamW(learning_rate, weight_decay=recipe.weight_decay), head_variables),
            (keras.optimizers.AdamW(rate, weight_decay=recipe.weight_decay), pretrained)]


def model_inputs(crops: np.ndarray, rows: np.ndarray, input_size: int) -> np.ndarray:
    """Training images at the network's input size, resized by the same op the serving model uses."""
    out = []
    for start in range(0, len(rows), 1024):
        chunk = tf.cast(np.asarray(crops[rows[start:start + 1024]]), tf.float32) / 255.0
        out.append(np.asarray(resize_crops(chunk, input_size)))
    return np.concatenate(out)


def _dataset(images: np.ndarray, labels: np.ndarray, recipe: Recipe, batch: int) -> tf.data.Dataset:
    rng = np.random.default_rng(recipe.seed)
    generator = lambda: pk_batches(labels, recipe.identities_per_batch, recipe.images_per_identity, rng,
                                   capped=recipe.sampling == "capped")
    augment = make_augmenter(augmentation(recipe))
    images_tensor, labels_tensor = tf.constant(images), tf.constant(labels)
    return (
        tf.data.Dataset.from_generator(generator, output_signature=tf.TensorSpec([batch], tf.int64))
        .unbatch()
        .map(lambda row: (augment(tf.gather(images_tensor, row)), tf.gather(labels_tensor, row), row),
             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch, drop_remainder=True)
        .prefetch(2)
    )


def augmentation(recipe: Recipe) -> AugmentConfig:
    """What the training pipeline does to each image: the webcam augmentation (plus occluders and
    sunglasses when the recipe asks for them), or nothing."""
    return (AugmentConfig(occlusion_prob=recipe.occlusion_prob, sunglasses_prob=recipe.sunglasses_prob)
            if recipe.augment else NO_AUGMENTATION)


def _head(recipe: Recipe, classes: int) -> keras.layers.Layer | None:
    if recipe.loss == "pair_bce":
        head = PairHead()
        head.build([(None, recipe.embedding_size), (None, recipe.embedding_size)])
        return head
    if recipe.loss == "cosface":
        head = CosineClassifier(classes)
        head.build((None, recipe.embedding_size))
        return head
    return None


def _train_step(recipe: Recipe, backbone, head, groups: list[tuple[keras.optimizers.Optimizer, list]],
                teachers: np.ndarray | None, memory: losses.CrossBatchMemory | None,
                teacher: Callable | None = None):
    margin = recipe.margin
    teacher_table = tf.constant(teachers, tf.float32) if teachers is not None else None

    def loss_of(embeddings, labels, seed):
        if recipe.loss == "triplet":
            return losses.batch_hard_triplet_loss(
                embeddings, labels, margin if margin is not None else 0.3,
                memory=memory.embeddings if memory else None, memory_labels=memory.labels if memory else None)
        if recipe.loss == "semihard":
            return losses.semi_hard_triplet_loss(embeddings, labels, margin if margin is not None else 0.3)
        if recipe.loss == "cosface":
            return losses.cosface_loss(head(embeddings), labels, margin=margin if margin is not None else 0.25)
        first, second, same = losses.mine_pairs(embeddings, labels, seed)
        a, b = tf.gather(embeddings, first), tf.gather(embeddings, second)
        if recipe.loss == "pair_bce":
            return losses.pair_bce_loss(head([a, b]), same)
        distance = tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(a - b), axis=1), 1e-12))
        return losses.contrastive_loss(distance, same, margin if margin is not None else 1.0)

    @tf.function(reduce_retracing=True)
    def step(images, labels, rows, seed):
        with tf.GradientTape() as tape:
            embeddings = backbone(images, training=True)
            loss = loss_of(embeddings, labels, seed)
            if teacher_table is not None:
                loss += recipe.distill_weight * losses.relational_distillation_loss(
                    embeddings, tf.gather(teacher_table, rows))
            if teacher is not None:  # the same augmented views, embedded by the teacher in this step
                taught = tf.stop_gradient(teacher(images))
                loss += recipe.distill_weight * (losses.embedding_distillation_loss(embeddings, taught)
                                                 + losses.relational_distillation_loss(embeddings, taught))
        gradients = tape.gradient(loss, [variable for _, variables in groups for variable in variables])
        start = 0
        for optimizer, variables in groups:
            optimizer.apply_gradients(zip(gradients[start:start + len(variables)], variables))
            start += len(variables)
        if memory:
            memory.push(embeddings, labels)
        return loss

    return step


def embed_rows(serving: keras.Model, prepared: PreparedLFW, rows: np.ndarray, scoring: Scoring | None = None,
               batch: int = 256) -> dict[int, np.ndarray]:
    """Embeddings of the given rows of the prepared crops, through the serving model (and extended
    as `scoring` needs, e.g. by texture vectors): the kiosk's embeddings of them."""
    unique = np.unique(rows)
    scoring = scoring or CosineScoring()
    vectors = []
    for start in range(0, len(unique), batch):
        chosen = unique[start:start + batch]
        block = np.asarray(prepared.crops[chosen])
        vectors.append(scoring.extend(np.asarray(serving(block, training=False)), block, prepared.crop_landmarks(chosen)))
    return dict(zip(unique.tolist(), np.concatenate(vectors)))


def pair_vectors(serving: keras.Model, prepared: PreparedLFW, pairs: PairSet,
                 scoring: Scoring | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of each pair's two images (two P x D arrays), embedded exactly as the kiosk embeds."""
    return vectors_of_pairs(embed_rows(serving, prepared, pairs.images, scoring), pairs)


def vectors_of_pairs(by_row: dict[int, np.ndarray], pairs: PairSet) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's two vectors (two P x D arrays), from embed_rows' vectors of (at least) their rows."""
    return (np.stack([by_row[row] for row in pairs.a.tolist()]), np.stack([by_row[row] for row in pairs.b.tolist()]))


def pair_scores(serving: keras.Model, prepared: PreparedLFW, pairs: PairSet, scoring: Scoring | None = None) -> np.ndarray:
    """The score of each pair (cosine unless `scoring` says otherwise), as the kiosk scores it."""
    scoring = scoring or CosineScoring()
    return scores_of_pairs(embed_rows(serving, prepared, pairs.images, scoring), pairs, scoring)


def scores_of_pairs(by_row: dict[int, np.ndarray], pairs: PairSet, scoring: Scoring) -> np.ndarray:
    """pair_scores() from embed_rows' vectors (made with `scoring`) of (at least) the pairs' rows."""
    return np.asarray(scoring.pairs(*vectors_of_pairs(by_row, pairs)), np.float64)
