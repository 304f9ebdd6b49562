"""dlib's face-recognition ResNet as a recipe's starting point (`Recipe(init="dlib")`, training.dlib_init):
it really is dlib's network with dlib's weights, `freeze` and fine-tuning train what they say, and
its View 1 crops put no DevTest person into training or validation.

Needs the train extra (face-recognition-models ships dlib's model file); without it those tests
skip, saying so. The split tests read the LFW protocol files only.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_data import check_split, protocol_images
from test_dlib_resnet import needs_dlib
from tiny_lfw import tiny_lfw_and_crops

from kiosk.alignment import AlignmentSpec
from training.data import view1_split
from training.dlib_crops import view1_refs
from training.experiment import split_for
from training.prepare import PreparedLFW
from training.recipe import DLIB_INIT, Recipe

DLIB = Recipe(init=DLIB_INIT, input_size=150, epochs=1, steps_per_epoch=1, identities_per_batch=2,
              images_per_identity=2, learning_rate=1e-3)
# The dlib template of the shipped model's card: any five points make crops "at a template".
TEMPLATE = AlignmentSpec(150, points=((0.31, 0.30), (0.67, 0.30), (0.49, 0.51), (0.34, 0.69), (0.65, 0.69)))


def dlib_crops_of(refs, spec: AlignmentSpec = TEMPLATE) -> PreparedLFW:
    """Records of `refs` as prepared_crops writes them, with placeholder crops of the spec's size (a
    split reads only names and paths; broadcast, so 8,000 of them cost no memory)."""
    records = [{"name": ref.name, "number": ref.number, "relpath": ref.relpath} for ref in refs]
    crops = np.broadcast_to(np.zeros((1, spec.size, spec.size, 3), np.uint8), (len(records), spec.size, spec.size, 3))
    return PreparedLFW(Path("protocol files"), crops, records, {"alignment": spec.to_dict()})


def same_split_as_all_of_lfw(lfw, everything: PreparedLFW, dlib_crops: PreparedLFW) -> None:
    """The dlib crops' split trains and holds out exactly the people (and validation pairs, as image
    paths) that the split of every LFW image does: no DevTest person in either."""
    ours, reference = split_for(DLIB, lfw, dlib_crops), view1_split(lfw, everything)
    check_split(ours, dlib_crops, lfw.pairs("devtest"))
    assert ours.train_names == reference.train_names

    def paths(prepared, rows):
        return [prepared.records[row]["relpath"] for row in rows.tolist()]

    assert paths(dlib_crops, ours.validation.a) == paths(everything, reference.validation.a)
    assert paths(dlib_crops, ours.validation.b) == paths(everything, reference.validation.b)
    assert paths(dlib_crops, ours.train_rows) == paths(everything, reference.train_rows)
    names = np.array([record["name"] for record in dlib_crops.records])
    validating = set(names[np.concatenate([ours.validation.a, ours.validation.b])])
    assert not set(lfw.people("devtest")) & (set(ours.train_names) | validating)


def test_dlib_crops_train_and_validate_the_same_people_as_all_of_a_tiny_lfw():
    lfw, everything = tiny_lfw_and_crops()
    refs = view1_refs(lfw)
    assert len(refs) < len(everything.records)  # DevTest people's images outside the pairs are not aligned
    same_split_as_all_of_lfw(lfw, everything, dlib_crops_of(refs))


@pytest.mark.lfw
def test_dlib_crops_of_real_lfw_put_no_devtest_person_in_training_or_validation(lfw):
    same_split_as_all_of_lfw(lfw, protocol_images(lfw), dlib_crops_of(view1_refs(lfw)))


def test_dlib_recipes_refuse_crops_of_another_template_and_view_2():
    lfw, everything = tiny_lfw_and_crops()
    with pytest.raises(ValueError, match="dlib's template"):
        split_for(DLIB, lfw, dlib_crops_of(view1_refs(lfw), AlignmentSpec(150)))
    with pytest.raises(ValueError, match="dlib's template"):
        split_for(DLIB, lfw, everything)
    with pytest.raises(ValueError, match="View 1 only"):
        split_for(DLIB, lfw, dlib_crops_of(view1_refs(lfw)), view=2)


def test_dlib_recipes_are_checked_and_named():
    with pytest.raises(ValueError, match="--input-size 150"):
        Recipe(init=DLIB_INIT)
    with pytest.raises(ValueError, match="--embedding-size 128"):
        replace(DLIB, embedding_size=64)
    with pytest.raises(ValueError, match="float32"):
        replace(DLIB, mixed_precision=True)
    with pytest.raises(ValueError, match="0 only with --init"):
        Recipe(epochs=0)
    with pytest.raises(ValueError, match="needs --init without --freeze"):
        Recipe(backbone_learning_rate=1e-5)
    with pytest.raises(ValueError, match="needs --init without --freeze"):
        replace(DLIB, freeze=True, backbone_learning_rate=1e-5)
    assert replace(DLIB, epochs=0).name == "dlib-as-is"
    assert replace(DLIB, loss="pair_bce", freeze=True).name == "pair_bce-aug-dlib-frozen"
    assert replace(DLIB, backbone_learning_rate=1e-5).name == "triplet-aug-dlib-finetuned"
    assert Recipe.from_json(replace(DLIB, backbone_learning_rate=1e-5).as_json()).backbone_learning_rate == 1e-5


# The network: dlib's weights, and what each form trains

@pytest.fixture(scope="module")
def faces(astronaut) -> np.ndarray:
    """Four real 150 px face crops (the astronaut, shifted and mirrored)."""
    crop = np.ascontiguousarray(astronaut[90:260, 170:340])[:150, :150]
    return np.stack([crop, crop[:, ::-1], np.roll(crop, 6, axis=0), np.roll(crop, -6, axis=1)])


@needs_dlib
def test_untrained_dlib_init_embeds_as_the_converted_backbone(faces):
    from training.dlib_resnet import build_dlib_resnet, read_weights
    from training.train import initial_backbone, train

    converted = np.asarray(build_dlib_resnet(read_weights())(faces / 255.0))
    assert np.abs(converted[0] - converted[2]).max() > 1e-3  # different inputs, different real descriptors
    for recipe in (DLIB, replace(DLIB, freeze=True), replace(DLIB, epochs=0)):
        np.testing.assert_allclose(np.asarray(initial_backbone(recipe)(faces / 255.0)), converted, atol=1e-5)
    # 0 epochs: the backbone as it is, without training or even reading the data.
    result = train(replace(DLIB, epochs=0), split=None, prepared=None)
    assert result.best_epoch == 0 and result.seconds == 0
    np.testing.assert_allclose(np.asarray(result.backbone(faces / 255.0)), converted, atol=1e-5)


def _one_step(recipe: Recipe, faces: np.ndarray):
    """The backbone's weights (by layer name) before and after one training step on the faces."""
    from training.train import build_training

    training = build_training(recipe, faces.astype(np.float32) / 255.0, np.array([0, 0, 1, 1]), recipe.learning_rate)
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in training.backbone.layers}
    training.step(0)
    after = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in training.backbone.layers}
    return {name: any(not np.array_equal(b, a) for b, a in zip(before[name], after[name]))
            for name in before if before[name]}


@needs_dlib
@pytest.mark.parametrize("loss", ["triplet", "pair_bce"])
def test_frozen_dlib_trains_only_its_embedding_head(faces, loss):
    changed = _one_step(replace(DLIB, loss=loss, freeze=True, margin=1.5), faces)
    assert changed.pop("embedding_dense")
    assert not any(changed.values()), f"frozen layers moved: {[name for name, moved in changed.items() if moved]}"


@needs_dlib
def test_fine_tuned_dlib_trains_its_convolutions_but_never_its_affine_layers(faces):
    changed = _one_step(replace(DLIB, margin=1.5, backbone_learning_rate=1e-5), faces)
    affine = {name: moved for name, moved in changed.items() if "affine" in name}
    assert len(affine) == 29 and not any(affine.values())
    assert changed["embedding_dense"] and changed["conv"] and changed["descriptor"] and changed["level0_down_conv2"]
