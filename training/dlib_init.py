"""dlib's face-recognition ResNet as a recipe's starting point (`Recipe(init="dlib")`).

- The network: dlib's ResNet with dlib's weights (training.dlib_resnet), its 128-d descriptor
  followed by a small embedding head, a 128x128 linear map initialised to the identity, then unit
  length: untrained, it embeds exactly as the converted backbone does. `freeze` trains that head
  only; fine-tuning trains dlib's convolutions and descriptor layer too (at the recipe's
  `backbone_learning_rate`), while dlib's affine layers (its batch norm, frozen after dlib's
  training) stay as dlib left them.
- The crops: 150 px, aligned by the kiosk's aligner onto the template that reproduces dlib's own
  face chips (training.dlib_export.fitted_template, fitted on DevTrain images), for the View 1
  images the split needs: every image of the DevTrain people it can train or hold out, and the
  images of the DevTest pairs.
"""
from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from kiosk.serving import L2Normalize
from training.dlib_resnet import DESCRIPTOR_SIZE, build_dlib_resnet, read_weights
from training.lfw import LFW, ImageRef
from training.prepare import PreparedLFW, prepare

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
    from training.dlib_export import fitted_template

    spec, _ = fitted_template(lfw, cache_dir)
    return prepare(lfw, cache_dir, spec, refs=view1_refs(lfw, min_images))

