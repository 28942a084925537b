"""The course recipe: its loaders, where it saves, and that course_model trains once, then loads."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fer_helpers import paths, recipes, train
from fer_helpers.checkpoints import load_checkpoint
from fer_helpers.data import load_synthetic
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.recipes import (
    course_epochs,
    course_loaders,
    course_model,
    course_weights,
    log_every,
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


def test_epochs_are_the_courses_ten_and_one_on_tiny_data(tiny):
    assert course_epochs(tiny) == recipes.TINY_EPOCHS == 1
    assert course_epochs(dataclasses.replace(tiny, tiny=False)) == recipes.COURSE_EPOCHS == 10


def test_weights_are_tagged_by_the_data(tiny, weights_dir):
    assert course_weights(tiny) == weights_dir / "face_expression.synthetic-tiny.pth"
    real = dataclasses.replace(tiny, source="FER2013", tiny=False)
    assert course_weights(real) == weights_dir / "face_expression.pth"


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


def test_course_model_trains_the_notebook_04_run_then_loads_it(tiny, monkeypatch):
    model, info = course_model(tiny, device="cpu")  # CPU: bit for bit like the reference
    assert not model.training
    assert info["class_names"] == list(COURSE_CLASSES) and info["epoch"] == 1
    assert len(info["history"]["val_acc"]) == 1  # validated after the epoch
    saved = load_checkpoint(course_weights(tiny))

    # The same run written out as notebook 04 does: seed, factory, fit.
    train.seed_everything(recipes.COURSE_SEED)
    reference, loss_fn, optimizer = train.make_training("si100", 3, lr=recipes.COURSE_LR)
    train_loader, _ = course_loaders(tiny)
    train.fit(
        reference,
        train_loader,
        loss_fn,
        optimizer,
        1,
        device="cpu",
        progress=False,
        log=lambda line: None,
    )
    for name, tensor in reference.state_dict().items():
        assert torch.equal(saved["model_state"][name], tensor), name
        assert torch.equal(model.state_dict()[name], tensor), name

    def no_training(*args, **kwargs):
        raise AssertionError("course_model trained again instead of loading the saved model")

    monkeypatch.setattr(train, "fit", no_training)
    again, info_again = course_model(tiny, device="cpu")
    assert info_again["epoch"] == 1
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, saved["model_state"][name])


def test_course_model_resumes_to_more_epochs_and_retrains_on_request(tiny):
    course_model(tiny)
    _, info = course_model(tiny, epochs=2)  # carries on from epoch 1
    assert info["epoch"] == 2 and len(info["history"]["train_loss"]) == 2
    _, info = course_model(tiny, retrain=True)  # starts again: one epoch
    assert info["epoch"] == 1 and len(info["history"]["train_loss"]) == 1
