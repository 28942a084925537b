"""The checkers of notebooks 04 and 05: each passes a right answer and names the usual mistakes."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fer_helpers.exercises import ExerciseError, NotDoneYet
from fer_helpers.exercises.dimensions import (
    STEPS,
    check_conv_output_size,
    check_conv_params,
    check_linear_params,
    check_pool_output_size,
    check_receptive_fields,
    check_shape_trace,
    check_si100_model,
    printed_trace,
)
from fer_helpers.exercises.references import REFERENCES
from fer_helpers.models import SI100FaceNet

# --- right answers, written here independently of the checkers ---------------------------------


def conv_output_size(size: int, kernel: int, padding: int, stride: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int | None = None) -> int:
    return (size - kernel) // (stride or kernel) + 1


def shape_trace(batch: int, side: int, num_classes: int = 3) -> list[tuple[int, ...]]:
    shapes = [(batch, 3, side, side)]
    for channels in (64, 128, 256):
        shapes.append((batch, channels, side, side))  # 3x3 conv, padding 1: same size
        side //= 2
        shapes += [(batch, channels, side, side)] * 2  # pool, then LeakyReLU
    return shapes + [(batch, 256 * side * side), (batch, 256), (batch, 256), (batch, num_classes)]


def conv_params(c_in: int, c_out: int, kernel: int) -> int:
    return kernel * kernel * c_in * c_out + c_out


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


class Net(nn.Module):
    """SI100FaceNet as a learner would write it."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.act1 = nn.LeakyReLU(negative_slope=0.01)
        self.conv2 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.act2 = nn.LeakyReLU(negative_slope=0.01)
        self.conv3 = nn.Conv2d(128, 256, kernel_size=3, padding=1)
        self.pool3 = nn.MaxPool2d(2)
        self.act3 = nn.LeakyReLU(negative_slope=0.01)
        self.fc1 = nn.Linear(256 * 6 * 6, 256)
        self.act4 = nn.LeakyReLU(negative_slope=0.01)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.pool1(self.conv1(x)))
        x = self.act2(self.pool2(self.conv2(x)))
        x = self.act3(self.pool3(self.conv3(x)))
        x = torch.flatten(x, start_dim=1)
        return self.fc2(self.act4(self.fc1(x)))


def changed(**layers: Callable[[], nn.Module]) -> type[Net]:
    """Net with some layers replaced (each built by a function, so every instance is new)."""

    class Changed(Net):
        def __init__(self, num_classes: int = 3) -> None:
            super().__init__(num_classes)
            for name, make in layers.items():
                setattr(self, name, make())

    return Changed


def with_forward(forward: Callable[[Net, torch.Tensor], torch.Tensor]) -> type[Net]:
    return type("Changed", (Net,), {"forward": forward})


# --- output sizes ------------------------------------------------------------------------------


def test_conv_output_size_passes_the_formula(capsys: pytest.CaptureFixture[str]) -> None:
    check_conv_output_size(conv_output_size)
    assert "OK: conv_output_size passed" in capsys.readouterr().out


