"""Shipped pretrained weights: names resolve, float16 files rebuild the model, cards tell all."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from fer_helpers import checkpoints, paths, pretrained
from fer_helpers.checkpoints import load_checkpoint
from fer_helpers.cli import main
from fer_helpers.data import FaceLoader, load_synthetic
from fer_helpers.errors import CheckpointError, FerError
from fer_helpers.faces import sample_photo_path
from fer_helpers.inference import TTA_WORDS, predict
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.metrics import summarize
from fer_helpers.recipes import (
    FAST,
    model_options,
    recipe_from_record,
    train_with_recipe,
    with_arch,
)

MB = 1e6
QUIET = {"progress": False, "log": lambda _: None}


@pytest.fixture(scope="module")
def tiny():
    return load_synthetic(tiny=True)


@pytest.fixture
def trained(tiny, tmp_path, monkeypatch):
    """A fast-recipe checkpoint of one epoch, and a private folder for shipped weights."""
    monkeypatch.setattr(paths, "WEIGHTS_DIR", tmp_path / "weights")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", shipped)
    path = tmp_path / "run.pth"
    recipe = dataclasses.replace(FAST, epochs=1, batch_size=8, tta=True)
    train_with_recipe(recipe, tiny, path, device="cpu", progress=False, log=lambda _: None)
    return path


def test_a_name_resolves_into_the_package_and_a_path_stays_a_path(trained, tmp_path):
    pretrained.ship(trained, "si100-3class")
    assert pretrained.resolve_weights("si100-3class") == pretrained.SHIPPED_DIR / "si100-3class.pth"
    assert pretrained.resolve_weights(tmp_path / "mine.pth") == tmp_path / "mine.pth"
    assert pretrained.resolve_weights("mine.pth") == pretrained.Path("mine.pth")


def test_a_name_that_is_not_shipped_says_so_and_how_to_get_it(trained):
    assert not pretrained.is_shipped("best-7class") and not pretrained.is_shipped("mine.pth")
    pretrained.ship(trained, "si100-3class")
    assert pretrained.is_shipped("si100-3class")
    with pytest.raises(CheckpointError, match=r"best-7class.*missing.*best-7class\.md"):
        pretrained.resolve_weights("best-7class")


def test_shipped_weights_are_float16_without_optimizer_and_predict_alike(trained, tiny):
    path = pretrained.ship(trained, "si100-3class")
    saved = load_checkpoint(path)
    assert "optimizer_state" not in saved and "rng" not in saved and "scheduler_state" not in saved
    floats = [t for t in saved["model_state"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    assert saved["model_state"]["bn1.num_batches_tracked"].dtype == torch.int64  # not a float
    assert path.stat().st_size < trained.stat().st_size / 3  # half size, and no Adam moments
    assert saved["extra"]["recipe"]["name"] == "fast" and saved["epoch"] == 1

    model, info = pretrained.load_pretrained("si100-3class")
    original, _ = pretrained.load_pretrained(trained)
    assert info["class_names"] == list(COURSE_CLASSES)
    loader = FaceLoader(tiny.dataset("validation", COURSE_CLASSES, channels=FAST.channels), 64)
    _, y_half, p_half = predict(model, loader)
    _, y_full, p_full = predict(original, loader)
    assert abs(p_half - p_full).max() < 1e-2  # float16 rounding only


def test_the_model_card_holds_data_recipe_command_time_and_scores(trained, tiny):
    command = "python -m fer_helpers train --out run.pth"
    trained_with = torch.get_num_threads()
    torch.set_num_threads(trained_with + 1)  # ship from a process with other threads
    try:
        summary = pretrained.publish(trained, "si100-3class", tiny, command)
    finally:
        torch.set_num_threads(trained_with)
    card = pretrained.model_card_path("si100-3class").read_text()
    model, info = pretrained.load_pretrained("si100-3class")
    loader = FaceLoader(tiny.dataset("validation", COURSE_CLASSES, channels=FAST.channels), 64)
    y_true, y_pred, _ = predict(model, loader, tta=True)  # the recipe validated with TTA
    assert summary == summarize(y_true, y_pred, COURSE_CLASSES)
    assert command in card and json.dumps(info["extra"]["recipe"]) in card
    assert f"**{summary['accuracy']:.2%}**" in card
    assert f"**{summary['balanced_accuracy']:.2%}**" in card
    for name, row in summary["per_class"].items():
        assert f"| {name} | {row['support']} |" in card and f"{row['recall']:.1%}" in card
    minutes = sum(info["history"]["epoch_seconds"]) / 60
    assert f"{minutes:.1f} minutes" in card
    threads = info["extra"]["threads"]  # what the training ran with, not the shipping process
    assert threads == trained_with and f"{threads} thread" in card
    assert f"{trained_with + 1} thread" not in card


def test_the_cli_takes_a_name_wherever_it_takes_weights(trained, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_TINY", "1")
    pretrained.ship(trained, "si100-3class")
    status = main(["evaluate", "--weights", "si100-3class", "--data", "synthetic", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["classes"] == list(COURSE_CLASSES) and report["tta"] == "flip"
    status = main(["export", "--weights", "si100-3class", "--out", str(tmp_path / "m.onnx")])
    assert status == 0 and (tmp_path / "m.onnx").stat().st_size > MB
    assert main(["evaluate", "--weights", "best-7class", "--data", "synthetic"]) == 2
    assert "best-7class" in capsys.readouterr().err


def test_every_shipped_file_is_small_loads_and_has_its_card():
    shipped = [n for n in pretrained.SHIPPED if pretrained.is_shipped(n)]
    files = {path.stem for path in pretrained.SHIPPED_DIR.glob("*.pth")}
    assert set(shipped) == files  # every file is a name, every name shipped has its file
    assert "si100-3class" in shipped  # the course's 3-class model is always shipped
    sizes = {name: (pretrained.SHIPPED_DIR / f"{name}.pth").stat().st_size for name in shipped}
    assert all(size < 25 * MB for size in sizes.values()), sizes  # issue 21: each under 25 MB
    assert sum(sizes.values()) < 60 * MB, sizes  # and all of them together under 60 MB
    for name in ("si100-3class", "best-7class"):  # the models people deploy: under 10 MB
        assert sizes.get(name, 0) < 10 * MB, name
    for name in shipped:
        model, info = pretrained.load_pretrained(name)
        card = pretrained.model_card_path(name).read_text()
        assert "## Validation" in card and "python -m fer_helpers train" in card
        assert info["class_names"] and not model.training


def test_a_seven_class_smallvgg_ships_and_serves_every_command(tiny, tmp_path, monkeypatch, capsys):
    """best-7class's architecture: gray input, no SI100 layer names, all seven classes."""
    monkeypatch.setattr(paths, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", tmp_path / "shipped")
    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("FER_TINY", "1")
    run = tmp_path / "seven.pth"
    recipe = dataclasses.replace(
        with_arch(FAST, "smallvgg"),
        channels=1,
        epochs=1,
        batch_size=8,
        augment="cropflip",
        tta=True,
    )
    train_with_recipe(recipe, tiny, run, classes=EMOTIONS, device="cpu", **QUIET)
    command = "python -m fer_helpers train ..."
    summary = pretrained.publish(run, "best-7class", tiny, command, tta="shifts")
    model, info = pretrained.load_pretrained("best-7class")
    assert info["arch"] == "smallvgg" and info["class_names"] == list(EMOTIONS)
    assert info["normalization"]["channels"] == 1
    assert checkpoints.scoring_tta(info) == "shifts" and info["extra"]["recipe"]["tta"] is True
    assert len(summary["per_class"]) == 7
    card = pretrained.model_card_path("best-7class").read_text()
    assert "`smallvgg`" in card and TTA_WORDS["shifts"] in card
    loader = FaceLoader(tiny.dataset("validation", EMOTIONS, channels=1), 64)
    y_true, y_pred, _ = predict(model, loader, tta="shifts")
    assert summary == summarize(y_true, y_pred, EMOTIONS)  # the card scores the 10 views

    def evaluate(*options):
        argv = ["evaluate", "--weights", "best-7class", "--data", "synthetic", "--json"]
        assert main([*argv, *options]) == 0
        return json.loads(capsys.readouterr().out)

    report = evaluate()  # by default as shipped: the 10 views
    assert report["classes"] == list(EMOTIONS) and report["tta"] == "shifts"
    assert report["accuracy"] == pytest.approx(summary["accuracy"])
    _, y_look, _ = predict(model, loader, tta="none")  # the card states one look beside it
    look = summarize(y_true, y_look, EMOTIONS)
    assert evaluate("--no-tta")["accuracy"] == pytest.approx(look["accuracy"])
    assert (
        f"With one look at each face (`--no-tta`): accuracy **{look['accuracy']:.2%}**, "
        f"balanced accuracy **{look['balanced_accuracy']:.2%}**." in card
    )
    assert [evaluate(*o)["tta"] for o in (["--no-tta"], ["--tta"], ["--tta", "shifts"])] == [
        "none",
        "flip",
        "shifts",
    ]
    onnx_path = tmp_path / "seven.onnx"
    assert main(["export", "--weights", "best-7class", "--out", str(onnx_path)]) == 0
    assert onnx_path.is_file()
    capsys.readouterr()
    photo = sample_photo_path()  # the astronaut: one face
    assert main(["predict", "--weights", "best-7class", str(photo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{photo}: face 1 at")
    assert lines[0].split(": ")[-1].split()[0] in EMOTIONS  # "...: fear 31.2%"


def test_an_ensemble_ships_with_a_card_for_every_member(
    trained, tiny, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("FER_TINY", "1")  # evaluate's synthetic faces: the tiny set scored here
    other = tmp_path / "other.pth"
    recipe = dataclasses.replace(FAST, epochs=2, batch_size=8, augment="flip", tta=True)
    train_with_recipe(recipe, tiny, other, seed=7, device="cpu", **QUIET)
    both = tmp_path / "both.pth"
    assert main(["ensemble", str(trained), str(other), "--out", str(both)]) == 0
    assert main(["ensemble", str(trained), "--out", str(both)]) == 2  # one is no ensemble
    assert "at least 2" in capsys.readouterr().err
    assert main(["train", "--model", "ensemble", "--out", str(tmp_path / "e.pth")]) == 2
    assert "fer_helpers ensemble A.pth B.pth" in capsys.readouterr().err  # how to make one
    with pytest.raises(FerError, match="not trained as one model"):  # nor in the library
        dataclasses.replace(FAST, arch="ensemble")
    summary = pretrained.publish(both, "si100-3class", tiny, "train A; train B; ensemble A B")
    model, info = pretrained.load_pretrained("si100-3class")
    assert info["arch"] == "ensemble" and len(model.members) == 2 and info["epoch"] == 3
    card = pretrained.model_card_path("si100-3class").read_text()
    assert "An ensemble of 2 models" in card
    assert f"`{trained}`, `si100`, 1 epoch," in card and f"`{other}`, `si100`, 2 epochs" in card
    assert '"augment": "flip"' in card and "Validation accuracy of model 2 after" in card
    minutes = sum(info["history"]["epoch_seconds"]) / 60
    assert f"3 epochs in {minutes:.1f} minutes" in card  # both runs' training time
    assert main(["evaluate", "--weights", "si100-3class", "--data", "synthetic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(summary["accuracy"]) and report["tta"] == "flip"
    onnx_path = tmp_path / "both.onnx"
    assert main(["export", "--weights", "si100-3class", "--out", str(onnx_path)]) == 0


def test_the_card_marks_epochs_that_were_not_validated():
    info = {"history": {"val_acc": [float("nan"), 0.625]}, "extra": {"recipe": {"tta": True}}}
    text = pretrained._curves_text(info)
    assert "–, 62.5%." in text and "not validated" in text and "nan" not in text
    info["history"]["val_acc"] = [0.5, 0.625]
    assert "50.0%, 62.5%." in pretrained._curves_text(info)
    assert "not validated" not in pretrained._curves_text(info)


@pytest.mark.parametrize("name", sorted(pretrained.SHIPPED))
def test_the_cards_train_commands_rebuild_the_recipes_the_shipped_weights_record(name):
    # A change of the fast recipe's defaults must not silently change what a card's
    # command trains: each command, parsed by the CLI, gives the recipe in the file.
    import shlex

    from fer_helpers import cli

    card = (pretrained.SHIPPED_DIR / f"{name}.md").read_text(encoding="utf-8")
    prefix = "python -m fer_helpers train "
    commands = [line for line in card.splitlines() if line.startswith(prefix)]
    parser = cli.build_parser()
    from_card = [
        dataclasses.asdict(cli.recipe_from_args(parser.parse_args(shlex.split(c)[3:])))
        for c in commands
    ]
    extra = load_checkpoint(pretrained.resolve_weights(name))["extra"]
    recorded = [m["recipe"] for m in extra["members"]] if "members" in extra else [extra["recipe"]]

    # A recipe recorded before a field existed trained with that field's default; an
    # architecture option is the same whether left to the model or given at its default.
    def trains(recipe: dict) -> dict:
        rebuilt = recipe_from_record(recipe)
        built = model_options(rebuilt.arch) | rebuilt.model_kwargs()
        return dataclasses.asdict(rebuilt) | {"width": None, "pool_before_norm": None} | built

    assert commands and [trains(c) for c in from_card] == [trains(r) for r in recorded]
    assert all(set(r) <= set(c) for r, c in zip(recorded, from_card))
