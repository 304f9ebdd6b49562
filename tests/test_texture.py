"""The hand-made texture descriptor (kiosk.texture) and its fusion with the network's cosine
(kiosk.scoring.TextureFusionScoring): LBP and LPQ codes and patch histograms by hand, the
Tan-Triggs normalisation, the patches following the landmarks, the projection against scikit-learn, the fused score against its formula,
and the kiosk embedding and scoring with it end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from kiosk.alignment import AlignmentSpec, align_face, landmarks_in_crop
from kiosk.modelcard import card_path_for, scoring_path_for
from kiosk.scoring import LOG_ODDS_PER_UNIT, StaleScoringError, TextureFusionScoring
from kiosk.texture import (
    BINS,
    LPQ_BINS,
    PATCH_SCALES,
    POINTS,
    CellAxes,
    TextureProjection,
    analysis_points,
    face_histograms,
    lbp_codes,
    lpq_codes,
    patch_counts,
    principal_axes,
    tan_triggs,
)
from training.backend import fit_logistic, fit_texture_fusion

TEMPLATE = AlignmentSpec().template()
CELLS = len(PATCH_SCALES) * POINTS * 16  # 4 x 4 cells a patch


def at_template(count: int) -> np.ndarray:
    """Landmarks for `count` crops whose faces have exactly the template's proportions."""
    return np.repeat(TEMPLATE[None].astype(np.float32), count, axis=0)


def ring(centre: float, neighbours: list[float]) -> np.ndarray:
    """A 5 x 5 grey image: `centre` in the middle, the 8 neighbours 2 px away clockwise from the top left."""
    image = np.full((5, 5), -1.0)
    image[2, 2] = centre
    for value, (y, x) in zip(neighbours, [(0, 0), (0, 2), (0, 4), (2, 4), (4, 4), (4, 2), (4, 0), (2, 0)]):
        image[y, x] = value
    return image[None]


def test_lbp_codes_by_hand():
    uniform = [code for code in range(256) if sum(((code >> i) & 1) != ((code >> (i + 1) % 8) & 1) for i in range(8)) <= 2]
    assert len(uniform) == BINS - 1
    assert lbp_codes(ring(5, [1] * 8))[0, 0, 0] == 0  # a bright spot: no neighbour as bright
    assert lbp_codes(ring(5, [5] * 8))[0, 0, 0] == uniform.index(255)  # flat: every neighbour as bright
    # Top left, top and top right brighter: bits 0-2, code 7, uniform.
    assert lbp_codes(ring(5, [9, 9, 9, 1, 1, 1, 1, 1]))[0, 0, 0] == uniform.index(7)
    assert lbp_codes(ring(5, [9, 1, 9, 1, 9, 1, 9, 1]))[0, 0, 0] == BINS - 1  # alternating: not uniform


def test_patch_counts_count_each_cell_and_stay_inside_the_map():
    codes = np.zeros((1, 40, 50), np.int64)
    codes[0, 10:16, 20:26] = 5  # the top-left 6 x 6 cell of a patch centred at (32, 22)
    codes[0, 10:13, 26:32] = 7  # half of the next cell to the right
    counts = patch_counts(codes, np.array([[[32.0, 22.0], [0.0, 0.0]]]), BINS)
    assert counts.shape == (1, 2 * 16, BINS) and counts.dtype == np.uint8
    assert np.all(counts.sum(axis=-1) == 36)  # every pixel of each 6 x 6 cell, once
    assert counts[0, 0, 5] == 36 and list(counts[0, 1, [0, 7]]) == [18, 18]
    assert np.all(counts[0, 2:16, 0] == 36)
    # A centre at the map's corner: the patch is moved inside, to the top-left 24 x 24 pixels.
    inside = patch_counts(codes, np.array([[[12.0, 12.0]]]), BINS)
    assert np.array_equal(counts[0, 16:], inside[0])


def test_analysis_points_follow_the_landmarks():
    points = analysis_points(at_template(1))[0]
    assert points.shape == (POINTS, 2) and points[:5] == pytest.approx(TEMPLATE, abs=1e-4)
    left_eye, right_eye = TEMPLATE[0], TEMPLATE[1]
    assert points[5] == pytest.approx((left_eye + right_eye) / 2, abs=1e-4)  # between the eyes
    span = np.linalg.norm(right_eye - left_eye)
    assert points[10] == pytest.approx(left_eye - [0, 0.35 * span], abs=1e-4)  # a brow, above its eye
    moved = at_template(1) + [3.0, -2.0]
    assert analysis_points(moved)[0] == pytest.approx(points + [3.0, -2.0], abs=1e-4)
    with pytest.raises(ValueError, match="N x 5 x 2"):
        analysis_points(TEMPLATE)


