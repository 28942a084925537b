"""Checkers for notebook 09: a forward hook, the most active channels, specificity.

Each checker calls the learner's function on a few cases, recognises the usual
mistakes and says in one sentence what to change.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..features import BLOCKS, specificity
from ..models import SI100FaceNet, input_size
from . import ExerciseError, call, checker, expect_close, passed


@checker
def check_conv1_hook(function: Callable) -> None:
    """capture_conv1(model, x): conv1's output, captured by a forward hook that is removed."""
    # (seed, batch size, options): a second model catches leftovers; the third is the fast
    # recipe's network (width 32, 1 input channel, batch norm after each pooling)
    cases = [(0, 2, {}), (1, 3, {}), (2, 2, FAST_NETWORK)]
    for seed, batch, options in cases:
        model, x = _model_and_batch(seed, batch, **options)
        steps = _manual_forward(model, x)
        runs: list[int] = []
        spy = model.fc2.register_forward_hook(_counter(runs))  # did the whole model run?
        try:
            got = call(function, model, x, name="capture_conv1")
        finally:
            spy.remove()
        _diagnose_capture(got, x, steps)
        if not runs:
            raise ExerciseError(
                "your function never ran the whole model: register the hook on model.conv1, "
                "then call model(x), and the hook catches conv1's output on the way"
            )
        _check_no_hooks_left(model)
    passed("conv1 hook", len(cases))


def _counter(runs: list[int]) -> Callable:
    def hook(*args: object) -> None:
        runs.append(1)

    return hook


FAST_NETWORK = {
    "num_classes": 3,
    "in_channels": 1,
    "width": 32,
    "batch_norm": True,
    "pool_before_norm": True,
}
"""SI100FaceNet's options in the fast recipe (recipes.FAST): 32, 64 and 128 channels."""


def _model_and_batch(seed: int, batch: int, **options: object) -> tuple[nn.Module, torch.Tensor]:
    """An SI100FaceNet (7 classes, the course's width, unless options say otherwise) and a batch."""
    options = {"num_classes": 7, **options}
    with torch.random.fork_rng():  # leave the learner's random state alone
        torch.manual_seed(seed)
        model = SI100FaceNet(**options).eval()
        for module in model.modules():  # batch norm as after training, not the identity
            if isinstance(module, nn.BatchNorm2d):
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.uniform_(module.bias, -0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        side = input_size(model)
        x = torch.rand(batch, model.conv1.in_channels, side, side) * 2 - 1
    return model, x


def _block_steps(model: nn.Module, block: tuple[str, str, str]) -> tuple[str, ...]:
    """A block's layers in the order forward calls them, batch norm included where it has one."""
    conv, pool, act = block
    if not getattr(model, "batch_norm", False):
        return block
    norm = "bn" + conv.removeprefix("conv")
    if getattr(model, "pool_before_norm", False):
        return conv, pool, norm, act
    return conv, norm, pool, act


def _manual_forward(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every step's output, computed by calling the layers one after the other (no hooks)."""
    steps = {"input": x}
    with torch.no_grad():
        for block in BLOCKS:
            for name in _block_steps(model, block):
                x = getattr(model, name)(x)
                steps[name] = x
        steps["the model"] = model(steps["input"])  # its scores
    return steps


def _diagnose_capture(got: object, x: torch.Tensor, steps: dict[str, torch.Tensor]) -> None:
    if isinstance(got, tuple | list):
        if got and isinstance(got[0], torch.Tensor) and _same(got[0], x):
            raise ExerciseError(
                "you kept the hook's `inputs`, a tuple holding the batch that goes INTO conv1; "
                "keep its third argument, `output`"
            )
        raise ExerciseError(f"return one tensor, conv1's output, not a {type(got).__name__}")
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"return conv1's output as a torch tensor, not a {type(got).__name__}")
    if _same(got, steps["conv1"]):
        return
    for name, value in steps.items():
        if _same(got, value):
            where = "the input of conv1" if name == "input" else f"the output of {name}"
            raise ExerciseError(
                f"that is {where}, shape {tuple(value.shape)}: register a forward hook "
                "(register_forward_hook) on model.conv1 and keep its `output`"
            )
    want = tuple(steps["conv1"].shape)
    if tuple(got.shape) != want:
        raise ExerciseError(f"expected conv1's output, shape {want}, got shape {tuple(got.shape)}")
    raise ExerciseError(
        "your tensor has the shape of conv1's output but not its values: keep the hook's "
        "`output` as it is"
    )


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().cpu(), b, atol=1e-5)


