"""The fast recipe's parts: batch norm and dropout, sharded loading, bfloat16, flip TTA,
balanced accuracy, one-cycle recipes, exact resume and the train command's options."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from fer_helpers import cli, devices
from fer_helpers.augment import Augment, CropFlip
from fer_helpers.checkpoints import load_checkpoint, load_model, make_meta, save_checkpoint
from fer_helpers.data import FaceDataset, FaceLoader, FaceSplit, load_synthetic
from fer_helpers.devices import autocast, resolve_precision
from fer_helpers.errors import CheckpointError, FerError
from fer_helpers.inference import TTA_SHIFT, class_probabilities, predict, tta_views
from fer_helpers.labels import COURSE_CLASSES, fer_labels
from fer_helpers.models import SI100FaceNet, count_parameters
from fer_helpers.recipes import (
    COURSE,
    FAST,
    TrainRecipe,
    build_training,
    get_recipe,
    train_with_recipe,
    with_arch,
)
from fer_helpers.train import HISTORY_KEYS, fit, validate

CONV_CHANNELS = (64, 128, 256)  # conv1..conv3 outputs: one BatchNorm2d each
PLAIN_KEYS = {
    f"{layer}.{kind}"
    for layer in ("conv1", "conv2", "conv3", "fc1", "fc2")
    for kind in ("weight", "bias")
}  # what checkpoints saved before batch_norm existed
QUIET = {"progress": False, "log": lambda line: None}


@pytest.fixture(scope="module")
def tiny():
    """Synthetic faces, a few per class: 24 training, 12 validation images of 3 classes."""
    return load_synthetic(tiny=True)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- SI100FaceNet(batch_norm=, dropout=) ------------------------------------------------------


@pytest.mark.parametrize(("classes", "channels"), [(3, 3), (7, 1)])
def test_batch_norm_adds_two_numbers_per_conv_channel_and_no_shape_changes(classes, channels):
    plain = SI100FaceNet(num_classes=classes, in_channels=channels)
    fast = SI100FaceNet(num_classes=classes, in_channels=channels, batch_norm=True, dropout=0.3)
    assert count_parameters(fast) == count_parameters(plain) + 2 * (64 + 128 + 256)
    added = {n for n, _ in fast.named_parameters()} - {n for n, _ in plain.named_parameters()}
    assert added == {f"bn{i}.{kind}" for i in (1, 2, 3) for kind in ("weight", "bias")}
    x = torch.randn(2, channels, 48, 48)
    for model in (plain, fast):
        for mode in (model.train, model.eval):
            mode()
            assert model(x).shape == (2, classes)


def shape_trace(model: nn.Module, capsys) -> list[tuple[str, str]]:
    """(step, shape) of every line that print_shapes writes for one image."""
    model.print_shapes = True
    model.eval()(torch.zeros(1, 3, 48, 48))
    return [tuple(line.split(" -> ")) for line in capsys.readouterr().out.splitlines()]


def test_print_shapes_lists_bn_steps_only_with_batch_norm(capsys):
    plain = shape_trace(SI100FaceNet(), capsys)
    with_bn = shape_trace(SI100FaceNet(batch_norm=True), capsys)
    assert not any(step.startswith("bn") for step, _ in plain)
    expected = []
    for step, shape in plain:  # every bn step follows its conv and keeps the conv's shape
        expected.append((step, shape))
        if step.strip().startswith("conv"):
            expected.append((f"bn{step.strip()[-1]}".ljust(len(step)), shape))
    assert with_bn == expected
    assert [s.strip() for s, _ in with_bn if s.startswith("bn")] == ["bn1", "bn2", "bn3"]


def test_a_plain_models_state_dict_is_unchanged_so_old_checkpoints_load(tmp_path):
    assert set(SI100FaceNet().state_dict()) == PLAIN_KEYS
    assert set(SI100FaceNet(dropout=0.5).state_dict()) == PLAIN_KEYS  # dropout learns nothing
    fast_keys = set(SI100FaceNet(batch_norm=True).state_dict())
    bn_keys = {
        f"bn{i}.{k}"
        for i in (1, 2, 3)
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    }
    assert fast_keys == PLAIN_KEYS | bn_keys

    # A checkpoint written as before (arch_kwargs without batch_norm/dropout) still loads.
    small = {"hidden": 16, "input_size": 16}
    old = SI100FaceNet(**small)
    path = save_checkpoint(
        tmp_path / "old.pth",
        **make_meta("si100", COURSE_CLASSES, **small),
        model_state=old.state_dict(),
    )
    loaded, _ = load_model(path)
    assert not loaded.batch_norm and same_weights(loaded, old)


def test_dropout_acts_before_fc1_and_fc2_in_training_only():
    torch.manual_seed(0)
    model = SI100FaceNet(dropout=0.5, hidden=32)
    assert model.drop1.p == model.drop2.p == 0.5
    seen = {}

    def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen[module] = args[0].shape[1]

    model.drop1.register_forward_hook(record)
    model.drop2.register_forward_hook(record)
    x = torch.randn(4, 3, 48, 48)
    model.train()
    assert not torch.equal(model(x), model(x))  # a new random mask every pass
    assert seen == {model.drop1: 256 * 6 * 6, model.drop2: 32}  # fc1's and fc2's inputs

    without = SI100FaceNet(dropout=0.0, hidden=32)
    without.load_state_dict(model.state_dict())
    without.train()
    assert torch.equal(without(x), without(x))  # control: no dropout, no randomness
    model.eval()
    without.eval()
    assert torch.equal(model(x), model(x))
    assert torch.equal(model(x), without(x))


# --- FaceLoader(rank=, world_size=) ----------------------------------------------------------


def numbered_faces(n: int) -> FaceDataset:
    """n faces of the course's classes; face i is filled with the gray value i (i < 256)."""
    images = np.stack([np.full((48, 48), i, dtype=np.uint8) for i in range(n)])
    labels = np.asarray(fer_labels(COURSE_CLASSES))[np.arange(n) % 3]
    split = FaceSplit("train", images, labels, np.arange(n).astype(str))
    return FaceDataset(split, COURSE_CLASSES, channels=1)