def test_histograms_ignore_brightness_and_see_a_change_of_face():
    rng = np.random.default_rng(0)
    grey = rng.integers(40, 120, size=(2, 112, 112)).astype(np.uint8)
    crops = np.repeat(grey[..., None], 3, axis=-1)
    blocks = face_histograms(crops, at_template(2))
    assert [block.shape for block in blocks] == [(2, CELLS, BINS), (2, CELLS, LPQ_BINS)] * 2
    assert all(block.dtype == np.float16 for block in blocks)  # training and kiosk share the rounding
    lbp, lpq, normalised_lbp, normalised_lpq = blocks
    brighter = face_histograms(crops + 30, at_template(2))
    own_size = POINTS * 16  # the cells at the crop's own size come first
    assert np.array_equal(brighter[0][:, :own_size], lbp[:, :own_size]) and np.array_equal(brighter[1], lpq)
    assert np.abs(brighter[0] - lbp).mean() < 1e-3  # resized, a rounding flips the odd equal pair of pixels
    contrast = face_histograms(crops * 2, at_template(2))
    assert np.array_equal(contrast[1][:, :own_size], lpq[:, :own_size]) and np.abs(contrast[1] - lpq).mean() < 1e-3
    # The normalised crop's codes barely move with brightness or contrast either (gamma is not
    # exactly scale-free: it compresses x + 1).
    for changed in (brighter, contrast):
        assert np.abs(changed[2].astype(np.float32) - normalised_lbp).mean() < 0.01
        assert np.abs(changed[3].astype(np.float32) - normalised_lpq).mean() < 0.01
    assert all(not np.allclose(block[0], block[1]) for block in blocks)
    assert not np.allclose(normalised_lbp, lbp[..., :BINS])  # a second look, not a copy
    with pytest.raises(ValueError, match="uint8"):
        face_histograms(crops.astype(np.float32), at_template(2))
    with pytest.raises(ValueError, match="5 landmarks for each of the 2 crops"):
        face_histograms(crops, at_template(3))


def test_tan_triggs_flattens_shading_and_keeps_the_detail():
    rng = np.random.default_rng(3)
    detail = rng.uniform(60, 120, size=(1, 64, 64)).astype(np.float32)
    shade = np.linspace(0.3, 1.0, 64, dtype=np.float32)[None, None, :]  # light falling off across the face
    normalised, shaded = tan_triggs(detail), tan_triggs(detail * shade)
    assert normalised.shape == detail.shape and normalised.dtype == np.float32
    assert 0 <= normalised.min() and normalised.max() <= 255 and normalised.std() > 10
    # The slow ramp is gone: both halves come out alike, though the shaded image's left half is
    # half as bright as its right; what stays is the shared detail.
    halves = [shaded[..., :32].mean(), shaded[..., 32:].mean()]
    assert abs(halves[0] - halves[1]) < 3 and (detail * shade)[..., :32].mean() < 0.7 * (detail * shade)[..., 32:].mean()
    assert np.corrcoef(normalised[..., 8:-8].ravel(), shaded[..., 8:-8].ravel())[0, 1] > 0.9
    assert np.all(tan_triggs(np.full((1, 16, 16), 90.0)) == 127.5)  # a flat image has nothing to show, and no NaN


