"""Tests for training.augment: real TensorFlow ops on small images, a few seconds in all."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from training.augment import NO_AUGMENTATION, AugmentConfig, augment_image, make_augmenter
from training.recipe import Recipe
from training.train import augmentation

OFF = NO_AUGMENTATION.to_dict()


def only(**settings) -> AugmentConfig:
    """A config with every stage off except the ones given."""
    return AugmentConfig(**{**OFF, **settings})


def seed(i: int) -> tf.Tensor:
    return tf.constant([i, 12345], dtype=tf.int64)


def random_image(height: int = 64, width: int = 64, low: float = 0.0, high: float = 1.0, rng_seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(rng_seed)
    return rng.uniform(low, high, size=(height, width, 3)).astype(np.float32)


def smooth_image(height: int = 64, width: int = 64) -> np.ndarray:
    """Slowly varying colour pattern (periods of 20-30 px): small moves change it little."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [
        0.5 + 0.2 * np.sin(2 * np.pi * x / 23 + 0.3) + 0.2 * np.cos(2 * np.pi * y / 29),
        0.5 + 0.2 * np.sin(2 * np.pi * (x + y) / 31) + 0.15 * np.cos(2 * np.pi * y / 21 + 1.0),
        0.5 + 0.25 * np.cos(2 * np.pi * (x - y) / 27 + 0.7),
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


def run(image: np.ndarray, config: AugmentConfig, i: int | None = 0) -> np.ndarray:
    return augment_image(tf.constant(image), config, None if i is None else seed(i)).numpy()


def test_no_augmentation_returns_the_input_unchanged():
    image = random_image()
    np.testing.assert_array_equal(run(image, NO_AUGMENTATION), image)
    np.testing.assert_array_equal(run(image, NO_AUGMENTATION, None), image)
    identity = make_augmenter(NO_AUGMENTATION)
    assert identity(tf.constant(image)).numpy().tolist() == image.tolist()
    # A config that switches everything off by hand is the identity too.
    assert only(blur_prob=0.0, scale_range=[1, 1]).is_identity
    assert not AugmentConfig().is_identity


@pytest.mark.parametrize("height, width", [(64, 64), (112, 112), (48, 80)])
def test_output_shape_dtype_and_range(height, width):
    image = random_image(height, width)
    for i in (None, 0, 1, 2):
        out = augment_image(tf.constant(image), AugmentConfig(), None if i is None else seed(i))
        assert out.shape == (height, width, 3)
        assert out.dtype == tf.float32
        values = out.numpy()
        assert np.isfinite(values).all()
        assert values.min() >= 0.0 and values.max() <= 1.0


def test_same_seed_gives_the_same_output_and_other_seeds_differ():
    image = smooth_image()
    config = AugmentConfig(blur_prob=0.5, jpeg_prob=0.5)
    first = [run(image, config, i) for i in range(4)]
    for i, out in enumerate(first):
        np.testing.assert_array_equal(run(image, config, i), out)
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(first[a] - first[b]).mean() > 1e-3
    # Without a seed every call differs.
    assert np.abs(run(image, config, None) - run(image, config, None)).mean() > 1e-3


@pytest.mark.parametrize("config", [
    only(flip=True),                               # flip alone: a plain reverse
    only(flip=True, max_rotation_deg=1e-6),        # flip inside the affine warp
], ids=["reverse", "warp"])
def test_flip_mirrors_about_half_the_time(config):
    image = random_image(32, 40)                   # left-right asymmetric, odd and even sizes
    mirrored = image[:, ::-1]
    flips = 0
    for i in range(40):
        out = run(image, config, i)
        if np.allclose(out, mirrored, atol=1e-4):
            flips += 1
        else:
            np.testing.assert_allclose(out, image, atol=1e-4)
    assert 10 <= flips <= 30


@pytest.mark.parametrize("height, width", [(64, 64), (48, 80)])
def test_rotation_keeps_the_centre_and_moves_the_corners(height, width):
    image = smooth_image(height, width)
    config = only(max_rotation_deg=10.0)
    cy, cx = height // 2, width // 2
    centre = (slice(cy - 4, cy + 4), slice(cx - 4, cx + 4))
    corners = [(slice(0, 8), slice(0, 8)), (slice(0, 8), slice(-8, None)),
               (slice(-8, None), slice(0, 8)), (slice(-8, None), slice(-8, None))]
    corner_changes = []
    for i in range(8):
        diff = np.abs(run(image, config, i) - image)
        assert diff[centre].mean() < 0.02
        corner_changes.append(np.mean([diff[c].mean() for c in corners]))
        assert corner_changes[-1] >= 2 * diff[centre].mean()
    assert np.mean(corner_changes) > 0.05


