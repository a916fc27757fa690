"""Fuzzing every input format QuantScope reads (issue 6), with hypothesis, each test bounded to a few seconds.

The property is the error contract: whatever the input, the analysis returns, or raises a `QuantScopeError`
that is not the last-net `AnalysisError` (which would mean an input reached a bug). `validate` never raises.

- simple config (quant.cfg): random text, and valid files mutated by character and by token;
- mapping file: the tiny model's mapping mutated structurally (keys deleted, values replaced) and by bytes;
- config JSON (`validate`): arbitrary JSON values, mutated valid configs, arbitrary bytes;
- ONNX graph: real exports truncated, with bytes flipped, inserted or deleted, and mutated as protobuf
  (nodes removed, duplicated or reordered, inputs rewired, op types and attributes changed, dims changed);
  and arbitrary graphs (cycles included) handed to the analysis directly, bypassing the loader.

A longer campaign: `QUANTSCOPE_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_inputs.py`. What a fuzzer found became a regression test in `tests/test_hostile_inputs.py` or the corpus in
`tests/bad_inputs/`. Needs no torch: the models are the committed files in `tests/fixtures/`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analyzer import AnalysisError, ConfigError, QuantScopeError
from analyzer.api import analyze, analyze_onnx
from analyzer.resolve import QuantLayer, resolve_simple
from analyzer.simple_config import load_simple_config, parse_simple_config
from analyzer.validate import KINDS, validate_config
from graph.ir import ExportedGraph, ModuleInfo, NodeRecord, TensorRecord

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
TINY_DYNAMO = FIXTURES / "tiny_dynamo.onnx"
TINY_TS = FIXTURES / "tiny_torchscript.onnx"
TINY_TS_MAPPING = FIXTURES / "tiny_torchscript.mapping.json"
BASES = {
    "tiny_dynamo": (FIXTURES / "tiny_dynamo.onnx", None),
    "weird_names_dynamo": (FIXTURES / "weird_names_dynamo.onnx", None),
    "tiny_torchscript": (TINY_TS, TINY_TS_MAPPING),
}
CFG_SAMPLES = sorted((HERE / "golden" / "cfg").glob("*.cfg")) + sorted((HERE / "bad_inputs").glob("*.cfg"))
# QUANTSCOPE_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_inputs.py: a longer campaign than the normal run's
FUZZ = settings(
    max_examples=int(os.environ.get("QUANTSCOPE_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    """Thousands of analyses: their warnings are not what is tested."""
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="quantscope-fuzz-") as folder:
        yield Path(folder)


def _contract(call: Any, *args: Any) -> Any:
    """Run the analysis; return its result, or None when it raised a QuantScope error other than the last net."""
    try:
        return call(*args)
    except AnalysisError:
        raise
    except QuantScopeError as err:
        assert str(err), "an error without a message"
        return None


# --- byte mutations ---------------------------------------------------------------------------------------


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` truncated, or with a few bytes flipped, inserted or deleted."""
    out = bytearray(data)
    if draw(st.booleans()):
        return bytes(out[: draw(st.integers(0, len(out)))])
    for _ in range(draw(st.integers(1, 6))):
        if not out:
            break
        where = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if kind == "flip":
            out[where] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            out[where] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[where:where] = draw(st.binary(min_size=1, max_size=8))
        else:
            del out[where : where + draw(st.integers(1, 16))]
    return bytes(out)


# --- simple config ----------------------------------------------------------------------------------------

TOKENS = [
    "{", "}", ":", '"', "batch_num", "retrain_data_quant_config", "retrain_weight_quant_config", "ulq_quantize",
    "arq_retrain", "ulq_retrain", "clip_max_min", "clip_max", "clip_min", "fixed_min", "dst_type", "INT4",
    "INT8", "INT16", "channel_wise", "true", "false", "skip_layers", "quant_skip_layers", "skip_layer_types",
    "override_layer_configs", "override_layer_types", "layer_name", "layer_type", "prune_config",
    "fakequant_precision_mode", "FORCE_FP16_QUANT", '"conv"', '"fc"', '"Linear"', '"Conv2d"', "0", "-1", "1e39",
    "nan", "inf", "0x10", "4294967296", "# comment\n", "\n", "\\", "'", "[", "]", ",", ";", "<", ">", "\x00",
]  # fmt: skip
LAYERS = [QuantLayer("conv", "Conv2d"), QuantLayer("fc", "Linear")]


