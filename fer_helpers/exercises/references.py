"""The reference of every exercise: what a learner copy runs while the exercise is still open.

A learner copy's stub (see fer_helpers.course.handouts) is

    def softmax(scores):
        return NotDoneYet.use_reference('softmax', locals())  # your code here

and REFERENCES['softmax'] is called with the stubbed function's parameters, by
name, so the rest of the notebook runs as if the exercise were done. The keys
are the names after `# BEGIN SOLUTION` in the notebooks; each reference has the
parameter names of the notebook's function. Most are fer_helpers' own working
versions (the metrics, class weights, the sparse center loss, the attention
heads, the face box, SI100FaceNet) or the references the checkers compare with;
the few that exist nowhere else are written here.
"""

from __future__ import annotations

import ast
import contextlib
import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..data import to_model_input
from ..faces import square_box as _square_box
from ..features import specificity as _specificity
from ..losses import class_weights, sparse_center_loss
from ..metrics import balanced_accuracy, f1_per_class
from ..metrics import confusion_matrix as _confusion_matrix
from ..metrics import precision_per_class as _precision_per_class
from ..metrics import recall_per_class as _recall_per_class
from ..models import SI100FaceNet, attention_from_heads, conv_block, count_parameters
from ..video import iou

# --- what the checkers compare with (the checker modules import these from here) ----------

Shape = tuple[int, ...]


def printed_trace(model: SI100FaceNet, x: torch.Tensor) -> list[tuple[str, Shape]]:
    """(step, shape) for every line the model's print toggle prints while it runs on x."""
    buffer = io.StringIO()
    before, model.print_shapes = model.print_shapes, True
    try:
        with contextlib.redirect_stdout(buffer), torch.no_grad():
            model(x)
    finally:
        model.print_shapes = before
    trace = []
    for line in buffer.getvalue().splitlines():
        step, shape = line.split("->")
        trace.append((step.strip(), tuple(ast.literal_eval(shape.strip()))))
    return trace


def _reference_trace(batch: int, side: int, num_classes: int) -> list[Shape]:
    with torch.device("meta"):  # shapes only: nothing is computed
        model = SI100FaceNet(num_classes=num_classes, input_size=side)
        x = torch.empty(batch, 3, side, side)
    return [shape for _, shape in printed_trace(model, x)]


def _torch_conv_size(size: int, kernel: int, padding: int, stride: int) -> int:
    x = torch.empty(1, 1, size, size, device="meta")
    weight = torch.empty(1, 1, kernel, kernel, device="meta")
    return F.conv2d(x, weight, padding=padding, stride=stride).shape[-1]


def _torch_pool_size(size: int, kernel: int, stride: int | None) -> int:
    x = torch.empty(1, 1, size, size, device="meta")
    return F.max_pool2d(x, kernel, stride=stride).shape[-1]


