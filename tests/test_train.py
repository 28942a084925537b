"""Device choice, seeding, the training factory, fit's logs, checkpoints and exact resume."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fer_helpers import devices
from fer_helpers.checkpoints import make_meta
from fer_helpers.devices import choose_device, describe_device
from fer_helpers.errors import CheckpointError, FerError
from fer_helpers.inference import predict
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.train import HISTORY_KEYS, fit, make_training, seed_everything, validate

SIDE = 16  # small images keep the tests fast; SI100FaceNet sizes fc1 from input_size
SMALL = {"hidden": 16, "input_size": SIDE}


class ShufflingLoader:
    """A minimal data loader that reshuffles every epoch and can save its shuffling state."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.x), generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            yield self.x[batch], self.y[batch]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class ForgetfulLoader:
    """The same loader without a way to save its state."""

    def __init__(self, loader: ShufflingLoader) -> None:
        self._loader = loader

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self):
        return iter(self._loader)


def fake_images(n: int = 32, side: int = SIDE, classes: int = 3, seed: int = 0):
    """n images normalised like the course's, u8 / 127.5 - 1, and labels 0..classes-1."""
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (n, 3, side, side), generator=g)
    u8[0, 0, 0, :2] = torch.tensor([0, 255])  # make sure the range is the full [-1, 1]
    return u8.float() / 127.5 - 1, torch.randint(0, classes, (n,), generator=g)


def train_small(epochs: int, seed: int = 0, loader=None, **fit_kwargs):
    """Seed, build a small model and fit it on fake images; returns (model, history)."""
    seed_everything(seed)
    model, loss_fn, optimizer = make_training(num_classes=3, **SMALL)
    loader = loader if loader is not None else ShufflingLoader(*fake_images(), 8, seed)
    fit_kwargs.setdefault("log", lambda line: None)
    history = fit(
        model, loader, loss_fn, optimizer, epochs, device="cpu", progress=False, **fit_kwargs
    )
    return model, history


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- devices -----------------------------------------------------------------


def fake_availability(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_choose_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected) -> None:
    fake_availability(monkeypatch, cuda, mps)
    assert choose_device() == torch.device(expected)


@pytest.mark.parametrize("cuda", [True, False])
@pytest.mark.parametrize("mps", [True, False])
@pytest.mark.parametrize("prefer", ["cpu", "cuda", "mps", "CUDA:1"])
def test_a_preferred_device_is_used_or_refused(monkeypatch, cuda, mps, prefer) -> None:
    fake_availability(monkeypatch, cuda, mps)
    usable = {"cpu": True, "cuda": cuda, "mps": mps}[prefer.split(":")[0].lower()]
    if usable:
        assert choose_device(prefer) == torch.device(prefer.lower())
    else:
        with pytest.raises(FerError, match=f"device '{prefer}' is not available"):
            choose_device(prefer)


def test_unknown_device_name_is_refused() -> None:
    with pytest.raises(FerError, match="unknown device 'tpu'"):
        choose_device("tpu")