def epoch_of(loader: FaceLoader) -> list[list[int]]:
    """The face numbers in each batch of one epoch."""
    return [((x[:, 0, 0, 0] + 1) * 127.5).round().long().tolist() for x, _ in loader]


@pytest.mark.parametrize(
    "augment", [None, Augment(), CropFlip()], ids=["none", "affine", "cropflip"]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_two_ranks_split_every_epoch_into_disjoint_equal_shards(seed, augment):
    n, batch = 25, 4  # odd n: one face is left out, so both ranks get 12 faces, 3 batches
    dataset = numbered_faces(n)  # a face filled with one value keeps it when augmented
    ranks = [
        FaceLoader(dataset, batch, shuffle=True, seed=seed, augment=augment, rank=r, world_size=2)
        for r in (0, 1)
    ]
    epochs = []
    for _ in range(3):
        shards = [epoch_of(loader) for loader in ranks]
        assert len(shards[0]) == len(shards[1]) == len(ranks[0]) == len(ranks[1])
        assert len(ranks[0]) == math.ceil((n // 2) / batch)  # no empty batch at the end
        assert [len(b) for b in shards[0]] == [len(b) for b in shards[1]]
        faces = [[i for b in shard for i in b] for shard in shards]
        assert len(set(faces[0])) == len(faces[0]) and len(set(faces[1])) == len(faces[1])
        assert not set(faces[0]) & set(faces[1])
        assert len(faces[0]) + len(faces[1]) == (n // 2) * 2
        assert set(faces[0]) | set(faces[1]) <= set(range(n))
        epochs.append(faces[0])
    assert epochs[0] != epochs[1]  # a new shuffle every epoch


@pytest.mark.parametrize("augment", [Augment, CropFlip])
def test_two_ranks_stay_in_step_when_augmenting(augment):
    """Augmentation draws from the loader's generator: both ranks must draw alike."""
    dataset = numbered_faces(25)
    ranks = [
        FaceLoader(dataset, 4, shuffle=True, augment=augment(), rank=r, world_size=2)
        for r in (0, 1)
    ]
    for _ in range(3):
        for loader in ranks:
            list(loader)
        assert torch.equal(ranks[0].generator.get_state(), ranks[1].generator.get_state())


def test_one_process_loads_as_before():
    n, batch, seed = 25, 4, 3
    dataset = numbered_faces(n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    expected = [order[b : b + batch] for b in range(0, n, batch)]
    default = FaceLoader(dataset, batch, shuffle=True, seed=seed)
    explicit = FaceLoader(dataset, batch, shuffle=True, seed=seed, rank=0, world_size=1)
    assert len(default) == len(explicit) == math.ceil(n / batch)
    assert epoch_of(default) == epoch_of(explicit) == expected
    assert epoch_of(FaceLoader(dataset, batch)) == [
        list(range(b, min(b + batch, n))) for b in range(0, n, batch)
    ]


@pytest.mark.parametrize(("rank", "world_size"), [(2, 2), (-1, 2), (0, 0), (1, 1)])
def test_a_rank_outside_the_world_is_refused(rank, world_size):
    with pytest.raises(ValueError, match="rank"):
        FaceLoader(numbered_faces(6), 2, shuffle=True, rank=rank, world_size=world_size)


def test_an_unshuffled_loader_is_not_split():
    with pytest.raises(ValueError, match="shuffled"):
        FaceLoader(numbered_faces(6), 2, rank=0, world_size=2)


# --- precision -------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_explicit_precisions_pass_through(device, precision):
    assert resolve_precision(precision, device) == precision


def test_an_unknown_precision_is_refused():
    with pytest.raises(FerError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_precision_follows_the_hardware(monkeypatch, has_bf16):
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: has_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: has_bf16)
    expected = "bf16" if has_bf16 else "fp32"
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("auto", "cuda") == expected
    assert resolve_precision("auto", "mps") == "fp32"  # MPS: always float32


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("flags : fpu avx2 avx512f", False),
        ("flags : avx512_bf16", True),
        ("flags : amx_bf16", True),
    ],
)
def test_cpu_has_bf16_reads_the_cpu_flags(monkeypatch, cpuinfo, expected):
    class FakePath:
        def __init__(self, path: str) -> None:
            assert path == "/proc/cpuinfo"

        def read_text(self) -> str:
            return cpuinfo

    monkeypatch.setattr(devices, "Path", FakePath)
    assert devices.cpu_has_bf16() is expected


def test_cpu_has_bf16_is_false_without_proc(monkeypatch):
    class NoProc:
        def __init__(self, path: str) -> None:
            pass

        def read_text(self) -> str:
            raise FileNotFoundError("/proc/cpuinfo")

    monkeypatch.setattr(devices, "Path", NoProc)
    assert devices.cpu_has_bf16() is False


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)]
)
def test_autocast_computes_in_bfloat16_only_for_bf16(precision, dtype):
    layer = nn.Linear(4, 2)
    with autocast("cpu", precision):
        assert layer(torch.randn(3, 4)).dtype == dtype
    assert layer(torch.randn(3, 4)).dtype == torch.float32  # and only inside the context


