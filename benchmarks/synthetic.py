"""Synthetic ONNX graphs of any size, shaped like a dynamo export of a stack of MLP blocks.

Every node carries the dynamo exporter's `pkg.torch.onnx.name_scopes` / `pkg.torch.onnx.class_hierarchy`
metadata, so the file analyses without a mapping file. Weights are external data that is never written (the
data file is created sparse, with the right length), as for a weight-free export of a big model: the loader
must only read the initializers' `dims`.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
CLASS_HIERARCHY = "pkg.torch.onnx.class_hierarchy"
ROOT_CLASS = "benchmarks.synthetic.Model"
BLOCK_CLASS = "benchmarks.synthetic.Block"
LINEAR_CLASS = "torch.nn.modules.linear.Linear"
NORM_CLASS = "torch.nn.modules.normalization.LayerNorm"
LIST_CLASS = "torch.nn.modules.container.ModuleList"
WIDTH = 64
NODES_PER_BLOCK = 10  # see _Builder.block


def _meta(node: onnx.NodeProto, scopes: list[str], classes: list[str]) -> None:
    """The metadata the dynamo exporter writes on every node (the last three only for realism of size)."""
    fx_name, aten = scopes[-1], classes[-1]
    namespace = "/".join(f"{scope}: {cls}" for scope, cls in zip(scopes, classes, strict=True))
    fx_node = (
        f"%{fx_name} : [num_users=1] = call_function[target=torch.ops.{aten}](args = (%x,), kwargs = {{}})"
    )
    stack = f'File "benchmarks/synthetic.py", line 1, in forward\n    return self.{scopes[-2] or "root"}(x)'
    for key, value in (
        ("namespace", namespace),
        (CLASS_HIERARCHY, repr(classes)),
        (NAME_SCOPES, repr(scopes)),
        ("pkg.torch.onnx.fx_node", fx_node),
        ("pkg.torch.onnx.stack_trace", stack),
    ):
        entry = node.metadata_props.add()
        entry.key, entry.value = key, value


class _Builder:
    def __init__(self, data_file: str) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.data_file = data_file
        self.offset = 0
        self.fx = 0

    def weight(self, name: str, dims: list[int]) -> str:
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
        length = 4
        for dim in dims:
            length *= dim
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (
            ("location", self.data_file),
            ("offset", str(self.offset)),
            ("length", str(length)),
        ):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.offset += length
        self.initializers.append(tensor)
        return name

    def op(
        self,
        op_type: str,
        inputs: list[str],
        scopes: list[str],
        classes: list[str],
        aten: str,
        **attrs: object,
    ) -> str:
        fx_name = f"{aten.split('.')[1]}_{self.fx}"
        self.fx += 1
        out = f"{fx_name}_out"
        node = helper.make_node(op_type, inputs, [out], name=f"node_{fx_name}", **attrs)
        _meta(node, [*scopes, fx_name], [*classes, aten])
        self.nodes.append(node)
        return out

    def linear(self, x: str, path: list[str], classes: list[str]) -> str:
        """A Linear on 3-D input as dynamo exports it: Transpose of the weight, MatMul, Add of the bias."""
        name = path[-1]
        scopes, cls = path, [*classes, LINEAR_CLASS]
        weight = self.weight(f"{name}.weight", [WIDTH, WIDTH])
        bias = self.weight(f"{name}.bias", [WIDTH])
        wt = self.op("Transpose", [weight], scopes, cls, "aten.t.default", perm=[1, 0])
        y = self.op("MatMul", [x, wt], scopes, cls, "aten.matmul.default")
        return self.op("Add", [y, bias], scopes, cls, "aten.add.Tensor")

    def block(self, x: str, i: int) -> str:
        """Ten nodes: LayerNorm, fc1 (3), SiLU (2), fc2 (3), the residual Add, in module `blocks.<i>`."""
        base = ["", "blocks", f"blocks.{i}"]
        classes = [ROOT_CLASS, LIST_CLASS, BLOCK_CLASS]
        norm = f"blocks.{i}.norm"
        scale, shift = self.weight(f"{norm}.weight", [WIDTH]), self.weight(f"{norm}.bias", [WIDTH])
        y = self.op(
            "LayerNormalization",
            [x, scale, shift],
            [*base, norm],
            [*classes, NORM_CLASS],
            "aten.layer_norm.default",
            axis=-1,
        )
        y = self.linear(y, [*base, f"blocks.{i}.fc1"], classes)
        y = self.op(
            "Mul",
            [y, self.op("Sigmoid", [y], base, classes, "aten.sigmoid.default")],
            base,
            classes,
            "aten.mul.Tensor",
        )
        y = self.linear(y, [*base, f"blocks.{i}.fc2"], classes)
        return self.op("Add", [x, y], base, classes, "aten.add.Tensor")


def synthetic_model(nodes: int, data_file: str = "weights.bin") -> tuple[onnx.ModelProto, int]:
    """A model of about `nodes` nodes (a multiple of ten); returns it and the length of its external data."""
    builder = _Builder(data_file)
    x = "x"
    for i in range(max(1, nodes // NODES_PER_BLOCK)):
        x = builder.block(x, i)
    graph = helper.make_graph(
        builder.nodes,
        "synthetic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, WIDTH])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 8, WIDTH])],
        initializer=builder.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="pytorch")
    return model, builder.offset


def write_synthetic(folder: Path, nodes: int) -> Path:
    """Write a synthetic model of `nodes` nodes and its (sparse, never read) data file; return the model path."""
    folder.mkdir(parents=True, exist_ok=True)
    model, length = synthetic_model(nodes, f"synthetic_{nodes}.bin")
    path = folder / f"synthetic_{nodes}.onnx"
    with open(folder / f"synthetic_{nodes}.bin", "wb") as handle:
        handle.truncate(length)
    onnx.save_model(model, path)
    return path
