"""SI100FaceNet's shapes, print toggle and parameter counts, SmallVGG, and the model registry;
every network's layers, sizes and parameter counts checked against the reports' specification."""

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


@pytest.mark.parametrize(("width", "classes"), [(32, 3), (16, 7), (1, 2)])
def test_a_narrower_si100_has_width_2x_4x_channels_and_the_formulas_parameters(width, classes):
    model = SI100FaceNet(num_classes=classes, in_channels=1, width=width, batch_norm=True)
    expected = [
        ("conv1", conv_params(3, 1, width)),
        ("bn1", 2 * width),
        ("conv2", conv_params(3, width, 2 * width)),
        ("bn2", 4 * width),
        ("conv3", conv_params(3, 2 * width, 4 * width)),
        ("bn3", 8 * width),
        ("fc1", linear_params(4 * width * 6 * 6, 256)),
        ("fc2", linear_params(256, classes)),
    ]
    assert parameters_per_layer(model) == expected
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, classes)
    with pytest.raises(FerError, match="width=0"):
        SI100FaceNet(width=0)


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


@pytest.mark.parametrize("arch", ["si100", "convnet5", "resnet9", "smallvgg", "resnet18", "dacl"])
def test_every_model_says_its_input_size_and_refuses_a_batch_of_another(arch):
    from fer_helpers.models import build_model, check_input, input_size

    model = build_model(arch, num_classes=4, in_channels=1)
    assert input_size(model) == 48  # FER2013's faces, unless built for others
    check_input(model, torch.zeros(2, 1, 48, 48))
    name = type(model).__name__
    with pytest.raises(FerError) as caught:  # si100: a matrix product's error before
        check_input(model, torch.zeros(2, 1, 64, 64))
    assert str(caught.value) == (
        f"{name} takes 48x48 faces, not 64x64 (batch (2, 1, 64, 64)); "
        "resize them or build the model with input_size"
    )
    with pytest.raises(FerError, match=f"{name} takes 48x48 faces, not 48x40 "):
        check_input(model, torch.zeros(2, 1, 48, 40))  # height and width both count


@pytest.mark.parametrize("arch", ["si100", "convnet5", "resnet9", "dacl"])
def test_a_model_built_for_another_size_takes_that_size_and_no_other(arch):
    from fer_helpers.models import build_model, check_input, input_size

    model = build_model(arch, num_classes=3, in_channels=1, input_size=32).eval()
    assert input_size(model) == 32
    check_input(model, torch.zeros(2, 1, 32, 32))
    with torch.no_grad():
        scores = model(torch.zeros(2, 1, 32, 32))
    assert (scores[0] if isinstance(scores, tuple) else scores).shape == (2, 3)
    with pytest.raises(FerError, match="takes 32x32 faces, not 48x48"):
        check_input(model, torch.zeros(2, 1, 48, 48))


def test_a_network_that_does_not_say_its_size_is_held_to_its_channels_only():
    from fer_helpers.models import check_input, input_size

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1))
    assert input_size(net) == 48  # what export and the FLOP count assume for it
    check_input(net, torch.zeros(2, 1, 20, 20))
    with pytest.raises(FerError, match="1-channel"):
        check_input(net, torch.zeros(2, 3, 20, 20))


def test_a_dacl_checkpoint_that_saved_size_loads_under_input_size(tmp_path):
    from fer_helpers.checkpoints import load_model, make_meta, save_checkpoint
    from fer_helpers.models import DACLNet, input_size

    torch.manual_seed(0)
    model = DACLNet(num_classes=2, in_channels=1, input_size=32)
    meta = make_meta("dacl", ["happy", "sad"], in_channels=1, size=32)  # the old name
    path = save_checkpoint(tmp_path / "old.pth", **meta, model_state=model.state_dict())
    loaded, info = load_model(path)
    assert input_size(loaded) == 32 and info["arch_kwargs"]["size"] == 32
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model.eval()(x)[0])