def test_lpq_codes_are_the_signs_of_the_windows_fourier_coefficients():
    rng = np.random.default_rng(6)
    grey = rng.uniform(0, 255, size=(1, 12, 12)).astype(np.float32)
    codes = lpq_codes(grey)
    padded = np.pad(grey[0], 3, mode="symmetric")  # OpenCV's BORDER_REFLECT
    a = 1 / 7
    for y, x in [(5, 6), (0, 0), (11, 3)]:  # inside, a corner, an edge
        window = padded[y:y + 7, x:x + 7]
        dy, dx = np.meshgrid(np.arange(7) - 3, np.arange(7) - 3, indexing="ij")
        coefficients = [np.sum(window * np.exp(-2j * np.pi * (u * dx + v * dy)))
                        for u, v in [(a, 0), (0, a), (a, a), (a, -a)]]
        # A coefficient within rounding of 0 (the corner's mirrored window is symmetric) reads as 0.
        expected = sum((int(c.real > 1e-3) << (2 * k)) | (int(c.imag > 1e-3) << (2 * k + 1))
                       for k, c in enumerate(coefficients))
        assert codes[0, y, x] == expected
    assert lpq_codes(np.full((1, 9, 9), 80.0))[0] == pytest.approx(np.zeros((9, 9)))  # flat: no sign to read


def test_a_face_and_its_mirror_image_have_one_descriptor_and_the_patches_follow_the_landmarks():
    rng = np.random.default_rng(4)
    crops = rng.integers(0, 256, size=(2, 112, 112, 3)).astype(np.uint8)
    landmarks = at_template(2) + rng.normal(scale=2.0, size=(2, 5, 2)).astype(np.float32)
    mirrored = landmarks[:, [1, 0, 2, 4, 3]].copy()  # the mirror image's image-left eye is the face's right
    mirrored[..., 0] = 111 - mirrored[..., 0]
    blocks = face_histograms(crops, landmarks)
    mirror_blocks = face_histograms(crops[:, :, ::-1], mirrored)
    assert all(np.array_equal(mirror, own) for mirror, own in zip(mirror_blocks, blocks))
    # Landmarks moved by 3 px: other pixels fall in the patches' cells.
    shifted = face_histograms(crops, landmarks + [3.0, 0.0])
    assert all(not np.allclose(moved, own) for moved, own in zip(shifted, blocks))


def test_landmarks_in_crop_are_where_the_aligned_face_shows_them(detector, astronaut):
    from kiosk.faces import crop_landmarks

    face = detector.detect(astronaut)[0]
    crop = align_face(astronaut, face.landmarks)
    expected = landmarks_in_crop(face.landmarks)
    assert expected == pytest.approx(crop_landmarks([face], AlignmentSpec())[0], abs=1e-4)
    # Detected again in the crop itself (padded: MTCNN wants some context), the landmarks land there.
    padded = np.pad(crop, ((56, 56), (56, 56), (0, 0)), mode="edge")
    found = detector.detect(padded)
    assert found and found[0].landmarks - 56 == pytest.approx(expected, abs=4.0)
    assert landmarks_in_crop(TEMPLATE) == pytest.approx(TEMPLATE, abs=1e-6)


@pytest.mark.parametrize("count", [40, 400])  # fewer images than numbers, and more
def test_principal_axes_are_whitened_pca(count):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(count, 120)) @ rng.normal(size=(120, 120)) * 0.1
    mean, axes, spread = principal_axes(features, 10)
    pca = PCA(10).fit(features)
    # The same axes as scikit-learn's (up to sign; float16 as saved) and the same spread along them.
    cosines = np.abs(np.sum(axes * pca.components_.T, axis=0))
    assert cosines == pytest.approx(np.ones(10), abs=2e-3)
    assert spread == pytest.approx(np.sqrt(pca.explained_variance_ * (count - 1) / count), rel=1e-3)
    assert mean == pytest.approx(features.mean(axis=0), abs=1e-5)
    with pytest.raises(ValueError, match="dimension"):
        principal_axes(features, min(count, 120))


def test_each_cell_is_reduced_on_its_own_axes_then_all_together_to_unit_vectors():
    rng = np.random.default_rng(10)
    blocks = (rng.normal(size=(60, 3, 12)) * np.linspace(3, 0.1, 12), rng.normal(size=(60, 2, 20)))
    cells = CellAxes.fit(blocks[0], 4)
    for cell in range(3):
        pca = PCA(4).fit(blocks[0][:, cell])
        assert np.abs(np.sum(cells.axes[cell] * pca.components_.T, axis=0)) == pytest.approx(np.ones(4), abs=2e-3)
    assert cells.project(blocks[0]).shape == (60, 12)
    projection, vectors = TextureProjection.fit(blocks, 8, cell_dimension=4)
    np.testing.assert_array_equal(vectors, projection.vectors(blocks))  # the fit's own vectors are the kiosk's
    assert vectors.shape == (60, 8) and np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(60))
    with pytest.raises(ValueError, match="2 histogram blocks"):
        projection.vectors(blocks[:1])
    with pytest.raises(ValueError, match="cell dimension"):
        CellAxes.fit(blocks[0], 13)


