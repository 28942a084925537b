"""The checkers of notebook 09 pass right answers and name the mistake in wrong ones.

The right answers are written here independently of the checkers' references;
each wrong answer is a mistake learners make.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_checker_contract

from fer_helpers.exercises import ExerciseError
from fer_helpers.exercises.features import (
    check_conv1_hook,
    check_specificity,
    check_top_channels,
)

# --- right answers ---------------------------------------------------------------------------


def hook_conv1(model, x, layer="conv1", keep=lambda inputs, output: output, remove=True):
    """A forward hook on a layer; the keyword arguments let a test make it wrong."""
    kept = []
    handle = getattr(model, layer).register_forward_hook(
        lambda module, inputs, output: kept.append(keep(inputs, output))
    )
    with torch.no_grad():
        model(x)
    if remove:
        handle.remove()
    return kept[0]


def top_by_sorting(maps, k):
    means = [float(channel.sum()) / channel.numel() for channel in maps]
    return sorted(range(len(means)), key=lambda c: -means[c])[:k]


def specificity_loop(response):
    k, channels = response.shape
    result = np.zeros_like(response)
    for row in range(k):
        for c in range(channels):
            others = [response[j, c] for j in range(k) if j != row]
            result[row, c] = response[row, c] - sum(others) / len(others)
    return result


@pytest.mark.parametrize(
    ("checker", "right", "checks"),
    [
        (check_conv1_hook, hook_conv1, 3),
        (check_top_channels, top_by_sorting, 3),
        (check_specificity, specificity_loop, 3),
    ],
)
def test_checker_passes_a_right_answer_and_lets_a_stub_through(checker, right, checks, capsys):
    assert_checker_contract(checker, right, checks, capsys)


# --- the conv1 hook ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda m, x: hook_conv1(m, x, remove=False), "still registered on conv1.*remove"),
        (lambda m, x: hook_conv1(m, x, layer="act1"), "output of act1"),
        (lambda m, x: hook_conv1(m, x, layer="pool1"), "output of pool1"),
        (lambda m, x: hook_conv1(m, x, layer="conv2"), "output of conv2"),
        (lambda m, x: hook_conv1(m, x, keep=lambda i, o: i), "hook's `inputs`"),
        (lambda m, x: hook_conv1(m, x, keep=lambda i, o: i[0]), "the input of conv1"),
        (lambda m, x: m(x), "output of the model"),
        (lambda m, x: m.conv1(x), "never ran the whole model"),
        (lambda m, x: {"conv1": hook_conv1(m, x)}, "not a dict"),
        (lambda m, x: hook_conv1(m, x) + 1, "not its values"),
    ],
    ids=[
        "not removed",
        "act1",
        "pool1",
        "conv2",
        "inputs tuple",
        "input tensor",
        "scores",
        "no forward",
        "dict",
        "values off",
    ],
)
def test_conv1_hook_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_conv1_hook(wrong)


def test_conv1_checker_tries_the_fast_recipes_network_too():
    seen = []

    def spy(model, x):
        seen.append((model.conv1.out_channels, model.fc1.in_features, model.pool_before_norm))
        return hook_conv1(model, x)

    check_conv1_hook(spy)
    assert (64, 9216, False) in seen  # the course's width
    assert (32, 4608, True) in seen  # the fast recipe's: half as wide, norm after the pooling


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        # right on the course's network, wrong on the fast recipe's: only its case catches them
        (lambda m, x: hook_conv1(m, x, layer="bn1" if m.batch_norm else "conv1"), "output of bn1"),
        (
            lambda m, x: hook_conv1(m, x, layer="conv1" if m.conv1.out_channels == 64 else "pool1"),
            "output of pool1",
        ),
    ],
    ids=["bn1 after pool1", "pool1 at width 32"],
)
def test_conv1_hook_mistakes_on_the_fast_network_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_conv1_hook(wrong)


def test_conv1_checker_leaves_the_global_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_conv1_hook(hook_conv1)
    assert torch.equal(torch.rand(3), expected)


# --- top channels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda m, k: torch.topk(m.mean(dim=(1, 2)), k, largest=False).indices, "SMALLEST"),
        (lambda m, k: torch.topk(m.amax(dim=(1, 2)), k).indices, "brightest pixel"),
        (lambda m, k: torch.topk(m.mean(dim=(0, 1)), k).indices, "dims 0 and 1"),
        (lambda m, k: torch.topk(m.mean(dim=(0, 2)), k).indices, "dims 0 and 2"),
        (lambda m, k: torch.topk(m.mean(dim=0), k).indices, "one number per channel"),
        (lambda m, k: torch.topk(m.mean(dim=(1, 2)), k).values, "not the mean activations"),
        (lambda m, k: torch.topk(m.mean(dim=(1, 2)), k).indices.flip(0), "wrong order"),
    ],
    ids=["ascending", "max", "dims 0 1", "dims 0 2", "channels only", "values", "order"],
)
def test_top_channel_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_top_channels(wrong)


def test_top_channels_accepts_lists_arrays_and_tensors():
    check_top_channels(lambda m, k: np.array(top_by_sorting(m, k)))
    check_top_channels(lambda m, k: torch.tensor(top_by_sorting(m, k)))


# --- specificity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda r: r - r.mean(axis=0, keepdims=True), "ALL classes"),
        (lambda r: r - r.mean(axis=1, keepdims=True), "over the channels"),
        (lambda r: r - (r.sum(axis=0) - r), "others' sum"),
        (lambda r: -specificity_loop(r), "sign is upside down"),
        (lambda r: specificity_loop(r).T, "shape"),
        (lambda r: r / ((r.sum(axis=0) - r) / (len(r) - 1)), "expected"),
    ],
    ids=["all classes", "channels", "sum", "sign", "transposed", "ratio"],
)
def test_specificity_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_specificity(wrong)
