"""The losses, in plain sight. Embeddings are unit vectors; labels are identity indices."""
from __future__ import annotations

import tensorflow as tf


def pairwise_distances(embeddings: tf.Tensor) -> tf.Tensor:
    """Euclidean distance matrix of unit vectors: sqrt(2 - 2 cos), clipped for a stable gradient."""
    cosine = tf.matmul(embeddings, embeddings, transpose_b=True)
    return tf.sqrt(tf.maximum(2.0 - 2.0 * cosine, 1e-12))


def contrastive_loss(distance: tf.Tensor, same: tf.Tensor, margin: float = 1.0) -> tf.Tensor:
    """Hadsell et al. 2006: pull same pairs together, push different pairs beyond `margin`."""
    same = tf.cast(same, distance.dtype)
    return tf.reduce_mean(same * tf.square(distance) + (1.0 - same) * tf.square(tf.nn.relu(margin - distance)))


def pair_bce_loss(probability: tf.Tensor, same: tf.Tensor) -> tf.Tensor:
    """The original study's loss: binary cross-entropy of the pair head's P(same)."""
    return tf.reduce_mean(tf.keras.losses.binary_crossentropy(tf.cast(same, probability.dtype)[:, None], probability[:, None]))


def batch_hard_triplet_loss(embeddings: tf.Tensor, labels: tf.Tensor, margin: float = 0.3,
                            memory: tf.Tensor | None = None, memory_labels: tf.Tensor | None = None) -> tf.Tensor:
    """Hermans et al. 2017: each anchor against its farthest positive and nearest negative in the batch.

    With a `memory` of earlier batches' embeddings (Wang et al. 2020, cross-batch memory) the
    nearest negative is sought there too: a batch of 32 people offers each anchor 31 impostors,
    the memory hundreds, and rare close impostors are what a door's low false-accept rates are
    made of. Memory rows are constants (no gradient); a label of -1 marks an empty row.
    """
    distances = pairwise_distances(embeddings)
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    positive = tf.logical_and(same, not_self)
    hardest_positive = tf.reduce_max(tf.where(positive, distances, 0.0), axis=1)
    hardest_negative = tf.reduce_min(tf.where(same, 4.0, distances), axis=1)
    if memory is not None:
        to_memory = tf.sqrt(tf.maximum(2.0 - 2.0 * tf.matmul(embeddings, memory, transpose_b=True), 1e-12))
        impostor = tf.logical_and(memory_labels[None, :] >= 0, tf.not_equal(labels[:, None], memory_labels[None, :]))
        hardest_negative = tf.minimum(hardest_negative, tf.reduce_min(tf.where(impostor, to_memory, 4.0), axis=1))
    has_positive = tf.reduce_any(positive, axis=1)
    losses = tf.nn.relu(margin + hardest_positive - hardest_negative)
    return tf.reduce_sum(tf.where(has_positive, losses, 0.0)) / tf.maximum(tf.reduce_sum(tf.cast(has_positive, losses.dtype)), 1.0)


def semi_hard_triplet_loss(embeddings: tf.Tensor, labels: tf.Tensor, margin: float = 0.3) -> tf.Tensor:
    """Schroff et al. 2015 (FaceNet): every positive pair against the nearest negative that is
    still farther than the positive (semi-hard); the hardest negative when none is."""
    distances = pairwise_distances(embeddings)
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    positive = tf.logical_and(same, not_self)  # [anchor, positive]
    d_ap = distances[:, :, None]  # anchor-positive
    d_an = distances[:, None, :]  # anchor-negative
    negative = tf.logical_not(same)[:, None, :]
    semi_hard = tf.logical_and(negative, d_an > d_ap)
    nearest_semi_hard = tf.reduce_min(tf.where(semi_hard, d_an, 4.0), axis=2)
    hardest = tf.reduce_min(tf.where(tf.logical_not(same), distances, 4.0), axis=1)[:, None]
    chosen = tf.where(nearest_semi_hard < 4.0, nearest_semi_hard, hardest)
    losses = tf.nn.relu(margin + distances - chosen)
    mask = tf.cast(positive, losses.dtype)
    return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def cosface_loss(cosines: tf.Tensor, labels: tf.Tensor, scale: float = 30.0, margin: float = 0.25) -> tf.Tensor:
    """Wang et al. 2018 (CosFace): softmax over scaled cosines with `margin` taken off the true class."""
    one_hot = tf.one_hot(labels, tf.shape(cosines)[1], dtype=cosines.dtype)
    logits = scale * (cosines - margin * one_hot)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(one_hot, logits))


