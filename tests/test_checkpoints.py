"""Checkpoints: atomic saving, weights_only loading, legacy state_dicts, helpful errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fer_helpers.checkpoints import (
    FORMAT,
    LEGACY_FORMAT,
    combine_checkpoints,
    load_checkpoint,
    load_model,
    make_meta,
    save_checkpoint,
)
from fer_helpers.errors import CheckpointError, FerError
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.models import SI100FaceNet


class NotAllowed:
    """A class torch.load(weights_only=True) refuses to rebuild."""


def small_model(classes: int = 3, seed: int = 0) -> SI100FaceNet:
    torch.manual_seed(seed)
    return SI100FaceNet(num_classes=classes, hidden=16, input_size=16)


def save_small(path: Path, class_names=COURSE_CLASSES, seed: int = 0, **extra) -> SI100FaceNet:
    model = small_model(len(class_names), seed)
    meta = make_meta("si100", class_names, hidden=16, input_size=16)
    save_checkpoint(path, **meta, model_state=model.state_dict(), **extra)
    return model


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(2, 3, 16, 16)
    return torch.equal(a.eval()(x), b.eval()(x))


def test_make_meta_describes_the_model() -> None:
    meta = make_meta("si100", ["happy", "sad"], in_channels=1)
    assert meta == {
        "arch": "si100",
        "arch_kwargs": {"num_classes": 2, "in_channels": 1},
        "class_names": ["happy", "sad"],
        "normalization": {"channels": 1, "scale": "u8/127.5-1"},
    }
    with pytest.raises(FerError, match="num_classes=3 but 2 class names"):
        make_meta("si100", ["happy", "sad"], num_classes=3)


def test_checkpoint_round_trips_and_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    history = {"train_loss": [1.5, 1.25]}
    model = save_small(path, epoch=2, history=history, extra={"note": "tiny"})

    raw = torch.load(path, weights_only=True)  # what any careful user would run
    assert raw["format"] == FORMAT
    checkpoint = load_checkpoint(path)
    assert checkpoint["class_names"] == list(COURSE_CLASSES)
    assert (checkpoint["epoch"], checkpoint["history"], checkpoint["extra"]) == (
        2,
        history,
        {"note": "tiny"},
    )
    for key, tensor in model.state_dict().items():
        assert torch.equal(checkpoint["model_state"][key], tensor)


def test_save_refuses_missing_and_misspelt_fields(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"missing fields \['arch'.*unknown fields \['epochs'\]"):
        save_checkpoint(tmp_path / "m.pth", model_state={}, epochs=3)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "model.pth"
    save_small(path, seed=0)
    before = path.read_bytes()

    def save_half_then_fail(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_small(path, seed=1)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


def test_save_replaces_an_existing_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "model.pth"
    save_small(path, seed=0)
    newer = save_small(path, seed=1)
    loaded, _ = load_model(path)
    assert same_outputs(loaded, newer)
    assert [p.name for p in path.parent.iterdir()] == ["model.pth"]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nowhere\.pth: no such file"):
        load_checkpoint(tmp_path / "nowhere.pth")


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "face_expression.pth"
    path.write_bytes(torch.randint(0, 256, (1000,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match=r"face_expression\.pth could not be read"):
        load_checkpoint(path)


def test_a_file_weights_only_refuses_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "sneaky.pth"
    torch.save({"format": FORMAT, "payload": NotAllowed()}, path)
    with pytest.raises(CheckpointError, match=r"sneaky\.pth could not be read"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content", [{"weights": [1, 2]}, {}, [torch.zeros(2)], {"format": "fer_helpers/1"}]
)
def test_other_pickles_are_not_checkpoints(tmp_path: Path, content) -> None:
    path = tmp_path / "other.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=r"other\.pth (is not a checkpoint|lacks)"):
        load_checkpoint(path)


def test_plain_state_dict_loads_as_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "face_expression.pth"
    model = small_model(classes=3)
    torch.save(model.state_dict(), path)  # what the course handout did

    checkpoint = load_checkpoint(path)
    assert checkpoint["format"] == LEGACY_FORMAT
    assert checkpoint["arch"] is None and checkpoint["class_names"] is None

    loaded, info = load_model(path, class_names=COURSE_CLASSES)
    assert same_outputs(loaded, model)
    assert info["arch_kwargs"] == {
        "num_classes": 3,
        "in_channels": 3,
        "hidden": 16,
        "input_size": 16,
    }
    assert info["class_names"] == list(COURSE_CLASSES)
    with pytest.raises(CheckpointError, match="trained for 3 classes but 7 were asked for"):
        load_model(path, num_classes=7)


def test_plain_state_dict_with_batch_norm_loads_with_batch_norm(tmp_path: Path) -> None:
    path = tmp_path / "fast.pth"
    torch.manual_seed(0)
    model = SI100FaceNet(hidden=16, input_size=16, batch_norm=True, dropout=0.2)
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16))  # training mode: the running statistics move
    torch.save(model.state_dict(), path)

    loaded, info = load_model(path, class_names=COURSE_CLASSES)
    assert info["arch_kwargs"]["batch_norm"] is True
    assert same_outputs(loaded, model.eval())


def test_state_dict_of_another_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other_net.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"other_net\.pth holds weights only.*conv1\.weight"):
        load_model(path)


def test_load_model_rebuilds_the_model_in_eval_mode(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    model = save_small(path, class_names=EMOTIONS, epoch=4)
    loaded, info = load_model(path, num_classes=7, class_names=list(EMOTIONS))
    assert not loaded.training
    assert same_outputs(loaded, model)
    assert info["epoch"] == 4 and info["class_names"] == list(EMOTIONS)
    assert "model_state" not in info


def test_class_count_mismatch_names_the_file_and_both_class_lists(tmp_path: Path) -> None:
    path = tmp_path / "face_expression.pth"
    save_small(path, class_names=EMOTIONS)
    with pytest.raises(CheckpointError) as caught:
        load_model(path, class_names=COURSE_CLASSES)
    assert str(caught.value) == (
        f"{path} was trained for 7 classes (angry, disgust, fear, happy, sad, surprise,"
        " neutral) but 3 were asked for (happy, neutral, sad)"
    )
    with pytest.raises(CheckpointError, match="trained for 7 classes .* but 3 were asked for$"):
        load_model(path, num_classes=3)


def test_class_order_must_match(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    save_small(path, class_names=COURSE_CLASSES)
    with pytest.raises(
        CheckpointError, match=r"\(happy, neutral, sad\) but \(sad, neutral, happy\)"
    ):
        load_model(path, class_names=["sad", "neutral", "happy"])


def test_weights_that_do_not_fit_the_architecture_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    meta = make_meta("si100", COURSE_CLASSES, hidden=32, input_size=16)  # says 32 ...
    save_checkpoint(path, **meta, model_state=small_model().state_dict())  # ... holds 16
    with pytest.raises(CheckpointError, match=r"model\.pth do not fit SI100FaceNet"):
        load_model(path)


def test_an_ensemble_checkpoint_averages_its_members_probabilities(tmp_path: Path) -> None:
    history = {"epoch_seconds": [1.0, 2.0], "val_acc": [0.4, 0.5]}
    a = save_small(tmp_path / "a.pth", seed=1, epoch=2, history=history, extra={"threads": 1})
    b = save_small(
        tmp_path / "b.pth", seed=2, epoch=3, history={"epoch_seconds": [4.0]}, extra={"threads": 2}
    )
    out = combine_checkpoints([tmp_path / "a.pth", tmp_path / "b.pth"], tmp_path / "ab.pth")
    model, info = load_model(out, class_names=COURSE_CLASSES)
    x = torch.randn(5, 3, 16, 16)
    mean = (torch.softmax(a.eval()(x), 1) + torch.softmax(b.eval()(x), 1)) / 2
    with torch.no_grad():
        assert torch.allclose(torch.softmax(model(x), 1), mean, atol=1e-6)
        assert torch.allclose(model(x).exp().sum(1), torch.ones(5))  # log-probabilities
        assert not torch.allclose(mean, torch.softmax(a(x), 1), atol=1e-3)  # members differ
    assert info["arch"] == "ensemble" and info["epoch"] == 5
    assert info["history"]["epoch_seconds"] == [1.0, 2.0, 4.0]  # the card's time: all runs
    members = info["extra"]["members"]
    assert [m["source"] for m in members] == [str(tmp_path / "a.pth"), str(tmp_path / "b.pth")]
    assert members[0]["val_acc"] == [0.4, 0.5] and members[1]["val_acc"] == []
    assert "threads" not in info["extra"] and [m["threads"] for m in members] == [1, 2]


def test_an_ensemble_refuses_members_that_disagree(tmp_path: Path) -> None:
    save_small(tmp_path / "a.pth")
    save_small(tmp_path / "other.pth", class_names=("happy", "sad", "neutral"))
    torch.save(small_model().state_dict(), tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth has class_names .*must agree"):
        combine_checkpoints([tmp_path / "a.pth", tmp_path / "other.pth"], tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=r"plain\.pth holds weights only"):
        combine_checkpoints([tmp_path / "a.pth", tmp_path / "plain.pth"], tmp_path / "x.pth")
    with pytest.raises(FerError, match="at least 2"):
        combine_checkpoints([tmp_path / "a.pth"], tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()


def test_dropping_the_resume_state_keeps_everything_else(tmp_path):
    from fer_helpers.checkpoints import (
        drop_resume_state,
        load_checkpoint,
        make_meta,
        save_checkpoint,
    )
    from fer_helpers.models import build_model

    model = build_model("si100", num_classes=3, hidden=8)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(2, 3, 48, 48)).sum().backward()
    optimizer.step()  # Adam now holds two moments per weight
    path = tmp_path / "run.pth"
    save_checkpoint(
        path,
        **make_meta("si100", ["happy", "neutral", "sad"], hidden=8),
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        scheduler_state={"last_epoch": 3},
        rng={"torch": torch.get_rng_state()},
        epoch=2,
        history={"train_loss": [1.0, 0.5]},
        extra={"settings": {"seed": 0}},
    )
    before = load_checkpoint(path)
    size = path.stat().st_size
    drop_resume_state(path)
    after = load_checkpoint(path)
    assert set(before) - set(after) == {"optimizer_state", "scheduler_state", "rng"}
    for key in ("arch", "arch_kwargs", "class_names", "normalization", "epoch", "history", "extra"):
        assert after[key] == before[key]
    for name, tensor in before["model_state"].items():
        assert torch.equal(after["model_state"][name], tensor)
    assert path.stat().st_size < 0.5 * size  # Adam's two moments were twice the weights
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, nothing left over


def test_an_ensemble_records_its_data_its_threads_and_its_members_epochs(tmp_path: Path) -> None:
    extra = {"data": "FER2013", "threads": 2, "recipe": {"name": "fast"}}
    save_small(tmp_path / "a.pth", seed=1, epoch=2, extra=extra)
    save_small(tmp_path / "b.pth", seed=2, extra={**extra, "data": "other"})  # no epoch, history
    out = combine_checkpoints([tmp_path / "a.pth", tmp_path / "b.pth"], tmp_path / "ab.pth")
    info = load_checkpoint(out)
    assert info["extra"]["data"] == "FER2013"  # the first member's
    assert info["extra"]["threads"] == 2  # the same in every member: said once
    assert info["epoch"] == 2 and info["history"] == {"epoch_seconds": []}
    assert [m["epoch"] for m in info["extra"]["members"]] == [2, None]
    assert info["extra"]["members"][0]["recipe"] == {"name": "fast"}
    save_small(tmp_path / "c.pth", seed=3)  # no extra at all
    out = combine_checkpoints([tmp_path / "c.pth", tmp_path / "a.pth"], tmp_path / "ca.pth")
    assert load_checkpoint(out)["extra"]["data"] == "?"
    assert "threads" not in load_checkpoint(out)["extra"]  # c does not say


def test_an_ensemble_names_the_first_member_a_disagreeing_one_differs_from(tmp_path: Path) -> None:
    save_small(tmp_path / "a.pth")
    save_small(tmp_path / "b.pth")
    save_small(tmp_path / "other.pth", class_names=("happy", "sad", "neutral"))
    paths = [tmp_path / "a.pth", tmp_path / "b.pth", tmp_path / "other.pth"]
    with pytest.raises(CheckpointError) as raised:
        combine_checkpoints(paths, tmp_path / "x.pth")
    assert f"but {tmp_path / 'a.pth'} has" in str(raised.value)
    assert "written by `python -m fer_helpers train`, which know their classes and input" in (
        _message_of_plain(tmp_path)
    )


def _message_of_plain(tmp_path: Path) -> str:
    torch.save(small_model().state_dict(), tmp_path / "plain.pth")
    with pytest.raises(CheckpointError) as raised:
        combine_checkpoints([tmp_path / "a.pth", tmp_path / "plain.pth"], tmp_path / "x.pth")
    return str(raised.value)


@pytest.mark.parametrize(("channels", "input_size"), [(1, 8), (3, 24)])
def test_a_plain_state_dict_tells_its_input_from_its_weights(tmp_path, channels, input_size):
    torch.manual_seed(0)
    model = SI100FaceNet(hidden=16, in_channels=channels, input_size=input_size)
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    loaded, info = load_model(tmp_path / "plain.pth", class_names=COURSE_CLASSES)
    assert info["arch_kwargs"]["in_channels"] == channels
    assert info["arch_kwargs"]["input_size"] == input_size  # 8: fc1 sees 256 x 1 x 1
    assert info["normalization"] == {"channels": channels, "scale": "u8/127.5-1"}
    x = torch.randn(2, channels, input_size, input_size)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


@pytest.mark.parametrize(("width", "input_size"), [(32, 48), (8, 24), (5, 16)])
def test_a_plain_state_dict_of_a_narrower_si100_loads_at_its_width(tmp_path, width, input_size):
    torch.manual_seed(0)
    model = SI100FaceNet(hidden=16, in_channels=1, input_size=input_size, width=width)
    model.eval()
    torch.save(model.state_dict(), tmp_path / "narrow.pth")
    loaded, info = load_model(tmp_path / "narrow.pth", class_names=COURSE_CLASSES)
    assert info["arch_kwargs"]["width"] == width
    assert info["arch_kwargs"]["input_size"] == input_size  # fc1 sees 4 * width channels
    x = torch.randn(2, 1, input_size, input_size)
    assert torch.equal(loaded.eval()(x), model(x))
    # the course's own width leaves no width in the arch_kwargs (the model's default)
    torch.save(SI100FaceNet(hidden=16, input_size=16).state_dict(), tmp_path / "course.pth")
    assert "width" not in load_model(tmp_path / "course.pth")[1]["arch_kwargs"]


def test_save_refuses_a_missing_field_alone_and_a_misspelt_one_alone(tmp_path: Path) -> None:
    meta = make_meta("si100", COURSE_CLASSES, hidden=16, input_size=16)
    state = small_model().state_dict()
    with pytest.raises(TypeError, match=r"missing fields \['model_state'\], unknown fields \[\]"):
        save_checkpoint(tmp_path / "a.pth", **meta)
    with pytest.raises(TypeError, match=r"missing fields \[\], unknown fields \['epochs'\]"):
        save_checkpoint(tmp_path / "a.pth", **meta, model_state=state, epochs=3)
    assert not list(tmp_path.iterdir())


def test_what_a_non_checkpoint_is_told_word_for_word(tmp_path: Path) -> None:
    from fer_helpers.checkpoints import drop_resume_state

    expected = "a checkpoint from fer_helpers.save_checkpoint or a state_dict saved with torch.save"
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tmp_path / "list.pth")
    assert str(raised.value) == f"{tmp_path / 'list.pth'} is not a checkpoint; expected {expected}"
    torch.save({"format": FORMAT, "arch": "si100"}, tmp_path / "bare.pth")
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tmp_path / "bare.pth")
    assert str(raised.value).startswith(
        f"{tmp_path / 'bare.pth'} lacks the checkpoint fields arch_kwargs, class_names, "
    )
    torch.save(small_model().state_dict(), tmp_path / "plain.pth")
    with pytest.raises(CheckpointError) as raised:
        drop_resume_state(tmp_path / "plain.pth")
    assert str(raised.value) == (
        f"{tmp_path / 'plain.pth'} holds weights only; there is no resume state to drop"
    )


def test_a_plain_state_dict_comes_back_with_exactly_the_checkpoint_fields(tmp_path: Path) -> None:
    state = small_model().state_dict()
    torch.save(state, tmp_path / "plain.pth")
    checkpoint = load_checkpoint(tmp_path / "plain.pth")
    assert checkpoint.keys() == {
        "format",
        "arch",
        "arch_kwargs",
        "class_names",
        "normalization",
        "model_state",
    }
    assert checkpoint["format"] == LEGACY_FORMAT and checkpoint["arch_kwargs"] == {}
    assert checkpoint["normalization"] is None
    assert checkpoint["model_state"].keys() == state.keys()


def test_class_checks_say_what_was_asked_word_for_word(tmp_path: Path) -> None:
    from fer_helpers.checkpoints import check_fits

    legacy = {"class_names": None, "arch_kwargs": {"num_classes": 3}}
    check_fits(legacy, "old.pth", num_classes=3)
    with pytest.raises(CheckpointError, match=r"^old\.pth was trained for 3 classes but 7 were"):
        check_fits(legacy, "old.pth", num_classes=7)
    with pytest.raises(FerError) as raised:
        check_fits(legacy, "old.pth", num_classes=2, class_names="happy,sad,neutral")
    assert str(raised.value) == "num_classes=2 but 3 class names: ['happy', 'sad', 'neutral']"
    named = {"class_names": ["happy", "sad", "neutral"], "arch_kwargs": {"num_classes": 99}}
    check_fits(named, "new.pth", num_classes=3)  # the names count, not a stale num_classes
    with pytest.raises(CheckpointError) as raised:
        check_fits(named, "new.pth", class_names="happy,neutral,sad")
    assert str(raised.value).endswith(" were asked for; the names and their order must match")


def test_load_model_keeps_the_checkpoints_names_and_drops_the_training_states(tmp_path) -> None:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    meta = make_meta("si100", COURSE_CLASSES, hidden=16, input_size=16)
    save_checkpoint(
        tmp_path / "run.pth",
        **meta,
        model_state=model.state_dict(),
        epoch=1,
        optimizer_state=optimizer.state_dict(),
        scheduler_state={"last_epoch": 1},
        objective_state={"centres": torch.zeros(3, 2)},
    )
    _, info = load_model(tmp_path / "run.pth", num_classes=3)
    assert not {"model_state", "optimizer_state", "scheduler_state", "objective_state"} & set(info)
    assert info["epoch"] == 1 and info["class_names"] == list(COURSE_CLASSES)
    _, info = load_model(tmp_path / "run.pth")
    assert info["class_names"] == list(COURSE_CLASSES)


def test_the_tta_a_model_is_scored_with() -> None:
    from fer_helpers.checkpoints import scoring_tta

    assert scoring_tta({}) == "none"
    assert scoring_tta({"extra": {"recipe": {"name": "course"}}}) == "none"
    assert scoring_tta({"extra": {"recipe": {"tta": True}}}) == "flip"
    assert scoring_tta({"extra": {"recipe": {"tta": True}, "scoring_tta": "shifts"}}) == "shifts"
    assert scoring_tta({"extra": {"recipe": {"tta": True}, "scoring_tta": False}}) == "none"


def test_a_plain_state_dict_normalised_after_pooling_loads_that_way(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SI100FaceNet(hidden=16, input_size=16, batch_norm=True, pool_before_norm=True)
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16))  # the running statistics move
    torch.save(model.state_dict(), tmp_path / "pooled.pth")
    loaded, info = load_model(tmp_path / "pooled.pth")
    assert info["arch_kwargs"]["pool_before_norm"] is True
    assert same_outputs(loaded, model.eval())


def test_a_plain_state_dict_takes_the_class_names_it_is_loaded_with(tmp_path: Path) -> None:
    torch.save(small_model().state_dict(), tmp_path / "plain.pth")
    _, info = load_model(tmp_path / "plain.pth", class_names="angry,disgust,fear")
    assert info["class_names"] == ["angry", "disgust", "fear"]
    _, info = load_model(tmp_path / "plain.pth")
    assert info["class_names"] is None  # nothing says which classes they are