def _simple_config_contract(text: str) -> None:
    simple = _contract(parse_simple_config, text, "fuzz.cfg")
    if simple is not None:
        _contract(resolve_simple, LAYERS, simple, {}, {"conv": "Conv2d", "fc": "Linear"})


@FUZZ
@given(st.text(max_size=300))
def test_simple_config_parser_on_random_text(text: str) -> None:
    _simple_config_contract(text)


@st.composite
def mutated_cfg(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(CFG_SAMPLES)).read_text(encoding="utf-8", errors="surrogateescape")
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    for _ in range(draw(st.integers(1, 5))):
        where = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        token = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)))
        if action == "insert":
            text = text[:where] + token + text[where:]
        elif action == "delete":
            text = text[:where] + text[where + draw(st.integers(1, 12)) :]
        else:
            text = text[:where] + token + text[where + len(token) :]
    return text


@FUZZ
@given(mutated_cfg())
def test_simple_config_parser_on_mutated_files(text: str) -> None:
    _simple_config_contract(text)


@FUZZ
@given(data=st.sampled_from(CFG_SAMPLES).flatmap(lambda path: mutated_bytes(path.read_bytes())))
def test_simple_config_file_on_mutated_bytes(data: bytes, scratch: Path) -> None:
    path = scratch / "fuzz.cfg"
    path.write_bytes(data)
    simple = _contract(load_simple_config, path)
    if simple is not None:
        _contract(resolve_simple, LAYERS, simple, {}, {"conv": "Conv2d", "fc": "Linear"})


# --- the calibration simple config (create_quant_config) ----------------------------------------------------

PTQ_CFG_SAMPLES = sorted((HERE / "golden" / "cfg" / "ptq").glob("*.cfg"))
PTQ_TOKENS = [
    "{", "}", ":", '"', "common_config", "override_layer_types", "override_layer_configs", "calibration_config",
    "arq_quantize", "ada_quantize", "ifmr_quantize", "hfmg_quantize", "dmq_balancer", "quant_bits", "channel_wise",
    "asymmetric", "dst_type", "INT8", "INT16", "num_of_bins", "search_step", "search_range_start", "reg_param",
    "beta_range_end", "skip_layers", "skip_layer_types", "skip_fusion_layers", "do_fusion", "batch_num",
    '"conv"', '"fc"', '"pool"', '"Conv3d"', '"AvgPool2d"', "0", "-1", "6", "1e39", "nan", "\n", "'", "\x00",
]  # fmt: skip


def _ptq_contract(text: str) -> None:
    from analyzer.kinds.ptq_config import parse_ptq_config
    from analyzer.kinds.ptq_resolve import ModelView, PtqArgs, PtqLayer, resolve_simple

    simple = _contract(parse_ptq_config, text, "fuzz.cfg")
    if simple is not None:
        layers = (
            PtqLayer("conv", "Conv2d"),
            PtqLayer("fc", "Linear", has_bias=False),
            PtqLayer("pool", "AvgPool2d"),
        )
        model = ModelView(
            {"": "Net", "conv": "Conv2d", "relu": "ReLU", "fc": "Linear", "pool": "AvgPool2d"}, layers, {}
        )
        _contract(resolve_simple, model, simple, PtqArgs())


@st.composite
def mutated_cfg_text(draw: st.DrawFn, samples: list[Path], tokens: list[str]) -> str:
    """One of `samples` with a few of `tokens` (or random text) inserted, or a few characters deleted."""
    text = draw(st.sampled_from(samples)).read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 5))):
        where = draw(st.integers(0, len(text)))
        token = draw(st.one_of(st.sampled_from(tokens), st.text(max_size=4)))
        if draw(st.booleans()):
            text = text[:where] + token + text[where:]
        else:
            text = text[:where] + text[where + draw(st.integers(1, 12)) :]
    return text


@FUZZ
@given(st.one_of(st.text(max_size=300), mutated_cfg_text(PTQ_CFG_SAMPLES, PTQ_TOKENS)))
def test_calibration_simple_config_on_random_and_mutated_text(text: str) -> None:
    _ptq_contract(text)


# --- the distill simple config (create_distill_config) -----------------------------------------------------

