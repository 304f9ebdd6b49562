"""MTCNN run as compiled TensorFlow graphs: the `mtcnn` package's networks and weights, fast.

The package runs its three stages eagerly: a call on a 640x480 frame costs 140-270 ms on two
cores, most of it per-op overhead of its image pyramid. Here only the scheduling changes
(kiosk.mtcnn_rules keeps the package's rules):

- the whole pyramid (resize + PNet at every scale) is one `tf.function` call, traced once
  per frame size with a fixed signature, so nothing retraces frame after frame;
- RNet and ONet crop their patches with `tf.image.crop_and_resize` inside one compiled call
  each, with a dynamic batch dimension (one trace for any number of proposals).

The kiosk and training run the same networks without TensorFlow (kiosk.mtcnn_lite); this one
stays to compare against. tests/test_mtcnn_graph.py checks that boxes and landmarks agree with
the package on LFW.
"""
from __future__ import annotations

import numpy as np

from kiosk.mtcnn_rules import Cascade


class CompiledMTCNN(Cascade):
    """The cascade with its networks as compiled TensorFlow graphs."""

    def __init__(self, **settings) -> None:
        """`settings`: the Cascade's (min_face_size, thresholds, nms, min_face_fraction)."""
        super().__init__(**settings)
        import tensorflow as tf
        from mtcnn.network.onet import ONet
        from mtcnn.network.pnet import PNet
        from mtcnn.network.rnet import RNet
        from mtcnn.utils.tensorflow import load_weights

        self._tf = tf
        self._pnet, self._rnet, self._onet = PNet(), RNet(), ONet()
        for net, weights in ((self._pnet, "pnet.lz4"), (self._rnet, "rnet.lz4"), (self._onet, "onet.lz4")):
            net.build()
            net.set_weights(load_weights(weights))
        patch_signature = [
            tf.TensorSpec((1, None, None, 3), tf.float32),  # the normalised image
            tf.TensorSpec((None, 4), tf.float32),  # boxes as y1, x1, y2, x2 fractions
        ]
        self._rnet_graph = tf.function(self._patch_stage(self._rnet, 24), input_signature=patch_signature)
        self._onet_graph = tf.function(self._patch_stage(self._onet, 48), input_signature=patch_signature)
        self._pyramids: dict[tuple[int, int], object] = {}  # frame size -> its compiled pyramid

    def pyramid(self, height: int, width: int):
        """The compiled pyramid + PNet for one frame size."""
        levels = self.levels(height, width)
        with self._lock:
            compiled = self._pyramids.get((height, width))
            if compiled is None:
                compiled = self._pyramids[(height, width)] = self._compile_pyramid(height, width, levels)
        return compiled

    def _forget(self) -> None:
        self._pyramids = {size: compiled for size, compiled in self._pyramids.items()
                          if size in self._levels}

    def _compile_pyramid(self, height: int, width: int, levels):
        tf = self._tf

        def run(rgb):
            image = (tf.cast(rgb, tf.float32) - 127.5) / 128.0
            outputs = []
            for level_h, level_w, _ in levels:
                scaled = tf.image.resize(image, (level_h, level_w), method=tf.image.ResizeMethod.AREA)
                reg, prob = self._pnet(scaled)
                outputs.append((reg[0], prob[0, :, :, 1]))
            return image, outputs

        return tf.function(run, input_signature=[tf.TensorSpec((1, height, width, 3), tf.uint8)])

    @staticmethod
    def _patch_stage(network, size: int):
        import tensorflow as tf

        def run(image, boxes):
            patches = tf.image.crop_and_resize(image, boxes, tf.zeros(tf.shape(boxes)[0], tf.int32), (size, size))
            return network(patches)

        return run

    def _run_pnet(self, rgb: np.ndarray, levels) -> tuple[object, list]:
        image, outputs = self.pyramid(*rgb.shape[:2])(rgb[None])
        return image, [(reg.numpy(), prob.numpy()) for reg, prob in outputs]

    def _run_rnet(self, image, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offsets, probs = self._rnet_graph(image, boxes)
        return offsets.numpy(), probs.numpy()

    def _run_onet(self, image, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        offsets, landmarks, probs = self._onet_graph(image, boxes)
        return offsets.numpy(), landmarks.numpy(), probs.numpy()