class CrossBatchMemory:
    """The last `size` training embeddings and their labels, a ring buffer of TensorFlow variables
    that a compiled training step reads and fills (for `batch_hard_triplet_loss`'s `memory`)."""

    def __init__(self, size: int, dimension: int):
        self.embeddings = tf.Variable(tf.zeros([size, dimension]), trainable=False, name="memory_embeddings")
        self.labels = tf.Variable(-tf.ones([size], tf.int32), trainable=False, name="memory_labels")
        self.next_row = tf.Variable(0, trainable=False, name="memory_next_row")
        self.size = size

    def push(self, embeddings: tf.Tensor, labels: tf.Tensor) -> None:
        """Overwrite the oldest rows with a batch (which must not be larger than the memory)."""
        rows = (self.next_row + tf.range(tf.shape(labels)[0])) % self.size
        self.embeddings.scatter_nd_update(rows[:, None], tf.stop_gradient(tf.cast(embeddings, tf.float32)))
        self.labels.scatter_nd_update(rows[:, None], tf.cast(labels, tf.int32))
        self.next_row.assign((self.next_row + tf.shape(labels)[0]) % self.size)


def relational_distillation_loss(embeddings: tf.Tensor, teacher_vectors: tf.Tensor) -> tf.Tensor:
    """Park et al. 2019 (relational knowledge distillation), in cosine form: the student's cosine
    between every two images of the batch should equal the teachers'. `teacher_vectors` are rows
    whose dot products are the teachers' cosines (several teachers' embeddings side by side, each
    scaled by 1 / sqrt(teachers), give their mean), so teachers of any embedding size can teach."""
    student = tf.matmul(embeddings, embeddings, transpose_b=True)
    teacher = tf.matmul(teacher_vectors, teacher_vectors, transpose_b=True)
    off_diagonal = 1.0 - tf.eye(tf.shape(student)[0], dtype=student.dtype)
    return tf.reduce_sum(tf.square(student - teacher) * off_diagonal) / tf.reduce_sum(off_diagonal)


def embedding_distillation_loss(embeddings: tf.Tensor, teacher_embeddings: tf.Tensor) -> tf.Tensor:
    """1 - the mean cosine between each image's unit embedding and the teacher's of the same image:
    the student learns where the teacher puts each face, not only how far apart two faces are."""
    return 1.0 - tf.reduce_mean(tf.reduce_sum(embeddings * teacher_embeddings, axis=1))


def mine_pairs(embeddings: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, hard_fraction: float = 0.5):
    """Balanced pairs from a P x K batch: for every anchor one random positive and one negative,
    the nearest (hardest) negative for `hard_fraction` of the anchors, a random one otherwise.

    Returns (first, second, same) index and label vectors of length 2 x batch.
    """
    count = tf.shape(labels)[0]
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(count, dtype=tf.bool))
    noise = tf.random.stateless_uniform((3, count, count), seed)
    positive = tf.argmax(tf.where(tf.logical_and(same, not_self), noise[0], -1.0), axis=1, output_type=tf.int32)
    cosine = tf.matmul(embeddings, embeddings, transpose_b=True)
    hardest = tf.argmax(tf.where(same, -3.0, cosine), axis=1, output_type=tf.int32)
    random_negative = tf.argmax(tf.where(same, -1.0, noise[1]), axis=1, output_type=tf.int32)
    use_hard = noise[2][:, 0] < hard_fraction
    negative = tf.where(use_hard, hardest, random_negative)
    anchors = tf.range(count, dtype=tf.int32)
    first = tf.concat([anchors, anchors], axis=0)
    second = tf.concat([positive, negative], axis=0)
    is_same = tf.concat([tf.ones(count, tf.bool), tf.zeros(count, tf.bool)], axis=0)
    return first, second, is_same