def test_describe_device_hints_at_an_unused_nvidia_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    assert describe_device("cpu") == "cpu"
    monkeypatch.setattr(devices.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert describe_device(torch.device("cpu")).startswith("cpu (an NVIDIA GPU seems present")
    assert describe_device("mps") == "mps (Apple GPU)"


# --- seeding and the factory -------------------------------------------------


def test_seed_everything_seeds_python_numpy_and_torch() -> None:
    generator = seed_everything(3)
    drawn = (random.random(), np.random.rand(), torch.rand(1).item())
    reference = (
        random.Random(3).random(),
        np.random.RandomState(3).rand(),
        torch.rand(1, generator=torch.Generator().manual_seed(3)).item(),
    )
    assert drawn == reference
    same_seed = torch.Generator().manual_seed(3)
    assert torch.equal(
        torch.randperm(10, generator=generator), torch.randperm(10, generator=same_seed)
    )


def test_one_seed_gives_identical_weights_and_another_seed_does_not() -> None:
    first, _ = train_small(epochs=2, seed=0)
    again, _ = train_small(epochs=2, seed=0)
    other, _ = train_small(epochs=2, seed=1)
    assert same_weights(first, again)
    assert not same_weights(first, other)


def test_make_training_builds_model_loss_and_optimizer() -> None:
    model, loss_fn, optimizer = make_training(num_classes=7, lr=0.01, class_weights=[1.0] * 7)
    assert model(torch.zeros(1, 3, 48, 48)).shape == (1, 7)
    assert isinstance(loss_fn, nn.CrossEntropyLoss)
    assert torch.equal(loss_fn.weight, torch.ones(7))
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert optimizer.param_groups[0]["params"] == list(model.parameters())


def test_class_weights_must_match_the_class_count() -> None:
    with pytest.raises(FerError, match="class_weights has 2 values; expected 3"):
        make_training(num_classes=3, class_weights=[1.0, 2.0])


# --- fit ----------------------------------------------------------------------


def test_fit_logs_the_course_lines() -> None:
    x, y = fake_images(n=32, side=48)
    seen_losses = []

    def recording_loss(scores, labels):
        loss = nn.functional.cross_entropy(scores, labels)
        seen_losses.append(loss.item())
        return loss

    model, _, optimizer = make_training(num_classes=3, hidden=16)
    lines = []
    loader = ShufflingLoader(x, y, 8, 0)
    fit(model, loader, recording_loss, optimizer, 2, "cpu", log_every=2, log=lines.append)

    assert lines[0] == "Training device: " + describe_device("cpu") + ", precision fp32"
    assert lines[1] == f"Batch shape: [8, 3, 48, 48], value range: ({x.min():.2f}, {x.max():.2f})"
    assert lines[1].endswith("(-1.00, 1.00)")
    batch_lines = [line for line in lines if line.startswith("Epoch: ")]
    expected = []
    for epoch in range(2):
        for k in (2, 4):  # 4 batches per epoch, a line every 2
            losses = seen_losses[epoch * 4 + k - 2 : epoch * 4 + k]
            mean = sum(losses) / 2
            expected.append(
                f"Epoch: {epoch + 1}/2, Batch: {epoch * 4 + k}, {k}/4, loss: {mean:.4f}"
            )
    assert batch_lines == expected
    summaries = [line for line in lines if line.startswith("Epoch 2/2 done: train loss")]
    assert len(summaries) == 1
    assert sum(line.startswith("Batch shape") for line in lines) == 1  # the first batch only


def test_history_has_one_value_per_epoch_and_matches_a_direct_evaluation() -> None:
    val_x, val_y = fake_images(n=20, seed=5)
    val_loader = ShufflingLoader(val_x, val_y, 8, 0)
    model, history = train_small(epochs=2, val_loader=val_loader)
    assert list(history) == list(HISTORY_KEYS)
    assert all(len(values) == 2 for values in history.values())

    model.eval()
    with torch.inference_mode():
        scores = model(val_x)
    loss = nn.functional.cross_entropy(scores, val_y).item()
    accuracy = (scores.argmax(dim=1) == val_y).float().mean().item()
    assert history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
    assert history["val_acc"][-1] == pytest.approx(accuracy)
    scores = validate(model, val_loader, nn.CrossEntropyLoss(), "cpu")
    assert (scores["loss"], scores["accuracy"]) == pytest.approx((loss, accuracy), rel=1e-5)


def test_the_training_loss_and_accuracy_fit_reports_are_those_of_every_image() -> None:
    # With a learning rate of 0 the weights stay put, so the epoch's mean loss and accuracy
    # must be those of the whole data under those weights: batches of 8, 8, 8 and 7 images
    # weigh by their size, not one per batch.
    x, y = fake_images(n=31)
    seed_everything(0)
    model, loss_fn, _ = make_training(num_classes=3, **SMALL)
    with torch.no_grad():
        scores = model(x)
    loss = nn.functional.cross_entropy(scores, y, reduction="sum").item() / 31
    accuracy = (scores.argmax(dim=1) == y).sum().item() / 31
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    loader = ShufflingLoader(x, y, 8, 0)
    history = fit(model, loader, loss_fn, frozen, 2, "cpu", progress=False, log=lambda _: None)
    assert history["train_loss"] == pytest.approx([loss, loss], rel=1e-5)
    assert history["train_acc"] == pytest.approx([accuracy, accuracy])
    assert all(s > 0 for s in history["train_seconds"] + history["cpu_seconds"])


def test_an_objective_with_parts_gets_every_output_and_its_parts_are_recorded() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIDE * SIDE, 3))

        def forward(self, x):
            scores = self.net(x)
            return scores, scores.square().mean(dim=1)

    class Objective:
        part_names = ("ce", "penalty")

        def __call__(self, scores, extra, labels):
            ce = nn.functional.cross_entropy(scores, labels)
            penalty = extra.mean()
            return ce + 0.5 * penalty, ce, penalty

    x, y = fake_images(n=16)
    torch.manual_seed(0)
    model = TwoHeads()
    with torch.no_grad():
        scores, extra = model(x)
    ce = nn.functional.cross_entropy(scores, y).item()
    penalty = extra.mean().item()
    frozen = [torch.optim.SGD(model.parameters(), lr=0.0), torch.optim.SGD(model.parameters())]
    history = fit(model, [(x, y)], Objective(), frozen[:1], 1, "cpu", progress=False)
    assert history["train_ce"] == pytest.approx([ce], rel=1e-5)
    assert history["train_penalty"] == pytest.approx([penalty], rel=1e-5)
    assert history["train_loss"] == pytest.approx([ce + 0.5 * penalty], rel=1e-5)
    assert list(history) == [*HISTORY_KEYS, "train_ce", "train_penalty"]


def test_without_validation_data_the_val_history_is_nan() -> None:
    _, history = train_small(epochs=1)
    assert math.isnan(history["val_loss"][0]) and math.isnan(history["val_acc"][0])
    assert 0.0 <= history["train_acc"][0] <= 1.0


