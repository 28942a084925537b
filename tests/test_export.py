"""ONNX export: a valid file, the same scores as PyTorch, a readable table, clear errors.

Exporting runs torch.export (a few seconds the first time), so one small
SI100FaceNet is exported once for the whole module.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper
from torch import nn

from fer_helpers.checkpoints import make_meta, save_checkpoint
from fer_helpers.errors import CheckpointError, FerError
from fer_helpers.export import (
    TOLERANCE,
    check_onnx,
    describe_onnx,
    export_checkpoint,
    export_onnx,
    format_export,
    onnx_outputs,
)
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.models import SI100FaceNet, count_parameters, parameters_per_layer

SIDE = 16  # small images keep the export and the reference evaluator fast
ONNX_OPS = {nn.Conv2d: ("Conv",), nn.MaxPool2d: ("MaxPool",), nn.LeakyReLU: ("LeakyRelu",)}
ONNX_OPS[nn.Linear] = ("Gemm", "MatMul")


def small_model(classes: int = 3) -> SI100FaceNet:
    torch.manual_seed(0)
    return SI100FaceNet(num_classes=classes, hidden=16, input_size=SIDE)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[SI100FaceNet, Path, str]:
    """(model, its ONNX file, what the export printed or logged at INFO level); the model is
    left in training mode with its print toggle on, to see that export_onnx does not change it."""
    model = small_model()
    model.train()
    model.print_shapes = True
    folder = tmp_path_factory.mktemp("onnx")
    printed = io.StringIO()
    root, handler = logging.getLogger(), logging.StreamHandler(printed)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # as netron.start sets logging up in a notebook
    try:
        with contextlib.redirect_stdout(printed):
            path = export_onnx(model, folder / "small.onnx", SIDE, class_names=COURSE_CLASSES)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return model, path, printed.getvalue()


def quiet_copy(model: SI100FaceNet) -> SI100FaceNet:
    """The model in eval mode with its print toggle off, leaving the fixture's as it is."""
    model = copy.deepcopy(model).eval()
    model.print_shapes = False
    return model


def pytorch_scores(model: SI100FaceNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return quiet_copy(model)(torch.from_numpy(x)).numpy()


def test_export_writes_a_valid_file_with_a_free_batch_size_and_the_class_names(exported):
    _, path, _ = exported
    onnx_model = check_onnx(path)
    assert isinstance(onnx_model, onnx.ModelProto)
    assert [p.name for p in path.parent.iterdir()] == [path.name], "a temporary file was left"
    (image,) = onnx_model.graph.input
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # any batch size
    assert [d.dim_value for d in dims[1:]] == [3, SIDE, SIDE]
    metadata = {p.key: p.value for p in onnx_model.metadata_props}
    assert metadata["class_names"].split(",") == list(COURSE_CLASSES)


def test_export_leaves_the_model_as_it_was_and_prints_nothing(exported):
    model, _, printed = exported
    assert model.training and model.print_shapes
    assert printed == ""


def test_no_absolute_paths_of_this_computer_go_into_the_file(exported):
    _, path, _ = exported
    assert str(Path(__file__).resolve().parents[1]).encode() not in path.read_bytes()


@pytest.mark.parametrize("batch", [5, 1])
def test_onnx_scores_match_pytorch_on_the_same_batch(exported, batch):
    model, path, _ = exported
    x = np.random.default_rng(batch).uniform(-1, 1, (batch, 3, SIDE, SIDE)).astype(np.float32)
    expected = pytorch_scores(model, x)
    got = onnx_outputs(path, x)
    assert got.shape == (batch, 3)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


def test_describe_lists_every_layer_in_order_with_its_parameters_and_shapes(exported):
    model, path, _ = exported
    model = quiet_copy(model)
    table = describe_onnx(path)
    layers = table[table["layer"] != ""]  # the Reshape of torch.flatten sits in forward itself
    # The switched-off options (bn1..bn3: Identity, drop1, drop2: Dropout(0)) leave no node.
    children = [
        (name, module)
        for name, module in model.named_children()
        if not isinstance(module, nn.Identity | nn.Dropout)
    ]
    assert layers["layer"].tolist() == [name for name, _ in children]
    for op, (_, module) in zip(layers["op"], children):
        assert op in ONNX_OPS[type(module)]
    assert table.loc[table["layer"] == "", "op"].tolist() == ["Reshape"]

    per_layer = dict(parameters_per_layer(model))
    assert dict(zip(layers["layer"], layers["parameters"])) == {
        name: per_layer.get(name, 0) for name, _ in children
    }
    assert table["parameters"].sum() == count_parameters(model)

    shapes = {}
    hooks = [
        module.register_forward_hook(lambda m, i, out, name=name: shapes.update({name: out.shape}))
        for name, module in children
    ]
    with torch.no_grad():
        model(torch.zeros(2, 3, SIDE, SIDE))
    for hook in hooks:
        hook.remove()
    for name, shape in zip(layers["layer"], layers["output shape"]):
        assert shape == ("batch", *shapes[name][1:]), name
    assert layers["output shape"].iloc[-1] == ("batch", 3)


def test_describe_shows_the_settings_of_each_operator(exported):
    _, path, _ = exported
    settings = describe_onnx(path).set_index("layer")["settings"]
    assert "kernel_shape=[3, 3]" in settings["conv1"] and "pads=[1, 1, 1, 1]" in settings["conv1"]
    assert "strides=[2, 2]" in settings["pool1"]
    assert settings["act1"] == f"alpha={SI100FaceNet().act1.negative_slope:g}"
    assert settings["fc1"] == "transB=1"


@pytest.mark.parametrize(
    "content",
    [b"this is not an ONNX model", b"", "half"],
    ids=["text", "empty", "truncated"],
)
def test_a_damaged_file_gives_a_clear_error_naming_it(exported, tmp_path, content):
    _, path, _ = exported
    if content == "half":
        content = path.read_bytes()[: path.stat().st_size // 2]
    bad = tmp_path / "damaged.onnx"
    bad.write_bytes(content)
    for read in (check_onnx, describe_onnx, lambda p: onnx_outputs(p, np.zeros((1, 3, 8, 8)))):
        with pytest.raises(FerError, match="damaged.onnx is not a valid ONNX model"):
            read(bad)


def test_a_missing_file_or_a_broken_graph_gives_a_clear_error(tmp_path):
    with pytest.raises(FerError, match="nothing.onnx: no such file"):
        check_onnx(tmp_path / "nothing.onnx")
    # A well-formed file whose node reads a tensor that nothing produces.
    node = helper.make_node("Relu", ["nowhere"], ["y"])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    onnx.save(helper.make_model(helper.make_graph([node], "g", [], [y])), tmp_path / "bad.onnx")
    with pytest.raises(FerError, match="bad.onnx is not a valid ONNX model"):
        check_onnx(tmp_path / "bad.onnx")


def test_export_checkpoint_exports_checks_and_summarises(tmp_path):
    model = small_model(classes=7)
    meta = make_meta("si100", EMOTIONS, hidden=16, input_size=SIDE)
    weights = save_checkpoint(tmp_path / "seven.pth", **meta, model_state=model.state_dict())
    summary = export_checkpoint(weights, tmp_path / "seven.onnx")

    onnx_model = check_onnx(tmp_path / "seven.onnx")
    assert summary["class_names"] == list(EMOTIONS)
    assert summary["parameters"] == count_parameters(model)
    assert summary["bytes"] == (tmp_path / "seven.onnx").stat().st_size
    assert summary["nodes"] == len(onnx_model.graph.node)
    assert summary["input_shape"] == ["batch", 3, SIDE, SIDE]
    assert 0 <= summary["max_difference"] <= TOLERANCE
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, SIDE, SIDE)).astype(np.float32)
    expected = pytorch_scores(model, x)
    np.testing.assert_allclose(onnx_outputs(onnx_model, x), expected, atol=TOLERANCE, rtol=0)

    text = format_export(summary)
    assert str(tmp_path / "seven.onnx") in text and ", ".join(EMOTIONS) in text


