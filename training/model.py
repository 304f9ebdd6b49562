"""The embedding network and the heads that turn it into a Siamese model.

`build_backbone` maps a face crop to an L2-normalised embedding: a small residual CNN sized
for a CPU kiosk (about a million weights, a few MB). `build_serving_model` wraps it for the
kiosk: it takes the aligner's crop (uint8, any size), resizes it to the network's input,
embeds the crop and its mirror image and returns the normalised sum, so the kiosk does no
preprocessing of its own.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import keras
from keras import layers, ops

# The serving layers live in the kiosk, which loads saved models without this package.
from kiosk.serving import CropToEmbedding, L2Normalize, crops_and_mirrors, resize_crops  # noqa: F401
from training.recipe import DLIB_INIT, Recipe


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, name: str = ""):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.PReLU(shared_axes=[1, 2], name=f"{name}_act")(x)


def _residual_block(x, filters: int, strides: int, name: str):
    """Pre-activation-free basic block (two 3x3 convolutions) with a projection when the shape changes."""
    shortcut = x
    y = _conv_bn(x, filters, 3, strides, name=f"{name}_a")
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
    y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return layers.PReLU(shared_axes=[1, 2], name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def build_backbone(
    input_size: int = 64,
    embedding_size: int = 128,
    widths: tuple[int, ...] = (32, 64, 128, 160),
    blocks: tuple[int, ...] = (1, 2, 2, 1),
    dropout: float = 0.2,
    mixed_precision: bool = False,
) -> keras.Model:
    """Crop (input_size x input_size x 3, float in [0, 1]) -> unit embedding.

    With `mixed_precision` the convolutions compute in bfloat16 (for training speed); the weights
    are float32 either way, so its weights load into a float32 backbone of the same shape.
    """
    with _dtype_policy("mixed_bfloat16" if mixed_precision else "float32"):
        return _backbone(input_size, embedding_size, widths, blocks, dropout)


def recipe_backbone(recipe: Recipe, mixed_precision: bool = False) -> keras.Model:
    """The network `recipe` trains: dlib's ResNet with dlib's weights and an identity embedding head
    (training.dlib_init) for `init="dlib"`, else this project's network, freshly initialised."""
    if recipe.init == DLIB_INIT:
        from training.dlib_init import build_dlib_backbone  # reads dlib's model file: only when asked for

        return build_dlib_backbone()
    return build_backbone(recipe.input_size, recipe.embedding_size, tuple(recipe.widths), mixed_precision=mixed_precision)


@contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _backbone(input_size: int, embedding_size: int, widths: tuple[int, ...], blocks: tuple[int, ...],
              dropout: float) -> keras.Model:
    inputs = keras.Input((input_size, input_size, 3), name="crop")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_unit_range")(inputs)
    # A strided stem: the first residual stage then works at a quarter of the pixels, which is
    # most of the difference between trainable and not on two CPU cores.
    x = _conv_bn(x, widths[0], 3, 2, name="stem")
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        for index in range(count):
            x = _residual_block(x, width, 2 if index == 0 else 1, name=f"s{stage}b{index}")
    # A depthwise convolution over the whole final map ("global depthwise" pooling) keeps
    # where on the face a feature was, which plain average pooling throws away.
    x = layers.DepthwiseConv2D(x.shape[1], padding="valid", use_bias=False, name="gdc")(x)
    x = layers.BatchNormalization(name="gdc_bn")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    # The embedding itself is float32 under any policy: the losses' margins and scale need its precision.
    x = layers.Dense(embedding_size, use_bias=False, name="embedding_dense", dtype="float32")(x)
    x = layers.BatchNormalization(name="embedding_bn", dtype="float32")(x)
    outputs = L2Normalize(name="embedding", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="backbone")


class PairHead(layers.Layer):
    """The original study's pair head: |a - b| -> dense -> sigmoid = P(same person)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(1, activation="sigmoid", name="same_probability")

    def build(self, input_shape):
        self.dense.build(input_shape[0])

    def call(self, inputs):
        a, b = inputs
        return ops.squeeze(self.dense(ops.abs(a - b)), axis=-1)


class CosineClassifier(layers.Layer):
    """Class weights on the unit sphere: logits are cosines, ready for a margin loss."""

    def __init__(self, classes: int, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.classes), initializer="glorot_normal", name="kernel")

    def call(self, embeddings):
        kernel = self.kernel / ops.sqrt(ops.maximum(ops.sum(ops.square(self.kernel), axis=0, keepdims=True), 1e-12))
        return ops.matmul(embeddings, kernel)


def build_serving_model(backbone: keras.Model, crop_size: int) -> keras.Model:
    """uint8 crops (N x crop_size x crop_size x 3) -> unit embeddings (N x D)."""
    inputs = keras.Input((crop_size, crop_size, 3), dtype="uint8", name="aligned_crop")
    outputs = CropToEmbedding(backbone, backbone.input_shape[1], name="embedder")(inputs)
    return keras.Model(inputs, outputs, name="face_embedder")
