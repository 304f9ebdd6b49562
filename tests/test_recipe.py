import json

import pytest

from training.export import training_command
from training.recipe import Recipe


def test_recipe_json_round_trip_matches_a_stored_summary():
    recipe = Recipe(loss="contrastive", epochs=3, widths=(8, 16, 16, 16))
    stored = json.loads(json.dumps({"recipe": recipe.as_json()}))["recipe"]
    assert stored == recipe.as_json()
    assert Recipe.from_json(stored) == recipe


def test_bad_recipes_are_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        Recipe(loss="hinge")
    with pytest.raises(ValueError, match="--freeze needs --init"):
        Recipe(freeze=True)
    with pytest.raises(ValueError, match="unknown sampling"):
        Recipe(sampling="by_name")
    with pytest.raises(ValueError, match="min_images"):
        Recipe(min_images=0)
    with pytest.raises(ValueError, match="occlusion_prob"):
        Recipe(occlusion_prob=1.5)
    with pytest.raises(ValueError, match="needs augmentation"):
        Recipe(augment=False, occlusion_prob=0.3)
    with pytest.raises(ValueError, match="needs augmentation"):
        Recipe(augment=False, sunglasses_prob=0.3)
    with pytest.raises(ValueError, match="sunglasses_prob"):
        Recipe(sunglasses_prob=2.0)
    with pytest.raises(ValueError, match="ema_decay"):
        Recipe(ema_decay=1.0)
    with pytest.raises(ValueError, match="distill_weight"):
        Recipe(distill_weight=0.0)
    with pytest.raises(ValueError, match="memory_batches"):
        Recipe(memory_batches=-1)
    with pytest.raises(ValueError, match="--loss triplet only"):
        Recipe(loss="contrastive", memory_batches=4)