def test_an_ensemble_takes_its_members_input_size():
    from fer_helpers.models import input_size

    def member(side: int) -> dict:
        return {"arch": "si100", "arch_kwargs": {"num_classes": 3, "hidden": 8, "input_size": side}}

    assert input_size(build_model("ensemble", num_classes=3, members=[member(16)] * 2)) == 16
    with pytest.raises(FerError, match=r"one input size, not \[16, 24\]"):
        build_model("ensemble", num_classes=3, members=[member(16), member(24)])


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


# --- the layers each report specifies, walked module by module -----------------------------------
#
# The expected layer lists below are written out from docs/course-facts.md (Lecture A's
# SI100FaceNet, Report 1's ConvNet 5, Report 2's DACL, Report 3's ResNet-9) and, where the
# facts leave a choice, from the model's docstring (SI100FaceNet's kernels, SmallVGG).
# Forward hooks record the layers in the order forward calls them, with their output
# shapes; parameter counts are worked out by hand from the same specification.


def describe(module: nn.Module) -> tuple:
    """What a layer is, as the reports write it: kind and the numbers that define it."""
    kind = type(module).__name__
    if isinstance(module, nn.Conv2d):
        return (
            kind,
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.bias is not None,
        )
    if isinstance(module, nn.Linear):
        return (kind, module.in_features, module.out_features)
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        return (kind, module.num_features)
    if isinstance(module, nn.MaxPool2d):
        return (kind, module.kernel_size, module.stride, module.padding)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return (kind, module.output_size)
    if isinstance(module, nn.Dropout | nn.Dropout2d):
        return (kind, module.p)
    if isinstance(module, nn.LeakyReLU):
        return (kind, module.negative_slope)
    if isinstance(module, nn.ELU):
        return (kind, module.alpha)
    return (kind,)


def conv(c_in: int, c_out: int, k: int = 3, stride: int = 1, pad: int = 1, bias: bool = True):
    return ("Conv2d", c_in, c_out, (k, k), (stride, stride), (pad, pad), bias)


def maxpool(k: int = 2, stride: int | None = None, pad: int = 0) -> tuple:
    return ("MaxPool2d", k, k if stride is None else stride, pad)


def bn2d(c: int) -> tuple:
    return ("BatchNorm2d", c)


def bn1d(c: int) -> tuple:
    return ("BatchNorm1d", c)


def linear(n_in: int, n_out: int) -> tuple:
    return ("Linear", n_in, n_out)


LEAKY = ("LeakyReLU", 0.01)
RELU = ("ReLU",)
ELU = ("ELU", 1.0)
FLATTEN = ("Flatten",)


def forward_calls(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple, tuple]]:
    """(name, description, output shape) of every leaf layer, in the order forward calls them.

    Layers that do nothing (nn.Identity) are left out. Runs in eval mode, without gradients.
    """
    calls: list[tuple[str, tuple, tuple]] = []
    handles = []
    for name, module in model.named_modules():
        if list(module.children()) or isinstance(module, nn.Identity):
            continue

        def hook(mod, inputs, output, name=name) -> None:
            calls.append((name, describe(mod), tuple(output.shape)))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def layers_called(model: nn.Module, x: torch.Tensor) -> list[tuple]:
    return [description for _, description, _ in forward_calls(model, x)]


def sides_after(model: nn.Module, x: torch.Tensor, kind: str) -> list[int]:
    """The image side after every layer of one kind (e.g. each max-pool), in call order."""
    return [
        shape[-1] for _, description, shape in forward_calls(model, x) if description[0] == kind
    ]


def bn_params(channels: int) -> int:
    return 2 * channels  # a learned scale and shift per channel (running stats are buffers)


# SI100FaceNet: Lecture A's three conv -> max-pool -> LeakyReLU blocks (64, 128, 256 channels),
# then fully connected layers with a LeakyReLU after the hidden one; the module docstring's
# choices: 3x3 kernels, padding 1, stride 1, 2x2 max-pools, 256 hidden units.


