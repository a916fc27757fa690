"""What `graph.infer` reads from a file that does not say it, on graphs written in place with `onnx.helper`;
and the two small CLI behaviours of the same change (validate names the wrong value, export --input-dtype)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import schemas
from analyzer import create_quant_retrain_config_from_onnx
from analyzer.cli import main
from analyzer.report import REPORT_SCHEMA
from analyzer.validate import validate_config
from graph.infer import class_from_op, graph_from_node_names, looks_like_parameter, reconstruct
from graph.load import read_model


@pytest.mark.parametrize(
    ("components", "name"),
    [
        (("conv1",), "conv1"),
        (("layer1", "layer1.0", "conv1"), "layer1.0.conv1"),
        (("features", "features.0", "features.0.0"), "features.0.0"),
        (("features", "features.1", "conv", "conv.0"), "features.1.conv.0"),
        (("encoder", "encoder.0", "mlp", "mlp.2"), "encoder.0.mlp.2"),
        (("blk", "blk"), "blk.blk"),
        ((), ""),
    ],
    ids=[
        "root-child",
        "resnet",
        "sequential-in-sequential",
        "numbered-under-named",
        "vit-mlp",
        "same-name",
        "root",
    ],
)
def test_scope_components_spell_the_module_name(components: tuple[str, ...], name: str) -> None:
    assert reconstruct(components) == name


@pytest.mark.parametrize(
    ("op", "rank", "cls"),
    [
        ("Conv", 4, "Conv2d"),
        ("Conv", 3, "Conv1d"),
        ("ConvTranspose", 4, "ConvTranspose2d"),
        ("Gemm", 2, "Linear"),
        ("MatMul", 2, "Linear"),
        ("MatMul", 3, None),
        ("Relu", 4, None),
    ],
    ids=["conv2d", "conv1d", "convtranspose2d", "gemm", "matmul", "matmul-3d", "not-a-weight-op"],
)
def test_class_from_op_and_weight_rank(op: str, rank: int, cls: str | None) -> None:
    assert class_from_op(op, rank) == cls


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fc.weight", True),
        ("mha.in_proj_weight", True),
        ("input.1", False),
        ("onnx::Conv_12", False),
        ("x", False),
    ],
)
def test_parameter_names(name: str, expected: bool) -> None:
    assert looks_like_parameter(name) is expected


def _conv(name: str, x: str, weight: str, out: str) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, weight], [out], name=name, pads=[1, 1, 1, 1])


def _model(nodes: list[onnx.NodeProto], weights: dict[str, list[int]], output: str) -> onnx.ModelProto:
    initializers = [
        helper.make_tensor(name, TensorProto.FLOAT, dims, [0.5] * _size(dims))
        for name, dims in weights.items()
    ]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")


def _size(dims: list[int]) -> int:
    size = 1
    for dim in dims:
        size *= dim
    return size


def test_a_further_call_with_renamed_weights_is_read_from_the_shared_tensor() -> None:
    """`/blk/conv_1` reads the tensor `/blk/conv` reads: a second call of `blk.conv`, not a module `conv_1`."""
    nodes = [
        _conv("/blk/conv/Conv", "x", "onnx::Conv_7", "a"),
        _conv("/blk/conv_1/Conv", "a", "onnx::Conv_7", "b"),
    ]
    exported = graph_from_node_names(_model(nodes, {"onnx::Conv_7": [8, 8, 3, 3]}, "b"))
    assert exported is not None
    assert [node.module for node in exported.nodes] == ["blk.conv", "blk.conv"]
    calls = [i for i in exported.inferences if i.fact == "call"]
    assert [(i.module, i.value) for i in calls] == [("blk.conv", "blk.conv")]


def test_a_sibling_with_its_own_weights_is_its_own_module() -> None:
    nodes = [
        _conv("/blk/conv/Conv", "x", "onnx::Conv_7", "a"),
        _conv("/blk/conv_1/Conv", "a", "onnx::Conv_8", "b"),
    ]
    model = _model(nodes, {"onnx::Conv_7": [8, 8, 3, 3], "onnx::Conv_8": [8, 8, 3, 3]}, "b")
    exported = graph_from_node_names(model)
    assert exported is not None
    assert [node.module for node in exported.nodes] == ["blk.conv", "blk.conv_1"]
    assert not [i for i in exported.inferences if i.fact == "call"]
    assert {(m.name, m.class_name) for m in exported.modules} >= {
        ("blk.conv", "Conv2d"),
        ("blk.conv_1", "Conv2d"),
    }


def test_parameter_names_restore_a_lost_container_and_views_are_followed() -> None:
    """`heads.cls` under a never-called ModuleDict exports as `/cls/...`; its weight's name says the rest."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["p"], name="/ReduceMean", axes=[2, 3], keepdims=0),
        helper.make_node("Transpose", ["heads.cls.weight"], ["t"], name="/cls/Transpose", perm=[1, 0]),
        helper.make_node("MatMul", ["p", "t"], ["y"], name="/cls/MatMul"),
    ]
    exported = graph_from_node_names(_model(nodes, {"heads.cls.weight": [4, 8]}, "y"))
    assert exported is not None
    assert exported.nodes[2].module == "heads.cls" and exported.nodes[2].module_class == "Linear"
    assert exported.nodes[0].module == ""


