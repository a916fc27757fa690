"""The `quantscope` command line, through `main(argv)` and through a real subprocess: every command's happy path,
exit codes (0 ok, 1 problems found, 2 usage or input errors), one-line errors, and `validate`'s catalogue of
hand-editing mistakes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import schemas
from analyzer.cli import main
from analyzer.report import EXCLUDED, NOT_CANDIDATE, QUANTIZE, REPORT_SCHEMA
from analyzer.validate import (
    CHANNEL_WISE_LINEAR,
    DST_TYPE,
    DUPLICATE_KEY,
    EXCLUDED_LAYER,
    INT4_UNPACKABLE,
    KINDS,
    NOT_QUANTIZABLE,
    SCHEMA,
    SYNTAX,
    UNKNOWN_LAYER,
)
from tests.cases import GOLDEN

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("demo", "export", "generate", "explain", "validate")


def _offline_ready() -> bool:
    """The offline path (ONNX file + mapping) exists: `graph.load` and `graph.export.export_onnx`."""
    from graph import export

    return importlib.util.find_spec("graph.load") is not None and hasattr(export, "export_onnx")


needs_offline = pytest.mark.skipif(
    not _offline_ready(), reason="the offline path (graph.load, export_onnx) is not there"
)

# A model with something of every kind: a small-Cin conv (advisory), a module called twice (excluded), a Conv1d
# (not a candidate), a Linear (quantized, channel_wise must stay false).
MODELS = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_in = nn.Conv2d(3, 8, 3, padding=1)
            self.conv_reused = nn.Conv2d(8, 8, 3, padding=1)
            self.seq = nn.Conv1d(8, 8, 1)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            x = self.conv_reused(F.relu(self.conv_reused(F.relu(self.conv_in(x)))))
            x = self.seq(x.mean(3))
            return self.fc(x.mean(2))


    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            raise RuntimeError("this model cannot be traced\\nsecond line of the cause")


    class OnlyConv1d(nn.Module):
        def __init__(self):
            super().__init__()
            self.seq = nn.Conv1d(4, 4, 1)

        def forward(self, x):
            return self.seq(x)


    def build():
        torch.manual_seed(0)
        return Net()


    def build_with_inputs():
        torch.manual_seed(0)
        return Net(), (torch.randn(1, 3, 16, 16),)


    def broken():
        return Broken()


    def only_conv1d():
        return OnlyConv1d(), torch.randn(1, 4, 8)


    def not_a_model():
        return 42


    def raises():
        raise ValueError("the factory is broken")
    """
)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*argv: str) -> Run:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _subprocess(*argv: str, cwd: Path | None = None, entry: list[str] | None = None) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("NO_COLOR", None)
    command = entry or [sys.executable, "-m", "analyzer"]
    done = subprocess.run(
        [*command, *argv], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr)


def _assert_one_line_error(run: Run, *words: str) -> None:
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("quantscope: error: ")
    assert "Traceback" not in run.err
    for word in words:
        assert word in lines[0]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    (folder / "cli_models.py").write_text(MODELS, encoding="utf-8")
    return folder


@dataclass(frozen=True)
class Exported:
    onnx: Path
    mapping: Path
    config: Path  # the config `generate` wrote for it


