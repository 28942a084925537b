"""The checkers of notebook 11 pass right answers and name the mistake in wrong ones.

The right answers are written independently of the checkers' references: the
weights with onnx.numpy_helper, the dense head with torch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, numpy_helper

from fer_helpers.exercises import ExerciseError, NotDoneYet
from fer_helpers.exercises.export import SLOPE, check_dense_head, check_onnx_weights

# --- right answers ---------------------------------------------------------------------------


def onnx_weights_right(onnx_model):
    return {init.name: numpy_helper.to_array(init) for init in onnx_model.graph.initializer}


def dense_head_torch(features, weights):
    w = {name: torch.as_tensor(a) for name, a in weights.items()}
    hidden = F.leaky_relu(
        F.linear(torch.as_tensor(features), w["fc1.weight"], w["fc1.bias"]), SLOPE
    )
    return F.linear(hidden, w["fc2.weight"], w["fc2.bias"])


def stub(*args):
    raise NotDoneYet("exercise")


@pytest.mark.parametrize(
    ("checker", "right"),
    [(check_onnx_weights, onnx_weights_right), (check_dense_head, dense_head_torch)],
)
def test_right_answers_pass_and_stubs_pass_through(checker, right, capsys):
    checker(right)
    assert "OK:" in capsys.readouterr().out
    with pytest.raises(NotDoneYet):
        checker(stub)


# --- onnx_weights mistakes -------------------------------------------------------------------


def float_data_only(onnx_model):  # ignores the raw bytes torch.onnx.export writes
    return {i.name: np.array(i.float_data or i.int64_data) for i in onnx_model.graph.initializer}


def flat_arrays(onnx_model):  # forgets initializer.dims
    return {name: a.ravel() for name, a in onnx_weights_right(onnx_model).items()}


def floats_only(onnx_model):  # skips the integer Reshape target
    floats = [i for i in onnx_model.graph.initializer if i.data_type == TensorProto.FLOAT]
    return {i.name: numpy_helper.to_array(i) for i in floats}


def as_list(onnx_model):
    return list(onnx_weights_right(onnx_model).values())


def transposed(onnx_model):
    return {name: a.T for name, a in onnx_weights_right(onnx_model).items()}


def no_return(onnx_model):
    onnx_weights_right(onnx_model)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (float_data_only, "came back empty.*numpy_helper.to_array"),
        (flat_arrays, "has shape \\(18,\\), expected \\(2, 1, 3, 3\\).*initializer.dims"),
        (floats_only, "lacks flat_shape"),
        (as_list, "returned a list.*dict"),
        (transposed, "conv.weight has shape \\(3, 3, 1, 2\\)"),
        (no_return, "forget `return`"),
    ],
)
def test_onnx_weights_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_onnx_weights(wrong)


# --- dense_head mistakes ---------------------------------------------------------------------


def head(features, weights, activation=lambda h: np.where(h > 0, h, SLOPE * h), bias=True):
    b1, b2 = (weights["fc1.bias"], weights["fc2.bias"]) if bias else (0, 0)
    hidden = activation(features @ weights["fc1.weight"].T + b1)
    return hidden @ weights["fc2.weight"].T + b2


def with_relu(features, weights):
    return head(features, weights, activation=lambda h: np.maximum(h, 0))


def no_activation(features, weights):
    return head(features, weights, activation=lambda h: h)


def no_bias(features, weights):
    return head(features, weights, bias=False)


def not_transposed(features, weights):
    hidden = features @ weights["fc1.weight"] + weights["fc1.bias"]
    hidden = np.where(hidden > 0, hidden, SLOPE * hidden)
    return hidden @ weights["fc2.weight"] + weights["fc2.bias"]


def softmax_added(features, weights):
    scores = head(features, weights)
    exps = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def one_row(features, weights):
    return head(features, weights)[0]


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (with_relu, "negative values became 0"),
        (no_activation, "LeakyRelu node between the two Gemm"),
        (no_bias, "biases are missing"),
        (not_transposed, "failed .*x @ W.T"),
        (softmax_added, "expected \\["),
        (one_row, "expected scores of shape \\(4, 3\\), got \\(3,\\)"),
    ],
)
def test_dense_head_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_dense_head(wrong)


def transposed_when_square(features, weights):
    fits = features.shape[1] == weights["fc1.weight"].shape[0]  # then x @ W raises no error
    return not_transposed(features, weights) if fits else head(features, weights)


def test_untransposed_weights_are_named_when_the_shapes_happen_to_fit():
    with pytest.raises(ExerciseError, match="not transposed"):
        check_dense_head(transposed_when_square)


@pytest.mark.parametrize("width", [64, 32])
def test_the_reference_head_is_si100facenets_at_either_width(width):
    # The checker's reference against the network's own fc1 -> LeakyReLU -> fc2: the course's
    # width (9216 features) and the fast recipe's (32 channels, 4608 features).
    from fer_helpers.exercises.export import _head
    from fer_helpers.models import SI100FaceNet

    torch.manual_seed(0)
    model = SI100FaceNet(width=width, batch_norm=True, pool_before_norm=width == 32).eval()
    assert model.fc1.in_features == 4 * width * 6 * 6
    weights = {
        name: tensor.numpy()
        for name, tensor in model.state_dict().items()
        if name.startswith(("fc1.", "fc2."))
    }
    features = torch.randn(3, model.fc1.in_features)
    with torch.no_grad():
        expected = model.fc2(model.act4(model.fc1(features))).numpy()
    np.testing.assert_allclose(_head(features.numpy(), weights), expected, atol=1e-5)
    np.testing.assert_allclose(dense_head_torch(features.numpy(), weights), expected, atol=1e-5)