def test_validate_every_skips_epochs_but_not_the_last_and_trains_the_same_weights() -> None:
    val_loader = ShufflingLoader(*fake_images(n=20, seed=5), 8, 0)
    every, history = train_small(epochs=3, val_loader=val_loader)
    sparse, sparse_history = train_small(epochs=3, val_loader=val_loader, validate_every=2)
    assert same_weights(every, sparse)  # validation does not touch training
    assert not any(math.isnan(v) for v in history["val_acc"] + history["val_loss"])
    assert math.isnan(sparse_history["val_acc"][0]) and math.isnan(sparse_history["val_loss"][0])
    assert sparse_history["val_acc"][1:] == history["val_acc"][1:]  # epoch 2, and the last
    _, third = train_small(epochs=4, val_loader=val_loader, validate_every=3)
    assert [math.isnan(v) for v in third["val_acc"]] == [True, True, False, False]
    with pytest.raises(FerError, match="validate_every must be at least 1"):
        train_small(epochs=1, validate_every=0)


def test_fit_learns_an_easy_task() -> None:
    # Class = which third of the image is bright: a CNN must get this right quickly.
    x = -torch.ones(48, 3, SIDE, SIDE)
    y = torch.arange(48) % 3
    for i, label in enumerate(y):
        x[i, :, :, label * 5 : label * 5 + 5] = 1.0
    loader = ShufflingLoader(x, y, 8, 0)
    _, history = train_small(epochs=3, loader=loader)
    assert history["train_loss"][-1] < history["train_loss"][0] / 2
    assert history["train_acc"][-1] == 1.0


def test_checkpoint_path_needs_the_metadata(tmp_path: Path) -> None:
    with pytest.raises(FerError, match=r"^fit\(checkpoint_path=\.\.\.\) needs checkpoint_meta="):
        train_small(epochs=1, checkpoint_path=tmp_path / "m.pth")


def test_fit_saves_a_checkpoint_that_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    model, history = train_small(epochs=2, checkpoint_path=path, checkpoint_meta=meta)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["epoch"] == 2
    np.testing.assert_equal(checkpoint["history"], history)  # NaN counts as equal to NaN
    assert checkpoint["class_names"] == list(COURSE_CLASSES)
    assert {"optimizer_state", "rng"} <= checkpoint.keys()
    assert checkpoint["optimizer_state"].keys() == {"state", "param_groups"}  # one, not a list
    assert all(torch.equal(checkpoint["model_state"][k], v) for k, v in model.state_dict().items())


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    straight, straight_history = train_small(epochs=2, seed=0)

    train_small(epochs=1, seed=0, checkpoint_path=path, checkpoint_meta=meta)  # "interrupted"
    # A new session: other seed, other shuffling; resume must restore all of it.
    resumed, history = train_small(
        epochs=2, seed=7, checkpoint_path=path, checkpoint_meta=meta, resume=True
    )
    assert same_weights(resumed, straight)
    for key in ("train_loss", "train_acc"):
        assert history[key] == straight_history[key]

    # Control: when the loader's shuffling state is not restored, the result differs.
    train_small(epochs=1, seed=0, checkpoint_path=path, checkpoint_meta=meta)
    forgetful = ForgetfulLoader(ShufflingLoader(*fake_images(), 8, 0))
    drifted, _ = train_small(
        epochs=2, seed=0, loader=forgetful, checkpoint_path=path, checkpoint_meta=meta, resume=True
    )
    assert not same_weights(drifted, straight)


def test_resume_of_a_finished_run_says_so_and_trains_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    done, done_history = train_small(epochs=2, checkpoint_path=path, checkpoint_meta=meta)
    lines = []
    again, history = train_small(
        epochs=2, seed=3, checkpoint_path=path, checkpoint_meta=meta, resume=True, log=lines.append
    )
    assert same_weights(again, done)
    np.testing.assert_equal(history, done_history)  # NaN counts as equal to NaN
    assert lines[-1] == f"{path} already has 2 epochs (2 asked for): nothing to do"


def test_resume_refuses_a_checkpoint_for_other_classes(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    three = make_meta("si100", COURSE_CLASSES, **SMALL)
    train_small(epochs=1, checkpoint_path=path, checkpoint_meta=three)
    seven = make_meta("si100", EMOTIONS, **SMALL)
    with pytest.raises(CheckpointError, match="trained for 3 classes .* but 7 were asked for"):
        train_small(epochs=2, checkpoint_path=path, checkpoint_meta=seven, resume=True)


# --- predict -------------------------------------------------------------------


def test_predict_returns_labels_predictions_and_probabilities() -> None:
    x, y = fake_images(n=20)
    model, _, _ = make_training(num_classes=3, **SMALL)
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 20, 8)]  # fixed order
    y_true, y_pred, probs = predict(model, batches)

    with torch.no_grad():
        scores = model.eval()(x)
    assert not model.training
    assert np.array_equal(y_true, y.numpy())
    assert np.array_equal(y_pred, scores.argmax(dim=1).numpy())
    assert probs.shape == (20, 3)
    np.testing.assert_allclose(probs, torch.softmax(scores, dim=1).numpy(), rtol=1e-5)