# --- validate: balanced accuracy and flip TTA -------------------------------------------------


def lopsided_validation(seed: int = 0):
    """A small linear model and 15 images (1x4x4) of 3 classes: 9, 4 and 2 of them.

    Unequal classes make balanced accuracy differ from accuracy; no left-right
    symmetry makes the mirror image score differently.
    """
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randn(15, 1, 4, 4)
    y = torch.tensor([0] * 9 + [1] * 4 + [2] * 2)
    batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 15, 4)]
    return model, x, y, batches


def by_hand(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean recall over the classes present)."""
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return float(np.mean(y_true == y_pred)), float(np.mean(recalls))


@pytest.mark.parametrize("tta", [False, True])
def test_validate_scores_match_metrics_by_hand(tta):
    model, x, y, batches = lopsided_validation()
    y_true, y_pred, probs = predict(model, batches, tta=tta)
    accuracy, balanced = by_hand(y_true, y_pred)
    assert accuracy != pytest.approx(balanced)  # else the test could not tell them apart
    scores = validate(model, batches, nn.CrossEntropyLoss(), "cpu", tta=tta)
    assert scores["accuracy"] == pytest.approx(accuracy)
    assert scores["balanced_accuracy"] == pytest.approx(balanced)
    loss = -np.log(probs[np.arange(len(y)), y_true]).mean()  # of the (averaged) probabilities
    assert scores["loss"] == pytest.approx(loss, rel=1e-5)


def test_tta_averages_the_face_and_its_mirror_image():
    model, x, y, batches = lopsided_validation()
    with torch.inference_mode():
        plain = torch.softmax(model(x), dim=1)
        mirror = torch.softmax(model(x.flip(3)), dim=1)
        tta = class_probabilities(model, x, tta=True)
        torch.testing.assert_close(class_probabilities(model, x), plain)
    torch.testing.assert_close(tta, (plain + mirror) / 2)
    assert not torch.allclose(tta, plain)  # the mirror changed something
    _, y_pred, probs = predict(model, batches, tta=True)
    np.testing.assert_allclose(probs, tta.numpy(), rtol=1e-6)
    expected, _ = by_hand(y.numpy(), tta.argmax(dim=1).numpy())
    assert validate(model, batches, nn.CrossEntropyLoss(), "cpu", tta=True)[
        "accuracy"
    ] == pytest.approx(expected)


def test_shift_tta_averages_ten_views_of_each_face():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    views = tta_views(x, "shifts")
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    assert torch.equal(views[0], x) and torch.equal(views[1], x.flip(3))
    s = TTA_SHIFT
    down = views[2]  # the face moved: row i of the view is row i - s of the face
    assert torch.equal(down[..., s:, :], x[..., :-s, :])
    assert torch.equal(down[..., :s, :], x[..., 1 : s + 1, :].flip(2))  # the gap mirrored in
    assert torch.equal(views[3], down.flip(3))
    right = views[6]
    assert torch.equal(right[..., :, s:], x[..., :, :-s])
    assert len({tuple(v.flatten().tolist()) for v in views}) == 10  # all different
    assert [len(tta_views(x, t)) for t in (False, "none", True, "flip")] == [1, 1, 2, 2]

    model, x, y, batches = lopsided_validation()
    with torch.inference_mode():
        by_view = [torch.softmax(model(v), dim=1) for v in tta_views(x, "shifts")]
        averaged = class_probabilities(model, x, tta="shifts")
    torch.testing.assert_close(averaged, torch.stack(by_view).mean(0))
    assert not torch.allclose(averaged, class_probabilities(model, x, tta=True))
    _, _, probs = predict(model, batches, tta="shifts")
    np.testing.assert_allclose(probs, averaged.numpy(), rtol=1e-5)
    with pytest.raises(FerError, match="unknown test-time augmentation 'crops'"):
        class_probabilities(model, x, tta="crops")


@pytest.mark.parametrize("tta", [False, True])
def test_fit_records_balanced_validation_accuracy(tta):
    model, x, y, batches = lopsided_validation(seed=1)
    assert "val_bal_acc" in HISTORY_KEYS
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(
        model,
        batches,
        nn.CrossEntropyLoss(),
        optimizer,
        2,
        "cpu",
        val_loader=batches,
        tta=tta,
        **QUIET,
    )
    assert list(history) == list(HISTORY_KEYS) and len(history["val_bal_acc"]) == 2
    now = validate(model, batches, nn.CrossEntropyLoss(), "cpu", tta=tta)
    assert history["val_bal_acc"][-1] == pytest.approx(now["balanced_accuracy"])
    assert history["val_acc"][-1] == pytest.approx(now["accuracy"])
    assert math.isnan(
        fit(model, batches, nn.CrossEntropyLoss(), optimizer, 1, "cpu", **QUIET)["val_bal_acc"][0]
    )


# --- recipes ---------------------------------------------------------------------------------


def test_recipes_by_name():
    assert get_recipe("fast") is FAST and get_recipe("course") is COURSE
    custom = TrainRecipe(name="mine", epochs=3)
    assert get_recipe(custom) is custom
    with pytest.raises(FerError, match="unknown recipe 'slow'"):
        get_recipe("slow")


def lr_schedule(recipe: TrainRecipe, steps_per_epoch: int) -> list[float]:
    """The learning rate of every training step, as build_training's scheduler sets it."""
    _, _, optimizer, scheduler = build_training(recipe, 3, steps_per_epoch)
    lrs = []
    for _ in range(recipe.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: changes nothing, keeps the scheduler's order check quiet
        scheduler.step()
    return lrs


def test_the_fast_recipe_builds_a_one_cycle_adamw_with_label_smoothing():
    model, loss_fn, optimizer, scheduler = build_training(FAST, 3, steps_per_epoch=5)
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert scheduler.total_steps == FAST.epochs * 5
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == FAST.weight_decay
    assert optimizer.param_groups[0]["params"] == list(model.parameters())
    assert loss_fn.label_smoothing == FAST.label_smoothing > 0
    assert model.conv1.in_channels == FAST.channels and isinstance(model.bn1, nn.BatchNorm2d)
    assert model.drop1.p == FAST.dropout > 0

    lrs = lr_schedule(FAST, 5)
    assert lrs[0] == pytest.approx(FAST.lr / 25)  # OneCycleLR's default div_factor
    assert max(lrs) == pytest.approx(FAST.lr, rel=0.02)  # the peak falls between two steps
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1  # warms up, then anneals
    assert lrs[-1] < lrs[0]


def test_the_course_recipe_keeps_adam_at_a_constant_rate():
    model, loss_fn, optimizer, scheduler = build_training(COURSE, 3, steps_per_epoch=4)
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.param_groups[0]["weight_decay"] == 0
    assert loss_fn.label_smoothing == 0
    assert model.conv1.in_channels == 3 and isinstance(model.bn1, nn.Identity)
    assert lr_schedule(COURSE, 4) == [COURSE.lr] * COURSE.epochs * 4


def test_sgd_and_bad_settings():
    _, _, optimizer, _ = build_training(dataclasses.replace(COURSE, optimizer="sgd"), 3, 1)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["nesterov"] and optimizer.param_groups[0]["momentum"] == 0.9
    with pytest.raises(FerError, match="unknown optimizer 'rmsprop'"):
        build_training(dataclasses.replace(FAST, optimizer="rmsprop"), 3, 1)
    with pytest.raises(FerError, match="unknown schedule 'cosine'"):
        build_training(dataclasses.replace(FAST, schedule="cosine"), 3, 1)
    with pytest.raises(FerError, match="unknown augment 'mixup'"):
        build_training(dataclasses.replace(FAST, augment="mixup"), 3, 1)


def test_model_kwargs_give_each_architecture_the_options_it_takes_and_refuse_the_rest():
    gray = dataclasses.replace(FAST, channels=1)
    assert gray.model_kwargs() == {
        "in_channels": 1,
        "batch_norm": True,
        "dropout": FAST.dropout,
        "width": 32,
        "pool_before_norm": True,
    }
    assert FAST.batch_norm and FAST.model_kwargs()["in_channels"] == FAST.channels
    # another architecture gets its own width and order back, keeps batch norm and dropout
    gray = with_arch(gray, "si100")
    assert gray.width == 32  # the same architecture: nothing changes
    with pytest.raises(FerError) as caught:  # refused when the recipe is made
        dataclasses.replace(gray, arch="convnet5")
    assert str(caught.value) == (
        "model 'convnet5' cannot take pool_before_norm=True; a recipe can set for it: "
        "batch_norm (True only), dropout (default 0.4), width (default 64)"
    )
    gray = with_arch(dataclasses.replace(FAST, channels=1), "convnet5")
    assert (gray.arch, gray.width, gray.pool_before_norm) == ("convnet5", None, None)
    assert COURSE.model_kwargs() == {"in_channels": 3}
    assert dataclasses.replace(COURSE, dropout=0.5).model_kwargs() == {
        "in_channels": 3,
        "dropout": 0.5,
    }
    # A model without a dropout option trains without: the recipe's dropout goes, not refused
    for arch in ("resnet18", "dacl"):
        plain = with_arch(FAST, arch)
        assert (plain.dropout, plain.batch_norm) == (None, True)  # a ResNet has batch norm
        assert plain.model_kwargs() == {"in_channels": FAST.channels}
        with pytest.raises(FerError, match=f"'{arch}' cannot take dropout=0.3"):
            dataclasses.replace(plain, dropout=0.3)  # asked for: refused
    # ConvNet5 always has batch norm (batch_norm=True is what it is) and takes a dropout
    other = gray
    assert other.model_kwargs() == {"in_channels": 1, "dropout": FAST.dropout}
    model, _, _, _ = build_training(other, 3, 1)
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 3)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [FAST.dropout]
    resnet = dataclasses.replace(COURSE, arch="resnet9", dropout=0.1)
    assert resnet.model_kwargs() == {"in_channels": 3, "dropout": 0.1}
    with pytest.raises(FerError, match="'resnet9' cannot take batch_norm=False; a recipe can"):
        dataclasses.replace(resnet, batch_norm=False)
    with pytest.raises(FerError, match="'dacl' cannot take dropout=0.2"):
        dataclasses.replace(FAST, arch="dacl")
    narrow = dataclasses.replace(COURSE, width=16)
    assert narrow.model_kwargs() == {"in_channels": 3, "width": 16}
    assert build_training(narrow, 3, 1)[0].conv3.out_channels == 64
    with pytest.raises(FerError, match="'resnet9' cannot take width=16; a recipe can set "):
        dataclasses.replace(narrow, arch="resnet9")
    vgg = dataclasses.replace(gray, arch="smallvgg", dropout=0.4)
    assert vgg.model_kwargs() == {"in_channels": 1, "dropout": 0.4}  # its one dropout layer
    model, _, _, _ = build_training(vgg, 7, 1)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.4]
    # The head is SmallVGG's alone: set for it, refused for another, dropped by with_arch.
    flat = dataclasses.replace(vgg, head="flatten")
    assert flat.model_kwargs() == {"in_channels": 1, "dropout": 0.4, "head": "flatten"}
    assert build_training(flat, 7, 1)[0].classifier[-1].in_features == 256 * 3 * 3
    with pytest.raises(FerError, match="'si100' cannot take head='flatten'; a recipe can set"):
        dataclasses.replace(FAST, head="flatten")
    assert with_arch(flat, "si100").head is None
    with pytest.raises(FerError, match="unknown head 'sum': expected one of average, flatten"):
        build_training(dataclasses.replace(vgg, head="sum"), 7, 1)


