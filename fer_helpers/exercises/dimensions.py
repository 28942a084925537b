"""Checkers for notebooks 04 and 05: output sizes, the shape trace, receptive fields (04);
parameter counts, SI100FaceNet (05).

Each checker calls the learner's code on a few cases and compares with PyTorch
itself (layers built on the "meta" device, which works out shapes without
computing anything), or with fer_helpers.models.SI100FaceNet. On a wrong answer
it raises ExerciseError with one sentence naming the usual cause (a forgotten
+ 1 or bias, padding on one side only, rounding up, the layers in another
order, ...). A NotDoneYet from an unfinished exercise passes through untouched.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import torch
from torch import nn

from ..models import SI100FaceNet, parameters_per_layer
from . import ExerciseError, NotDoneYet, call, checker, passed
from .references import (
    Shape,
    _measured_receptive_fields,
    _reference_trace,
    _torch_conv_size,
    _torch_pool_size,
)
from .references import printed_trace as printed_trace  # where notebooks 04, 05 and 11 find it

STEPS = (
    "input", "conv1", "pool1", "act1",
    "conv2", "pool2", "act2",
    "conv3", "pool3", "act3",
    "flatten", "fc1", "act4", "fc2",
)  # fmt: skip
"""The steps SI100FaceNet's print toggle shows, in order."""

LAYERS = tuple(step for step in STEPS if step not in ("input", "flatten"))
"""SI100FaceNet's layers (attributes), in the order forward calls them."""


def _whole_number(value: Any, what: str) -> int:
    """The learner's answer as an int; a float or anything else gets a clear message."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        hint = (
            " (divide with //: sizes and counts are whole numbers)"
            if isinstance(value, float)
            else ""
        )
        raise ExerciseError(
            f"{what} returned {value!r}, a {type(value).__name__}: expected an int{hint}"
        )
    return int(value)


def _first_match(got: int, mistakes: Sequence[tuple[int, str]]) -> str | None:
    """The hint of the first typical mistake whose result equals the learner's."""
    return next((hint for value, hint in mistakes if value == got), None)


# --- output sizes ----------------------------------------------------------------------------


