"""An ONNX `ModelProto` read into QuantScope's records: op types, attributes, tensor names and shapes.

Shared by the TorchScript export path and the offline loader, so both read a file the same way. Only
`dims` and type shapes are read; tensor data (inline or external) is never touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

from graph.ir import AttrValue, NodeRecord, Producer, TensorRecord

# onnx.AttributeProto.AttributeType values (kept here so this module imports without onnx)
_FLOAT, _INT, _STRING = 1, 2, 3
_FLOATS, _INTS, _STRINGS = 6, 7, 8


def attr_value(attr: Any) -> AttrValue:
    """An `AttributeProto` as a plain, hashable Python value; tensors and graphs become None.

    Gives the same values as the onnx_ir attributes the dynamo path reads (str, not bytes).
    """
    kind = attr.type
    if kind == _INT:
        return int(attr.i)
    if kind == _FLOAT:
        return float(attr.f)
    if kind == _STRING:
        return bytes(attr.s).decode("utf-8", errors="replace")
    if kind == _INTS:
        return tuple(int(v) for v in attr.ints)
    if kind == _FLOATS:
        return tuple(float(v) for v in attr.floats)
    if kind == _STRINGS:
        return tuple(bytes(v).decode("utf-8", errors="replace") for v in attr.strings)
    return None


def value_dims(value_info: Any) -> tuple[int | None, ...]:
    """The shape of a graph input/output `ValueInfoProto`; a symbolic or missing dimension is None."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return ()
    return tuple(int(dim.dim_value) if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim)


def node_keys(names: Iterable[str]) -> tuple[str, ...]:
    """Unique keys for nodes, in graph order: the node name, `#<index>` for an unnamed node, and
    `<name>#<index>` for a name seen before (ONNX does not require unique node names)."""
    keys: list[str] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        key = name or f"#{index}"
        while key in seen:  # a node may be literally named like another's key (`#1`, `a#2`): append again
            key = f"{key}#{index}"
        seen.add(key)
        keys.append(key)
    return tuple(keys)


def metadata(props: Iterable[Any]) -> dict[str, str]:
    """`metadata_props` (a repeated StringStringEntryProto) as a dict."""
    return {prop.key: prop.value for prop in props}


def read_nodes(
    graph: Any, owners: Sequence[tuple[str | None, str | None]] | None = None
) -> tuple[NodeRecord, ...]:
    """The graph's nodes as records, in graph order, each with its (module, module class) from `owners`
    (one pair per node), or with no owner yet (None, None)."""
    nodes = list(graph.node)
    keys = node_keys(node.name for node in nodes)
    pairs: Iterable[tuple[str | None, str | None]] = owners if owners is not None else repeat((None, None))
    return tuple(
        NodeRecord(
            key,
            node.op_type,
            tuple(node.input),
            tuple(node.output),
            {attr.name: attr_value(attr) for attr in node.attribute},
            module,
            module_class,
            node.domain,
        )
        for key, node, (module, module_class) in zip(keys, nodes, pairs, strict=owners is not None)
    )


def read_initializers(graph: Any) -> tuple[TensorRecord, ...]:
    """Initializers by name and `dims` (sparse ones by their dense shape); data is never read."""
    dense = tuple(
        TensorRecord(tensor.name, tuple(int(d) for d in tensor.dims)) for tensor in graph.initializer
    )
    sparse = tuple(
        TensorRecord(tensor.values.name, tuple(int(d) for d in tensor.dims))
        for tensor in graph.sparse_initializer
    )
    return dense + sparse


def read_inputs(graph: Any) -> tuple[TensorRecord, ...]:
    return tuple(TensorRecord(value.name, value_dims(value)) for value in graph.input)


def default_opset(model: Any) -> int | None:
    """The version of the default ('' / 'ai.onnx') operator set the model imports."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def file_producer(model: Any, exporter: str, input_shapes: tuple[tuple[int | None, ...], ...]) -> Producer:
    """The provenance a `ModelProto` read without its mapping file states of itself."""
    return Producer(
        exporter=exporter,
        opset=default_opset(model),
        torch_version=model.producer_version if model.producer_name == "pytorch" else None,
        onnx_version=None,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        input_shapes=input_shapes,
    )


def structure_digest(
    nodes: Iterable[NodeRecord], initializers: Iterable[TensorRecord], inputs: Iterable[TensorRecord]
) -> str:
    """A SHA-256 over what the analysis reads of a graph: nodes (key, op, attributes, edges), initializer
    names and shapes, graph inputs. Two files with the same digest give the same analysis."""
    digest = hashlib.sha256()

    def feed(*parts: object) -> None:
        digest.update(repr(parts).encode("utf-8"))
        digest.update(b"\n")

    for node in nodes:
        feed(
            "node", node.name, node.domain, node.op_type, node.inputs, node.outputs, _sorted_attrs(node.attrs)
        )
    for tensor in initializers:
        feed("initializer", tensor.name, tensor.dims)
    for tensor in inputs:
        feed("input", tensor.name, tensor.dims)
    return digest.hexdigest()


def _sorted_attrs(attrs: Mapping[str, AttrValue]) -> tuple[tuple[str, AttrValue], ...]:
    return tuple(sorted(attrs.items()))
