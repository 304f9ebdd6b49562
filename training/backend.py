"""Fit the kiosk's scoring (kiosk.scoring) to a trained network: the Joint Bayesian back end, and
its fusion with hand-made texture vectors.

The network's embeddings of the training people give two covariances: how one person's
photos scatter (within) and how people differ (between). Under the Gaussian model
x = identity + variation, with those covariances, the log-likelihood ratio of "same person" is a
quadratic form (Chen et al. 2012). The within-person scatter of images the network trained on
is smaller than that of new people, so it is shrunk towards a sphere before use; the
shrinkage was chosen on validation pairs of four runs (reports/recipe_search.md).
A logistic on the ratio, fitted on the validation pairs, makes the score a 0..1 figure.
"""
from __future__ import annotations

import numpy as np

from kiosk.scoring import JointBayesianScoring, TextureFusionScoring
from kiosk.texture import TextureProjection, face_histograms

# Added to the within-person covariance: this multiple of its mean eigenvalue, times the identity.
# Validation AUC and true accepts at the door rose up to about 2 and fell beyond 5 (four runs).
DEFAULT_SHRINKAGE = 2.0
# Texture vectors: principal axes kept. In exploratory comparisons on the validation pairs (grid
# and landmark-patch descriptors alike) more axes accepted more at the door's threshold and far
# down the impostor tail up to 400 (200 < 300 < 400; 500 and 600 no better at the threshold), each
# 100 adding about 2 MB to the scoring file. Hand-made features are not fitted to the training
# people as a network is, so their Joint Bayesian needs no shrinkage.
TEXTURE_DIMENSION = 400
TEXTURE_SHRINKAGE = 0.0
# The network's Joint Bayesian beside the texture's is shrunk far more than on its own. Its ratio
# with little shrinkage raised the validation true accepts at the door's FAR-1% threshold most
# (78.0% at 2 against 76.7% without the term) but cost true accepts far down the impostor tail,
# where the kiosk's thresholds for galleries of 10 or more people lie (FAR 1e-4: 27.0% against
# 29.0%); more shrinkage trades the one for the other smoothly (2, 6, 8, 12, 16, 24, 32, 50). 24 is
# the most true accepts at the threshold (77.3%) whose tail beats the fusion without the term
# (30.5% at 1e-4, 22.4% at 2e-5 against 20.7%): exploratory comparisons on validation pairs only.
FUSION_NETWORK_SHRINKAGE = 24.0


def fit_joint_bayesian(vectors: np.ndarray, labels: np.ndarray,
                       shrinkage: float = DEFAULT_SHRINKAGE) -> JointBayesianScoring:
    """The Joint Bayesian scoring of N x D embeddings of people `labels` (people with one
    image say nothing about within-person scatter and are left out); uncalibrated."""
    vectors = np.asarray(vectors, np.float64)
    labels = np.asarray(labels)
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be 0 or more, got {shrinkage}")
    people, person, counts = np.unique(labels, return_inverse=True, return_counts=True)
    kept = counts[person] >= 2
    if (counts >= 2).sum() < 2:
        raise ValueError("a Joint Bayesian fit needs at least two people with two or more images")
    vectors, person = vectors[kept], np.unique(person[kept], return_inverse=True)[1]
    dimension = vectors.shape[1]
    means = np.zeros((person.max() + 1, dimension))
    np.add.at(means, person, vectors)
    means /= np.bincount(person)[:, None]
    centre = vectors.mean(axis=0)
    variation = vectors - means[person]
    within = variation.T @ variation / len(vectors)
    within += shrinkage * np.trace(within) / dimension * np.eye(dimension)
    identities = means - centre
    between = identities.T @ identities / len(identities)
    # The inverse of the same-person covariance [[B + W, B], [B, B + W]] is [[F + G, G], [G, F + G]].
    within_inverse = np.linalg.inv(within)
    g = -np.linalg.solve(2 * between + within, between) @ within_inverse
    a = np.linalg.inv(between + within) - (within_inverse + g)
    # log N([x; y]; same) - log N([x; y]; different) = x'(A/2)x + y'(A/2)y - x'Gy + constant.
    return JointBayesianScoring(centre, _symmetric(-g), _symmetric(a / 2))


