"""The recipes: loaders, where notebook 06 saves, which model three_class_model gives, and
train_or_load, which reuses a saved run only when every setting matches."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fer_helpers import paths, pretrained, recipes
from fer_helpers.checkpoints import load_checkpoint, save_checkpoint
from fer_helpers.data import load_synthetic
from fer_helpers.errors import CheckpointError, FerError
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.models import MODELS
from fer_helpers.recipes import (
    COURSE,
    FAST,
    TrainRecipe,
    course_loaders,
    log_every,
    recipe_loaders,
    three_class_epochs,
    three_class_model,
    three_class_weights,
    train_three_class_model,
    train_with_recipe,
    with_arch,
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
    assert three_class_epochs(tiny) == three_class_epochs(tiny, "course") == 1
    assert recipes.TINY_EPOCHS == 1
    full = dataclasses.replace(tiny, tiny=False)
    assert three_class_epochs(full) == FAST.epochs
    assert three_class_epochs(full, "course") == COURSE.epochs == 10


def test_weights_are_tagged_by_the_data_and_the_recipe(tiny, weights_dir):
    assert three_class_weights(tiny) == weights_dir / "face_expression.synthetic-tiny.pth"
    real = dataclasses.replace(tiny, source="FER2013", tiny=False)
    assert three_class_weights(real) == weights_dir / "face_expression.pth"
    assert three_class_weights(real, "course") == weights_dir / "face_expression_course.pth"


def test_train_loader_shuffles_every_image_once_per_epoch(tiny):
    train_loader, _ = recipe_loaders(dataclasses.replace(COURSE, batch_size=10), tiny)
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
        recipe = dataclasses.replace(COURSE, batch_size=24)
        return next(iter(recipe_loaders(recipe, tiny, seed=seed)[0]))[1].tolist()

    assert first_labels(0) == first_labels(0)
    assert first_labels(0) != first_labels(1)


def test_loaders_take_other_classes(tiny):
    recipe = dataclasses.replace(COURSE, batch_size=64)
    train_loader, val_loader = recipe_loaders(recipe, tiny, classes=EMOTIONS)
    assert train_loader.dataset.class_names == val_loader.dataset.class_names == EMOTIONS
    assert sorted(set(next(iter(train_loader))[1].tolist())) == list(range(7))


@pytest.mark.parametrize(("batches", "expected"), [(535, 107), (54, 10), (4, 1), (1, 1)])
def test_log_every_gives_about_five_lines_per_epoch(batches, expected):
    class Loader:
        def __len__(self) -> int:
            return batches

    assert log_every(Loader()) == expected


def test_three_class_model_trains_the_notebook_04_run_then_loads_it(tiny, tmp_path, monkeypatch):
    model, info = three_class_model(tiny, device="cpu")  # CPU: bit for bit like the reference
    assert not model.training and info["source"] == str(three_class_weights(tiny))
    assert info["class_names"] == list(COURSE_CLASSES) and info["epoch"] == 1
    assert info["extra"]["recipe"] == dataclasses.asdict(dataclasses.replace(FAST, epochs=1))
    assert len(info["history"]["val_bal_acc"]) == 1  # validated after the epoch
    saved = load_checkpoint(three_class_weights(tiny))
    assert saved["optimizer_state"] is not None  # notebook 06 shows it: kept

    # The same run through the recipe function, written elsewhere.
    one_epoch = dataclasses.replace(FAST, epochs=1)
    reference, _ = train_with_recipe(
        one_epoch, tiny, tmp_path / "ref.pth", device="cpu", progress=False, log=lambda _: None
    )
    for name, tensor in reference.state_dict().items():
        assert torch.equal(saved["model_state"][name], tensor), name
        assert torch.equal(model.state_dict()[name], tensor), name

    def no_training(*args, **kwargs):
        raise AssertionError("three_class_model trained again instead of loading the saved model")

    monkeypatch.setattr(recipes, "fit", no_training)
    again, info_again = three_class_model(tiny, device="cpu")
    assert info_again["epoch"] == 1
    for name, tensor in again.state_dict().items():
        assert torch.equal(tensor, saved["model_state"][name])


def test_a_run_that_skipped_validations_is_not_notebook_04s(tiny):
    train_three_class_model(tiny)
    path = three_class_weights(tiny)
    recipe = recipes._three_class_recipe(tiny)
    assert recipes.saved_run(path, recipe, tiny, COURSE_CLASSES, 0) == (True, [])
    saved = load_checkpoint(path)
    saved.pop("format", None)
    saved["extra"]["settings"]["validate_every"] = 2  # notebook 06 plots every validation
    save_checkpoint(path, **saved)
    assert recipes.saved_run(path, recipe, tiny, COURSE_CLASSES, 0) == (
        False,
        ["validate_every 2 -> 1"],
    )


def test_an_interrupted_run_is_unfinished_with_no_change(tiny):
    train_three_class_model(tiny)
    path = three_class_weights(tiny)
    longer = dataclasses.replace(recipes._three_class_recipe(tiny), epochs=2)
    finished, changed = recipes.saved_run(path, longer, tiny, COURSE_CLASSES, 0)
    assert not finished
    assert changed == ["epochs 1 -> 2"]
    # A cap trains on other faces: the message names the cap and the faces' fingerprint.
    capped = dataclasses.replace(recipes._three_class_recipe(tiny), per_class=2)
    changed = recipes.saved_run(path, capped, tiny, COURSE_CLASSES, 0)[1]
    assert changed[0] == "per_class None -> 2"
    assert [c.split()[0] for c in changed[1:]] == ["train_faces"]


def test_a_run_of_another_recipe_is_trained_again(tiny):
    _, course_info = train_three_class_model(tiny, "course")
    assert course_info["extra"]["recipe"]["name"] == "course"
    assert course_info["arch_kwargs"] == {"num_classes": 3, "in_channels": 3}
    # Pretend the fast run's file holds the course run: it must not be taken for a fast one.
    three_class_weights(tiny).write_bytes(three_class_weights(tiny, "course").read_bytes())
    _, info = train_three_class_model(tiny)
    assert info["extra"]["recipe"]["name"] == "fast" and info["arch_kwargs"]["batch_norm"]
    _, info = train_three_class_model(tiny, retrain=True)  # starts again: one epoch
    assert info["epoch"] == 1 and len(info["history"]["train_loss"]) == 1


def test_three_class_model_takes_the_shipped_weights_on_fer2013_before_anyone_trains(
    tiny, tmp_path, monkeypatch
):
    shipped_dir = tmp_path / "shipped"
    shipped_dir.mkdir()
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", shipped_dir)
    real = dataclasses.replace(tiny, source="FER2013 (pretend)")  # not synthetic
    assert not real.synthetic

    def trained_instead(*args, **kwargs):
        raise AssertionError("three_class_model trained although pretrained weights are shipped")

    # Nothing shipped: it trains.
    _, info = three_class_model(tiny)
    assert info["source"] == str(three_class_weights(tiny))
    pretrained.ship(three_class_weights(tiny), "si100-3class", shipped_dir)
    three_class_weights(real).unlink(missing_ok=True)  # no notebook-04 run on these data
    monkeypatch.setattr(recipes, "fit", trained_instead)
    model, info = three_class_model(real, device="cpu")
    assert info["source"] == "pretrained si100-3class"
    assert info["class_names"] == list(COURSE_CLASSES)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float16 on disk only
    with pytest.raises(AssertionError, match="trained although"):
        three_class_model(real, pretrained=False)


# --- train_or_load: a saved run is reused only when every setting matches --------------------


def test_train_or_load_retrains_when_any_setting_changes_and_says_which(tiny, weights_dir, capsys):
    path = weights_dir / "run.pth"
    recipe = dataclasses.replace(COURSE, epochs=1, batch_size=8)
    quiet = {"progress": False, "log": lambda _: None}
    recipes.train_or_load(path, recipe, tiny, device="cpu", **quiet)
    first = load_checkpoint(path)["model_state"]

    def trained_again() -> bool:
        return not all(
            torch.equal(first[k], v) for k, v in load_checkpoint(path)["model_state"].items()
        )

    capsys.readouterr()
    recipes.train_or_load(path, recipe, tiny, device="cpu", **quiet)  # the same: loaded
    assert "training again" not in capsys.readouterr().out and not trained_again()
    for changes, said in (
        ({"seed": 1}, "seed 0 -> 1"),
        ({"classes": EMOTIONS}, "classes ['happy', 'neutral', 'sad'] -> ['angry'"),
        ({"recipe": dataclasses.replace(recipe, per_class=3)}, "per_class None -> 3"),
        ({"recipe": dataclasses.replace(recipe, lr=0.01)}, "lr 0.001 -> 0.01"),
    ):
        arguments = {"recipe": recipe, "classes": COURSE_CLASSES, "seed": 0} | changes
        recipes.train_or_load(path, data=tiny, device="cpu", **arguments, **quiet)
        out = capsys.readouterr().out
        assert f"{path} was trained with other settings (" in out and said in out, out
        assert trained_again()
        recipes.train_or_load(path, recipe, tiny, device="cpu", **quiet)  # back to the first
        first = load_checkpoint(path)["model_state"]
        capsys.readouterr()


def test_train_or_load_resumes_an_interrupted_run_and_names_a_corrupt_file(tiny, weights_dir):
    from fer_helpers.errors import CheckpointError

    path = weights_dir / "run.pth"
    two = dataclasses.replace(COURSE, epochs=2, batch_size=8)
    quiet = {"progress": False, "log": lambda _: None}
    whole, _ = recipes.train_or_load(path, two, tiny, device="cpu", **quiet)
    # What an interruption after epoch 1 leaves: the same run's checkpoint after one epoch.
    first_half = weights_dir / "half.pth"
    calls = {"n": 0}
    real = recipes.fit

    def stop_after_one_epoch(*args, **kwargs):
        calls["n"] += 1
        real(*args[:4], 1, *args[5:], **kwargs)  # epoch 1 of the planned 2, then ^C
        raise KeyboardInterrupt

    recipes.fit = stop_after_one_epoch
    try:
        with pytest.raises(KeyboardInterrupt):
            recipes.train_or_load(first_half, two, tiny, device="cpu", **quiet)
    finally:
        recipes.fit = real
    halfway = load_checkpoint(first_half)
    assert halfway["epoch"] == 1 and halfway["optimizer_state"] is not None  # can resume
    resumed, info = recipes.train_or_load(first_half, two, tiny, device="cpu", **quiet)
    assert info["epoch"] == 2 and calls["n"] == 1
    assert "optimizer_state" not in load_checkpoint(first_half)  # finished: compact
    for name, tensor in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    first_half.write_bytes(b"\x00 not a checkpoint")
    with pytest.raises(CheckpointError, match="half.pth"):
        recipes.train_or_load(first_half, two, tiny, device="cpu", **quiet)


def test_resume_refuses_other_settings_but_takes_more_epochs(tiny, tmp_path):
    one = dataclasses.replace(COURSE, epochs=1, batch_size=8)
    out = tmp_path / "run.pth"
    quiet = {"device": "cpu", "progress": False, "log": lambda _: None}
    train_with_recipe(one, tiny, out, **quiet)
    faster = dataclasses.replace(one, epochs=2, lr=0.01)
    with pytest.raises(CheckpointError, match=r"run\.pth was trained with other settings \(lr "):
        train_with_recipe(faster, tiny, out, resume=True, **quiet)
    with pytest.raises(CheckpointError, match=r"seed 0 -> 1"):
        train_with_recipe(one, tiny, out, seed=1, resume=True, **quiet)
    _, history = train_with_recipe(
        dataclasses.replace(one, epochs=2), tiny, out, resume=True, **quiet
    )
    assert len(history["val_acc"]) == 2 and load_checkpoint(out)["epoch"] == 2


# --- model options: refused when the recipe is made, naming what a recipe can set ------------


@pytest.mark.parametrize(
    ("arch", "option", "message"),
    [
        ("dacl", {"dropout": 0.1}, "dropout=0.1; a recipe can set for it: batch_norm (True only)"),
        (
            "resnet18",
            {"batch_norm": False},
            "batch_norm=False; a recipe can set for it: batch_norm (True only)",
        ),
        (
            "resnet9",
            {"width": 8},
            "width=8; a recipe can set for it: batch_norm (True only), dropout (default 0.5)",
        ),
    ],
)
def test_a_model_option_the_architecture_does_not_take_is_refused_when_the_recipe_is_made(
    arch, option, message
):
    # The constructor's own sizes (input_size, maxpool, widths) are no recipe field: not listed.
    with pytest.raises(FerError) as caught:
        TrainRecipe("x", arch=arch, **option)
    assert str(caught.value) == f"model {arch!r} cannot take {message}"
    with pytest.raises(FerError, match=f"model {arch!r} cannot take"):
        dataclasses.replace(TrainRecipe("x", arch=arch), **option)  # replace checks too


def test_a_model_that_takes_every_option_lists_them_with_their_defaults():
    assert recipes.recipe_options("si100") == (
        "batch_norm (default False), dropout (default 0.0), width (default 64), "
        "pool_before_norm (default False)"
    )
    assert recipes.recipe_options("smallvgg") == (
        "batch_norm (True only), dropout (default 0.3), width (default 32), "
        "head (default 'average')"
    )
    assert TrainRecipe("x", arch="resnet18", batch_norm=True).model_kwargs() == {"in_channels": 3}


def test_every_recipe_the_package_makes_is_valid_and_moves_to_every_architecture():
    from fer_helpers import comparison, dacl, experiments, imbalance

    made = [*recipes.RECIPES.values()]
    made += [dacl.variant_recipe(variant) for variant in dacl.VARIANTS]
    made += [comparison.contender_recipe(name) for name in comparison.CONTENDERS]
    made += [imbalance.strategy_recipe(strategy) for strategy in imbalance.STRATEGIES]
    for experiment in experiments.EXPERIMENTS.values():
        made += [*experiment.variants.values(), *([experiment.source] if experiment.source else [])]
    assert len(made) > 12
    for recipe in made:
        assert recipe.model_kwargs()["in_channels"] == recipe.channels
        if recipe.objective != "cross_entropy":
            continue  # center losses need DACL's features: no other architecture
        for arch in set(MODELS) - {"ensemble"}:
            moved = with_arch(recipe, arch)
            assert moved.arch == arch and moved.model_kwargs()["in_channels"] == recipe.channels
