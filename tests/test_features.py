"""Forward hooks capture what a manual forward computes, leave no hook behind, and the
channel statistics and figures show what they say.

References are computed independently: layers called one by one, loops over images
and classes, hand-worked numbers.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from fer_helpers.errors import DataError, FerError
from fer_helpers.features import (
    BLOCK_OUTPUTS,
    BLOCKS,
    CONV_LAYERS,
    capture_activations,
    channel_means,
    channel_response_map,
    class_mean_activations,
    confident_examples,
    conv_layer_names,
    emotion_grid,
    feature_grid,
    record_activations,
    specificity,
    top_channels,
    trace_grid,
)
from fer_helpers.models import SI100FaceNet

matplotlib.use("Agg")
ALL_STEPS = [name for block in BLOCKS for name in block]


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return SI100FaceNet(num_classes=7).eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1


def manual_steps(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every block step, by calling the layers one after the other."""
    steps = {}
    with torch.no_grad():
        for name in ALL_STEPS:
            x = getattr(model, name)(x)
            steps[name] = x
    return steps


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_hooks_capture_what_a_manual_forward_computes(model, x):
    got = capture_activations(model, x, ALL_STEPS)
    expected = manual_steps(model, x)
    assert list(got) == ALL_STEPS
    for name in ALL_STEPS:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
        assert not got[name].requires_grad


def test_conv_outputs_are_48_24_12_and_block_outputs_24_12_6(model, x):
    got = capture_activations(model, x, CONV_LAYERS + BLOCK_OUTPUTS)
    assert [got[n].shape[1:] for n in CONV_LAYERS] == [(64, 48, 48), (128, 24, 24), (256, 12, 12)]
    assert [got[n].shape[1:] for n in BLOCK_OUTPUTS] == [(64, 24, 24), (128, 12, 12), (256, 6, 6)]


def test_hooks_are_removed_after_the_block_and_after_an_error(model, x):
    capture_activations(model, x, ["conv1", "act3"])
    assert no_hooks_left(model)
    with pytest.raises(RuntimeError, match="boom"), record_activations(model, ["conv2"]) as maps:
        assert model.conv2._forward_hooks  # registered while inside
        model(x)
        raise RuntimeError("boom")
    assert maps["conv2"].shape == (3, 128, 24, 24)
    assert no_hooks_left(model)


def test_a_later_in_place_layer_does_not_change_what_was_captured():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True)).eval()
    x = torch.randn(2, 1, 8, 8)
    got = capture_activations(net, x, ["0"])["0"]
    with torch.no_grad():
        expected = net[0](x)
    assert (expected < 0).any()  # the ReLU would have zeroed these in place
    torch.testing.assert_close(got, expected)


def test_a_batch_the_model_does_not_take_is_named_before_any_hook(model):
    with pytest.raises(FerError, match=r"SI100FaceNet takes 48x48 faces, not 64x64"):
        capture_activations(model, torch.zeros(2, 3, 64, 64), ["conv1"])
    with pytest.raises(FerError, match="takes batches of 3-channel faces"):
        capture_activations(model, torch.zeros(2, 1, 48, 48), ["conv1"])
    assert no_hooks_left(model)


def test_an_unknown_layer_is_named_with_the_ones_that_exist(model, x):
    with pytest.raises(FerError, match=r"'conv4'.*conv1, pool1"):
        capture_activations(model, x, ["conv1", "conv4"])
    assert no_hooks_left(model)


def test_conv_layer_names(model):
    assert conv_layer_names(model) == ["conv1", "conv2", "conv3"] == list(CONV_LAYERS)


def test_channel_means_average_over_the_pixels():
    maps = torch.randn(2, 3, 4, 5)
    expected = torch.tensor([[maps[b, c].sum() / 20 for c in range(3)] for b in range(2)])
    torch.testing.assert_close(channel_means(maps), expected)
    torch.testing.assert_close(channel_means(maps[1]), expected[1])


def test_class_mean_activations_match_a_loop_over_images(model):
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(5, 3, 48, 48, generator=generator) * 2 - 1
    y = torch.tensor([0, 2, 0, 2, 2])  # class 1 has no image
    loader = [(x[:3], y[:3]), (x[3:], y[3:])]
    got = class_mean_activations(model, loader, ["act1", "conv3"], num_classes=3)
    steps = manual_steps(model, x)
    for name in ("act1", "conv3"):
        per_image = [steps[name][i].mean(dim=(1, 2)).double().numpy() for i in range(5)]
        assert got[name].shape == (3, steps[name].shape[1])
        np.testing.assert_allclose(got[name][0], (per_image[0] + per_image[2]) / 2, rtol=1e-6)
        np.testing.assert_allclose(
            got[name][2], sum(per_image[i] for i in (1, 3, 4)) / 3, rtol=1e-6
        )
        assert np.isnan(got[name][1]).all()


def test_specificity_on_a_hand_worked_example():
    response = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]])
    # row 0: 1 - (3 + 5) / 2 = -3, 2 - (6 + 4) / 2 = -3; row 1: 3 - 3, 6 - 3; row 2: 5 - 2, 4 - 4
    np.testing.assert_allclose(specificity(response), [[-3, -3], [0, 3], [3, 0]])
    with pytest.raises(ValueError, match="2\\+ classes"):
        specificity(response[:1])


