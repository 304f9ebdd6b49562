"""dlib's face-recognition ResNet as a Keras model, with the weights of dlib's own model file.

The network is the one dlib's examples/dnn_face_recognition_ex.cpp defines (`anet_type`): a
150x150 RGB face chip, each pixel as (value - channel mean) / 256; a 7x7/2 convolution with 32
filters, affine, ReLU, 3x3/2 max pooling; residual levels of 32 (3 blocks), 64 (1 + 3), 128
(1 + 2), 256 (1 + 2) and 256 (1) filters, the first block of each level after the first
downsampling; global average pooling and a 128-unit fully connected layer without bias, whose
output is dlib's face descriptor (compared by Euclidean distance, 0.6 apart = different people).

- A block is conv 3x3 (stride 1, or 2 when downsampling) -> affine -> ReLU -> conv 3x3 -> affine.
- A residual block adds its input and applies ReLU (`ares`); a downsampling one (`ares_down`)
  adds its input average-pooled 2x2/2 instead. dlib pads nothing when a stride is not 1, so the
  two sides can differ in size (4x4 against 3x3 at the 256 level, from 8x8): dlib adds them
  aligned at the top-left corner, counting what one side lacks (rows, columns, channels) as zeros
  (kiosk.serving.PaddedAdd).
- dlib's `affine` layer is batch normalisation frozen after training: a scale and an offset per
  channel. Here a BatchNormalization layer with mean 0, variance 1 and epsilon 0 holds them,
  marked not trainable, so it stays an affine map in training and inference alike.

The weights come from `dlib_face_recognition_resnet_model_v1.dat` (dlib's author released it into
the public domain; trained on about 3 million faces of 7,485 people, with the identities of LFW
removed), which the `face-recognition-models` package ships; training.dlib_format reads it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from kiosk.serving import L2Normalize, PaddedAdd
from training.dlib_format import DlibFormatError, DlibLayer, read_network

CHIP_SIZE = 150  # dlib's input_rgb_image_sized<150>
DESCRIPTOR_SIZE = 128
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"


@dataclass(frozen=True)
class Op:
    """One layer of dnn_face_recognition_ex.cpp's network, from the input outwards."""

    kind: str  # con | affine | relu | max_pool | avg_pool | tag | skip | add_prev | fc
    name: str = ""
    filters: int = 0
    size: int = 0  # kernel or pooling window (0 for dlib's avg_pool_everything)
    stride: int = 1
    tag: int = 0  # for tag, skip and add_prev: dlib's tag1 / tag2

    @property
    def wrapper(self) -> str:
        """How dlib wraps it in the file: a computational layer, or a tag or skip layer."""
        return self.kind if self.kind in ("tag", "skip") else "layer"


def _block(filters: int, stride: int, name: str) -> list[Op]:
    """block<N,affine,stride>: con 3x3 /stride -> affine -> relu -> con 3x3 -> affine."""
    return [Op("con", f"{name}_conv1", filters, 3, stride), Op("affine", f"{name}_affine1"), Op("relu", f"{name}_relu1"),
            Op("con", f"{name}_conv2", filters, 3, 1), Op("affine", f"{name}_affine2")]


def _ares(filters: int, name: str) -> list[Op]:
    """relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>."""
    return [Op("tag", tag=1), *_block(filters, 1, name), Op("add_prev", f"{name}_add", tag=1), Op("relu", f"{name}_out")]


def _ares_down(filters: int, name: str) -> list[Op]:
    """relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>."""
    return [Op("tag", tag=1), *_block(filters, 2, name), Op("tag", tag=2), Op("skip", tag=1),
            Op("avg_pool", f"{name}_shortcut_pool", size=2, stride=2), Op("add_prev", f"{name}_add", tag=2),
            Op("relu", f"{name}_out")]


def _level(filters: int, blocks: int, down: bool, name: str) -> list[Op]:
    ops = _ares_down(filters, f"{name}_down") if down else []
    for index in range(blocks):
        ops += _ares(filters, f"{name}_block{index + 1}")
    return ops