def test_channels_last_changes_the_memory_layout_not_the_result() -> None:
    plain, plain_history = train_small(epochs=1)
    fast, fast_history = train_small(epochs=1, channels_last=True)
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast_history["train_loss"] == pytest.approx(plain_history["train_loss"], rel=1e-4)


def test_weights_path_tags_quick_runs(tmp_path, monkeypatch):
    import fer_helpers.paths as paths

    monkeypatch.setattr(paths, "WEIGHTS_DIR", tmp_path)
    assert paths.weights_path("face_expression.pth") == tmp_path / "face_expression.pth"
    tagged = paths.weights_path("face_expression.pth", "synthetic-tiny")
    assert tagged == tmp_path / "face_expression.synthetic-tiny.pth"


def test_figure_path_tags_quick_runs_so_they_keep_the_full_runs_plots(tmp_path, monkeypatch):
    import fer_helpers.paths as paths

    monkeypatch.setattr(paths, "FIGURES_DIR", tmp_path / "figures")
    full = paths.figure_path("06_training_curves.png")
    assert full == tmp_path / "figures" / "06_training_curves.png" and full.parent.is_dir()
    assert paths.figure_path("06_training_curves.png", "tiny").name == "06_training_curves.tiny.png"
    assert paths.tagged("notes", "synthetic") == "notes.synthetic"


class InterruptedLoader(ShufflingLoader):
    """Raises KeyboardInterrupt (Ctrl-C) in the middle of a given epoch."""

    def __init__(self, *args, stop_epoch: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stop_epoch, self.epoch = stop_epoch, 0

    def __iter__(self):
        self.epoch += 1
        for k, batch in enumerate(super().__iter__()):
            if self.epoch == self.stop_epoch and k == 2:
                raise KeyboardInterrupt
            yield batch


def test_ctrl_c_mid_epoch_loses_nothing_and_resume_matches_the_uninterrupted_run(tmp_path):
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    straight, _ = train_small(epochs=3, seed=0)
    x, y = fake_images()
    with pytest.raises(KeyboardInterrupt):
        train_small(
            epochs=3,
            seed=0,
            loader=InterruptedLoader(x, y, 8, 0, stop_epoch=2),
            checkpoint_path=path,
            checkpoint_meta=meta,
        )
    assert torch.load(path, weights_only=True)["epoch"] == 1  # the finished epoch is safe
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no half-written file
    resumed, _ = train_small(
        epochs=3, seed=5, checkpoint_path=path, checkpoint_meta=meta, resume=True
    )
    assert same_weights(resumed, straight)


def test_predict_reads_the_scores_of_a_model_that_returns_more():
    from fer_helpers.inference import scores_of

    class ScoresAndFeatures(nn.Module):  # as DACLNet: (scores, features, attention)
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x), x, torch.sigmoid(x)

    model = ScoresAndFeatures()
    x = torch.randn(5, 4)
    loader = [(x, torch.tensor([0, 1, 2, 0, 1]))]
    y_true, y_pred, probs = predict(model, loader)
    expected = torch.softmax(model.fc(x), dim=1).detach().numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    assert y_pred.tolist() == expected.argmax(axis=1).tolist()
    assert y_true.tolist() == [0, 1, 2, 0, 1]
    torch.testing.assert_close(scores_of(model, x), model.fc(x))


# --- what fit says, and what resume refuses ---------------------------------------


def test_the_epoch_summary_line_reads_the_epochs_history() -> None:
    from fer_helpers.train import _summary

    history = {key: [math.nan, math.nan] for key in HISTORY_KEYS}
    history |= {"train_loss": [9.0, 0.51234], "train_acc": [0.0, 0.875], "epoch_seconds": [1, 2.34]}
    assert _summary(1, 3, history) == (
        "Epoch 2/3 done: train loss 0.5123, train acc 87.50% (2.3 s)"
    )
    history |= {"val_loss": [9.0, 1.25], "val_acc": [0.0, 0.5], "val_bal_acc": [0.0, 0.4]}
    history |= {"train_ce": [9.0, 0.25], "train_sc": [9.0, 0.125]}
    assert _summary(0, 1, history) == (
        "Epoch 1/1 done: train loss 0.5123, train acc 87.50% (ce 0.2500, sc 0.1250), "
        "val loss 1.2500, val acc 50.00% (balanced 40.00%) (2.3 s)"
    )