def test_top_channels_by_mean_and_by_specificity():
    # channel 0 is large for every class; channel 1 only for class 0, channel 2 only for class 1
    response = np.array([[10.0, 6.0, 1.0], [10.0, 1.0, 5.0], [10.0, 1.0, 1.0]])
    names = ["a", "b", "c"]
    by_mean = top_channels(response, k=2, by="mean", class_names=names)
    assert list(by_mean.columns) == ["class", "rank", "channel", "mean", "specificity"]
    assert by_mean.query("rank == 1")["channel"].tolist() == [0, 0, 0]
    assert by_mean.query("rank == 2")["channel"].tolist() == [1, 2, 1]  # a tie: the lower channel
    by_specific = top_channels(response, k=1, by="specificity", class_names=names)
    assert by_specific["channel"].tolist() == [1, 2, 0]
    row = by_specific.iloc[0]
    assert (row["class"], row["mean"], row["specificity"]) == ("a", 6.0, 6.0 - 1.0)
    with pytest.raises(ValueError, match="by must be"):
        top_channels(response, by="max", class_names=names)


def test_confident_examples_prefer_a_right_answer_then_fall_back():
    y_true = np.array([0, 0, 1, 1, 2])
    probs = np.array(
        [
            [0.45, 0.55, 0.00],  # class 0, wrong, but the highest P(0)
            [0.40, 0.30, 0.30],  # class 0, right: chosen
            [0.10, 0.50, 0.40],  # class 1, right
            [0.05, 0.90, 0.05],  # class 1, right and surer: chosen
            [0.60, 0.30, 0.10],  # class 2, wrong: the only one, the fallback
        ]
    )
    assert confident_examples(y_true, probs).tolist() == [1, 3, 4]
    with pytest.raises(DataError, match="class 2 has no images"):
        confident_examples(y_true[:4], probs[:4])


def test_feature_grid_shows_each_channel_with_one_scale():
    maps = torch.randn(10, 6, 6)
    fig = feature_grid(maps, channels=[7, 2, 5], columns=2)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(fig.axes) == 4 and len(images) == 3
    for image, channel in zip(images, [7, 2, 5], strict=True):
        np.testing.assert_array_equal(image.get_array(), maps[channel].numpy())
        assert image.get_clim() == (maps[[7, 2, 5]].min().item(), maps[[7, 2, 5]].max().item())
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["#7", "#2", "#5"]
    matplotlib.pyplot.close(fig)


def test_trace_grid_shows_the_most_active_channel_before_and_after_pooling(model, x):
    maps = capture_activations(model, x, CONV_LAYERS + BLOCK_OUTPUTS)
    faces = np.zeros((3, 48, 48), dtype=np.uint8)
    fig = trace_grid(faces, maps, ["a", "b", "c"])
    axes = np.array(fig.axes).reshape(3, 7)
    for row in range(3):
        for block, (conv, _, act) in enumerate(BLOCKS):
            channel = int(maps[act][row].mean(dim=(1, 2)).argmax())
            for col, name in ((1 + 2 * block, conv), (2 + 2 * block, act)):
                shown = axes[row, col].images[0].get_array()
                np.testing.assert_array_equal(shown, maps[name][row, channel].numpy())
    assert [ax.get_title().split("\n")[1] for ax in axes[0]] == [
        "48x48", "48x48", "24x24", "24x24", "12x12", "12x12", "6x6"
    ]  # fmt: skip
    matplotlib.pyplot.close(fig)


def test_emotion_grid_shares_a_scale_down_each_column():
    maps = torch.randn(2, 5, 4, 4)
    fig = emotion_grid(np.zeros((2, 48, 48), np.uint8), maps, [3, 1], ["a", "b"], "t")
    axes = np.array(fig.axes).reshape(2, 3)
    for col, channel in ((1, 3), (2, 1)):
        limits = (maps[:, channel].min().item(), maps[:, channel].max().item())
        for row in range(2):
            assert axes[row, col].images[0].get_clim() == pytest.approx(limits)
            np.testing.assert_array_equal(
                axes[row, col].images[0].get_array(), maps[row, channel].numpy()
            )
    matplotlib.pyplot.close(fig)


def test_emotion_grid_marks_the_diagonal_when_asked():
    maps = torch.randn(2, 5, 4, 4)
    fig = emotion_grid(np.zeros((2, 48, 48), np.uint8), maps, [3, 1], ["a", "b"], "t", True)
    axes = np.array(fig.axes).reshape(2, 3)
    framed = [[axes[r, c].spines["top"].get_linewidth() == 3 for c in (1, 2)] for r in (0, 1)]
    assert framed == [[True, False], [False, True]]
    assert [axes[0, c].get_title() for c in (1, 2)] == ["#3\na", "#1\nb"]
    matplotlib.pyplot.close(fig)


def test_channel_response_map_sorts_channels_by_the_class_they_prefer():
    response = np.array([[1.0, 5.0, 1.0, 2.0], [4.0, 1.0, 1.0, 1.0], [1.0, 1.0, 3.0, 1.0]])
    fig = channel_response_map({"act1": response}, ["a", "b", "c"])
    shown = np.asarray(fig.axes[0].images[0].get_array())
    preferred = shown.argmax(axis=0)
    assert preferred.tolist() == sorted(preferred.tolist())  # class a's channels first
    np.testing.assert_allclose(np.sort(shown, axis=1), np.sort(specificity(response), axis=1))
    matplotlib.pyplot.close(fig)
