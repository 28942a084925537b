"""Exporting a model to ONNX, checking the file, running it and reading it back.

ONNX (Open Neural Network Exchange) is a file format for trained networks that
many tools read: runtimes on phones and servers, other frameworks, and viewers
such as netron. An ONNX file holds a graph: nodes (operators such as Conv,
MaxPool, LeakyRelu, Gemm) connected by named tensors, the weights as
"initializers", and the graph's inputs and outputs with their shapes.

    path = export_onnx(model, "weights/face_expression.onnx", class_names=COURSE_CLASSES)
    onnx_model = check_onnx(path)          # onnx.checker: is the file well formed?
    scores = onnx_outputs(path, images)    # run the file without PyTorch
    describe_onnx(path)                    # one row per node: op, shapes, parameters

To run an ONNX file in production you would use onnxruntime. The course only
needs to check the file, so it uses onnx's own reference evaluator: plain
NumPy, slow, but exact and with nothing more to install.
"""

from __future__ import annotations

import ast
import copy
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn
from torch.export import Dim

from .checkpoints import SCALE, load_model
from .errors import FerError
from .files import atomic_write
from .labels import parse_classes
from .models import build_model, count_parameters, input_channels
from .models import input_size as model_input_size  # export_onnx's argument has its name

INPUT_NAME = "image"
OUTPUT_NAME = "scores"
TOLERANCE = 1e-4
"""Largest difference allowed between the scores of the ONNX file and of PyTorch."""