def fit_calibration(log_likelihood_ratios: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the logistic regression of `same` on the ratios: the mapping from
    ratio to probability that the pairs themselves support."""
    weights = fit_logistic(np.asarray(log_likelihood_ratios, np.float64)[:, None], same)
    return float(weights[0]), float(weights[1])


def fit_texture_fusion(train_faces: tuple[np.ndarray, np.ndarray, np.ndarray], train_names: np.ndarray,
                       validation_faces: tuple[np.ndarray, np.ndarray, np.ndarray],
                       validation_pairs: tuple[np.ndarray, np.ndarray], same: np.ndarray,
                       dimension: int = TEXTURE_DIMENSION) -> tuple[TextureFusionScoring, np.ndarray]:
    """The fusion of a network's vectors with texture vectors: the texture projection and both Joint
    Bayesians fitted on the training images (never a test person's), the three scores' weights on
    the validation pairs, given as (a, b) indices into the validation images (each image described
    once, whatever its pairs), `same` person? Faces are (N x S x S x 3 crops, N x 5 x 2 landmarks
    in them, N x D the network's unit vectors of them). Also gives the validation images'
    embeddings as the kiosk makes them with this scoring (describing faces is the slow part)."""
    crops, landmarks, network = train_faces
    histograms = _histograms_in_chunks(crops, landmarks)
    texture, train_vectors = TextureProjection.fit(histograms, dimension)
    texture_joint_bayesian = fit_joint_bayesian(train_vectors, train_names, TEXTURE_SHRINKAGE)
    network_joint_bayesian = fit_joint_bayesian(network, train_names, FUSION_NETWORK_SHRINKAGE)
    validation_crops, validation_landmarks, validation_network = validation_faces
    described = texture.vectors(_histograms_in_chunks(validation_crops, validation_landmarks))
    a, b = validation_pairs
    scores = np.stack([np.einsum("ij,ij->i", validation_network[a], validation_network[b]),
                       network_joint_bayesian.log_likelihood_ratios(validation_network[a], validation_network[b]),
                       texture_joint_bayesian.log_likelihood_ratios(described[a], described[b])], axis=1)
    w_cosine, w_network, w_texture, bias = (float(weight) for weight in fit_logistic(scores, same))
    return (TextureFusionScoring(texture, network_joint_bayesian, texture_joint_bayesian,
                                 (w_cosine, w_network, w_texture, bias)),
            TextureFusionScoring.join(validation_network, described))


def _histograms_in_chunks(crops: np.ndarray, landmarks: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, ...]:
    """face_histograms of many faces, a chunk at a time (its index arrays grow with the batch),
    written into the result as they come (the LPQ block of 6,000 faces alone is 4 GB)."""
    blocks: tuple[np.ndarray, ...] = ()
    for start in range(0, len(crops), chunk):
        part = face_histograms(crops[start:start + chunk], landmarks[start:start + chunk])
        if not blocks:
            blocks = tuple(np.empty((len(crops),) + block.shape[1:], block.dtype) for block in part)
        for block, values in zip(blocks, part):
            block[start:start + len(values)] = values
    return blocks


def fit_logistic(features: np.ndarray, same: np.ndarray, iterations: int = 50) -> np.ndarray:
    """The weights of each of the K columns of N x K `features`, then the intercept, of the
    logistic regression of `same` on them (Newton's method, no penalty)."""
    x = np.asarray(features, np.float64)
    y = np.asarray(same, np.float64)
    if not (y.min() == 0 and y.max() == 1):
        raise ValueError("calibration needs same-person and different-person pairs")
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    weights = np.append(1.0 / np.maximum(x.std(axis=0), 1e-12) / x.shape[1], 0.0)
    for _ in range(iterations):
        # Clipped: on separable pairs the log-odds run off to +-infinity; e^500 still fits a float64.
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ weights, -500, 500)))
        gradient = design.T @ (y - p)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(len(weights))
        step = np.linalg.solve(hessian, gradient)
        weights += step
        if np.abs(step).max() < 1e-10:
            break
    return weights


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return (matrix + matrix.T) / 2
