"""The command line: `python -m fer_helpers info | train | evaluate | bench | export | predict`;
`experiment NAME` runs a named experiment (experiments.py).

Every sub-command has --help; `python -m fer_helpers --version` names the version.
Bad input ends with a one-line message on stderr and exit status 2, never a traceback.
`info` and `evaluate` read FER2013 (--data) or any folder of class folders (--folder).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import DataError, FerError

if TYPE_CHECKING:  # only types: the commands import what they run when they run
    from .data import FaceData


def _add_data_option(parser: argparse._ActionsContainer) -> None:  # a parser or a group
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="FER2013 folder or CSV (default: $FER2013_DIR, else data/fer2013/, else "
        "synthetic faces); 'synthetic' forces synthetic faces",
    )


def _add_data_or_folder_options(parser: argparse.ArgumentParser) -> None:
    """--data (FER2013) or --folder (any folder of class folders), and --skip-bad."""
    source = parser.add_mutually_exclusive_group()
    _add_data_option(source)
    source.add_argument(
        "--folder",
        metavar="DIR",
        help="instead of FER2013, any folder with one sub-folder of images per emotion "
        "(angry/anger, disgust/disgusted, fear/fearful, happy/happiness, sad/sadness, "
        "surprise/surprised, neutral; any case); PNG or JPEG of any size and colour, "
        "converted to 48x48 gray (cropped to the face where one is found)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="with --folder: leave out (and name) files that cannot be read, instead of stopping",
    )


def _add_train_options(train: argparse.ArgumentParser) -> None:
    from .losses import SCHEMES
    from .models import SmallVGG
    from .recipes import AUGMENTATIONS, FAST, OBJECTIVES, OPTIMIZERS, RECIPES, SAMPLINGS, SCHEDULES

    train.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="fast (default: batch norm, one-cycle AdamW, augmentation, bfloat16 where the "
        "CPU has it) or course (the handout's: batch 32, Adam 1e-3, 10 epochs); with "
        "--resume, the run's own recipe unless this or a setting below is given",
    )
    train.add_argument(
        "--model",
        help="architecture: si100, convnet5 (Report 1), resnet9 (Report 3), dacl (Report 2's "
        "ResNet-18 with attention) or smallvgg (the nets of the shipped best-7class) "
        "(default: the recipe's, si100)",
    )
    train.add_argument(
        "--classes",
        help="comma-separated class names in output order, or 'all' (default: happy,neutral,sad;"
        " with --resume, the run's)",
    )
    train.add_argument(
        "--out",
        default="face_expression.pth",
        help="checkpoint to write after every epoch (default: face_expression.pth)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint at --out after an interruption",
    )
    train.add_argument(
        "--seed", type=int, help="random seed (default: 0; with --resume, the run's)"
    )
    train.add_argument(
        "--clean",
        action="store_true",
        help="drop blank and duplicate images from training (see `info`)",
    )
    train.add_argument(
        "--device",
        choices=["cpu", "cuda", "mps"],
        help="force a device (default: CUDA, then MPS, then CPU)",
    )
    train.add_argument(
        "--validate-every",
        type=int,
        default=1,
        metavar="N",
        help="validate after every Nth epoch and the last (default: 1); a larger N saves "
        "time on long runs and trains the same weights",
    )
    recipe = train.add_argument_group("recipe settings (default: the recipe's)")
    recipe.add_argument("--epochs", type=int, help=f"epochs (fast: {FAST.epochs})")
    recipe.add_argument("--batch-size", type=int, help=f"batch size (fast: {FAST.batch_size})")
    recipe.add_argument("--optimizer", choices=OPTIMIZERS, help=f"(fast: {FAST.optimizer})")
    recipe.add_argument("--lr", type=float, help=f"(peak) learning rate (fast: {FAST.lr})")
    recipe.add_argument("--weight-decay", type=float, help=f"(fast: {FAST.weight_decay})")
    recipe.add_argument("--schedule", choices=SCHEDULES, help=f"(fast: {FAST.schedule})")
    recipe.add_argument("--label-smoothing", type=float, help=f"(fast: {FAST.label_smoothing})")
    recipe.add_argument(
        "--dropout",
        type=float,
        help=f"the model's dropout; refused by a model without one (fast: {FAST.dropout})",
    )
    recipe.add_argument(
        "--width",
        type=int,
        help=f"channels of the first convolution, the next ones 2x and 4x (si100; course: 64, "
        f"fast: {FAST.width})",
    )
    recipe.add_argument(
        "--per-class",
        type=int,
        metavar="N",
        help="train on at most N faces of each class, a seeded choice (default: all)",
    )
    recipe.add_argument(
        "--sampling",
        choices=SAMPLINGS,
        help="balanced: every class equally often in the batches (default: shuffle)",
    )
    recipe.add_argument(
        "--class-weights",
        choices=("none", *SCHEMES),
        help="weigh each class's loss by its rarity (default: none)",
    )
    recipe.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        help="center or dacl: add (DACL's sparse) center loss; needs --model dacl "
        "(default: cross_entropy)",
    )
    recipe.add_argument(
        "--centre-lr", type=float, help="learning rate of the class centres (default: 0.5)"
    )
    recipe.add_argument(
        "--start-from",
        metavar="WEIGHTS",
        help="start from a trained network's weights, all but the last layer (a shipped name "
        "or a checkpoint of the same model and input): transfer learning (default: none)",
    )
    recipe.add_argument(
        "--channels",
        type=int,
        choices=[1, 3],
        help=f"input channels: 3 (gray copied to RGB, as the course) or 1 (fast: {FAST.channels})",
    )
    recipe.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        help="auto: bfloat16 on GPUs and CPUs that compute in it (fast: auto, course: fp32)",
    )
    recipe.add_argument(
        "--augment",
        choices=list(AUGMENTATIONS),
        help="cropflip: random shift and mirror; cropflip-erase: then a random rectangle of "
        "half the faces painted gray; affine: mirror, rotation, zoom and shift "
        f"(fast: {FAST.augment})",
    )
    recipe.add_argument(
        "--head",
        choices=list(SmallVGG.heads),
        help="smallvgg: average the last 3x3 map (default) or flatten it, keeping where on "
        "the face each feature is",
    )
    recipe.add_argument(
        "--mixup",
        type=float,
        metavar="ALPHA",
        help="mix training faces in pairs with weights from Beta(ALPHA, ALPHA), e.g. 0.3 "
        f"(fast: {FAST.mixup}: off)",
    )
    recipe.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        help="validate and save an exponential moving average of the weights, updated after "
        f"every step with this decay, e.g. 0.999 (fast: {FAST.ema}: off)",
    )
    flags = {
        "batch-norm": "batch norm after each convolution (si100); a model built with or "
        "without it refuses the other",
        "channels-last": "channels_last memory layout (faster convolutions on CPUs)",
        "pool-before-norm": "conv -> pool -> batch norm (si100; fast: on, course: no norm)",
        "tta": "validate on each face and its mirror image",
    }
    for flag, text in flags.items():
        recipe.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, help=text)


def recipe_from_args(args: argparse.Namespace, base=None):  # -> recipes.TrainRecipe
    """The chosen recipe (--recipe, else `base`, else fast) with the settings given."""
    from dataclasses import replace

    from .recipes import FAST, get_recipe, with_arch

    fields = [
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "weight_decay",
        "schedule",
        "label_smoothing",
        "dropout",
        "width",
        "pool_before_norm",
        "head",
        "channels",
        "precision",
        "batch_norm",
        "augment",
        "mixup",
        "ema",
        "channels_last",
        "tta",
        "per_class",
        "sampling",
        "class_weights",
        "objective",
        "centre_lr",
        "start_from",
    ]
    changes = {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
    chosen = get_recipe(args.recipe) if args.recipe else base or FAST
    if args.model is not None:
        chosen = with_arch(chosen, args.model)
    recipe = replace(chosen, **changes)
    if recipe.epochs < 1 or recipe.batch_size < 1:
        raise FerError("--epochs and --batch-size must be at least 1")
    return recipe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fer_helpers",
        description="Facial-expression recognition course: data, training and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"fer-helpers {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser(
        "info",
        help="where the data are, images per class, audit",
        description="Show which FER2013 layout was found, the images "
        "per class and split, and the data audit; with --folder, the same for any folder "
        "of class folders, and how its images were converted to 48x48 gray.",
    )
    _add_data_or_folder_options(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")

    train = commands.add_parser(
        "train",
        help="train a model and save a checkpoint",
        description="Train a model on the train split with a recipe; report validation "
        "accuracy and balanced accuracy after every epoch. Every recipe setting can be "
        "overridden by its option. Under torchrun it trains data-parallel "
        "(torchrun --nproc_per_node=N -m fer_helpers train ...).",
    )
    _add_train_options(train)
    _add_data_option(train)

    evaluate = commands.add_parser(
        "evaluate",
        help="metrics of a checkpoint on a split or a labelled folder",
        description="Confusion matrix, accuracy, balanced accuracy, "
        "per-class precision, recall and F1, on a FER2013 split (--data, --split) or on "
        "any folder of class folders (--folder); classes the model does not know are "
        "skipped with a note.",
    )
    evaluate.add_argument(
        "--weights",
        required=True,
        metavar="NAME|PATH",
        help="a shipped model (si100-3class, best-7class) or a checkpoint file",
    )
    evaluate.add_argument(
        "--split",
        choices=["validation", "test"],
        help="FER2013 split to measure (default: validation); not with --folder",
    )
    _add_data_or_folder_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    from .inference import TTA_MODES

    evaluate.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        choices=TTA_MODES,
        help="test-time augmentation: --tta or --tta flip averages each face's scores with its "
        "mirror image's, --tta shifts over 10 views (the face shifted 2 px four ways, and "
        "mirrored) (default: as the model was shipped or its recipe validated)",
    )
    evaluate.add_argument(
        "--no-tta", dest="tta", action="store_const", const="none", help="one look per face"
    )
    evaluate.add_argument("--batch-size", type=int, default=256, help="batch size (default: 256)")
    evaluate.add_argument("--device", choices=["cpu", "cuda", "mps"], help="force a device")

    bench = commands.add_parser(
        "bench",
        help="the course's recipe and pipeline vs the fast one, side by side",
        description="Train SI100FaceNet on happy/neutral/sad with the course's pipeline "
        "(ImageFolder + DataLoader, batch 32, Adam, float32) and with the fast recipe, each in "
        "a fresh process, and print training and inference images/s, milliseconds per face, "
        "peak memory and the ratios. --full also trains the course's recipe for its 10 epochs "
        "and the fast one with --seeds seeds, all validated alike (one look at each face; "
        "face + mirror as a second row), and times each to the course's best validation "
        "accuracy: about 14 minutes on 2 cores with bfloat16 (3 seeds), longer without.",
    )
    _add_data_option(bench)
    bench.add_argument(
        "--full",
        action="store_true",
        help="also train both and time them to the course's best validation accuracy",
    )
    bench.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="with --full: seeds of the fast recipe, for mean and spread (default: 3)",
    )
    bench.add_argument(
        "--steps", type=int, default=200, help="timed training steps per pipeline (default: 200)"
    )
    bench.add_argument(
        "--weights",
        metavar="NAME|FILE.pth",
        help="instead: the inference speed of a trained model (a shipped name such as "
        "best-7class, or a checkpoint) on the CPU with 2 threads: ms per face, faces/s in "
        "batches, file size",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")

    export = commands.add_parser(
        "export",
        help="export a model to ONNX (for netron), checked against PyTorch",
        description="Export SI100FaceNet to ONNX, check the file with onnx.checker and "
        "compare its scores with PyTorch's on random images.",
    )
    export.add_argument(
        "--weights",
        metavar="NAME|PATH",
        help="shipped model (si100-3class, best-7class) or checkpoint to export "
        "(default: an untrained SI100FaceNet)",
    )
    export.add_argument(
        "--classes",
        help="class names, or 'all'; with --weights they must "
        "match the checkpoint (default: happy,neutral,sad)",
    )
    export.add_argument(
        "--out", metavar="FILE.onnx", help="where to write (default: the weights path with .onnx)"
    )
    export.add_argument("--json", action="store_true", help="print one JSON object")

    predict = commands.add_parser(
        "predict",
        help="name the expressions of the faces in photos, videos or a webcam",
        description="Detect faces with OpenCV's Haar cascade (or MTCNN: --detector), crop them "
        "like FER2013 and "
        "classify them with the shipped 7-class model (or --weights). A photo prints one "
        "line per face: its box and its most likely emotions with their probabilities. A "
        "video (MP4, AVI, MOV, MKV, WebM; or --webcam) follows each face from frame to "
        "frame under a stable id, smooths its probabilities over its last --smooth frames, "
        "and prints one line per face; --out, --csv and --plot write the annotated video, "
        "the per-frame timeline and a plot of it, each only once complete. Exit status 2 "
        "when a file cannot be read or a video holds no face (a photo without one is an "
        "answer: 'no face found in PHOTO').",
    )
    predict.add_argument(
        "inputs",
        nargs="*",
        metavar="PHOTO|VIDEO",
        help="image files (JPEG, PNG, BMP, TIFF, WebP) or video files (MP4, AVI, MOV, MKV, "
        "WebM), told apart by extension, else by content",
    )
    predict.add_argument(
        "--webcam",
        type=int,
        metavar="N",
        help="read camera N (0: the first) instead of files, up to --max-frames frames or "
        "Ctrl-C; refused in one line where the machine has no camera",
    )
    predict.add_argument(
        "--weights",
        metavar="NAME|PATH",
        default="best-7class",
        help="shipped model (best-7class: angry, disgust, fear, happy, sad, surprise, neutral; "
        "si100-3class: the course's happy, neutral, sad) or checkpoint (default: best-7class)",
    )
    predict.add_argument(
        "--classes", help="class names of a plain state_dict (a checkpoint knows its own)"
    )
    predict.add_argument(
        "--top",
        type=int,
        default=3,
        metavar="K",
        help="emotions printed per face, most likely first (default: 3)",
    )
    predict.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: per photo each face's box and all class probabilities; "
        "per video each face's frames, boxes and mean probabilities",
    )
    predict.add_argument(
        "--min-size",
        type=int,
        default=30,
        help="smallest face side searched, in pixels (default: 30)",
    )
    predict.add_argument(
        "--detector",
        choices=["haar", "mtcnn"],  # written out: the parser imports no torch (a test checks)
        default="haar",
        help="face detector: haar (OpenCV's Haar cascade, the course's; default) or mtcnn "
        "(also finds covered, tilted, profile and small faces; its weights ship with the package)",
    )
    predict.add_argument("--device", choices=["cpu", "cuda", "mps"], help="force a device")
    video = predict.add_argument_group("videos and --webcam")
    video.add_argument(
        "--out",
        metavar="FILE.mp4",
        help="write the video with each face's box, id and smoothed emotion (.mp4, .mov, "
        ".mkv: codec mp4v; .avi: MJPG); one video or --webcam only",
    )
    video.add_argument(
        "--csv",
        metavar="FILE.csv",
        help="write the timeline: one row per face per searched frame (frame, time_s, "
        "face_id, x, y, w, h, emotion, one column per class: smoothed probabilities)",
    )
    video.add_argument(
        "--plot", metavar="FILE.png", help="write a plot of each face's emotions over time"
    )
    video.add_argument(
        "--smooth",
        type=int,
        default=5,
        metavar="K",
        help="average each face's probabilities over its last K frames (default: 5; 1: none)",
    )
    video.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="search every Nth frame only, N times faster; --out still has every frame "
        "(default: 1)",
    )
    video.add_argument(
        "--max-frames",
        type=int,
        metavar="N",
        help="stop after N frames (default: the whole video; --webcam: 300)",
    )

    ensemble = commands.add_parser(
        "ensemble",
        help="combine trained checkpoints into one model that averages them",
        description="Write one checkpoint whose model averages the softmax probabilities "
        "of the given ones (same classes and input); evaluate, export and predict take it "
        "like any other.",
    )
    ensemble.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="2 or more")
    ensemble.add_argument("--out", required=True, metavar="FILE.pth", help="where to write")

    experiment = commands.add_parser(
        "experiment",
        help="train a named experiment's variants over seeds; write its results file",
        description="Train (or load) every variant of a named experiment with every seed, "
        "then write its results file (command, commit, machine, seeds, per-epoch history, "
        "per-class validation metrics, mean and spread over seeds). Resumable: run the same "
        "command again and finished runs are loaded, an interrupted one continues.",
    )
    experiment.add_argument("name", nargs="?", metavar="NAME", help="the experiment (--list)")
    experiment.add_argument("--list", action="store_true", help="list the experiments")
    experiment.add_argument(
        "--seeds", type=int, metavar="N", help="seeds 0..N-1 (default: the experiment's)"
    )
    experiment.add_argument(
        "--epochs", type=int, metavar="E", help="a quick run: E epochs for every recipe"
    )
    experiment.add_argument(
        "--per-class", type=int, metavar="K", help="a quick run: at most K faces of each class"
    )
    experiment.add_argument(
        "--out", metavar="DIR", help="folder of the results file (default: fer_helpers/results)"
    )
    experiment.add_argument(
        "--runs", metavar="DIR", help="where the runs are saved (default: weights/experiments/NAME)"
    )
    experiment.add_argument(
        "--device", choices=["cpu", "cuda", "mps"], help="force a device (default: the best)"
    )
    _add_data_option(experiment)
    return parser


def run_experiment(args: argparse.Namespace) -> None:
    from . import experiments
    from .data import load_data
    from .devices import choose_device

    if args.list:
        print(experiments.describe_experiments())
        return
    if args.name is None:
        known = ", ".join(experiments.EXPERIMENTS)
        raise FerError(f"expected an experiment name ({known}) or --list")
    experiment = experiments.get_experiment(args.name)
    options = {"seeds": args.seeds, "epochs": args.epochs, "per_class": args.per_class}
    command = shlex.join(["python", "-m", "fer_helpers", *args.argv])
    data = load_data(args.data)
    try:
        results = experiments.run_experiment(
            experiment,
            data,
            out=args.out,
            runs=args.runs,
            command=command,
            device=choose_device(args.device),
            **options,
        )
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are saved, the current one after its last epoch; "
            "run the same command again to continue",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    print(experiments.results_table(results).to_string())


def run_ensemble(args: argparse.Namespace) -> None:
    from .checkpoints import combine_checkpoints

    out = combine_checkpoints(args.checkpoints, args.out)
    print(f"saved {out}: an ensemble of {len(args.checkpoints)} models")


def run_predict(args: argparse.Namespace) -> None:
    """Photos, videos or a webcam through the model; one line per face, or --json.

    One file that cannot be read does not stop the others; the command then ends
    with exit status 2, as it does when a video holds no face.
    """
    from .detectors import get_detector
    from .devices import choose_device
    from .faces import format_predictions, predict_photo
    from .pretrained import load_pretrained
    from .video import (
        WEBCAM_FRAMES,
        check_outputs,
        follow_video,
        follow_webcam,
        input_kind,
    )

    if bool(args.inputs) == (args.webcam is not None):
        raise FerError("give photos or videos to read, or --webcam N, not both")
    for option in ("top", "smooth", "every", "max_frames"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise FerError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    kinds: dict[str, str | DataError] = {}  # photo or video; a bad file is named later
    for path in args.inputs:
        try:
            kinds[path] = input_kind(path)
        except DataError as err:
            kinds[path] = err
    videos = [path for path, kind in kinds.items() if kind == "video"]
    one_video = len(args.inputs) == 1 and videos == args.inputs
    if (args.out or args.csv or args.plot) and args.inputs and not one_video:
        if len(args.inputs) == 1 and isinstance(kinds[args.inputs[0]], DataError):
            raise kinds[args.inputs[0]]  # the file's own problem says more
        raise FerError(
            "--out, --csv and --plot write the results of one video: give a single video "
            f"or --webcam (got {len(args.inputs)} input(s), {len(videos)} of them video(s))"
        )
    check_outputs(args.out, args.csv, args.plot, args.inputs)
    device = choose_device(args.device)
    model, info = load_pretrained(args.weights, class_names=args.classes, device=device)
    if info["class_names"] is None:
        raise FerError(f"{args.weights} holds weights only: say which classes with --classes")
    class_names = list(info["class_names"])
    detector = None if args.detector == "haar" else get_detector(args.detector)
    options = {
        "every": args.every,
        "smooth": args.smooth,
        "min_size": args.min_size,
        "channels": info["normalization"]["channels"],
        "detector": detector,
        "out": args.out,
        "csv": args.csv,
        "plot": args.plot,
        "progress": not args.json,
    }
    results: list[dict] = []
    failed = []

    def report(result: dict, lines: list[str]) -> None:
        results.append(result)
        if not args.json:
            print("\n".join(lines), flush=True)

    if args.webcam is not None:
        timeline = follow_webcam(
            args.webcam, model, class_names, max_frames=args.max_frames or WEBCAM_FRAMES, **options
        )
        report(
            {"path": timeline.source, "kind": "webcam", **timeline.summary()},
            timeline.describe(args.top),
        )
    for path in args.inputs:
        kind = kinds[path]
        try:
            if isinstance(kind, DataError):
                raise kind
            if kind == "photo":
                faces = predict_photo(
                    path,
                    model,
                    class_names,
                    min_size=args.min_size,
                    channels=options["channels"],
                    detector=detector,
                )
                faces = [{**face, "box": list(face["box"])} for face in faces]
                report(
                    {"path": path, "kind": "photo", "faces": faces},
                    format_predictions(path, faces, args.top),
                )
            else:
                timeline = follow_video(
                    path, model, class_names, max_frames=args.max_frames, **options
                )
                report(
                    {"path": path, "kind": "video", **timeline.summary()},
                    timeline.describe(args.top),
                )
        except DataError as err:  # one bad file does not stop the others
            failed.append(" ".join(str(err).splitlines()))
            results.append({"path": path, "error": failed[-1]})
            if len(args.inputs) > 1:
                print(f"error: {failed[-1]}", file=sys.stderr)
        except KeyboardInterrupt:
            print(f"interrupted: nothing written for {path}", file=sys.stderr)
            raise SystemExit(130) from None
    if args.json:
        print(
            json.dumps(
                {"weights": str(args.weights), "classes": class_names, "inputs": results}, indent=2
            )
        )
    if failed:  # the one input's own message, or how many of them failed
        one = len(args.inputs) == 1
        raise FerError(failed[0] if one else f"{len(failed)} of {len(args.inputs)} inputs failed")


def run_export(args: argparse.Namespace) -> None:

    from .export import export_checkpoint, format_export
    from .pretrained import resolve_weights

    out = args.out or (Path(args.weights).with_suffix(".onnx").name if args.weights else None)
    if out is None:
        raise FerError("--out is needed when no --weights are given")
    weights = resolve_weights(args.weights) if args.weights else None
    summary = export_checkpoint(weights, out, args.classes)
    print(json.dumps(summary, indent=2) if args.json else format_export(summary))


def run_bench(args: argparse.Namespace) -> None:
    from .bench import format_bench, run_bench
    from .data import load_data

    if args.steps < 1 or args.seeds < 1:
        raise FerError("--steps and --seeds must be at least 1")
    data = load_data(args.data, verbose=not args.json)
    if args.weights:
        from .bench import format_model_speed, model_speed

        speed = model_speed(args.weights, data)
        print(json.dumps(speed, indent=2) if args.json else format_model_speed(speed))
        return
    results = run_bench(data, full=args.full, steps=args.steps, seeds=args.seeds)
    print(json.dumps(results, indent=2) if args.json else format_bench(results))


def _load_for(
    args: argparse.Namespace, verbose: bool, classes: Sequence[str] | None = None
) -> tuple[FaceData, dict | None]:
    """The data a command was given: --folder (with its report), else FER2013 (--data)."""
    from .data import load_data

    if args.folder is not None:
        from .folders import load_labelled_folder

        return load_labelled_folder(
            args.folder, args.skip_bad, classes, getattr(args, "weights", "")
        )
    if args.skip_bad:
        raise FerError("--skip-bad applies to --folder; a FER2013 copy (--data) is read whole")
    return load_data(args.data, verbose=verbose), None


def run_info(args: argparse.Namespace) -> None:
    from .audit import audit_data
    from .labels import EMOTIONS
    from .synthetic import SYNTHETIC_NOTICE

    data, folder = _load_for(args, verbose=not args.json)
    report = audit_data(data)
    if not args.json:
        if folder is not None:
            print(data.describe())
        print(data.counts().to_string())
        print(report.describe())
        return
    if data.synthetic:
        print(SYNTHETIC_NOTICE, file=sys.stderr)  # stdout stays valid JSON
    splits = {
        name: {
            "total": len(split),
            "per_class": dict(zip(EMOTIONS, split.class_counts().tolist(), strict=True)),
        }
        for name, split in data.splits.items()
    }
    print(
        json.dumps(
            {
                "source": data.source,
                "synthetic": data.synthetic,
                "layout": data.layout,
                "root": str(data.root) if data.root else None,
                "tiny": data.tiny,
                "notes": data.notes,
                "splits": splits,
                "audit": report.summary(),
                **({"folder": folder} if folder is not None else {}),
            },
            indent=2,
        )
    )


def run_train(args: argparse.Namespace) -> None:
    from . import distributed
    from .data import load_data
    from .devices import choose_device
    from .recipes import train_with_recipe

    saved = _saved_run(args.out) if args.resume else {}
    recipe = recipe_from_args(args, saved.get("recipe"))
    classes = args.classes or saved.get("classes") or "happy,neutral,sad"
    seed = args.seed if args.seed is not None else saved.get("seed", 0)
    if args.validate_every < 1:
        raise FerError("--validate-every must be at least 1")
    device = distributed.start(args.device or choose_device().type) or choose_device(args.device)
    main = distributed.is_main()
    try:
        data = load_data(args.data, verbose=main)
        if "validation" not in data.splits and main:
            print("note: no validation split: training without a validation score")
        model, _ = train_with_recipe(
            recipe,
            data,
            args.out,
            classes=classes,
            seed=seed,
            device=device,
            resume=args.resume,
            clean=args.clean,
            validate_every=args.validate_every,
        )
        if distributed.world()[1] > 1:
            _check_ranks_agree(model, main)
    finally:
        distributed.stop()
    if main:
        print(f"saved {args.out}")


def _saved_run(out: str) -> dict:
    """What a run saved at `out` was trained with (recipe, classes, seed): --resume's defaults.

    Empty when there is no such file (a run that never got to its first checkpoint).
    """
    from .checkpoints import load_checkpoint
    from .recipes import recipe_from_record

    if not Path(out).exists():
        return {}
    checkpoint = load_checkpoint(out)
    extra = checkpoint.get("extra") or {}
    found = {"classes": checkpoint.get("class_names"), "seed": extra.get("seed")}
    if extra.get("recipe"):
        found["recipe"] = recipe_from_record(extra["recipe"])
    return {key: value for key, value in found.items() if value is not None}


def _check_ranks_agree(model, main: bool) -> None:
    """Every process must end with the same weights: data parallelism promises it."""
    from .distributed import fingerprints_of_all

    prints = fingerprints_of_all(model)
    if main:
        print(f"weights of the {len(prints)} processes, by rank: {' '.join(prints)}")
    if len(set(prints)) != 1:
        raise FerError(f"the processes ended with different weights: {prints}")


def run_evaluate(args: argparse.Namespace) -> None:
    from .checkpoints import scoring_tta
    from .data import FaceLoader
    from .devices import choose_device
    from .inference import TTA_WORDS, predict
    from .metrics import format_confusion, format_report, summarize
    from .pretrained import load_pretrained
    from .sources import FOLDER_SPLIT
    from .synthetic import SYNTHETIC_NOTICE

    if args.folder is not None and args.split is not None:
        raise FerError("--split chooses a FER2013 split (--data); a --folder is measured whole")
    device = choose_device(args.device)
    model, checkpoint = load_pretrained(args.weights, device=device)
    class_names = checkpoint["class_names"]
    if class_names is None:
        raise FerError(
            f"{args.weights} holds weights only, without class names: "
            "evaluate needs a checkpoint written by `python -m fer_helpers train`"
        )
    data, folder = _load_for(args, verbose=not args.json, classes=class_names)
    if data.synthetic and args.json:
        print(SYNTHETIC_NOTICE, file=sys.stderr)
    split = FOLDER_SPLIT if folder is not None else args.split or "validation"
    channels = checkpoint["normalization"]["channels"]
    dataset = data.dataset(split, class_names, channels=channels)
    if folder is not None and not args.json:
        print(data.describe())
    if split == "test" and not args.json:
        print(
            "note: the test split is for a final report only; choose models and "
            "hyper-parameters on validation"
        )
    tta = scoring_tta(checkpoint) if args.tta is None else args.tta
    y_true, y_pred, _ = predict(model, FaceLoader(dataset, args.batch_size), device, tta=tta)
    summary = summarize(y_true, y_pred, class_names)
    summary["split"] = split if folder is None else None
    summary["weights"] = str(args.weights)
    summary["tta"] = tta
    if folder is not None:
        summary["folder"] = folder
        summary["notes"] = data.notes
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"test-time augmentation: {TTA_WORDS[tta]}")
    print(f"accuracy: {summary['accuracy']:.2%} of {len(y_true)} faces")
    print(format_report(summary))
    print(format_confusion(summary))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m fer_helpers`; returns the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command, as typed
    runners = {
        "info": run_info,
        "train": run_train,
        "evaluate": run_evaluate,
        "bench": run_bench,
        "export": run_export,
        "predict": run_predict,
        "ensemble": run_ensemble,
        "experiment": run_experiment,
    }
    try:
        runners[args.command](args)
    except FerError as err:
        message = " ".join(str(err).splitlines())  # one line, whatever a library said
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the last finished epoch's checkpoint is kept; "
            "run again with --resume to continue",
            file=sys.stderr,
        )
        return 130
    return 0
