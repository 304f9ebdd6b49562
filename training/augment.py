"""Training-time augmentation that imitates what a kiosk webcam does to an aligned face crop.

The kiosk's aligner already puts the eyes and mouth in fixed places, so the geometric part
only has to cover its small residual errors (a few degrees of roll, a few percent of scale
and shift), and the photometric part covers what the camera adds: exposure and white
balance, soft focus, sensor noise, JPEG compression, the odd greyscale or IR frame.

Everything works on ONE image (HxWx3 float32 in [0, 1]) inside a ``tf.data`` map, so it runs
on the input pipeline's threads beside training, and it is cheap:

* the geometry (flip, rotation, scale and shift about the centre) is a single bilinear
  affine warp with reflect padding (``ImageProjectiveTransformV3``), never several resamples;
* saturation, hue and greyscale are one 3x3 colour matrix (a rotation and scaling of the
  chroma plane in YIQ, which leaves luma alone), and together with contrast and brightness
  they become one matrix product plus an offset;
* blur and JPEG run only when their coin comes up (``tf.cond``), so they cost nothing
  the rest of the time;
* sensor noise is one Gaussian value per pixel shared by the three channels (luma grain,
  which is what a webcam's denoiser and 4:2:0 JPEG leave; half the cost of per-channel noise);
* a stage whose setting is off is not even put in the graph.

Randomness: with a ``seed`` (shape-[2] int tensor) every draw is a stateless op derived from
it, so one (seed, image) pair always gives the same output, whatever thread or order the
pipeline uses; ``tf.data.Dataset.random(seed).batch(2)`` zipped with the images gives a
reproducible pipeline.  Without a seed a fresh seed is drawn from the (stateful) global
generator, so every call differs.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np
import tensorflow as tf

from kiosk.alignment import REFERENCE_LANDMARKS_112

__all__ = ["AugmentConfig", "NO_AUGMENTATION", "augment_image", "make_augmenter"]

# Padding of the affine warp: mirrors the crop (d c b a | a b c d), so a rotated or shifted
# face never gets black wedges the model could learn to look for.
FILL_MODE = "REFLECT"
BLUR_SIGMA_RANGE = (0.3, 1.2)
JPEG_QUALITY_RANGE = (35, 90)          # inclusive
# An occluder covers this fraction of the crop, with a width/height ratio in OCCLUSION_ASPECT_RANGE
# (random erasing, Zhong et al. 2017, with a flat colour: a hand or a phone is smooth, and the
# blur, noise and JPEG stages that follow give it a camera's texture).
OCCLUSION_AREA_RANGE = (0.02, 0.2)
OCCLUSION_ASPECT_RANGE = (0.3, 3.3)
# Sunglasses: two dark elliptical lenses centred on the eyes where the kiosk's aligner puts them
# (training crops are always made with the default template, no margin), half-axes as fractions
# of the crop, scaled together by a factor in SUNGLASSES_SCALE_RANGE; lenses are dark, slightly
# tinted and let a little of the eye through. Sunglasses were on 7 of the 24 lowest-scored
# same-person DevTest pairs, and nothing else in the pipeline draws them; a fifth of
# the images with lenses did not help on validation (reports/recipe_search.md), so it is off by default.
SUNGLASSES_EYES = REFERENCE_LANDMARKS_112[:2] / 112.0
SUNGLASSES_HALF_AXES = (0.15, 0.10)
SUNGLASSES_SCALE_RANGE = (0.9, 1.25)
SUNGLASSES_SHADE_RANGE = (0.0, 0.25)
SUNGLASSES_OPACITY_RANGE = (0.75, 1.0)
# Taps either side of the blur kernel's centre: 3.3 sigma at the largest sigma.
_BLUR_RADIUS = math.ceil(3 * BLUR_SIGMA_RANGE[1])

# RGB -> YIQ, the same matrix as tf.image.rgb_to_yiq.  Y is luma; hue is an angle and
# saturation a length in the I-Q plane.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.59590059, -0.27455667, -0.32134392],
                        [0.21153661, -0.52273617, 0.31119955]], dtype=np.float64)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


@dataclass(frozen=True)
class AugmentConfig:
    """How strongly to augment; every stage is off when its setting is 0 (or (1, 1))."""

    flip: bool = True
    max_rotation_deg: float = 8.0
    scale_range: tuple[float, float] = (0.92, 1.08)
    max_shift_frac: float = 0.05          # of the crop size
    brightness: float = 0.15              # max additive delta
    contrast: tuple[float, float] = (0.75, 1.25)
    saturation: tuple[float, float] = (0.7, 1.3)
    hue: float = 0.03                     # max shift, as a fraction of the full hue circle
    blur_prob: float = 0.2                # Gaussian blur with sigma uniform in (0.3, 1.2)
    noise_std: float = 0.02               # max std of Gaussian sensor noise (std itself drawn uniformly in [0, noise_std]); per pixel, shared by the channels
    jpeg_prob: float = 0.3                # re-encode as JPEG with quality in (35, 90)
    grayscale_prob: float = 0.05
    occlusion_prob: float = 0.0           # a flat-coloured rectangle over 2-20% of the crop (hand, phone, scarf)
    sunglasses_prob: float = 0.0          # dark lenses over both eyes (drawn before the pose warp: worn, they move with the face)

    def __post_init__(self) -> None:
        # Accept lists (a config read back from JSON) but store tuples, so the config stays hashable.
        for name in ("scale_range", "contrast", "saturation"):
            value = getattr(self, name)
            try:
                low, high = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"{name} must be a finite (low, high) pair with low <= high, got {value!r}")
            object.__setattr__(self, name, (low, high))
        if self.scale_range[0] <= 0:
            raise ValueError(f"scale_range must be positive, got {self.scale_range!r}")
        for name in ("contrast", "saturation"):
            if getattr(self, name)[0] < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        for name in ("max_rotation_deg", "max_shift_frac", "brightness", "hue", "noise_std"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.max_rotation_deg > 180:
            raise ValueError(f"max_rotation_deg must be at most 180, got {self.max_rotation_deg!r}")
        if self.hue > 0.5:
            raise ValueError(f"hue must be at most 0.5 (half the hue circle), got {self.hue!r}")
        for name in ("blur_prob", "jpeg_prob", "grayscale_prob", "occlusion_prob", "sunglasses_prob"):
            value = getattr(self, name)
            if not (_is_number(value) and 0 <= value <= 1):
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be True or False, got {self.flip!r}")

    # Which stages are on; a stage that is off is left out of the graph.
    @property
    def geometric(self) -> bool:
        """Whether anything needs the affine warp (a flip alone does not)."""
        return self.max_rotation_deg > 0 or self.scale_range != (1.0, 1.0) or self.max_shift_frac > 0

    @property
    def colour(self) -> bool:
        return (self.brightness > 0 or self.contrast != (1.0, 1.0) or self.saturation != (1.0, 1.0)
                or self.hue > 0 or self.grayscale_prob > 0)

    @property
    def is_identity(self) -> bool:
        """True when the config leaves every image unchanged."""
        return (not self.flip and not self.geometric and not self.colour and self.blur_prob == 0
                and self.noise_std == 0 and self.jpeg_prob == 0 and self.occlusion_prob == 0
                and self.sunglasses_prob == 0)

    def to_dict(self) -> dict:
        """Plain JSON-ready values (pairs as lists); ``from_dict`` reads it back."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> AugmentConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown augmentation settings: {', '.join(sorted(unknown))}")
        return cls(**values)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


