"""Named experiments (fer_helpers.experiments): the registry, the results file, resuming,
the command. Every training here is 1 epoch on a few tiny synthetic faces per class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_helpers import cli, experiments, recipes
from fer_helpers.checkpoints import make_meta, save_checkpoint
from fer_helpers.comparison import CONTENDERS, contender_recipe
from fer_helpers.dacl import VARIANTS, variant_recipe
from fer_helpers.data import load_data
from fer_helpers.errors import CheckpointError, DataError, FerError
from fer_helpers.experiments import (
    EXPERIMENTS,
    SOURCE,
    compare_to_baseline,
    load_results,
    one_run_verdict,
    plot_histories,
    plot_results,
    results_table,
    run_experiment,
    seed_values,
    shown_command,
)
from fer_helpers.imbalance import SEVEN_EPOCHS, STRATEGIES, strategy_recipe
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.metrics import recall_per_class, summarize
from fer_helpers.models import build_model
from fer_helpers.pretrained import load_backbone, output_layer
from fer_helpers.recipes import FAST
from fer_helpers.train import HISTORY_KEYS

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"epochs": 1, "per_class": 4}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> object:
    return load_data("synthetic", tiny=True, verbose=False)


def quiet(*_: object) -> None:
    pass


def run(name, data, tmp_path: Path, seeds: int = 2, **options):
    return run_experiment(
        name,
        data,
        seeds=seeds,
        out=tmp_path / "results",
        runs=tmp_path / "runs",
        device="cpu",
        progress=False,
        log=quiet,
        **{**QUICK, **options},
    )


@pytest.fixture
def counted_fit(monkeypatch):
    """Every call of the training loop, by checkpoint file name."""
    calls: list[str] = []
    real = recipes.fit

    def fit(*args, **kwargs):
        calls.append(Path(kwargs["checkpoint_path"]).name)
        return real(*args, **kwargs)

    monkeypatch.setattr(recipes, "fit", fit)
    return calls


# --- the registry ----------------------------------------------------------------------------


def test_the_experiments_are_the_notebooks_recipes():
    assert list(EXPERIMENTS) == ["imbalance", "dacl", "comparison", "transfer", "fast-recipe"]
    # fast-recipe: FAST, then each piece put back, one at a time
    pieces = EXPERIMENTS["fast-recipe"].variants
    assert pieces["fast"] == FAST
    for name, recipe in pieces.items():
        changed = {
            f: getattr(recipe, f) for f in asdict(FAST) if getattr(recipe, f) != getattr(FAST, f)
        }
        changed.pop("name", None)
        assert recipe.name == ("fast" if name == "fast" else f"fast-{name}")
        assert len(changed) == {"fast": 0, "full-width": 2}.get(name, 1), name
    assert pieces["full-width"].model_kwargs()["width"] == 64
    assert pieces["float32"].precision == "fp32" and pieces["no-flip"].augment == "none"
    for experiment in EXPERIMENTS.values():
        # the comparison trains each network once, for its full budget, and reads its
        # intervals; every other experiment reads the spread over at least three seeds
        if experiment.name == "comparison":
            assert experiment.seeds == 1
        else:
            assert experiment.seeds >= 3
        assert "\n" not in experiment.description
    imbalance = EXPERIMENTS["imbalance"]
    assert imbalance.classes == EMOTIONS
    assert dict(imbalance.variants) == {s: strategy_recipe(s) for s in STRATEGIES}
    # strategy_recipe derives each from the fast recipe: FAST changes flow through
    assert imbalance.variants["weighted"] == replace(
        FAST, name="seven-weighted", class_weights="inverse", epochs=SEVEN_EPOCHS
    )
    dacl = EXPERIMENTS["dacl"]
    assert dict(dacl.variants) == {v: variant_recipe(v) for v in VARIANTS}
    assert {r.start_from for r in dacl.variants.values()} == {"resnet18-7class"}
    assert [r.objective for r in dacl.variants.values()] == ["cross_entropy", "center", "dacl"]
    comparison = EXPERIMENTS["comparison"]
    assert dict(comparison.variants) == {n: contender_recipe(n) for n in CONTENDERS}
    transfer = EXPERIMENTS["transfer"]
    assert transfer.classes == COURSE_CLASSES and transfer.source_classes == EMOTIONS
    assert transfer.source == replace(FAST, name="transfer-source-7class")
    assert transfer.variants["scratch"] == replace(FAST, name="transfer-scratch")
    assert transfer.variants["from-7class"] == replace(
        FAST, name="transfer-from-7class", start_from=SOURCE
    )


def test_a_budget_reaches_every_recipe_and_the_source():
    quick = EXPERIMENTS["transfer"].with_budget(epochs=1, per_class=5)
    for recipe in [quick.source, *quick.variants.values()]:
        assert (recipe.epochs, recipe.per_class) == (1, 5)
    assert EXPERIMENTS["transfer"].with_budget() is EXPERIMENTS["transfer"]


# --- the results file ------------------------------------------------------------------------


def test_the_results_file_holds_every_field_and_the_right_numbers(tiny, tmp_path):
    results = run("transfer", tiny, tmp_path)
    path = tmp_path / "results" / "transfer.synthetic-tiny-e1-k4.json"
    assert json.loads(path.read_text()) == results  # what was written is what is returned
    assert results["experiment"] == "transfer"
    assert results["command"] == (
        "python -m fer_helpers experiment transfer --seeds 2 --epochs 1 --per-class 4"
    )
    assert results["version"] and (results["commit"] is None or len(results["commit"]) == 40)
    assert set(results["machine"]) >= {"processor", "cpu_bf16", "threads", "device"}
    assert results["machine"]["threads"] == 1 and results["machine"]["device"] == "cpu"
    datetime.fromisoformat(results["date"])
    assert results["seeds"] == [0, 1] and results["complete"] is True
    assert results["budget"] == {"epochs": 1, "per_class": 4}
    assert results["classes"] == list(COURSE_CLASSES)
    assert results["source"]["recipe"]["name"] == "transfer-source-7class"
    assert results["source"]["validation"]["classes"] == list(EMOTIONS)
    planned = EXPERIMENTS["transfer"].with_budget(**QUICK)
    assert set(results["variants"]) == {"scratch", "from-7class"}
    for name, variant in results["variants"].items():
        assert variant["recipe"] == asdict(planned.variants[name])
        runs = variant["runs"]
        assert [r["seed"] for r in runs] == [0, 1] == variant["summary"]["seeds"]
        for r in runs:
            assert set(r["history"]) >= set(HISTORY_KEYS)
            assert all(len(values) == 1 for values in r["history"].values())
            scores = r["validation"]
            cm = np.array(scores["confusion_matrix"])
            assert cm.sum() == 4 * len(COURSE_CLASSES)  # tiny: 4 validation faces per class
            recall = recall_per_class(cm)
            for k, cls in enumerate(COURSE_CLASSES):
                assert scores["per_class"][cls]["recall"] == pytest.approx(recall[k])
        summary = variant["summary"]
        for key in ("accuracy", "balanced_accuracy"):
            values = [r["validation"][key] for r in runs]
            assert summary[key]["mean"] == pytest.approx(np.mean(values))
            assert summary[key]["std"] == pytest.approx(np.std(values, ddof=1))
        for cls in COURSE_CLASSES:
            values = [r["validation"]["per_class"][cls]["recall"] for r in runs]
            assert summary["recall"][cls]["mean"] == pytest.approx(np.mean(values))
            assert summary["recall"][cls]["std"] == pytest.approx(np.std(values, ddof=1))


def test_the_file_s_metrics_are_what_the_saved_model_predicts(tiny, tmp_path):
    from fer_helpers.checkpoints import load_model
    from fer_helpers.data import FaceLoader
    from fer_helpers.inference import predict

    results = run("imbalance", tiny, tmp_path, seeds=1, per_class=2)
    run_ = results["variants"]["weighted"]["runs"][0]
    model, _ = load_model(tmp_path / "runs" / run_["file"])
    validation = FaceLoader(tiny.dataset("validation", EMOTIONS, channels=1), 256)  # fast's
    y_true, y_pred, _ = predict(model, validation)
    assert run_["validation"] == summarize(y_true, y_pred, list(EMOTIONS))
    assert run_["validation"]["per_class"]["disgust"]["support"] == 4
    assert results["variants"]["weighted"]["summary"]["accuracy"]["std"] is None  # one seed


def test_the_transferred_runs_start_from_the_source_run(tiny, tmp_path, monkeypatch):
    started = []
    real = recipes.load_backbone
    monkeypatch.setattr(recipes, "load_backbone", lambda m, w: started.append(w) or real(m, w))
    results = run("transfer", tiny, tmp_path, seeds=1)
    source = tmp_path / "runs" / results["source"]["file"]
    assert started == [str(source)]  # once: from-7class with seed 0; scratch starts fresh


# --- resuming --------------------------------------------------------------------------------


def test_a_second_run_loads_every_saved_run(tiny, tmp_path, counted_fit):
    run("transfer", tiny, tmp_path)
    assert len(counted_fit) == 5  # the source, then 2 variants x 2 seeds
    files = sorted((tmp_path / "runs").iterdir())
    times = [f.stat().st_mtime_ns for f in files]
    again = run("transfer", tiny, tmp_path)
    assert len(counted_fit) == 5  # nothing trained again
    assert [f.stat().st_mtime_ns for f in files] == times
    first = json.loads((tmp_path / "results" / "transfer.synthetic-tiny-e1-k4.json").read_text())
    assert again["variants"] == first["variants"]


def test_an_interrupted_experiment_continues_where_it_stopped(tiny, tmp_path, monkeypatch):
    real = recipes.fit

    def interrupted(*args, **kwargs):
        if "seed1" in Path(kwargs["checkpoint_path"]).name:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(recipes, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run("imbalance", tiny, tmp_path, per_class=2)
    partial = load_results(tmp_path / "results" / "imbalance.synthetic-tiny-e1-k2.json")
    assert partial["complete"] is False
    assert all([r["seed"] for r in v["runs"]] == [0] for v in partial["variants"].values())
    done = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "runs").iterdir()}
    assert sorted(done) == sorted(f"{s}-seed0.synthetic-tiny-e1-k2.pth" for s in STRATEGIES)

    calls = []
    monkeypatch.setattr(recipes, "fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    results = run("imbalance", tiny, tmp_path, per_class=2)
    assert len(calls) == len(STRATEGIES)  # seed 1 of each strategy only
    assert {name: (tmp_path / "runs" / name).stat().st_mtime_ns for name in done} == done
    assert results["complete"] is True
    assert all(v["summary"]["seeds"] == [0, 1] for v in results["variants"].values())


# --- errors and the command ------------------------------------------------------------------


def one_line_error(capsys, *argv: str) -> str:
    assert cli.main(["experiment", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_an_unknown_experiment_is_one_line_naming_the_known_ones(capsys):
    err = one_line_error(capsys, "nope", "--data", "synthetic")
    assert "'nope'" in err and all(name in err for name in EXPERIMENTS)
    assert "--list" in one_line_error(capsys)


def test_data_without_a_validation_split_is_refused(tiny, tmp_path):
    splits = {k: v for k, v in tiny.splits.items() if k != "validation"}
    with pytest.raises(DataError, match="no validation split"):
        run("imbalance", replace(tiny, splits=splits), tmp_path)
    with pytest.raises(FerError, match="seeds must be at least 1"):
        run("imbalance", tiny, tmp_path, seeds=0)


def test_list_names_every_experiment_and_variant(capsys):
    assert cli.main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    for experiment in EXPERIMENTS.values():
        assert f"{experiment.name} ({experiment.seeds} seeds): {experiment.description}" in out
        assert all(f"    {variant} " in out for variant in experiment.variants)


def test_the_command_runs_end_to_end_on_synthetic_faces(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FER2013_DIR"}
    env.update(OMP_NUM_THREADS="1", FER_TINY="1", FER_CACHE_DIR=str(tmp_path / "cache"))
    args = ["imbalance", "--per-class", "8", "--epochs", "1", "--seeds", "2"]
    args += ["--data", "synthetic", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]
    done = subprocess.run(
        [sys.executable, "-m", "fer_helpers", "experiment", *args, "--device", "cpu"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = load_results(tmp_path / "imbalance.synthetic-tiny-e1-k8.json")
    assert results["command"] == " ".join(
        ["python -m fer_helpers experiment", *args, "--device cpu"]
    )
    assert results["complete"] and results["seeds"] == [0, 1]
    assert all(v["recipe"]["per_class"] == 8 for v in results["variants"].values())
    for strategy in STRATEGIES:  # the table it prints: one row per strategy, with 2 seeds
        assert any(line.split()[:2] == [strategy, "2"] for line in done.stdout.splitlines())


# --- reading and showing results -------------------------------------------------------------


def test_the_table_and_the_plot_show_mean_and_spread(tiny, tmp_path):
    run("transfer", tiny, tmp_path)
    results = load_results(tmp_path / "results" / "transfer.synthetic-tiny-e1-k4.json")
    numbers = results_table(results, formatted=False)
    text = results_table(results)
    for name, variant in results["variants"].items():
        summary = variant["summary"]
        mean, std = summary["balanced_accuracy"]["mean"], summary["balanced_accuracy"]["std"]
        assert numbers.loc[name, ("balanced accuracy", "mean")] == pytest.approx(mean)
        assert numbers.loc[name, ("recall sad", "std")] == pytest.approx(
            summary["recall"]["sad"]["std"]
        )
        assert text.loc[name, "balanced accuracy"] == f"{mean:.1%} ± {100 * std:.1f}"
        assert text.loc[name, "seeds"] == 2
        # seconds: each run's total and mean epoch, by hand from the runs' histories
        totals = [sum(r["history"]["epoch_seconds"]) for r in variant["runs"]]
        per_epoch = [np.mean(r["history"]["epoch_seconds"]) for r in variant["runs"]]
        assert summary["seconds"]["mean"] == pytest.approx(np.mean(totals))
        assert summary["seconds_per_epoch"]["std"] == pytest.approx(np.std(per_epoch, ddof=1))
        assert numbers.loc[name, ("seconds per epoch", "mean")] == pytest.approx(np.mean(per_epoch))
        mean, std = summary["seconds_per_epoch"]["mean"], summary["seconds_per_epoch"]["std"]
        assert text.loc[name, "seconds per epoch"] == f"{mean:.1f} ± {std:.1f}"
    fig = plot_results(results, live={"scratch": 0.5})
    ax = fig.axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx(
        [v["summary"]["balanced_accuracy"]["mean"] for v in results["variants"].values()]
    )
    assert shown_command(results) in " ".join(t.get_text() for t in fig.texts)


def _variant(accuracies, fear_recalls):
    runs = [
        {"validation": {"accuracy": a, "per_class": {"fear": {"recall": r}}}}
        for a, r in zip(accuracies, fear_recalls)
    ]
    return {"runs": runs}


def test_compare_to_baseline_is_welch_s_t_against_two():
    from scipy.stats import ttest_ind

    results = {
        "variants": {
            "plain": _variant([0.60, 0.61, 0.62], [0.30, 0.40, 0.20]),
            "better": _variant([0.66, 0.67, 0.68, 0.665], [0.35, 0.25, 0.45, 0.30]),
            "lonely": _variant([0.90], [0.90]),
            "unrun": {"runs": []},
        }
    }
    table = compare_to_baseline(results, "plain", ["accuracy", "recall fear"])
    assert list(table.index) == [
        ("better", "accuracy"),
        ("better", "recall fear"),
        ("lonely", "accuracy"),
        ("lonely", "recall fear"),
    ]
    plain, better = results["variants"]["plain"], results["variants"]["better"]
    for metric, verdict in (("accuracy", "larger than chance"), ("recall fear", "within chance")):
        a, b = seed_values(plain, metric), seed_values(better, metric)
        row = table.loc[("better", metric.replace("_", " "))]
        assert row["difference"] == pytest.approx(100 * (np.mean(b) - np.mean(a)))
        t = ttest_ind(b, a, equal_var=False).statistic  # the same t, from scipy
        assert row["difference"] / row["standard error"] == pytest.approx(t)
        assert row["verdict"] == verdict
    assert table.loc[("better", "accuracy"), "plain"] == pytest.approx(61.0)
    lonely = table.loc[("lonely", "accuracy")]
    assert lonely["verdict"] == "cannot tell" and np.isnan(lonely["standard error"])
    assert lonely["difference"] == pytest.approx(29.0)


def test_plot_histories_draws_each_seed_against_cumulative_seconds():
    def run(seconds, accuracy):
        return {"history": {"epoch_seconds": seconds, "val_acc": accuracy}}

    results = {
        "experiment": "toy",
        "command": "python -m fer_helpers experiment toy",
        "variants": {
            "a": {
                "runs": [
                    run([2.0, 3.0, 5.0], [0.1, None, 0.5]),
                    run([4.0, 4.0, 4.0], [0.2, 0.3, 0.7]),
                ]
            },
            "empty": {"runs": []},
        },
    }
    live = {"a": {"epoch_seconds": [1.0, 1.0], "val_acc": [0.25, float("nan")]}}
    fig = plot_histories(results, live=live)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    thin = [line for line in fig.axes[0].lines if line.get_label().startswith("_")]
    assert [list(line.get_xdata()) for line in thin] == [[2.0, 10.0], [4.0, 8.0, 12.0]]
    assert [list(line.get_ydata()) for line in thin] == [[0.1, 0.5], [0.2, 0.3, 0.7]]
    # the mean over seeds of the first epochs both validated: (2, 4) -> 3, (10, 8) -> 9
    mean = lines["a (mean of 2 seeds)"]
    np.testing.assert_allclose(mean.get_xdata(), [3.0, 9.0])
    np.testing.assert_allclose(mean.get_ydata(), [0.15, 0.4])
    np.testing.assert_allclose(lines["a, live run"].get_xdata(), [1.0])
    assert shown_command(results) in " ".join(t.get_text() for t in fig.texts)


def test_a_missing_results_file_names_the_command(tmp_path):
    with pytest.raises(FerError, match="python -m fer_helpers experiment dacl"):
        load_results("dacl", tag="nowhere")


def test_the_shown_command_hides_the_data_folder_and_nothing_else():
    command = experiments.experiment_command("dacl", 3, data="/home/a b/fer2013", out="x y")
    assert command == (
        "python -m fer_helpers experiment dacl --seeds 3 --data '/home/a b/fer2013' --out 'x y'"
    )
    assert shown_command({"command": command}) == (
        "python -m fer_helpers experiment dacl --seeds 3 --data DIR --out 'x y'"
    )
    equals_form = "python -m fer_helpers experiment dacl --data=../f --seeds 3"
    assert shown_command({"command": equals_form}) == equals_form.replace("../f", "DIR")
    plain = "python -m fer_helpers experiment imbalance --seeds 3 --epochs 2"
    assert shown_command({"command": plain}) == plain


def test_every_shipped_results_file_names_its_command_and_ships():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "results/*.json" in config["tool"]["setuptools"]["package-data"]["fer_helpers"]
    for path in sorted(experiments.RESULTS_DIR.glob("*.json")):
        results = load_results(path)
        name = path.name.split(".")[0]
        assert results["command"].startswith(f"python -m fer_helpers experiment {name}")
        assert "--data DIR" in shown_command(results)  # every shipped file is of FER2013
        assert results["experiment"] == name in EXPERIMENTS


# --- transfer learning: all layers but the last ----------------------------------------------


def test_load_backbone_copies_every_layer_but_the_last(tmp_path):
    torch.manual_seed(0)
    seven = build_model("si100", num_classes=7, in_channels=1, batch_norm=True)
    path = save_checkpoint(
        tmp_path / "seven.pth",
        **make_meta("si100", EMOTIONS, in_channels=1, batch_norm=True),
        model_state=seven.state_dict(),
    )
    three = build_model("si100", num_classes=3, in_channels=1, batch_norm=True)
    fresh = {k: v.clone() for k, v in three.state_dict().items()}
    assert load_backbone(three, path) == ["fc2.weight", "fc2.bias"]
    for key, value in three.state_dict().items():
        expected = fresh[key] if key.startswith("fc2.") else seven.state_dict()[key]
        assert torch.equal(value, expected), key
    other = build_model("si100", num_classes=3, in_channels=3, batch_norm=True)
    with pytest.raises(CheckpointError, match="conv1.weight"):
        load_backbone(other, path)
    assert output_layer(build_model("dacl", num_classes=3)) == "fc"
    assert output_layer(build_model("resnet9", num_classes=3)).startswith("classifier")


def test_dacl_starts_from_a_plain_resnet18_with_a_fresh_attention_net(tmp_path):
    torch.manual_seed(0)
    plain = build_model("resnet18", num_classes=7, in_channels=1)
    path = save_checkpoint(
        tmp_path / "resnet18.pth",
        **make_meta("resnet18", EMOTIONS, in_channels=1),
        model_state=plain.state_dict(),
    )
    dacl = build_model("dacl", num_classes=3, in_channels=1)
    before = {k: v.clone() for k, v in dacl.state_dict().items()}
    kept = load_backbone(dacl, path)
    assert kept == [k for k in before if k.startswith(("fc.", "attention."))]
    assert {"fc.weight", "fc.bias"} < set(kept) and len(kept) > 2
    after = dacl.state_dict()
    for key in before:  # the backbone is the ResNet's, tensor for tensor; the rest is fresh
        expected = before[key] if key in kept else plain.state_dict()[key]
        assert torch.equal(after[key], expected), key
    # Same input, same backbone: the same 512 features (eval mode, batch norm's running stats)
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        features = dacl.eval()(x)[1]
        by_hand = torch.flatten(plain.pool(plain.eval().backbone(x)), start_dim=1)
    torch.testing.assert_close(features, by_hand)
    # A trained DACLNet's own attention net is copied, not left fresh
    trained_dacl = save_checkpoint(
        tmp_path / "dacl.pth",
        **make_meta("dacl", EMOTIONS, in_channels=1),
        model_state=build_model("dacl", num_classes=7, in_channels=1).state_dict(),
    )
    assert load_backbone(build_model("dacl", num_classes=3, in_channels=1), trained_dacl) == [
        "fc.weight",
        "fc.bias",
    ]
    # and the other way: a plain ResNet18Faces takes a DACLNet's backbone, its attention unused
    assert load_backbone(build_model("resnet18", num_classes=3, in_channels=1), trained_dacl) == [
        "fc.weight",
        "fc.bias",
    ]


def test_one_run_verdict_uses_the_spread_of_a_difference_of_two_runs():
    # two runs with seed sd s differ by sd s * sqrt(2): twice that is 2.83 s
    rng = np.random.default_rng(0)
    pairs = rng.normal(0, 1.0, (20000, 2))
    assert np.std(pairs[:, 0] - pairs[:, 1]) == pytest.approx(np.sqrt(2), rel=0.02)
    assert (
        one_run_verdict(2.9, 1.0) == "larger than" and one_run_verdict(-2.9, 1.0) == "larger than"
    )
    assert one_run_verdict(2.8, 1.0) == "within" and one_run_verdict(0.0, 0.0) == "within"
    assert one_run_verdict(0.01, 0.0) == "larger than"  # no spread: any change counts


def _readme_table(heading: str) -> tuple[list[str], dict[str, list[str]]]:
    """README's first table after `heading`: its column names and its rows by first cell (up
    to a parenthesis), bold marks dropped."""
    text = (ROOT / "README.md").read_text()
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip().replace("**", "") for cell in line.strip("|").split("|")])
    header, rows = table[0], table[2:]  # table[1] is the |---| line
    return header, {row[0].split(" (")[0]: row for row in rows}


@pytest.mark.parametrize(
    ("name", "heading", "rows", "columns"),
    [
        (
            "imbalance",
            "### Class imbalance",
            {"plain": "plain", "class-weighted loss": "weighted", "balanced sampling": "balanced"},
            {
                "accuracy": "accuracy",
                "balanced accuracy": "balanced accuracy",
                "recall disgust (56 faces)": "recall disgust",
                "recall fear": "recall fear",
                "recall happy": "recall happy",
                "seconds per epoch": "seconds per epoch",
            },
        ),
        (
            "fast-recipe",
            "**Each piece, measured.**",
            {
                variant: variant  # here README's row names are the variants' own
                for variant in (
                    "fast",
                    "full-width",
                    "norm-then-pool",
                    "float32",
                    "no-smoothing",
                    "no-flip",
                )
            },
            {
                "accuracy": "accuracy",
                "balanced accuracy": "balanced accuracy",
                "seconds per epoch": "seconds per epoch",
            },
        ),
    ],
)
def test_readme_tables_quote_the_shipped_results(name, heading, rows, columns):
    # every cell is the results file's figure as results_table writes it: a table that a
    # rerun left stale, or a placeholder never filled in, fails here
    expected = results_table(load_results(name))
    header, readme = _readme_table(heading)
    for label, variant in rows.items():
        for column, metric in columns.items():
            assert readme[label][header.index(column)] == expected.loc[variant, metric], (
                f"README's {name} table, row {label!r}, column {column!r}"
            )
