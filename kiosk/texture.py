"""A hand-made face descriptor beside the network: LBP and LPQ histograms in patches around the face's landmarks.

Local binary patterns (Ojala et al., 2002) code each pixel by which of its 8 neighbours, 2 px
away, are at least as bright; the 58 "uniform" codes (at most two changes around the circle) and
one bin for all others are counted. Local phase quantisation (Ojansivu and Heikkilä, 2008) codes
each pixel by the signs of four low-frequency Fourier coefficients of its 7 x 7 neighbourhood
(256 codes), which blur leaves alone. Both codes are read twice: on the grey crop, and on the crop
after the illumination normalisation of Tan and Triggs (IEEE TIP 2010: gamma, a difference of
Gaussians, contrast equalisation), which flattens slow shading. All four are counted in 4 x 4
cells of 6 px around 14 points of the face (its five landmarks and nine points derived from them:
the eyes' and mouth's centres, brows, cheeks, halfway to the nose), at three sizes of the crop:
the high-dimensional LBP of Chen et al. (CVPR 2013). The patches follow the face's own landmarks
in the crop, not the template's: the aligner only matches the five points on average, and an eye
or a mouth corner off its template point by a few pixels would otherwise fall in another cell.
Fused with the network's cosine (kiosk.scoring.TextureFusionScoring), the grey crop's codes
raised the validation true accepts at the door's threshold from 52% (the network alone) to 77%;
the previous descriptor, a fixed grid of cells over the crop, took another run of the same recipe
from 53% to 72%; the normalised crop's codes beside them added 2.4 points more
(reports/recipe_search.md).

A face is described by the mean of its crop's histograms and its mirror image's (with the mirror
image's landmarks), so a face and its mirror image get one description, as they get one network
embedding (it embeds both).

About 423,000 numbers (kept as float16, here and in training alike), far more than the training
images: each cell's histogram is first reduced to its 8 main axes of variation among the training
images, then all of them together to the texture vector's (whitened and scaled to unit length):
the texture part of the kiosk's embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RADIUS = 2
BINS = 59  # 58 uniform patterns + 1 for the rest
LPQ_WINDOW = 7  # px; its lowest non-zero frequency is 1/7 cycle per pixel
LPQ_BINS = 256  # 8 sign bits
# Sides the grey crop is resized to: one patch covers an eye at 112 px, most of the face at 56.
PATCH_SCALES = (112, 80, 56)
PATCH_GRID = 4  # cells a side of a patch
PATCH_CELL = 6  # px a side of a cell
POINTS = 14  # patch centres a face (analysis_points)
CELL_AXES = 8  # main axes kept of each cell's histogram (16 took twice the file for no gain)
# Tan and Triggs's published settings: gamma, the inner and outer Gaussians' sigmas (px), and the
# exponent and cap of the two contrast-equalisation steps.
TT_GAMMA, TT_SIGMAS, TT_ALPHA, TT_TAU = 0.2, (1.0, 2.0), 0.1, 10.0
# A mirror image's landmarks in the aligner's order (image-left eye first): its left eye is the face's right.
MIRRORED_LANDMARKS = (1, 0, 2, 4, 3)
# Named in every fitted scoring file: a projection fitted on one descriptor is meaningless on another.
DESCRIPTOR = ("sqrt histograms: uniform LBP r2 and LPQ 7x7, of the grey crop and of its Tan-Triggs normalisation, "
              "in 4x4 cells of 6 px around 14 landmark points at 112/80/56 px; mean of the crop and its mirror "
              "(float16); 8 axes a cell")
# The square root of each count's frequency in a cell, looked up rather than computed for every bin.
_ROOT_FREQUENCY = np.sqrt(np.arange(PATCH_CELL ** 2 + 1).astype(np.float32) / PATCH_CELL ** 2)
# Neighbours clockwise from the top left, in steps of RADIUS.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _uniform_bins() -> np.ndarray:
    """Each 8-bit pattern's bin: its rank among the uniform patterns, or BINS - 1."""
    bins = np.full(256, BINS - 1, np.uint8)
    uniform = [code for code in range(256)
               if sum(((code >> i) & 1) != ((code >> ((i + 1) % 8)) & 1) for i in range(8)) <= 2]
    bins[uniform] = np.arange(len(uniform))
    return bins


_BIN_OF_CODE = _uniform_bins()


