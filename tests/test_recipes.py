"""The recipes: the course's loaders, where notebook 04 saves, which model course_model gives."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fer_helpers import paths, pretrained, recipes
from fer_helpers.checkpoints import load_checkpoint
from fer_helpers.data import load_synthetic
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.recipes import (
    COURSE,
    FAST,
    course_epochs,
    course_loaders,
    course_model,
    course_weights,
    log_every,
    train_course_model,
    train_with_recipe,
)


@pytest.fixture(scope="module")
def tiny():
    """Synthetic faces, a few per class: 24 training images of the course's classes."""
    return load_synthetic(tiny=True)


@pytest.fixture(autouse=True)
def weights_dir(tmp_path, monkeypatch):
    """Weights go to a temporary folder, never to the repository's weights/."""
    monkeypatch.setattr(paths, "WEIGHTS_DIR", tmp_path)
    return tmp_path


def test_epochs_are_the_recipes_and_one_on_tiny_data(tiny):
    assert course_epochs(tiny) == course_epochs(tiny, "course") == recipes.TINY_EPOCHS == 1
    full = dataclasses.replace(tiny, tiny=False)
    assert course_epochs(full) == FAST.epochs
    assert course_epochs(full, "course") == COURSE.epochs == 10


def test_weights_are_tagged_by_the_data_and_the_recipe(tiny, weights_dir):
    assert course_weights(tiny) == weights_dir / "face_expression.synthetic-tiny.pth"
    real = dataclasses.replace(tiny, source="FER2013", tiny=False)
    assert course_weights(real) == weights_dir / "face_expression.pth"
    assert course_weights(real, "course") == weights_dir / "face_expression_course.pth"


def test_train_loader_shuffles_every_image_once_per_epoch(tiny):
    train_loader, _ = course_loaders(tiny, batch_size=10)
    dataset = tiny.dataset("train", COURSE_CLASSES)
    xs, ys = zip(*train_loader)
    assert [len(y) for y in ys] == [10, 10, 4]  # 24 images in batches of 10
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.shape == (24, 3, 48, 48) and x.min() >= -1 and x.max() <= 1
    # The same images as the dataset, in another order.
    assert sorted(y.tolist()) == sorted(dataset.targets.tolist())
    assert torch.equal(x.sum(dim=(1, 2, 3)).sort().values, _sums(dataset).sort().values)
    assert not torch.equal(x.sum(dim=(1, 2, 3)), _sums(dataset))


def _sums(dataset) -> torch.Tensor:
    return torch.stack([dataset[i][0].sum() for i in range(len(dataset))])


def test_validation_is_in_order_and_the_seed_decides_the_shuffle(tiny):
    _, val_loader = course_loaders(tiny)
    x, y = next(iter(val_loader))
    dataset = tiny.dataset("validation", COURSE_CLASSES)
    assert len(y) == len(dataset) == 12  # 4 per class, fewer than a batch of 32
    assert torch.equal(x, torch.stack([dataset[i][0] for i in range(len(dataset))]))

    def first_labels(seed: int) -> list[int]:
        return next(iter(course_loaders(tiny, batch_size=24, seed=seed)[0]))[1].tolist()

    assert first_labels(0) == first_labels(0)
    assert first_labels(0) != first_labels(1)


def test_loaders_take_other_classes(tiny):
    train_loader, val_loader = course_loaders(tiny, classes=EMOTIONS, batch_size=64)
    assert train_loader.dataset.class_names == val_loader.dataset.class_names == EMOTIONS
    assert sorted(set(next(iter(train_loader))[1].tolist())) == list(range(7))


@pytest.mark.parametrize(("batches", "expected"), [(535, 107), (54, 10), (4, 1), (1, 1)])
def test_log_every_gives_about_five_lines_per_epoch(batches, expected):
    class Loader:
        def __len__(self) -> int:
            return batches

    assert log_every(Loader()) == expected


def test_course_model_trains_the_notebook_04_run_then_loads_it(tiny, tmp_path, monkeypatch):
    model, info = course_model(tiny, device="cpu")  # CPU: bit for bit like the reference
    assert not model.training and info["source"] == str(course_weights(tiny))
    assert info["class_names"] == list(COURSE_CLASSES) and info["epoch"] == 1
    assert info["extra"]["recipe"] == dataclasses.asdict(dataclasses.replace(FAST, epochs=1))
    assert len(info["history"]["val_bal_acc"]) == 1  # validated after the epoch
    saved = load_checkpoint(course_weights(tiny))

    # The same run through the recipe function, written elsewhere.
    one_epoch = dataclasses.replace(FAST, epochs=1)
    reference, _ = train_with_recipe(
        one_epoch, tiny, tmp_path / "ref.pth", device="cpu", progress=False, log=lambda _: None
    )
    for name, tensor in reference.state_dict().items():
        assert torch.equal(saved["model_state"][name], tensor), name
        assert torch.equal(model.state_dict()[name], tensor), name

    def no_training(*args, **kwargs):
        raise AssertionError("course_model trained again instead of loading the saved model")

    monkeypatch.setattr(recipes, "fit", no_training)
    again, info_again = course_model(tiny, device="cpu")
    assert info_again["epoch"] == 1
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, saved["model_state"][name])


def test_a_run_that_skipped_validations_is_not_notebook_04s(tiny):
    _, info = train_course_model(tiny)
    assert recipes._finished(info, recipes._course_recipe(tiny))
    info["extra"]["validate_every"] = 2  # notebook 04 plots every epoch's validation
    assert not recipes._finished(info, recipes._course_recipe(tiny))


def test_a_run_of_another_recipe_is_trained_again(tiny):
    _, course_info = train_course_model(tiny, "course")
    assert course_info["extra"]["recipe"]["name"] == "course"
    assert course_info["arch_kwargs"] == {"num_classes": 3, "in_channels": 3}
    # Pretend the fast run's file holds the course run: it must not be taken for a fast one.
    course_weights(tiny).write_bytes(course_weights(tiny, "course").read_bytes())
    _, info = train_course_model(tiny)
    assert info["extra"]["recipe"]["name"] == "fast" and info["arch_kwargs"]["batch_norm"]
    _, info = train_course_model(tiny, retrain=True)  # starts again: one epoch
    assert info["epoch"] == 1 and len(info["history"]["train_loss"]) == 1


def test_course_model_takes_the_shipped_weights_on_fer2013_before_anyone_trains(
    tiny, tmp_path, monkeypatch
):
    shipped_dir = tmp_path / "shipped"
    shipped_dir.mkdir()
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", shipped_dir)
    real = dataclasses.replace(tiny, source="FER2013 (pretend)")  # not synthetic
    assert not real.synthetic

    def trained_instead(*args, **kwargs):
        raise AssertionError("course_model trained although pretrained weights are shipped")

    # Nothing shipped: it trains.
    _, info = course_model(tiny)
    assert info["source"] == str(course_weights(tiny))
    pretrained.ship(course_weights(tiny), "si100-3class", shipped_dir)
    course_weights(real).unlink(missing_ok=True)  # no notebook-04 run on these data
    monkeypatch.setattr(recipes, "fit", trained_instead)
    model, info = course_model(real, device="cpu")
    assert info["source"] == "pretrained si100-3class"
    assert info["class_names"] == list(COURSE_CLASSES)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float16 on disk only
    with pytest.raises(AssertionError, match="trained although"):
        course_model(real, pretrained=False)