def test_fit_says_how_it_trains_and_where_it_resumes(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    lines = []
    train_small(epochs=1, log=lines.append, channels_last=True)
    assert (
        lines[0] == "Training device: " + describe_device("cpu") + ", precision fp32, channels_last"
    )
    lines.clear()
    train_small(epochs=1, checkpoint_path=path, checkpoint_meta=meta, resume=True, log=lines.append)
    assert lines[0] == f"No checkpoint at {path} yet: training from the first epoch"
    lines.clear()
    train_small(epochs=2, checkpoint_path=path, checkpoint_meta=meta, resume=True, log=lines.append)
    assert lines[0] == f"Resuming from {path} after epoch 1"
    assert sum(line.startswith("Epoch 2/2 done") for line in lines) == 1
    assert not any(line.startswith("Epoch 1/2 done") for line in lines)


def test_resume_refuses_weights_only_another_model_and_another_optimizer_count(tmp_path) -> None:
    from fer_helpers.checkpoints import save_checkpoint

    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    model, _, _ = make_training(num_classes=3, **SMALL)
    weights = tmp_path / "weights.pth"
    save_checkpoint(weights, **meta, model_state=model.state_dict())  # no epoch: not a run
    with pytest.raises(CheckpointError, match=r"weights\.pth holds weights only, not a training"):
        train_small(epochs=2, checkpoint_path=weights, checkpoint_meta=meta, resume=True)

    path = tmp_path / "m.pth"
    train_small(epochs=1, checkpoint_path=path, checkpoint_meta=meta)
    other = make_meta("convnet5", COURSE_CLASSES)
    with pytest.raises(CheckpointError, match=r"m\.pth holds a 'si100' model, not 'convnet5'"):
        train_small(epochs=2, checkpoint_path=path, checkpoint_meta=other, resume=True)

    seed_everything(0)
    model, loss_fn, optimizer = make_training(num_classes=3, **SMALL)
    centres = torch.optim.SGD([nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(
        CheckpointError, match=r"m\.pth holds 1 optimizer states; this training has 2"
    ):
        fit(
            model,
            ShufflingLoader(*fake_images(), 8, 0),
            loss_fn,
            [optimizer, centres],
            2,
            "cpu",
            checkpoint_path=path,
            checkpoint_meta=meta,
            resume=True,
            progress=False,
            log=lambda _: None,
        )


def test_resume_refuses_another_one_cycle_plan_and_restores_the_same_one(tmp_path) -> None:
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)

    def run(epochs: int, planned: int, resume: bool):
        seed_everything(0)
        model, loss_fn, optimizer = make_training(num_classes=3, **SMALL)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.01, total_steps=planned)
        fit(
            model,
            ShufflingLoader(*fake_images(), 8, 0),
            loss_fn,
            optimizer,
            epochs,
            "cpu",
            scheduler=schedule,
            checkpoint_path=path,
            checkpoint_meta=meta,
            resume=resume,
            progress=False,
            log=lambda _: None,
        )
        return model, schedule

    straight, schedule = run(2, 8, resume=False)  # 4 batches an epoch, 8 steps planned
    assert schedule.last_epoch == 8
    run(1, 8, resume=False)
    resumed, schedule = run(2, 8, resume=True)
    assert schedule.last_epoch == 8  # the restored schedule carried on from step 4
    assert same_weights(resumed, straight)
    run(1, 8, resume=False)
    with pytest.raises(
        CheckpointError,
        match=r"^\S+m\.pth was trained on a one-cycle schedule of 8 steps, not 12: resume with the",
    ):
        run(3, 12, resume=True)


def test_an_objective_that_learns_is_saved_and_restored(tmp_path) -> None:
    from fer_helpers.train import _objective_state

    class Centred(nn.Module):  # as DACL's loss: it learns class centres of its own
        part_names = ("ce",)

        def __init__(self) -> None:
            super().__init__()
            self.centres = nn.Parameter(torch.zeros(3))

        def forward(self, scores, labels):
            ce = nn.functional.cross_entropy(scores + self.centres, labels)
            return ce, ce

    assert _objective_state(nn.CrossEntropyLoss()) is None
    assert _objective_state(nn.CrossEntropyLoss(weight=torch.ones(3))) is None  # a buffer
    objective = Centred()
    assert list(_objective_state(objective)) == ["centres"]

    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    seed_everything(0)
    model, _, optimizer = make_training(num_classes=3, **SMALL)
    centres = torch.optim.SGD(objective.parameters(), lr=0.5)
    loader = ShufflingLoader(*fake_images(), 8, 0)
    quiet = {"progress": False, "log": lambda _: None, "checkpoint_path": path}
    fit(model, loader, objective, [optimizer, centres], 1, "cpu", checkpoint_meta=meta, **quiet)
    learned = objective.centres.detach().clone()
    assert learned.abs().sum() > 0
    saved = torch.load(path, weights_only=True)
    assert [len(state["param_groups"]) for state in saved["optimizer_state"]] == [1, 1]
    assert torch.equal(saved["objective_state"]["centres"], learned)

    class Restored(Centred):  # remembers the centres it had when training resumed
        def forward(self, scores, labels):
            self.__dict__.setdefault("first", self.centres.detach().clone())
            return super().forward(scores, labels)

    fresh = Restored()
    model, _, optimizer = make_training(num_classes=3, **SMALL)
    val_x, val_y = fake_images(n=8, seed=3)
    history = fit(
        model,
        loader,
        fresh,
        [optimizer, torch.optim.SGD(fresh.parameters(), lr=0.5)],
        2,
        "cpu",
        checkpoint_meta=meta,
        resume=True,
        val_loader=[(val_x, val_y)],
        **quiet,
    )
    assert torch.equal(fresh.first, learned)
    assert len(history["train_ce"]) == 2
    # An objective with parts is not a loss of scores: validation scores plain cross-entropy.
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model.eval()(val_x), val_y).item()
    assert history["val_loss"][-1] == pytest.approx(expected, rel=1e-5)