def lbp_codes(grey: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """N x H x W grey images -> N x (H - 2r) x (W - 2r) uniform-pattern bins (0..58)."""
    height, width = grey.shape[1:]
    centre = grey[:, radius:height - radius, radius:width - radius]
    code = np.zeros(centre.shape, np.uint8)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        y, x = radius + dy * radius, radius + dx * radius
        code |= (grey[:, y:y + centre.shape[1], x:x + centre.shape[2]] >= centre).astype(np.uint8) << bit
    return _BIN_OF_CODE[code]


def lpq_codes(grey: np.ndarray) -> np.ndarray:
    """N x H x W grey images -> N x H x W codes (0..255): bit 2k is set where the real part of the
    k-th Fourier coefficient of the pixel's 7 x 7 neighbourhood (border mirrored) is positive, bit
    2k + 1 where its imaginary part is; frequencies (a, 0), (0, a), (a, a), (a, -a), a = 1/7."""
    codes = np.zeros(np.shape(grey), np.uint8)
    for index, image in enumerate(np.asarray(grey, np.float32)):
        for bit, weights in enumerate(_LPQ_WEIGHTS):
            response = cv2.filter2D(image, cv2.CV_32F, weights, borderType=cv2.BORDER_REFLECT)
            # Not 0: on a flat patch every coefficient is 0 up to rounding, whose sign is noise.
            codes[index] |= (response > 1e-3).astype(np.uint8) << bit
    return codes


def _lpq_weights() -> list[np.ndarray]:
    """The real and imaginary parts of the four 7 x 7 Fourier windows, in code-bit order."""
    offsets = np.arange(LPQ_WINDOW) - LPQ_WINDOW // 2
    wave, flat = np.exp(-2j * np.pi * offsets / LPQ_WINDOW), np.ones(LPQ_WINDOW)
    windows = [np.outer(down, across) for down, across in ((flat, wave), (wave, flat), (wave, wave), (wave.conj(), wave))]
    return [part.astype(np.float32) for window in windows for part in (window.real, window.imag)]


_LPQ_WEIGHTS = _lpq_weights()


def tan_triggs(grey: np.ndarray) -> np.ndarray:
    """N x H x W grey images (0..255) -> their illumination normalisation (Tan and Triggs, 2010) on
    the same 0..255 scale: gamma compression, a difference of Gaussians (drops slow shading and the
    finest noise), then two contrast equalisations and a tanh that caps what stays extreme. A flat
    image comes out flat (127.5)."""
    out = np.empty(np.shape(grey), np.float32)
    inner, outer = TT_SIGMAS
    for index, image in enumerate(np.asarray(grey, np.float32)):
        compressed = np.power(image + 1.0, TT_GAMMA)
        band = cv2.GaussianBlur(compressed, (0, 0), inner) - cv2.GaussianBlur(compressed, (0, 0), outer)
        band /= max(float(np.mean(np.abs(band) ** TT_ALPHA)) ** (1 / TT_ALPHA), 1e-6)
        band /= max(float(np.mean(np.minimum(np.abs(band), TT_TAU) ** TT_ALPHA)) ** (1 / TT_ALPHA), 1e-6)
        out[index] = (np.tanh(band / TT_TAU) + 1.0) * 127.5
    return out


def analysis_points(landmarks: np.ndarray) -> np.ndarray:
    """N x 5 x 2 landmarks (x, y in crop pixels, the aligner's order) -> N x 14 x 2 patch centres: the
    five, the eyes' and the mouth's centres, halfway from each eye and from the mouth to the nose,
    the brows (above the eyes) and the cheeks (between each eye and mouth corner, a little out)."""
    landmarks = np.asarray(landmarks, np.float32)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must be N x 5 x 2, got {landmarks.shape}")
    left_eye, right_eye, nose, mouth_left, mouth_right = np.moveaxis(landmarks, 1, 0)
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    span = np.linalg.norm(right_eye - left_eye, axis=1, keepdims=True)
    up, out = np.array([0, -0.35], np.float32) * span, np.array([0.15, 0], np.float32) * span
    points = (left_eye, right_eye, nose, mouth_left, mouth_right, eyes, mouth, (left_eye + nose) / 2,
              (right_eye + nose) / 2, (nose + mouth) / 2, left_eye + up, right_eye + up,
              (left_eye + mouth_left) / 2 - out, (right_eye + mouth_right) / 2 + out)
    return np.stack(points, axis=1)


def patch_counts(codes: np.ndarray, centres: np.ndarray, bin_count: int) -> np.ndarray:
    """N x H x W codes, N x K x 2 patch centres (x, y in the code map's pixels) -> N x (K * 16) x
    bin_count uint8 counts of each code in each of each patch's 4 x 4 cells (36 pixels a cell); a
    patch that would leave the map is moved inside it."""
    count, height, width = codes.shape
    side = PATCH_GRID * PATCH_CELL
    corners = np.rint(np.asarray(centres) - side / 2).astype(np.int64)
    left = np.clip(corners[..., 0], 0, width - side)[..., None, None]
    top = np.clip(corners[..., 1], 0, height - side)[..., None, None]
    offsets = np.arange(side)
    patches = codes[np.arange(count)[:, None, None, None], top + offsets[:, None], left + offsets[None, :]]
    cell_of = (offsets // PATCH_CELL)[:, None] * PATCH_GRID + (offsets // PATCH_CELL)[None, :]
    patch_index = np.arange(patches.shape[0] * patches.shape[1]).reshape(patches.shape[:2])[..., None, None]
    index = (patch_index * PATCH_GRID ** 2 + cell_of) * bin_count + patches
    counts = np.bincount(index.ravel(), minlength=patch_index.size * PATCH_GRID ** 2 * bin_count)
    return counts.reshape(count, -1, bin_count).astype(np.uint8)


def face_histograms(crops: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, ...]:
    """The descriptor the projection is fitted on and applied to, as (N x cells x 59 LBP,
    N x cells x 256 LPQ) blocks of the grey crops, then the same two of their Tan-Triggs
    normalisation: square-rooted frequencies (the root makes a bin's noise independent of its
    count), the mean of each crop's and its mirror image's, as float16 (half the memory of thousands
    of faces in training). `landmarks`: N x 5 x 2, where each face's landmarks fall in its crop
    (kiosk.alignment.landmarks_in_crop)."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops must be N x S x S x 3 uint8, got {crops.shape} {crops.dtype}")
    landmarks = np.asarray(landmarks, np.float32)
    if landmarks.shape != (len(crops), 5, 2):
        raise ValueError(f"need 5 landmarks for each of the {len(crops)} crops, got {landmarks.shape}")
    mirrored = landmarks[:, MIRRORED_LANDMARKS].copy()
    mirrored[..., 0] = crops.shape[2] - 1 - mirrored[..., 0]
    own = _crop_histograms(crops, landmarks)
    mirror = _crop_histograms(crops[:, :, ::-1], mirrored)
    return tuple(((block + mirrored_block) / 2).astype(np.float16) for block, mirrored_block in zip(own, mirror))


def _crop_histograms(crops: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, ...]:
    grey = np.stack([cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) for crop in crops]).astype(np.float32)
    centres = analysis_points(landmarks) / crops.shape[2]  # as fractions of the crop
    blocks: list[list[np.ndarray]] = [[], [], [], []]  # LBP, LPQ, normalised LBP, normalised LPQ
    for side in PATCH_SCALES:
        resized = grey if side == grey.shape[1] else np.stack(
            [cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA) for image in grey])
        for offset, image in ((0, resized), (2, tan_triggs(resized))):
            # An LBP code map starts RADIUS px into the image; an LPQ map covers all of it.
            blocks[offset].append(patch_counts(lbp_codes(image), centres * side - RADIUS, BINS))
            blocks[offset + 1].append(patch_counts(lpq_codes(image), centres * side, LPQ_BINS))
    return tuple(_ROOT_FREQUENCY[np.concatenate(block, axis=1)] for block in blocks)



def _half(array: np.ndarray) -> np.ndarray:
    # Kept as float16 in the model's files (half the size) and fitted in that precision, so a
    # reloaded projection describes faces exactly as the fitted one did.
    return np.asarray(array).astype(np.float16).astype(np.float32)


@dataclass(frozen=True, eq=False)
class CellAxes:
    """One descriptor's cells -> each cell's histogram along that cell's main axes of variation."""

    mean: np.ndarray  # cells x bins
    axes: np.ndarray  # cells x bins x k, unit columns

    @classmethod
    def fit(cls, cells: np.ndarray, dimension: int = CELL_AXES) -> "CellAxes":
        """The top `dimension` principal axes of each cell among N x cells x bins training histograms
        (any float type: they are read in float32 a few cells at a time)."""
        cells = np.asarray(cells)
        if not 1 <= dimension <= cells.shape[2]:
            raise ValueError(f"cell dimension must be 1..{cells.shape[2]}, got {dimension}")
        means, axes = [], []
        for chunk in _cell_chunks(cells.shape[1]):
            part = cells[:, chunk].astype(np.float32)
            means.append(part.mean(axis=0))
            centred = np.moveaxis(part - means[-1], 1, 0)  # cells x N x bins
            scatter = np.matmul(centred.transpose(0, 2, 1), centred).astype(np.float64)
            axes.append(np.linalg.eigh(scatter)[1][:, :, ::-1][:, :, :dimension])
        return cls(np.concatenate(means), _half(np.concatenate(axes)))

    def project(self, cells: np.ndarray) -> np.ndarray:
        """N x cells x bins -> N x (cells * k)."""
        cells = np.asarray(cells)
        return np.concatenate([np.moveaxis(np.matmul(np.moveaxis(cells[:, chunk].astype(np.float32) - self.mean[chunk], 1, 0),
                                                     self.axes[chunk]), 0, 1).reshape(len(cells), -1)
                               for chunk in _cell_chunks(cells.shape[1])], axis=1)


def _cell_chunks(count: int, size: int = 64) -> list[slice]:
    # A few cells at a time: a centred copy of every cell of thousands of training faces would take GBs.
    return [slice(start, start + size) for start in range(0, count, size)]


def principal_axes(features: np.ndarray, dimension: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, D x d unit axes, d standard deviations along them) of the top `dimension` principal
    axes of N x D features, from whichever of the N x N and D x D products is smaller."""
    features = np.asarray(features, np.float32)
    count = len(features)
    if not 1 <= dimension < min(features.shape):
        raise ValueError(f"dimension must be 1..{min(features.shape) - 1}, got {dimension}")
    mean = features.mean(axis=0)
    centred = features - mean
    if count < features.shape[1]:
        eigenvalues, eigenvectors = np.linalg.eigh((centred @ centred.T).astype(np.float64))
        eigenvalues, eigenvectors = eigenvalues[::-1][:dimension], eigenvectors[:, ::-1][:, :dimension]
        axes = (centred.T @ eigenvectors.astype(np.float32)) / np.sqrt(eigenvalues).astype(np.float32)
    else:
        eigenvalues, axes = np.linalg.eigh((centred.T @ centred).astype(np.float64))
        eigenvalues, axes = eigenvalues[::-1][:dimension], axes[:, ::-1][:, :dimension]
    return mean, _half(axes), np.sqrt(eigenvalues / count).astype(np.float32)


@dataclass(frozen=True, eq=False)
class TextureProjection:
    """Histogram blocks -> unit vectors along their main axes of variation among training images:
    each cell reduced on its own, then all cells together, whitened."""

    cells: tuple[CellAxes, ...]  # one per block of face_histograms
    mean: np.ndarray  # D: the cells' reduced histograms, concatenated
    axes: np.ndarray  # D x d, each column a unit principal axis
    spread: np.ndarray  # d: the training images' standard deviation along each axis

    @classmethod
    def fit(cls, blocks: tuple[np.ndarray, ...], dimension: int,
            cell_dimension: int = CELL_AXES) -> tuple["TextureProjection", np.ndarray]:
        """(the projection fitted on these training histogram blocks, their N x d vectors under it):
        the cells are reduced once for both (for thousands of faces the reduction takes seconds)."""
        cells = tuple(CellAxes.fit(block, cell_dimension) for block in blocks)
        reduced = _reduced(cells, blocks)
        projection = cls(cells, *principal_axes(reduced, dimension))
        return projection, projection._unit_whitened(reduced)

    def vectors(self, blocks: tuple[np.ndarray, ...]) -> np.ndarray:
        """N x d unit vectors: whitened projections of the histogram blocks."""
        return self._unit_whitened(_reduced(self.cells, blocks))

    def _unit_whitened(self, reduced: np.ndarray) -> np.ndarray:
        whitened = (reduced - self.mean) @ self.axes / self.spread
        return whitened / np.maximum(np.linalg.norm(whitened, axis=1, keepdims=True), 1e-12)

    def describe(self, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """N x d unit texture vectors of aligned crops, given where their landmarks are in them."""
        return self.vectors(face_histograms(crops, landmarks))

    @property
    def dimension(self) -> int:
        return self.axes.shape[1]


def texture_in_words(texture: TextureProjection) -> str:
    """What a fitted projection is, for model cards and run summaries."""
    return (f"LBP and LPQ histograms of the grey crop and of its Tan-Triggs normalisation around {POINTS} landmark points of the crop and its mirror image, each "
            f"cell's reduced to its {texture.cells[0].axes.shape[2]} principal axes, then {texture.dimension} "
            f"principal axes of them all, among the training images")


def _reduced(cells: tuple[CellAxes, ...], blocks: tuple[np.ndarray, ...]) -> np.ndarray:
    if len(cells) != len(blocks):
        raise ValueError(f"the projection has {len(cells)} histogram blocks, got {len(blocks)}")
    return np.concatenate([cell.project(block) for cell, block in zip(cells, blocks)], axis=1)