NO_AUGMENTATION = AugmentConfig(
    flip=False, max_rotation_deg=0.0, scale_range=(1.0, 1.0), max_shift_frac=0.0, brightness=0.0,
    contrast=(1.0, 1.0), saturation=(1.0, 1.0), hue=0.0, blur_prob=0.0, noise_std=0.0, jpeg_prob=0.0,
    grayscale_prob=0.0, occlusion_prob=0.0, sunglasses_prob=0.0,
)


def augment_image(image: tf.Tensor, config: AugmentConfig, seed: tf.Tensor | None = None) -> tf.Tensor:
    """One augmented copy of one HxWx3 float32 image in [0, 1]: same shape and dtype, clipped to [0, 1].

    ``seed`` is a shape-[2] int32/int64 tensor; the same (seed, image) pair always gives the
    same output.  Without it every call draws a fresh seed.  Works eagerly and in graph mode
    (``Dataset.map``, ``tf.function``); height and width may even be dynamic.  With blur on,
    the image must be at least 5 pixels each way (reflect padding of the kernel).

    Order, as in a camera: what the person wears (sunglasses), pose (warp), what stands in front
    of the face (occlusion), optics
    (blur), exposure and white balance (colour), sensor noise, clipping to the sensor's range,
    JPEG compression.
    """
    image = tf.convert_to_tensor(image, dtype=tf.float32)
    static_shape = image.shape
    image = tf.ensure_shape(image, [None, None, 3])
    if config.is_identity:
        return tf.clip_by_value(image, 0.0, 1.0)
    if seed is None:
        seed = tf.random.uniform([2], minval=0, maxval=tf.int32.max, dtype=tf.int32)
    else:
        seed = tf.convert_to_tensor(seed)
        if seed.dtype not in (tf.int32, tf.int64):
            seed = tf.cast(seed, tf.int64)
        seed = tf.ensure_shape(seed, [2])
    draws = _Draws(config, seed)

    if config.sunglasses_prob > 0:
        image = tf.cond(draws.sunglasses, lambda: _sunglasses(image, draws), lambda: image)
    if config.geometric:
        image = _affine(image, config, draws)
    elif config.flip:
        image = tf.cond(draws.flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    if config.occlusion_prob > 0:
        image = tf.cond(draws.occlude, lambda: _occlude(image, draws), lambda: image)
    if config.blur_prob > 0:
        image = tf.cond(draws.blur, lambda: _gaussian_blur(image, draws.blur_sigma), lambda: image)
    if config.colour:
        image = _colour(image, config, draws)
    if config.noise_std > 0:
        # One Gaussian value per pixel, the same in all three channels: what is left of a webcam's
        # sensor noise after demosaicing, chroma denoising and 4:2:0 JPEG is mostly luma grain,
        # and it costs half as much as independent noise per channel.
        noise_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        noise_shape = tf.concat([tf.shape(image)[:2], [1]], axis=0)
        image = image + draws.noise_std * tf.random.stateless_normal(noise_shape, seed=noise_seed)
    image = tf.clip_by_value(image, 0.0, 1.0)
    if config.jpeg_prob > 0:
        # The round trip through uint8 keeps the result in [0, 1].
        image = tf.cond(draws.jpeg, lambda: tf.image.adjust_jpeg_quality(image, draws.jpeg_quality),
                        lambda: image)
    image.set_shape(static_shape)       # decode_jpeg and the warp lose the static height and width
    return image


def make_augmenter(config: AugmentConfig) -> Callable[..., tf.Tensor]:
    """``augment(image, seed=None)`` for ``Dataset.map``; the identity when the config changes nothing."""
    if config.is_identity:
        def identity(image: tf.Tensor, seed: tf.Tensor | None = None) -> tf.Tensor:
            return image
        return identity

    def augment(image: tf.Tensor, seed: tf.Tensor | None = None) -> tf.Tensor:
        return augment_image(image, config, seed)
    return augment


class _Draws:
    """Every random number one image needs, from one stateless draw (few ops: the per-op cost
    of a tf.data function is a good part of the budget for a 64x64 crop)."""

    def __init__(self, config: AugmentConfig, seed: tf.Tensor) -> None:
        rotation = math.radians(config.max_rotation_deg)
        hue = 2.0 * math.pi * config.hue
        # (low, high) of each draw, so that one multiply-add maps all the U[0, 1) draws at once.
        ranges = [
            (0.0, 1.0),                                     # flip coin
            (-rotation, rotation),
            config.scale_range,
            (-config.max_shift_frac, config.max_shift_frac),
            (-config.max_shift_frac, config.max_shift_frac),
            (-config.brightness, config.brightness),
            config.contrast,
            config.saturation,
            (-hue, hue),
            (0.0, 1.0),                                     # greyscale coin
            (0.0, 1.0),                                     # blur coin
            BLUR_SIGMA_RANGE,
            (0.0, config.noise_std),
            (0.0, 1.0),                                     # JPEG coin
            (JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1.0),
            (0.0, 1.0),                                     # occlusion coin
            OCCLUSION_AREA_RANGE,
            (math.log(OCCLUSION_ASPECT_RANGE[0]), math.log(OCCLUSION_ASPECT_RANGE[1])),
            (0.0, 1.0),                                     # occluder centre x, as a fraction of the width
            (0.0, 1.0),                                     # occluder centre y
            (0.0, 1.0), (0.0, 1.0), (0.0, 1.0),             # occluder colour
            (0.0, 1.0),                                     # sunglasses coin
            SUNGLASSES_SCALE_RANGE,
            SUNGLASSES_SHADE_RANGE,
            SUNGLASSES_OPACITY_RANGE,
            (-0.05, 0.05), (-0.05, 0.05), (-0.05, 0.05),    # lens tint, added to the shade per channel
        ]
        low = np.array([r[0] for r in ranges], np.float32)
        width = np.array([r[1] - r[0] for r in ranges], np.float32)
        u = tf.random.stateless_uniform([len(ranges)], seed=seed)
        (flip, self.rotation, self.scale, self.shift_x, self.shift_y, self.brightness, self.contrast,
         self.saturation, self.hue, grey, blur, self.blur_sigma, self.noise_std, jpeg,
         quality, occlude, self.occlusion_area, log_aspect, self.occlusion_x, self.occlusion_y,
         red, green, blue, sunglasses, self.lens_scale, lens_shade, self.lens_opacity,
         *lens_tint) = tf.unstack(low + width * u)
        self.occlusion_aspect = tf.exp(log_aspect)
        self.occlusion_colour = tf.stack([red, green, blue])
        self.lens_colour = lens_shade + tf.stack(lens_tint)
        self.sunglasses = sunglasses < config.sunglasses_prob
        self.flip = flip < 0.5
        self.grayscale = grey < config.grayscale_prob
        self.blur = blur < config.blur_prob
        self.jpeg = jpeg < config.jpeg_prob
        self.occlude = occlude < config.occlusion_prob
        self.jpeg_quality = tf.minimum(tf.cast(quality, tf.int32), JPEG_QUALITY_RANGE[1])


def _affine(image: tf.Tensor, config: AugmentConfig, draws: _Draws) -> tf.Tensor:
    """Flip, rotation, scale and shift about the centre, as one bilinear warp with reflect padding."""
    height, width = image.shape[0], image.shape[1]
    if height is None or width is None:
        dynamic = tf.cast(tf.shape(image)[:2], tf.float32)
        height, width = dynamic[0], dynamic[1]
    # Pixel centres sit on integer coordinates, so the centre of the crop is ((w-1)/2, (h-1)/2).
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # The forward map is  out = c + t + s R(angle) F (in - c),  F the optional mirror in x, and
    # the op wants the inverse, from each output pixel to where it samples the input:
    #   in = c + F R(-angle) / s (out - c - t).
    inv_scale = 1.0 / draws.scale
    cos, sin = tf.cos(draws.rotation) * inv_scale, tf.sin(draws.rotation) * inv_scale
    a0, a1, b0, b1 = cos, sin, -sin, cos
    if config.flip:
        mirror = tf.where(draws.flip, -1.0, 1.0)
        a0, a1 = mirror * a0, mirror * a1
    ox, oy = cx + draws.shift_x * width, cy + draws.shift_y * height
    a2 = cx - a0 * ox - a1 * oy
    b2 = cy - b0 * ox - b1 * oy
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[tf.newaxis]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis], transforms=transform, output_shape=tf.shape(image)[:2],
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode=FILL_MODE)
    return warped[0]