def test_reference_formula_agrees_with_a_real_convolution() -> None:
    for size, kernel, padding, stride in [(48, 3, 1, 1), (7, 3, 0, 2), (25, 5, 1, 3)]:
        layer = nn.Conv2d(1, 1, kernel, padding=padding, stride=stride)
        out = layer(torch.zeros(1, 1, size, size))
        assert out.shape[-1] == conv_output_size(size, kernel, padding, stride)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda i, k, p, s: (i + 2 * p - k) // s, r"forgot the \+ 1"),
        (lambda i, k, p, s: (i + p - k) // s + 1, "both sides"),
        (lambda i, k, p, s: (i - k) // s + 1, "left out the padding"),
        (lambda i, k, p, s: math.ceil((i + 2 * p - k) / s) + 1, "round down"),
        (lambda i, k, p, s: round((i + 2 * p - k) / s) + 1, "round down"),
        (lambda i, k, p, s: i + 2 * p - k + 1, "divide by the stride"),
        (lambda i, k, p, s: (i + 2 * p - k + 1) // s, "after dividing"),
        (lambda i, k, p, s: (i + 2 * p - k) / s + 1, "a float"),
        (lambda i, k, p, s: i, r"out = floor\(\(in \+ 2\*padding - kernel\) / stride\) \+ 1"),
    ],
)
def test_conv_output_size_names_the_mistake(wrong: Callable, message: str) -> None:
    with pytest.raises(ExerciseError, match=message):
        check_conv_output_size(wrong)


def test_pool_output_size_passes_the_formula(capsys: pytest.CaptureFixture[str]) -> None:
    check_pool_output_size(pool_output_size)
    assert "OK: pool_output_size passed" in capsys.readouterr().out


def pool_stride_one(size: int, kernel: int, stride: int | None = None) -> int:
    return (size - kernel) // (stride or 1) + 1


def pool_no_default(size: int, kernel: int, stride: int | None = None) -> int:
    return (size - kernel) // stride + 1  # type: ignore[operator]


def pool_ceil(size: int, kernel: int, stride: int | None = None) -> int:
    return math.ceil((size - kernel) / (stride or kernel)) + 1


def pool_ignores_stride(size: int, kernel: int, stride: int | None = None) -> int:
    return (size - kernel) // kernel + 1


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (pool_stride_one, r"pool_output_size\(48, 2\) gave 47.*stride=None means stride = kernel"),
        (pool_no_default, r"raised TypeError.*stride=None means stride = kernel"),
        (pool_ceil, r"pool_output_size\(25, 2\) gave 13.*round down"),
        (pool_ignores_stride, r"pool_output_size\(48, 2, 1\) gave 24.*use the stride"),
        (lambda size, kernel, stride=None: size // 2, r"\(48, 3\) gave 24.*not every pooling"),
    ],
)
def test_pool_output_size_names_the_mistake(wrong: Callable, message: str) -> None:
    with pytest.raises(ExerciseError, match=message):
        check_pool_output_size(wrong)


# --- the shape trace ---------------------------------------------------------------------------


def test_printed_trace_matches_the_layers_outputs() -> None:
    model = SI100FaceNet()
    outputs = {}
    for name, layer in model.named_children():
        layer.register_forward_hook(lambda _, __, out, name=name: outputs.update({name: out}))
    trace = printed_trace(model, torch.zeros(2, 3, 48, 48))
    assert [step for step, _ in trace] == list(STEPS)
    for step, shape in trace:
        if step in outputs:
            assert shape == tuple(outputs[step].shape)
    assert trace[0][1] == (2, 3, 48, 48) and trace[-1][1] == (2, 3)
    assert model.print_shapes is False  # the toggle is put back


def test_shape_trace_passes_the_right_trace(capsys: pytest.CaptureFixture[str]) -> None:
    check_shape_trace(shape_trace)
    assert "OK: shape_trace passed" in capsys.readouterr().out


def without(*steps: str) -> Callable:
    return lambda *args: [s for name, s in zip(STEPS, shape_trace(*args)) if name not in steps]


def pool_rounding_up(batch: int, side: int, num_classes: int = 3) -> list[tuple[int, ...]]:
    shapes = [(batch, 3, side, side)]
    for channels in (64, 128, 256):
        shapes.append((batch, channels, side, side))
        side = -(-side // 2)
        shapes += [(batch, channels, side, side)] * 2
    return shapes + [(batch, 256 * side * side), (batch, 256), (batch, 256), (batch, num_classes)]


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (without("input"), "leaves out the input"),
        (without("act1", "act2", "act3", "act4"), "leaves out the LeakyReLU steps"),
        (without("input", "flatten"), "leaves out the input and flatten"),
        (lambda *a: shape_trace(*a)[:5], r"returned 5 shapes; expected 14"),
        (lambda *a: [s[1:] for s in shape_trace(*a)], "keep the batch size first"),
        (
            lambda *a: [(s[0], *s[2:], s[1]) if len(s) == 4 else s for s in shape_trace(*a)],
            r"after input expected \(1, 3, 48, 48\), got \(1, 48, 48, 3\): PyTorch orders",
        ),
        (lambda batch, side, n=3: shape_trace(batch, 48, n), "gave the shapes for 48x48"),
        (lambda batch, side, n=3: shape_trace(batch, side), "fc2 gives one score per class"),
        (pool_rounding_up, r"shape_trace\(1, 50\): after pool2 .*rounds down"),
        (lambda *a: [list(s) for s in shape_trace(*a)[:-1]] + [("x",)], "a list of shapes"),
    ],
)
def test_shape_trace_names_the_mistake(wrong: Callable, message: str) -> None:
    with pytest.raises(ExerciseError, match=message):
        check_shape_trace(wrong)


