"""ONNX file (+ mapping file) -> `ExportedGraph`: the entrance of the offline analysis.

Imports neither torch nor the model's code. The ONNX file is read with `load_external_data=False` and only
names, op types, attributes and `dims` are used, so external-data files are never opened (they may be
missing) and files whose weights exceed protobuf's 2 GB limit load in milliseconds.

With a mapping file the mapping is trusted for owners, classes and parameters, after a cross-check
against the graph (`graph.mapping.apply_mapping`). Without one, the module scopes the dynamo exporter
writes into node metadata are used, and the module table is derived from them: class names only
(`torch_class_known=False`), in `named_modules()` order as far as the graph signature's parameter order
tells it. What such a file does not say is inferred and marked (`graph.infer`): the owner and class of a
Conv that torch's default optimizer fused with a BatchNorm, and, for a TorchScript export (no metadata),
owners from its scope-style node names, classes from the ops, the order from the initializers or the nodes.
A file with neither scopes nor scope-style node names is refused: a mapping file is needed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from graph.errors import GraphFileError
from graph.files import ONNX_LIMIT, read_limited
from graph.infer import assumed_ties, fuse_owners, graph_from_node_names
from graph.ir import ExportedGraph, ModuleInfo, TensorRecord
from graph.mapping import apply_mapping, read_mapping
from graph.proto import default_opset, file_producer, metadata, read_initializers, read_inputs, read_nodes
from graph.scopes import CLASS_HIERARCHY, NAME_SCOPES, _literal_list, dynamo_class_paths, dynamo_owner

logger = logging.getLogger(__name__)

GRAPH_SIGNATURE = "pkg.torch.export.ExportedProgram.graph_signature"
# set on nodes the onnxscript optimizer rewrote (torch.onnx.export's default optimize=True); a fused node
# (BatchNorm into Conv) carries the scope of the module fused into it, not of the one that made the op
REWRITE_RULE = "pkg.onnxscript.rewriter.rule_name"
FOLDED_FROM = "pkg.onnxscript.optimizer.folded_from"
# the node metadata entries the loader reads (a node carries several more, which are skipped)
_READ_METADATA = frozenset({NAME_SCOPES, CLASS_HIERARCHY, REWRITE_RULE})
WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
_SIGNATURE_ENTRY = re.compile(
    r"^\s*\S+:\s+(PARAMETER|BUFFER|CONSTANT_TENSOR)\s+target='([^']*)'", re.MULTILINE
)


def read_model(onnx_file: str | os.PathLike[str]) -> Any:
    """Parse an ONNX file without its external data, and check that it is a whole graph.

    Only the file itself is opened: an initializer's external-data `location` (which may name any path) is
    never followed. The file must be a regular file below protobuf's 2 GiB limit; nesting is bounded by
    protobuf's recursion limit (100 levels).

    Raises:
        GraphFileError: the file cannot be read, is not an ONNX model, is truncated, holds text that is not
            UTF-8, or its graph is not a graph (a node reads a tensor nothing produces before it, which is
            also how a cycle shows; a tensor produced twice).
    """
    import onnx
    from google.protobuf.message import DecodeError

    where = str(onnx_file)
    try:
        content = read_limited(onnx_file, ONNX_LIMIT)
    except OSError as err:
        raise GraphFileError(f"cannot read the ONNX file {where!r}: {err.strerror or err}") from err
    try:
        model = onnx.load_model_from_string(content)
    except (DecodeError, ValueError, RuntimeError, RecursionError, MemoryError) as err:
        why = f"truncated or corrupt? ({str(err) or type(err).__name__})"
        if "MaxDepth" in str(err) or isinstance(err, RecursionError):
            why = "messages (e.g. subgraphs in attributes) nested deeper than protobuf's limit of 100 levels"
        elif str(err) == "Error parsing message":  # protobuf before 5 names no cause
            why = (
                "truncated or corrupt, or messages (e.g. subgraphs in attributes) nested deeper than protobuf's "
                f"limit of 100 levels? ({err})"
            )
        raise GraphFileError(f"{where!r} is not a readable ONNX model: {why}") from err
    problems = _incomplete(model)
    if problems:
        raise GraphFileError(f"{where!r} is not a complete ONNX model (truncated or corrupt?): {problems}")
    return model


def _not_text(value: object) -> bool:
    """A proto2 string field whose bytes are not UTF-8 comes back as bytes."""
    return not isinstance(value, str)


def _bad_text(model: Any, nodes: bool = True) -> str:
    """The first name, op type or metadata entry the analysis reads that is not UTF-8 text, or ""; with
    `nodes` False, only outside the nodes."""
    graph = model.graph
    if _not_text(model.producer_name) or _not_text(model.producer_version):
        return "the producer name or version"
    for entry in model.opset_import:
        if _not_text(entry.domain):
            return "an opset_import domain"
    for prop in graph.metadata_props:
        if _not_text(prop.key) or _not_text(prop.value):
            return f"graph metadata entry {prop.key!r}"
    for kind, tensors in (
        ("initializer", graph.initializer),
        ("graph input", graph.input),
        ("graph output", graph.output),
    ):
        for tensor in tensors:
            if _not_text(tensor.name):
                return f"the name of {kind} {tensor.name!r}"
    for sparse in graph.sparse_initializer:
        if _not_text(sparse.values.name):
            return f"the name of sparse initializer {sparse.values.name!r}"
    for position, node in enumerate(graph.node if nodes else ()):
        where = f"node #{position} ({node.name!r})"
        if _not_text(node.name) or _not_text(node.op_type) or _not_text(node.domain):
            return f"the name, op type or domain of {where}"
        if any(map(_not_text, node.input)) or any(map(_not_text, node.output)):
            return f"an input or output name of {where}"
        for attr in node.attribute:
            if _not_text(attr.name):
                return f"an attribute name of {where}"
        for prop in node.metadata_props:
            if _not_text(prop.key) or _not_text(prop.value):
                return f"metadata entry {prop.key!r} of {where}"
    return ""


def _incomplete(model: Any) -> str:
    """Why a parsed model cannot be a whole graph, or "" (a cut at a field boundary still parses)."""
    if not model.HasField("graph") or not model.graph.node:
        return "it has no graph nodes"
    if default_opset(model) is None:
        return "it imports no default-domain opset"
    graph = model.graph
    known = {tensor.name for tensor in graph.initializer} | {value.name for value in graph.input}
    known |= {tensor.values.name for tensor in graph.sparse_initializer}
    produced = set(known)
    if not _nodes_are_whole(graph, produced):  # say which problem comes first, as the checks order them
        bad = _bad_text(model)
        if bad:
            return f"{bad} is not UTF-8 text"
        return _unproduced(graph, known)
    bad = _bad_text(model, nodes=False)
    if bad:
        return f"{bad} is not UTF-8 text"
    dangling = [value.name for value in graph.output if value.name not in produced]
    if dangling or not graph.output:
        return f"graph output(s) {', '.join(map(repr, dangling)) or '(none)'} are not produced"
    return ""


def _nodes_are_whole(graph: Any, known: set[str]) -> bool:
    """One pass over the nodes: every text the analysis reads is UTF-8 text, every input is produced
    before it is read and no output is produced twice. `known` (initializers and graph inputs) grows by the
    nodes' outputs. False sends the caller to the checks that word the first problem."""
    text = str
    for node in graph.node:
        if type(node.name) is not text or type(node.op_type) is not text or type(node.domain) is not text:
            return False
        for tensor in node.input:
            if type(tensor) is not text or (tensor and tensor not in known):
                return False
        outputs = node.output
        for tensor in outputs:
            if type(tensor) is not text or (tensor and tensor in known):
                return False
        known.update(outputs)
        for attr in node.attribute:
            if type(attr.name) is not text:
                return False
        for prop in node.metadata_props:
            if type(prop.key) is not text or type(prop.value) is not text:
                return False
    return True