# The saturation/hue/greyscale matrix (row-vector convention, pixel_out = pixel_in @ M) is
#   M = RGB_TO_YIQ^T  [[1, 0, 0], [0, s cos h, s sin h], [0, -s sin h, s cos h]]  YIQ_TO_RGB^T
# which is linear in (s cos h, s sin h):  M = _LUMA + (s cos h) _CHROMA_COS + (s sin h) _CHROMA_SIN.
_LUMA = (_RGB_TO_YIQ.T @ np.diag([1.0, 0.0, 0.0]) @ _YIQ_TO_RGB.T).astype(np.float32)
_CHROMA_COS = (_RGB_TO_YIQ.T @ np.diag([0.0, 1.0, 1.0]) @ _YIQ_TO_RGB.T).astype(np.float32)
_CHROMA_SIN = (_RGB_TO_YIQ.T @ np.array([[0, 0, 0], [0, 0, 1], [0, -1, 0]]) @ _YIQ_TO_RGB.T).astype(np.float32)


def _colour(image: tf.Tensor, config: AugmentConfig, draws: _Draws) -> tf.Tensor:
    """Saturation, hue, greyscale, contrast and brightness as one 3x3 matrix plus an offset.

    Saturation scales and hue rotates the chroma (I, Q) plane of YIQ, greyscale sets the
    chroma to zero; luma is left alone by all three.  Contrast scales each channel about its
    mean (as tf.image.adjust_contrast), brightness adds the same delta to every channel.
    Not clipped: the caller clips once, after the sensor noise.
    """
    saturation = draws.saturation
    if config.grayscale_prob > 0:
        saturation = tf.where(draws.grayscale, 0.0, saturation)
    if config.hue > 0:
        matrix = _LUMA + (saturation * tf.cos(draws.hue)) * _CHROMA_COS + (saturation * tf.sin(draws.hue)) * _CHROMA_SIN
    else:
        matrix = _LUMA + saturation * _CHROMA_COS
    contrast = draws.contrast
    # out = contrast * (x M - mean(x) M) + mean(x) M + brightness
    mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)[0] @ matrix              # [1, 3]
    offset = (1.0 - contrast) * mean + draws.brightness
    pixels = tf.reshape(image, [-1, 3]) @ (contrast * matrix) + offset
    return tf.reshape(pixels, tf.shape(image))


