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
    assert math.isnan(sparse_history["val_acc"][0]) and math.isnan(sparse_history["val_loss"][0])
    assert sparse_history["val_acc"][1:] == history["val_acc"][1:]  # epoch 2, and the last
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
    with pytest.raises(FerError, match="needs checkpoint_meta"):
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
    full = paths.figure_path("04_training_curves.png")
    assert full == tmp_path / "figures" / "04_training_curves.png" and full.parent.is_dir()
    assert paths.figure_path("04_training_curves.png", "tiny").name == "04_training_curves.tiny.png"
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
