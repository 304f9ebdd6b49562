"""The Keras layers of the kiosk's saved models, registered so a model file loads with no other code.

A saved `.keras` model names its custom layers; loading it needs them registered first, which
importing this module does (kiosk.embedder imports it). The training package builds its
models from these same layers, so it never needs to be installed where the kiosk runs.
"""
from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="face_kiosk")
class L2Normalize(layers.Layer):
    """Unit-length embeddings: cosine similarity becomes a dot product."""

    def call(self, x):
        return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="face_kiosk")
class CropToEmbedding(layers.Layer):
    """Serving wrapper: uint8 aligned crops -> resized -> mean of crop and mirror embeddings."""

    def __init__(self, backbone: keras.Model, input_size: int, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.input_size = input_size

    def call(self, crops):
        embeddings = self.backbone(crops_and_mirrors(crops, self.input_size), training=False)
        count = ops.shape(crops)[0]
        summed = embeddings[:count] + embeddings[count:]
        return summed / ops.sqrt(ops.maximum(ops.sum(ops.square(summed), axis=-1, keepdims=True), 1e-12))

    def get_config(self):
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.backbone),
                "input_size": self.input_size}

    @classmethod
    def from_config(cls, config):
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def crops_and_mirrors(crops, input_size: int):
    """uint8 crops -> the backbone's input: the crops scaled to [0, 1] and resized, then their mirror images.

    The serving model and the kiosk's TFLite runtime (kiosk.embedder) both start here.
    """
    x = resize_crops(ops.cast(crops, "float32") / 255.0, input_size)
    return ops.concatenate([x, ops.flip(x, axis=2)], axis=0)


def resize_crops(x, size: int):
    """The one resize used by training and serving (area-like antialiased bilinear)."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    return ops.image.resize(x, (size, size), interpolation="bilinear", antialias=True)




@keras.saving.register_keras_serializable(package="face_kiosk")
class PaddedAdd(layers.Layer):
    """The sum of two feature maps of different sizes, as dlib's add_prev layer takes it: aligned at
    the top-left corner, with the rows, columns and channels one side lacks counted as zeros.

    dlib's face-recognition ResNet needs it where a strided convolution (no padding) and the 2x2
    average pooling of its shortcut round an even size differently (3x3 against 4x4).
    """

    def compute_output_shape(self, input_shapes):
        first, second = input_shapes
        return (first[0], *(max(a, b) for a, b in zip(first[1:], second[1:])))

    def call(self, inputs):
        first, second = inputs
        size = [max(a, b) for a, b in zip(first.shape[1:], second.shape[1:])]
        return _pad_to(first, size) + _pad_to(second, size)


def _pad_to(x, size: list[int]):
    """Zeros after the last row, column and channel of `x` (N x H x W x C) up to `size` (H, W, C)."""
    padding = [(0, 0)] + [(0, target - have) for have, target in zip(x.shape[1:], size)]
    return ops.pad(x, padding) if any(after for _, after in padding) else x