def _measured_receptive_fields(layers: list[tuple[int, int]]) -> list[int]:
    """The receptive field after each (kernel, stride) layer, measured, not computed by formula.

    A 1-D stack of windows with all-ones weights (a pooling window has the same reach as a
    convolution's) runs on a row of ones; autograd then gives which input positions one
    output position depends on, and the width of that nonzero stretch is its receptive field.
    """
    length = int(np.prod([s for _, s in layers])) * (sum(k for k, _ in layers) + 1) + 1
    x = torch.ones(1, 1, length, requires_grad=True)  # long enough for every field to fit
    h, sizes = x, []
    for kernel, stride in layers:
        h = F.conv1d(h, torch.ones(1, 1, kernel), stride=stride)
        (grad,) = torch.autograd.grad(h[0, 0, h.shape[-1] // 2], x, retain_graph=True)
        nonzero = grad[0, 0].nonzero().flatten()
        sizes.append(int(nonzero.max() - nonzero.min() + 1))
    return sizes


def conv_flops_reference(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int) -> int:
    """torch's count for a Conv2d whose output is h_out x w_out (padding keeps it so)."""
    layer = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, device="meta")
    with FlopCounterMode(display=False) as counter:
        layer(torch.empty(1, c_in, h_out, w_out, device="meta"))
    return int(counter.get_total_flops())


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    return exps / exps.sum(axis=-1, keepdims=True)


def _grad_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p - y for every row: the gradient of each image's loss with respect to its scores."""
    return probs - np.eye(probs.shape[-1])[labels]


SLOPE = 0.01  # SI100FaceNet's LeakyReLU slope

REFERENCES: dict[str, Callable[..., Any]] = {}
"""Exercise name (as after `# BEGIN SOLUTION`) -> its reference."""


def reference(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as the reference of exercise `name`."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        REFERENCES[name] = function
        return function

    return register


# --- 02 and 03: softmax, cross-entropy and its gradient ---------------------------------------


@reference("one_hot")
def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[np.asarray(labels, dtype=np.int64)]


@reference("softmax")
def softmax(scores: np.ndarray) -> np.ndarray:
    return _softmax(np.asarray(scores, dtype=np.float64))


@reference("predict")
def predict(scores: np.ndarray) -> np.ndarray:
    return np.asarray(scores).argmax(axis=-1)


@reference("cross_entropy")
def cross_entropy(probs: np.ndarray, label: int) -> float:
    return float(-np.log(np.asarray(probs, dtype=np.float64)[label]))


@reference("grad_scores")
def grad_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return _grad_scores(np.asarray(probs, dtype=np.float64), np.asarray(labels))


# --- 04 and 05: dimensions and SI100FaceNet by hand -------------------------------------------


@reference("conv_output_size")
def conv_output_size(size: int, kernel: int, padding: int, stride: int) -> int:
    return int(_torch_conv_size(size, kernel, padding, stride))


@reference("pool_output_size")
def pool_output_size(size: int, kernel: int, stride: int | None = None) -> int:
    return int(_torch_pool_size(size, kernel, stride))


@reference("shape_trace")
def shape_trace(batch: int, side: int, num_classes: int = 3) -> list[tuple[int, ...]]:
    return _reference_trace(batch, side, num_classes)


@reference("conv_params")
def conv_params(in_channels: int, out_channels: int, kernel_size: int) -> int:
    return count_parameters(nn.Conv2d(in_channels, out_channels, kernel_size, device="meta"))


@reference("linear_params")
def linear_params(in_features: int, out_features: int) -> int:
    return count_parameters(nn.Linear(in_features, out_features, device="meta"))


@reference("receptive_fields")
def receptive_fields(layers: list[tuple[int, int]]) -> list[int]:
    return _measured_receptive_fields([(int(k), int(s)) for k, s in layers])


@reference("MySI100FaceNet layers")
def si100_layers(self: nn.Module, num_classes: int = 3) -> None:
    """SI100FaceNet's layers, under the same names, set on the learner's module."""
    for name, layer in SI100FaceNet(num_classes=num_classes).named_children():
        if not isinstance(layer, (nn.Identity, nn.Dropout)):  # SI100FaceNet's off switches
            setattr(self, name, layer)


@reference("MySI100FaceNet forward")
def si100_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = self.act1(self.pool1(self.conv1(x)))
    x = self.act2(self.pool2(self.conv2(x)))
    x = self.act3(self.pool3(self.conv3(x)))
    return self.fc2(self.act4(self.fc1(torch.flatten(x, start_dim=1))))


# --- 06: one training step, the accuracy of a batch, one epoch, validation -----------------


@reference("train_one_batch")
def train_one_batch(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


@reference("batch_accuracy")
def batch_accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return (scores.argmax(dim=1) == labels).float().mean().item()


@reference("train_one_epoch")
def train_one_epoch(
    model: nn.Module,
    loader: Any,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer,
    device: str | torch.device,
    epoch: int,
    epochs: int,
    log_every: int,
) -> float:
    """One epoch in training mode, the course's log line every log_every batches; the mean
    loss per image."""
    model.train()
    total, loss_sum, seen = len(loader), 0.0, 0
    for k, (x, y) in enumerate(loader, start=1):
        x, y = x.to(device), y.to(device)
        loss = train_one_batch(model, loss_fn, optimizer, x, y)
        loss_sum, seen = loss_sum + loss * len(y), seen + len(y)
        if k % log_every == 0:
            step = (epoch - 1) * total + k  # batches since training began
            print(f"Epoch: {epoch}/{epochs}, Batch: {step}, {k}/{total}, loss: {loss:.4f}")
    return loss_sum / seen


@reference("evaluate")
def evaluate(
    model: nn.Module, loader: Any, loss_fn: Callable[..., torch.Tensor], device: str | torch.device
) -> tuple[float, float]:
    """(mean loss per image, accuracy) over a loader, in evaluation mode, without gradients."""
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            scores = model(x)
            loss_sum += loss_fn(scores, y).item() * len(y)
            correct += (scores.argmax(dim=1) == y).sum().item()
            seen += len(y)
    return loss_sum / seen, correct / seen


# --- 07: the metrics by hand -----------------------------------------------------------------


@reference("confusion_matrix")
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    return _confusion_matrix(y_true, y_pred, num_classes)


@reference("precision_per_class")
def precision_per_class(cm: np.ndarray) -> np.ndarray:
    return _precision_per_class(cm)


@reference("recall_per_class")
def recall_per_class(cm: np.ndarray) -> np.ndarray:
    return _recall_per_class(cm)


@reference("weighted_recall")
def weighted_recall(recall: np.ndarray, weights: np.ndarray) -> float:
    weights = np.asarray(weights, dtype=np.float64)
    return float((weights * np.asarray(recall, dtype=np.float64)).sum() / weights.sum())


@reference("remeasure")
def remeasure(
    model: nn.Module, data: Any, class_names: Any, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    from ..data import FaceLoader
    from ..inference import predict as predict_faces

    faces = data.dataset("validation", class_names, channels=channels)
    y_true, y_pred, _ = predict_faces(model, FaceLoader(faces, batch_size=256))
    return y_true, y_pred


# --- 08: F1, class weights, balanced accuracy ------------------------------------------------


@reference("f1_by_hand")
def f1_by_hand(cm: np.ndarray) -> np.ndarray:
    return f1_per_class(np.asarray(cm))


@reference("class weights")
def weights_by_hand(counts: np.ndarray) -> np.ndarray:
    return class_weights(counts)


@reference("balanced accuracy")
def balanced_accuracy_by_hand(cm: np.ndarray) -> float:
    return balanced_accuracy(np.asarray(cm))


# --- 09: a forward hook, the most active channels, specificity -------------------------------


@reference("conv1 hook")
def capture_conv1(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    captured: dict[str, torch.Tensor] = {}
    handle = model.conv1.register_forward_hook(
        lambda module, inputs, output: captured.update(conv1=output.detach())
    )
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return captured["conv1"]


@reference("top channels")
def top_channels_of_image(maps: torch.Tensor, k: int) -> torch.Tensor:
    return torch.topk(maps.mean(dim=(1, 2)), k).indices


@reference("specificity")
def specificity_by_hand(response: np.ndarray) -> np.ndarray:
    return _specificity(response)


# --- 10: DACL's attention and sparse center loss ---------------------------------------------


@reference("attention heads")
def attention_weights(head_scores: torch.Tensor) -> torch.Tensor:
    return attention_from_heads(head_scores, head_scores.shape[1] // 2)


@reference("sparse center loss")
def sparse_center_loss_by_hand(
    features: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor, attention: torch.Tensor
) -> torch.Tensor:
    return sparse_center_loss(features, centres, labels, attention)


# --- 11: the exported model's numbers --------------------------------------------------------


@reference("onnx_weights")
def onnx_weights(onnx_model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in onnx_model.graph.initializer}


@reference("dense_head")
def dense_head(features: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
    hidden = features @ weights["fc1.weight"].T + weights["fc1.bias"]
    hidden = np.where(hidden > 0, hidden, SLOPE * hidden)
    return hidden @ weights["fc2.weight"].T + weights["fc2.bias"]


# --- 12: faces in photos ----------------------------------------------------------------------


@reference("crop_box")
def crop_box(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return gray[y : y + h, x : x + w]


@reference("square_box")
def square_box(box: tuple[int, int, int, int], margin: float) -> tuple[int, int, int, int]:
    return _square_box(box, margin)


@reference("crops_to_input")
def crops_to_input(crops: np.ndarray) -> torch.Tensor:
    return to_model_input(torch.from_numpy(np.asarray(crops)).unsqueeze(1), 3)


# --- 13: faces in video -----------------------------------------------------------------------


@reference("box_iou")
def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    return iou(a, b)


# --- 14: what a convolution costs -------------------------------------------------------------


@reference("conv_flops")
def conv_flops(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int) -> int:
    return conv_flops_reference(c_in, c_out, kernel, h_out, w_out)


@reference("conv_block_parameters")
def conv_block_parameters(c_in: int, c_out: int) -> int:
    return count_parameters(conv_block(c_in, c_out))