def si100_layers(
    channels: int = 3, classes: int = 3, hidden: int = 256, bn: bool = False, p: float = 0.0
) -> list[tuple]:
    layers: list[tuple] = []
    for c_in, c_out in ((channels, 64), (64, 128), (128, 256)):
        layers += [conv(c_in, c_out)] + ([bn2d(c_out)] if bn else []) + [maxpool(2), LEAKY]
    return layers + [
        ("Dropout", p),
        linear(6 * 6 * 256, hidden),
        LEAKY,
        ("Dropout", p),
        linear(hidden, classes),
    ]


@pytest.mark.parametrize(
    ("channels", "classes", "bn", "p"),
    [(3, 3, False, 0.0), (1, 7, False, 0.0), (3, 3, True, 0.2), (1, 7, True, 0.5)],
)
def test_si100_calls_the_lectures_layers_in_order(channels, classes, bn, p) -> None:
    model = SI100FaceNet(num_classes=classes, in_channels=channels, batch_norm=bn, dropout=p)
    x = torch.zeros(2, channels, 48, 48)
    assert layers_called(model, x) == si100_layers(channels, classes, bn=bn, p=p)
    # Batch norm is there when asked for, and only then.
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [m.num_features for m in norms] == ([64, 128, 256] if bn else [])


def test_si100_sizes_after_every_layer_by_forward_hooks() -> None:
    model = SI100FaceNet(num_classes=3, batch_norm=True)
    shapes = {name: shape for name, _, shape in forward_calls(model, torch.zeros(2, 3, 48, 48))}
    # 48 -> 24 -> 12 -> 6: a 3x3 convolution with padding 1 keeps the side, a pool halves it.
    assert shapes == {
        "conv1": (2, 64, 48, 48),
        "bn1": (2, 64, 48, 48),
        "pool1": (2, 64, 24, 24),
        "act1": (2, 64, 24, 24),
        "conv2": (2, 128, 24, 24),
        "bn2": (2, 128, 24, 24),
        "pool2": (2, 128, 12, 12),
        "act2": (2, 128, 12, 12),
        "conv3": (2, 256, 12, 12),
        "bn3": (2, 256, 12, 12),
        "pool3": (2, 256, 6, 6),
        "act3": (2, 256, 6, 6),
        "drop1": (2, 9216),
        "fc1": (2, 256),
        "act4": (2, 256),
        "drop2": (2, 256),
        "fc2": (2, 3),
    }
    # Other input sides: floor-halved three times (64 -> 8; 50 -> 25 -> 12 -> 6).
    for side, pooled in ((64, [32, 16, 8]), (50, [25, 12, 6])):
        model = SI100FaceNet(input_size=side)
        assert sides_after(model, torch.zeros(1, 3, side, side), "MaxPool2d") == pooled


def test_si100_batch_norm_and_dropout_act_where_the_docstring_says() -> None:
    """BatchNorm right after each convolution (before the pool); dropout on fc1's, fc2's inputs."""
    torch.manual_seed(0)
    model = SI100FaceNet(num_classes=3, batch_norm=True, dropout=0.5).eval()
    for bn in (model.bn1, model.bn2, model.bn3):  # not the identity, so a misplaced one shows
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 48, 48)
    by_hand = x
    for i in (1, 2, 3):
        by_hand = getattr(model, f"conv{i}")(by_hand)
        by_hand = getattr(model, f"bn{i}")(by_hand)
        by_hand = torch.nn.functional.max_pool2d(by_hand, 2)
        by_hand = torch.nn.functional.leaky_relu(by_hand, 0.01)
    by_hand = model.fc1(by_hand.flatten(1))
    by_hand = model.fc2(torch.nn.functional.leaky_relu(by_hand, 0.01))
    with torch.no_grad():
        torch.testing.assert_close(model(x), by_hand)
        # Training: dropout zeroes about half of fc1's 9216 inputs and of fc2's 256.
        seen = {}
        model.fc1.register_forward_pre_hook(lambda m, inp: seen.__setitem__("fc1", inp[0]))
        model.fc2.register_forward_pre_hook(lambda m, inp: seen.__setitem__("fc2", inp[0]))
        model.train()(x)
    for name, size in (("fc1", 9216), ("fc2", 256)):
        assert seen[name].shape == (2, size)
        zeros = (seen[name] == 0).float().mean().item()
        assert 0.4 < zeros < 0.6, (name, zeros)