def test_empty_loaders_are_refused_in_words() -> None:
    model, loss_fn, optimizer = make_training(num_classes=3, **SMALL)
    with pytest.raises(FerError, match="^the training loader gave no batches$"):
        fit(model, [], loss_fn, optimizer, 1, "cpu", progress=False, log=lambda _: None)
    with pytest.raises(FerError, match="^the loader gave no images to evaluate$"):
        validate(model, [], loss_fn, "cpu")


def test_validation_loss_stays_finite_when_a_probability_is_zero() -> None:
    class Certain(nn.Module):  # all the probability on class 0, exactly 0 on the others
        def forward(self, x):
            scores = torch.full((len(x), 3), -1e4)
            scores[:, 0] = 1e4
            return scores

    x, _ = fake_images(n=4)
    scores = validate(Certain(), [(x, torch.tensor([0, 1, 0, 2]))], nn.NLLLoss(), "cpu")
    # log(1) = 0 for the right two; log of the clamped 1e-12 for the wrong two
    assert scores["loss"] == pytest.approx(-math.log(1e-12) / 2, rel=1e-5)
    assert scores["accuracy"] == 0.5
    assert scores["balanced_accuracy"] == pytest.approx((1 + 0 + 0) / 3)


def test_make_training_weighs_the_loss_and_sets_the_learning_rate() -> None:
    weights = np.array([1.0, 2.0, 0.5])  # float64, as NumPy gives them
    model, loss_fn, optimizer = make_training(num_classes=3, lr=0.02, class_weights=weights)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 0.02
    assert loss_fn.weight.dtype == torch.float32
    scores, labels = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]]), torch.tensor([1, 2])
    losses = -torch.log_softmax(scores, dim=1)[[0, 1], labels]
    expected = (2 * losses[0] + 0.5 * losses[1]) / 2.5  # the weighted mean, by hand
    assert loss_fn(scores, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert sum(p.numel() for p in optimizer.param_groups[0]["params"]) == sum(
        p.numel() for p in model.parameters()
    )


def test_make_training_builds_the_courses_three_class_model_by_default() -> None:
    model, loss_fn, _ = make_training(**SMALL)
    assert model(torch.zeros(2, 3, SIDE, SIDE)).shape == (2, 3)
    assert loss_fn.weight is None


def test_a_weighted_loss_validates_with_its_weights() -> None:
    x, y = fake_images(n=16)
    seed_everything(0)
    model, loss_fn, _ = make_training(num_classes=3, class_weights=[1.0, 4.0, 0.25], **SMALL)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    history = fit(
        model,
        [(x, y)],
        loss_fn,
        frozen,
        1,
        "cpu",
        val_loader=[(x, y)],
        progress=False,
        log=lambda _: None,
    )
    with torch.no_grad():
        scores = model.eval()(x)
    weighted = nn.functional.cross_entropy(scores, y, weight=torch.tensor([1.0, 4.0, 0.25]))
    assert history["val_loss"][0] == pytest.approx(weighted.item(), rel=1e-5)
    assert weighted.item() != pytest.approx(nn.functional.cross_entropy(scores, y).item())


def test_objective_parts_are_means_over_every_image_of_the_epoch() -> None:
    class Parts:
        part_names = ("first", "double")

        def __call__(self, scores, labels):
            per_image = labels.float()
            return scores.sum() * 0 + per_image.mean(), per_image.mean(), 2 * per_image.mean()

    model, _, _ = make_training(num_classes=3, **SMALL)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    x = torch.zeros(5, 3, SIDE, SIDE)
    batches = [(x[:3], torch.tensor([1, 1, 1])), (x[3:], torch.tensor([2, 2]))]
    history = fit(model, batches, Parts(), frozen, 1, "cpu", progress=False, log=lambda _: None)
    assert history["train_first"] == pytest.approx([7 / 5])  # (1 + 1 + 1 + 2 + 2) / 5
    assert history["train_double"] == pytest.approx([14 / 5])


def test_bfloat16_autocast_trains_and_validates_in_bfloat16() -> None:
    x, y = fake_images(n=8)
    seed_everything(0)
    model, loss_fn, _ = make_training(num_classes=3, **SMALL)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model.eval()(x)
    expected = nn.functional.cross_entropy(scores.float(), y).item()
    with torch.no_grad():
        exact = nn.functional.cross_entropy(model(x), y).item()
    assert expected != exact  # bfloat16 keeps 8 bits of mantissa: the losses differ
    model.train()
    history = fit(
        model,
        [(x, y)],
        loss_fn,
        frozen,
        1,
        "cpu",
        val_loader=[(x, y)],
        precision="bf16",
        progress=False,
        log=lambda _: None,
    )
    assert history["val_loss"][0] == pytest.approx(expected, rel=1e-6)
    assert history["val_loss"][0] != pytest.approx(exact, rel=1e-6)
    trained = history["train_loss"][0]  # dropout-free SI100FaceNet: train mode scores the same
    assert trained == pytest.approx(expected, rel=1e-6)
    assert validate(model, [(x, y)], loss_fn, "cpu", precision="bf16")["loss"] == pytest.approx(
        expected, rel=1e-6
    )


def test_mirror_tta_averages_each_face_and_its_mirror_image() -> None:
    x, y = fake_images(n=12)
    seed_everything(0)
    model, loss_fn, _ = make_training(num_classes=3, **SMALL)
    model.eval()
    with torch.no_grad():
        p = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
    expected = nn.functional.nll_loss(p.log(), y).item()
    scores = validate(model, [(x, y)], loss_fn, "cpu", tta=True)
    assert scores["loss"] == pytest.approx(expected, rel=1e-5)
    assert scores["accuracy"] == pytest.approx((p.argmax(1) == y).float().mean().item())
    plain = validate(model, [(x, y)], loss_fn, "cpu")["loss"]
    assert plain != pytest.approx(expected, rel=1e-5)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    history = fit(
        model,
        [(x, y)],
        loss_fn,
        frozen,
        1,
        "cpu",
        val_loader=[(x, y)],
        tta=True,
        progress=False,
        log=lambda _: None,
    )
    assert history["val_loss"][0] == pytest.approx(expected, rel=1e-5)


def test_a_channels_last_model_is_recognised_and_validates_the_same() -> None:
    from fer_helpers.train import _is_channels_last

    x, y = fake_images(n=8)
    model, loss_fn, _ = make_training(num_classes=3, **SMALL)
    assert not _is_channels_last(model)
    assert not _is_channels_last(nn.Linear(3, 2))  # no 4-d weight at all
    plain = validate(model, [(x, y)], loss_fn, "cpu")
    model.to(memory_format=torch.channels_last)
    assert _is_channels_last(model)
    assert validate(model, [(x, y)], loss_fn, "cpu") == pytest.approx(plain, rel=1e-5)
    one_by_one = nn.Conv2d(4, 4, 1).to(memory_format=torch.channels_last)
    assert not _is_channels_last(one_by_one)  # a 1x1 kernel is both layouts at once


class SlowLoader:
    """Batches that take `pause` seconds each to arrive, as from a slow disk: wall time
    passes while the processor waits."""

    def __init__(self, batches: list, pause: float) -> None:
        self.batches, self.pause = batches, pause

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        import time

        for batch in self.batches:
            time.sleep(self.pause)
            yield batch


def test_the_seconds_fit_records_are_wall_time_and_processor_time() -> None:
    x, y = fake_images(n=8)
    model, loss_fn, optimizer = make_training(num_classes=3, **SMALL)
    history = fit(
        model,
        SlowLoader([(x, y)] * 2, 0.3),
        loss_fn,
        optimizer,
        1,
        "cpu",
        val_loader=SlowLoader([(x, y)], 0.3),
        progress=False,
        log=lambda _: None,
    )
    train, total, cpu = (history[k][0] for k in ("train_seconds", "epoch_seconds", "cpu_seconds"))
    assert 0.6 <= train < 30  # two pauses of 0.3 s, and not a clock reading
    assert train + 0.3 <= total < 30  # the epoch adds the validation's pause
    assert 0 < cpu < train - 0.4  # sleeping costs no processor time


def test_the_progress_bar_shows_the_epoch_and_its_batches(capsys) -> None:
    x, y = fake_images(n=8)
    model, loss_fn, optimizer = make_training(num_classes=3, **SMALL)
    fit(model, [(x, y)] * 4, loss_fn, optimizer, 2, "cpu", log_every=2, log=lambda _: None)
    bars = capsys.readouterr().err
    assert "Epoch 1/2" in bars and "Epoch 2/2" in bars and "4/4" in bars and "loss=" in bars
    fit(model, [(x, y)] * 4, loss_fn, optimizer, 1, "cpu", progress=False, log=lambda _: None)
    assert capsys.readouterr().err == ""


def test_resume_refuses_other_class_names_and_another_network_size(tmp_path) -> None:
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    train_small(epochs=1, checkpoint_path=path, checkpoint_meta=meta)
    others = make_meta("si100", ["angry", "fear", "surprise"], **SMALL)
    with pytest.raises(CheckpointError, match=r"m\.pth was trained for the classes .*happy"):
        train_small(epochs=2, checkpoint_path=path, checkpoint_meta=others, resume=True)
    wider = make_meta("si100", COURSE_CLASSES, hidden=32, input_size=SIDE)
    seed_everything(0)
    model, loss_fn, optimizer = make_training(num_classes=3, hidden=32, input_size=SIDE)
    with pytest.raises(CheckpointError, match=r"m\.pth"):
        fit(
            model,
            ShufflingLoader(*fake_images(), 8, 0),
            loss_fn,
            optimizer,
            2,
            "cpu",
            checkpoint_path=path,
            checkpoint_meta=wider,
            resume=True,
            progress=False,
            log=lambda _: None,
        )


def test_resume_without_the_schedule_and_with_history_keys_added_since(tmp_path) -> None:
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    seed_everything(0)
    model, loss_fn, optimizer = make_training(num_classes=3, **SMALL)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.01, total_steps=8)
    quiet = {"progress": False, "log": lambda _: None, "checkpoint_path": path}
    loader = ShufflingLoader(*fake_images(), 8, 0)
    fit(
        model,
        loader,
        loss_fn,
        optimizer,
        1,
        "cpu",
        scheduler=schedule,
        checkpoint_meta=meta,
        **quiet,
    )
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["history"]["cpu_seconds"]  # as a run saved before the key existed
    torch.save(checkpoint, path)
    # resumed by code without a scheduler: the saved schedule is not forced on it
    history = fit(
        model, loader, loss_fn, optimizer, 2, "cpu", checkpoint_meta=meta, resume=True, **quiet
    )
    assert math.isnan(history["cpu_seconds"][0]) and history["cpu_seconds"][1] > 0
    assert len(history["train_loss"]) == 2