def _occlude(image: tf.Tensor, draws: _Draws) -> tf.Tensor:
    """A flat-coloured rectangle of the drawn area fraction and aspect ratio, centred at the drawn
    point (clipped at the borders, so an occluder at an edge covers less)."""
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    box_height = height * tf.sqrt(draws.occlusion_area / draws.occlusion_aspect)
    box_width = width * tf.sqrt(draws.occlusion_area * draws.occlusion_aspect)
    rows = tf.range(height)[:, None] + 0.5
    cols = tf.range(width)[None, :] + 0.5
    inside = ((tf.abs(rows - draws.occlusion_y * height) < box_height / 2)
              & (tf.abs(cols - draws.occlusion_x * width) < box_width / 2))
    return tf.where(inside[:, :, None], draws.occlusion_colour, image)


def _sunglasses(image: tf.Tensor, draws: _Draws) -> tf.Tensor:
    """Two dark, slightly see-through elliptical lenses over the template's eye positions."""
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    rows = (tf.range(height)[:, None] + 0.5) / height
    cols = (tf.range(width)[None, :] + 0.5) / width
    half_x, half_y = (draws.lens_scale * axis for axis in SUNGLASSES_HALF_AXES)
    lens = tf.zeros_like(rows * cols, dtype=tf.bool)
    for eye_x, eye_y in SUNGLASSES_EYES.tolist():
        lens |= tf.square((cols - eye_x) / half_x) + tf.square((rows - eye_y) / half_y) < 1.0
    opacity = tf.where(lens, draws.lens_opacity, 0.0)[:, :, None]
    return image * (1.0 - opacity) + draws.lens_colour * opacity


def _gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Separable Gaussian blur of fixed support, reflect-padded so the edges keep their brightness."""
    taps = tf.range(-_BLUR_RADIUS, _BLUR_RADIUS + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    r = _BLUR_RADIUS
    padded = tf.pad(image, [[r, r], [r, r], [0, 0]], mode="REFLECT")[tf.newaxis]
    vertical = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    horizontal = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    out = tf.nn.depthwise_conv2d(padded, vertical, strides=[1, 1, 1, 1], padding="VALID")
    out = tf.nn.depthwise_conv2d(out, horizontal, strides=[1, 1, 1, 1], padding="VALID")
    return out[0]