def si100_params(channels: int, classes: int, hidden: int = 256, bn: bool = False) -> int:
    convs = conv_params(3, channels, 64) + conv_params(3, 64, 128) + conv_params(3, 128, 256)
    norms = bn_params(64) + bn_params(128) + bn_params(256) if bn else 0
    return convs + norms + linear_params(6 * 6 * 256, hidden) + linear_params(hidden, classes)


def test_si100_parameter_counts_with_batch_norm_and_the_fc1_share() -> None:
    assert si100_params(3, 3) == 2_731_139  # the module docstring's total, by the formula
    assert count_parameters(SI100FaceNet(num_classes=3, batch_norm=True)) == 2_731_139 + 896
    assert count_parameters(
        SI100FaceNet(num_classes=7, in_channels=1, batch_norm=True, dropout=0.2)
    ) == si100_params(1, 7, bn=True)
    # "About 86% of all parameters sit in fc1."
    model = SI100FaceNet(num_classes=3)
    share = dict(parameters_per_layer(model))["fc1"] / count_parameters(model)
    assert share == pytest.approx((9216 * 256 + 256) / 2_731_139) and round(share, 2) == 0.86


# Report 1's ConvNet 5: three blocks Conv2d 3x3 pad 1 -> BatchNorm2d -> ReLU -> Dropout2d ->
# MaxPool2d 2 with 64 channels, then Linear 6*6*64 -> 512 -> BatchNorm1d -> Dropout -> ReLU
# and Linear 512 -> 7; dropout 0.4 everywhere.


def convnet5_layers(channels: int, classes: int) -> list[tuple]:
    layers: list[tuple] = []
    for c_in in (channels, 64, 64):
        layers += [conv(c_in, 64), bn2d(64), RELU, ("Dropout2d", 0.4), maxpool(2)]
    return layers + [
        FLATTEN,
        linear(6 * 6 * 64, 512),
        bn1d(512),
        ("Dropout", 0.4),
        RELU,
        linear(512, classes),
    ]


def convnet5_params(channels: int, classes: int) -> int:
    convs = sum(conv_params(3, c_in, 64) + bn_params(64) for c_in in (channels, 64, 64))
    return convs + linear_params(2304, 512) + bn_params(512) + linear_params(512, classes)


@pytest.mark.parametrize(("channels", "classes"), [(3, 7), (1, 7), (3, 3)])
def test_convnet5_is_report_1s_model_5(channels, classes) -> None:
    model = build_model("convnet5", num_classes=classes, in_channels=channels)
    x = torch.zeros(2, channels, 48, 48)
    assert layers_called(model, x) == convnet5_layers(channels, classes)
    assert sides_after(model, x, "MaxPool2d") == [24, 12, 6]  # "48 -> 24 -> 12 -> 6 pixels"
    assert count_parameters(model) == convnet5_params(channels, classes)
    assert model(x).shape == (2, classes)


def test_convnet5_parameter_count_by_hand() -> None:
    # 3 channels, 7 classes: 1,792 + 128 + 2 * (36,928 + 128) + 1,180,160 + 1,024 + 3,591
    assert convnet5_params(3, 7) == 1_260_807
    assert count_parameters(build_model("convnet5", num_classes=7)) == 1_260_807


# Report 3's ResNet-9: conv_block = Conv2d 3x3 pad 1 -> BatchNorm2d -> ELU [-> MaxPool2d 2];
# per stage: c -> w, w -> w (pool), a residual of two w blocks, dropout 0.5; widths 128, 256,
# 512; classifier MaxPool2d(6), Flatten, Linear(512, classes). Report 3's input is grayscale.