def test_scale_above_one_zooms_in_about_the_centre():
    height, width = 48, 64
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    blob = np.exp(-((x - cx - 10) ** 2 + (y - cy + 6) ** 2) / 8.0)
    image = np.repeat(blob[..., None], 3, axis=-1).astype(np.float32)
    out = run(image, only(scale_range=(1.5, 1.5)))[..., 0]
    weights = out / out.sum()
    # The blob's centre of mass moves from (cx + 10, cy - 6) to (cx + 15, cy - 9).
    assert abs((weights * x).sum() - (cx + 15)) < 0.3
    assert abs((weights * y).sum() - (cy - 9)) < 0.3


def test_brightness_only_shifts_every_pixel_by_at_most_the_setting():
    image = random_image(low=0.2, high=0.8)        # far enough from 0 and 1 that nothing clips
    deltas = []
    for i in range(16):
        diff = run(image, only(brightness=0.15), i) - image
        assert np.ptp(diff) < 1e-5                 # the same delta everywhere
        deltas.append(diff.mean())
        assert abs(diff.mean()) <= 0.15 + 1e-6
    assert min(deltas) < -0.02 and max(deltas) > 0.02
    # With clipping the mean moves even less.
    bright = random_image(low=0.8, high=1.0)
    for i in range(4):
        assert abs(run(bright, only(brightness=0.15), i).mean() - bright.mean()) <= 0.15 + 1e-6


def test_colour_matrix_keeps_grey_grey_and_greyscale_makes_channels_equal():
    grey = np.repeat(random_image()[..., :1], 3, axis=-1)
    for i in range(4):
        np.testing.assert_allclose(run(grey, only(saturation=(0.5, 1.5), hue=0.2), i), grey, atol=1e-5)
    out = run(random_image(), only(grayscale_prob=1.0))
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-5)
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-5)


def test_blur_smooths_and_jpeg_stays_close():
    image = random_image()
    roughness = np.abs(np.diff(image, axis=1)).mean()
    ratios = []
    for i in range(4):                             # sigma differs from seed to seed
        blurred = run(image, only(blur_prob=1.0), i)
        ratios.append(np.abs(np.diff(blurred, axis=1)).mean() / roughness)
        assert abs(blurred.mean() - image.mean()) < 0.01
    assert max(ratios) < 0.95 and min(ratios) < 0.6
    smooth = smooth_image()
    jpeg = run(smooth, only(jpeg_prob=1.0))
    assert 0 < np.abs(jpeg - smooth).mean() < 0.03


def test_occlusion_covers_one_flat_rectangle_of_the_set_area():
    image = random_image(64, 80)
    boxes = set()
    for i in range(12):
        out = run(image, only(occlusion_prob=1.0), i)
        changed = np.any(out != image, axis=-1)
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert changed[top:bottom, left:right].all()          # one solid rectangle, nothing else touched
        assert changed.sum() == (bottom - top) * (right - left)
        assert changed.mean() <= 0.2 + 0.02                   # at most the largest area (+ rounding)
        patch = out[top:bottom, left:right].reshape(-1, 3)
        np.testing.assert_array_equal(patch, np.broadcast_to(patch[0], patch.shape))   # one flat colour
        boxes.add((top, bottom, left, right))
    assert len(boxes) == 12                                   # every seed puts it somewhere else
    unoccluded = sum(np.array_equal(run(image, only(occlusion_prob=0.25), i), image) for i in range(40))
    assert 20 <= unoccluded <= 38