# The settings of each operator worth reading; the others keep ONNX's defaults.
SETTINGS: dict[str, tuple[str, ...]] = {
    "Conv": ("kernel_shape", "pads", "strides"),
    "MaxPool": ("kernel_shape", "strides"),
    "LeakyRelu": ("alpha",),
    "Gemm": ("transB",),
}
_NAME_SCOPES = "pkg.torch.onnx.name_scopes"  # where the exporter notes each node's module
_LEARNED_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: int | None = None,
    channels: int | None = None,
    opset: int | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write `model` as an ONNX file that takes images (batch, channels, size, size).

    input_size and channels: default, what the model takes (models.input_size,
    models.input_channels).

    The batch size stays free (any batch works), the model is exported in eval
    mode from a CPU copy (the model you pass is left as it was), class names go
    into the file's metadata, and the file is written atomically. opset: the
    ONNX operator-set version (default: the exporter's recommended one).
    """
    model = _cpu_copy(model)
    input_size = model_input_size(model) if input_size is None else input_size
    channels = input_channels(model) if channels is None else channels
    # An example batch of 2: torch.export would take a batch of 1 as a fixed size.
    example = torch.zeros(2, channels, input_size, input_size)
    with _quiet_loggers("onnxscript", "onnx_ir"):
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: Dim("batch")},),
            opset_version=opset,
            dynamo=True,
            external_data=False,  # weights inside the one file (possible below 2 GB)
            verbose=False,
        )
    onnx_model = program.model_proto
    _drop_stack_traces(onnx_model)
    metadata = {"normalization": SCALE}
    if class_names is not None:
        metadata["class_names"] = ",".join(class_names)
    onnx.helper.set_model_props(onnx_model, metadata)
    path = Path(path)
    with atomic_write(path) as file:
        file.write(onnx_model.SerializeToString())
    return path


def check_onnx(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX file and check it with onnx.checker (with shape inference).

    Returns the model; raises FerError naming the file when it is missing,
    damaged or not a valid ONNX graph.
    """
    path = Path(path)
    if not path.is_file():
        raise FerError(f"{path}: no such file; expected an ONNX model written by export_onnx")
    try:
        onnx_model = onnx.load(path)
        onnx.checker.check_model(onnx_model, full_check=True)
    except Exception as err:  # a damaged file raises DecodeError, a bad graph ValidationError
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FerError(
            f"{path} is not a valid ONNX model ({reason}); export it again with export_onnx"
        ) from err
    return onnx_model


def onnx_outputs(model: str | Path | onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The ONNX model's first output (the scores) for inputs x, computed without PyTorch.

    model: a file (checked with check_onnx first) or a loaded ModelProto;
    x: float32 images (batch, channels, size, size), normalised as for training.
    """
    session = ReferenceEvaluator(_as_model(model))
    feeds = {session.input_names[0]: np.asarray(x, dtype=np.float32)}
    return session.run(None, feeds)[0]


def describe_onnx(model: str | Path | onnx.ModelProto) -> pd.DataFrame:
    """One row per node of the graph, in order: what it computes and what it learns.

    Columns: layer (the PyTorch module the node came from, when the exporter
    recorded it), op (the ONNX operator), input shape (of its first input, the
    data), output shape, settings (kernel, padding, stride, slope, ...), weight
    shapes, and parameters (the learned numbers of its float initializers;
    integer constants, such as a Reshape's target shape, are not learned).
    Shapes come from ONNX shape inference; "batch" marks the free batch size.
    """
    graph = onnx.shape_inference.infer_shapes(_as_model(model), strict_mode=True).graph
    shapes = {v.name: _shape(v) for v in (*graph.input, *graph.value_info, *graph.output)}
    learned = {i.name: tuple(i.dims) for i in graph.initializer if i.data_type in _LEARNED_TYPES}
    rows = []
    for node in graph.node:
        weights = [learned[name] for name in node.input if name in learned]
        rows.append(
            {
                "layer": _layer_name(node, learned),
                "op": node.op_type,
                "input shape": shapes.get(node.input[0]),
                "output shape": shapes.get(node.output[0]),
                "settings": _settings(node),
                "weight shapes": " + ".join(str(dims) for dims in weights),
                "parameters": sum(math.prod(dims) for dims in weights),
            }
        )
    return pd.DataFrame(rows)


def export_checkpoint(
    weights: str | Path | None,
    out: str | Path,
    classes: str | Sequence[str] | None = None,
    check_images: int = 2,
) -> dict:
    """Export a checkpoint to ONNX, check the file and compare its scores with PyTorch's.

    weights: a checkpoint (or a plain state_dict of SI100FaceNet); None exports
    an untrained SI100FaceNet for `classes` (names, or "all"; default: the
    course's three), to look at the graph. classes, with weights: the class
    names the checkpoint must have (and the names of a plain state_dict).
    Returns a summary (see format_export); raises FerError when the ONNX
    scores differ from PyTorch's by more than TOLERANCE on random images.
    """
    if weights is None:
        class_names: Sequence[str] | None = parse_classes(classes)
        model, channels = build_model("si100", len(class_names)), 3
    else:
        model, info = load_model(weights, class_names=classes)
        class_names = info["class_names"]
        channels = info["normalization"]["channels"]
    input_size = model_input_size(model)
    model.eval()
    path = export_onnx(model, out, input_size, channels, class_names=class_names)
    onnx_model = check_onnx(path)

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(check_images, channels, input_size, input_size, generator=generator) * 2 - 1
    with torch.no_grad():
        expected = model(x).numpy()
    difference = float(np.abs(onnx_outputs(onnx_model, x.numpy()) - expected).max())
    if difference > TOLERANCE:
        raise FerError(
            f"{path}: its scores differ from PyTorch's by {difference:.2g} (more than "
            f"{TOLERANCE:g}) on {check_images} random images"
        )
    return {
        "out": str(path),
        "bytes": path.stat().st_size,
        "weights": None if weights is None else str(weights),
        "class_names": None if class_names is None else list(class_names),
        "input_shape": ["batch", channels, input_size, input_size],
        "opset": max(o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")),
        "nodes": len(onnx_model.graph.node),
        "parameters": count_parameters(model),
        "max_difference": difference,
        "check_images": check_images,
    }


def format_export(summary: dict) -> str:
    """The lines `python -m fer_helpers export` prints for a summary from export_checkpoint."""
    names = ", ".join(summary["class_names"]) if summary["class_names"] else "class names unknown"
    source = summary["weights"] or "an untrained SI100FaceNet (no weights given)"
    shape = ", ".join(str(d) for d in summary["input_shape"])
    return "\n".join(
        [
            f"exported {source}",
            f"wrote {summary['out']} ({summary['bytes'] / 1e6:.1f} MB): {summary['nodes']} nodes, "
            f"{summary['parameters']:,} parameters, opset {summary['opset']}",
            f"input {INPUT_NAME} ({shape}) float32, pixels u8/127.5-1; "
            f"output {OUTPUT_NAME}, one per class: {names}",
            f"onnx.checker: OK; ONNX and PyTorch scores agree to {summary['max_difference']:.1e}"
            f" on {summary['check_images']} random images",
            f"view it: netron {summary['out']}  (or open the file at https://netron.app)",
        ]
    )


def _cpu_copy(model: nn.Module) -> nn.Module:
    """A copy on the CPU in eval mode, with SI100FaceNet's print toggle off."""
    model = copy.deepcopy(model).cpu().eval()
    if getattr(model, "print_shapes", False):
        model.print_shapes = False
    return model


@contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    # The exporter's optimiser logs each of its steps at INFO level: pages of lines wherever
    # logging shows INFO (netron.start sets that up when nothing else did).
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _drop_stack_traces(onnx_model: onnx.ModelProto) -> None:
    # The exporter records each node's Python stack trace, with this computer's absolute
    # file paths; a file meant to be shared should not carry them.
    for node in onnx_model.graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)


def _as_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else check_onnx(model)


def _shape(value: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in dims)


def _layer_name(node: onnx.NodeProto, learned: Mapping[str, object]) -> str:
    """The PyTorch module a node came from ("conv1"), or "" for code in forward itself.

    A node with learned weights is named after them: a Conv with an eval-mode batch
    norm folded into it is conv1 (its weights keep that name), though the exporter
    records the batch norm, bn1, as the module that produced its output.
    """
    weights = [name for name in node.input[1:] if name in learned]
    if weights and "." in weights[0]:
        return weights[0].rsplit(".", 1)[0]
    scopes = next(
        (p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), ""
    )
    if not scopes:
        return ""
    names = ast.literal_eval(scopes)  # e.g. "['', 'conv1', 'conv2d']": model, module, op
    return ".".join(name for name in names[1:-1] if name)


def _settings(node: onnx.NodeProto) -> str:
    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    shown = [name for name in SETTINGS.get(node.op_type, ()) if name in values]
    return " ".join(f"{name}={_format(values[name])}" for name in shown)


def _format(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
