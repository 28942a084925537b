"""fer_helpers.bench: both pipelines feed the same faces; the figures come out."""

from __future__ import annotations

import pytest
import torch

from fer_helpers.bench import (
    add_reference,
    bench_ratios,
    export_image_folder,
    format_bench,
    imagefolder_loader,
    measure_pipeline,
    run_bench,
)
from fer_helpers.data import load_data
from fer_helpers.labels import COURSE_CLASSES
from fer_helpers.recipes import FAST


def as_pixels(x: torch.Tensor) -> torch.Tensor:
    """Back from [-1, 1] floats to the uint8 pixels they were made from."""
    return ((x[:, 0] + 1) * 127.5).round().to(torch.uint8)


def test_imagefolder_pipeline_serves_the_same_faces_and_labels(tmp_path):
    data = load_data("synthetic", tiny=True, verbose=False)
    folder = export_image_folder(data, "train", tmp_path / "train")
    ours = data.dataset("train", COURSE_CLASSES)
    theirs = [(x, y) for x, y in imagefolder_loader(folder, batch_size=5)]
    theirs_x = torch.cat([x for x, _ in theirs])
    theirs_y = torch.cat([y for _, y in theirs])
    mine = {(bytes(p.numpy()), int(t)) for p, t in zip(ours.images[:, 0], ours.targets)}
    got = {(bytes(p.numpy()), int(t)) for p, t in zip(as_pixels(theirs_x), theirs_y)}
    assert len(got) == len(ours) and got == mine


def test_the_short_bench_measures_both_pipelines_in_their_own_processes():
    data = load_data("synthetic", tiny=True, verbose=False)
    results = run_bench(data, steps=2)
    assert results["mode"] == "short" and "loading" not in results  # synthetic: generated
    for name in ("course", "fast"):
        run = results[name]
        for key in ("train_images_per_second", "inference_images_per_second", "ms_per_face"):
            assert run[key] > 0, (name, key)
        assert run["peak_memory_mb"] > 50  # a process that imported torch
        assert "time_to_target_seconds" not in run  # short mode trains no epochs
    assert results["course"]["precision"] == "fp32"
    ratios = results["ratios"]
    assert ratios["train_images_per_second"] == pytest.approx(
        results["fast"]["train_images_per_second"] / results["course"]["train_images_per_second"]
    )
    assert "time_to_target" not in ratios
    text = format_bench(results)
    assert "training images/s" in text and "ms per face" in text and "time to" not in text


def test_the_full_bench_stops_the_course_at_the_target_and_runs_the_fast_recipe_out():
    # In this process, with a target every model reaches: the course stops after 1 epoch.
    course = measure_pipeline("course", "synthetic", True, steps=1, full=True, target=0.0)
    fast = measure_pipeline("fast", "synthetic", True, steps=1, full=True, target=0.0)
    assert course["epochs_to_target"] == 1 and len(course["epochs"]["val_acc"]) == 1
    assert fast["epochs_to_target"] == 1 and len(fast["epochs"]["val_acc"]) == FAST.epochs
    assert 0 < course["time_to_target_seconds"] == course["epochs"]["seconds"][0]
    assert fast["epochs"]["seconds"] == sorted(fast["epochs"]["seconds"])  # wall time goes on
    never = measure_pipeline(
        "course", "synthetic", True, steps=1, full=True, target=1.01, max_epochs=2
    )
    assert never["time_to_target_seconds"] is None and len(never["epochs"]["val_acc"]) == 2
    results = {"course": course, "fast": fast}
    ratios = bench_ratios(course, fast)
    assert ratios["time_to_target"] == pytest.approx(
        course["time_to_target_seconds"] / fast["time_to_target_seconds"]
    )
    assert ratios["peak_memory"] == pytest.approx(course["peak_memory_mb"] / fast["peak_memory_mb"])
    results.update(
        data="synthetic",
        tiny=True,
        mode="full",
        threads=2,
        torch="x",
        target_accuracy=0.0,
        ratios=ratios,
    )
    text = format_bench(results)
    assert "time to 0%" in text and "course val accuracy/balanced per epoch" in text