# anet_type, input side first: alevel4 (3 x ares<32>), alevel3 (ares_down<64> + 3 x ares<64>), alevel2
# (ares_down<128> + 2 x ares<128>), alevel1 (ares_down<256> + 2 x ares<256>), alevel0 (ares_down<256>).
ARCHITECTURE: tuple[Op, ...] = (
    Op("con", "conv", 32, 7, 2), Op("affine", "conv_affine"), Op("relu", "conv_relu"),
    Op("max_pool", "conv_pool", size=3, stride=2),
    *_level(32, 3, False, "level4"), *_level(64, 3, True, "level3"), *_level(128, 2, True, "level2"),
    *_level(256, 2, True, "level1"), *_level(256, 0, True, "level0"),
    Op("avg_pool", "global_pool", size=0), Op("fc", "descriptor", DESCRIPTOR_SIZE),
)

_SERIALISED_NAMES = {"con": ("con_4", "con_5"), "affine": ("affine_",), "relu": ("relu_",), "max_pool": ("max_pool_2",),
                     "avg_pool": ("avg_pool_2",), "add_prev": ("add_prev_",), "fc": ("fc_2",)}


@dataclass(frozen=True)
class DlibWeights:
    """The model file's layers matched to ARCHITECTURE: the input's channel means and, per op
    name, that layer's details."""

    mean_rgb: tuple[float, float, float]
    layers: dict[str, DlibLayer]


def default_model_file() -> Path:
    """The model file the face-recognition-models package ships (the `train` extra installs it)."""
    try:
        import face_recognition_models
    except ImportError as exc:
        raise FileNotFoundError(f"{MODEL_FILE} comes with the face-recognition-models package: "
                                'pip install -e ".[train]"') from exc
    return Path(face_recognition_models.face_recognition_model_location())


def read_weights(path: str | Path | None = None) -> DlibWeights:
    """Read dlib's model file and check every layer against ARCHITECTURE (kinds, filters, kernel
    sizes, strides, dlib's padding rule): a file of another network fails here, not later."""
    path = Path(path) if path is not None else default_model_file()
    _, found = read_network(path, [op.wrapper for op in ARCHITECTURE])
    source, computational = found[0], [op for op in ARCHITECTURE if op.wrapper == "layer"]
    if source.name != "input_rgb_image_sized" or (source.settings["rows"], source.settings["columns"]) != (CHIP_SIZE,) * 2:
        raise DlibFormatError(f"{path}: the input is {source.name} {source.settings}, not a {CHIP_SIZE}x{CHIP_SIZE} RGB chip")
    if len(found) - 1 != len(computational):
        raise DlibFormatError(f"{path}: {len(found) - 1} layers, the network has {len(computational)}")
    matched = {}
    for op, layer in zip(computational, found[1:]):
        if layer.name not in _SERIALISED_NAMES[op.kind] or not _fits(op, layer):
            raise DlibFormatError(f"{path}: layer {op.name} ({op.kind}) is {layer.name} {layer.settings} in the file")
        matched[op.name] = layer
    return DlibWeights(tuple(source.settings["mean_rgb"]), matched)


def _fits(op: Op, layer: DlibLayer) -> bool:
    settings = layer.settings
    if op.kind == "con":
        # dlib pads size // 2 at stride 1 and nothing otherwise.
        padding = op.size // 2 if op.stride == 1 else 0
        return (settings["filters"], settings["size"], settings["stride"], settings["padding"]) == (
            op.filters, (op.size, op.size), (op.stride, op.stride), (padding, padding))
    if op.kind in ("max_pool", "avg_pool"):
        return (settings["size"], settings["stride"], settings["padding"]) == (
            (op.size, op.size), (op.stride, op.stride), (0, 0))
    if op.kind == "fc":
        return settings["outputs"] == op.filters and "bias" not in layer.tensors
    if op.kind == "affine":
        return settings["mode"] == 0  # one scale and offset per channel
    return True