def _unproduced(graph: Any, known: set[str]) -> str:
    """The first node that reads a tensor not produced before it or writes one produced already, or ""."""
    for position, node in enumerate(graph.node):
        for tensor in node.input:
            if tensor and tensor not in known:
                return (
                    f"node #{position} ({node.name or node.op_type!r}) reads {tensor!r}, which no initializer, "
                    "graph input or earlier node produces (a missing producer, nodes out of topological "
                    "order, or a cycle)"
                )
        for tensor in node.output:
            if tensor and tensor in known:
                return (
                    f"node #{position} ({node.name or node.op_type!r}) writes {tensor!r}, which an "
                    "initializer, a graph input or an earlier node produces already"
                )
        known.update(node.output)
    dangling = [value.name for value in graph.output if value.name not in known]
    if dangling or not graph.output:
        return f"graph output(s) {', '.join(map(repr, dangling)) or '(none)'} are not produced"
    return ""


def load_graph(
    onnx_file: str | os.PathLike[str], mapping_file: str | os.PathLike[str] | None = None
) -> ExportedGraph:
    """Read an exported ONNX file (and its mapping file) into the records the analysis reads.

    Args:
        onnx_file: the ONNX file; its external-data files are never opened.
        mapping_file: the mapping written with it (`graph.export.export_onnx`); None to rely on the module
            scopes in the node metadata of a dynamo export.

    Raises:
        GraphFileError: a file cannot be read, the mapping does not match the graph (the message names the
            entries), or the file has no module scopes and no mapping file was given.
    """
    model = read_model(onnx_file)
    if mapping_file is not None:
        data = read_mapping(mapping_file)
        return apply_mapping(model, data, str(onnx_file), str(mapping_file))
    exported = graph_from_metadata(model, str(onnx_file))
    beside = _beside(str(onnx_file))
    if exported.inferences and beside.exists():
        logger.warning(
            "%s: %d fact(s) the file does not say were inferred; the mapping file beside it (%s) would say "
            "them: pass it as the mapping file",
            onnx_file,
            len(exported.inferences),
            beside,
        )
    return exported