@pytest.fixture(scope="module")
def exported(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The test model exported with `quantscope export`, and its config from `quantscope generate`."""
    if not _offline_ready():
        pytest.skip("the offline path (graph.load, export_onnx) is not there")
    folder = tmp_path_factory.mktemp("exported")
    onnx_file = folder / "net.onnx"
    spec = f"{models_dir / 'cli_models.py'}:build"
    assert main(["export", spec, "--input-shape", "1,3,16,16", "-o", str(onnx_file)]) == 0
    config = folder / "net_config.json"
    assert main(["generate", str(onnx_file), "-o", str(config)]) == 0
    return Exported(onnx_file, folder / "net.mapping.json", config)


# ------------------------------------------------------------------------------------------ help and usage


@pytest.mark.parametrize("command", ["", *COMMANDS], ids=["quantscope", *COMMANDS])
def test_help_of_every_command(command: str, cli: Callable[..., Run]) -> None:
    run = cli(*([command] if command else []), "--help")
    assert run.code == 0
    assert run.out.startswith(f"usage: quantscope {command}".rstrip())
    if not command:
        for name in COMMANDS:
            assert name in run.out


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["explain"], ["generate", "model.onnx"], ["export", "m:f", "--input-shape", "1,a"]],
    ids=["no-command", "unknown-command", "missing-argument", "missing-output", "bad-shape"],
)
def test_usage_errors_exit_2(argv: list[str], cli: Callable[..., Run]) -> None:
    run = cli(*argv)
    assert run.code == 2
    assert "usage: quantscope" in run.err
    assert run.out == ""


# ------------------------------------------------------------------------------------------ validate


def _golden(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def _problems(out: str, config: Path) -> set[tuple[str, str]]:
    """(JSON path, kind) of every problem line `validate` printed."""
    found = set()
    for line in out.splitlines():
        if line.startswith(f"{config}: $"):
            path, kind, _message = line[len(f"{config}: ") :].split(": ", 2)
            found.add((path, kind))
    return found


def _edit(name: str, change: Callable[[dict[str, Any]], None]) -> str:
    config = _golden(name)
    change(config)
    return json.dumps(config, indent=4)


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


RESNET = "resnet18_hand"
CONV1 = ("conv1",)
DATA = ("conv1", "retrain_data_config")
WEIGHT = ("conv1", "retrain_weight_config")

# Mistakes `validate` catches without a model: (config text, the (path, kind) problems expected, exactly)
FILE_MISTAKES: dict[str, tuple[str, set[tuple[str, str]]]] = {
    "syntax-error": ('{"version":1,"batch_num":1,}', {("$", SYNTAX)}),
    "not-utf8": ('{"version":1,"batch_num":1,"\xff":{}}', {("$", SYNTAX)}),
    "duplicate-top-level-key": (
        '{"version":1,"batch_num":1,"batch_num":2}',
        {("$.batch_num", DUPLICATE_KEY)},
    ),
    "duplicate-layer-key": (
        (GOLDEN / f"{RESNET}.json")
        .read_text(encoding="utf-8")
        .replace('"retrain_enable":true,', '"retrain_enable":true,"retrain_enable":false,', 1),
        {("$.conv1.retrain_enable", DUPLICATE_KEY)},
    ),
    "duplicate-layer": (
        '{"version":1,"batch_num":1,"fc":{"retrain_enable":true,"retrain_data_config":{"algo":"ulq_quantize",'
        '"dst_type":"INT8"},"retrain_weight_config":{"algo":"arq_retrain","channel_wise":false,"dst_type":"INT8"}},'
        '"fc":{"retrain_enable":false,"retrain_data_config":{"algo":"ulq_quantize",'
        '"dst_type":"INT8"},"retrain_weight_config":{"algo":"arq_retrain","channel_wise":false,"dst_type":"INT8"}}}',
        {("$.fc", DUPLICATE_KEY)},
    ),
    "misspelt-key": (_edit(RESNET, _set((*CONV1, "retrain_enabel"), True)), {("$.conv1", SCHEMA)}),
    "missing-key": (_edit(RESNET, _delete((*CONV1, "retrain_enable"))), {("$.conv1", SCHEMA)}),
    "bad-dst-type": (
        _edit(RESNET, _set((*DATA, "dst_type"), "INT2")),
        {("$.conv1.retrain_data_config.dst_type", SCHEMA)},
    ),
    "bad-algo": (
        _edit(RESNET, _set((*WEIGHT, "algo"), "arq")),
        {("$.conv1.retrain_weight_config.algo", SCHEMA)},
    ),
    "clip-max-alone": (
        _edit(RESNET, _set((*DATA, "clip_max"), 6.0)),
        {("$.conv1.retrain_data_config", SCHEMA)},
    ),
    "clip-min-positive": (
        _edit(RESNET, lambda c: c["conv1"]["retrain_data_config"].update(clip_max=6.0, clip_min=1.0)),
        {("$.conv1.retrain_data_config.clip_min", SCHEMA)},
    ),
    "channel-wise-not-bool": (
        _edit(RESNET, _set((*WEIGHT, "channel_wise"), "yes")),
        {("$.conv1.retrain_weight_config.channel_wise", SCHEMA)},
    ),
    "version-2": (_edit(RESNET, _set(("version",), 2)), {("$.version", SCHEMA)}),
    "batch-num-0": (_edit(RESNET, _set(("batch_num",), 0)), {("$.batch_num", SCHEMA)}),
    "dotted-layer-name": (
        _edit(RESNET, _set(("layer1.0.conv1", "retrain_enable"), "true")),
        {("$['layer1.0.conv1'].retrain_enable", SCHEMA)},
    ),
    "int4-activations": (
        _edit(
            RESNET,
            lambda c: (
                c["conv1"]["retrain_data_config"].update(dst_type="INT4"),
                c["conv1"]["retrain_weight_config"].update(dst_type="INT4"),
            ),
        ),
        {("$.conv1.retrain_data_config.dst_type", DST_TYPE)},
    ),
    "int16-int4-pair": (
        _edit(
            RESNET,
            lambda c: (
                c["conv1"]["retrain_data_config"].update(dst_type="INT16"),
                c["conv1"]["retrain_weight_config"].update(dst_type="INT4"),
            ),
        ),
        {("$.conv1.retrain_data_config.dst_type", DST_TYPE)},
    ),
}


@pytest.mark.parametrize("mistake", FILE_MISTAKES, ids=list(FILE_MISTAKES))
def test_validate_catches_file_mistakes(mistake: str, tmp_path: Path, cli: Callable[..., Run]) -> None:
    text, expected = FILE_MISTAKES[mistake]
    config = tmp_path / "config.json"
    config.write_bytes(text.encode("latin-1") if mistake == "not-utf8" else text.encode("utf-8"))
    run = cli("validate", str(config))
    assert run.code == 1
    assert _problems(run.out, config) == expected
    assert f"found {len(expected)} problem" in run.out


@pytest.mark.parametrize("name", ["resnet18_hand", "cfg_simple", "linear_variants"])
def test_validate_accepts_generated_configs(name: str, cli: Callable[..., Run]) -> None:
    config = GOLDEN / f"{name}.json"
    run = cli("validate", str(config))
    assert (run.code, run.err) == (0, "")
    assert "OK" in run.out


def test_validate_lists_every_problem_sorted(tmp_path: Path, cli: Callable[..., Run]) -> None:
    def change(config: dict[str, Any]) -> None:
        config["version"] = 3
        config["fc"]["retrain_weight_config"]["dst_type"] = "INT16"
        config["conv1"]["retrain_data_config"]["dst_type"] = "INT4"

    config = tmp_path / "config.json"
    config.write_text(_edit(RESNET, change), encoding="utf-8")
    run = cli("validate", str(config))
    lines = [line for line in run.out.splitlines() if line.startswith(str(config))]
    assert run.code == 1
    assert len(lines) == 3
    assert lines == sorted(lines)


def test_validate_input_errors_exit_2(tmp_path: Path, cli: Callable[..., Run]) -> None:
    _assert_one_line_error(cli("validate", str(tmp_path / "missing.json")), "missing.json", "no such file")
    _assert_one_line_error(cli("validate", str(tmp_path)), "is a directory")
    config = tmp_path / "config.json"
    config.write_text((GOLDEN / f"{RESNET}.json").read_text(encoding="utf-8"), encoding="utf-8")
    _assert_one_line_error(cli("validate", str(config), "--mapping", "m.json"), "--mapping needs --onnx")
    _assert_one_line_error(
        cli("validate", str(config), "--onnx", str(tmp_path / "nothing.onnx")), "nothing.onnx", "no such file"
    )


def test_every_validate_kind_is_tested() -> None:
    file_kinds = {kind for _text, expected in FILE_MISTAKES.values() for _path, kind in expected}
    assert set(KINDS) == file_kinds | {kind for _change, _path, kind, _words in MODEL_MISTAKES.values()}


# Mistakes that need the model: (change to the generated config, path, kind, words of the message)
MODEL_MISTAKES: dict[str, tuple[Callable[[dict[str, Any]], None], str, str, tuple[str, ...]]] = {
    "typo-in-layer-name": (
        lambda c: c.__setitem__("conv_inn", c.pop("conv_in")),
        "$.conv_inn",
        UNKNOWN_LAYER,
        ("'conv_inn'", "did you mean 'conv_in'"),
    ),
    "layer-of-another-model": (
        lambda c: c.__setitem__("layer4.1.conv2", c["conv_in"]),
        "$['layer4.1.conv2']",
        UNKNOWN_LAYER,
        ("'layer4.1.conv2'",),
    ),
    "excluded-layer-re-enabled": (
        lambda c: c.__setitem__("conv_reused", c["conv_in"]),
        "$.conv_reused",
        EXCLUDED_LAYER,
        ("re-enabled", "QS102 reused-module", "called 2 times"),
    ),
    "excluded-layer-added-disabled": (
        lambda c: c.__setitem__("conv_reused", {**c["conv_in"], "retrain_enable": False}),
        "$.conv_reused",
        EXCLUDED_LAYER,
        ("added back",),
    ),
    "not-a-candidate-added": (
        lambda c: c.__setitem__("seq", c["conv_in"]),
        "$.seq",
        NOT_QUANTIZABLE,
        ("Conv1d",),
    ),
    "channel-wise-on-linear": (
        lambda c: c["fc"]["retrain_weight_config"].__setitem__("channel_wise", True),
        "$.fc.retrain_weight_config.channel_wise",
        CHANNEL_WISE_LINEAR,
        ("Linear", "channel_wise must be false"),
    ),
    "int4-weight-on-odd-cin": (
        lambda c: c["conv_in"]["retrain_weight_config"].__setitem__("dst_type", "INT4"),
        "$.conv_in.retrain_weight_config.dst_type",
        INT4_UNPACKABLE,
        ("'conv_in'", "Cin = 3 is odd", "INT8"),
    ),
}


@needs_offline
def test_validate_accepts_the_generated_config_against_its_model(
    exported: Exported, cli: Callable[..., Run]
) -> None:
    run = cli(
        "validate", str(exported.config), "--onnx", str(exported.onnx), "--mapping", str(exported.mapping)
    )
    assert (run.code, run.err) == (0, "")
    assert "OK" in run.out and str(exported.onnx) in run.out


@needs_offline
@pytest.mark.parametrize("mistake", MODEL_MISTAKES, ids=list(MODEL_MISTAKES))
def test_validate_catches_model_mistakes(
    mistake: str, exported: Exported, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    change, path, kind, words = MODEL_MISTAKES[mistake]
    config_obj = json.loads(exported.config.read_text(encoding="utf-8"))
    change(config_obj)
    config = tmp_path / "edited.json"
    config.write_text(json.dumps(config_obj, indent=4), encoding="utf-8")
    without_model = cli("validate", str(config))
    assert without_model.code == 0  # each of these is a valid config for *some* model
    run = cli("validate", str(config), "--onnx", str(exported.onnx))
    assert run.code == 1
    assert _problems(run.out, config) == {(path, kind)}
    line = next(line for line in run.out.splitlines() if f": {kind}: " in line)
    for word in words:
        assert word in line


# ------------------------------------------------------------------------------------------ export


@needs_offline
def test_export_writes_onnx_and_mapping(exported: Exported) -> None:
    import onnx

    assert exported.onnx.is_file() and exported.mapping.is_file()
    model = onnx.load(str(exported.onnx), load_external_data=False)
    assert any(node.op_type == "Conv" for node in model.graph.node)
    assert json.loads(exported.mapping.read_text(encoding="utf-8"))


@needs_offline
def test_export_by_module_name_with_factory_inputs(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Run]
) -> None:
    monkeypatch.chdir(models_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "cli_models", raising=False)
    onnx_file = tmp_path / "out" / "net.onnx"
    mapping = tmp_path / "maps" / "net.json"
    run = cli("export", "cli_models:build_with_inputs", "-o", str(onnx_file), "--mapping", str(mapping))
    assert run.code == 0, run.err
    assert onnx_file.is_file() and mapping.is_file()
    assert str(onnx_file) in run.out and str(mapping) in run.out


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("no_colon_here", ("expected MODULE:FACTORY",)),
        ("{models}/cli_models.py:missing", ("has no attribute 'missing'",)),
        ("{models}/nowhere.py:build", ("nowhere.py", "no such file")),
        ("surely_not_a_module_anywhere:build", ("cannot import",)),
        ("{models}/cli_models.py:not_a_model", ("returned int", "torch.nn.Module")),
        ("{models}/cli_models.py:raises", ("the factory raised ValueError", "the factory is broken")),
        ("{models}/cli_models.py:build", ("no example inputs", "--input-shape")),
    ],
    ids=["no-colon", "no-attribute", "no-file", "no-module", "not-a-model", "factory-raises", "no-inputs"],
)
def test_export_factory_errors(
    factory: str, words: tuple[str, ...], models_dir: Path, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    onnx_file = tmp_path / "net.onnx"
    run = cli("export", factory.format(models=models_dir), "-o", str(onnx_file))
    _assert_one_line_error(run, *words)
    assert not onnx_file.exists()


@needs_offline
def test_export_failure_is_one_line_and_traceback_with_v(
    models_dir: Path, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    onnx_file = tmp_path / "net.onnx"
    spec = f"{models_dir / 'cli_models.py'}:broken"
    run = cli("export", spec, "--input-shape", "1,4", "-o", str(onnx_file))
    _assert_one_line_error(
        run, "broken", "export", "failed", "RuntimeError: this model cannot be traced second line"
    )
    assert "\x1b[" not in run.err
    assert not onnx_file.exists()
    verbose = cli("export", spec, "--input-shape", "1,4", "-o", str(onnx_file), "-v")
    assert verbose.code == 2
    assert "Traceback" in verbose.err
    assert verbose.err.strip().splitlines()[-1].startswith("quantscope: error: ")


# ------------------------------------------------------------------------------------------ generate


@needs_offline
def test_generate_writes_the_config_the_library_call_writes(
    exported: Exported, models_dir: Path, tmp_path: Path
) -> None:
    from analyzer import create_quant_retrain_config

    spec = importlib.util.spec_from_file_location("cli_models_for_generate", models_dir / "cli_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, inputs = module.build_with_inputs()
    library = tmp_path / "library.json"
    create_quant_retrain_config(str(library), model, inputs)
    assert exported.config.read_bytes() == library.read_bytes()
    assert set(json.loads(library.read_text(encoding="utf-8"))) == {"version", "batch_num", "conv_in", "fc"}


@needs_offline
def test_generate_prints_where_and_what(exported: Exported, tmp_path: Path, cli: Callable[..., Run]) -> None:
    out = tmp_path / "sub" / "config.json"
    run = cli("generate", str(exported.onnx), "--mapping", str(exported.mapping), "-o", str(out))
    assert run.code == 0
    assert run.out.startswith(f"wrote {out}: 2 layers quantized, 1 excluded (reused-module: 1)")
    # one warning per advisory kind, naming only the layers that will be quantized
    assert run.err.splitlines() == [
        "quantscope: warning: small-cin on 1 layer(s): conv_in "
        "(e.g. conv_in: Cin = 3 <= 16, quantizing it is not recommended for accuracy)"
    ]
    assert out.read_bytes() == exported.config.read_bytes()
    quiet = cli("generate", str(exported.onnx), "-o", str(out), "-q")
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")


@needs_offline
def test_generate_with_a_simple_config(exported: Exported, tmp_path: Path, cli: Callable[..., Run]) -> None:
    cfg = tmp_path / "quant.cfg"
    cfg.write_text('batch_num: 3\nskip_layers: "fc"\n', encoding="utf-8")
    out = tmp_path / "config.json"
    run = cli("generate", str(exported.onnx), "--simple-config", str(cfg), "-o", str(out))
    assert run.code == 0, run.err
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["batch_num"] == 3 and written["fc"]["retrain_enable"] is False


@needs_offline
def test_generate_errors_exit_2(
    exported: Exported, models_dir: Path, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    out = tmp_path / "config.json"
    _assert_one_line_error(
        cli("generate", str(tmp_path / "none.onnx"), "-o", str(out)), "none.onnx", "no such file"
    )
    cfg = tmp_path / "quant.cfg"
    cfg.write_text('skip_layers: "conv_reused"\n', encoding="utf-8")
    _assert_one_line_error(
        cli("generate", str(exported.onnx), "--simple-config", str(cfg), "-o", str(out)), "conv_reused"
    )
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07this is not an onnx file" * 10)
    _assert_one_line_error(cli("generate", str(garbage), "-o", str(out)), "garbage.onnx")
    only_conv1d = tmp_path / "conv1d.onnx"
    assert main(["export", f"{models_dir / 'cli_models.py'}:only_conv1d", "-o", str(only_conv1d)]) == 0
    _assert_one_line_error(cli("generate", str(only_conv1d), "-o", str(out)), "no layer can be quantized")
    assert not out.exists()


# ------------------------------------------------------------------------------------------ explain


@needs_offline
def test_explain_prints_the_table(exported: Exported, cli: Callable[..., Run]) -> None:
    run = cli("explain", str(exported.onnx))
    assert run.code == 0
    assert "\x1b[" not in run.out  # not a terminal: no colour
    rows = {line.split()[0]: line for line in run.out.splitlines() if line.split()}
    assert (
        EXCLUDED in rows["conv_reused"]
        and "QS102" in rows["conv_reused"]
        and "called 2 times" in rows["conv_reused"]
    )
    assert QUANTIZE in rows["conv_in"] and QUANTIZE in rows["fc"]
    assert NOT_CANDIDATE in rows["seq"]
    assert "QS201 small-cin: conv_in: Cin = 3" in run.out
    assert (
        run.out.strip().splitlines()[-1]
        == "2 layers quantized, 1 excluded (reused-module: 1), 1 not a candidate"
    )
    coloured = cli("explain", str(exported.onnx), "--color", "always")
    assert "\x1b[" in coloured.out


@needs_offline
def test_explain_json_validates(exported: Exported, tmp_path: Path, cli: Callable[..., Run]) -> None:
    run = cli("explain", str(exported.onnx), "--mapping", str(exported.mapping), "--format", "json")
    assert run.code == 0
    document = json.loads(run.out)
    assert list(schemas.validator(REPORT_SCHEMA).iter_errors(document)) == []
    assert {layer["name"]: layer["decision"] for layer in document["layers"]}["conv_reused"] == EXCLUDED
    out = tmp_path / "report.json"
    written = cli("explain", str(exported.onnx), "--format", "json", "-o", str(out))
    assert written.code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == document


@needs_offline
def test_explain_annotate_writes_a_weight_free_annotated_graph(
    exported: Exported, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    import onnx

    out = tmp_path / "annotated.onnx"
    run = cli("explain", str(exported.onnx), "--annotate", str(out))
    assert run.code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.onnx"]  # no weights file beside it
    original = onnx.load(str(exported.onnx), load_external_data=False)
    annotated = onnx.load(str(out), load_external_data=False)
    assert {t.name: list(t.dims) for t in annotated.graph.initializer} == {
        t.name: list(t.dims) for t in original.graph.initializer
    }
    for tensor in annotated.graph.initializer:
        assert not tensor.raw_data and not tensor.float_data and not tensor.external_data
        assert tensor.data_location == onnx.TensorProto.DEFAULT
    report = json.loads(cli("explain", str(exported.onnx), "--format", "json").out)
    decisions = {node: layer["decision"] for layer in report["layers"] for node in layer["nodes"]}
    assert decisions
    annotated_nodes = {
        node.name: {p.key: p.value for p in node.metadata_props} for node in annotated.graph.node
    }
    for node, decision in decisions.items():
        assert annotated_nodes[node]["quantscope.decision"] == decision
        assert annotated_nodes[node]["quantscope.reason"]
    reused = [meta for meta in annotated_nodes.values() if meta.get("quantscope.layer") == "conv_reused"]
    assert len(reused) == 2 and all(meta["quantscope.code"] == "QS102" for meta in reused)
    model_meta = {p.key: p.value for p in annotated.metadata_props}
    assert model_meta["quantscope.summary"].startswith("2 layers quantized")


@needs_offline
@pytest.mark.needs_dynamo
def test_explain_a_torchscript_export_with_its_mapping(
    exported: Exported, models_dir: Path, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    onnx_file = tmp_path / "net_ts.onnx"
    spec = f"{models_dir / 'cli_models.py'}:build"
    assert (
        cli(
            "export", spec, "--input-shape", "1,3,16,16", "-o", str(onnx_file), "--exporter", "torchscript"
        ).code
        == 0
    )
    torchscript = json.loads(cli("explain", str(onnx_file), "--format", "json").out)
    dynamo = json.loads(cli("explain", str(exported.onnx), "--format", "json").out)
    assert torchscript["provenance"]["exporter"] == "torchscript"
    assert dynamo["provenance"]["exporter"] == "dynamo"
    decisions = [(layer["name"], layer["decision"], layer["code"]) for layer in dynamo["layers"]]
    assert [(layer["name"], layer["decision"], layer["code"]) for layer in torchscript["layers"]] == decisions


@needs_offline
def test_explain_errors_exit_2(exported: Exported, tmp_path: Path, cli: Callable[..., Run]) -> None:
    _assert_one_line_error(cli("explain", str(tmp_path / "none.onnx")), "none.onnx", "no such file")
    _assert_one_line_error(
        cli("explain", str(exported.onnx), "--mapping", str(tmp_path / "m.json")), "m.json"
    )
    before = exported.onnx.read_bytes()
    _assert_one_line_error(
        cli("explain", str(exported.onnx), "--annotate", str(exported.onnx)), "input model"
    )
    assert exported.onnx.read_bytes() == before


@needs_offline
def test_explain_shows_the_table_when_nothing_qualifies(
    models_dir: Path, tmp_path: Path, cli: Callable[..., Run]
) -> None:
    only_conv1d = tmp_path / "conv1d.onnx"
    assert main(["export", f"{models_dir / 'cli_models.py'}:only_conv1d", "-o", str(only_conv1d)]) == 0
    run = cli("explain", str(only_conv1d))
    assert run.code == 1
    assert "not a candidate" in run.out and "Conv1d" in run.out  # the table says why
    assert "no layer can be quantized" in run.err


# ------------------------------------------------------------------------------------------ demo


def test_demo_writes_the_example_config(tmp_path: Path, cli: Callable[..., Run]) -> None:
    out = tmp_path / "demo" / "config.json"
    run = cli("demo", "-o", str(out))
    assert run.code == 0
    assert out.read_text(encoding="utf-8") == (GOLDEN / "resnet18_hand.json").read_text(encoding="utf-8")
    assert "layer4.1.conv2" in run.out and f"config written to {out}" in run.out
    assert "21 layers quantized, 0 excluded" in run.out
    assert run.err == ""  # the table shows the advisories: no warnings on top


def test_demo_error_is_one_line(tmp_path: Path, cli: Callable[..., Run]) -> None:
    _assert_one_line_error(cli("demo", "-o", str(tmp_path)), str(tmp_path), "directory")


# ------------------------------------------------------------------------------------------ subprocess


def test_subprocess_help_and_usage() -> None:
    run = _subprocess("--help")
    assert run.code == 0 and "usage: quantscope" in run.out
    bad = _subprocess("frobnicate")
    assert bad.code == 2 and "invalid choice" in bad.err


def test_subprocess_validate_exit_codes(tmp_path: Path) -> None:
    good = _subprocess("validate", str(GOLDEN / "cfg_simple.json"))
    assert (good.code, good.err) == (0, "")
    bad_file = tmp_path / "bad.json"
    bad_file.write_text('{"version":1,"batch_num":1,"batch_num":1}', encoding="utf-8")
    bad = _subprocess("validate", str(bad_file))
    assert bad.code == 1
    assert f"{bad_file}: $.batch_num: {DUPLICATE_KEY}:" in bad.out
    missing = _subprocess("validate", str(tmp_path / "missing.json"))
    _assert_one_line_error(missing, "missing.json")


@needs_offline
def test_subprocess_explain_generate_and_errors(exported: Exported, tmp_path: Path) -> None:
    explain = _subprocess("explain", str(exported.onnx))
    assert explain.code == 0
    assert "conv_reused" in explain.out and EXCLUDED in explain.out
    out = tmp_path / "config.json"
    generate = _subprocess("generate", str(exported.onnx), "-o", str(out))
    assert generate.code == 0
    assert out.read_bytes() == exported.config.read_bytes()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model")
    failed = _subprocess("explain", str(garbage))
    _assert_one_line_error(failed, "garbage.onnx")
    verbose = _subprocess("explain", str(garbage), "-v")
    assert verbose.code == 2 and "Traceback" in verbose.err


@needs_offline
def test_subprocess_export(models_dir: Path, tmp_path: Path) -> None:
    onnx_file = tmp_path / "net.onnx"
    run = _subprocess(
        "export", "cli_models:build", "--input-shape", "1x3x16x16", "-o", str(onnx_file), cwd=models_dir
    )
    assert run.code == 0, run.err
    assert onnx_file.is_file() and (tmp_path / "net.mapping.json").is_file()
    failed = _subprocess(
        "export", "cli_models:broken", "--input-shape", "1,4", "-o", str(onnx_file), cwd=models_dir
    )
    _assert_one_line_error(failed, "export", "failed", "this model cannot be traced")


def _entry_point() -> str | None:
    beside = Path(sys.executable).parent / "quantscope"
    return str(beside) if beside.is_file() else shutil.which("quantscope")


@pytest.mark.skipif(_entry_point() is None, reason="the quantscope console script is not installed")
def test_console_script(tmp_path: Path) -> None:
    entry = _entry_point()
    assert entry is not None
    run = _subprocess("--help", entry=[entry])
    assert run.code == 0 and "usage: quantscope" in run.out
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert _subprocess("validate", str(bad), entry=[entry]).code == 1
