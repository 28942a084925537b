"""Notebook 14's comparison: the reports' networks, FLOP counts, one recipe, saved runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_checker_contract

from fer_helpers import paths, train
from fer_helpers.comparison import (
    CONTENDERS,
    build_contender,
    comparison_plot,
    comparison_row,
    comparison_table,
    contender_recipe,
    flops_per_image,
    full_budget_table,
    train_contender,
    validation_confusion,
)
from fer_helpers.data import load_synthetic
from fer_helpers.errors import CheckpointError, FerError
from fer_helpers.exercises import ExerciseError
from fer_helpers.exercises.comparison import check_conv_block_parameters, check_conv_flops
from fer_helpers.inference import scores_of
from fer_helpers.models import ConvNet5, Residual, ResNet9, build_model, count_parameters

TINY = {"epochs": 2, "per_class": 2, "batch_size": 8}


def on_device_of(model, x):
    """x where the model is: trained models sit on the best device (CUDA, MPS or the CPU)."""
    return x.to(next(model.parameters()).device)


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "WEIGHTS_DIR", tmp_path)
    return tmp_path


# --- the networks ------------------------------------------------------------------------------


def test_convnet5_is_report_1s_model_5():
    model = ConvNet5(num_classes=7, in_channels=1)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 64]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6 * 6 * 64, 512), (512, 7)]
    drops = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout | torch.nn.Dropout2d)]
    assert drops == [0.4] * 4
    # by hand: 3 convs with batch norm, fc1 with batch norm, fc2
    expected = (9 * 1 * 64 + 64 + 128) + 2 * (9 * 64 * 64 + 64 + 128)
    expected += 2304 * 512 + 512 + 1024 + 512 * 7 + 7
    assert count_parameters(model) == expected


def test_resnet9_shapes_and_residual_pairs():
    model = ResNet9(num_classes=7, in_channels=1).eval()
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    residuals = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(residuals) == 3
    x = torch.randn(1, 128, 24, 24)
    with torch.no_grad():  # a residual adds its body's output to its input
        torch.testing.assert_close(residuals[0](x), x + residuals[0].body(x))
    assert model.classifier[-1].in_features == 512


@pytest.mark.parametrize("name", ["convnet5", "resnet9"])
def test_registry_builds_them_for_any_class_count(name):
    model = build_model(name, num_classes=3, in_channels=3).eval()
    assert model(torch.zeros(2, 3, 48, 48)).shape == (2, 3)


@pytest.mark.parametrize("name", list(CONTENDERS))
def test_every_contender_gives_seven_scores(name):
    model = build_contender(name).eval()
    with torch.no_grad():
        assert scores_of(model, torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_unknown_contender_is_named():
    with pytest.raises(FerError, match="unknown contender 'vgg'.*si100"):
        build_contender("vgg")


def test_flops_of_si100_match_the_hand_count():
    model = build_contender("si100")
    by_hand = 2 * 9 * (1 * 64 * 48 * 48 + 64 * 128 * 24 * 24 + 128 * 256 * 12 * 12)
    by_hand += 2 * (9216 * 256 + 256 * 7)
    assert flops_per_image(model) == by_hand
    assert model.training  # the count leaves the mode as it was


def test_flops_grow_with_the_image_not_the_parameters():
    small, large = ResNet9(in_channels=1), ResNet9(in_channels=1, input_size=96)
    assert count_parameters(small) == count_parameters(large)
    assert flops_per_image(large) == pytest.approx(4 * flops_per_image(small), rel=1e-3)
    assert flops_per_image(large) == flops_per_image(large, size=96)  # the size it takes


# --- one recipe --------------------------------------------------------------------------------


def test_train_contender_saves_and_reloads(weights_dir):
    data = load_synthetic(tiny=True)
    model, info = train_contender("convnet5", data, **TINY, progress=False)
    path = weights_dir / "compare_convnet5.synthetic-tiny.pth"
    assert path.exists() and info["epoch"] == 2
    assert set(info["history"]) == set(train.HISTORY_KEYS)  # the one loop's history
    assert all(len(v) == 2 for v in info["history"].values())
    # validated after every epoch (for the curves), the training seconds count training alone
    assert not np.isnan(info["history"]["val_acc"]).any()
    history = info["history"]
    assert all(t < e for t, e in zip(history["train_seconds"], history["epoch_seconds"]))
    saved = torch.load(path, weights_only=True)
    assert saved["format"] == "fer_helpers/1" and saved["arch"] == "convnet5"
    assert {"optimizer_state", "scheduler_state", "rng"}.isdisjoint(saved)  # finished: compact
    again, info2 = train_contender("convnet5", data, **TINY, progress=False)
    x = on_device_of(model, torch.randn(3, 1, 48, 48))
    torch.testing.assert_close(model(x), again(x))
    np.testing.assert_equal(info2["history"], info["history"])


def test_same_recipe_same_weights_and_dacl_trains_its_centres(weights_dir):
    data = load_synthetic(tiny=True)
    # Bit for bit holds on the CPU; GPU kernels may add in another order (seed_everything).
    first, info = train_contender("dacl", data, **TINY, progress=False, retrain=True, device="cpu")
    second, _ = train_contender("dacl", data, **TINY, progress=False, retrain=True, device="cpu")
    x = on_device_of(first, torch.randn(2, 1, 48, 48))
    torch.testing.assert_close(scores_of(first, x), scores_of(second, x))
    saved = torch.load(weights_dir / "compare_dacl.synthetic-tiny.pth", weights_only=True)
    centres = saved["objective_state"]["center_loss.centres"]
    assert centres.shape == (7, 512)
    assert "optimizer_state" not in saved  # finished: kept without the resume state
    assert {"train_ce", "train_sc"} <= set(info["history"])


# convnet5: dropout draws random numbers; dacl: two optimizers and the centres to restore
@pytest.mark.parametrize("name", ["si100", "convnet5", "dacl"])
def test_an_interrupted_run_resumes_to_the_same_weights(weights_dir, monkeypatch, name):
    data = load_synthetic(tiny=True)
    whole, _ = train_contender(name, data, **TINY, progress=False, device="cpu")
    path = weights_dir / f"compare_{name}.synthetic-tiny.pth"
    path.unlink()

    calls = {"n": 0}
    real = train._train_epoch

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_contender(name, data, **TINY, progress=False, device="cpu")
    halfway = torch.load(path, weights_only=True)
    assert halfway["epoch"] == 1
    if name == "dacl":  # the network's Adam and the centres' SGD, both to resume
        assert len(halfway["optimizer_state"]) == 2
    monkeypatch.setattr(train, "_train_epoch", real)
    torch.manual_seed(123)  # whatever happened in between: the run restores its own state
    resumed, info = train_contender(name, data, **TINY, progress=False, device="cpu")
    assert info["epoch"] == 2 and len(info["history"]["train_loss"]) == 2
    x = on_device_of(whole, torch.randn(2, 1, 48, 48))
    torch.testing.assert_close(whole(x), resumed(x))


def test_another_recipe_trains_again(weights_dir, capsys):
    data = load_synthetic(tiny=True)
    train_contender("convnet5", data, **TINY, progress=False)
    capsys.readouterr()
    _, info = train_contender("convnet5", data, epochs=1, per_class=2, progress=False)
    said = capsys.readouterr().out
    assert "compare_convnet5.synthetic-tiny.pth was trained with other settings (" in said
    assert "epochs 2 -> 1; batch_size 8 -> 64" in said and "training again" in said
    assert info["epoch"] == 1 and info["extra"]["recipe"]["batch_size"] == 64


def test_a_corrupt_run_file_is_named(weights_dir):
    data = load_synthetic(tiny=True)
    path = weights_dir / "compare_si100.synthetic-tiny.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="compare_si100"):
        train_contender("si100", data, **TINY, progress=False)


def test_table_and_plot(weights_dir):
    data = load_synthetic(tiny=True)
    rows = {}
    for name in ("si100", "convnet5"):
        model, info = train_contender(name, data, epochs=1, per_class=2, progress=False)
        cm = validation_confusion(model, data)
        assert cm.shape == (7, 7) and cm.sum() == len(data["validation"])
        rows[name] = comparison_row(model, info, cm)
        assert rows[name]["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    table = comparison_table(rows)
    assert list(table.index) == ["si100", "convnet5"]
    assert table.loc["si100", "parameters"] == count_parameters(build_contender("si100"))
    fig = comparison_plot(table)
    offsets = [c.get_offsets() for c in fig.axes[0].collections]
    np.testing.assert_allclose(offsets[0][:, 1], table["accuracy"])
    np.testing.assert_allclose(offsets[1][:, 0], table["seconds per epoch"])


# --- the exercise checkers ---------------------------------------------------------------------


def conv_flops_loop(c_in, c_out, kernel, h_out, w_out):
    total = 0
    for _ in range(c_out * h_out * w_out):
        total += 2 * c_in * kernel * kernel
    return total


def block_parameters_by_module(c_in, c_out):
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
    norm = torch.nn.BatchNorm2d(c_out)
    return sum(p.numel() for p in [*conv.parameters(), *norm.parameters()])


@pytest.mark.parametrize(
    ("checker", "right", "checks"),
    [
        (check_conv_flops, conv_flops_loop, 4),
        (check_conv_block_parameters, block_parameters_by_module, 4),
    ],
)
def test_checkers_keep_the_contract(checker, right, checks, capsys):
    assert_checker_contract(checker, right, checks, capsys)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda ci, co, k, h, w: ci * co * k * k * h * w, "multiply-adds"),
        (lambda ci, co, k, h, w: 2 * ci * k * k * h * w, "c_out"),
        (lambda ci, co, k, h, w: 2 * ci * co * k * h * w, "kernel squared"),
        (lambda ci, co, k, h, w: 2 * ci * co * k * k, "h_out \\* w_out"),
        (lambda ci, co, k, h, w: 2.5, "whole number"),
    ],
)
def test_flops_checker_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_conv_flops(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda ci, co: 9 * ci * co + co, "batch norm learns too"),
        (lambda ci, co: 9 * ci * co + co + 4 * co, "buffers"),
        (lambda ci, co: 9 * ci * co + 2 * co, "c_out short"),
        (lambda ci, co: 9 * ci * co + 2 * co + co // 2 + 1, "3\\*3\\*c_in"),
    ],
)
def test_block_checker_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_conv_block_parameters(wrong)


# --- the full-budget results --------------------------------------------------------------------


def _fake_results(cms: dict[str, np.ndarray], seconds: dict[str, list[float]]) -> dict:
    """The part of an `experiment comparison` results file that full_budget_table reads."""
    runs = {
        name: [
            {
                "seed": 0,
                "history": {"train_seconds": seconds[name]},
                "validation": {"confusion_matrix": cm.tolist()},
            }
        ]
        for name, cm in cms.items()
    }
    variants = {name: {"runs": runs.get(name, [])} for name in CONTENDERS}
    return {"variants": variants}


def test_full_budget_table_reads_each_run_and_counts_the_networks():
    rng = np.random.default_rng(0)
    cms = {
        "si100": rng.integers(0, 40, (7, 7)) + np.diag(rng.integers(50, 90, 7)),
        "resnet9": rng.integers(0, 20, (7, 7)) + np.diag(rng.integers(60, 120, 7)),
    }
    seconds = {"si100": [24.0, 26.0, 25.0], "resnet9": [370.0, 380.0]}
    table = full_budget_table(_fake_results(cms, seconds))
    assert list(table.index) == ["si100", "resnet9"]  # contenders not trained yet are left out
    for name, cm in cms.items():
        row = table.loc[name]
        y_true = np.repeat(np.arange(7), cm.sum(axis=1))
        y_pred = np.concatenate([np.repeat(np.arange(7), r) for r in cm])
        assert row["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
        recalls = [np.mean(y_pred[y_true == k] == k) for k in range(7)]
        assert row["balanced accuracy"] == pytest.approx(np.mean(recalls))
        low, high = row["balanced interval"]
        assert low < row["balanced accuracy"] < high and high - low < 0.2
        low, high = row["accuracy interval"]
        assert low < row["accuracy"] < high
        assert row["epochs"] == len(seconds[name])
        assert row["seconds per epoch"] == pytest.approx(np.mean(seconds[name]))
        fresh = build_contender(name)
        assert row["parameters"] == count_parameters(fresh)
        assert row["GFLOPs per face"] == pytest.approx(flops_per_image(fresh) / 1e9)
    with pytest.raises(FerError, match="no finished run"):
        full_budget_table(_fake_results({}, {}))


def test_contender_recipe_budgets():
    # the full budget by default, the same recipe but for the network, its loss and epochs
    full = {name: contender_recipe(name) for name in CONTENDERS}
    assert full["resnet9"].epochs < full["si100"].epochs
    assert contender_recipe("resnet9", epochs=2).epochs == 2
    for name, recipe in full.items():
        assert recipe.arch == name and recipe.per_class is None
        other = contender_recipe("convnet5")
        same = {"batch_size", "lr", "optimizer", "schedule", "augment", "precision", "channels"}
        assert {f: getattr(recipe, f) for f in same} == {f: getattr(other, f) for f in same}
    assert full["dacl"].objective == "dacl" and full["si100"].objective == "cross_entropy"
    with pytest.raises(FerError, match="unknown contender"):
        contender_recipe("vgg")