def _beside(onnx_file: str) -> Path:
    path = Path(onnx_file)
    if path.suffix.lower() == ".onnx":
        return path.with_suffix(".mapping.json")
    return path.with_name(path.name + ".mapping.json")


def graph_from_metadata(model: Any, onnx_name: str = "<model>") -> ExportedGraph:
    """Records of a dynamo-exported model from its node metadata alone (no mapping file).

    Raises:
        GraphFileError: no node carries module scopes (e.g. a TorchScript export): a mapping file is needed.
    """
    graph = model.graph
    owners: list[tuple[str | None, str | None]] = []
    class_paths: dict[str, str] = {}
    scope_order: list[str] = []
    rules: dict[int, str] = {}  # node position -> the optimizer rule that rewrote it
    for position, node in enumerate(graph.node):
        props = {prop.key: prop.value for prop in node.metadata_props if prop.key in _READ_METADATA}
        owners.append(dynamo_owner(props))
        for path, cls in dynamo_class_paths(props).items():
            if path not in class_paths:
                class_paths[path] = cls
                scope_order.append(path)
        if REWRITE_RULE in props:
            rules[position] = props[REWRITE_RULE]
    owned = read_nodes(graph, owners)
    if not class_paths:
        from_names = graph_from_node_names(model)
        if from_names is not None:
            return from_names
        beside = _beside(onnx_name)
        hint = f" (e.g. {str(beside)!r}, beside it)" if beside.exists() else ""
        raise GraphFileError(
            f"{onnx_name!r} carries no module scopes in its node metadata and no scope-style node names "
            f"(producer {model.producer_name or '?'} {model.producer_version}): "
            f"a mapping file is needed; pass the one written with it by graph.export.export_onnx{hint}"
        )
    params, buffers = _signature_targets(model)
    fused = fuse_owners(
        owned,
        rules,
        params,
        _folded_from(graph),
        {tensor.name: tensor.dims for tensor in read_initializers(graph)},
        class_paths,
    )
    if fused.owners:
        owned = tuple(
            replace(record, module=fused.owners[position][0], module_class=fused.owners[position][1])
            if position in fused.owners
            else record
            for position, record in enumerate(owned)
        )
        class_paths = {**class_paths, **fused.class_paths}
    modules = derive_modules(params, buffers, scope_order, class_paths)
    targets = set(params) | set(buffers)
    folded = _folded_from(graph)
    initializers = tuple(
        TensorRecord(
            tensor.name,
            tensor.dims,
            (tensor.name,) if tensor.name in targets else (),
            hook_sources(folded.get(tensor.name, ()), targets) if tensor.name not in targets else (),
        )
        for tensor in read_initializers(graph)
    )
    inputs = read_inputs(graph)
    producer = file_producer(model, "dynamo", tuple(tensor.dims for tensor in inputs))
    unresolved = {owned[position].name: why for position, why in fused.unresolved.items()}
    inferences = (*fused.inferences, *assumed_ties(owned, (tensor.name for tensor in initializers)))
    return ExportedGraph(owned, initializers, inputs, modules, producer, None, inferences, unresolved)


