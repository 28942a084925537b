"""The weight average (fer_helpers.averaging.WeightAverage) against its closed form."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from fer_helpers.averaging import WeightAverage
from fer_helpers.checkpoints import drop_resume_state, load_checkpoint, load_model, make_meta
from fer_helpers.data import load_synthetic
from fer_helpers.errors import CheckpointError, FerError
from fer_helpers.labels import COURSE_CLASSES
from fer_helpers.models import build_model
from fer_helpers.recipes import FAST, settings_changed, train_with_recipe
from fer_helpers.train import fit, seed_everything, validate


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def closed_form(start: dict, seen: list[dict], decay: float) -> dict:
    """sum_i c_i w_i in float64: the start weighs prod_t d_t, the i-th weights seen weigh
    (1 - d_i) prod_{t>i} d_t, with d_t = min(decay, (1+t)/(10+t))."""
    d = np.array([min(decay, (1 + t) / (10 + t)) for t in range(len(seen))])
    after = np.append(np.cumprod(d[::-1])[::-1][1:], 1.0)  # prod over t > i
    coefficients = [np.prod(d), *((1 - d) * after)]
    assert sum(coefficients) == pytest.approx(1.0)  # a weighted mean of the weights
    states = [start, *seen]
    return {
        name: sum(c * s[name].double() for c, s in zip(coefficients, states, strict=True))
        for name, value in start.items()
        if value.is_floating_point()
    }


@pytest.mark.parametrize("decay", [0.5, 0.9])
def test_the_average_is_the_closed_form_over_every_state_it_saw(decay):
    net = small_net()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    average = WeightAverage(net, decay)
    seen = []
    generator = torch.Generator().manual_seed(1)
    for _ in range(14):  # the ramp (1+t)/(10+t) passes 0.5 at t = 8: both regimes
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=generator))
            net.train()(torch.randn(5, 3, generator=generator))  # moves the batch-norm stats
        seen.append({k: v.clone() for k, v in net.state_dict().items()})
        average.update(net)
    expected = closed_form(start, seen, decay)
    got = average.model.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(got[name].double(), value, rtol=1e-5, atol=1e-6)
    # a counter is copied, not averaged
    assert got["1.num_batches_tracked"].item() == 14 == average.updates
    assert not any(p.requires_grad for p in average.model.parameters())
    assert not average.model.training


def test_the_first_update_weighs_the_new_weights_nine_tenths():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(10.0)
    average = WeightAverage(net, 0.999)
    assert average.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    with torch.no_grad():
        net.weight.fill_(20.0)
    average.update(net)
    assert average.model.weight.item() == pytest.approx(0.1 * 10 + 0.9 * 20)  # 19
    assert average.current_decay() == pytest.approx(2 / 11)
    average.updates = 10_000
    assert average.current_decay() == 0.999  # the ramp has passed the decay
    assert net.weight.item() == 20.0  # the trained model is left alone


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1, 1.5])
def test_a_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(FerError, match=f"between 0 and 1, not {decay}"):
        WeightAverage(nn.Linear(1, 1), decay)


# --- in the training loop (train.fit(ema=...)) ----------------------------------------------


def clone(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


def faces(n: int = 24, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed batches of 8 random 16x16 gray 'faces' and labels 0..2."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 16, 16, generator=g), torch.randint(0, 3, (n,), generator=g)
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, n, 8)]


def train_averaged(epochs: int, path, ema: float = 0.9, resume: bool = False, seen=None):
    """A tiny SmallVGG (batch norm, dropout) trained with fit; returns (model, history)."""

    seed_everything(0)
    kwargs = {"in_channels": 1, "width": 4}
    model = build_model("smallvgg", num_classes=3, **kwargs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    if seen is not None:  # every trained state, right after each step
        seen.append(clone(model.state_dict()))
        optimizer.register_step_post_hook(lambda *_: seen.append(clone(model.state_dict())))
    history = fit(
        model,
        faces(),
        nn.CrossEntropyLoss(),
        optimizer,
        epochs,
        device="cpu",
        val_loader=faces(16, seed=1),
        checkpoint_path=path,
        checkpoint_meta=make_meta("smallvgg", COURSE_CLASSES, **kwargs),
        resume=resume,
        progress=False,
        log=lambda _: None,
        ema=ema,
    )
    return model, history


def test_fit_keeps_validates_and_saves_the_closed_form_average(tmp_path):

    seen = []
    model, history = train_averaged(2, tmp_path / "run.pth", seen=seen)
    start, steps = seen[0], seen[1:]
    assert len(steps) == 6  # 3 batches x 2 epochs
    expected = closed_form(start, steps, 0.9)
    for name, value in expected.items():  # the model fit hands back is the average
        torch.testing.assert_close(model.state_dict()[name].double(), value, rtol=1e-5, atol=1e-6)
    assert not torch.equal(
        model.state_dict()["classifier.3.weight"], steps[-1]["classifier.3.weight"]
    )
    saved = load_checkpoint(tmp_path / "run.pth")
    for name, value in model.state_dict().items():  # model_state: the average
        assert torch.equal(saved["model_state"][name], value)
    trained = saved["average_state"]["trained"]  # the last step's own weights, to resume
    assert all(torch.equal(trained[name], value) for name, value in steps[-1].items())
    assert (saved["average_state"]["decay"], saved["average_state"]["updates"]) == (0.9, 6)
    # validation scored the average
    scored = validate(model, faces(16, seed=1), nn.CrossEntropyLoss(), "cpu")
    assert history["val_loss"][-1] == pytest.approx(scored["loss"], rel=1e-6)
    # a finished run no longer needs the trained weights; the average stays
    drop_resume_state(tmp_path / "run.pth")
    dropped = load_checkpoint(tmp_path / "run.pth")
    assert "average_state" not in dropped
    assert all(torch.equal(dropped["model_state"][k], v) for k, v in model.state_dict().items())


def test_an_interrupted_averaged_run_resumes_to_the_same_average(tmp_path):
    straight, straight_history = train_averaged(3, tmp_path / "straight.pth")
    train_averaged(1, tmp_path / "cut.pth")
    resumed, history = train_averaged(3, tmp_path / "cut.pth", resume=True)
    for name, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_bal_acc"):
        assert history[key] == straight_history[key], key
    a, b = load_checkpoint(tmp_path / "straight.pth"), load_checkpoint(tmp_path / "cut.pth")
    assert a["average_state"]["updates"] == b["average_state"]["updates"] == 9
    assert all(
        torch.equal(a["average_state"]["trained"][k], v)
        for k, v in b["average_state"]["trained"].items()
    )
    # resuming a finished run trains nothing and hands back the average, not the trained weights
    again, _ = train_averaged(3, tmp_path / "cut.pth", resume=True)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in straight.state_dict().items())


def test_fit_without_an_average_saves_none(tmp_path):
    train_averaged(1, tmp_path / "plain.pth", ema=0.0)
    assert load_checkpoint(tmp_path / "plain.pth")["average_state"] is None


@pytest.mark.parametrize(
    ("saved", "asked", "message"),
    [
        (0.9, 0.0, r"trained with a weight average \(decay 0.9\); resume it the same way"),
        (0.0, 0.9, "trained with no weight average; resume it the same way"),
        (0.9, 0.5, "averaged its weights with decay 0.9, not 0.5"),
    ],
)
def test_resume_refuses_another_weight_average(tmp_path, saved, asked, message):
    path = tmp_path / "run.pth"
    train_averaged(1, path, ema=saved)
    with pytest.raises(CheckpointError, match=message) as caught:
        train_averaged(2, path, ema=asked, resume=True)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


# --- as a recipe setting (--ema) --------------------------------------------------------------


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_a_recipe_refuses_a_decay_outside_zero_to_one(decay):
    with pytest.raises(FerError, match=f"ema must be 0 \\(off\\) or a decay .*not {decay}"):
        dataclasses.replace(FAST, ema=decay)


def test_a_recipe_with_ema_trains_saves_and_loads_the_average(tmp_path):
    recipe = dataclasses.replace(FAST, epochs=2, precision="fp32", batch_size=8, ema=0.99)
    out = tmp_path / "ema.pth"
    model, _ = train_with_recipe(
        recipe, load_synthetic(tiny=True), out, device="cpu", progress=False, log=lambda _: None
    )
    saved = load_checkpoint(out)
    assert saved["average_state"]["decay"] == 0.99 and saved["average_state"]["updates"] == 6
    loaded, info = load_model(out)  # what evaluate and predict use: the average
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert "average_state" not in info
    # a run saved before the field existed is the same run as ema 0.0, and not as 0.99
    before = dataclasses.asdict(FAST)
    del before["ema"]
    old = {"extra": {"settings": {"recipe": before}}}
    assert settings_changed(old, {"recipe": dataclasses.asdict(FAST)}) == []
    assert settings_changed(old, {"recipe": dataclasses.asdict(recipe)}) == [
        f"epochs {FAST.epochs} -> 2",
        f"batch_size {FAST.batch_size} -> 8",
        "ema 0.0 -> 0.99",
        f"precision {FAST.precision!r} -> 'fp32'",
    ]
