"""Checkers for notebook 11: reading the weights out of an ONNX file, and its last layers.

- onnx_weights(onnx_model) -> {initializer name: NumPy array of its shape}
- dense_head(features, weights) -> scores: Gemm -> LeakyRelu -> Gemm in NumPy

Each checker builds small cases itself (no export needed), compares with a
reference, and names the usual mistake in one sentence. A NotDoneYet from an
unfinished exercise passes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import ExerciseError, call, checker, expect_close, passed

SLOPE = 0.01  # SI100FaceNet's LeakyReLU slope, the LeakyRelu nodes' alpha


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# --- onnx_weights ----------------------------------------------------------------------------


def _weights_case() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A small Conv -> Reshape -> Gemm graph whose initializers are stored both ways.

    torch.onnx.export stores the numbers as raw bytes (raw_data); other tools
    use the typed lists (float_data, int64_data). A right answer reads both.
    """
    rng = np.random.default_rng(9)
    arrays = {
        "conv.weight": rng.normal(size=(2, 1, 3, 3)).astype(np.float32),
        "conv.bias": rng.normal(size=2).astype(np.float32),
        "flat_shape": np.array([-1, 8], dtype=np.int64),
        "fc.weight": rng.normal(size=(3, 8)).astype(np.float32),
        "fc.bias": rng.normal(size=3).astype(np.float32),
    }
    as_lists = ("conv.bias", "flat_shape")
    initializers = [
        helper.make_tensor(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape, a.ravel().tolist()
        )
        if name in as_lists
        else numpy_helper.from_array(a, name)
        for name, a in arrays.items()
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "flat_shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["scores"], transB=1),
    ]
    image = helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 1, 2, 2])
    scores = helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph(nodes, "case", [image], [scores], initializers)
    return helper.make_model(graph), arrays


@checker
def check_onnx_weights(onnx_weights: Callable[[onnx.ModelProto], Any]) -> None:
    """Check onnx_weights(onnx_model) -> dict of every initializer's name and array."""
    onnx_model, expected = _weights_case()
    got = call(onnx_weights, onnx_model, name="onnx_weights")
    if not isinstance(got, Mapping):
        raise ExerciseError(
            f"onnx_weights returned a {type(got).__name__}: return a dict from each "
            "initializer's name (initializer.name) to its array"
        )
    missing = [name for name in expected if name not in got]
    if missing:
        raise ExerciseError(
            f"onnx_weights lacks {', '.join(missing)}: include every initializer of "
            "onnx_model.graph.initializer, keyed by initializer.name"
        )
    for name, want in expected.items():
        array = _as_array(got[name])
        if array.size == 0:
            raise ExerciseError(
                f"{name} came back empty: its numbers may sit in raw_data rather than "
                "float_data; onnx.numpy_helper.to_array(initializer) reads either"
            )
        if array.shape != want.shape:
            raise ExerciseError(
                f"{name} has shape {array.shape}, expected {want.shape}: the file stores the "
                "numbers in one flat list and the shape in initializer.dims"
            )
        expect_close(array, want, f"onnx_weights(...)[{name!r}]")
    passed("onnx_weights", len(expected))


# --- dense_head ------------------------------------------------------------------------------


def _leaky(x: np.ndarray, slope: float) -> np.ndarray:
    return np.where(x > 0, x, slope * x)


def _head(
    features: np.ndarray,
    w: Mapping[str, np.ndarray],
    slope: float = SLOPE,
    bias: bool = True,
    activation: bool = True,
) -> np.ndarray:
    b1, b2 = (w["fc1.bias"], w["fc2.bias"]) if bias else (0.0, 0.0)
    hidden = features @ w["fc1.weight"].T + b1
    if activation:
        hidden = _leaky(hidden, slope)
    return hidden @ w["fc2.weight"].T + b2


def _head_cases() -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(features, weights) with shapes like SI100FaceNet's head, and a square one."""
    rng = np.random.default_rng(3)
    cases = []
    for batch, n_in, hidden, classes in ((4, 12, 5, 3), (3, 6, 6, 6), (2, 20, 8, 7)):
        weights = {
            "fc1.weight": rng.normal(size=(hidden, n_in)),
            "fc1.bias": rng.normal(size=hidden),
            "fc2.weight": rng.normal(size=(classes, hidden)),
            "fc2.bias": rng.normal(size=classes),
        }
        weights = {name: a.astype(np.float32) for name, a in weights.items()}
        cases.append((rng.normal(size=(batch, n_in)).astype(np.float32), weights))
    return cases


def _diagnose_head(got: np.ndarray, features: np.ndarray, weights: dict) -> None:
    what = f"dense_head on features {features.shape}"
    expected = _head(features, weights)
    if got.shape != expected.shape:
        raise ExerciseError(f"{what}: expected scores of shape {expected.shape}, got {got.shape}")
    if np.allclose(got, expected, atol=1e-4):
        return
    transposed = {name: a.T for name, a in weights.items()}
    mistakes = [
        (
            lambda: _head(features, weights, slope=0.0),
            "negative values became 0 (ReLU): LeakyRelu with alpha=0.01 keeps 0.01 * x",
        ),
        (
            lambda: _head(features, weights, activation=False),
            "there is a LeakyRelu node between the two Gemm nodes; apply it to the hidden layer",
        ),
        (
            lambda: _head(features, weights, bias=False),
            "the biases are missing: Gemm computes x @ W.T + b, with C = fc1.bias or fc2.bias",
        ),
        (
            lambda: _head(features, transposed),
            "the weights are not transposed: transB=1 means x @ W.T (W is (out, in))",
        ),
    ]
    for wrong, message in mistakes:
        try:
            matches = np.allclose(got, wrong(), atol=1e-4)
        except ValueError:  # that mistake cannot happen with these shapes
            continue
        if matches:
            raise ExerciseError(f"{what}: {message}")
    expect_close(got, expected, what, atol=1e-4)


@checker
def check_dense_head(dense_head: Callable[[np.ndarray, dict], Any]) -> None:
    """Check dense_head(features, weights) -> scores = Gemm(LeakyRelu(Gemm(features)))."""
    cases = _head_cases()
    for features, weights in cases:
        try:
            got = call(dense_head, features.copy(), dict(weights), name="dense_head")
        except ValueError as err:  # NumPy's message for matrices whose shapes do not fit
            raise ExerciseError(
                f"dense_head on features {features.shape} failed ({err}): Gemm with transB=1 "
                "computes x @ W.T + b, W being (out, in)"
            ) from err
        _diagnose_head(_as_array(got).astype(float), features, weights)
    passed("dense_head", len(cases))