def build_dlib_resnet(weights: DlibWeights | None = None, normalize: bool = True,
                      centre: np.ndarray | None = None) -> keras.Model:
    """150x150x3 crops, float in [0, 1] (the kiosk's serving convention: uint8 / 255) -> the
    128-d face descriptor: dlib's own numbers with `normalize=False`, unit length otherwise.

    `centre` (with `normalize`): the mean of the serving model's summed unit descriptors (crop +
    mirror) over training faces; half of it is taken off each unit descriptor, so that the serving
    model's sum is centred. dlib's unit descriptors of any two faces have a cosine of 0.8 or more;
    centred, strangers score around 0 and the same person near 1, the cosine's usual scale, on
    which the kiosk's ambiguity margin and the site's normal model of stranger scores were made.
    """
    weights = weights or read_weights()
    inputs = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), name="crop")
    # dlib: (pixel - mean) / 256 on 0..255 pixels; here pixel = 255 x.
    mean = np.asarray(weights.mean_rgb, np.float64)
    x = layers.Rescaling(255.0 / 256.0, offset=(-mean / 256.0).tolist(), name="dlib_input")(inputs)
    tags: dict[int, keras.KerasTensor] = {}
    built = []
    for op in ARCHITECTURE:
        if op.kind == "tag":
            tags[op.tag] = x
            continue
        if op.kind == "skip":
            x = tags[op.tag]
            continue
        layer = _keras_layer(op, x, tags)
        x = layer([x, tags[op.tag]]) if op.kind == "add_prev" else layer(x)
        built.append((op, layer))
    if normalize:
        x = L2Normalize(name="embedding")(x)
    shift = None
    if centre is not None:
        if not normalize:
            raise ValueError("centre applies to unit descriptors: build with normalize=True")
        shift = layers.Dense(DESCRIPTOR_SIZE, use_bias=True, trainable=False, name="centre")
        x = shift(x)
    model = keras.Model(inputs, x, name="dlib_resnet" if normalize else "dlib_resnet_descriptor")
    for op, layer in built:
        _set_weights(layer, op, weights.layers[op.name])
    if shift is not None:
        shift.set_weights([np.eye(DESCRIPTOR_SIZE, dtype=np.float32), (-np.asarray(centre, np.float32) / 2)])
    return model


def _keras_layer(op: Op, x, tags: dict) -> layers.Layer:
    if op.kind == "con":
        return layers.Conv2D(op.filters, op.size, strides=op.stride, padding="same" if op.stride == 1 else "valid",
                             name=op.name)
    if op.kind == "affine":
        return layers.BatchNormalization(epsilon=0.0, trainable=False, name=op.name)
    if op.kind == "relu":
        return layers.ReLU(name=op.name)
    if op.kind == "max_pool":
        return layers.MaxPooling2D(op.size, strides=op.stride, padding="valid", name=op.name)
    if op.kind == "avg_pool":
        if op.size == 0:
            return layers.GlobalAveragePooling2D(name=op.name)
        return layers.AveragePooling2D(op.size, strides=op.stride, padding="valid", name=op.name)
    if op.kind == "add_prev":
        same = tuple(x.shape[1:]) == tuple(tags[op.tag].shape[1:])
        return layers.Add(name=op.name) if same else PaddedAdd(name=op.name)
    if op.kind == "fc":
        return layers.Dense(op.filters, use_bias=False, name=op.name)
    raise ValueError(f"no Keras layer for {op.kind}")


def _set_weights(layer: layers.Layer, op: Op, found: DlibLayer) -> None:
    if op.kind == "con":
        kernel = found.tensors["kernel"].transpose(2, 3, 1, 0)  # filters x in x rows x cols -> rows x cols x in x filters
        layer.set_weights([kernel, found.tensors["bias"]])
    elif op.kind == "affine":
        gamma, beta = found.tensors["gamma"], found.tensors["beta"]
        layer.set_weights([gamma, beta, np.zeros_like(gamma), np.ones_like(gamma)])
    elif op.kind == "fc":
        layer.set_weights([found.tensors["kernel"]])