# --- train_with_recipe: checkpoint and exact resume ------------------------------------------

# Batch 8: 3 steps per epoch on the 24 tiny images, so a wrong place in the one-cycle
# schedule after resuming changes the second and third step's learning rates.
SMALL_FAST = dataclasses.replace(FAST, epochs=2, precision="fp32", batch_size=8)


def test_train_with_recipe_writes_a_checkpoint_that_rebuilds_the_model(tiny, tmp_path):
    out = tmp_path / "fast.pth"
    model, history = train_with_recipe(SMALL_FAST, tiny, out, device="cpu", **QUIET)
    assert len(history["val_bal_acc"]) == 2 and not math.isnan(history["val_bal_acc"][-1])
    loaded, info = load_model(out)
    assert info["arch_kwargs"] == {"num_classes": 3, **SMALL_FAST.model_kwargs()}
    assert info["normalization"]["channels"] == SMALL_FAST.channels
    assert info["extra"]["recipe"]["name"] == "fast"
    assert info["extra"]["recipe"] == dataclasses.asdict(SMALL_FAST)
    assert info["epoch"] == 2 and info["class_names"] == list(COURSE_CLASSES)
    assert load_checkpoint(out)["scheduler_state"]["last_epoch"] == 2 * 3
    assert same_weights(loaded, model)
    x = next(
        iter(
            FaceLoader(tiny.dataset("validation", COURSE_CLASSES, channels=SMALL_FAST.channels), 12)
        )
    )[0]
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))