def resnet9_layers(channels: int, classes: int) -> list[tuple]:
    def block(c_in: int, c_out: int) -> list[tuple]:
        return [conv(c_in, c_out), bn2d(c_out), ELU]

    layers: list[tuple] = []
    c_in = channels
    for width in (128, 256, 512):
        layers += block(c_in, width) + block(width, width) + [maxpool(2)]
        layers += block(width, width) + block(width, width) + [("Dropout", 0.5)]
        c_in = width
    return layers + [maxpool(6), FLATTEN, linear(512, classes)]


def resnet9_params(channels: int, classes: int) -> int:
    def block(c_in: int, c_out: int) -> int:
        return conv_params(3, c_in, c_out) + bn_params(c_out)

    total, c_in = 0, channels
    for width in (128, 256, 512):
        total += block(c_in, width) + 3 * block(width, width)
        c_in = width
    return total + linear_params(512, classes)


@pytest.mark.parametrize(("channels", "classes"), [(1, 7), (3, 3)])
def test_resnet9_is_report_3s_network(channels, classes) -> None:
    model = build_model("resnet9", num_classes=classes, in_channels=channels)
    x = torch.zeros(1, channels, 48, 48)
    assert layers_called(model, x) == resnet9_layers(channels, classes)
    assert sides_after(model, x, "MaxPool2d") == [24, 12, 6, 1]
    assert count_parameters(model) == resnet9_params(channels, classes)
    # The residual pair is one module per stage, right after the pooling block.
    residuals = [i for i, m in enumerate(model.features) if type(m).__name__ == "Residual"]
    assert residuals == [2, 6, 10]


def test_resnet9_residuals_add_their_input() -> None:
    torch.manual_seed(0)
    model = build_model("resnet9", num_classes=7, in_channels=1).eval()
    seen = []
    for i in (2, 6, 10):
        model.features[i].register_forward_hook(
            lambda m, inp, out: seen.append((m, inp[0].clone(), out.clone()))
        )
    with torch.no_grad():
        model(torch.randn(2, 1, 48, 48))
        assert [tuple(out.shape[1:]) for _, _, out in seen] == [
            (128, 24, 24),
            (256, 12, 12),
            (512, 6, 6),
        ]
        for residual, inp, out in seen:
            torch.testing.assert_close(out, inp + residual.body(inp))


def test_resnet9_parameter_count_by_hand() -> None:
    # 1 channel, 7 classes: stage 1 (1,536 + 3 * 147,840), stage 2 (295,680 + 3 * 590,592),
    # stage 3 (1,181,184 + 3 * 2,360,832), classifier 3,591.
    assert resnet9_params(1, 7) == 10_779_783
    assert count_parameters(build_model("resnet9", num_classes=7, in_channels=1)) == 10_779_783


# SmallVGG (its docstring): four stages of two bias-free Conv2d 3x3 pad 1 -> BatchNorm2d ->
# ReLU, each ending in MaxPool2d 2 (48 -> 24 -> 12 -> 6 -> 3); widths 32, 64, 128, 256;
# global average pooling, dropout (0.3 by default), Linear 256 -> classes.


def smallvgg_layers(channels: int, classes: int, width: int = 32, p: float = 0.3) -> list[tuple]:
    layers: list[tuple] = []
    c_in = channels
    for w in (width, 2 * width, 4 * width, 8 * width):
        for _ in range(2):
            layers += [conv(c_in, w, bias=False), bn2d(w), RELU]
            c_in = w
        layers.append(maxpool(2))
    return layers + [("AdaptiveAvgPool2d", 1), FLATTEN, ("Dropout", p), linear(8 * width, classes)]


@pytest.mark.parametrize(("channels", "classes", "width"), [(1, 7, 32), (3, 3, 8)])
def test_smallvgg_calls_its_documented_layers(channels, classes, width) -> None:
    model = SmallVGG(num_classes=classes, in_channels=channels, width=width)
    x = torch.zeros(1, channels, 48, 48)
    assert layers_called(model, x) == smallvgg_layers(channels, classes, width)
    assert sides_after(model, x, "MaxPool2d") == [24, 12, 6, 3]
    assert sides_after(model, x, "AdaptiveAvgPool2d") == [1]