def test_the_training_command_names_a_bad_recipe_in_one_line(tmp_path, capsys):
    from training.__main__ import main

    assert main(["train", "--epochs", "0", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: epochs must be 1 or more") and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing started


def test_training_command_is_rebuilt_from_the_recorded_recipes(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "pretrain").mkdir(parents=True)
    (run_dir / "pretrain" / "summary.json").write_text(json.dumps({"recipe": Recipe(loss="cosface", epochs=30).as_json()}))
    final = Recipe(loss="triplet", epochs=10, learning_rate=5e-4, input_size=80,
                   init=str(run_dir / "pretrain" / "backbone.weights.h5"))
    command = training_command(run_dir, {"recipe": final.as_json()})
    assert command == (f"python -m training train --loss triplet --pretrain-epochs 30 --epochs 10 --input-size 80 "
                       f"--learning-rate 0.0005 --out {run_dir}")


def test_training_command_gives_the_batch_shape_margin_and_scoring(tmp_path):
    recipe = Recipe(loss="triplet", identities_per_batch=64, images_per_identity=2, margin=0.5,
                    scoring="joint-bayesian")
    command = training_command(tmp_path, {"recipe": recipe.as_json()})
    assert command == (f"python -m training train --loss triplet --identities-per-batch 64 --images-per-identity 2 "
                       f"--margin 0.5 --scoring joint-bayesian --out {tmp_path}")


def test_pretraining_keeps_its_own_batch_shape_margin_and_scoring():
    from training.experiment import Pretraining

    main = Recipe(loss="triplet", identities_per_batch=64, images_per_identity=2, margin=0.5, scoring="joint-bayesian")
    phase_one = Pretraining(epochs=20).recipe(main)
    assert (phase_one.identities_per_batch, phase_one.images_per_identity, phase_one.margin, phase_one.scoring) == (
        Recipe().identities_per_batch, Recipe().images_per_identity, None, "cosine")


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


def fake_summary(recipe: Recipe, accuracy: float, seconds: float) -> dict:
    figures = {"accuracy": accuracy, "accuracy_std": 0.03, "accuracy_at_threshold": accuracy - 0.1, "auc": 0.93,
               "eer": 0.14, "tar_at_far_1e2": 0.5, "tar_at_far_1e3": 0.3}
    # One of the two same-person validation pairs clears the threshold: 50% accepted at the door.
    return {"recipe": recipe.as_json(), "test": figures, "validation": {"auc": 0.91}, "best_epoch": 3,
            "train_seconds": seconds, "threshold": {"value": 0.5}, "split": "View 1: train peopleDevTrain, test pairsDevTest",
            "scores": {"validation": [0.9, 0.3, 0.6, 0.2], "validation_same": [True, True, False, False],
                       "test": [accuracy, 0.2, 0.7, 0.1], "same": [True, True, False, False]}}


def test_runs_table_adds_pretraining_time_and_gives_each_command(tmp_path):
    from training.__main__ import main
    from training.runs_table import runs_table

    plain, staged = tmp_path / "plain", tmp_path / "staged"
    (staged / "pretrain").mkdir(parents=True)
    plain.mkdir()
    (plain / "summary.json").write_text(json.dumps(fake_summary(Recipe(loss="cosface", epochs=10), 0.807, 365.2)))
    (staged / "pretrain" / "summary.json").write_text(
        json.dumps(fake_summary(Recipe(loss="cosface", epochs=30, weight_decay=0.05), 0.835, 872.0)))
    final = Recipe(loss="triplet", epochs=10, weight_decay=0.05, init=str(staged / "pretrain" / "backbone.weights.h5"))
    (staged / "summary.json").write_text(json.dumps({**fake_summary(final, 0.867, 340.4), "validation_rank1": 0.4321,
                                                     "validation_true_accepts": {"tar": {"0.0001": 0.125}}}))

    table = runs_table([plain, staged])
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    # A run scored before validation rank-1 and the true accepts at FAR 1e-4 existed shows dashes there.
    assert rows[0].startswith(f"| `{plain}` | 91.00% | — | 50.00% | — | 80.70% | ±3.00 | 70.70% |")
    assert rows[0].endswith("| 365 | 365 |")
    assert rows[1].startswith(f"| `{staged}` | 91.00% | 43.21% | 50.00% | 12.50% | 86.70% |")
    assert rows[1].endswith("| 1212 | 1212 |")
    assert f"- `{staged}`: `python -m training train --loss triplet --pretrain-epochs 30 --epochs 10 " \
           f"--weight-decay 0.05 --out {staged}`" in table

    # Both runs accept the same validation pair and get the same DevTest pairs right: no difference.
    assert f"Paired differences from `{plain}`" in table
    assert rows[2] == f"| `{staged}` | +0.00 [+0.00, +0.00] | +0.00 [+0.00, +0.00] |"

    out = tmp_path / "table.md"
    assert main(["runs", str(plain), str(staged), "--out", str(out)]) == 0 and out.read_text() == table
    assert main(["runs", str(tmp_path / "missing")]) == 2


def test_training_command_passes_mixed_precision_as_a_switch(tmp_path):
    command = training_command(tmp_path, {"recipe": Recipe(loss="triplet", mixed_precision=True).as_json()})
    assert command == f"python -m training train --loss triplet --mixed-precision --out {tmp_path}"


def test_training_command_writes_the_occluder_probabilities(tmp_path):
    recipe = Recipe(occlusion_prob=0.25, sunglasses_prob=0.1, mixed_precision=True)
    command = training_command(tmp_path, {"recipe": recipe.as_json()})
    assert command == (f"python -m training train --loss triplet --mixed-precision --occlusion-prob 0.25 "
                       f"--sunglasses-prob 0.1 --out {tmp_path}")


def test_training_command_writes_the_embedding_size_weight_average_and_memory(tmp_path):
    command = training_command(tmp_path, {"recipe": Recipe(ema_decay=0.99, memory_batches=20, embedding_size=256).as_json()})
    assert command == (f"python -m training train --loss triplet --embedding-size 256 --ema-decay 0.99 "
                       f"--memory-batches 20 --out {tmp_path}")


def test_training_command_names_the_teachers_of_a_distilled_run(tmp_path):
    recipe = Recipe(distill_from=("runs/a", "runs/b"), distill_weight=5.0)
    command = training_command(tmp_path, {"recipe": recipe.as_json()})
    assert command == (f"python -m training train --loss triplet --distill-from runs/a runs/b "
                       f"--distill-weight 5 --out {tmp_path}")
    assert Recipe.from_json(json.loads(json.dumps(recipe.as_json()))) == recipe


def test_a_distilled_run_needs_its_teachers_first_and_counts_their_time(tmp_path):
    from training.chain import chain, chain_seconds
    from training.runs_table import runs_table

    teacher, other, student = tmp_path / "teacher", tmp_path / "other", tmp_path / "student"
    (teacher / "pretrain").mkdir(parents=True)
    other.mkdir()
    student.mkdir()
    teacher_init = str(teacher / "pretrain" / "backbone.weights.h5")
    (teacher / "pretrain" / "summary.json").write_text(json.dumps(fake_summary(Recipe(loss="cosface"), 0.8, 1000.0)))
    (teacher / "summary.json").write_text(json.dumps(fake_summary(Recipe(init=teacher_init), 0.85, 400.0)))
    (other / "summary.json").write_text(json.dumps(fake_summary(Recipe(), 0.84, 300.0)))
    distilled = Recipe(init=teacher_init, distill_from=(str(teacher), str(other)))
    (student / "summary.json").write_text(json.dumps(fake_summary(distilled, 0.87, 500.0)))

    # The run whose pre-training it starts from (also a teacher here) comes first, once.
    assert chain(student) == [teacher, other, student]
    assert chain_seconds(student) == 1000.0 + 400.0 + 300.0 + 500.0
    assert chain_seconds(teacher) == 1400.0
    row = next(line for line in runs_table([student]).splitlines() if line.startswith("| `"))
    assert row.endswith("| 2200 | 500 |")
    (other / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a finished run folder"):
        chain(student)


def test_the_split_seed_chooses_the_validation_people_and_defaults_to_the_seed(tmp_path):
    assert Recipe(seed=3).held_out_seed == 3
    assert Recipe(seed=3, split_seed=0).held_out_seed == 0
    command = training_command(tmp_path, {"recipe": Recipe(seed=3, split_seed=0).as_json()})
    assert command == f"python -m training train --loss triplet --seed 3 --split-seed 0 --out {tmp_path}"
    recorded = Recipe(seed=3).as_json()
    del recorded["split_seed"]  # a run recorded before --split-seed existed
    assert Recipe.from_json(recorded).held_out_seed == 3


def test_runs_table_names_the_pairs_the_runs_were_tested_on():
    from training.runs_table import test_pairs_name

    view1 = {"split": "View 1: train peopleDevTrain (minus validation slice), test pairsDevTest"}
    fold = {"split": "View 2 fold 3: train the other nine folds of people.txt, test fold 3 of pairs.txt"}
    other = {"split": "View 2 fold 4: train the other nine folds of people.txt, test fold 4 of pairs.txt"}
    assert test_pairs_name([view1, view1]) == "DevTest"
    assert test_pairs_name([fold, fold]) == "fold 4 test"  # numbered from 1, as reports/view2*.md
    assert test_pairs_name([fold, other]) == test_pairs_name([view1, fold]) == "test"



def test_training_command_of_a_dlib_fine_tuning_gives_both_learning_rates(tmp_path):
    from training.compare import dlib_recipes

    untrained, _, pair_tuned, _, _ = dlib_recipes(2, 40)
    assert training_command(tmp_path, {"recipe": pair_tuned.as_json()}) == (
        "python -m training train --loss pair_bce --init dlib --epochs 2 --steps 40 --input-size 150 "
        f"--identities-per-batch 16 --learning-rate 0.001 --backbone-learning-rate 1e-05 --out {tmp_path}")
    assert training_command(tmp_path, {"recipe": untrained.as_json()}).startswith(
        "python -m training train --loss triplet --init dlib --epochs 0 ")