class Interrupt:
    """A log that presses Ctrl-C when a line starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, line: str) -> None:
        if line.startswith(self.prefix):
            raise KeyboardInterrupt


def test_an_interrupted_recipe_run_resumes_to_the_same_weights(tiny, tmp_path):
    straight, straight_history = train_with_recipe(
        SMALL_FAST, tiny, tmp_path / "straight.pth", device="cpu", **QUIET
    )
    out = tmp_path / "run.pth"
    with pytest.raises(KeyboardInterrupt):  # after the first step of epoch 2
        train_with_recipe(
            SMALL_FAST, tiny, out, device="cpu", progress=False, log=Interrupt("Epoch: 2/2")
        )
    assert load_checkpoint(out)["epoch"] == 1
    forgetful = tmp_path / "forgetful.pth"  # the same checkpoint without the scheduler's state
    checkpoint = load_checkpoint(out)
    assert checkpoint["scheduler_state"]["last_epoch"] == 3
    del checkpoint["scheduler_state"]
    torch.save(checkpoint, forgetful)

    # Another seed would draw other faces and batches: refused, naming it.
    with pytest.raises(CheckpointError, match=r"seed 0 -> 7"):
        train_with_recipe(SMALL_FAST, tiny, out, seed=7, device="cpu", resume=True, **QUIET)
    # The same seed: the random state of epoch 2 must come from the checkpoint (a fresh
    # seed would replay epoch 1's batch order).
    resumed, history = train_with_recipe(SMALL_FAST, tiny, out, device="cpu", resume=True, **QUIET)
    assert same_weights(resumed, straight)
    assert history["train_loss"] == straight_history["train_loss"]

    # Control: restarting the one-cycle schedule from step 0 gives other weights.
    drifted, _ = train_with_recipe(SMALL_FAST, tiny, forgetful, device="cpu", resume=True, **QUIET)
    assert not same_weights(drifted, straight)


def test_resuming_a_one_cycle_run_with_other_epochs_is_refused_in_one_line(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("FER_TINY", "1")
    common = [
        "--data",
        "synthetic",
        "--out",
        str(tmp_path / "m.pth"),
        "--batch-size",
        "8",
        "--precision",
        "fp32",
        "--device",
        "cpu",
    ]
    assert cli.main(["train", "--epochs", "1", *common]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--epochs", "2", "--resume", *common]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "epoch" in err


# --- the train command -----------------------------------------------------------------------


def test_train_help_lists_the_recipe_and_every_setting(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--recipe" in text and "fast" in text and "course" in text
    for field in dataclasses.fields(TrainRecipe):
        if field.name in ("name", "arch"):
            continue  # --recipe and --model
        option = "--" + field.name.replace("_", "-")
        assert option in text, option
        if field.type in (bool, "bool"):
            assert "--no-" + field.name.replace("_", "-") in text
    assert "--model" in text


def recipe_of(*argv: str) -> TrainRecipe:
    return cli.recipe_from_args(cli.build_parser().parse_args(["train", *argv]))


def test_options_override_the_chosen_recipe():
    assert recipe_of() == FAST
    assert recipe_of("--recipe", "course") == COURSE
    assert recipe_of("--epochs", "3", "--augment", "none", "--lr", "0.01") == dataclasses.replace(
        FAST, epochs=3, augment="none", lr=0.01
    )
    assert recipe_of("--recipe", "course", "--batch-norm", "--channels", "1") == (
        dataclasses.replace(COURSE, batch_norm=True, channels=1)
    )
    assert recipe_of("--model", "resnet9", "--precision", "bf16").arch == "resnet9"


@pytest.mark.parametrize("option", ["--epochs", "--batch-size"])
def test_zero_epochs_or_batch_size_is_a_one_line_error(capsys, option):
    assert cli.main(["train", "--data", "synthetic", option, "0"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and option in err and err.count("\n") == 1
    assert "Traceback" not in err and out == ""