DISTILL_CFG_SAMPLES = sorted((HERE / "golden" / "cfg" / "distill").glob("*.cfg"))
DISTILL_TOKENS = [
    "{", "}", ":", '"', "distill_group", "start_layer_name", "end_layer_name", "group_size", "batch_num",
    "data_dump", "distill_data_quant_config", "distill_weight_quant_config", "ulq_quantize", "arq_distill",
    "ulq_distill", "clip_max_min", "clip_max", "clip_min", "fixed_min", "dst_type", "channel_wise", "INT4", "INT8",
    "distill_override_layers", "distill_override_layer_types", "layer_name", "layer_type", "quant_skip_layers",
    "quant_skip_layer_types", '"conv"', '"fc"', '"Conv2d"', '"Linear"', "0", "-1", "1e39", "nan", "true", "\n",
    "'", "\x00",
]  # fmt: skip


def _distill_contract(text: str) -> None:
    from analyzer.kinds.distill_config import check_enabled, parse_distill_config, resolve_distill

    simple = _contract(parse_distill_config, text, "fuzz.cfg")
    if simple is not None:
        resolved = _contract(resolve_distill, [("conv", "Conv2d"), ("fc", "Linear")], simple)
        if resolved is not None:
            _contract(check_enabled, resolved)


@FUZZ
@given(st.one_of(st.text(max_size=300), mutated_cfg_text(DISTILL_CFG_SAMPLES, DISTILL_TOKENS)))
def test_distill_simple_config_on_random_and_mutated_text(text: str) -> None:
    _distill_contract(text)


# --- mapping file -------------------------------------------------------------------------------------------