def test_resume_restores_a_torch_dataloaders_shuffling_generator(tmp_path) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    data = TensorDataset(*fake_images())

    def loader(seed: int) -> DataLoader:  # no state_dict(): only its generator can be saved
        return DataLoader(data, 8, shuffle=True, generator=torch.Generator().manual_seed(seed))

    straight, _ = train_small(epochs=2, loader=loader(0))
    train_small(epochs=1, loader=loader(0), checkpoint_path=path, checkpoint_meta=meta)
    assert set(torch.load(path, weights_only=True)["rng"]["loader"]) == {"generator"}
    resumed, _ = train_small(
        epochs=2,
        seed=4,
        loader=loader(9),
        checkpoint_path=path,
        checkpoint_meta=meta,
        resume=True,
    )
    assert same_weights(resumed, straight)


def test_the_random_states_of_every_device_are_saved_and_restored(monkeypatch) -> None:
    from fer_helpers.train import _restore_rng, _rng_state

    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["cuda state"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: restored.update(cuda=s))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda: "mps state")
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda s: restored.update(mps=s))
    state = _rng_state([])
    assert state["cuda"] == ["cuda state"] and state["mps"] == "mps state"
    assert "loader" not in state  # a plain list has no shuffling state
    _restore_rng(state, [])
    assert restored == {"cuda": ["cuda state"], "mps": "mps state"}

    restored.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    _restore_rng(state, [])  # saved on a GPU, resumed on a CPU: the CPU's state alone
    assert restored == {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    _restore_rng({"torch": torch.get_rng_state()}, [])  # saved on a CPU, resumed on a GPU
    assert restored == {}


def test_data_parallel_wraps_the_model_only_in_a_process_group(monkeypatch) -> None:
    import torch.nn.parallel

    import fer_helpers.train as train

    made = []

    def fake_ddp(module, device_ids=None):
        made.append((module, device_ids))
        return "wrapped"

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", fake_ddp)
    model = nn.Linear(2, 2)
    assert train._data_parallel(model, torch.device("cpu")) is model
    monkeypatch.setattr(train, "world", lambda: (0, 2))
    assert train._data_parallel(model, torch.device("cpu")) == "wrapped"
    train._data_parallel(model, torch.device("cuda", 1))
    train._data_parallel(model, torch.device("cuda"))
    assert made == [(model, None), (model, [1]), (model, [0])]


class EpochCountingLoader:
    """A loader whose state is not a generator: it counts the epochs it has served."""

    def __init__(self, batches: list) -> None:
        self.batches, self.epochs = batches, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        self.epochs += 1
        return iter(self.batches)

    def state_dict(self) -> dict:
        return {"epochs": self.epochs}

    def load_state_dict(self, state: dict) -> None:
        self.epochs = state["epochs"]


def test_a_loaders_own_state_is_saved_and_restored_whatever_it_holds(tmp_path) -> None:
    path = tmp_path / "m.pth"
    meta = make_meta("si100", COURSE_CLASSES, **SMALL)
    batches = [fake_images(n=8)]
    train_small(
        epochs=2, loader=EpochCountingLoader(batches), checkpoint_path=path, checkpoint_meta=meta
    )
    assert torch.load(path, weights_only=True)["rng"]["loader"] == {"epochs": 2}
    resumed = EpochCountingLoader(batches)
    train_small(epochs=3, loader=resumed, checkpoint_path=path, checkpoint_meta=meta, resume=True)
    assert resumed.epochs == 3  # restored to 2, then one more epoch


def test_fit_opens_one_iterator_of_the_loader_per_epoch() -> None:
    # A DataLoader with worker processes starts them for every iterator it hands out.
    loader = EpochCountingLoader([fake_images(n=8)])
    for progress in (True, False):
        loader.epochs = 0
        model, loss_fn, optimizer = make_training(num_classes=3, **SMALL)
        fit(model, loader, loss_fn, optimizer, 3, "cpu", progress=progress, log=lambda _: None)
        assert loader.epochs == 3
