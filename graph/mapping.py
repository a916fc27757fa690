"""The mapping file: what an ONNX file cannot say about the torch model it came from.

JSON, versioned, validated against `schemas/mapping.schema.json` on read and before write. It records:
- every module in `named_modules()` order: name, class name, class path, the torch.nn class it is an
  instance of (the candidate rule needs both), its own parameter names, and (since version 2) its other
  names when it is registered under several (`aliases`) and the constructor facts the graph cannot show
  (an LSTM's dropout, num_layers, ...: `config`);
- every node of the graph -> the module whose forward made it, by its first name (null when none can be
  established);
- every initializer -> its shape and the parameter/buffer names it stands for (renamed, merged or tied), and
  (since version 3) for a weight the exporter folded from the module's parameters (weight norm, spectral norm,
  a pruning mask: the graph then shows one constant) the parameters and buffers it was computed from
  (`computed_from`, written only when there are some);
- the groups of tied parameters, so that the checks tell real ties from initializers an exporter merged;
- the producer (exporter, opset, torch/onnx versions, input shapes) and a digest of the graph, so that a
  mapping is never applied to another graph.

`apply_mapping` cross-checks a mapping against a graph and raises `GraphFileError` naming every entry
that disagrees; it never ignores one silently.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import schemas
from graph.errors import GraphFileError
from graph.files import MAPPING_LIMIT, read_limited, write_atomic
from graph.ir import ExportedGraph, ModuleInfo, NodeRecord, Producer, TensorRecord, alias_owners
from graph.proto import default_opset, read_initializers, read_inputs, read_nodes, structure_digest

MAPPING_SCHEMA = "mapping.schema.json"
FORMAT = "quantscope-mapping"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # version 1: no `aliases` in the module entries; before 3: no `computed_from`
_SHOWN = 5  # entries named per kind of mismatch; the count says how many more


def build_mapping(graph: ExportedGraph, saved: Any, onnx_name: str) -> dict[str, Any]:
    """The mapping of the ONNX file `saved` (its `ModelProto`, read back after writing) from the records of
    the same export, which know the owners, classes and parameters.

    Raises:
        ValueError: the records and the saved file disagree (a bug, never a property of the model).
    """
    nodes = read_nodes(saved.graph)
    initializers = read_initializers(saved.graph)
    aliases = alias_owners(graph.modules)
    owners = {
        node.name: aliases.get(node.module, node.module) if node.module is not None else None
        for node in graph.nodes
    }
    unknown = [node.name for node in nodes if node.name not in owners]
    if unknown:
        raise ValueError(f"the saved ONNX file has nodes the export did not report: {_names(unknown)}")
    params = {tensor.name: tensor.params for tensor in graph.initializers}
    computed = {tensor.name: tensor.computed_from for tensor in graph.initializers if tensor.computed_from}
    producer = graph.producer
    return {
        "format": FORMAT,
        "version": VERSION,
        "onnx_file": onnx_name,
        "producer": {
            "exporter": producer.exporter,
            "opset": producer.opset if producer.opset is not None else default_opset(saved),
            "torch_version": producer.torch_version,
            "onnx_version": producer.onnx_version,
            "producer_name": saved.producer_name or producer.producer_name,
            "producer_version": saved.producer_version or producer.producer_version,
            "input_shapes": [list(shape) for shape in producer.input_shapes],
        },
        "graph": {
            "digest": structure_digest(nodes, initializers, read_inputs(saved.graph)),
            "nodes": len(nodes),
            "initializers": len(initializers),
        },
        "modules": [
            {
                "name": info.name,
                "class_name": info.class_name,
                "class_path": info.class_path,
                "torch_class": info.torch_class,
                "parameters": list(info.parameters),
                "aliases": list(info.aliases),
                "config": dict(info.config or ()),
            }
            for info in graph.modules
        ],
        "nodes": {node.name: {"op_type": node.op_type, "module": owners[node.name]} for node in nodes},
        "initializers": {
            tensor.name: {"dims": list(tensor.dims), "params": list(params.get(tensor.name, ()))}
            | ({"computed_from": list(computed[tensor.name])} if tensor.name in computed else {})
            for tensor in initializers
        },
        "tied_parameters": [list(group) for group in graph.tied_parameters or ()],
    }


def dumps(mapping: dict[str, Any]) -> str:
    return json.dumps(mapping, indent=1, ensure_ascii=False) + "\n"


def write_mapping(path: str | os.PathLike[str], mapping: dict[str, Any]) -> Path:
    """Validate `mapping` against the schema and write it atomically."""
    errors = schema_errors(mapping)
    if errors:
        raise ValueError("the mapping does not satisfy its schema: " + "; ".join(errors[:_SHOWN]))
    return write_atomic(path, dumps(mapping))


def schema_errors(mapping: Any) -> list[str]:
    """Every violation of the mapping schema, as '<json path>: <message>', sorted.

    A mapping is first checked in plain Python against the same rules (`_fits_schema`, many times faster than
    the validator on a big graph); only one that fails it goes through the schema validator, which words
    the errors and has the last word.
    """
    if _fits_schema(mapping):
        return []
    found = schemas.validator(MAPPING_SCHEMA).iter_errors(mapping)
    return sorted(f"{error.json_path}: {error.message}" for error in found)


_DIGEST = re.compile("[0-9a-f]{64}")
_TOP_KEYS = frozenset(
    (
        "format",
        "version",
        "onnx_file",
        "producer",
        "graph",
        "modules",
        "nodes",
        "initializers",
        "tied_parameters",
    )
)
_PRODUCER_KEYS = frozenset(
    (
        "exporter",
        "opset",
        "torch_version",
        "onnx_version",
        "producer_name",
        "producer_version",
        "input_shapes",
    )
)
_GRAPH_KEYS = frozenset(("digest", "nodes", "initializers"))
_MODULE_KEYS_V1 = frozenset(("name", "class_name", "class_path", "torch_class", "parameters"))
_MODULE_KEYS = _MODULE_KEYS_V1 | {"aliases", "config"}
_NODE_KEYS = frozenset(("op_type", "module"))
_INITIALIZER_KEYS = frozenset(("dims", "params"))
_INITIALIZER_KEYS_V3 = _INITIALIZER_KEYS | {"computed_from"}


def _count(value: Any, least: int) -> bool:
    return type(value) is int and value >= least


def _texts(value: Any) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _object(value: Any, keys: frozenset[str]) -> bool:
    """A dict with exactly `keys` (the schema requires every property it allows)."""
    return type(value) is dict and value.keys() == keys


def _fits_schema(data: Any) -> bool:
    """Whether `data` satisfies `schemas/mapping.schema.json`, checked in plain Python. Stricter than the
    schema where that keeps it simple (an integer must be an int, not 1.0): False only means "let the
    validator decide"; True means the validator would find nothing."""
    if not (_object(data, _TOP_KEYS) and data["format"] == FORMAT and type(data["format"]) is str):
        return False
    if not (
        type(data["version"]) is int
        and data["version"] in READABLE_VERSIONS
        and type(data["onnx_file"]) is str
    ):
        return False
    module_keys = _MODULE_KEYS if data["version"] >= 2 else _MODULE_KEYS_V1
    producer = data["producer"]
    if not (
        _object(producer, _PRODUCER_KEYS)
        and producer["exporter"] in ("dynamo", "torchscript")
        and type(producer["exporter"]) is str
        and (producer["opset"] is None or _count(producer["opset"], 1))
        and all(
            producer[key] is None or type(producer[key]) is str for key in ("torch_version", "onnx_version")
        )
        and type(producer["producer_name"]) is str
        and type(producer["producer_version"]) is str
        and type(producer["input_shapes"]) is list
        and all(
            type(shape) is list and all(dim is None or _count(dim, 0) for dim in shape)
            for shape in producer["input_shapes"]
        )
    ):
        return False
    graph = data["graph"]
    if not (
        _object(graph, _GRAPH_KEYS)
        and type(graph["digest"]) is str
        and _DIGEST.fullmatch(graph["digest"]) is not None
        and _count(graph["nodes"], 0)
        and _count(graph["initializers"], 0)
    ):
        return False
    modules = data["modules"]
    if type(modules) is not list or not all(
        _object(module, module_keys)
        and type(module["name"]) is str
        and type(module["class_name"]) is str
        and module["class_name"] != ""
        and type(module["class_path"]) is str
        and (
            module["torch_class"] is None
            or (type(module["torch_class"]) is str and module["torch_class"] != "")
        )
        and _texts(module["parameters"])
        and _texts(aliases := module.get("aliases", []))
        and len(set(aliases)) == len(aliases)
        and type(config := module.get("config", {})) is dict
        and all(value is None or type(value) in (bool, int, float, str) for value in config.values())
        for module in modules
    ):
        return False
    nodes = data["nodes"]
    if type(nodes) is not dict or not all(
        _object(node, _NODE_KEYS)
        and type(node["op_type"]) is str
        and node["op_type"] != ""
        and (node["module"] is None or type(node["module"]) is str)
        for node in nodes.values()
    ):
        return False
    initializers = data["initializers"]
    if type(initializers) is not dict or not all(
        (
            _object(tensor, _INITIALIZER_KEYS)
            or (data["version"] >= 3 and _object(tensor, _INITIALIZER_KEYS_V3))
        )
        and type(tensor["dims"]) is list
        and all(_count(dim, 0) for dim in tensor["dims"])
        and _texts(tensor["params"])
        and len(set(tensor["params"])) == len(tensor["params"])
        and _texts(computed := tensor.get("computed_from", []))
        and len(set(computed)) == len(computed)
        for tensor in initializers.values()
    ):
        return False
    tied = data["tied_parameters"]
    return type(tied) is list and all(
        _texts(group) and len(group) >= 2 and len(set(group)) == len(group) for group in tied
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a mapping file.

    Raises:
        GraphFileError: the file cannot be read, is not JSON, is of another format or version, violates
            the schema, or contradicts itself (a node owned by a module the table does not list).
    """
    where = str(path)
    try:
        text = read_limited(path, MAPPING_LIMIT).decode("utf-8")
    except OSError as err:
        raise GraphFileError(f"cannot read the mapping file {where!r}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise GraphFileError(
            f"the mapping file {where!r} is not UTF-8 text (byte {err.start}: {err.reason})"
        ) from err
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ValueError as err:  # JSONDecodeError is a ValueError, and so is a duplicate key
        raise GraphFileError(f"the mapping file {where!r} is not valid JSON: {err}") from err
    except RecursionError as err:
        raise GraphFileError(f"the mapping file {where!r} nests arrays or objects too deeply") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GraphFileError(f'{where!r} is not a QuantScope mapping file (no "format": "{FORMAT}")')
    version = data.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise GraphFileError(
            f"the mapping file {where!r} has version {version!r}; this QuantScope reads versions {readable}"
        )
    errors = schema_errors(data)
    if errors:
        more = f" (and {len(errors) - _SHOWN} more)" if len(errors) > _SHOWN else ""
        raise GraphFileError(
            f"the mapping file {where!r} does not satisfy its schema: {'; '.join(errors[:_SHOWN])}{more}"
        )
    problems = _inconsistencies(data)
    if problems:
        raise GraphFileError(f"the mapping file {where!r} contradicts itself: {'; '.join(problems)}")
    return data


def _inconsistencies(data: dict[str, Any]) -> list[str]:
    names = [module["name"] for module in data["modules"]]
    problems = []
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        problems.append(f"modules listed twice: {_names(repeated)}")
    aliases = [alias for module in data["modules"] for alias in module.get("aliases", [])]
    clashes = sorted(
        {alias for alias in aliases if alias in set(names)}
        | {alias for alias, count in Counter(aliases).items() if count > 1}
    )
    if clashes:
        problems.append(f"aliases that name another module or are listed twice: {_names(clashes)}")
    known = set(names)
    orphans = [
        key
        for key, node in data["nodes"].items()
        if node["module"] is not None and node["module"] not in known
    ]
    if orphans:
        problems.append(f"nodes owned by modules the module table does not list: {_names(orphans)}")
    if data["graph"]["nodes"] != len(data["nodes"]):
        problems.append(f"graph.nodes is {data['graph']['nodes']} but {len(data['nodes'])} nodes are listed")
    if data["graph"]["initializers"] != len(data["initializers"]):
        problems.append(
            f"graph.initializers is {data['graph']['initializers']} "
            f"but {len(data['initializers'])} initializers are listed"
        )
    return problems


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(repr(item) for item in items[:_SHOWN])
    return shown + (f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def mismatches(
    data: dict[str, Any],
    nodes: Sequence[NodeRecord],
    initializers: Sequence[TensorRecord],
    inputs: Sequence[TensorRecord],
    opset: int | None,
) -> list[str]:
    """Every way the mapping `data` disagrees with a graph, one line per kind, naming the entries."""
    problems: list[str] = []
    mapped: dict[str, Any] = data["nodes"]
    in_graph = {node.name: node for node in nodes}
    unknown = [key for key in mapped if key not in in_graph]
    if unknown:
        problems.append(f"{len(unknown)} node(s) of the mapping are not in the graph: {_names(unknown)}")
    missing = [node.name for node in nodes if node.name not in mapped]
    if missing:
        problems.append(f"{len(missing)} node(s) of the graph are not in the mapping: {_names(missing)}")
    other_op = [
        f"{key} (mapping {entry['op_type']}, graph {in_graph[key].op_type})"
        for key, entry in mapped.items()
        if key in in_graph and entry["op_type"] != in_graph[key].op_type
    ]
    if other_op:
        problems.append(f"{len(other_op)} node(s) have another op type: {_names(other_op)}")
    tensors: dict[str, Any] = data["initializers"]
    dims = {tensor.name: tensor.dims for tensor in initializers}
    unknown_init = [name for name in tensors if name not in dims]
    if unknown_init:
        problems.append(
            f"{len(unknown_init)} initializer(s) of the mapping are not in the graph: {_names(unknown_init)}"
        )
    missing_init = [name for name in dims if name not in tensors]
    if missing_init:
        problems.append(
            f"{len(missing_init)} initializer(s) of the graph are not in the mapping: {_names(missing_init)}"
        )
    other_shape = [
        f"{name} (mapping {tuple(entry['dims'])}, graph {dims[name]})"
        for name, entry in tensors.items()
        if name in dims and tuple(entry["dims"]) != dims[name]
    ]
    if other_shape:
        problems.append(f"{len(other_shape)} initializer(s) have another shape: {_names(other_shape)}")
    wanted_opset = data["producer"]["opset"]
    if wanted_opset is not None and opset is not None and wanted_opset != opset:
        problems.append(f"opset: mapping {wanted_opset}, graph {opset}")
    if not problems and structure_digest(nodes, initializers, inputs) != data["graph"]["digest"]:
        problems.append(
            "same node names, op types and initializer shapes, but the graph's edges, attributes or inputs "
            "differ from the graph the mapping was made for (digest mismatch)"
        )
    return problems


def apply_mapping(proto: Any, data: dict[str, Any], onnx_name: str, mapping_name: str) -> ExportedGraph:
    """The records of `proto` with owners, module table, parameters, ties and producer from the mapping.

    Raises:
        GraphFileError: the mapping does not describe this graph; the message names the entries.
    """
    nodes = read_nodes(proto.graph)
    initializers = read_initializers(proto.graph)
    inputs = read_inputs(proto.graph)
    problems = mismatches(data, nodes, initializers, inputs, default_opset(proto))
    if problems:
        raise GraphFileError(
            f"the mapping file {mapping_name!r} does not match the ONNX file {onnx_name!r}: "
            + "; ".join(problems)
        )
    modules = tuple(
        ModuleInfo(
            name=entry["name"],
            class_name=entry["class_name"],
            class_path=entry["class_path"],
            torch_class=entry["torch_class"],
            torch_class_known=True,
            parameters=tuple(entry["parameters"]),
            aliases=tuple(entry.get("aliases", ())),
            config=tuple(sorted(entry.get("config", {}).items())),
        )
        for entry in data["modules"]
    )
    classes = {info.name: info.class_name for info in modules}
    mapped = data["nodes"]
    owned = []
    for node in nodes:
        owner = mapped[node.name]["module"]
        if owner is not None:  # built directly: `dataclasses.replace` per node costs more than the rest
            node = NodeRecord(
                node.name,
                node.op_type,
                node.inputs,
                node.outputs,
                node.attrs,
                owner,
                classes[owner],
                node.domain,
            )
        owned.append(node)
    mapped_tensors = data["initializers"]
    tensors = tuple(
        TensorRecord(
            tensor.name,
            tensor.dims,
            tuple(mapped_tensors[tensor.name]["params"]),
            tuple(mapped_tensors[tensor.name].get("computed_from", ())),
        )
        for tensor in initializers
    )
    given = data["producer"]
    producer = Producer(
        exporter=given["exporter"],
        opset=given["opset"],
        torch_version=given["torch_version"],
        onnx_version=given["onnx_version"],
        producer_name=given["producer_name"],
        producer_version=given["producer_version"],
        input_shapes=tuple(tuple(shape) for shape in given["input_shapes"]),
    )
    tied = tuple(tuple(group) for group in data["tied_parameters"])
    return ExportedGraph(tuple(owned), tensors, inputs, modules, producer, tied)


def default_mapping_path(onnx_file: str | os.PathLike[str]) -> Path:
    """Where the mapping of `onnx_file` goes by default: `.onnx` replaced by `.mapping.json`."""
    path = Path(onnx_file)
    if path.suffix.lower() == ".onnx":
        return path.with_suffix(".mapping.json")
    return path.with_name(path.name + ".mapping.json")