# --- parameter counts --------------------------------------------------------------------------


def test_parameter_counts_pass_the_formulas(capsys: pytest.CaptureFixture[str]) -> None:
    check_conv_params(conv_params)
    check_linear_params(linear_params)
    out = capsys.readouterr().out
    assert "OK: conv_params passed" in out and "OK: linear_params passed" in out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda ci, co, k: k * k * ci * co, "forgot the biases"),
        (lambda ci, co, k: k * k * ci * co + ci, "per output channel, not per input"),
        (lambda ci, co, k: k * ci * co + co, "k\\*k weights"),
        (lambda ci, co, k: k * k * co + co, "multiply by in_channels"),
        (lambda ci, co, k: float(k * k * ci * co + co), "a float"),
        (lambda ci, co, k: None, "forget `return`"),
    ],
)
def test_conv_params_names_the_mistake(wrong: Callable, message: str) -> None:
    with pytest.raises(ExerciseError, match=message):
        check_conv_params(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda n_in, n_out: n_in * n_out, "forgot the biases"),
        (lambda n_in, n_out: n_in * n_out + n_in, "per output, not per input"),
        (lambda n_in, n_out: n_in + n_out, "in\\*out weights"),
        (lambda n_in, n_out: 2 * n_in * n_out, r"linear_params\(9216, 256\) gave 4718592"),
    ],
)
def test_linear_params_names_the_mistake(wrong: Callable, message: str) -> None:
    with pytest.raises(ExerciseError, match=message):
        check_linear_params(wrong)


# --- SI100FaceNet by hand ----------------------------------------------------------------------


def test_a_right_network_passes(capsys: pytest.CaptureFixture[str]) -> None:
    check_si100_model(Net)
    assert "OK: Net passed all 17 checks" in capsys.readouterr().out