def test_export_checkpoint_refuses_other_classes_before_writing(tmp_path):
    model = small_model(classes=3)
    meta = make_meta("si100", COURSE_CLASSES, hidden=16, input_size=SIDE)
    weights = save_checkpoint(tmp_path / "three.pth", **meta, model_state=model.state_dict())
    with pytest.raises(CheckpointError, match="three.pth was trained for 3 classes"):
        export_checkpoint(weights, tmp_path / "three.onnx", classes="all")
    assert not (tmp_path / "three.onnx").exists()


def test_batch_norm_is_folded_into_the_convolutions_which_keep_their_names(tmp_path):
    torch.manual_seed(0)
    model = SI100FaceNet(hidden=16, input_size=SIDE, batch_norm=True, dropout=0.2)
    with torch.no_grad():
        model(torch.randn(8, 3, SIDE, SIDE))  # training mode: running statistics move
        model.bn1.weight.uniform_(0.5, 1.5)
    model.eval()
    path = export_onnx(model, tmp_path / "bn.onnx", SIDE)
    table = describe_onnx(path)
    assert table["op"].tolist().count("BatchNormalization") == 0
    assert table.loc[table["op"] == "Conv", "layer"].tolist() == ["conv1", "conv2", "conv3"]
    assert table["parameters"].sum() == count_parameters(model) - 2 * (64 + 128 + 256)

    weights = {i.name: onnx.numpy_helper.to_array(i) for i in check_onnx(path).graph.initializer}
    bn, conv = model.bn1, model.conv1
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    folded = (conv.weight * scale[:, None, None, None]).detach().numpy()
    shifted = ((conv.bias - bn.running_mean) * scale + bn.bias).detach().numpy()
    np.testing.assert_allclose(weights["conv1.weight"], folded, atol=1e-6)
    np.testing.assert_allclose(weights["conv1.bias"], shifted, atol=1e-6)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, SIDE, SIDE)).astype(np.float32)
    np.testing.assert_allclose(onnx_outputs(path, x), pytorch_scores(model, x), atol=TOLERANCE)


def test_the_input_channels_and_size_default_to_what_the_model_takes(tmp_path):
    # The fast recipe's network reads 1 gray channel; the course's reads 3 copies.
    for channels, side in ((1, SIDE), (3, 24)):
        model = SI100FaceNet(hidden=16, input_size=side, in_channels=channels).eval()
        path = export_onnx(model, tmp_path / f"c{channels}.onnx")
        dims = check_onnx(path).graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in dims[1:]] == [channels, side, side]
        x = np.random.default_rng(0).uniform(-1, 1, (2, channels, side, side)).astype(np.float32)
        np.testing.assert_allclose(onnx_outputs(path, x), pytorch_scores(model, x), atol=TOLERANCE)
