"""fer_helpers.bench: both pipelines feed the same faces; the figures come out."""

from __future__ import annotations

import torch

from fer_helpers.bench import export_image_folder, imagefolder_loader, run_bench
from fer_helpers.data import load_data
from fer_helpers.labels import COURSE_CLASSES


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


def test_run_bench_reports_every_pipeline():
    results = run_bench(load_data("synthetic", tiny=True, verbose=False), steps=2, loader_batches=3)
    for key in ("loader_images_per_second", "train_images_per_second"):
        assert len(results[key]) == 3
        assert all(v > 0 for v in results[key].values())
    assert "loading" not in results  # synthetic data are generated, not loaded
