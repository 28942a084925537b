"""The command line: `python -m fer_helpers info | train | evaluate | bench | export | predict`.

Every sub-command has --help. Bad input ends with a one-line message on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .errors import FerError


def _add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="FER2013 folder or CSV (default: $FER2013_DIR, else data/fer2013/, else "
        "synthetic faces); 'synthetic' forces synthetic faces",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fer_helpers",
        description="Facial-expression recognition course: data, training and evaluation.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser(
        "info",
        help="where the data are, images per class, audit",
        description="Show which FER2013 layout was found, the images "
        "per class and split, and the data audit.",
    )
    _add_data_option(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")

    train = commands.add_parser(
        "train",
        help="train a model and save a checkpoint",
        description="Train a model on the train split; report "
        "validation accuracy after every epoch.",
    )
    train.add_argument(
        "--model",
        default="si100",
        help="architecture: si100 (default), convnet5 (Report 1) or resnet9 (Report 3)",
    )
    train.add_argument(
        "--classes",
        default="happy,neutral,sad",
        help="comma-separated class names in output order, or 'all' (default: happy,neutral,sad)",
    )
    train.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    train.add_argument(
        "--out",
        default="face_expression.pth",
        help="checkpoint to write after every epoch (default: face_expression.pth)",
    )
    _add_data_option(train)
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint at --out after an interruption",
    )
    train.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--augment",
        action="store_true",
        help="random flips, rotations, zooms and shifts of the training images",
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

    evaluate = commands.add_parser(
        "evaluate",
        help="metrics of a checkpoint on a split",
        description="Confusion matrix, accuracy, balanced accuracy, "
        "per-class precision, recall and F1.",
    )
    evaluate.add_argument("--weights", required=True, metavar="PATH", help="checkpoint file")
    evaluate.add_argument(
        "--split",
        choices=["validation", "test"],
        default="validation",
        help="split to measure (default: validation)",
    )
    _add_data_option(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--batch-size", type=int, default=256, help="batch size (default: 256)")
    evaluate.add_argument("--device", choices=["cpu", "cuda", "mps"], help="force a device")

    bench = commands.add_parser(
        "bench",
        help="loading time and training images/s, course pipeline vs fer_helpers",
        description="Time loading the data (decoding vs cache) and the training throughput of "
        "SI100FaceNet fed by torchvision ImageFolder + DataLoader and by FaceLoader, in one run.",
    )
    _add_data_option(bench)
    bench.add_argument(
        "--steps", type=int, default=150, help="timed training steps per pipeline (default: 150)"
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
        metavar="PATH",
        help="checkpoint to export (default: an untrained SI100FaceNet)",
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
        help="find the faces in photos and name their expressions",
        description="Detect faces with OpenCV's Haar cascade, crop them like FER2013 and "
        "classify them; prints one line per face (box, emotion, probability).",
    )
    predict.add_argument("photos", nargs="+", metavar="PHOTO", help="image files")
    predict.add_argument(
        "--weights",
        metavar="PATH",
        help="checkpoint (default: weights/face_expression.pth, notebook 04's)",
    )
    predict.add_argument(
        "--classes", help="class names of a plain state_dict (a checkpoint knows its own)"
    )
    predict.add_argument(
        "--min-size",
        type=int,
        default=30,
        help="smallest face side searched, in pixels (default: 30)",
    )
    predict.add_argument("--device", choices=["cpu", "cuda", "mps"], help="force a device")
    return parser


def run_predict(args: argparse.Namespace) -> None:
    from .checkpoints import load_model
    from .errors import DataError
    from .faces import format_predictions, predict_photo
    from .paths import weights_path
    from .train import choose_device

    weights = args.weights or weights_path("face_expression.pth")
    if not args.weights and not weights.exists():
        raise FerError(
            f"no trained model at {weights}: run notebook 04 or "
            f"`python -m fer_helpers train --out {weights}`, or give --weights"
        )
    model, info = load_model(weights, class_names=args.classes, device=choose_device(args.device))
    if info["class_names"] is None:
        raise FerError(f"{weights} holds weights only: say which classes with --classes")
    failed = []
    for photo in args.photos:
        try:
            faces = predict_photo(photo, model, info["class_names"], min_size=args.min_size)
        except DataError as err:  # one bad file does not stop the others
            print(f"error: {err}", file=sys.stderr)
            failed.append(photo)
            continue
        print("\n".join(format_predictions(photo, faces)))
    if failed:
        raise FerError(f"{len(failed)} of {len(args.photos)} photos could not be read")


def run_export(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .export import export_checkpoint, format_export

    out = args.out or (Path(args.weights).with_suffix(".onnx") if args.weights else None)
    if out is None:
        raise FerError("--out is needed when no --weights are given")
    summary = export_checkpoint(args.weights, out, args.classes)
    print(json.dumps(summary, indent=2) if args.json else format_export(summary))


def run_bench(args: argparse.Namespace) -> None:
    from .bench import format_bench, run_bench
    from .data import load_data

    data = load_data(args.data, verbose=not args.json)
    results = run_bench(data, steps=args.steps)
    print(json.dumps(results, indent=2) if args.json else format_bench(results))


def run_info(args: argparse.Namespace) -> None:
    from .audit import audit_data
    from .data import load_data
    from .labels import EMOTIONS
    from .synthetic import SYNTHETIC_NOTICE

    data = load_data(args.data, verbose=not args.json)
    report = audit_data(data)
    if not args.json:
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
            },
            indent=2,
        )
    )


def run_train(args: argparse.Namespace) -> None:
    from .augment import Augment
    from .checkpoints import make_meta
    from .data import FaceLoader, load_data
    from .train import choose_device, fit, make_training, seed_everything

    if args.epochs < 1 or args.batch_size < 1:
        raise FerError("--epochs and --batch-size must be at least 1")
    seed_everything(args.seed)
    data = load_data(args.data)
    train_set = data.dataset("train", args.classes, clean=args.clean)
    val_set = None
    if "validation" in data.splits:
        val_set = data.dataset("validation", train_set.class_names)
    else:
        print("note: no validation split: training without a validation score")
    model, loss_fn, optimizer = make_training(args.model, len(train_set.class_names), lr=args.lr)
    train_loader = FaceLoader(
        train_set,
        args.batch_size,
        shuffle=True,
        seed=args.seed,
        augment=Augment() if args.augment else None,
    )
    val_loader = FaceLoader(val_set, 256) if val_set is not None else None
    meta = make_meta(args.model, train_set.class_names)
    # What the run was trained on, for whoever finds the file later.
    meta["extra"] = {
        "data": data.source,
        "layout": data.layout,
        "tiny": data.tiny,
        "clean": args.clean,
        "augment": args.augment,
        "seed": args.seed,
    }
    fit(
        model,
        train_loader,
        loss_fn,
        optimizer,
        args.epochs,
        device=choose_device(args.device),
        val_loader=val_loader,
        checkpoint_path=args.out,
        checkpoint_meta=meta,
        resume=args.resume,
    )
    print(f"saved {args.out}")


def run_evaluate(args: argparse.Namespace) -> None:
    from .checkpoints import load_model
    from .data import FaceLoader, load_data
    from .metrics import format_report, summarize
    from .synthetic import SYNTHETIC_NOTICE
    from .train import choose_device, predict

    device = choose_device(args.device)
    model, checkpoint = load_model(args.weights, device=device)
    class_names = checkpoint["class_names"]
    if class_names is None:
        raise FerError(
            f"{args.weights} holds weights only, without class names: "
            "evaluate needs a checkpoint written by `python -m fer_helpers train`"
        )
    data = load_data(args.data, verbose=not args.json)
    if data.synthetic and args.json:
        print(SYNTHETIC_NOTICE, file=sys.stderr)
    channels = checkpoint["normalization"]["channels"]
    dataset = data.dataset(args.split, class_names, channels=channels)
    if args.split == "test" and not args.json:
        print(
            "note: the test split is for a final report only; choose models and "
            "hyper-parameters on validation"
        )
    y_true, y_pred, _ = predict(model, FaceLoader(dataset, args.batch_size), device)
    summary = summarize(y_true, y_pred, class_names)
    summary["split"] = args.split
    summary["weights"] = str(args.weights)
    print(json.dumps(summary, indent=2) if args.json else format_report(summary))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m fer_helpers`; returns the exit status."""
    args = build_parser().parse_args(argv)
    runners = {
        "info": run_info,
        "train": run_train,
        "evaluate": run_evaluate,
        "bench": run_bench,
        "export": run_export,
        "predict": run_predict,
    }
    try:
        runners[args.command](args)
    except FerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the last finished epoch's checkpoint is kept; "
            "run again with --resume to continue",
            file=sys.stderr,
        )
        return 130
    return 0
