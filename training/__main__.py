"""Command line of the training tool: `python -m training COMMAND --help`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.lfw import LFW_ENV_VAR


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """Every choice of a training recipe, for `train` and `view2` alike."""
    from training.recipe import LOSSES, SAMPLINGS, Recipe

    defaults = Recipe()
    parser.add_argument("--loss", choices=LOSSES, default=defaults.loss, help=f"default {defaults.loss}")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--init", help="weights of a pretrained backbone (e.g. runs/<cosface run>/backbone.weights.h5), "
                                       "or 'dlib': dlib's face-recognition ResNet with dlib's weights, on 150 px crops "
                                       "aligned onto dlib's template (with --input-size 150; View 1 only)")
    parser.add_argument("--freeze", action="store_true", help="with --init: train only the embedding layers")
    parser.add_argument("--backbone-learning-rate", type=float, default=None,
                        help="with --init (not --freeze): the pretrained layers' learning rate, below --learning-rate, "
                             "which the new layers on top keep; default: --learning-rate for all")
    parser.add_argument("--pretrain-epochs", type=int, default=0,
                        help="first pre-train a backbone with CosFace for N epochs, then train --loss from it")
    parser.add_argument("--pretrain-min-images", type=int, default=defaults.min_images,
                        help="pre-training classes: people with at least N training images (1 adds the "
                             f"single-photo people); default {defaults.min_images}")
    parser.add_argument("--pretrain-sampling", choices=SAMPLINGS, default=defaults.sampling,
                        help="how pre-training batches pick people (capped: by images, at most K each); "
                             f"default {defaults.sampling}")
    parser.add_argument("--min-images", type=int, default=defaults.min_images,
                        help=f"train on people with at least N images; default {defaults.min_images}")
    parser.add_argument("--sampling", choices=SAMPLINGS, default=defaults.sampling, help=f"default {defaults.sampling}")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"default {defaults.epochs}")
    parser.add_argument("--steps", type=int, default=defaults.steps_per_epoch, help=f"steps per epoch; default {defaults.steps_per_epoch}")
    parser.add_argument("--input-size", type=int, default=defaults.input_size, help=f"network input in px; default {defaults.input_size}")
    parser.add_argument("--embedding-size", type=int, default=defaults.embedding_size,
                        help=f"length of the face embedding; default {defaults.embedding_size}")
    parser.add_argument("--identities-per-batch", type=int, default=defaults.identities_per_batch,
                        help=f"P people per batch; default {defaults.identities_per_batch}")
    parser.add_argument("--images-per-identity", type=int, default=defaults.images_per_identity,
                        help=f"K images of each per batch; default {defaults.images_per_identity}")
    parser.add_argument("--margin", type=float, default=None, help="the loss's margin; default: the loss's own")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                        help=f"AdamW's decoupled decay (both phases); default {defaults.weight_decay:g}")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="compute in bfloat16, keep float32 weights (both phases): faster on CPUs with "
                             "AVX512-BF16 or AMX and on GPUs, slower elsewhere; evaluation stays float32")
    parser.add_argument("--occlusion-prob", type=float, default=defaults.occlusion_prob,
                        help="chance that a training image gets a flat-coloured occluder over 2-20%% of it "
                             f"(both phases); default {defaults.occlusion_prob:g}")
    parser.add_argument("--sunglasses-prob", type=float, default=defaults.sunglasses_prob,
                        help="chance that a training image gets dark lenses over both eyes (both phases); "
                             f"default {defaults.sunglasses_prob:g}")
    parser.add_argument("--ema-decay", type=float, default=defaults.ema_decay,
                        help="validate and keep a moving average of the weights, updated every step with this "
                             f"decay, e.g. 0.99 (both phases); default {defaults.ema_decay:g} (off)")
    parser.add_argument("--distill-from", nargs="+", default=[], metavar="RUN",
                        help="finished run folders (same split and held-out people) whose mean cosine between training "
                             "images the network also learns to match; not the pre-training")
    parser.add_argument("--teacher", choices=("dlib",),
                        help="an online teacher: dlib's ResNet embeds every augmented view in the same step and the "
                             "network learns its embeddings and the cosines between them (needs --input-size 150 "
                             "--embedding-size 128: dlib's crops; not with --init or --distill-from)")
    parser.add_argument("--distill-weight", type=float, default=defaults.distill_weight,
                        help=f"weight of the distillation losses (--distill-from, --teacher); "
                             f"default {defaults.distill_weight:g}")
    parser.add_argument("--input-pool", type=int, default=defaults.input_pool,
                        help="average-pool the crop by this factor inside the network before its first convolution "
                             "(2: a 150 px crop seen at 75 px); default 1")
    parser.add_argument("--memory-batches", type=int, default=defaults.memory_batches,
                        help="with --loss triplet: also seek each anchor's nearest impostor among the embeddings "
                             f"of the last N batches (cross-batch memory); default {defaults.memory_batches} (off)")
    _add_scoring_option(parser, default=defaults.scoring)
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="initialisation, batches, augmentation and (unless --split-seed) the validation people")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="which people are held out for validation; default: --seed. Fix it to compare "
                             "seeds on one validation slice, or to let runs of several seeds teach one student")


def _add_scoring_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    from training.recipe import SCORINGS

    parser.add_argument("--scoring", choices=SCORINGS, default=default,
                        help="how two embeddings are scored: cosine; joint-bayesian (a back end fitted to the "
                             "network's embeddings of its training people, calibrated on the validation pairs); "
                             "as-norm (the cosine normalised by each face's cosines with the training images); "
                             "cosine+texture (the cosine fused with hand-made LBP and LPQ texture vectors)"
                             + (f"; default {default}" if default else "; default: the run's own"))


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lfw-dir", help=f"LFW folder (images or .tgz + protocol files); default ${LFW_ENV_VAR}")
    parser.add_argument("--cache-dir", type=Path, help="where aligned crops are cached; default $KIOSK_CACHE_DIR or ~/.cache/face-kiosk")


def _prepare(args: argparse.Namespace) -> int:
    from kiosk.alignment import AlignmentSpec
    from training.lfw import LFW
    from training.prepare import default_cache_dir, prepare

    lfw = LFW.locate(args.lfw_dir, cache_dir=args.cache_dir)
    lfw.verify()
    prepared = prepare(lfw, args.cache_dir or default_cache_dir(), AlignmentSpec(args.size, args.margin), limit=args.limit)
    summary = prepared.summary
    print(json.dumps(summary, indent=1) if args.json else _prepare_report(prepared.folder, summary))
    return 0


def _prepare_report(folder: Path, summary: dict) -> str:
    speed = summary["images_per_second"]
    return "\n".join([
        f"prepared {summary['images']} images into {folder}",
        f"  no face detected: {summary['undetected']} ({summary['undetected_handling']})",
        f"  several faces: {summary['several_faces']} ({summary['several_faces_handling']})",
        f"  median landmark-to-template error: {summary['median_alignment_error_px']} px "
        f"({summary['median_alignment_error_of_eye_distance'] * 100:.1f}% of the eye distance)",
        f"  throughput this run: {speed} images/s" if speed else "  (everything came from the cache)",
    ])


def _load_data(args: argparse.Namespace, recipe=None):
    """LFW and its aligned crops: those `recipe` trains on (dlib's backbone has crops of its own)."""
    from training.lfw import LFW
    from training.prepare import default_cache_dir, prepare
    from training.recipe import DLIB_INIT

    lfw = LFW.locate(args.lfw_dir, cache_dir=args.cache_dir)
    cache_dir = args.cache_dir or default_cache_dir()
    if recipe is not None and DLIB_INIT in (recipe.init, recipe.teacher):
        from training.dlib_crops import prepared_crops

        return lfw, prepared_crops(lfw, cache_dir, recipe.min_images)
    return lfw, prepare(lfw, cache_dir)


def _run_recipe(run_dir: Path):
    from training.recipe import Recipe
    from training.run_folder import read_summary

    return Recipe.from_json(read_summary(run_dir)["recipe"])


def _recipe_from_args(args: argparse.Namespace):
    """The recipe (and the CosFace pre-training before it, if any) that `train` and `view2` options describe."""
    from training.experiment import Pretraining
    from training.recipe import Recipe

    recipe = Recipe(loss=args.loss, augment=not args.no_augment, init=args.init, freeze=args.freeze,
                    epochs=args.epochs, steps_per_epoch=args.steps, input_size=args.input_size,
                    embedding_size=args.embedding_size, identities_per_batch=args.identities_per_batch,
                    images_per_identity=args.images_per_identity, margin=args.margin,
                    learning_rate=args.learning_rate, backbone_learning_rate=args.backbone_learning_rate,
                    weight_decay=args.weight_decay, seed=args.seed,
                    split_seed=args.split_seed,
                    min_images=args.min_images, sampling=args.sampling, mixed_precision=args.mixed_precision,
                    occlusion_prob=args.occlusion_prob, sunglasses_prob=args.sunglasses_prob,
                    ema_decay=args.ema_decay,
                    distill_from=tuple(args.distill_from), distill_weight=args.distill_weight,
                    teacher=args.teacher, input_pool=args.input_pool,
                    memory_batches=args.memory_batches, scoring=args.scoring)
    pretraining = (Pretraining(args.pretrain_epochs, args.pretrain_min_images, args.pretrain_sampling)
                   if args.pretrain_epochs else None)
    return recipe, pretraining


def _train(args: argparse.Namespace) -> int:
    from training.experiment import describe, run_phases

    recipe, pretraining = _recipe_from_args(args)
    lfw, prepared = _load_data(args, recipe)
    out_dir = args.out or Path("runs") / (recipe.name if args.view == 1 else f"{recipe.name}-fold{args.fold}")
    summary = run_phases(recipe, lfw, prepared, out_dir, view=args.view, fold=args.fold,
                         target_far=args.target_far, pretraining=pretraining)
    print(describe(summary) + (f"; {summary['total_train_seconds']:.0f} s with pre-training" if pretraining else ""))
    print(f"run folder: {out_dir}")
    if args.export:
        from training.export import export_run

        print(f"exported {export_run(out_dir, lfw, prepared, args.export, args.target_far)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from training.export import export_run

    lfw, prepared = _load_data(args, _run_recipe(args.run))
    path = export_run(args.run, lfw, prepared, args.out, args.target_far)
    print(f"exported {path} (card: {path.with_name(path.stem + '.card.json')})")
    return 0


def _dlib_export(args: argparse.Namespace) -> int:
    from training.dlib_export import export_dlib
    from training.lfw import LFW
    from training.prepare import default_cache_dir

    lfw = LFW.locate(args.lfw_dir, cache_dir=args.cache_dir)
    path = export_dlib(lfw, args.cache_dir or default_cache_dir(), args.out, args.target_far, args.model_file,
                       command=" ".join(["python -m training", *sys.argv[1:]]), weights=args.weights, name=args.name)
    print(f"exported {path} (card: {path.with_name(path.stem + '.card.json')})")
    return 0


def _mtcnn_export(args: argparse.Namespace) -> int:
    from training.mtcnn_export import export_detector

    manifest = export_detector(args.out, command=" ".join(["python -m training", *sys.argv[1:]]))
    print(f"exported the face detector: {manifest}")
    return 0


def _far_tables(args: argparse.Namespace) -> int:
    from training.far_tables import write_mean_tables
    from training.lfw import LFW

    lfw = LFW.locate(args.lfw_dir)
    path = write_mean_tables(args.model, lfw, args.people, command=" ".join(["python -m training", *sys.argv[1:]]))
    print(f"wrote the mean-template tables into {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from training.compare import compare, compare_dlib, dlib_recipes

    command = " ".join(["python -m training", *sys.argv[1:]])
    if args.backbone == "dlib":
        lfw, prepared = _load_data(args, dlib_recipes(args.epochs, args.steps)[0])
        path = compare_dlib(lfw, prepared, args.reports, args.runs, args.epochs, args.steps, command, only=args.only)
    else:
        lfw, prepared = _load_data(args)
        path = compare(lfw, prepared, args.reports, args.runs, args.epochs, args.steps, command, only=args.only)
    print(f"comparison written to {path}")
    return 0


def _view2(args: argparse.Namespace) -> int:
    from training.recipe import DLIB_INIT
    from training.view2 import view2

    recipe, pretraining = _recipe_from_args(args)
    if DLIB_INIT in (recipe.init, recipe.teacher):
        print(f"error: --init/--teacher {DLIB_INIT} train and test on View 1 only (use `train`)", file=sys.stderr)
        return 2
    lfw, prepared = _load_data(args)
    path = view2(recipe, lfw, prepared, args.runs, args.reports, command=" ".join(["python -m training", *sys.argv[1:]]),
                 pretraining=pretraining)
    print(f"View 2 report written to {path}")
    return 0


def _rescore(args: argparse.Namespace) -> int:
    from training.experiment import describe, rescore

    for run_dir in args.run:
        try:
            lfw, prepared = _load_data(args, _run_recipe(run_dir))
            print(describe(rescore(run_dir, lfw, prepared, args.target_far, args.scoring)))
        except ValueError as exc:  # e.g. a View 2 run, or a recipe this version refuses
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def _runs(args: argparse.Namespace) -> int:
    from kiosk.atomic import atomic_write_bytes
    from training.runs_table import runs_table

    missing = [str(run) for run in args.run if not (run / "summary.json").exists()]
    if missing:
        print(f"not a finished run folder (no summary.json): {', '.join(missing)}", file=sys.stderr)
        return 2
    table = runs_table(args.run)
    if args.out:
        atomic_write_bytes(args.out, table.encode())
    print(table, end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help="detect and align every LFW image once into a cache",
                                  description="Detect and align every LFW image once (resumable).")
    _add_data_options(prepare)
    prepare.add_argument("--size", type=int, default=112, help="crop size in pixels (default 112)")
    prepare.add_argument("--margin", type=float, default=0.0, help="extra border, fraction of the crop (default 0)")
    prepare.add_argument("--limit", type=int, help="only the first N images (for quick trials)")
    prepare.add_argument("--json", action="store_true", help="print the summary as JSON")
    prepare.set_defaults(handler=_prepare)

    from training.recipe import DEFAULT_TARGET_FAR

    train = commands.add_parser("train", help="train one recipe, report on the held-out test pairs",
                                description="Train one Siamese recipe on LFW and report on its test pairs.")
    _add_data_options(train)
    _add_recipe_options(train)
    train.add_argument("--view", type=int, choices=(1, 2), default=1, help="1: DevTrain/DevTest; 2: one fold of pairs.txt")
    train.add_argument("--fold", type=int, default=0, help="with --view 2: the test fold 0-9")
    train.add_argument("--target-far", type=float, default=DEFAULT_TARGET_FAR,
                       help=f"false-accept rate on validation pairs that sets the threshold; default {DEFAULT_TARGET_FAR}")
    train.add_argument("--out", type=Path, help="run folder; default runs/<recipe name>")
    train.add_argument("--export", type=Path, help="also export the model there (e.g. assets/face_embedder.keras)")
    train.set_defaults(handler=_train)

    export = commands.add_parser("export", help="export a run as the kiosk's model + model card",
                                 description="Export a finished run folder as a .keras model with its model card.")
    _add_data_options(export)
    export.add_argument("run", type=Path, help="run folder written by `train`")
    export.add_argument("--out", type=Path, default=Path("assets/face_embedder.keras"), help="default assets/face_embedder.keras")
    export.add_argument("--target-far", type=float, default=DEFAULT_TARGET_FAR,
                        help=f"false-accept rate on the run's validation pairs that sets the threshold; default {DEFAULT_TARGET_FAR}")
    export.set_defaults(handler=_export)

    dlib_export = commands.add_parser(
        "dlib-export", help="dlib's face-recognition ResNet as a kiosk model + model card (no training)",
        description="Fit a crop template that reproduces dlib's face chips and a threshold on DevTrain people, and "
                    "export dlib's ResNet (weights from its .dat file) as DIR/NAME.keras with its TFLite "
                    "backbone and card; the kiosk can run the TFLite file alone (the shipped model is made with "
                    "--out assets --name face_embedder). Needs the train extra (face-recognition-models, dlib-bin).")
    _add_data_options(dlib_export)
    dlib_export.add_argument("--out", type=Path, required=True, help="folder for the model, its TFLite copy and card")
    dlib_export.add_argument("--target-far", type=float, default=DEFAULT_TARGET_FAR,
                             help=f"false-accept rate on the validation people that sets the threshold; "
                                  f"default {DEFAULT_TARGET_FAR}")
    dlib_export.add_argument("--name", default="dlib_resnet", help="file name stem of the model; default dlib_resnet")
    dlib_export.add_argument("--weights", choices=("float32", "float16"), default="float16",
                             help="the TFLite backbone's weights, on which the threshold is fitted; default float16")
    dlib_export.add_argument("--model-file", type=Path,
                             help="dlib_face_recognition_resnet_model_v1.dat; default: face-recognition-models' copy")
    dlib_export.set_defaults(handler=_dlib_export)

    mtcnn_export = commands.add_parser(
        "mtcnn-export", help="the face detector (the mtcnn package's networks) as TFLite files for the kiosk",
        description="Convert the mtcnn package's PNet, RNet and ONet, weights unchanged, into TFLite files with a "
                    "manifest of their digests; the kiosk detects faces with them without TensorFlow (the shipped "
                    "detector is made with --out assets).")
    mtcnn_export.add_argument("--out", type=Path, required=True, help="folder for the three files and their manifest")
    mtcnn_export.set_defaults(handler=_mtcnn_export)

    far_tables = commands.add_parser(
        "far-tables", help="measure the door's tables for scoring each person by their mean template",
        description="Measure how alike a stranger's photo looks to the mean of k photos of someone else (k = 1-6), "
                    "through the kiosk's own path, and write the tables into the model's card; with them the door "
                    "scores each person by the mean of their templates (kiosk.calibration).")
    far_tables.add_argument("--lfw-dir", help=f"LFW folder (images or .tgz + protocol files); default ${LFW_ENV_VAR}")
    far_tables.add_argument("--model", type=Path, required=True, help="the model file whose card gets the tables")
    far_tables.add_argument("--people", choices=("validation", "devtrain"), default="validation",
                            help="whom to measure: the View 1 validation people (default), or all of DevTrain for "
                                 "a model that never trained on LFW (the shipped dlib backbone)")
    far_tables.set_defaults(handler=_far_tables)

    compare = commands.add_parser("compare", help="the study's comparison on View 1 (all Siamese forms)",
                                  description="Train every cell of the comparison and write reports/compare.md.")
    _add_data_options(compare)
    compare.add_argument("--epochs", type=int, default=8, help="short schedule per cell; default 8")
    compare.add_argument("--steps", type=int, default=100, help="steps per epoch; default 100")
    compare.add_argument("--runs", type=Path, default=Path("runs/compare"), help="run folders (reused when the recipe matches)")
    compare.add_argument("--reports", type=Path, default=Path("reports"), help="where compare.md/json/png go")
    compare.add_argument("--only", nargs="*", help="only these cells (names as in the table)")
    compare.add_argument("--backbone", choices=("ours", "dlib"), default="ours",
                         help="ours: this project's network in every form (the first table); dlib: dlib's "
                              "face-recognition ResNet as it is, and frozen or fine-tuned in the pair and triplet forms "
                              "(the second table; its own 150 px crops; suits --epochs 2 --steps 40); default ours")
    compare.set_defaults(handler=_compare)

    rescore = commands.add_parser("rescore", help="score finished View 1 run folders again with today's evaluation",
                                  description="Recompute a run's figures (threshold, DevTest, validation rank-1) "
                                              "from its saved weights, without training; rewrites its summary.json.")
    _add_data_options(rescore)
    rescore.add_argument("run", type=Path, nargs="+", help="run folders written by `train`")
    rescore.add_argument("--target-far", type=float, default=DEFAULT_TARGET_FAR,
                         help=f"false-accept rate that sets the threshold; default {DEFAULT_TARGET_FAR}")
    _add_scoring_option(rescore, default=None)
    rescore.set_defaults(handler=_rescore)

    runs = commands.add_parser("runs", help="finished run folders side by side (markdown), with their commands",
                               description="Tabulate the DevTest figures of finished run folders.")
    runs.add_argument("run", type=Path, nargs="+", help="run folders written by `train`")
    runs.add_argument("--out", type=Path, help="also write the table to this file")
    runs.set_defaults(handler=_runs)

    view2 = commands.add_parser("view2", help="LFW View 2: ten trainings, one per fold of pairs.txt",
                                description="Train one model per View 2 fold and report mean and std over folds.")
    _add_data_options(view2)
    _add_recipe_options(view2)
    view2.add_argument("--runs", type=Path, default=Path("runs/view2"), help="one run folder per fold (reused)")
    view2.add_argument("--reports", type=Path, default=Path("reports"))
    view2.set_defaults(handler=_view2)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kiosk.errors import KioskError
    from training.dlib_format import DlibFormatError
    from training.lfw import LFWError
    from training.recipe import RecipeError

    try:
        return args.handler(args)
    except (LFWError, KioskError, FileNotFoundError, DlibFormatError, RecipeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
