"""Load the Siamese model with its card and turn aligned crops into unit embeddings."""
from __future__ import annotations

import os

import numpy as np

from kiosk.modelcard import ModelCard, ModelCardError, default_model_path


class Embedder:
    """Aligned uint8 crops (N x S x S x 3, S from the card) -> N x D float32 unit vectors."""

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        self.card = ModelCard.load(model_path or default_model_path())
        import keras
        import tensorflow as tf

        import training.model  # noqa: F401  registers the custom layers the saved model uses

        try:
            self._model = keras.saving.load_model(self.card.path, compile=False)
        except Exception as exc:  # keras raises many types for a damaged file
            raise ModelCardError(f"{self.card.path}: cannot load the model ({exc})") from exc
        size = self.card.alignment.size
        # One fixed signature: no retracing whatever the batch size.
        self._embed = tf.function(
            lambda crops: self._model(crops, training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
        )

    @property
    def crop_size(self) -> int:
        return self.card.alignment.size

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        expected = (self.crop_size, self.crop_size, 3)
        if crops.shape[1:] != expected or crops.dtype != np.uint8:
            raise ValueError(f"crops must be N x {expected} uint8, got {crops.shape} {crops.dtype}")
        if len(crops) == 0:
            return np.zeros((0, self.card.embedding_size), np.float32)
        return np.asarray(self._embed(crops), dtype=np.float32)