MAPPING = json.loads(TINY_TS_MAPPING.read_text(encoding="utf-8"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for position, child in enumerate(value):
            yield from _paths(child, (*prefix, position))


@st.composite
def mutated_mapping(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(MAPPING)
    for _ in range(draw(st.integers(1, 3))):
        paths = [path for path in _paths(data) if path]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        holder = data
        for part in path[:-1]:
            holder = holder[part]
        action = draw(st.sampled_from(["delete", "replace", "rename", "copy"]))
        if action == "delete":
            del holder[path[-1]]
        elif action == "replace":
            holder[path[-1]] = draw(json_values)
        elif action == "rename" and isinstance(holder, dict):
            holder[draw(st.text(max_size=12))] = holder.pop(path[-1])
        elif action == "copy" and isinstance(holder, dict) and isinstance(holder[path[-1]], (dict, list)):
            other = draw(st.sampled_from(sorted(map(str, holder))))
            holder[other] = copy.deepcopy(holder[path[-1]])
    return data


@FUZZ
@given(data=mutated_mapping())
def test_mapping_loader_on_structurally_mutated_mappings(data: Any, scratch: Path) -> None:
    path = scratch / "fuzz.mapping.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    _contract(analyze_onnx, TINY_TS, path)


@FUZZ
@given(data=mutated_bytes(TINY_TS_MAPPING.read_bytes()))
def test_mapping_loader_on_mutated_bytes(data: bytes, scratch: Path) -> None:
    path = scratch / "fuzz.mapping.json"
    path.write_bytes(data)
    _contract(analyze_onnx, TINY_TS, path)


# --- config JSON (validate) ---------------------------------------------------------------------------------

CONFIG_TEXT = (FIXTURES / "tiny.config.json").read_text(encoding="utf-8")
REPORT = analyze_onnx(TINY_DYNAMO)[0]


def _validate_contract(text: str | bytes) -> None:
    for report in (None, REPORT):
        problems = validate_config(text, report)
        assert problems == sorted(set(problems))
        for problem in problems:
            assert problem.path.startswith("$") and problem.kind in KINDS and problem.message


def test_the_unmutated_config_is_valid() -> None:
    assert validate_config(CONFIG_TEXT, REPORT) == []


@FUZZ
@given(json_values)
def test_validator_on_arbitrary_json(value: Any) -> None:
    _validate_contract(json.dumps(value))


@FUZZ
@given(st.data())
def test_validator_on_mutated_configs(data: st.DataObject) -> None:
    config = json.loads(CONFIG_TEXT)
    paths = [path for path in _paths(config) if path]
    path = data.draw(st.sampled_from(paths))
    holder = config
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = data.draw(json_values)
    text = json.dumps(config)
    _validate_contract(text)
    assume(json.loads(text) != json.loads(CONFIG_TEXT))
    # a changed leaf is either still a valid config, or a problem is reported at or above it
    problems = validate_config(text, REPORT)
    if problems:
        assert any(
            p.path == "$" or p.path.startswith("$." + str(path[0])) or "$['" in p.path for p in problems
        )


@FUZZ
@given(st.one_of(st.binary(max_size=200), mutated_bytes(CONFIG_TEXT.encode("utf-8"))))
def test_validator_on_bytes(data: bytes) -> None:
    _validate_contract(data)


# --- ONNX graphs ----------------------------------------------------------------------------------------------


def _strings(path: Path) -> list[bytes]:
    """The text fields of a model as they appear in its bytes: names, op types, metadata."""
    model = onnx.load(str(path), load_external_data=False)
    found = {model.producer_name, model.producer_version}
    for node in model.graph.node:
        found |= {node.name, node.op_type, *node.input, *node.output, *(a.name for a in node.attribute)}
        found |= {text for prop in node.metadata_props for text in (prop.key, prop.value)}
    found |= {tensor.name for tensor in model.graph.initializer}
    found |= {text for prop in model.graph.metadata_props for text in (prop.key, prop.value)}
    return sorted(text.encode("utf-8") for text in found if text)


@st.composite
def corrupted_strings(draw: st.DrawFn, data: bytes, strings: list[bytes]) -> bytes:
    """`data` with one byte of one of its text fields replaced by a byte that is not UTF-8 there: the message
    stays well formed, the text does not (protobuf then hands back bytes instead of str)."""
    text = draw(st.sampled_from(strings))
    start = data.find(text)
    assume(start >= 0)
    where = start + draw(st.integers(0, len(text) - 1))
    return data[:where] + bytes([draw(st.sampled_from([0x80, 0xC3, 0xFF]))]) + data[where + 1 :]


def _onnx_bytes(name: str) -> st.SearchStrategy[bytes]:
    data = BASES[name][0].read_bytes()
    return st.one_of(mutated_bytes(data), corrupted_strings(data, _strings(BASES[name][0])))


@FUZZ
@given(case=st.sampled_from(sorted(BASES)).flatmap(lambda name: st.tuples(st.just(name), _onnx_bytes(name))))
def test_loader_on_mutated_onnx_bytes(case: tuple[str, bytes], scratch: Path) -> None:
    name, data = case
    path = scratch / "fuzz.onnx"
    path.write_bytes(data)
    _contract(analyze_onnx, path, BASES[name][1])


OP_TYPES = [
    "Conv",
    "Gemm",
    "MatMul",
    "ConvTranspose",
    "Identity",
    "Pad",
    "Transpose",
    "Unsqueeze",
    "Add",
    "",
    "If",
]
ATTRIBUTE_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, width=32),
    st.text(max_size=8),
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=4),
    st.lists(st.floats(width=32), min_size=1, max_size=4),
    st.lists(st.text(max_size=4), min_size=1, max_size=3),
)


def _mutate_proto(model: onnx.ModelProto, data: st.DataObject) -> None:
    graph = model.graph
    nodes = graph.node
    tensors = sorted(
        {name for node in nodes for name in (*node.input, *node.output)} | {t.name for t in graph.initializer}
    )
    action = data.draw(
        st.sampled_from(
            [
                "remove",
                "duplicate",
                "swap",
                "rewire",
                "op_type",
                "attribute",
                "dims",
                "name",
                "metadata",
                "output",
            ]
        )
    )
    position = data.draw(st.integers(0, len(nodes) - 1))
    node = nodes[position]
    if action == "remove":
        del nodes[position]
    elif action == "duplicate":
        nodes.insert(data.draw(st.integers(0, len(nodes))), copy.deepcopy(node))
    elif action == "swap":
        other = data.draw(st.integers(0, len(nodes) - 1))
        first, second = copy.deepcopy(nodes[position]), copy.deepcopy(nodes[other])
        nodes[position].CopyFrom(second)
        nodes[other].CopyFrom(first)
    elif action == "rewire" and node.input:
        where = data.draw(st.integers(0, len(node.input) - 1))
        node.input[where] = data.draw(st.one_of(st.sampled_from(tensors), st.text(max_size=5)))
    elif action == "op_type":
        node.op_type = data.draw(st.sampled_from(OP_TYPES))
    elif action == "attribute":
        name = data.draw(
            st.sampled_from(["group", "transA", "transB", "mode", "kernel_shape", "pads", "axes", "x"])
        )
        kept = [attribute for attribute in node.attribute if attribute.name != name]
        del node.attribute[:]
        node.attribute.extend([*kept, onnx.helper.make_attribute(name, data.draw(ATTRIBUTE_VALUES))])
    elif action == "dims" and graph.initializer:
        tensor = graph.initializer[data.draw(st.integers(0, len(graph.initializer) - 1))]
        del tensor.dims[:]
        tensor.dims.extend(data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5)))
    elif action == "name":
        node.name = data.draw(st.one_of(st.text(max_size=6), st.sampled_from([n.name for n in nodes])))
    elif action == "metadata":
        del node.metadata_props[:]
        node.metadata_props.add(
            key=data.draw(st.sampled_from(["pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy"])),
            value=data.draw(
                st.one_of(st.text(max_size=30), st.just("['', 'conv', 'conv']"), st.just("[" * 300))
            ),
        )
    elif action == "output" and node.output:
        node.output[0] = data.draw(st.one_of(st.sampled_from(tensors), st.text(max_size=5)))