def _check_no_hooks_left(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            raise ExerciseError(
                f"a hook is still registered on {name or 'the model'}: keep the handle that "
                "register_forward_hook returns and call handle.remove() after the forward "
                "pass, or every later forward pass goes on capturing"
            )


# Feature maps (C, H, W) = (6, 4, 5) on which the usual mistakes give different channels.
_MAPS = torch.linspace(-1.0, 2.0, 6 * 4 * 5).reshape(6, 4, 5).flip(0)[[3, 0, 5, 1, 4, 2]]
_MAPS[5, 0, 0] = 9.0  # one very bright pixel: the largest maximum, not the largest mean


@checker
def check_top_channels(function: Callable) -> None:
    """top_channels_of_image(maps, k): the k channels with the largest mean, largest first."""
    generator = torch.Generator().manual_seed(0)
    cases = [
        (_MAPS, 3),
        (_MAPS, 1),
        (torch.randn(10, 3, 7, generator=generator), 4),
    ]
    for maps, k in cases:
        got = call(function, maps.clone(), k, name="top_channels_of_image")
        got = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got)
        means = maps.mean(dim=(1, 2))
        expected = np.argsort(-means.numpy(), kind="stable")[:k]
        what = f"maps of shape {tuple(maps.shape)}, k={k}"
        if got.shape != expected.shape:
            raise ExerciseError(
                f"{what}: expected {k} channel numbers, got shape {got.shape}; average each "
                "channel over its pixels, dims 1 and 2 of (C, H, W), to get one number per channel"
            )
        _diagnose_top(got, expected, maps, k, what)
    passed("top channels", len(cases))


def _diagnose_top(
    got: np.ndarray, expected: np.ndarray, maps: torch.Tensor, k: int, what: str
) -> None:
    if np.issubdtype(got.dtype, np.floating) and not np.allclose(got, np.round(got)):
        raise ExerciseError(
            f"{what}: return channel numbers (indices, e.g. torch.topk(...).indices), "
            "not the mean activations"
        )
    got = got.astype(np.int64)
    if np.array_equal(got, expected):
        return
    means = maps.mean(dim=(1, 2)).numpy()
    hints = [
        (np.argsort(means, kind="stable")[:k], "those are the channels with the SMALLEST mean"),
        (
            np.argsort(-maps.amax(dim=(1, 2)).numpy(), kind="stable")[:k],
            "you ranked by each channel's brightest pixel; rank by the mean over all its pixels",
        ),
        (
            np.argsort(-maps.mean(dim=(0, 1)).numpy(), kind="stable")[:k],
            "you averaged over the channels and rows (dims 0 and 1); average over the pixels, "
            "dims 1 and 2, to get one number per channel",
        ),
        (
            np.argsort(-maps.mean(dim=(0, 2)).numpy(), kind="stable")[:k],
            "you averaged over the channels and columns (dims 0 and 2); average over the "
            "pixels, dims 1 and 2, to get one number per channel",
        ),
    ]
    for wrong, hint in hints:
        if np.array_equal(got, wrong):
            raise ExerciseError(f"{what}: {hint}")
    if sorted(got.tolist()) == sorted(expected.tolist()):
        raise ExerciseError(
            f"{what}: the right channels in the wrong order; put the largest mean first"
        )
    raise ExerciseError(f"{what}: expected channels {expected.tolist()}, got {got.tolist()}")


_RESPONSE = np.array([[1.0, 2.0, 0.5, 4.0], [3.0, 6.0, 0.0, 1.0], [5.0, 4.0, 2.5, 1.0]])


@checker
def check_specificity(function: Callable) -> None:
    """specificity_by_hand(response): mean for the class minus the mean over the other classes."""
    rng = np.random.default_rng(0)
    cases = [_RESPONSE, rng.normal(size=(7, 5)), np.array([[1.0, 3.0], [2.0, 0.0]])]
    for response in cases:
        got = np.asarray(call(function, response.copy(), name="specificity_by_hand"), dtype=float)
        expected = specificity(response)
        what = f"specificity of a {response.shape[0]}x{response.shape[1]} response"
        if got.shape != expected.shape:
            raise ExerciseError(
                f"{what}: expected one value per class and channel, shape {expected.shape}, "
                f"got {got.shape}"
            )
        if not np.allclose(got, expected):
            _diagnose_specificity(response, got, what)
        expect_close(got, expected, what)
    passed("specificity", len(cases))


def _diagnose_specificity(response: np.ndarray, got: np.ndarray, what: str) -> None:
    k = response.shape[0]
    others_sum = response.sum(axis=0, keepdims=True) - response
    hints = [
        (
            response - response.mean(axis=0, keepdims=True),
            "you subtracted the mean over ALL classes, this one included; subtract the mean "
            "over the OTHER classes",
        ),
        (
            response - response.mean(axis=1, keepdims=True),
            "you averaged over the channels (axis 1); average the same channel over the other "
            "classes (axis 0)",
        ),
        (
            response - others_sum,
            f"you subtracted the others' sum; divide it by their number, k - 1 = {k - 1}",
        ),
        (
            others_sum / (k - 1) - response,
            "the sign is upside down: this class's mean minus the others' mean",
        ),
    ]
    for wrong, hint in hints:
        if np.allclose(got, wrong):
            raise ExerciseError(f"{what}: {hint}")