def test_sunglasses_darken_both_eyes_and_nothing_else():
    image = np.full((112, 112, 3), 0.8, np.float32)
    for i in range(6):
        out = run(image, only(sunglasses_prob=1.0), i)
        changed = np.any(out != image, axis=-1)
        # The lenses sit on the aligner's eye positions (38, 52) and (74, 52) of a 112 px crop.
        for eye_x in (38, 74):
            assert changed[52, eye_x] and out[52, eye_x].max() < 0.8 * 0.25 + 0.3 * 0.8 + 0.05
        assert not changed[:30].any() and not changed[75:].any()          # brow and mouth untouched
        assert 0.06 < changed.mean() < 0.2
        left, right = changed[:, :56].sum(), changed[:, 56:].sum()
        assert abs(left - right) < 0.05 * left                               # one lens each side
    unchanged = sum(np.array_equal(run(image, only(sunglasses_prob=0.3), i), image) for i in range(40))
    assert 20 <= unchanged <= 38


def test_works_inside_dataset_map_in_graph_mode():
    images = np.stack([random_image(rng_seed=k) for k in range(4)])
    modes = []
    augment = make_augmenter(AugmentConfig())

    def unseeded(image):
        modes.append(tf.executing_eagerly())
        return augment(image)

    ds = tf.data.Dataset.from_tensor_slices(images).map(unseeded, num_parallel_calls=tf.data.AUTOTUNE)
    assert modes == [False]
    assert ds.element_spec.shape == (64, 64, 3) and ds.element_spec.dtype == tf.float32
    out = np.stack(list(ds.as_numpy_iterator()))
    assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
    assert all(np.abs(a - b).mean() > 1e-3 for a, b in zip(out, images))

    # With a seed per element the whole pipeline is reproducible, and matches eager calls.
    seeds = tf.data.Dataset.random(seed=7).batch(2)
    seeded = tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(images), seeds).map(
        augment, num_parallel_calls=tf.data.AUTOTUNE)
    first, second = (np.stack(list(seeded.as_numpy_iterator())) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    pair = next(iter(seeds))
    np.testing.assert_allclose(augment_image(tf.constant(images[0]), AugmentConfig(), pair).numpy(), first[0], atol=1e-5)


def test_extreme_settings_give_no_nans():
    extreme = AugmentConfig(
        flip=True, max_rotation_deg=180.0, scale_range=(0.2, 5.0), max_shift_frac=1.0, brightness=1.0,
        contrast=(0.0, 5.0), saturation=(0.0, 5.0), hue=0.5, blur_prob=1.0, noise_std=1.0, jpeg_prob=1.0,
        grayscale_prob=0.5, occlusion_prob=1.0, sunglasses_prob=1.0)
    images = [random_image(), np.zeros((64, 64, 3), np.float32), np.ones((64, 64, 3), np.float32),
              random_image(5, 7)]
    for image in images:
        for i in range(3):
            out = run(image, extreme, i)
            assert out.shape == image.shape
            assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_config_round_trips_through_json_and_rejects_nonsense():
    config = AugmentConfig(max_rotation_deg=5, contrast=(0.9, 1.1))
    data = json.loads(json.dumps(config.to_dict()))
    assert data["contrast"] == [0.9, 1.1]
    assert AugmentConfig.from_dict(data) == config
    assert hash(AugmentConfig.from_dict(data)) == hash(config)
    assert NO_AUGMENTATION.to_dict() == OFF and set(OFF) == {f.name for f in dataclasses.fields(AugmentConfig)}
    bad = [{"scale_range": (1.1, 0.9)}, {"scale_range": (0.0, 1.0)}, {"contrast": (-0.1, 1.0)},
           {"blur_prob": 1.5}, {"noise_std": -0.01}, {"hue": 0.6}, {"max_rotation_deg": float("nan")},
           {"flip": 1}, {"saturation": 0.5}]
    for settings in bad:
        with pytest.raises(ValueError):
            AugmentConfig(**settings)
    with pytest.raises(ValueError):
        AugmentConfig.from_dict({"sharpness": 1.0})
    with pytest.raises(ValueError, match="occlusion_prob"):
        AugmentConfig(occlusion_prob=1.5)
    with pytest.raises(ValueError, match="sunglasses_prob"):
        AugmentConfig(sunglasses_prob=-0.1)


def test_a_recipe_chooses_its_training_augmentation():
    assert augmentation(Recipe()) == AugmentConfig()                       # occluders off by default
    assert augmentation(Recipe(occlusion_prob=0.3)) == AugmentConfig(occlusion_prob=0.3)
    assert augmentation(Recipe(sunglasses_prob=0.2)) == AugmentConfig(sunglasses_prob=0.2)
    assert augmentation(Recipe(augment=False)).is_identity