def test_smallvgg_flatten_head_reads_each_place_of_the_last_map() -> None:
    torch.manual_seed(0)
    average = SmallVGG(num_classes=5, in_channels=1, width=4).eval()
    flatten = SmallVGG(num_classes=5, in_channels=1, width=4, head="flatten").eval()
    x = torch.zeros(1, 1, 48, 48)
    assert layers_called(flatten, x) == smallvgg_layers(1, 5, 4)[:-4] + [
        FLATTEN,
        ("Dropout", 0.3),
        linear(32 * 9, 5),
    ]
    linear_layer = flatten.classifier[-1]
    assert count_parameters(flatten) == smallvgg_params(1, 5, 4) - linear_params(32, 5) + (
        linear_params(32 * 9, 5)
    )
    fmap = torch.randn(2, 32, 3, 3)
    moved = fmap.flip(2)  # the same features, top and bottom rows swapped
    # Averaging forgets where a feature was; flattening reads the map channel by channel,
    # row by row (what reshape does), one weight per place.
    assert torch.allclose(average.classifier(fmap), average.classifier(moved), atol=1e-5)
    expected = fmap.reshape(2, -1) @ linear_layer.weight.T + linear_layer.bias
    assert torch.allclose(flatten.classifier(fmap), expected, atol=1e-5)
    assert not torch.allclose(flatten.classifier(moved), expected, atol=1e-3)
    with pytest.raises(FerError, match="unknown head 'max'"):
        SmallVGG(head="max")


def test_smallvgg_keeps_nearly_all_parameters_in_convolutions() -> None:
    model = SmallVGG(num_classes=7, in_channels=1)
    convs = sum(
        p.numel() for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()
    )
    # By hand: 9 * (1*32 + 32*32 + 32*64 + 64*64 + 64*128 + 128*128 + 128*256 + 256*256)
    assert convs == 1_170_720
    assert convs / count_parameters(model) > 0.99


# DACL (Report 2): ResNet-18 (here with a 3x3 stride-1 stem for 48x48 faces, its docstring),
# global average pooling, a 7-way classifier; the attention net's context encoder of three
# fully connected layers (3584, 512, 64) with batch norm, ReLU, ReLU, tanh; one linear layer
# 64 -> 2 * 512 of paired scores.


def resnet18_params(channels: int, classes: int, stem_kernel: int = 3) -> int:
    """ResNet-18 by hand: a stem, four stages of two basic blocks, a linear classifier.

    A basic block is two 3x3 bias-free convolutions, each with batch norm; a stage that
    changes the width starts with a block whose shortcut is a 1x1 convolution + batch norm.
    """
    total = stem_kernel * stem_kernel * channels * 64 + bn_params(64)
    c_in = 64
    for width in (64, 128, 256, 512):
        for block in range(2):
            first = c_in if block == 0 else width
            total += 9 * first * width + bn_params(width) + 9 * width * width + bn_params(width)
            if first != width:
                total += first * width + bn_params(width)  # the 1x1 shortcut
        c_in = width
    return total + linear_params(512, classes)


def test_resnet18_formula_gives_the_published_count() -> None:
    # torchvision's documented ResNet-18 (7x7 stem, 1000 classes): 11,689,512 parameters.
    assert resnet18_params(3, 1000, stem_kernel=7) == 11_689_512