@checker
def check_conv_output_size(conv_output_size: Callable[[int, int, int, int], int]) -> None:
    """Check conv_output_size(size, kernel, padding, stride) against nn.Conv2d's output."""
    cases = [
        (48, 5, 2, 1), (48, 3, 1, 1), (48, 3, 0, 1), (48, 3, 1, 2),
        (7, 3, 0, 2), (48, 4, 1, 2), (10, 3, 1, 3), (25, 5, 1, 3),
    ]  # fmt: skip
    for i, k, p, s in cases:
        what = f"conv_output_size({i}, kernel={k}, padding={p}, stride={s})"
        got = _whole_number(call(conv_output_size, i, k, p, s, name="conv_output_size"), what)
        expected = _torch_conv_size(i, k, p, s)
        if got == expected:
            continue
        hint = _first_match(
            got,
            [
                # Checked first: with stride 1 it is right, so a learner who got here has a + 1.
                ((i + 2 * p - k + 1) // s, "add the 1 after dividing by the stride"),
                ((i + 2 * p - k) // s, "you forgot the + 1 (a kernel that fits once gives 1)"),
                ((i + p - k) // s + 1, "padding is added on both sides: + 2*padding"),
                ((i - k) // s + 1, "you left out the padding: + 2*padding"),
                (math.ceil((i + 2 * p - k) / s) + 1, "round down (//): a last step that does "
                 "not fit is dropped"),
                (round((i + 2 * p - k) / s) + 1, "round down (//), do not round to nearest"),
                (i + 2 * p - k + 1, "divide by the stride"),
            ],
        )  # fmt: skip
        formula = "out = floor((in + 2*padding - kernel) / stride) + 1"
        raise ExerciseError(f"{what} gave {got}, expected {expected}: {hint or formula}")
    passed("conv_output_size", len(cases))


@checker
def check_pool_output_size(pool_output_size: Callable[..., int]) -> None:
    """Check pool_output_size(size, kernel, stride=None) against nn.MaxPool2d's output."""
    cases = [(48, 2), (24, 2), (12, 2), (25, 2), (48, 3), (7, 3), (48, 2, 1), (48, 3, 2)]
    default_hint = "stride=None means stride = kernel, as in nn.MaxPool2d(kernel_size)"
    for args in cases:
        size, kernel, stride = (*args, None)[:3]
        what = f"pool_output_size{args}"
        try:
            got = call(pool_output_size, *args, name="pool_output_size")
        except TypeError as error:
            if stride is None:
                raise ExerciseError(f"{what} raised TypeError ({error}): {default_hint}") from None
            raise
        got = _whole_number(got, what)
        expected = _torch_pool_size(size, kernel, stride)
        if got == expected:
            continue
        step = stride or kernel
        hint = _first_match(
            got,
            [
                ((size - kernel) // step, "you forgot the + 1"),
                (size - kernel + 1, default_hint if stride is None else "divide by the stride"),
                (math.ceil((size - kernel) / step) + 1, "round down (//): a window that does "
                 "not fit is dropped"),
                (size // kernel, "use the stride you were given"),
                (size // 2, "not every pooling halves: use the kernel and the stride"),
            ],
        )  # fmt: skip
        formula = "pooling has no padding: out = floor((in - kernel) / stride) + 1"
        raise ExerciseError(f"{what} gave {got}, expected {expected}: {hint or formula}")
    passed("pool_output_size", len(cases))


# --- the shape trace -------------------------------------------------------------------------


def _as_shapes(result: Any, what: str) -> list[Shape]:
    try:
        return [tuple(int(n) for n in shape) for shape in result]
    except (TypeError, ValueError):
        raise ExerciseError(
            f"{what} should return a list of shapes, one tuple of ints per step, "
            "like [(1, 3, 48, 48), (1, 64, 48, 48), ...]"
        ) from None


_LEFT_OUT = {
    "the input": {0},
    "the LeakyReLU steps act1..act4 (they keep the shape)": {3, 6, 9, 12},
    "flatten": {10},
}


def _diagnose_length(got: list[Shape], expected: list[Shape], what: str) -> None:
    for n in range(1, len(_LEFT_OUT) + 1):
        for groups in itertools.combinations(_LEFT_OUT, n):
            dropped = set().union(*(_LEFT_OUT[g] for g in groups))
            if got == [s for i, s in enumerate(expected) if i not in dropped]:
                raise ExerciseError(
                    f"{what} leaves out {' and '.join(groups)}: give one shape per step, "
                    f"{', '.join(STEPS)}"
                )
    raise ExerciseError(
        f"{what} returned {len(got)} shapes; expected {len(expected)}, one per step: "
        f"{', '.join(STEPS)}"
    )


def _diagnose_step(got: Shape, expected: Shape, step: str, what: str, side: int) -> None:
    prefix = f"{what}: after {step} expected {expected}, got {got}"
    if got == expected[1:]:
        raise ExerciseError(f"{prefix}: keep the batch size first")
    if len(got) == 4 and got == (expected[0], expected[2], expected[3], expected[1]):
        raise ExerciseError(
            f"{prefix}: PyTorch orders (batch, channels, height, width), channels before height"
        )
    if step == "fc2":
        raise ExerciseError(f"{prefix}: fc2 gives one score per class (num_classes)")
    near = len(got) == len(expected) == 4 and abs(got[-1] - expected[-1]) == 1
    if side % 8 and (near or step == "flatten"):
        raise ExerciseError(f"{prefix}: pooling an odd size rounds down (//)")
    raise ExerciseError(prefix)


@checker
def check_shape_trace(shape_trace: Callable[..., Sequence[Sequence[int]]]) -> None:
    """Check shape_trace(batch, side, num_classes=3) -> one shape per step of SI100FaceNet."""
    cases = [(1, 48), (32, 48), (2, 64), (1, 50), (4, 48, 7), (1, 44)]
    for args in cases:
        batch, side, num_classes = (*args, 3)[:3]
        what = f"shape_trace{args}"
        got = _as_shapes(call(shape_trace, *args, name="shape_trace"), what)
        expected = _reference_trace(batch, side, num_classes)
        if side != 48 and got == _reference_trace(batch, 48, num_classes):
            raise ExerciseError(f"{what} gave the shapes for 48x48: work every size out from side")
        if len(got) != len(expected):
            _diagnose_length(got, expected, what)
        for step, got_shape, expected_shape in zip(STEPS, got, expected, strict=True):
            if got_shape != expected_shape:
                _diagnose_step(got_shape, expected_shape, step, what, side)
    passed("shape_trace", len(cases))


# --- receptive fields ------------------------------------------------------------------------


def _formula_mistakes(layers: list[tuple[int, int]]) -> list[tuple[list[int], str]]:
    """What the usual slips of r_l = r_(l-1) + (k_l - 1) * j_(l-1), j_l = j_(l-1) * s_l give."""

    def run(jump_after: bool, use_jump: bool, start: int) -> list[int]:
        r, j, out = start, 1, []
        for k, s in layers:
            if jump_after:
                j *= s
            r += (k - 1) * (j if use_jump else 1)
            if not jump_after:
                j *= s
            out.append(r)
        return out

    return [
        (
            run(False, False, 1),
            "multiply (k - 1) by the jump j, the input pixels between two "
            "neighbouring positions of the layer before (1, then 2 after a stride-2 pooling, ...)",
        ),
        (
            run(True, True, 1),
            "use the jump of the layer before, j_(l-1), then update "
            "j_l = j_(l-1) * s_l after adding",
        ),
        (run(False, True, 0), "start from r_0 = 1: one input pixel sees itself"),
        (
            list(itertools.accumulate(k for k, _ in layers)),
            "a layer adds k - 1 (times the jump), not k: neighbouring windows overlap",
        ),
    ]


@checker
def check_receptive_fields(
    receptive_fields: Callable[[list[tuple[int, int]]], Sequence[int]],
) -> None:
    """Check receptive_fields([(kernel, stride), ...]) against sizes measured with autograd."""
    si100 = [(3, 1), (2, 2)] * 3
    cases = [si100, [(3, 1)] * 3, [(2, 2)] * 4, [(7, 2), (3, 2), (3, 1)], [(5, 1), (3, 3)],
             [(1, 1)]]  # fmt: skip
    for layers in cases:
        what = f"receptive_fields({layers})"
        result = call(receptive_fields, [tuple(layer) for layer in layers], name="receptive_fields")
        try:
            got = [_whole_number(r, what) for r in result]
        except TypeError:
            raise ExerciseError(
                f"{what} should return a list of ints, one receptive field per layer"
            ) from None
        expected = _measured_receptive_fields(layers)
        if got == expected:
            continue
        if len(got) != len(expected):
            raise ExerciseError(
                f"{what} returned {len(got)} sizes: expected {len(expected)}, one per layer"
            )
        hint = next((h for wrong, h in _formula_mistakes(layers) if wrong == got), None)
        formula = "r_l = r_(l-1) + (k_l - 1) * j_(l-1) and j_l = j_(l-1) * s_l, from r_0 = j_0 = 1"
        raise ExerciseError(f"{what} gave {got}, expected {expected}: {hint or formula}")
    passed("receptive_fields", len(cases))


# --- parameter counts ------------------------------------------------------------------------


def _numel(layer: nn.Module) -> int:
    return sum(p.numel() for p in layer.parameters())


@checker
def check_conv_params(conv_params: Callable[[int, int, int], int]) -> None:
    """Check conv_params(in_channels, out_channels, kernel_size) against nn.Conv2d."""
    cases = [(64, 128, 3), (3, 64, 3), (128, 256, 3), (1, 64, 3), (3, 8, 5), (16, 4, 1)]
    for c_in, c_out, k in cases:
        what = f"conv_params({c_in}, {c_out}, kernel_size={k})"
        got = _whole_number(call(conv_params, c_in, c_out, k, name="conv_params"), what)
        expected = _numel(nn.Conv2d(c_in, c_out, k, device="meta"))
        if got == expected:
            continue
        hint = _first_match(
            got,
            [
                (k * k * c_in * c_out, "you forgot the biases, one per output channel"),
                (k * k * c_in * c_out + c_in, "one bias per output channel, not per input"),
                (k * c_in * c_out + c_out, "a kernel is k x k: k*k weights per input channel"),
                (k * k * c_out + c_out, "each filter spans every input channel: "
                 "multiply by in_channels"),
            ],
        )  # fmt: skip
        formula = "k*k*C_in*C_out weights + C_out biases"
        raise ExerciseError(f"{what} gave {got}, expected {expected}: {hint or formula}")
    passed("conv_params", len(cases))


@checker
def check_linear_params(linear_params: Callable[[int, int], int]) -> None:
    """Check linear_params(in_features, out_features) against nn.Linear."""
    cases = [(9216, 256), (256, 3), (256, 7), (10, 1), (1, 5)]
    for n_in, n_out in cases:
        what = f"linear_params({n_in}, {n_out})"
        got = _whole_number(call(linear_params, n_in, n_out, name="linear_params"), what)
        expected = _numel(nn.Linear(n_in, n_out, device="meta"))
        if got == expected:
            continue
        hint = _first_match(
            got,
            [
                (n_in * n_out, "you forgot the biases, one per output"),
                (n_in * n_out + n_in, "one bias per output, not per input"),
                (n_in + n_out, "every input connects to every output: in*out weights"),
            ],
        )
        formula = "in*out weights + out biases"
        raise ExerciseError(f"{what} gave {got}, expected {expected}: {hint or formula}")
    passed("linear_params", len(cases))


# --- SI100FaceNet written by hand ------------------------------------------------------------

_SETTINGS: dict[type, tuple[str, ...]] = {
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                "groups", "padding_mode"),
    nn.MaxPool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    nn.LeakyReLU: ("negative_slope",),
    nn.Linear: ("in_features", "out_features"),
}  # fmt: skip
_ALLOWED_EXTRA = (nn.Flatten,)  # nn.Flatten() is torch.flatten(x, start_dim=1) as a layer


def _build(model_class: Callable[..., nn.Module], num_classes: int) -> nn.Module:
    what = f"{getattr(model_class, '__name__', 'your class')}(num_classes={num_classes})"
    try:
        model = model_class(num_classes=num_classes)
    except NotDoneYet:
        raise
    except Exception as error:
        hint = ""
        if "num_classes" in str(error):
            hint = ": give __init__ a num_classes parameter"
        elif "before Module.__init__" in str(error):
            hint = ": call super().__init__() first thing in __init__"
        raise ExerciseError(f"{what} raised {type(error).__name__}: {error}{hint}") from None
    if not isinstance(model, nn.Module):
        raise ExerciseError(f"{what} is not an nn.Module: write class MySI100FaceNet(nn.Module)")
    return model


def _setting(layer: nn.Module, name: str) -> Any:
    """A layer's setting in one form: 3 for kernel_size=3 or (3, 3); 'same' padding as a number."""
    value = getattr(layer, name)
    if name == "padding" and value == "same":  # keeps the size: (k - 1) // 2 each side, odd k
        value = tuple(d * (k - 1) // 2 for d, k in zip(layer.dilation, layer.kernel_size))
    if isinstance(value, tuple) and len(set(value)) == 1:
        value = value[0]
    return value


def _setting_message(name: str, setting: str, got: Any, expected: Any, reference: nn.Module) -> str:
    if name == "fc1" and setting == "in_features":
        channels, side = reference.conv3.out_channels, reference.input_size // 8
        return (
            f"fc1 expects {got} inputs but the flattened tensor has {expected} "
            f"({channels} channels x {side} x {side} after three poolings)"
        )
    if setting == "in_features":
        return f"{name} expects {got} inputs but the layer before gives {expected}"
    if name == "fc2" and setting == "out_features":
        return f"fc2 has {got} outputs but the network gives one score per class: {expected}"
    return f"{name} has {setting} {got!r} but the course's network uses {expected!r}"


def _course_layers(reference: SI100FaceNet) -> list[tuple[str, nn.Module]]:
    """SI100FaceNet's layers in order, without the fast recipe's options (bn1..bn3, drop1,
    drop2), which are switched off by default: nn.Identity and nn.Dropout(0.0)."""
    return [(name, layer) for name, layer in reference.named_children() if name in LAYERS]


def _off(layer: nn.Module) -> bool:
    """A layer that computes nothing, as SI100FaceNet's options are when switched off."""
    return isinstance(layer, nn.Identity) or (isinstance(layer, nn.Dropout) and layer.p == 0)


def _compare_layers(model: nn.Module, reference: SI100FaceNet) -> int:
    """Same names, types and settings as SI100FaceNet's layers; returns how many were checked."""
    children = dict(model.named_children())
    names = [name for name, _ in _course_layers(reference)]
    for name, expected in _course_layers(reference):
        layer = children.get(name)
        if layer is None:
            if getattr(model, name, None) is not None:
                raise ExerciseError(
                    f"self.{name} is not a layer: assign an nn.Module to it "
                    "(e.g. nn.LeakyReLU(negative_slope=0.01), not F.leaky_relu)"
                )
            raise ExerciseError(
                f"your model has no layer named {name}: name the layers as the course's "
                f"network does, {', '.join(names)}"
            )
        if type(layer) is not type(expected):
            raise ExerciseError(
                f"{name} is a {type(layer).__name__} but the course's network uses "
                f"{type(expected).__name__}"
            )
        for setting in _SETTINGS[type(expected)]:
            got, want = _setting(layer, setting), _setting(expected, setting)
            if got != want:
                raise ExerciseError(_setting_message(name, setting, got, want, reference))
        if getattr(expected, "bias", None) is not None and layer.bias is None:
            raise ExerciseError(f"{name} has no bias but the course's network has one (bias=True)")
    extra = [
        f"{name} ({type(layer).__name__})"
        for name, layer in children.items()
        if name not in names and not isinstance(layer, _ALLOWED_EXTRA) and not _off(layer)
    ]
    if extra:
        raise ExerciseError(
            f"your model has layers the course's network does not: {', '.join(extra)}"
        )
    return len(names)


def _compare_parameter_counts(model: nn.Module, reference: SI100FaceNet) -> None:
    got, expected = dict(parameters_per_layer(model)), dict(parameters_per_layer(reference))
    if got != expected:
        differ = sorted(
            f"{name or 'the model itself'} has {got.get(name, 0):,}, not {expected.get(name, 0):,}"
            for name in set(got) | set(expected)
            if got.get(name, 0) != expected.get(name, 0)
        )
        raise ExerciseError(f"parameter counts differ: {', '.join(differ)}")


def _explain_crash(
    model: nn.Module, called: list[tuple[str, Shape]], finished: list[str], batch: int,
    error: Exception,
) -> str:  # fmt: skip
    failure = f"{type(error).__name__}: {error}"
    if not called:
        return f"forward failed before conv1 ({failure})"
    name, shape = called[-1]
    if len(finished) == len(called):
        return f"forward failed after {name} ({failure})"
    used = {n for n, _ in called}
    skipped = [n for n in LAYERS[: LAYERS.index(name)] if n not in used] if name in LAYERS else []
    note = f"; your forward never used {', '.join(skipped)}" if skipped else ""
    layer = getattr(model, name)
    if isinstance(layer, nn.Linear):
        if len(shape) != 2 or shape[0] != batch:
            return (
                f"{name} got a tensor of shape {shape} for a batch of {batch}: flatten with "
                "torch.flatten(x, start_dim=1), which keeps the batch dimension first"
            )
        source = "the flattened tensor has" if name == "fc1" else "the tensor reaching it has"
        return f"{name} expects {layer.in_features} inputs but {source} {shape[-1]}{note}"
    if isinstance(layer, nn.Conv2d) and len(shape) == 4 and shape[1] != layer.in_channels:
        return (
            f"{name} expects {layer.in_channels} input channels but the tensor reaching it has "
            f"shape {shape}{note}"
        )
    return f"forward failed in {name} ({failure}){note}"


def _run_forward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """The model's output on x and the layers its forward called, in order."""
    called: list[tuple[str, Shape]] = []
    finished: list[str] = []
    hooks = []
    for name, layer in model.named_children():
        hooks.append(
            layer.register_forward_pre_hook(
                lambda _, args, name=name: called.append(
                    (name, tuple(getattr(args[0], "shape", ()) if args else ()))
                )
            )
        )
        hooks.append(layer.register_forward_hook(lambda *_, name=name: finished.append(name)))
    try:
        with torch.no_grad():
            out = model(x)
    except NotDoneYet:
        raise
    except Exception as error:
        message = _explain_crash(model, called, finished, len(x), error)
        raise ExerciseError(message) from None
    finally:
        for hook in hooks:
            hook.remove()
    if not isinstance(out, torch.Tensor):
        raise ExerciseError(f"forward returned {type(out).__name__}: return the scores tensor")
    return out, [name for name, _ in called if name in LAYERS]


def _compare_call_order(calls: list[str]) -> None:
    if calls == list(LAYERS):
        return
    for name in LAYERS:
        if name not in calls:
            raise ExerciseError(f"your forward never uses self.{name}: call it, x = self.{name}(x)")
        if calls.count(name) > 1:
            raise ExerciseError(
                f"your forward uses self.{name} {calls.count(name)} times, not once"
            )
    got, want = next((g, w) for g, w in zip(calls, LAYERS, strict=True) if g != w)
    if got.startswith("act") and want.startswith("pool"):
        raise ExerciseError(
            f"your forward applies LeakyReLU ({got}) before pooling ({want}); the course's "
            "network pools first: conv -> pool -> LeakyReLU. (The scores come out the same, "
            "since max-pooling commutes with an increasing function, but the activation then "
            "runs on four times as many numbers.)"
        )
    raise ExerciseError(
        f"your forward calls {got} where the course's network calls {want}; "
        f"the order is {', '.join(LAYERS)}"
    )


def _compare_outputs(model: nn.Module, reference: SI100FaceNet, x: torch.Tensor) -> None:
    loaded = model.load_state_dict(reference.state_dict(), strict=False)
    if loaded.missing_keys or loaded.unexpected_keys:
        raise ExerciseError(
            f"SI100FaceNet's weights do not fit your model: yours also has "
            f"{loaded.missing_keys}, and lacks {loaded.unexpected_keys}"
        )
    model.eval()
    with torch.no_grad():
        got, expected = model(x), reference.eval()(x)
    if torch.allclose(got, expected, atol=1e-5):
        return
    if torch.allclose(got, expected.softmax(dim=1), atol=1e-5):
        raise ExerciseError(
            "forward returns probabilities (softmax): return the raw scores; "
            "nn.CrossEntropyLoss applies softmax itself"
        )
    difference = (got - expected).abs().max().item()
    raise ExerciseError(
        f"with SI100FaceNet's weights copied in, your scores differ from it by up to "
        f"{difference:.3g}: forward should apply each layer once, in order, and nothing else"
    )


@checker
def check_si100_model(model_class: Callable[..., nn.Module]) -> None:
    """Check a hand-written SI100FaceNet class against fer_helpers.models.SI100FaceNet.

    Builds model_class(num_classes=3), compares each layer's type and settings and
    the parameter counts, runs a random batch (explaining shape errors), checks the
    order in which forward calls the layers, copies SI100FaceNet's weights in and
    compares the scores; finally checks that num_classes=7 sizes fc2.
    """
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers alone
        torch.manual_seed(0)
        reference = SI100FaceNet(num_classes=3)
        model = _build(model_class, 3)
        checks = _compare_layers(model, reference)
        _compare_parameter_counts(model, reference)
        x = torch.randn(2, 3, 48, 48)
        out, calls = _run_forward(model, x)
        if out.shape != (2, 3):
            raise ExerciseError(
                f"forward returned shape {tuple(out.shape)} for a batch of 2 images: "
                "expected (2, 3), one row of 3 scores per image"
            )
        _compare_call_order(calls)
        _compare_outputs(model, reference, x)
        seven = _build(model_class, 7)
        if getattr(getattr(seven, "fc2", None), "out_features", None) != 7:
            raise ExerciseError("with num_classes=7, fc2 must have 7 outputs: use num_classes")
    passed(getattr(model_class, "__name__", "your model"), checks + 5)
