"""A hand-made face descriptor beside the network: multi-scale LBP histograms of the aligned crop.

Local binary patterns (Ojala et al., 2002) code each pixel by which of its 8 neighbours, 2 px
away, are at least as bright; the 58 "uniform" codes (at most two changes around the circle) and
one bin for all others are counted in a grid of cells, at four sizes of the crop (the
high-dimensional LBP of Chen et al., CVPR 2013, on a grid rather than around landmarks, since
the crop is already aligned). Its mistakes are not the network's: fused with the network's
cosine (kiosk.scoring.TextureFusionScoring) it raised the true accepts at the door's threshold
more than any network change or ensemble of networks (reports/recipe_search.md, session 9).

The histograms (about 12,000 numbers) are projected onto their principal axes among the training
images, whitened and scaled to unit length: the texture part of the kiosk's embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RADIUS = 2
# (side the grey crop is resized to, cell side) in pixels: fine cells see the eyes' and mouth's
# shapes, coarse ones the face's layout.
SCALES = ((112, 10), (80, 10), (56, 8), (40, 8))
BINS = 59  # 58 uniform patterns + 1 for the rest
# Neighbours clockwise from the top left, in steps of RADIUS.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _uniform_bins() -> np.ndarray:
    """Each 8-bit pattern's bin: its rank among the uniform patterns, or BINS - 1."""
    bins = np.full(256, BINS - 1, np.int64)
    uniform = [code for code in range(256)
               if sum(((code >> i) & 1) != ((code >> ((i + 1) % 8)) & 1) for i in range(8)) <= 2]
    bins[uniform] = np.arange(len(uniform))
    return bins


_BIN_OF_CODE = _uniform_bins()


def lbp_codes(grey: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """N x H x W grey images -> N x (H - 2r) x (W - 2r) uniform-pattern bins (0..58)."""
    height, width = grey.shape[1:]
    centre = grey[:, radius:height - radius, radius:width - radius]
    code = np.zeros(centre.shape, np.int64)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        y, x = radius + dy * radius, radius + dx * radius
        code |= (grey[:, y:y + centre.shape[1], x:x + centre.shape[2]] >= centre).astype(np.int64) << bit
    return _BIN_OF_CODE[code]


def cell_histograms(bins: np.ndarray, cell: int) -> np.ndarray:
    """N x H x W bins -> N x (cells * 59) frequencies in non-overlapping cell x cell squares
    (rows and columns that do not fill a whole cell are left out)."""
    count, height, width = bins.shape
    rows, columns = height // cell, width // cell
    bins = bins[:, :rows * cell, :columns * cell]
    cell_of = (np.arange(rows * cell) // cell)[:, None] * columns + (np.arange(columns * cell) // cell)[None, :]
    index = (np.arange(count)[:, None, None] * (rows * columns) + cell_of[None]) * BINS + bins
    counts = np.bincount(index.ravel(), minlength=count * rows * columns * BINS)
    return counts.reshape(count, rows * columns * BINS).astype(np.float32) / (cell * cell)


def lbp_histograms(crops: np.ndarray, scales=SCALES, radius: int = RADIUS) -> np.ndarray:
    """N x S x S x 3 uint8 RGB crops -> N x D float32: the square roots of every cell's pattern
    frequencies at every scale (the root makes a bin's noise independent of its count)."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops must be N x S x S x 3 uint8, got {crops.shape} {crops.dtype}")
    grey = np.stack([cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) for crop in crops]).astype(np.float32)
    parts = []
    for side, cell in scales:
        resized = grey if side == grey.shape[1] else np.stack(
            [cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA) for image in grey])
        parts.append(cell_histograms(lbp_codes(resized, radius), cell))
    return np.sqrt(np.concatenate(parts, axis=1))


@dataclass(frozen=True, eq=False)
class TextureProjection:
    """LBP histograms -> unit vectors along their main axes of variation among training images."""

    mean: np.ndarray  # D
    axes: np.ndarray  # D x d, each column a unit principal axis
    spread: np.ndarray  # d: the training images' standard deviation along each axis

    @classmethod
    def fit(cls, histograms: np.ndarray, dimension: int) -> "TextureProjection":
        """The top `dimension` principal axes of N x D training histograms (N far below D: found
        from the N x N Gram matrix, which is much cheaper than the D x D covariance)."""
        histograms = np.asarray(histograms, np.float32)
        if not 1 <= dimension < min(histograms.shape):
            raise ValueError(f"dimension must be 1..{min(histograms.shape) - 1}, got {dimension}")
        mean = histograms.mean(axis=0)
        centred = histograms - mean
        eigenvalues, eigenvectors = np.linalg.eigh((centred @ centred.T).astype(np.float64))
        eigenvalues, eigenvectors = eigenvalues[::-1][:dimension], eigenvectors[:, ::-1][:, :dimension]
        # Kept as float16 in the model's files (half the size); fitted in the same precision, so a
        # reloaded projection describes faces exactly as the fitted one did.
        axes = ((centred.T @ eigenvectors.astype(np.float32)) / np.sqrt(eigenvalues).astype(np.float32))
        return cls(mean, axes.astype(np.float16).astype(np.float32),
                   np.sqrt(eigenvalues / len(histograms)).astype(np.float32))

    def vectors(self, histograms: np.ndarray) -> np.ndarray:
        """N x d unit vectors: whitened projections of the histograms."""
        whitened = (np.asarray(histograms, np.float32) - self.mean) @ self.axes / self.spread
        return whitened / np.maximum(np.linalg.norm(whitened, axis=1, keepdims=True), 1e-12)

    def describe(self, crops: np.ndarray) -> np.ndarray:
        """N x d unit texture vectors of aligned crops."""
        return self.vectors(lbp_histograms(crops))

    @property
    def dimension(self) -> int:
        return self.axes.shape[1]