class WithFlattenLayer(Net):
    """Flattening with an nn.Flatten layer and calls nested in one expression: the same net."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__(num_classes)
        self.flatten = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act3(self.pool3(self.conv3(self.act2(self.pool2(self.conv2(
            self.act1(self.pool1(self.conv1(x)))))))))  # fmt: skip
        return self.fc2(self.act4(self.fc1(self.flatten(x))))


def test_equivalent_ways_of_writing_it_pass() -> None:
    check_si100_model(SI100FaceNet)  # the course's own network
    check_si100_model(changed(conv2=lambda: nn.Conv2d(64, 128, (3, 3), padding="same")))
    check_si100_model(WithFlattenLayer)


def test_the_checker_leaves_the_random_numbers_alone() -> None:
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    check_si100_model(Net)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            {"conv2": lambda: nn.Conv2d(64, 128, kernel_size=5, padding=2)},
            "conv2 has kernel_size 5 but the course's network uses 3",
        ),
        ({"conv1": lambda: nn.Conv2d(3, 64, 3)}, "conv1 has padding 0 but .* uses 1"),
        ({"conv1": lambda: nn.Conv2d(1, 64, 3, padding=1)}, "conv1 has in_channels 1 "),
        ({"pool2": lambda: nn.MaxPool2d(2, stride=1)}, "pool2 has stride 1 but .* uses 2"),
        ({"act1": nn.ReLU}, "act1 is a ReLU but the course's network uses LeakyReLU"),
        ({"act2": lambda: nn.LeakyReLU(0.1)}, "act2 has negative_slope 0.1 but .* 0.01"),
        (
            {"fc1": lambda: nn.Linear(4608, 256)},
            "fc1 expects 4608 inputs but the flattened tensor has 9216 "
            r"\(256 channels x 6 x 6 after three poolings\)",
        ),
        ({"fc1": lambda: nn.Linear(9216, 128)}, "fc1 has out_features 128 but .* uses 256"),
        ({"fc2": lambda: nn.Linear(256, 7)}, "fc2 has 7 outputs but .* one score per class: 3"),
        ({"conv3": lambda: nn.Conv2d(128, 256, 3, padding=1, bias=False)}, "conv3 has no bias"),
        ({"bn1": lambda: nn.BatchNorm2d(64)}, "layers the course's network does not: bn1"),
        ({"drop": lambda: nn.Dropout(0.5)}, r"does not: drop \(Dropout\)"),
    ],
)
def test_wrong_layers_are_named(layers: dict, message: str) -> None:
    with pytest.raises(ExerciseError, match=message):
        check_si100_model(changed(**layers))


def test_a_layer_under_another_name_is_missing() -> None:
    class Renamed(Net):
        def __init__(self, num_classes: int = 3) -> None:
            super().__init__(num_classes)
            self.relu1 = self.act1
            del self.act1

    with pytest.raises(ExerciseError, match="no layer named act1: name the layers"):
        check_si100_model(Renamed)


def test_a_function_in_place_of_a_layer_is_explained() -> None:
    class Functional(Net):
        def __init__(self, num_classes: int = 3) -> None:
            super().__init__(num_classes)
            del self.act4
            self.act4 = F.leaky_relu

    with pytest.raises(ExerciseError, match="self.act4 is not a layer"):
        check_si100_model(Functional)


def test_fc2_must_follow_num_classes() -> None:
    with pytest.raises(ExerciseError, match="num_classes=7, fc2 must have 7 outputs"):
        check_si100_model(changed(fc2=lambda: nn.Linear(256, 3)))


def act_before_pool(self: Net, x: torch.Tensor) -> torch.Tensor:
    x = self.pool1(self.act1(self.conv1(x)))
    x = self.act2(self.pool2(self.conv2(x)))
    x = self.act3(self.pool3(self.conv3(x)))
    return self.fc2(self.act4(self.fc1(torch.flatten(x, start_dim=1))))


def skip_pool3(self: Net, x: torch.Tensor) -> torch.Tensor:
    x = self.act1(self.pool1(self.conv1(x)))
    x = self.act2(self.pool2(self.conv2(x)))
    x = self.act3(self.conv3(x))
    return self.fc2(self.act4(self.fc1(torch.flatten(x, start_dim=1))))


def skip_conv2(self: Net, x: torch.Tensor) -> torch.Tensor:
    x = self.act1(self.pool1(self.conv1(x)))
    x = self.act2(self.pool2(x))
    return self.fc2(self.act4(self.fc1(torch.flatten(self.act3(self.pool3(self.conv3(x)))))))


def flatten_everything(self: Net, x: torch.Tensor) -> torch.Tensor:
    x = self.act1(self.pool1(self.conv1(x)))
    x = self.act2(self.pool2(self.conv2(x)))
    x = self.act3(self.pool3(self.conv3(x)))
    return self.fc2(self.act4(self.fc1(torch.flatten(x))))


def no_act4(self: Net, x: torch.Tensor) -> torch.Tensor:
    x = self.act1(self.pool1(self.conv1(x)))
    x = self.act2(self.pool2(self.conv2(x)))
    x = self.act3(self.pool3(self.conv3(x)))
    return self.fc2(self.fc1(torch.flatten(x, start_dim=1)))


def act1_twice(self: Net, x: torch.Tensor) -> torch.Tensor:
    return Net.forward(self, self.act1(x))


def extra_relu(self: Net, x: torch.Tensor) -> torch.Tensor:
    x = F.relu(self.act1(self.pool1(self.conv1(x))))
    x = self.act2(self.pool2(self.conv2(x)))
    x = self.act3(self.pool3(self.conv3(x)))
    return self.fc2(self.act4(self.fc1(torch.flatten(x, start_dim=1))))


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        (act_before_pool, r"applies LeakyReLU \(act1\) before pooling \(pool1\)"),
        (
            skip_pool3,
            "fc1 expects 9216 inputs but the flattened tensor has 36864; "
            "your forward never used pool3",
        ),
        (
            skip_conv2,
            r"conv3 expects 128 input channels but the tensor reaching it has shape "
            r"\(2, 64, 12, 12\); your forward never used conv2",
        ),
        (flatten_everything, r"fc1 got a tensor of shape \(18432,\) .* start_dim=1"),
        (no_act4, "never uses self.act4"),
        (act1_twice, "uses self.act1 2 times"),
        (lambda self, x: Net.forward(self, x).softmax(dim=1), "returns probabilities"),
        (lambda self, x: Net.forward(self, x)[:1], r"returned shape \(1, 3\) for a batch of 2"),
        (extra_relu, "scores differ from it by up to"),
        (lambda self, x: Net.forward(self, x).tolist(), "forward returned list"),
    ],
)
def test_wrong_forward_is_explained(forward: Callable, message: str) -> None:
    with pytest.raises(ExerciseError, match=message):
        check_si100_model(with_forward(forward))


def test_leaky_relu_before_pooling_gives_the_same_scores_as_the_message_says() -> None:
    right, swapped = Net(), with_forward(act_before_pool)()
    swapped.load_state_dict(right.state_dict())
    x = torch.randn(4, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(right(x), swapped(x), atol=1e-6)


def test_building_failures_are_explained() -> None:
    class NoNumClasses(nn.Module):
        def __init__(self) -> None:
            super().__init__()

    class NoSuper(nn.Module):
        def __init__(self, num_classes: int = 3) -> None:
            self.conv1 = nn.Conv2d(3, 64, 3, padding=1)

    with pytest.raises(ExerciseError, match="give __init__ a num_classes parameter"):
        check_si100_model(NoNumClasses)
    with pytest.raises(ExerciseError, match=r"call super\(\).__init__\(\) first"):
        check_si100_model(NoSuper)
    with pytest.raises(ExerciseError, match="is not an nn.Module"):
        check_si100_model(lambda num_classes: "a model")


def not_done(*args: object, **kwargs: object) -> None:
    raise NotDoneYet("this exercise")


@pytest.mark.parametrize(
    "checker",
    [
        check_conv_output_size,
        check_pool_output_size,
        check_shape_trace,
        check_receptive_fields,
        check_conv_params,
        check_linear_params,
        check_si100_model,
    ],
)
def test_an_unfinished_exercise_passes_through(checker: Callable) -> None:
    with pytest.raises(NotDoneYet):
        checker(not_done)


def test_an_unfinished_forward_passes_through() -> None:
    with pytest.raises(NotDoneYet):
        check_si100_model(with_forward(not_done))


# --- receptive fields ----------------------------------------------------------------------------


def receptive_fields(layers: list[tuple[int, int]]) -> list[int]:
    r, j, sizes = 1, 1, []
    for kernel, stride in layers:
        r, j = r + (kernel - 1) * j, j * stride
        sizes.append(r)
    return sizes


def test_receptive_fields_passes_the_formula(capsys: pytest.CaptureFixture[str]) -> None:
    check_receptive_fields(receptive_fields)
    assert "OK: receptive_fields passed" in capsys.readouterr().out


def test_si100facenet_sees_22_pixels_from_its_last_map() -> None:
    si100 = [(3, 1), (2, 2)] * 3
    assert receptive_fields(si100) == REFERENCES["receptive_fields"](si100) == [3, 4, 8, 10, 18, 22]


def test_the_measured_field_matches_autograd_on_the_real_2d_layers() -> None:
    """On 2-D layers as SI100FaceNet has them (padding 1; average pooling, which spreads the
    gradient over the whole window where max-pooling would pick one winner), a central
    position of the last map depends on a 22 x 22 square of the input."""
    x = torch.ones(1, 1, 48, 48, requires_grad=True)
    h = x
    for _ in range(3):
        h = F.avg_pool2d(F.conv2d(h, torch.ones(1, 1, 3, 3), padding=1), 2)
    (grad,) = torch.autograd.grad(h[0, 0, 3, 3], x)
    rows, cols = grad[0, 0].nonzero().unbind(1)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (22, 22)


def _no_jump(layers: list[tuple[int, int]]) -> list[int]:
    return list(itertools.accumulate((k - 1 for k, _ in layers), initial=1))[1:]


def _jump_too_early(layers: list[tuple[int, int]]) -> list[int]:
    r, j, sizes = 1, 1, []
    for kernel, stride in layers:
        j *= stride
        r += (kernel - 1) * j
        sizes.append(r)
    return sizes


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_no_jump, "multiply (k - 1) by the jump"),
        (_jump_too_early, "use the jump of the layer before"),
        (lambda layers: [r - 1 for r in receptive_fields(layers)], "start from r_0 = 1"),
        (lambda layers: list(itertools.accumulate(k for k, _ in layers)), "not k"),
        (lambda layers: receptive_fields(layers)[:-1], "one per layer"),
        (lambda layers: 22, "a list of ints"),
        (lambda layers: [float(r) for r in receptive_fields(layers)], "expected an int"),
        (lambda layers: None, "forget `return`"),
    ],
)
def test_receptive_fields_names_the_mistake(wrong: Callable, message: str) -> None:
    with pytest.raises(ExerciseError, match=re.escape(message)):
        check_receptive_fields(wrong)
