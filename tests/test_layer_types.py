"""SPEC section 9: the current AMCT's eight layer types, on request (`layer_types`).

The reference cases a_*, b_w4_rnn, c_*, d_* (AMCT 2be20daf's own output) run through every entrance and both
exporters in tests/test_reference_cases.py, tests/test_exporters.py and tests/test_offline.py. Here: the
argument, the rules of section 9 on models beyond those cases (both exporters), the simple-config errors, the
report in the documented mode, and the CLI end to end.
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyzer import ConfigError, create_quant_retrain_config
from analyzer.api import analyze
from analyzer.cli import main
from analyzer.layertypes import ALL_TYPES, select_types
from analyzer.report import Report
from analyzer.resolve import QuantLayer, resolve_simple
from analyzer.simple_config import parse_simple_config
from graph.export import export_graph
from tests.cases import CASES_BY_NAME, GOLDEN, LATEST_CASES, MIX_SHAPES, Case, MixAll

EXPORTERS = ("dynamo", "torchscript")
LATEST = "amct-latest"
MIX = CASES_BY_NAME["a_mix_all"]


def _analyze(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], exporter: str, **kw: Any
) -> tuple[Report, Any]:
    graph = export_graph(model.eval(), inputs, exporter=exporter)
    report, text = analyze(graph, kw.pop("simple", None), layer_types=kw.pop("layer_types", LATEST))
    return report, json.loads(text)


CFG_CASES = tuple(case for case in LATEST_CASES if case.cfg is not None)


@pytest.mark.parametrize("case", CFG_CASES, ids=[c.name for c in CFG_CASES])
def test_reference_case_with_a_simple_config_through_the_library_call(case: Case, tmp_path: Path) -> None:
    out = tmp_path / "config.json"
    create_quant_retrain_config(
        str(out), case.model(), case.inputs(), str(case.cfg_path()), layer_types=case.layer_types
    )
    assert out.read_text(encoding="utf-8") == case.golden_text()


# ------------------------------------------------------------------------------------------- the argument


def test_modes_and_collections() -> None:
    assert select_types("documented") == ("Linear", "Conv2d", "ConvTranspose2d")
    assert set(select_types(LATEST)) == {
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "Linear",
        "ConvTranspose2d",
        "ConvTranspose1d",
        "LSTM",
        "GRU",
    }
    assert select_types(["Conv3d", "Conv2d"]) == ("Conv2d", "Conv3d")  # table order
    assert select_types(frozenset({"LSTM"})) == ("LSTM",)


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        ("latest", ValueError, ("'latest'", "'documented'", "'amct-latest'", "Conv1d")),
        (
            ["Conv2d", "ConvTranspose3d"],
            ValueError,
            ("'ConvTranspose3d'", "allowed: " + ", ".join(ALL_TYPES)),
        ),
        (["RNN"], ValueError, ("'RNN'",)),
        ([], ValueError, ("empty",)),
        (3, TypeError, ("layer_types", "int")),
        (["Conv2d", 3], TypeError, ("layer_types",)),
    ],
    ids=["unknown-mode", "convtranspose3d", "rnn", "empty", "int", "not-str"],
)
def test_bad_layer_types_are_refused_before_any_work(
    value: object, error: type[Exception], words: tuple[str, ...], tmp_path: Path
) -> None:
    out = tmp_path / "config.json"
    with pytest.raises(error) as info:
        create_quant_retrain_config(str(out), MIX.model(), MIX.inputs(), layer_types=value)
    for word in words:
        assert word in str(info.value)
    assert not out.exists()


def test_layer_types_is_keyword_only(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        create_quant_retrain_config(str(tmp_path / "c.json"), MIX.model(), MIX.inputs(), None, LATEST)  # type: ignore[misc]


# ------------------------------------------------------------------------------------------- the modes


def test_documented_mode_reports_the_new_types_as_not_candidates_in_this_mode(tmp_path: Path) -> None:
    out = tmp_path / "config.json"
    report = create_quant_retrain_config(str(out), MIX.model(), MIX.inputs())
    assert list(json.loads(out.read_text(encoding="utf-8"))) == [
        "version",
        "batch_num",
        "fc",
        "up2d",
        "conv2d",
    ]
    for name in ("gru", "conv3d", "up1d", "conv1d", "lstm"):
        record = report.record(name)
        assert record.decision == "not a candidate"
        assert "not a candidate in this mode (layer_types 'documented')" in record.reason
        assert "it would be one with --layer-types amct-latest" in record.reason
    assert "is not a quantizable type" in report.record("up3d").reason  # never one, in any mode


def test_an_explicit_collection_adds_only_those_types(tmp_path: Path) -> None:
    out = tmp_path / "config.json"
    report = create_quant_retrain_config(
        str(out), MIX.model(), MIX.inputs(), layer_types=("Conv2d", "Conv3d")
    )
    assert list(json.loads(out.read_text(encoding="utf-8"))) == ["version", "batch_num", "conv3d", "conv2d"]
    assert "layer_types 'Conv2d,Conv3d'" in report.record("fc").reason


# ------------------------------------------------------------------------------------------- rules


class RnnVariants(nn.Module):
    def __init__(self, projected: bool) -> None:
        super().__init__()
        self.two_layers = nn.LSTM(8, 8, num_layers=2)
        # the TorchScript exporter cannot export an LSTM with a projection at all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns that dropout has no effect with num_layers=1
            self.projected = nn.LSTM(8, 8, proj_size=4) if projected else nn.LSTM(8, 8, dropout=0.5)
        self.batch_first = nn.GRU(8, 8, batch_first=True)
        self.no_bias = nn.LSTM(8, 8, bias=False)
        self.with_state = nn.GRU(8, 8)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            self.two_layers(x)[0],
            self.projected(x)[0],
            self.batch_first(x.transpose(0, 1))[0],
            self.no_bias(x)[0],
            self.with_state(x, h)[0],
        )


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_rnn_limits(exporter: str) -> None:
    torch.manual_seed(0)
    model = RnnVariants(projected=exporter == "dynamo")
    report, config = _analyze(model, (torch.randn(5, 2, 8), torch.randn(1, 2, 8)), exporter)
    assert [k for k in config if k not in ("version", "batch_num")] == [
        "batch_first",
        "no_bias",
        "with_state",
    ]
    assert report.record("two_layers").check == "rnn-config"
    assert "num_layers = 2" in report.record("two_layers").reason
    assert report.record("projected").check == "rnn-config"
    assert ("proj_size = 4" if exporter == "dynamo" else "dropout = 0.5") in report.record("projected").reason


class Conv1dRules(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.reflect = nn.Conv1d(4, 4, 3, padding=1, padding_mode="reflect")
        self.circular3d = nn.Conv3d(2, 2, 3, padding=1, padding_mode="circular")
        self.unbatched = nn.Conv1d(4, 4, 1)
        self.unused = nn.Conv1d(4, 4, 1)
        self.reused = nn.ConvTranspose1d(4, 4, 1)
        self.ok = nn.Conv1d(4, 4, 1)

    def forward(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.ok(self.reused(self.reused(self.reflect(x)))), self.unbatched(u), self.circular3d(v)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_conv_rules_for_the_new_types(exporter: str) -> None:
    torch.manual_seed(0)
    inputs = (torch.randn(1, 4, 8), torch.randn(4, 8), torch.randn(1, 2, 4, 4, 4))
    report, config = _analyze(Conv1dRules(), inputs, exporter)
    assert [k for k in config if k not in ("version", "batch_num")] == ["ok"]
    checks = {
        name: report.record(name).check for name in ("reflect", "circular3d", "unbatched", "unused", "reused")
    }
    assert checks == {
        "reflect": "padding-mode",
        "circular3d": "padding-mode",
        "unbatched": "input-rank",
        "unused": "not-executed",
        "reused": "reused-module",
    }
    assert "input is not (N, Cin, L)" in report.record("unbatched").reason


class SharedNewTypes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv1d(4, 4, 3, padding=1)
        self.conv_b = nn.Conv1d(4, 4, 3, padding=1)
        self.conv_b.weight = self.conv_a.weight
        self.lstm_a = nn.LSTM(4, 4)
        self.lstm_b = nn.LSTM(4, 4)
        self.lstm_b.weight_hh_l0 = self.lstm_a.weight_hh_l0
        self.conv3_a = nn.Conv3d(2, 2, 1)
        self.conv3_b = nn.Conv3d(2, 2, 1)
        self.conv3_b.weight = self.conv3_a.weight
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.conv_b(F.relu(self.conv_a(x)))
        t = self.lstm_b(self.lstm_a(s)[0])[0]
        return y, self.fc(t[-1]), self.conv3_b(self.conv3_a(v))


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_shared_weights_exclude_every_type_and_say_where_amct_keeps_them(exporter: str) -> None:
    torch.manual_seed(0)
    inputs = (torch.randn(1, 4, 8), torch.randn(5, 2, 4), torch.randn(1, 2, 4, 4, 4))
    report, config = _analyze(SharedNewTypes(), inputs, exporter)
    assert [k for k in config if k not in ("version", "batch_num")] == ["fc"]
    for name in ("conv_a", "conv_b", "lstm_a", "lstm_b", "conv3_a", "conv3_b"):
        assert report.record(name).check == "shared-weight", name
    assert "AMCT 2be20daf keeps Conv1d layers that share a weight" in report.record("conv_a").reason
    assert "AMCT 2be20daf keeps LSTM layers that share a weight" in report.record("lstm_b").reason
    assert "AMCT" not in report.record("conv3_a").reason


class Int16Everywhere(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv3d = nn.Conv3d(2, 2, 1)
        self.lstm = nn.LSTM(4, 4)
        self.gru = nn.GRU(4, 4)
        self.fc = nn.Linear(4, 2, bias=False)

    def forward(self, v: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.conv3d(v), self.fc(self.gru(self.lstm(s)[0])[0][-1])


def test_int16_activations_on_every_type() -> None:
    torch.manual_seed(0)
    cfg = "retrain_data_quant_config: { ulq_quantize: { dst_type: INT16 } }"
    simple = parse_simple_config(cfg, "a16.cfg", select_types(LATEST))
    _report, config = _analyze(
        Int16Everywhere(), (torch.randn(1, 2, 2, 2, 2), torch.randn(5, 2, 4)), "torchscript", simple=simple
    )
    assert {k: v["retrain_data_config"]["dst_type"] for k, v in config.items() if isinstance(v, dict)} == {
        "conv3d": "INT16",
        "lstm": "INT16",
        "gru": "INT16",
        "fc": "INT16",
    }


# ------------------------------------------------------------------------------------------- simple config


@pytest.mark.parametrize(
    ("text", "mode", "words"),
    [
        ('skip_layer_types: "ConvTranspose3d"', LATEST, ("'ConvTranspose3d' is not a supported layer type",)),
        ('override_layer_types: { layer_type: "RNN" }', LATEST, ("'RNN' is not a supported layer type",)),
        ('skip_layer_types: "LSTM"', "documented", ("'LSTM'", "--layer-types amct-latest")),
    ],
    ids=["convtranspose3d", "rnn-override", "lstm-in-documented-mode"],
)
def test_types_outside_the_set_are_refused(text: str, mode: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_simple_config(text, "q.cfg", select_types(mode))
    for word in words:
        assert word in str(info.value)


def test_an_excluded_layer_named_in_the_config_says_which_check(tmp_path: Path) -> None:
    case = CASES_BY_NAME["a_gru_bidirectional"]
    cfg = tmp_path / "q.cfg"
    cfg.write_text('skip_layers: "rnn"', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        create_quant_retrain_config(
            str(tmp_path / "c.json"), case.model(), case.inputs(), str(cfg), layer_types=LATEST
        )
    assert "'rnn' is not a quantizable layer: the checks excluded it" in str(info.value)
    assert "bidirectional = True" in str(info.value)


# ------------------------------------------------------------------------------------------- CLI end to end


def test_cli_end_to_end_with_every_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "mix_models.py"
    models.write_text(
        "import torch\nfrom torch import nn\n\n\n" + inspect.getsource(MixAll), encoding="utf-8"
    )
    onnx_file = tmp_path / "mix.onnx"
    shapes = [arg for shape in MIX_SHAPES for arg in ("--input-shape", ",".join(map(str, shape)))]
    assert main(["export", f"{models}:MixAll", *shapes, "-o", str(onnx_file)]) == 0
    config = tmp_path / "config.json"
    assert main(["generate", str(onnx_file), "-o", str(config), "--layer-types", LATEST]) == 0
    assert config.read_text(encoding="utf-8") == (GOLDEN / "a_mix_all.json").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["explain", str(onnx_file), "--layer-types", LATEST]) == 0
    table = capsys.readouterr().out
    assert "8 layers quantized" in table and "up3d" in table
    assert main(["validate", str(config), "--onnx", str(onnx_file), "--layer-types", LATEST]) == 0
    capsys.readouterr()
    # the same config against the documented mode: the new types are not layers of the model there
    assert main(["validate", str(config), "--onnx", str(onnx_file)]) == 1
    assert "not-quantizable" in capsys.readouterr().out
    assert main(["generate", str(onnx_file), "-o", str(config), "--layer-types", "Conv2d,Conv4d"]) == 2
    assert "'Conv4d'" in capsys.readouterr().err


def test_a_new_type_named_in_the_documented_mode_points_to_amct_latest() -> None:
    layers = (QuantLayer("fc", "Linear"),)
    simple = parse_simple_config('skip_layers: "conv1d"', "q.cfg")
    with pytest.raises(ConfigError) as info:
        resolve_simple(layers, simple, {}, {"conv1d": "Conv1d", "fc": "Linear"})
    assert "'conv1d' is a Conv1d, not a quantizable layer type in this mode" in str(info.value)
    assert "--layer-types amct-latest" in str(info.value)
