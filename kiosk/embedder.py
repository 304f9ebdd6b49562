"""Load the model with its card and turn aligned crops into unit embeddings.

Two runtimes give the same embeddings. The TFLite copy of the backbone that export writes
beside the `.keras` file runs on LiteRT's XNNPACK kernels, over 2x faster for one face on a
CPU (reports/tflite.md); the `.keras` model is used where the card lists no TFLite file or
LiteRT is not installed (pyproject.toml installs it only where it publishes wheels), or when
asked for. A model given as its `.tflite` file (the shipped one: float16 weights, half the
size) runs on TFLite alone, with TensorFlow's own interpreter where LiteRT is missing.

Where the card's scoring fuses a hand-made texture descriptor with the network
(kiosk.scoring.TextureFusionScoring), the embedding holds both, whichever runtime made the
network's part.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from kiosk.litert import LiteModelError, allocate, open_interpreter
from kiosk.modelcard import TFLITE_SUFFIX, ModelCard, ModelCardError, default_model_path

RUNTIMES = ("auto", "tflite", "keras")


class Embedder:
    """Aligned uint8 crops (N x S x S x 3, S from the card) -> N x D float32 unit vectors, and the
    scoring the card's threshold was set for."""

    def __init__(self, model_path: str | os.PathLike | None = None, runtime: str = "auto") -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
        self.card = ModelCard.load(model_path or default_model_path())
        self.runtime = _chosen_runtime(self.card, runtime)
        self._embed = LiteEmbedding.of_card(self.card) if self.runtime == "tflite" else _keras_embedding(self.card)
        self.scoring = self.card.load_scoring()

    @property
    def crop_size(self) -> int:
        return self.card.alignment.size

    def embed_crops(self, crops: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """`landmarks` (N x 5 x 2): where each face's landmarks fall in its crop
        (kiosk.alignment.landmarks_in_crop), which the texture descriptor follows; None for crops
        whose landmarks are unknown: the template's points, where the aligner puts them on average."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        expected = (self.crop_size, self.crop_size, 3)
        if crops.shape[1:] != expected or crops.dtype != np.uint8:
            raise ValueError(f"crops must be N x {expected} uint8, got {crops.shape} {crops.dtype}")
        if len(crops) == 0:
            return np.zeros((0, self.card.embedding_size), np.float32)
        if landmarks is None:
            landmarks = np.broadcast_to(self.card.alignment.template(), (len(crops), 5, 2))
        return self.scoring.extend(np.asarray(self._embed(crops), dtype=np.float32), crops, landmarks)


def _litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def _chosen_runtime(card: ModelCard, runtime: str) -> str:
    if card.path.suffix == TFLITE_SUFFIX:  # a TFLite-only model (the shipped one): nothing else to run
        if runtime == "keras":
            raise ModelCardError(f"{card.path} is a TFLite model; the keras runtime needs the model's .keras file")
        return "tflite"
    if runtime == "keras":
        return "keras"
    available = _litert_available()
    if runtime == "auto":
        return "tflite" if available and card.tflite_path is not None else "keras"
    return "tflite"


def _keras_embedding(card: ModelCard):
    tf = _tensorflow(f"{card.path}: a .keras model")
    import keras

    import kiosk.serving  # noqa: F401  registers the custom layers the saved model uses

    try:
        model = keras.saving.load_model(card.path, compile=False)
    except Exception as exc:  # keras raises many types for a damaged file
        raise ModelCardError(f"{card.path}: cannot load the model ({exc})") from exc
    size = card.alignment.size
    # One fixed signature: no retracing whatever the batch size.
    return tf.function(lambda crops: model(crops, training=False),
                       input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])


def _tensorflow(what: str):
    """TensorFlow, or ModelCardError saying that `what` needs it (the kiosk's own model does not)."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ModelCardError(f"{what} needs TensorFlow, which is not installed: pip install 'face-kiosk[train]' "
                             "(the shipped TFLite model runs without it)") from exc
    return tf


def _scaled_and_mirrored(crops: np.ndarray) -> np.ndarray:
    """kiosk.serving.crops_and_mirrors where no resize is needed, in NumPy."""
    x = np.asarray(crops, np.float32) / np.float32(255.0)
    return np.concatenate([x, x[:, :, ::-1]], axis=0)


def _resized_and_mirrored(input_size: int, crop_size: int):
    tf = _tensorflow(f"a model whose input ({input_size} px) is not its crop size ({crop_size} px)")

    from kiosk.serving import crops_and_mirrors

    return tf.function(lambda crops: crops_and_mirrors(crops, input_size),
                       input_signature=[tf.TensorSpec([None, crop_size, crop_size, 3], tf.uint8)])


class LiteEmbedding:
    """What the `.keras` serving model does, with its backbone on LiteRT: scale, resize and mirror,
    backbone (TFLite), sum and normalise. `input_size`: the backbone's input side; `crop_size`: the
    aligned crops' side. Where the two differ the resize is the model's own TensorFlow op (exactly
    the training's); where they are equal (the shipped model) nothing here imports TensorFlow."""

    def __init__(self, path: Path, input_size: int, crop_size: int) -> None:
        try:
            self._interpreter = open_interpreter(path)
        except LiteModelError as exc:
            raise ModelCardError(str(exc)) from exc
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._rows = 0  # the batch the interpreter's tensors are allocated for
        self._lock = threading.Lock()  # an interpreter must not run two batches at once
        self._prepare = _scaled_and_mirrored if input_size == crop_size else _resized_and_mirrored(input_size, crop_size)

    @classmethod
    def of_card(cls, card: ModelCard) -> "LiteEmbedding":
        return cls(card.verified_tflite_path(), int(card.raw["tflite"]["input_size"]), card.alignment.size)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        both = np.asarray(self._prepare(crops))
        with self._lock:
            if len(both) != self._rows:
                self._interpreter.resize_tensor_input(self._input, list(both.shape))
                allocate(self._interpreter)
                self._rows = len(both)
            self._interpreter.set_tensor(self._input, both)
            self._interpreter.invoke()
            embedded = self._interpreter.get_tensor(self._output)
            summed = embedded[:len(crops)] + embedded[len(crops):]  # a new array: the next invoke reuses `embedded`
        return summed / np.sqrt(np.maximum(np.sum(np.square(summed), axis=1, keepdims=True), 1e-12))