# the parameters and buffers torch.nn.utils' weight hooks keep a computed weight in: weight norm's `<name>_g`
# and `<name>_v`, spectral norm's `<name>_orig`, `<name>_u`, `<name>_v`, pruning's `<name>_orig` and `<name>_mask`
_HOOK_SOURCE = re.compile(r"_(?:g|v|u|orig|mask)$")


def hook_sources(sources: Iterable[str], targets: set[str]) -> tuple[str, ...]:
    """The parameters and buffers a folded initializer was computed from by a weight hook (the optimizer
    folded weight norm, spectral norm or a pruning mask into one constant), or () when it is something
    else: a transposed copy of one weight, a BatchNorm folded into a conv."""
    named = sorted({source for source in sources if source in targets})
    if len(named) >= 2 and all(_HOOK_SOURCE.search(name) for name in named):
        return tuple(named)
    return ()


def _folded_from(graph: Any) -> dict[str, tuple[str, ...]]:
    """Initializer -> the tensors the onnxscript optimizer folded it from (a pre-transposed Linear weight)."""
    found: dict[str, tuple[str, ...]] = {}
    for value in graph.value_info:
        for prop in value.metadata_props:
            if prop.key == FOLDED_FROM:
                sources = _literal_list(prop.value)
                if sources:
                    found[value.name] = sources
    return found


def _signature_targets(model: Any) -> tuple[list[str], list[str]]:
    """Parameter names, then buffer and constant names, in the order of the exported program's signature
    (the model's `named_parameters()` order); the initializers' order when the signature is missing."""
    signature = metadata(model.graph.metadata_props).get(GRAPH_SIGNATURE, "")
    entries = _SIGNATURE_ENTRY.findall(signature)
    if entries:
        params = [target for kind, target in entries if kind == "PARAMETER"]
        return params, [target for kind, target in entries if kind != "PARAMETER"]
    return [tensor.name for tensor in model.graph.initializer], []


def _owner(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _ancestors(name: str) -> Iterable[str]:
    """`name` and every module above it, up to the root ''."""
    yield name
    while name:
        name = _owner(name)
        yield name


def derive_modules(
    params: Sequence[str], buffers: Sequence[str], scope_order: Sequence[str], class_paths: Mapping[str, str]
) -> tuple[ModuleInfo, ...]:
    """The module table of a file without a mapping, in `named_modules()` order.

    `named_modules()` lists a module before its children, children in registration order; parameters
    follow the same order. So every module is ranked by the first parameter of its subtree in the
    signature (then buffers, then its first appearance in the graph when its subtree has none), and the
    tree is walked depth-first with children in rank order. Only modules whose class the metadata names are
    listed: a module that never ran has no class in the file.
    """
    rank: dict[str, tuple[int, int]] = {}
    # a name in `rank` has its ancestors there too (ranked as early or earlier): the walk up stops there
    for position, target in enumerate((*params, *buffers)):
        for name in _ancestors(_owner(target)):
            if name in rank:
                break
            rank[name] = (0, position)
    for position, path in enumerate(scope_order):
        for name in _ancestors(path):
            if name in rank:
                break
            rank[name] = (1, position)
    children: dict[str, list[str]] = {}
    for name in rank:
        if name:
            children.setdefault(_owner(name), []).append(name)
    own_params: dict[str, list[str]] = {}
    for target in params:
        own_params.setdefault(_owner(target), []).append(target)
    ordered: list[str] = []
    stack = [""]
    while stack:
        name = stack.pop()
        ordered.append(name)
        stack.extend(sorted(children.get(name, ()), key=lambda child: rank[child], reverse=True))
    return tuple(
        ModuleInfo(
            name=name,
            class_name=class_paths[name].rsplit(".", 1)[-1],
            class_path=class_paths[name],
            torch_class=None,
            torch_class_known=False,
            parameters=tuple(own_params.get(name, ())),
        )
        for name in ordered
        if name in class_paths
    )