@FUZZ
@given(name=st.sampled_from(sorted(BASES)), data=st.data())
def test_graph_builder_on_mutated_onnx_protos(name: str, data: st.DataObject, scratch: Path) -> None:
    onnx_file, mapping = BASES[name]
    model = onnx.load(str(onnx_file), load_external_data=False)
    for _ in range(data.draw(st.integers(1, 3))):
        if not model.graph.node:
            break
        _mutate_proto(model, data)
    path = scratch / "fuzz.onnx"
    path.write_bytes(model.SerializeToString())
    _contract(analyze_onnx, path, mapping)
    _contract(analyze_onnx, path, None)


# --- arbitrary graphs straight into the analysis ------------------------------------------------------------

CLASSES = ["Linear", "Conv2d", "ConvTranspose2d", "Conv1d", "ReLU", "Sequential"]
TENSORS = [f"t{i}" for i in range(6)]
INITIALIZERS = ["w0", "w1", "b0"]


@st.composite
def exported_graphs(draw: st.DrawFn) -> ExportedGraph:
    """Graphs no exporter makes: any wiring (cycles, self-loops, tensors read before or never produced), any
    owner, any attribute value."""
    modules = draw(st.lists(st.sampled_from(["a", "a.b", "c", "d"]), unique=True, max_size=4))
    infos = [ModuleInfo("", "Net", "Net", None)] + [
        ModuleInfo(
            m, cls := draw(st.sampled_from(CLASSES)), cls, draw(st.sampled_from([cls, None])), True, ()
        )
        for m in modules
    ]
    classes = {info.name: info.class_name for info in infos}
    nodes = []
    for index in range(draw(st.integers(1, 8))):
        owner = draw(st.sampled_from([None, *modules]))
        nodes.append(
            NodeRecord(
                draw(st.sampled_from([f"n{index}", "", "dup"])),
                draw(st.sampled_from(OP_TYPES)),
                tuple(draw(st.lists(st.sampled_from(["x", "", *TENSORS, *INITIALIZERS]), max_size=3))),
                tuple(draw(st.lists(st.sampled_from(["", *TENSORS, *INITIALIZERS]), max_size=2))),
                draw(
                    st.dictionaries(
                        st.sampled_from(["group", "transA", "mode"]), ATTRIBUTE_VALUES, max_size=2
                    )
                ),
                owner,
                classes.get(owner) if owner is not None else None,
            )
        )
    dims = st.lists(st.one_of(st.none(), st.integers(-4, 64)), max_size=4).map(tuple)
    initializers = tuple(TensorRecord(name, draw(dims)) for name in INITIALIZERS if draw(st.booleans()))
    tied = draw(st.one_of(st.none(), st.just((("a.weight", "c.weight"),))))
    return ExportedGraph(
        tuple(nodes), initializers, (TensorRecord("x", (1, 3, 8, 8)),), tuple(infos), tied_parameters=tied
    )


@FUZZ
@given(exported_graphs())
def test_analysis_on_arbitrary_graphs(exported: ExportedGraph) -> None:
    try:
        analyze(exported)
    except QuantScopeError as err:  # no layer left is the only failure a graph can cause
        assert not isinstance(err, AnalysisError)
        assert isinstance(err, (ConfigError, ValueError))