@pytest.mark.parametrize(
    ("node", "words"),
    [
        (
            helper.make_node("Gemm", ["p", "blk.fc.weight"], ["y"], name="/blk/fc/Gemm"),
            ("transB = 0",),
        ),
        (helper.make_node("MatMul", ["p", "blk.fc.weight"], ["y"], name="/blk/fc/MatMul"), ("untransposed",)),
    ],
    ids=["gemm-without-transB", "matmul-on-the-parameter"],
)
def test_a_weight_op_no_linear_makes_leaves_the_class_unestablished(
    node: onnx.NodeProto, words: tuple[str, ...], tmp_path: Path
) -> None:
    """GPT-2's Conv1D (`x @ W`, W stored (in, out)) is not a Linear; the file shows it, so it is not guessed."""
    pool = helper.make_node("ReduceMean", ["x"], ["p"], name="/ReduceMean", axes=[2, 3], keepdims=0)
    path = tmp_path / "m.onnx"
    path.write_bytes(_model([pool, node], {"blk.fc.weight": [8, 4]}, "y").SerializeToString())
    exported = graph_from_node_names(read_model(path))
    assert exported is not None
    (fact,) = [i for i in exported.inferences if i.fact == "class"]
    assert fact.module == "blk.fc" and fact.value is None
    assert all(word in fact.basis for word in words)
    with pytest.raises(ValueError, match="no layer can be quantized"):
        create_quant_retrain_config_from_onnx(tmp_path / "c.json", path)


def test_a_weight_op_without_a_scoped_name_is_reported_not_guessed(tmp_path: Path) -> None:
    nodes = [
        _conv("/stem/Conv", "x", "stem.weight", "a"),
        _conv("Conv_3", "a", "onnx::Conv_8", "b"),
    ]
    path = tmp_path / "m.onnx"
    path.write_bytes(
        _model(nodes, {"stem.weight": [8, 8, 3, 3], "onnx::Conv_8": [8, 8, 3, 3]}, "b").SerializeToString()
    )
    out = tmp_path / "c.json"
    report = create_quant_retrain_config_from_onnx(out, path)
    assert list(json.loads(out.read_text())) == ["version", "batch_num", "stem"]
    (note,) = [n for n in report.notes if n.nodes == ("Conv_3",)]
    assert "cannot be established" in note.reason and "carries no module scope" in note.reason
    assert {i.fact for i in report.record("stem").inferred} == {"class", "name", "order"}
    text = report.to_text()
    assert (
        "inferred" in text.splitlines()[2]
        and "stem: class Conv2d (from its Conv op with a 4-D weight)" in text
    )
    data = json.loads(report.to_json())
    assert list(schemas.validator(REPORT_SCHEMA).iter_errors(data)) == []
    assert data["summary"]["inferred_layers"] == 1
    assert {"fact": "class", "value": "Conv2d", "basis": "from its Conv op with a 4-D weight"} in data[
        "layers"
    ][0]["inferred"]


_CONFIG = {
    "version": 1,
    "batch_num": 1,
    "conv1": {
        "retrain_enable": True,
        "retrain_data_config": {"algo": "ulq_quantize", "dst_type": "INT8"},
        "retrain_weight_config": {"algo": "arq_retrain", "channel_wise": True, "dst_type": "INT8"},
    },
}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("conv1", "retrain_data_config", "algo"),
            "magic",
            "'magic' is not allowed; expected 'ulq_quantize'",
        ),
        (
            ("conv1", "retrain_weight_config", "algo"),
            "arq",
            "'arq' is not allowed; expected one of 'arq_retrain', 'ulq_retrain'",
        ),
        (("version",), 2, "2 is not allowed; expected 1"),
        (("conv1", "retrain_data_config", "algo"), None, "null is not allowed; expected 'ulq_quantize'"),
    ],
    ids=["const", "enum", "const-number", "const-null"],
)
def test_validate_names_the_wrong_value(path: tuple[str, ...], value: object, message: str) -> None:
    config = json.loads(json.dumps(_CONFIG))
    holder = config
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    (problem,) = validate_config(json.dumps(config))
    assert problem.path == "$." + ".".join(path)
    assert problem.message == message


TOKEN_MODEL = """\
import torch
from torch import nn


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, ids, mask):
        return self.fc(self.emb(ids) * mask.unsqueeze(-1))


def build():
    return Tokens()
"""


def test_export_input_dtype_per_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    factory = tmp_path / "tokens.py"
    factory.write_text(TOKEN_MODEL)
    out = tmp_path / "tokens.onnx"
    shapes = ["--input-shape", "2,7", "--input-shape", "2,7"]
    spec = f"{factory}:build"
    args = ["export", spec, *shapes, "-o", str(out), "--exporter", "torchscript"]
    assert main([*args, "--input-dtype", "int64", "--input-dtype", "float32"]) == 0
    model = onnx.load(str(out), load_external_data=False)
    types = [value.type.tensor_type.elem_type for value in model.graph.input[:2]]
    assert types == [TensorProto.INT64, TensorProto.FLOAT]
    capsys.readouterr()
    assert main([*args, "--input-dtype", "int64", "--input-dtype", "int64", "--input-dtype", "int64"]) == 2
    assert "--input-dtype given 3 times for 2 --input-shape inputs" in capsys.readouterr().err
    assert main(["export", spec, "-o", str(out), "--input-dtype", "int64"]) == 2
    assert "--input-dtype needs --input-shape" in capsys.readouterr().err