def test_the_logistic_fit_is_scikit_learns_unpenalised_one():
    rng = np.random.default_rng(2)
    same = rng.random(400) < 0.5
    features = np.stack([same + rng.normal(size=400), 2 * same + rng.normal(scale=3, size=400)], axis=1)
    reference = LogisticRegression(C=1e10, max_iter=10_000, tol=1e-12).fit(features, same)
    weights = fit_logistic(features, same)
    assert weights[:2] == pytest.approx(reference.coef_[0], rel=1e-4)
    assert weights[2] == pytest.approx(reference.intercept_[0], abs=1e-4)


def faces(people: int, images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 112 px crops: each person a random blotchy pattern, each image of them a brightness
    and contrast change with noise; identity lives in the texture."""
    rng = np.random.default_rng(seed)
    import cv2
    patterns = [cv2.resize(rng.uniform(60, 190, size=(14, 14)), (112, 112), interpolation=cv2.INTER_CUBIC)
                for _ in range(people)]
    crops = [np.clip(pattern * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20) + rng.normal(scale=6, size=pattern.shape),
                     0, 255) for pattern in patterns for _ in range(images)]
    grey = np.array(crops, np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1), np.repeat(np.arange(people), images)


@pytest.fixture(scope="module")
def fused() -> TextureFusionScoring:
    crops, names = faces(30, 4)
    rng = np.random.default_rng(3)
    pairs_a, pairs_b = rng.integers(0, len(crops), 400), rng.integers(0, len(crops), 400)
    pairs_b[:200] = pairs_a[:200] ^ 1  # the other image of the same person (images come in fours)
    same = names[pairs_a] == names[pairs_b]
    network = rng.normal(size=(len(crops), 6))  # a network that knows nothing
    network /= np.linalg.norm(network, axis=1, keepdims=True)
    faces_of = (crops, at_template(len(crops)), network)
    scoring, validation_vectors = fit_texture_fusion(faces_of, names, faces_of, (pairs_a, pairs_b), same,
                                                     dimension=20)
    # The validation faces' embeddings it hands back are the ones the scoring makes of them.
    assert validation_vectors == pytest.approx(scoring.extend(network, crops, at_template(len(crops))), abs=1e-6)
    return scoring


def test_the_fusion_leans_on_whichever_score_tells_people_apart(fused):
    crops, names = faces(10, 3, seed=7)  # people it never saw
    network = np.zeros((len(crops), 6), np.float32)
    network[:, 0] = 1.0
    vectors = fused.extend(network, crops, at_template(len(crops)))
    assert vectors.shape == (30, 26) and np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(30), abs=1e-6)
    a, b = np.triu_indices(len(crops), k=1)
    assert roc_auc_score(names[a] == names[b], fused.pairs(vectors[a], vectors[b])) > 0.95
    # The texture's term moves the log-odds far more than the noise network's two terms.
    w_cosine, w_network, w_texture, _ = fused.weights
    texture = fused.texture.describe(crops, at_template(len(crops)))
    spread = np.std(fused.texture_joint_bayesian.log_likelihood_ratios(texture[a], texture[b]))
    noise = np.random.default_rng(4).normal(size=(len(crops), 6))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    network_spread = np.std(w_cosine * np.einsum("ij,ij->i", noise[a], noise[b])
                            + w_network * fused.network_joint_bayesian.log_likelihood_ratios(noise[a], noise[b]))
    assert w_texture > 0 and w_texture * spread > 5 * network_spread


def test_the_fused_score_is_its_formula_and_matrix_and_pairs_agree(fused, tmp_path):
    rng = np.random.default_rng(5)
    crops, _ = faces(4, 2, seed=9)
    network = rng.normal(size=(8, 6))
    network /= np.linalg.norm(network, axis=1, keepdims=True)
    vectors = fused.extend(network, crops, at_template(8))
    texture = fused.texture.describe(crops, at_template(8))
    w_cosine, w_network, w_texture, bias = fused.weights
    expected = 0.5 + (w_cosine * (network[:4] @ network[4:].T)
                      + w_network * fused.network_joint_bayesian.log_likelihood_ratio_matrix(network[:4], network[4:])
                      + w_texture * fused.texture_joint_bayesian.log_likelihood_ratio_matrix(texture[:4], texture[4:])
                      + bias) / LOG_ODDS_PER_UNIT
    assert fused.matrix(vectors[:4], vectors[4:]) == pytest.approx(expected, abs=1e-5)
    i, j = np.meshgrid(np.arange(4), np.arange(4, 8), indexing="ij")
    assert fused.pairs(vectors[i.ravel()], vectors[j.ravel()]) == pytest.approx(expected.ravel(), abs=1e-5)
    gallery = vectors[4:].copy()
    gallery.flags.writeable = False
    assert fused.matrix(vectors[:4], gallery) == pytest.approx(expected, abs=1e-5)
    assert fused.matrix(vectors[:2], gallery) == pytest.approx(expected[:2], abs=1e-5)  # the gallery's side, kept
    fused.save(tmp_path / "t.npz")
    loaded = TextureFusionScoring.load(tmp_path / "t.npz")
    assert np.array_equal(loaded.extend(network, crops, at_template(8)), vectors)
    assert np.array_equal(loaded.matrix(vectors, vectors), fused.matrix(vectors, vectors))
    with pytest.raises(ValueError, match="26-d"):
        fused.pairs(network, network)


def test_a_scoring_file_fitted_on_another_descriptor_is_refused_by_name(fused, tmp_path):
    from training.recipe import Recipe
    from training.run_folder import SCORING_FILE, scoring_is_current

    recipe = Recipe(scoring="cosine+texture")
    fused.save(tmp_path / SCORING_FILE)
    assert scoring_is_current(tmp_path, recipe)
    with np.load(tmp_path / SCORING_FILE) as data:  # as an older version wrote it: no descriptor named
        older = {key: data[key] for key in data.files if key != "texture_descriptor"}
    np.savez(tmp_path / SCORING_FILE, **older)
    with pytest.raises(StaleScoringError, match="another texture descriptor .*rescore"):
        TextureFusionScoring.load(tmp_path / SCORING_FILE)
    assert not scoring_is_current(tmp_path, recipe)


def test_a_scoring_file_without_the_networks_joint_bayesian_is_refused(fused, tmp_path):
    fused.save(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as data:  # as an older version wrote it: cosine and texture only
        older = {key: data[key] for key in data.files if not key.startswith("network_")}
    older["weights"] = np.array(fused.weights)[[0, 2, 3]]
    np.savez(tmp_path / "t.npz", **older)
    with pytest.raises(StaleScoringError, match="network's vectors.*rescore RUN --scoring cosine\\+texture"):
        TextureFusionScoring.load(tmp_path / "t.npz")


def test_the_kiosk_embeds_and_scores_with_the_texture_its_card_names(fused, tmp_path):
    from kiosk.engine import FaceEngine
    from training.export import export_model
    from training.model import build_backbone, build_serving_model

    backbone = build_backbone(input_size=32, widths=(8, 16, 16, 16), blocks=(1, 1, 1, 1), embedding_size=6)
    model = export_model(backbone, 112, {"size": 112, "margin": 0.0}, tmp_path / "t.keras",
                         {"threshold": {"value": 0.5, "rule": "a test threshold"}}, fused)
    card = json.loads(card_path_for(model).read_text())
    assert card["embedding_size"] == 26 and card["scoring"]["kind"] == "cosine+texture"
    assert card["scoring"]["file"] == scoring_path_for(model).name
    engine = FaceEngine(model)
    crops, _ = faces(3, 2, seed=11)
    network = np.asarray(build_serving_model(backbone, 112)(crops, training=False))
    embeddings = engine.embed_crops(crops)  # landmarks unknown: the template's points
    assert embeddings == pytest.approx(fused.extend(network, crops, at_template(6)), abs=1e-5)
    moved = at_template(6) + 4.0
    assert engine.embed_crops(crops, moved) == pytest.approx(fused.extend(network, crops, moved), abs=1e-5)
    assert not np.allclose(engine.embed_crops(crops, moved), embeddings, atol=1e-3)
    assert engine.similarity(embeddings[0], embeddings[1]) == pytest.approx(
        float(fused.pairs(embeddings[:1], embeddings[1:2])[0]), abs=1e-6)
