import json

import pytest

from training.export import training_command
from training.recipe import Recipe


def test_recipe_json_round_trip_matches_a_stored_summary():
    recipe = Recipe(loss="contrastive", epochs=3, widths=(8, 16, 16, 16))
    stored = json.loads(json.dumps({"recipe": recipe.as_json()}))["recipe"]
    assert stored == recipe.as_json()
    assert Recipe(**{**stored, "widths": tuple(stored["widths"])}) == recipe


def test_bad_recipes_are_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        Recipe(loss="hinge")
    with pytest.raises(ValueError, match="--freeze needs --init"):
        Recipe(freeze=True)
    with pytest.raises(ValueError, match="unknown sampling"):
        Recipe(sampling="by_name")
    with pytest.raises(ValueError, match="min_images"):
        Recipe(min_images=0)


def test_training_command_is_rebuilt_from_the_recorded_recipes(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "pretrain").mkdir(parents=True)
    (run_dir / "pretrain" / "summary.json").write_text(json.dumps({"recipe": Recipe(loss="cosface", epochs=30).as_json()}))
    final = Recipe(loss="triplet", epochs=10, learning_rate=5e-4, input_size=80,
                   init=str(run_dir / "pretrain" / "backbone.weights.h5"))
    command = training_command(run_dir, {"recipe": final.as_json()})
    assert command == (f"python -m training train --loss triplet --pretrain-epochs 30 --epochs 10 --input-size 80 "
                       f"--learning-rate 0.0005 --out {run_dir}")


def test_training_command_for_a_plain_run(tmp_path):
    command = training_command(tmp_path, {"recipe": Recipe(loss="pair_bce", augment=False).as_json()})
    assert command == f"python -m training train --loss pair_bce --no-augment --out {tmp_path}"


def test_training_command_keeps_the_pretraining_people_and_sampling(tmp_path):
    (tmp_path / "pretrain").mkdir()
    pretrain = Recipe(loss="cosface", epochs=30, min_images=1, sampling="capped")
    (tmp_path / "pretrain" / "summary.json").write_text(json.dumps({"recipe": pretrain.as_json()}))
    final = Recipe(loss="triplet", epochs=10, init=str(tmp_path / "pretrain" / "backbone.weights.h5"))
    command = training_command(tmp_path, {"recipe": final.as_json()})
    assert command == (f"python -m training train --loss triplet --pretrain-epochs 30 --pretrain-min-images 1 "
                       f"--pretrain-sampling capped --epochs 10 --out {tmp_path}")


def test_training_command_of_a_run_recorded_before_min_images_existed(tmp_path):
    recorded = Recipe(loss="triplet", epochs=4).as_json()
    del recorded["min_images"], recorded["sampling"]
    assert training_command(tmp_path, {"recipe": recorded}) == (
        f"python -m training train --loss triplet --epochs 4 --out {tmp_path}")
