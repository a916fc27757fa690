"""The analysed ONNX graph, weight-free, with every decision written into its nodes' metadata.

Open the result in Netron: each Gemm/MatMul/Conv/ConvTranspose node of a layer the report lists carries
`quantscope.decision`, `quantscope.reason` (and `quantscope.code`, `quantscope.layer`, ... when they
apply) in its metadata. Initializers keep their name, type and dims (so shapes still show) but lose their
data and any external-data reference: no weight is read or written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from analyzer.errors import InputFileError, OutputError
from analyzer.report import NOT_CANDIDATE, Report
from graph import files
from graph.proto import node_keys

PREFIX = "quantscope."
DECISION = PREFIX + "decision"
REASON = PREFIX + "reason"
CODE = PREFIX + "code"
CHECK = PREFIX + "check"
LAYER = PREFIX + "layer"
CLASS = PREFIX + "class"
ADVISORIES = PREFIX + "advisories"
SUMMARY = PREFIX + "summary"
WEIGHTS = PREFIX + "weights"


def _graphs(graph: Any) -> Iterator[Any]:
    """`graph` and every subgraph held in a node attribute (If/Loop/Scan bodies), depth first."""
    import onnx

    stack = [graph]
    while stack:
        current = stack.pop()
        yield current
        for node in current.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attr.graphs)


def _strip(tensor: Any) -> None:
    """Keep a tensor's name, type and dims; drop its data and external-data reference."""
    import onnx

    kept = onnx.TensorProto(
        name=tensor.name, data_type=tensor.data_type, dims=tensor.dims, doc_string=tensor.doc_string
    )
    tensor.CopyFrom(kept)


def strip_weights(model: Any) -> None:
    """Remove every initializer's data, and any external-data reference anywhere, in place."""
    import onnx

    for graph in _graphs(model.graph):
        for tensor in graph.initializer:
            _strip(tensor)
        for sparse in graph.sparse_initializer:
            _strip(sparse.values)
            _strip(sparse.indices)
        for node in graph.node:  # a Constant may point at external data too; never carry the reference over
            for attr in node.attribute:
                tensors = [attr.t] if attr.type == onnx.AttributeProto.TENSOR else list(attr.tensors)
                for tensor in tensors:
                    if tensor.data_location == onnx.TensorProto.EXTERNAL:
                        _strip(tensor)


def _set_metadata(holder: Any, values: Mapping[str, str]) -> None:
    """Set `values` in a protobuf's `metadata_props`, replacing entries with the same key."""
    kept = [(entry.key, entry.value) for entry in holder.metadata_props if entry.key not in values]
    del holder.metadata_props[:]
    for key, value in [*kept, *values.items()]:
        holder.metadata_props.add(key=key, value=value)


def node_annotations(report: Report) -> dict[str, dict[str, str]]:
    """The metadata to put on each ONNX node, by node name."""
    out: dict[str, dict[str, str]] = {}
    for record in report.layers:
        values = {
            LAYER: record.name,
            CLASS: record.class_name,
            DECISION: record.decision,
            REASON: record.reason,
        }
        if record.code:
            values[CODE] = record.code
        if record.check:
            values[CHECK] = record.check
        if record.advisories:
            values[ADVISORIES] = "; ".join(f"{a.code} {a.check}: {a.reason}" for a in record.advisories)
        for node in record.nodes:
            out.setdefault(node, {}).update(values)
    for note in report.notes:  # ops whose module could not be established
        for node in note.nodes:
            out.setdefault(
                node, {DECISION: NOT_CANDIDATE, REASON: note.reason, CODE: note.code, CHECK: note.check}
            )
    return out


def annotate_model(model: Any, report: Report) -> int:
    """Strip a ModelProto's weights and annotate its nodes, in place; return how many nodes were annotated."""
    strip_weights(model)
    wanted = node_annotations(report)
    done = 0
    # the report names nodes by the loader's keys (`#<index>` for an unnamed node, `<name>#<index>` for a repeat)
    for key, node in zip(node_keys(node.name for node in model.graph.node), model.graph.node, strict=True):
        values = wanted.get(key)
        if values:
            _set_metadata(node, values)
            done += 1
    _set_metadata(model, {SUMMARY: report.summary_line(), WEIGHTS: "stripped (shapes only)"})
    return done


def _same_file(first: Path, second: Path) -> bool:
    try:
        return second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def write_annotated(
    onnx_file: str | os.PathLike[str], report: Report, out_file: str | os.PathLike[str]
) -> Path:
    """Write a weight-free copy of `onnx_file` whose nodes carry `report`'s decisions; return its path.

    The copy is written atomically (temporary file in the target folder, then a rename). External-data files
    are never opened.

    Raises:
        InputFileError: `onnx_file` cannot be read as an ONNX model.
        OutputError: `out_file` is the input model itself, or cannot be written.
    """
    from graph.errors import GraphFileError
    from graph.load import read_model

    source, target = Path(onnx_file), Path(out_file)
    if _same_file(source, target):
        raise OutputError(
            f"{str(target)!r} is the input model; the annotated copy has no weights and would replace it"
        )
    try:
        model = read_model(source)  # the same reader as the analysis: regular file, size limit, no weights
    except GraphFileError as err:
        raise InputFileError(str(err)) from err
    annotate_model(model, report)
    try:
        files.write_atomic(target, model.SerializeToString())
    except OSError as err:
        raise OutputError(f"cannot write {str(target)!r}: {err.strerror or err}") from err
    return target
