"""Hostile and broken inputs (issue 6): every one gets a QuantScope error (or a problem list, for `validate`)
naming the file and what is wrong, and no output file is created or changed.

- the corpus in `tests/bad_inputs/` (regenerate with `python -m tests.fixtures.make_bad_inputs`): one file per
  case, named after what is wrong, its expectation in `CORPUS` below, run through the offline call and the CLI;
- an external-data `location` pointing outside the model's folder (absolute, `../`, a symlink, a FIFO) is
  never opened: an audit hook records every file the analysis opens;
- inputs that are not regular files (FIFO, device, directory) are refused without blocking; size limits;
- odd but legal graphs (empty or repeated node names, absurd attribute values, cycles reaching the checks)
  get a report or an error, never a crash or a hang;
- layer names with spaces, non-ASCII letters, dots and 201 characters round-trip through config and mapping.

Needs no torch: the models are the small committed files in `tests/fixtures/`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import pytest

import analyzer.api
import graph.load
import graph.mapping
from analyzer import (
    AnalysisError,
    ArgumentTypeError,
    ConfigError,
    InputFileError,
    NoQuantizableLayerError,
    OutputError,
    QuantScopeError,
    create_quant_retrain_config_from_onnx,
)
from analyzer.api import analyze, analyze_onnx
from analyzer.cli import main
from analyzer.validate import validate_config
from tests.graphs import make_graph, module, op

HERE = Path(__file__).resolve().parent
BAD = HERE / "bad_inputs"
FIXTURES = HERE / "fixtures"
TINY_DYNAMO = FIXTURES / "tiny_dynamo.onnx"
TINY_TS = FIXTURES / "tiny_torchscript.onnx"
TINY_TS_MAPPING = FIXTURES / "tiny_torchscript.mapping.json"
SENTINEL = '{"previous": "config, must survive"}\n'


@dataclass(frozen=True)
class Expect:
    """What a bad input must produce. `role` says where the file goes:
    - "onnx": the model (no mapping file, then with the tiny model's mapping unless `with_mapping` is False);
    - "mapping": the mapping of `tiny_torchscript.onnx`;
    - "cfg": the simple config of `tiny_dynamo.onnx`;
    - "config": a config JSON checked by `quantscope validate --onnx tiny_dynamo.onnx` (a problem kind, not
      an exception: validate reports every problem and exits 1).
    """

    role: str
    error: type[Exception] | str  # exception type, or the `validate` problem kind
    words: tuple[str, ...]
    with_mapping: bool = True


def _e(role: str, error: type[Exception] | str, *words: str, with_mapping: bool = True) -> Expect:
    return Expect(role, error, words, with_mapping)


CORPUS: dict[str, Expect] = {
    # ONNX files
    "empty.onnx": _e("onnx", InputFileError, "no graph nodes"),
    "truncated.onnx": _e("onnx", InputFileError, "truncated or corrupt"),
    "not_protobuf.onnx": _e("onnx", InputFileError, "not a readable ONNX model"),
    "json_instead_of_onnx.onnx": _e("onnx", InputFileError, "not a readable ONNX model"),
    "cycle.onnx": _e("onnx", InputFileError, "node #0", "'/conv/Conv'", "cycle"),
    "dangling_input.onnx": _e("onnx", InputFileError, "'produced_by_nobody'", "no initializer"),
    "missing_initializer.onnx": _e("onnx", InputFileError, "'/fc/Gemm'", "'fc.weight'", "no initializer"),
    "tensor_produced_twice.onnx": _e("onnx", InputFileError, "'/ReduceMean'", "produces already"),
    "no_default_opset.onnx": _e("onnx", InputFileError, "no default-domain opset"),
    "graph_output_not_produced.onnx": _e("onnx", InputFileError, "'not_produced'", "not produced"),
    "no_nodes.onnx": _e("onnx", InputFileError, "no graph nodes"),
    "non_utf8_node_name.onnx": _e("onnx", InputFileError, "node #0", "not UTF-8"),
    "subgraphs_nested_too_deep.onnx": _e("onnx", InputFileError, "nested deeper", "100 levels"),
    "unscoped_without_mapping.onnx": _e(
        "onnx",
        InputFileError,
        "no module scopes",
        "no scope-style node names",
        "mapping file is needed",
        with_mapping=False,
    ),
    # mapping files (for tiny_torchscript.onnx)
    "mapping_duplicate_key.json": _e("mapping", InputFileError, "duplicate key 'version'"),
    "mapping_nan.json": _e("mapping", InputFileError, "NaN is not a JSON value"),
    "mapping_empty.json": _e("mapping", InputFileError, "not valid JSON"),
    "mapping_truncated.json": _e("mapping", InputFileError, "not valid JSON", "line 45"),
    "mapping_not_utf8.json": _e("mapping", InputFileError, "not UTF-8"),
    "mapping_nested_too_deep.json": _e("mapping", InputFileError, "too deeply"),
    "mapping_top_level_array.json": _e("mapping", InputFileError, "not a QuantScope mapping file"),
    "mapping_wrong_format.json": _e("mapping", InputFileError, "not a QuantScope mapping file"),
    "mapping_wrong_version.json": _e("mapping", InputFileError, "version 99", "reads versions 1 and 2"),
    "mapping_schema_violation.json": _e(
        "mapping", InputFileError, "$.modules[1]", "'class_name'", "'colour'"
    ),
    "mapping_node_owner_not_listed.json": _e("mapping", InputFileError, "contradicts itself", "'/conv/Conv'"),
    "mapping_node_count_wrong.json": _e("mapping", InputFileError, "graph.nodes is 7 but 3"),
    "mapping_other_op_type.json": _e("mapping", InputFileError, "/conv/Conv (mapping MatMul, graph Conv)"),
    "mapping_other_weight_shape.json": _e("mapping", InputFileError, "conv.weight", "(8, 3, 5, 5)"),
    "mapping_digest_mismatch.json": _e("mapping", InputFileError, "digest mismatch"),
    "mapping_of_another_model.json": _e("mapping", InputFileError, "not in the graph", "'/stem conv/Conv'"),
    # simple configs (for tiny_dynamo.onnx: layers conv and fc)
    "cfg_unknown_field.cfg": _e("cfg", ConfigError, "line 2, column 1", "quant_bits"),
    "cfg_syntax_error.cfg": _e("cfg", ConfigError, "line 2", 'Expected "}"'),
    "cfg_unknown_enum_value.cfg": _e("cfg", ConfigError, "line 1", "INT3"),
    "cfg_nested_unknown_field.cfg": _e("cfg", ConfigError, "line 1", "ulq_quantize"),
    "cfg_not_utf8.cfg": _e("cfg", ConfigError, "line 1, column 19", "not UTF-8", "0xff"),
    "cfg_batch_num_zero.cfg": _e("cfg", ConfigError, "batch_num", "> 0"),
    "cfg_batch_num_negative.cfg": _e("cfg", ConfigError, "line 1", "-1"),
    "cfg_pruning.cfg": _e("cfg", ConfigError, "prune_config", "pruning is not supported"),
    "cfg_clip_max_not_positive.cfg": _e("cfg", ConfigError, "clip_max", "> 0", "-1"),
    "cfg_clip_min_missing.cfg": _e("cfg", ConfigError, "clip_min is missing"),
    "cfg_int4_activation.cfg": _e("cfg", ConfigError, "INT4 quantization aware training is not supported"),
    "cfg_dst_type_pair_not_allowed.cfg": _e("cfg", ConfigError, "INT16", "INT4", "not allowed"),
    "cfg_channel_wise_linear.cfg": _e("cfg", ConfigError, "fc", "channel_wise", "Linear"),
    "cfg_unknown_layer.cfg": _e("cfg", ConfigError, "'fc2'", "not a quantizable layer", "did you mean 'fc'"),
    "cfg_unsupported_layer_type.cfg": _e("cfg", ConfigError, "'Conv1d'", "not a supported layer type"),
    "cfg_duplicate_override.cfg": _e("cfg", ConfigError, "layer_name 'fc'", "2 times"),
    "cfg_skips_every_layer.cfg": _e("cfg", NoQuantizableLayerError, "no layer retrain enabled"),
    # config JSON, through `quantscope validate --onnx tiny_dynamo.onnx`
    "config_duplicate_key.json": _e("config", "duplicate-key", "$.fc", "'fc' appears more than once"),
    "config_channel_wise_linear.json": _e("config", "channel-wise-linear", "$.fc.retrain_weight_config"),
    "config_unknown_field.json": _e("config", "schema", "$.conv", "'bits' was unexpected"),
    "config_unknown_layer.json": _e("config", "unknown-layer", "$.fc2", "did you mean 'fc'"),
    "config_int4_activation.json": _e("config", "dst-type", "$.conv.retrain_data_config.dst_type", "INT4"),
    "config_wrong_type.json": _e("config", "schema", "$.batch_num", "'1' is not of type 'integer'"),
    "config_nan.json": _e("config", "syntax", "NaN is not a JSON value"),
    "config_huge_number.json": _e("config", "syntax", "1e999", "out of range"),
    "config_integer_too_long.json": _e("config", "syntax", "4300 digits"),
    "config_truncated.json": _e("config", "syntax", "line 1 column 81"),
    "config_nested_too_deep.json": _e("config", "syntax", "nested too deeply"),
    "config_top_level_array.json": _e("config", "schema", "is not of type 'object'"),
    "config_not_utf8.json": _e("config", "syntax", "not UTF-8"),
}


def test_every_corpus_file_has_an_expectation() -> None:
    assert sorted(path.name for path in BAD.iterdir()) == sorted(CORPUS)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(inputs folder, output folder holding a previous config); both must be unchanged afterwards."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    (out / "config.json").write_text(SENTINEL, encoding="utf-8")
    yield inputs, out


def _offline_args(name: str, expect: Expect, inputs: Path) -> list[tuple[Path, Path | None, Path | None]]:
    """(onnx, mapping, cfg) triples to run the bad file `name` through."""
    bad = inputs / name
    shutil.copyfile(BAD / name, bad)
    if expect.role == "onnx":
        mapping = inputs / "tiny.mapping.json"
        shutil.copyfile(TINY_TS_MAPPING, mapping)
        return [(bad, None, None)] + ([(bad, mapping, None)] if expect.with_mapping else [])
    if expect.role == "mapping":
        onnx_file = inputs / "tiny.onnx"
        shutil.copyfile(TINY_TS, onnx_file)
        return [(onnx_file, bad, None)]
    onnx_file = inputs / "tiny.onnx"
    shutil.copyfile(TINY_DYNAMO, onnx_file)
    return [(onnx_file, None, bad)]


OFFLINE = [pytest.param(name, id=name) for name, expect in sorted(CORPUS.items()) if expect.role != "config"]
CONFIGS = [pytest.param(name, id=name) for name, expect in sorted(CORPUS.items()) if expect.role == "config"]


@pytest.mark.parametrize("name", OFFLINE)
def test_bad_input_is_refused_by_the_offline_call(name: str, workspace: tuple[Path, Path]) -> None:
    expect = CORPUS[name]
    inputs, out = workspace
    assert isinstance(expect.error, type)
    for onnx_file, mapping, cfg in _offline_args(name, expect, inputs):
        before = _snapshot(inputs.parent)
        with pytest.raises(expect.error) as caught:
            create_quant_retrain_config_from_onnx(out / "config.json", onnx_file, mapping, cfg)
        message = str(caught.value)
        assert isinstance(caught.value, QuantScopeError)
        assert str(inputs / name) in message, message  # names the file at fault
        for word in expect.words:
            assert word in message, f"{word!r} not in {message!r}"
        assert _snapshot(inputs.parent) == before  # nothing created or changed, no temporary file left
        # a new target is not created either
        with pytest.raises(expect.error):
            create_quant_retrain_config_from_onnx(out / "new" / "config.json", onnx_file, mapping, cfg)
        assert not (out / "new").exists()


@pytest.mark.parametrize("name", OFFLINE)
def test_bad_input_is_one_line_exit_2_in_the_cli(
    name: str, workspace: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    expect = CORPUS[name]
    inputs, out = workspace
    onnx_file, mapping, cfg = _offline_args(name, expect, inputs)[-1]
    argv = ["generate", str(onnx_file), "-o", str(out / "config.json")]
    argv += ["--mapping", str(mapping)] if mapping else []
    argv += ["--simple-config", str(cfg)] if cfg else []
    before = _snapshot(inputs.parent)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("quantscope: error: "), err
    assert str(inputs / name) in err
    assert "Traceback" not in err
    if expect.error is not NoQuantizableLayerError:  # lists its problems on lines of their own otherwise
        assert err.count("\n") == 1, err
    assert _snapshot(inputs.parent) == before


@pytest.mark.parametrize("name", CONFIGS)
def test_bad_config_is_reported_by_validate(
    name: str, workspace: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    expect = CORPUS[name]
    inputs, _out = workspace
    config = inputs / name
    shutil.copyfile(BAD / name, config)
    onnx_file = inputs / "tiny.onnx"
    shutil.copyfile(TINY_DYNAMO, onnx_file)
    before = _snapshot(inputs.parent)
    assert main(["validate", str(config), "--onnx", str(onnx_file)]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if f": {expect.error}: " in line]
    assert lines, f"no {expect.error} problem reported for {name}"
    assert all(line.startswith(f"{config}: $") for line in lines)
    assert any(all(word in line for word in expect.words) for line in lines), lines
    assert _snapshot(inputs.parent) == before
    # the library function agrees (and returns problems rather than raising)
    problems = validate_config((BAD / name).read_bytes(), analyze_onnx(TINY_DYNAMO)[0])
    assert expect.error in {problem.kind for problem in problems}


# --- external data is never opened ---------------------------------------------------------------------------

_opened: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _opened is not None and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # permanent for the process; records only while `_opened` is a list


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """Every path opened (builtins.open, io.open, os.open) during the test."""
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


def _hostile_external_data(tmp_path: Path) -> tuple[Path, list[Path]]:
    """The dynamo fixture in `tmp_path/model/`, each initializer's external data pointing somewhere it must
    never be read from: an absolute path, a `../` traversal, a symlink to a file outside, and a FIFO (opening
    a FIFO for reading without a writer blocks, so touching it would hang the test)."""
    folder = tmp_path / "model"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    fifo = tmp_path / "weights.fifo"
    os.mkfifo(fifo)
    (folder / "link.data").symlink_to(secret)
    locations = [str(secret), "../secret.bin", "link.data", str(fifo)]
    model = onnx.load(str(TINY_DYNAMO), load_external_data=False)
    for position, tensor in enumerate(model.graph.initializer):
        tensor.ClearField("raw_data")
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value=locations[position % len(locations)])
        tensor.external_data.add(key="offset", value="0")
        tensor.external_data.add(key="length", value="64")
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path, [secret, folder / "link.data", fifo]


def test_external_data_outside_the_folder_is_never_opened(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_file, forbidden = _hostile_external_data(tmp_path)
    opened.clear()  # making them opened them; from here on nothing may
    out = tmp_path / "out" / "config.json"
    report = create_quant_retrain_config_from_onnx(out, onnx_file)
    assert out.read_text(encoding="utf-8") == (FIXTURES / "tiny.config.json").read_text(encoding="utf-8")
    assert [record.name for record in report.layers if record.decision == "quantize"] == ["conv", "fc"]
    # the CLI too, including the annotated copy (which drops every external-data reference)
    annotated = tmp_path / "out" / "annotated.onnx"
    assert main(["explain", str(onnx_file), "--annotate", str(annotated), "--format", "json"]) == 0
    capsys.readouterr()
    assert all(not tensor.external_data for tensor in onnx.load_model(str(annotated)).graph.initializer)
    resolved = {os.path.realpath(path) for path in forbidden} | {str(path) for path in forbidden}
    touched = [path for path in opened if os.path.realpath(path) in resolved or path in resolved]
    assert not touched, touched
    assert any(os.path.realpath(path) == os.path.realpath(onnx_file) for path in opened)  # the hook works


# --- inputs that are not regular files, size limits, odd paths -------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO with a writer waiting: a reader that opened it (blocking or not) would get an empty file rather
    than hang, so a test that reads it fails on its message instead of hanging."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    writer = threading.Thread(target=lambda: os.close(os.open(path, os.O_WRONLY)), daemon=True)
    writer.start()
    yield path
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer's open return, now or when it runs
    writer.join()
    os.close(reader)


@pytest.mark.parametrize("role", ["onnx", "mapping", "cfg"])
def test_fifo_inputs_are_refused_without_reading(role: str, fifo: Path, tmp_path: Path) -> None:
    onnx_file, mapping, cfg = (TINY_TS, TINY_TS_MAPPING, None)
    if role == "onnx":
        onnx_file = fifo
    elif role == "mapping":
        mapping = fifo
    else:
        cfg = fifo
    with pytest.raises(
        ConfigError if role == "cfg" else InputFileError, match="a FIFO, expected a regular file"
    ):
        create_quant_retrain_config_from_onnx(tmp_path / "c.json", onnx_file, mapping, cfg)
    assert not (tmp_path / "c.json").exists()


def test_validate_refuses_a_fifo_and_a_device(fifo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(fifo)]) == 2
    assert "a FIFO, expected a regular file" in capsys.readouterr().err
    assert main(["validate", os.devnull]) == 2
    assert "a device, expected a regular file" in capsys.readouterr().err


def test_device_and_directory_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="a device, expected a regular file"):
        analyze_onnx(os.devnull)
    with pytest.raises(InputFileError, match="is a directory"):
        analyze_onnx(TINY_TS, tmp_path)
    with pytest.raises(ConfigError, match="is a directory"):
        analyze_onnx(TINY_DYNAMO, None, tmp_path)


def test_size_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "quant.cfg"
    cfg.write_text("batch_num: 2\n" + "# padding\n" * 20, encoding="utf-8")
    monkeypatch.setattr(graph.load, "ONNX_LIMIT", 100)
    with pytest.raises(InputFileError, match=r"tiny_dynamo.onnx.*larger than the limit of 100 bytes"):
        analyze_onnx(TINY_DYNAMO)
    monkeypatch.setattr(graph.load, "ONNX_LIMIT", 1 << 20)
    monkeypatch.setattr(graph.mapping, "MAPPING_LIMIT", 100)
    with pytest.raises(InputFileError, match=r"mapping.json.*larger than the limit of 100 bytes"):
        analyze_onnx(TINY_TS, TINY_TS_MAPPING)
    monkeypatch.setattr("analyzer.simple_config.SIMPLE_CONFIG_LIMIT", 100)
    with pytest.raises(ConfigError, match=r"quant.cfg.*larger than the limit of 100 bytes"):
        analyze_onnx(TINY_DYNAMO, None, cfg)
    monkeypatch.setattr("graph.files.CONFIG_LIMIT", 100)
    assert main(["validate", str(FIXTURES / "tiny.config.json")]) == 2
    assert "larger than the limit of 100 bytes" in capsys.readouterr().err


def test_odd_paths_are_quantscope_errors(tmp_path: Path) -> None:
    class BytesPath:
        def __fspath__(self) -> bytes:
            return os.fsencode(tmp_path / "c.json")

    out = tmp_path / "c.json"
    with pytest.raises(InputFileError, match="NUL character"):
        create_quant_retrain_config_from_onnx(out, "model\0.onnx")
    with pytest.raises(InputFileError, match="NUL character"):
        create_quant_retrain_config_from_onnx(out, TINY_TS, "mapping\0.json")
    with pytest.raises(ConfigError, match="NUL character"):
        create_quant_retrain_config_from_onnx(out, TINY_DYNAMO, None, "quant\0.cfg")
    with pytest.raises(OutputError, match="NUL character"):
        create_quant_retrain_config_from_onnx(tmp_path / "c\0.json", TINY_DYNAMO)
    with pytest.raises(OutputError, match="embedded null"):
        create_quant_retrain_config_from_onnx(tmp_path / "d\0" / "c.json", TINY_DYNAMO)
    with pytest.raises(ArgumentTypeError, match=r"config_file.*bytes path"):
        create_quant_retrain_config_from_onnx(BytesPath(), TINY_DYNAMO)
    with pytest.raises(ArgumentTypeError, match=r"onnx_file.*bytes path"):
        create_quant_retrain_config_from_onnx(out, BytesPath())
    assert list(tmp_path.iterdir()) == []


# --- odd but legal graphs: a report, never a crash ------------------------------------------------------------


def _edited_dynamo(tmp_path: Path, edit: Any) -> Path:
    model = onnx.load(str(TINY_DYNAMO), load_external_data=False)
    edit(model)
    path = tmp_path / "edited.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _rename_nodes(names: list[str]) -> Any:
    def edit(model: onnx.ModelProto) -> None:
        for node, name in zip(model.graph.node, names * len(model.graph.node), strict=False):
            node.name = name

    return edit


@pytest.mark.parametrize(
    "names",
    [[""], ["n"], ["#1", ""], ["#1", "", "n#3", "n"], ["\u00fcber", "a b", "x" * 300]],
    ids=["all-empty", "all-the-same", "named-like-an-empty-one", "named-like-a-repeat", "unicode-long"],
)
def test_empty_and_repeated_node_names_give_the_same_config(names: list[str], tmp_path: Path) -> None:
    path = _edited_dynamo(tmp_path, _rename_nodes(names))
    out = tmp_path / "config.json"
    create_quant_retrain_config_from_onnx(out, path)
    assert out.read_text(encoding="utf-8") == (FIXTURES / "tiny.config.json").read_text(encoding="utf-8")
    annotated = tmp_path / "annotated.onnx"
    assert (
        main(["-q", "explain", str(path), "--annotate", str(annotated), "-o", str(tmp_path / "r.txt")]) == 0
    )
    decisions = [
        {entry.key: entry.value for entry in node.metadata_props}.get("quantscope.layer")
        for node in onnx.load_model(str(annotated)).graph.node
    ]
    assert decisions.count("conv") == 1 and decisions.count("fc") == 1  # each node annotated as itself


def _set_attribute(op_type: str, attribute: onnx.AttributeProto) -> Any:
    def edit(model: onnx.ModelProto) -> None:
        for node in model.graph.node:
            if node.op_type == op_type:
                kept = [a for a in node.attribute if a.name != attribute.name]
                del node.attribute[:]
                node.attribute.extend([*kept, attribute])

    return edit


def _set_dims(name: str, dims: list[int]) -> Any:
    def edit(model: onnx.ModelProto) -> None:
        for tensor in model.graph.initializer:
            if tensor.name == name:
                del tensor.dims[:]
                tensor.dims.extend(dims)

    return edit


def _undefined(name: str) -> onnx.AttributeProto:
    attribute = onnx.AttributeProto(name=name)
    attribute.type = onnx.AttributeProto.UNDEFINED
    return attribute


ABSURD = {
    "huge-group": _set_attribute("Conv", onnx.helper.make_attribute("group", 2**62)),
    "negative-group": _set_attribute("Conv", onnx.helper.make_attribute("group", -(2**63))),
    "group-as-string": _set_attribute("Conv", onnx.helper.make_attribute("group", "eight")),
    "group-as-floats": _set_attribute("Conv", onnx.helper.make_attribute("group", [1.5, 2.5])),
    "group-undefined": _set_attribute("Conv", _undefined("group")),
    "transA-as-float": _set_attribute("Gemm", onnx.helper.make_attribute("transA", 1.0)),
    "transA-as-tensor": _set_attribute(
        "Gemm",
        onnx.helper.make_attribute("transA", onnx.helper.make_tensor("t", onnx.TensorProto.INT64, [1], [1])),
    ),
    "attribute-named-empty": _set_attribute("Conv", onnx.helper.make_attribute("", 7)),
    "huge-weight-dims": _set_dims("conv.weight", [2**62, 2**62, 3, 3]),
    "negative-weight-dims": _set_dims("conv.weight", [-8, -3, 3, 3]),
    "scalar-weight": _set_dims("conv.weight", []),
    "one-dim-weight": _set_dims("fc.weight", [4]),
}


@pytest.mark.parametrize("edit", ABSURD.values(), ids=ABSURD.keys())
def test_absurd_attribute_values_give_a_report_or_an_error(edit: Any, tmp_path: Path) -> None:
    path = _edited_dynamo(tmp_path, edit)
    try:
        report, text = analyze_onnx(path)
    except QuantScopeError as err:
        assert not isinstance(err, AnalysisError), err  # an input error, not the last net
        assert str(path) in str(err)
        return
    names = {record.name for record in report.layers}
    assert {"conv", "fc"} <= names
    assert json.loads(text)["version"] == 1


def test_cycles_reaching_the_checks_terminate_with_findings() -> None:
    """The loader refuses cycles, but a graph handed to `analyze` directly (the library path) must not hang
    the walks: a cycle in front of a Conv inside its own scope, and a weight that passes through a cycle."""
    nodes = [
        op("Identity", ["x", "b"], ["a"], "conv", name="loop_a"),
        op("Cast", ["a"], ["b"], "conv", name="loop_b"),
        op("Conv", ["a", "conv.weight"], ["y"], "conv", name="conv_op"),
        op("Transpose", ["w2"], ["w1"], "fc", name="w_loop_1"),
        op("Identity", ["w1"], ["w2"], "fc", name="w_loop_2"),
        op("Gemm", ["y", "w1"], ["z"], "fc", name="fc_op"),
        op("Gemm", ["z", "lin.weight"], ["out"], "lin", name="lin_op", transB=1),
    ]
    exported = make_graph(
        nodes,
        {"conv.weight": (32, 32, 3, 3), "lin.weight": (16, 16)},
        [module("conv", "Conv2d"), module("fc", "Linear"), module("lin", "Linear")],
    )
    report, _text = analyze(exported)
    records = {record.name: record for record in report.layers}
    assert records["fc"].code == "QS107"  # its weight never reaches an initializer: no op to quantize
    assert records["lin"].decision == "quantize"


def test_unexpected_exceptions_are_analysis_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*args: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(analyzer.api, "run_checks", broken)
    out = tmp_path / "config.json"
    with pytest.raises(
        AnalysisError, match=r"tiny_torchscript.onnx.*tiny_torchscript.mapping.json.*KeyError"
    ) as caught:
        create_quant_retrain_config_from_onnx(out, TINY_TS, TINY_TS_MAPPING)
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value.__cause__, KeyError)
    assert not out.exists()


# --- names with spaces, non-ASCII letters, dots and 201 characters round-trip ---------------------------------

WEIRD_LAYERS = ["stem conv", "blöck 1.ünï", "very_long_layer_name_" + "x" * 180]


@pytest.mark.parametrize(
    ("onnx_name", "with_mapping"),
    [
        ("weird_names_dynamo.onnx", True),
        ("weird_names_dynamo.onnx", False),
        ("weird_names_torchscript.onnx", True),
    ],
)
def test_unusual_layer_names_round_trip(onnx_name: str, with_mapping: bool, tmp_path: Path) -> None:
    onnx_file = FIXTURES / onnx_name
    mapping = onnx_file.with_suffix(".mapping.json") if with_mapping else None
    out = tmp_path / "out config ünï" / ("c" * 200 + ".json")  # an odd target path as well
    create_quant_retrain_config_from_onnx(out, onnx_file, mapping)
    text = out.read_text(encoding="utf-8")
    assert text == (FIXTURES / "weird_names.config.json").read_text(encoding="utf-8")  # the library's bytes
    layers = [key for key in json.loads(text) if key not in ("version", "batch_num")]
    assert layers == WEIRD_LAYERS
    assert validate_config(text, analyze_onnx(onnx_file, mapping)[0]) == []
    assert sorted(path.name for path in out.parent.iterdir()) == [out.name]  # no temporary file left
    if mapping is not None:
        names = [entry["name"] for entry in json.loads(mapping.read_text(encoding="utf-8"))["modules"]]
        assert set(WEIRD_LAYERS) <= set(names)


def test_unusual_layer_names_in_a_simple_config(tmp_path: Path) -> None:
    cfg = tmp_path / "quant.cfg"
    cfg.write_text(
        f'skip_layers: "blöck 1.ünï"\n'
        f'override_layer_configs: {{ layer_name: "{WEIRD_LAYERS[2]}" '
        "retrain_weight_quant_config: { ulq_retrain: { dst_type: INT8 } } }\n"
        'quant_skip_layers: "stem conv"\n',
        encoding="utf-8",
    )
    _report, text = analyze_onnx(FIXTURES / "weird_names_dynamo.onnx", None, cfg)
    config = json.loads(text)
    assert [config[name]["retrain_enable"] for name in WEIRD_LAYERS] == [False, False, True]
    assert config[WEIRD_LAYERS[2]]["retrain_weight_config"]["algo"] == "ulq_retrain"
    bad = tmp_path / "bad.cfg"
    bad.write_text('skip_layers: "blöck 1.uni"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'blöck 1\.uni'.*did you mean 'blöck 1\.ünï'"):
        analyze_onnx(FIXTURES / "weird_names_dynamo.onnx", None, bad)


def test_huge_scope_metadata_is_not_parsed(tmp_path: Path) -> None:
    """A node's module scopes are a Python repr parsed with `ast.literal_eval`; megabytes of it (a hostile file)
    are not parsed: the op's owner is then unknown, which the report says."""
    huge = repr(["", "conv", *(f"\\{i}" for i in range(200_000)), "conv2d"])  # escapes: no fast path

    def edit(model: onnx.ModelProto) -> None:
        node = next(node for node in model.graph.node if node.op_type == "Conv")
        props = {prop.key: prop.value for prop in node.metadata_props}
        props["pkg.torch.onnx.name_scopes"] = huge
        del node.metadata_props[:]
        for key, value in props.items():
            node.metadata_props.add(key=key, value=value)

    report, _text = analyze_onnx(_edited_dynamo(tmp_path, edit))
    assert any("cannot be established" in note.reason for note in report.notes)
    assert {record.name: record.decision for record in report.layers}["fc"] == "quantize"
