"""`python -m fer_helpers`: info, train, evaluate, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import LAYOUTS

from fer_helpers.cli import main
from fer_helpers.labels import EMOTIONS


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_info_json_counts_every_split(tmp_path, faces, capsys):
    root = LAYOUTS["fer2013.csv"](tmp_path, faces)
    status, out, _ = run_cli(capsys, "info", "--data", str(root), "--json")
    assert status == 0
    info = json.loads(out)
    assert info["source"] == "FER2013" and not info["synthetic"]
    for split, (_, labels) in faces.items():
        expected = {name: int((labels == i).sum()) for i, name in enumerate(EMOTIONS)}
        assert info["splits"][split] == {"total": len(labels), "per_class": expected}
    assert info["audit"]["duplicate_groups"] == 0


def test_synthetic_info_says_so_and_keeps_stdout_json(capsys):
    status, out, err = run_cli(capsys, "info", "--data", "synthetic", "--json")
    assert status == 0 and json.loads(out)["synthetic"] is True
    assert "SYNTHETIC DATA" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "--data", "/no/such/folder"], "does not exist"),
        (
            ["train", "--data", "synthetic", "--classes", "happy,joy", "--epochs", "1"],
            "unknown class name 'joy'",
        ),
        (["evaluate", "--weights", "/no/such/file.pth", "--data", "synthetic"], "file.pth"),
        (
            ["train", "--data", "synthetic", "--epochs", "1", "--validate-every", "0"],
            "--validate-every must be at least 1",
        ),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(capsys, argv, message):
    status, _, err = run_cli(capsys, *argv)
    assert status == 2
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_model_option_the_model_does_not_take_is_refused_before_the_data_load(
    tmp_path, capsys, monkeypatch
):
    import fer_helpers.data

    def no_loading(*args, **kwargs):
        raise AssertionError("the data were loaded before the recipe was checked")

    monkeypatch.setattr(fer_helpers.data, "load_data", no_loading)
    out = tmp_path / "dacl.pth"
    argv = ["train", "--data", "synthetic", "--model", "dacl", "--dropout", "0.1"]
    status, stdout, err = run_cli(capsys, *argv, "--out", str(out))
    assert status == 2 and stdout == "" and not out.exists()
    assert err == (
        "error: model 'dacl' cannot take dropout=0.1; a recipe can set for it: "
        "batch_norm (True only)\n"
    )


def test_train_resume_and_evaluate_round_trip(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FER_TINY", "1")
    out = tmp_path / "model.pth"
    # A constant learning rate: a one-cycle run can only resume to its planned epochs.
    common = [
        "--data",
        "synthetic",
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--schedule",
        "constant",
    ]
    status, log, _ = run_cli(capsys, "train", "--epochs", "1", *common)
    assert status == 0 and "Epoch 1/1 done" in log and "val acc" in log
    status, log, _ = run_cli(
        capsys, "train", "--epochs", "5", "--resume", "--validate-every", "2", *common
    )
    assert status == 0 and "Resuming from" in log
    assert "Epoch 1/5 done" not in log  # only the missing epochs
    done = [line for line in log.splitlines() if " done: " in line]
    # Every 2nd epoch of the whole run, not of the resumed part, and the last one.
    assert ["val acc" in line for line in done] == [True, False, True, True]
    assert torch.load(out, weights_only=True)["extra"]["validate_every"] == 2
    status, report, _ = run_cli(
        capsys, "evaluate", "--weights", str(out), "--data", "synthetic", "--json"
    )
    assert status == 0
    summary = json.loads(report)
    for key in ("classes", "confusion_matrix", "accuracy", "balanced_accuracy", "weighted_recall"):
        assert key in summary
    assert summary["classes"] == ["happy", "neutral", "sad"]
    assert sum(map(sum, summary["confusion_matrix"])) == 3 * 4  # tiny validation: 4 per class
    assert set(summary["per_class"]["sad"]) == {"precision", "recall", "f1", "support"}


def test_resume_continues_the_runs_own_settings_and_refuses_others(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FER_TINY", "1")
    out = tmp_path / "run.pth"
    first = ["--data", "synthetic", "--out", str(out), "--recipe", "course", "--epochs", "1"]
    first += ["--batch-size", "8", "--classes", "sad,happy", "--seed", "3", "--lr", "0.002"]
    status, _, _ = run_cli(capsys, "train", *first)
    assert status == 0
    # Only how far to go: the recipe, the classes and the seed come from the file.
    again = ["--data", "synthetic", "--out", str(out), "--resume", "--epochs", "2"]
    status, log, err = run_cli(capsys, "train", *again)
    assert status == 0 and "Resuming from" in log, err
    saved = torch.load(out, weights_only=True)
    assert saved["epoch"] == 2 and saved["class_names"] == ["sad", "happy"]
    assert saved["extra"]["seed"] == 3
    assert saved["extra"]["recipe"] == {**saved["extra"]["recipe"], "name": "course", "lr": 0.002}
    assert saved["extra"]["recipe"]["batch_size"] == 8
    # A setting that would change what the first epochs trained is refused, naming it.
    status, _, err = run_cli(capsys, "train", *again, "--epochs", "3", "--seed", "4")
    assert status == 2 and "seed 3 -> 4" in err and err.count("\n") == 1
    assert torch.load(out, weights_only=True)["epoch"] == 2  # nothing lost


@pytest.mark.parametrize("command", ["info", "train", "evaluate", "bench"])
def test_every_command_has_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "fer_helpers", command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--data" in result.stdout


def test_export_writes_a_checked_onnx_file_of_the_trained_classes(tmp_path, capsys):
    status, out, _ = run_cli(
        capsys, "export", "--classes", "sad,happy", "--out", str(tmp_path / "m.onnx"), "--json"
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["class_names"] == ["sad", "happy"]
    assert (tmp_path / "m.onnx").stat().st_size == summary["bytes"] > 1_000_000
    assert summary["max_difference"] < 1e-4
    status, _, err = run_cli(capsys, "export")
    assert status == 2 and "--out is needed" in err


def test_predict_prints_one_line_per_face_and_names_bad_files(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from fer_helpers.checkpoints import make_meta, save_checkpoint
    from fer_helpers.faces import sample_photo_path
    from fer_helpers.models import SI100FaceNet

    weights = tmp_path / "untrained.pth"
    save_checkpoint(
        weights,
        **make_meta("si100", ["happy", "neutral", "sad"]),
        model_state=SI100FaceNet(3).state_dict(),
    )
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120), 128, np.uint8)).save(blank)
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")

    status, out, err = run_cli(
        capsys,
        "predict",
        str(sample_photo_path()),
        str(blank),
        str(not_image),
        "--weights",
        str(weights),
    )
    assert status == 2  # one file failed, the others were still read
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{sample_photo_path()}: face 1 at x=")
    assert lines[0].split(": ")[-1].split()[0] in ("happy", "neutral", "sad")
    assert lines[1] == f"no face found in {blank}"
    assert "notes.txt" in err and "not an image" in err


def test_version_prints_the_one_version_and_exits_0():
    import fer_helpers

    result = subprocess.run(
        [sys.executable, "-m", "fer_helpers", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout == f"fer-helpers {fer_helpers.__version__}\n"
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    # One definition: pyproject.toml reads fer_helpers.__version__ instead of repeating it.
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "fer_helpers.__version__"}


def test_bench_refuses_zero_seeds_in_one_line(capsys):
    status, out, err = run_cli(capsys, "bench", "--data", "synthetic", "--full", "--seeds", "0")
    assert status == 2 and out == "" and "--seeds must be at least 1" in err


def test_the_head_erase_and_ema_options_reach_the_recipe():
    from fer_helpers.cli import build_parser, recipe_from_args
    from fer_helpers.recipes import FAST

    argv = ["train", "--model", "smallvgg", "--head", "flatten", "--width", "40"]
    argv += ["--augment", "cropflip-erase", "--mixup", "0.3", "--ema", "0.999", "--out", "x.pth"]
    recipe = recipe_from_args(build_parser().parse_args(argv))
    assert (recipe.arch, recipe.head, recipe.width) == ("smallvgg", "flatten", 40)
    assert (recipe.augment, recipe.mixup, recipe.epochs) == ("cropflip-erase", 0.3, FAST.epochs)
    assert recipe.ema == 0.999
    plain = recipe_from_args(build_parser().parse_args(["train", "--model", "smallvgg"]))
    assert plain.head is None and plain.model_kwargs().get("head") is None
    assert plain.ema == FAST.ema == 0.0  # off unless asked for