@pytest.mark.parametrize(
    ("maxpool_on", "sides"), [(True, [48, 24, 24, 12, 6, 3]), (False, [48, 48, 24, 12, 6])]
)
def test_resnet18_48_stem_and_sizes(maxpool_on, sides) -> None:
    from fer_helpers.models import resnet18_48

    model = resnet18_48(num_classes=7, channels=1, maxpool=maxpool_on)
    assert describe(model.conv1) == conv(1, 64, k=3, stride=1, pad=1, bias=False)
    if maxpool_on:
        assert describe(model.maxpool) == maxpool(3, stride=2, pad=1)  # torchvision's, kept
    else:
        assert isinstance(model.maxpool, nn.Identity)
    assert describe(model.fc) == linear(512, 7)
    assert count_parameters(model) == resnet18_params(1, 7)
    shapes = {}
    names = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    for name in names:
        getattr(model, name).register_forward_hook(
            lambda m, i, out, name=name: shapes.__setitem__(name, tuple(out.shape))
        )
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
    # The docstring: the blocks see 24, 24, 12, 6, 3 pixels (48, 48, 24, 12, 6 without the pool).
    assert [shapes[n][-1] for n in names[:-1] if n != "maxpool" or maxpool_on] == sides
    assert [shapes[n][1] for n in ("layer1", "layer2", "layer3", "layer4")] == [64, 128, 256, 512]
    assert shapes["avgpool"] == (1, 512, 1, 1)


def attention_layers(in_features: int) -> list[tuple]:
    return [
        linear(in_features, 3584),
        bn1d(3584),
        RELU,
        linear(3584, 512),
        bn1d(512),
        RELU,
        linear(512, 64),
        bn1d(64),
        ("Tanh",),
        linear(64, 2 * 512),
    ]


def attention_params(in_features: int) -> int:
    widths = [in_features, 3584, 512, 64]
    encoder = sum(linear_params(a, b) + bn_params(b) for a, b in zip(widths, widths[1:]))
    return encoder + linear_params(64, 1024)


@pytest.fixture(scope="module")
def dacl_net():
    from fer_helpers.models import DACLNet

    torch.manual_seed(0)
    return DACLNet(num_classes=7, in_channels=3).eval()


def test_dacl_net_is_report_2s_network(dacl_net) -> None:
    model = dacl_net
    assert isinstance(model, MODELS["dacl"])
    # The backbone: ResNet-18 up to its last residual stage (no pooling, no classifier).
    assert [name for name, _ in model.backbone.named_children()] == [str(i) for i in range(8)]
    stem = list(model.backbone.children())[:4]
    assert [describe(m) for m in stem] == [
        conv(3, 64, k=3, stride=1, pad=1, bias=False),
        bn2d(64),
        RELU,
        maxpool(3, stride=2, pad=1),
    ]
    assert model.map_shape == (1, 512, 3, 3)
    assert describe(model.pool) == ("AdaptiveAvgPool2d", 1)
    assert describe(model.fc) == linear(512, 7)
    attention = [describe(m) for m in model.attention.modules() if not list(m.children())]
    assert attention == attention_layers(512 * 3 * 3)
    assert count_parameters(model.attention) == attention_params(4608)
    assert count_parameters(model) == resnet18_params(3, 7) + attention_params(4608)


def test_dacl_net_features_logits_and_attention_by_hand(dacl_net) -> None:
    model = dacl_net
    torch.manual_seed(1)
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        logits, features, attention = model(x)
        feature_map = model.backbone(x)
        assert feature_map.shape == (3, 512, 3, 3)
        # Features: the global average of each of the 512 channels; logits: fc of them.
        torch.testing.assert_close(features, feature_map.mean(dim=(2, 3)))
        torch.testing.assert_close(logits, model.fc(feature_map.mean(dim=(2, 3))))
        # Attention: a two-way softmax per feature j over scores 2j and 2j+1, i.e. the
        # sigmoid of their difference, from the heads on the encoded flattened map.
        scores = model.attention.heads(model.attention.encoder(feature_map.flatten(1)))
        assert scores.shape == (3, 1024)
        torch.testing.assert_close(attention, torch.sigmoid(scores[:, 1::2] - scores[:, 0::2]))
        # The encoder's output went through tanh last: in (-1, 1).
        context = model.attention.encoder(feature_map.flatten(1))
        assert context.shape == (3, 64) and context.abs().max() < 1


@pytest.mark.parametrize("name", ["convnet5", "resnet9"])
def test_report_models_default_to_seven_classes_of_48_pixel_rgb_faces(name):
    # The reports trained on all seven emotions; the course's faces are 48x48, 3 channels.
    model = MODELS[name]().eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 48, 48)).shape == (2, 7)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 3