def test_bench_ratios_say_how_many_times_better_the_fast_recipe_is():
    course = {
        "train_images_per_second": 100.0,
        "inference_images_per_second": 1000.0,
        "ms_per_face": 2.0,
        "peak_memory_mb": 600.0,
        "time_to_target_seconds": 450.0,
    }
    fast = {
        "train_images_per_second": 400.0,
        "inference_images_per_second": 3000.0,
        "ms_per_face": 1.0,
        "peak_memory_mb": 800.0,
        "time_to_target_seconds": 150.0,
    }
    assert bench_ratios(course, fast) == {
        "train_images_per_second": 4.0,
        "inference_images_per_second": 3.0,
        "ms_per_face": 2.0,
        "peak_memory": 0.75,
        "time_to_target": 3.0,
    }
    fast["time_to_target_seconds"] = None  # not reached: no ratio
    assert "time_to_target" not in bench_ratios(course, fast)
    assert "time_to_target_at_least" not in bench_ratios(course, fast)


def test_a_course_that_never_reaches_the_target_gives_a_lower_bound_on_the_ratio():
    speeds = {
        "train_images_per_second": 1.0,
        "inference_images_per_second": 1.0,
        "ms_per_face": 1.0,
        "peak_memory_mb": 1.0,
    }
    course = {**speeds, "time_to_target_seconds": None, "epochs": {"seconds": [250.0, 2500.0]}}
    fast = {**speeds, "time_to_target_seconds": 500.0, "epochs": {"seconds": [250.0, 500.0]}}
    ratios = bench_ratios(course, fast)
    assert ratios["time_to_target_at_least"] == 5.0 and "time_to_target" not in ratios
    fast["time_to_target_seconds"] = None  # neither reached it: nothing to compare
    assert "time_to_target_at_least" not in bench_ratios(course, fast)
    course["time_to_target_seconds"] = 1000.0  # reached: an exact ratio, no bound
    fast["time_to_target_seconds"] = 500.0
    ratios = bench_ratios(course, fast)
    assert ratios["time_to_target"] == 2.0 and "time_to_target_at_least" not in ratios
    for run, accs in ((course, [0.6, 0.7]), (fast, [0.65, 0.72])):
        run["epochs"].update(val_acc=accs, val_bal_acc=accs)
    course["time_to_target_seconds"] = None
    results = {
        "course": {**course, "pipeline": "c"},
        "fast": {**fast, "pipeline": "f", "precision": "fp32"},
        "ratios": bench_ratios(course, fast),
        "data": "synthetic",
        "tiny": True,
        "mode": "full",
        "threads": 2,
        "torch": "x",
        "target_accuracy": 0.71,
    }
    text = format_bench(results)
    assert "> 2500 s" in text and "> 5.00x" in text
    assert "did not reach 71% in its 2 epochs" in text


def test_the_reference_is_the_target_or_the_courses_best_when_it_falls_short():
    def run(accs, seconds):
        return {"epochs": {"val_acc": accs, "seconds": seconds}}

    results = {
        "target_accuracy": 0.71,
        "course": run([0.64, 0.707, 0.69, 0.7072], [90, 180, 270, 360]),
        "fast": run([0.57, 0.668, 0.7077], [47, 92, 137]),
    }
    add_reference(results)
    assert results["reference_accuracy"] == 0.7072  # the course never reached 71%
    assert results["course"]["time_to_reference_seconds"] == 360
    assert results["fast"]["time_to_reference_seconds"] == 137
    results["course"] = run([0.64, 0.72], [90, 180])  # it reached 71%: that is the reference
    results["fast"] = run([0.57, 0.70], [47, 92])  # ... which the fast run missed
    add_reference(results)
    assert results["reference_accuracy"] == 0.71
    assert results["course"]["time_to_reference_seconds"] == 180
    assert results["fast"]["time_to_reference_seconds"] is None
