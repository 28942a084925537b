"""SI100FaceNet's shapes, print toggle and parameter counts, SmallVGG, and the model registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fer_helpers.errors import FerError
from fer_helpers.models import (
    MODELS,
    SI100FaceNet,
    SmallVGG,
    build_model,
    count_parameters,
    parameters_per_layer,
)

STEPS = [
    "conv1", "pool1", "act1",
    "conv2", "pool2", "act2",
    "conv3", "pool3", "act3",
    "fc1", "act4", "fc2",
]  # fmt: skip


def conv_params(kernel: int, c_in: int, c_out: int) -> int:
    return kernel * kernel * c_in * c_out + c_out


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def expected_trace(batch: int, channels: int, side: int, hidden: int, classes: int) -> list:
    """The dimension trace worked out by hand: 3x3 pad-1 convs keep the side, pools halve it."""
    trace = [("input", (batch, channels, side, side))]
    for block, width in enumerate((64, 128, 256), start=1):
        trace.append((f"conv{block}", (batch, width, side, side)))
        side //= 2
        trace.append((f"pool{block}", (batch, width, side, side)))
        trace.append((f"act{block}", (batch, width, side, side)))
    flat = 256 * side * side
    trace += [("flatten", (batch, flat)), ("fc1", (batch, hidden)), ("act4", (batch, hidden))]
    return trace + [("fc2", (batch, classes))]


@pytest.mark.parametrize("classes", [3, 7])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_has_one_score_per_class(classes: int, channels: int) -> None:
    model = SI100FaceNet(num_classes=classes, in_channels=channels)
    assert model(torch.zeros(2, channels, 48, 48)).shape == (2, classes)


def test_other_input_sizes_size_the_first_linear_layer() -> None:
    model = SI100FaceNet(input_size=64)
    assert model.fc1.in_features == 256 * 8 * 8
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)


def test_too_small_input_is_refused() -> None:
    with pytest.raises(FerError, match="input_size=4"):
        SI100FaceNet(input_size=4)


def test_layers_are_named_in_order_with_the_documented_choices() -> None:
    model = SI100FaceNet()
    # Without batch norm and dropout their places hold modules that do nothing.
    placeholders = {"bn1", "bn2", "bn3", "drop1", "drop2"}
    children = dict(model.named_children())
    assert [name for name in children if name not in placeholders] == STEPS
    assert all(isinstance(children[name], torch.nn.Identity) for name in ("bn1", "bn2", "bn3"))
    assert children["drop1"].p == children["drop2"].p == 0
    for conv in (model.conv1, model.conv2, model.conv3):
        assert (conv.kernel_size, conv.padding, conv.stride) == ((3, 3), (1, 1), (1, 1))
    assert [model.conv1.out_channels, model.conv2.out_channels, model.conv3.out_channels] == [
        64,
        128,
        256,
    ]
    for act in (model.act1, model.act2, model.act3, model.act4):
        assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.01
    assert (model.fc1.in_features, model.fc1.out_features) == (9216, 256)


def test_forward_applies_the_layers_in_the_documented_order() -> None:
    torch.manual_seed(0)
    model = SI100FaceNet(num_classes=7)
    x = torch.randn(2, 3, 48, 48)
    by_hand = x
    for step in STEPS:
        if step == "fc1":
            by_hand = torch.flatten(by_hand, start_dim=1)
        by_hand = getattr(model, step)(by_hand)
    torch.testing.assert_close(model(x), by_hand, rtol=0, atol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_print_toggle_prints_every_step_with_its_shape(capsys, channels: int) -> None:
    model = SI100FaceNet(num_classes=7, in_channels=channels, hidden=32)
    model(torch.zeros(4, channels, 48, 48))
    assert capsys.readouterr().out == ""  # off by default

    model.print_shapes = True
    model(torch.zeros(4, channels, 48, 48))
    lines = capsys.readouterr().out.splitlines()
    trace = expected_trace(4, channels, 48, hidden=32, classes=7)
    assert [line.split("->")[0].strip() for line in lines] == [step for step, _ in trace]
    assert [line.split("->")[1].strip() for line in lines] == [str(shape) for _, shape in trace]
    assert lines[1] == "conv1      -> (4, 64, 48, 48)"


@pytest.mark.parametrize(("channels", "classes", "hidden"), [(3, 3, 256), (1, 7, 256), (3, 7, 64)])
def test_parameter_counts_match_the_formulas(channels: int, classes: int, hidden: int) -> None:
    model = SI100FaceNet(num_classes=classes, in_channels=channels, hidden=hidden)
    expected = [
        ("conv1", conv_params(3, channels, 64)),
        ("conv2", conv_params(3, 64, 128)),
        ("conv3", conv_params(3, 128, 256)),
        ("fc1", linear_params(256 * 6 * 6, hidden)),
        ("fc2", linear_params(hidden, classes)),
    ]
    assert parameters_per_layer(model) == expected
    assert count_parameters(model) == sum(n for _, n in expected)


def test_documented_total_for_the_course_model() -> None:
    # The module docstring promises these totals; keep it honest.
    assert count_parameters(SI100FaceNet(num_classes=3)) == 2_731_139
    assert count_parameters(SI100FaceNet(num_classes=7)) == 2_732_167


def test_parameters_per_layer_uses_dotted_names_for_nested_layers() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    assert parameters_per_layer(model) == [("0", 9), ("1.1", 4)]


def test_build_model_passes_arguments_to_the_registered_class() -> None:
    model = build_model("si100", num_classes=7, in_channels=1, hidden=32)
    assert isinstance(model, MODELS["si100"])
    assert (model.conv1.in_channels, model.fc1.out_features, model.fc2.out_features) == (1, 32, 7)


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(FerError, match=r"unknown model 'resnet99'.*si100"):
        build_model("resnet99", num_classes=3)


def smallvgg_params(channels: int, classes: int, width: int = 32) -> int:
    """By hand: per stage two bias-free 3x3 convs, each followed by batch norm (2 per channel)."""
    total, c_in = 0, channels
    for w in (width, 2 * width, 4 * width, 8 * width):
        total += 9 * c_in * w + 2 * w + 9 * w * w + 2 * w
        c_in = w
    return total + linear_params(8 * width, classes)


@pytest.mark.parametrize(("channels", "classes", "width"), [(1, 7, 32), (3, 3, 32), (1, 7, 8)])
def test_smallvgg_scores_each_class_and_counts_its_parameters(channels, classes, width) -> None:
    model = SmallVGG(num_classes=classes, in_channels=channels, width=width).eval()
    assert model(torch.zeros(2, channels, 48, 48)).shape == (2, classes)
    assert count_parameters(model) == smallvgg_params(channels, classes, width)
    # Four poolings: 48 -> 3, then global average pooling leaves one number per channel.
    assert model.features(torch.zeros(1, channels, 48, 48)).shape == (1, 8 * width, 3, 3)


def test_smallvgg_documented_size_and_dropout() -> None:
    assert count_parameters(SmallVGG(num_classes=7, in_channels=1)) == 1_174_439  # "1.17 M"
    model = build_model("smallvgg", num_classes=7, in_channels=1, dropout=0.5)
    assert isinstance(model, SmallVGG)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and all(conv.bias is None for conv in convs)


def test_an_ensemble_returns_the_log_of_its_members_mean_probability() -> None:
    member = {"arch": "smallvgg", "arch_kwargs": {"num_classes": 7, "width": 4}}
    torch.manual_seed(0)
    ensemble = build_model("ensemble", num_classes=7, members=[member, member, member]).eval()
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        probs = torch.stack([torch.softmax(m(x), 1) for m in ensemble.members]).mean(0)
        assert torch.allclose(ensemble(x), probs.log(), atol=1e-6)
    with pytest.raises(FerError, match="at least 2 members"):
        build_model("ensemble", num_classes=7, members=[member])
    with pytest.raises(FerError, match=r"members for \[7, 7\] classes"):
        build_model("ensemble", num_classes=3, members=[member, member])


# --- the model knows its input -------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["si100", "convnet5", "resnet9", "smallvgg", "dacl"])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_input_channels_are_read_off_the_model(arch, channels):
    from fer_helpers.models import build_model, check_input, input_channels

    model = build_model(arch, num_classes=4, in_channels=channels)
    assert input_channels(model) == channels
    check_input(model, torch.zeros(2, channels, 48, 48))
    with pytest.raises(FerError, match=f"takes batches of {channels}-channel faces"):
        check_input(model, torch.zeros(2, 4 - channels, 48, 48))


def test_faces_are_given_the_channels_their_model_takes():
    import numpy as np

    from fer_helpers.faces import classify_faces

    crops = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    for channels in (1, 3):
        torch.manual_seed(0)
        model = SI100FaceNet(num_classes=3, in_channels=channels).eval()
        probs = classify_faces(model, crops)  # no channels given: the model's
        x = torch.from_numpy(crops).float().unsqueeze(1) / 127.5 - 1
        with torch.no_grad():
            expected = torch.softmax(model(x.expand(-1, channels, -1, -1)), dim=1).numpy()
        np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(FerError, match="takes batches of 3-channel faces"):
        classify_faces(model, crops, channels=1)
