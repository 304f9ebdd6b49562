"""dlib's face-recognition ResNet as a recipe's starting point (`Recipe(init="dlib")`).

- The network: dlib's ResNet with dlib's weights (training.dlib_resnet), its 128-d descriptor
  followed by a small embedding head, a 128x128 linear map initialised to the identity, then unit
  length: untrained, it embeds exactly as the converted backbone does. `freeze` trains that head
  only; fine-tuning trains dlib's convolutions and descriptor layer too (at the recipe's
  `backbone_learning_rate`), while dlib's affine layers (its batch norm, frozen after dlib's
  training) stay as dlib left them.
- Its crops: training.dlib_crops.
"""
from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from kiosk.serving import L2Normalize
from training.dlib_resnet import DESCRIPTOR_SIZE, build_dlib_resnet, read_weights

HEAD = "embedding_dense"  # the one layer a frozen dlib backbone trains


def build_dlib_backbone(model_file: str | Path | None = None) -> keras.Model:
    """150x150x3 crops in [0, 1] -> unit embeddings: dlib's network with dlib's weights, then the
    identity-initialised embedding head."""
    dlib = build_dlib_resnet(read_weights(model_file), normalize=False)
    head = layers.Dense(DESCRIPTOR_SIZE, use_bias=False, kernel_initializer="identity", name=HEAD)
    outputs = L2Normalize(name="embedding")(head(dlib.output))
    return keras.Model(dlib.input, outputs, name="dlib_backbone")


def freeze_all_but_head(backbone: keras.Model) -> None:
    for layer in backbone.layers:
        layer.trainable = layer.name == HEAD


def head_variables(backbone: keras.Model) -> list:
    """The trainable variables that are not dlib's (they learn at the recipe's own learning rate)."""
    return list(backbone.get_layer(HEAD).trainable_variables)

