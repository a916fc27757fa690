"""create_quant_config (SPEC 10): AMCT's checks and messages in AMCT's order, the arguments, the report of what
AMCT does silently, and the offline call without a mapping file.

The golden cases (tests/golden/ptq) run in test_reference_cases, test_exporters and test_offline; here one
TorchScript export per model is analysed with many simple configs, which needs no further export.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import schemas
from analyzer import (
    ArgumentTypeError,
    ConfigError,
    NoQuantizableLayerError,
    UnsupportedModelError,
    create_quant_config,
    create_quant_config_from_onnx,
)
from analyzer.api import analyze
from analyzer.kinds import ptq
from analyzer.kinds.ptq_config import parse_ptq_config
from analyzer.report import REPORT_SCHEMA, SKIPPED
from graph.export import export_graph, export_onnx
from graph.ir import ExportedGraph
from tests.cases import PTQ_CASES_BY_NAME, PtqBasic, PtqMixed

MIXED = PTQ_CASES_BY_NAME["pc_hfmg"]  # conv, up, pool, c1, c3, fc, fc_nb, lstm (named_modules order)
BASIC = PTQ_CASES_BY_NAME["p_basic"]  # fc, conv, bn, relu, conv2, relu2, pool


@functools.cache
def _graph(name: str) -> ExportedGraph:
    case = PTQ_CASES_BY_NAME[name]
    return export_graph(case.model(), case.inputs(), exporter="torchscript")


def _run(cfg: str | None, model: str = "pc_hfmg", **arguments: Any) -> tuple[Any, dict[str, Any]]:
    simple = parse_ptq_config(cfg, "quant.cfg") if cfg is not None else None
    opts = ptq.options(
        arguments.get("skip_layers"), arguments.get("batch_num", 1), arguments.get("activation_offset", True)
    )
    report, text = analyze(_graph(model), simple, kind="ptq", options=opts)
    return report, json.loads(text)


def _ifmr(fields: str) -> str:
    return f"common_config: {{ ifmr_quantize: {{ {fields} }} }}"


# (id, simple config, AMCT's message): each check of SPEC 10.6 on the Mixed model
CONFIG_ERRORS = [
    (
        "dup-skip",
        'skip_layers: "conv" skip_layers: "fc" skip_layers: "conv"',
        "Please delete repeated items in skip_layers, repeated items are ['conv'] ",
    ),
    (
        "dup-types",
        'skip_layer_types: "Linear" skip_layer_types: "Linear"',
        "Please delete repeated items in skip_layer_types, repeated items are ['Linear'] ",
    ),
    (
        "dup-fusion",
        'skip_fusion_layers: "conv" skip_fusion_layers: "conv"',
        "Please delete repeated items in skip_fusion_layers, repeated items are ['conv'] ",
    ),
    (
        "dup-layer-override",
        'override_layer_configs { layer_name: "fc" calibration_config { } } override_layer_configs { layer_name: "fc" calibration_config { } }',
        "Please delete repeated items in override_layer_configs, repeated items are ['fc'] ",
    ),
    (
        "override-unknown",
        'override_layer_configs { layer_name: "nope" calibration_config { } }',
        "Layer nope does not exist in the graph.",
    ),
    (
        "override-conv3d-asym",
        'override_layer_configs { layer_name: "c3" calibration_config { ifmr_quantize { asymmetric: true } } }',
        "Layer c3 can only set asymmetric be False ",
    ),
    (
        "override-linear-cw",
        'override_layer_configs { layer_name: "fc" calibration_config { arq_quantize { channel_wise: true } } }',
        "channel_wise can only be False for fc layer.",
    ),
    (
        "override-pool-dmq",
        'override_layer_configs { layer_name: "pool" calibration_config { dmq_balancer { } } }',
        "dmq_balancer not support for pool layer",
    ),
    (
        "override-int16-nobias",
        'override_layer_configs { layer_name: "fc_nb" calibration_config { hfmg_quantize { dst_type: INT16 } } }',
        "int16_quantizable not support for fc_nb layer",
    ),
    (
        "override-ada-conv1d",
        'override_layer_configs { layer_name: "c1" calibration_config { ada_quantize { } } }',
        "ada_quantizable not support for c1 layer",
    ),
    (
        "override-bits",
        'override_layer_configs { layer_name: "up" calibration_config { arq_quantize { quant_bits: 6 } } }',
        "quant_bits 6 not support for up layer",
    ),
    (
        "dup-type-override",
        'override_layer_types { layer_type: "LSTM" calibration_config { } } override_layer_types { layer_type: "LSTM" calibration_config { } }',
        "Please delete repeated items in override_layer_types, repeated items are ['LSTM'] ",
    ),
    (
        "type-unknown",
        'override_layer_types { layer_type: "ReLU" calibration_config { } }',
        "Layer type ReLU does not support quantize.",
    ),
    (
        "type-conv3d-asym",
        'override_layer_types { layer_type: "Conv3d" calibration_config { hfmg_quantize { asymmetric: true } } }',
        "Layer type Conv3d can only set asymmetric be False ",
    ),
    (
        "type-linear-cw",
        'override_layer_types { layer_type: "Linear" calibration_config { arq_quantize { channel_wise: true } } }',
        "channel_wise can only be False for Linear type",
    ),
    (
        "type-lstm-dmq",
        'override_layer_types { layer_type: "LSTM" calibration_config { dmq_balancer { } } }',
        "dmq_balancer not support for LSTM type",
    ),
    (
        "type-pool-int16",
        'override_layer_types { layer_type: "AvgPool2d" calibration_config { ifmr_quantize { dst_type: INT16 } } }',
        "int16_quantizable not support for AvgPool2d type",
    ),
    (
        "type-ada",
        'override_layer_types { layer_type: "Conv1d" calibration_config { ada_quantize { } } }',
        "ada_quantizable not support for Conv1d layer",
    ),
    (
        "type-bits",
        'override_layer_types { layer_type: "Linear" calibration_config { arq_quantize { quant_bits: 7 } } }',
        "quant_bits 7 not support for Linear type",
    ),
    ("skip-unknown", 'skip_layers: "nope"', "Layer nope does not exist in the graph."),
    ("skip-type-unknown", 'skip_layer_types: "ReLU"', "Layer type ReLU does not support quantize."),
    (
        "skip-all-types",
        " ".join(f'skip_layer_types: "{t}"' for t in ptq.PTQ_TYPES),
        "Except skip_types, no type need to quantize.",
    ),
    (
        "skip-all-present",
        " ".join(
            f'skip_layer_types: "{t}"'
            for t in ("Conv2d", "ConvTranspose2d", "AvgPool2d", "Conv1d", "Conv3d", "Linear", "LSTM")
        ),
        "Except skip_layers or skip_types, no layer need to quantize.",
    ),
    ("batch-num", "batch_num: 0", "The batch_num must be greater than zero."),
    (
        "fusion-unknown",
        'skip_fusion_layers: "nope"',
        'Layer "nope" in skip_fusion_layers does not exist in the graph.',
    ),
    (
        "fusion-type",
        'skip_fusion_layers: "fc"',
        "Skip fusion layer \"fc\"'s type not in supported list ['Conv2d', 'Conv3d', 'Conv1d']",
    ),
    (
        "bits",
        "common_config { arq_quantize { quant_bits: 5 } }",
        "weight num_bits is not in [4, 6, 7, 8] in layer conv",
    ),
    ("range0", _ifmr("search_range_start: 0"), "search_range[0] must be greater than zero in layer conv"),
    (
        "range-order",
        _ifmr("search_range_start: 1.5"),
        "search_range[0] must be less than search_range[1] in layer conv",
    ),
    ("step0", _ifmr("search_step: 0"), "The search_step must be greater than zero in layer conv"),
    (
        "step-wide",
        _ifmr("search_step: 0.61"),
        "The search_step must be less than or equal to (search_range[1] - search_range[0]) in layer conv",
    ),
    (
        "max-pct",
        _ifmr("max_percentile: 0.5"),
        "The max_percentile must be greater than 0.5 and less than or equal to 1.0 in layer conv",
    ),
    (
        "min-pct",
        _ifmr("min_percentile: 1.01"),
        "The min_percentile must be greater than 0.5 and less than or equal to 1.0 in layer conv",
    ),
    (
        "bins",
        "common_config { hfmg_quantize { num_of_bins: 1000 } }",
        "num_of_bins 1000 must be in [1024, 2048, 4096, 8192] in layer conv",
    ),
    (
        "reg",
        "common_config { ada_quantize { reg_param: 1 } }",
        "The reg_param must be greater than 0 and less than 1 in layer conv",
    ),
    (
        "beta-end",
        "common_config { ada_quantize { beta_range_end: 0 } }",
        "The beta_range_end must be greater than 0 in layer conv",
    ),
    (
        "dmq",
        "common_config { dmq_balancer { migration_strength: 0.9 } }",
        "The dmq_balancer_param must be in range [0.2, 0.8] in layer conv",
    ),
    (
        "beta-order",
        "common_config { ada_quantize { beta_range_start: 2 beta_range_end: 3 } }",
        "beta_range beta_range_start must large than beta_range_end in layer conv",
    ),
    (
        "warm",
        "common_config { ada_quantize { warm_start: 1 } }",
        "warm_start must be less than 1 and larger than 0 in layer conv",
    ),
    (
        "common-cw",
        "common_config { arq_quantize { channel_wise: true } }",
        "The channel_wise must be False for layer type AvgPool2d in layer pool",
    ),
    # QuantScope's own: a value that is no JSON number
    ("nan-step", _ifmr("search_step: nan"), "search_step must be a finite number, got nan in layer conv"),
    (
        "inf-range",
        _ifmr("search_range_end: inf"),
        "search_range_end must be a finite number, got inf in layer conv",
    ),
    # the order: the first failing check is the error
    (
        "order-dup-first",
        'skip_fusion_layers: "a" skip_fusion_layers: "a" override_layer_types { layer_type: "ReLU" calibration_config { } }',
        "repeated items are ['a'] ",
    ),
    (
        "order-layer-overrides-first",
        'override_layer_types { layer_type: "ReLU" calibration_config { } } override_layer_configs { layer_name: "nope" calibration_config { } }',
        "Layer nope does not exist in the graph.",
    ),
    (
        "order-types-before-skips",
        'skip_layers: "nope" override_layer_types { layer_type: "ReLU" calibration_config { } }',
        "Layer type ReLU does not support quantize.",
    ),
    (
        "order-batch-before-values",
        "batch_num: 0 common_config { hfmg_quantize { num_of_bins: 1000 } }",
        "The batch_num must be greater than zero.",
    ),
]


@pytest.mark.parametrize(("cfg", "message"), [pytest.param(c, m, id=i) for i, c, m in CONFIG_ERRORS])
def test_each_check_gives_amct_message_in_amct_order(cfg: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        _run(cfg)
    assert str(info.value).startswith("quant.cfg: ")  # the file is named


def test_search_step_is_compared_on_the_decimal_values() -> None:
    """0.6 with [0.7, 1.3] is accepted: 1.3 - 0.7 is 0.6 on the decimals (0.5999999 on the float32s)."""
    _report, config = _run(_ifmr("search_step: 0.6"))
    assert config["conv"]["activation_quant_params"]["search_step"] == 0.6


def test_an_override_of_an_existing_non_candidate_is_ignored_and_reported() -> None:
    report, config = _run(
        'override_layer_configs { layer_name: "relu" calibration_config { hfmg_quantize { } } }', "p_basic"
    )
    assert "relu" not in config
    assert config == json.loads(BASIC.golden_text())
    notes = [n.reason for n in report.notes if n.code == "QS301"]
    assert any("override_layer_configs 'relu': it is a ReLU" in n and "ignored" in n for n in notes)


def test_a_skipped_layer_keeps_its_override_and_stays_disabled() -> None:
    report, config = _run(
        'skip_layers: "fc" override_layer_configs { layer_name: "fc" calibration_config { hfmg_quantize { } } }'
    )
    assert config["fc"]["quant_enable"] is False
    assert config["fc"]["activation_quant_params"]["act_algo"] == "hfmg"
    record = report.record("fc")
    assert record.decision == SKIPPED and "skip_layers 'fc'" in record.reason
    assert any("keeps quant_enable false" in a.reason for a in record.advisories)


def test_fallbacks_are_reported_per_layer_and_logged_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="analyzer")
    cfg = "common_config { ifmr_quantize { dst_type: INT16 } arq_quantize { quant_bits: 6 } }"
    report, config = _run(cfg)
    assert config["conv"]["weight_quant_params"]["num_bits"] == 6  # only Conv2d keeps 6 bits
    assert config["fc"]["activation_quant_params"]["num_bits"] == 16
    codes = {
        r.name: sorted(a.code for a in r.advisories if a.code in ptq.FALLBACK_CODES) for r in report.layers
    }
    assert codes["fc_nb"] == ["QS303", "QS304"]
    assert codes["c3"] == ["QS303", "QS304"]
    assert codes["pool"] == ["QS303", "QS304"]
    assert codes["conv"] == []
    assert codes["fc"] == ["QS304"]
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("int16-fallback on 3 layer(s): c3, fc_nb, pool") for line in lines)
    assert any(line.startswith("weight-bits-fallback on 7 layer(s)") for line in lines)


def test_int4_falls_back_where_the_weight_cannot_be_packed() -> None:
    """PtqBasic's fc reads 128 inputs, conv 4, conv2 8: all packable; PtqMixed's c3 reads 2 (even). An odd Cin
    model: the first conv of an RGB network."""

    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rgb = nn.Conv2d(3, 4, 1)
            self.body = nn.Conv2d(4, 4, 1)
            self.pool = nn.AvgPool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(self.body(self.rgb(x)))

    graph = export_graph(Odd(), (torch.randn(1, 3, 4, 4),), exporter="torchscript")
    simple = parse_ptq_config("common_config { arq_quantize { quant_bits: 4 } }", "quant.cfg")
    report, text = analyze(graph, simple, kind="ptq")
    config = json.loads(text)
    assert [config[n]["weight_quant_params"]["num_bits"] for n in ("body", "pool", "rgb")] == [4, 4, 8]
    assert [a.reason for a in report.record("rgb").advisories if a.code == "QS302"] == [
        "rgb: weight INT4 -> INT8: Cin = 3 is odd, INT4 packs two values along Cin"
    ]


def test_report_records_kind_decisions_and_validates(tmp_path: Path) -> None:
    report, _config = _run(None, skip_layers=["pool"])
    document = json.loads(report.to_json())
    assert document["kind"] == "ptq"
    assert list(schemas.validator(REPORT_SCHEMA).iter_errors(document)) == []
    assert report.record("pool").decision == SKIPPED
    assert report.record("pool").reason == "pool: quant_enable false (skip_layers argument 'pool')"
    assert report.record("conv").reason.startswith(
        "conv: ifmr INT8 asymmetric activations, arq_quantize INT8"
    )
    assert "(ptq config)" in report.to_text().splitlines()[0]


def test_arguments_given_with_a_simple_config_are_ignored_and_reported() -> None:
    report, config = _run("batch_num: 2", skip_layers=["conv"], batch_num=5, activation_offset=False)
    assert config["batch_num"] == 2 and config["activation_offset"] is True
    assert config["conv"]["quant_enable"] is True
    notes = [n.reason for n in report.notes if n.code == "QS301"]
    assert any(
        n.startswith("skip_layers=['conv'], batch_num=5, activation_offset=False ignored") for n in notes
    )


# ------------------------------------------------------------------------------------ the call's arguments


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"skip_layers": ("conv",)}, "argument skip_layers must be list"),
        ({"batch_num": 2.0}, "argument batch_num must be int"),
        ({"batch_num": True}, "argument batch_num must be int"),
        ({"activation_offset": 1}, "argument activation_offset must be bool"),
        ({"config_defination": 3}, "argument config_defination must be str"),
    ],
    ids=["skip-tuple", "batch-float", "batch-bool", "offset-int", "cfg-int"],
)
def test_argument_types_are_checked_before_the_export(
    arguments: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ArgumentTypeError, match=re.escape(f"Func create_quant_config {message}")):
        create_quant_config(str(tmp_path / "c.json"), nn.Identity(), torch.randn(1), **arguments)
    assert list(tmp_path.iterdir()) == []


def test_input_data_list_and_amct_modules_are_runtime_errors(tmp_path: Path) -> None:
    with pytest.raises(
        UnsupportedModelError, match=re.escape("input data type must be tuple or torch.Tensor!")
    ):
        create_quant_config(str(tmp_path / "c.json"), PtqBasic(), [torch.randn(1, 4, 8, 8)])

    class IFMR(nn.Module):  # named like AMCT's own calibration module
        pass

    model = PtqBasic()
    model.add_module("calib", IFMR())
    with pytest.raises(
        RuntimeError, match=re.escape("following quant layers are in the model {'calib': 'IFMR'}")
    ):
        create_quant_config(str(tmp_path / "c.json"), model, torch.randn(1, 4, 8, 8))


@pytest.mark.parametrize(
    ("skip", "error", "message"),
    [
        (
            ["conv", "conv"],
            ConfigError,
            "Please delete repeated items in skip_layers, repeated items are ['conv'] ",
        ),
        (["nope"], ConfigError, "Layer nope does not exist in the graph."),
        (["bn"], ConfigError, "Layer bn does not support quantization."),
        (
            ["fc", "conv", "conv2", "pool"],
            NoQuantizableLayerError,
            "Except skip_layers, no layer needs to quantize.",
        ),
    ],
    ids=["repeated", "unknown", "not-quantizable", "all-skipped"],
)
def test_default_call_argument_errors(skip: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        _run(None, "p_basic", skip_layers=skip)


def test_batch_num_must_be_positive_and_is_written() -> None:
    with pytest.raises(ConfigError, match=re.escape("The batch_num must be greater than zero.")):
        _run(None, "p_basic", batch_num=0)
    assert _run(None, "p_basic", batch_num=7)[1]["batch_num"] == 7


def test_an_excluded_layer_in_skip_layers_is_accepted_and_absent() -> None:
    class Reused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)
            self.twice = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.twice(self.twice(self.conv(x)))

    graph = export_graph(Reused(), (torch.randn(1, 4, 4, 4),), exporter="torchscript")
    report, text = analyze(graph, None, kind="ptq", options=ptq.options(["twice"], 1, True))
    assert [k for k in json.loads(text) if k not in ptq.TOP_LEVEL_KEYS] == ["conv"]
    assert report.record("twice").decision == "excluded"


def test_no_candidate_carries_the_report() -> None:
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(self.relu(x))

    graph = export_graph(Plain(), (torch.randn(1, 4, 4, 4),), exporter="torchscript")
    with pytest.raises(
        NoQuantizableLayerError, match=re.escape("No layer support quantization in the graph.")
    ) as info:
        analyze(graph, None, kind="ptq")
    assert info.value.report is not None and info.value.report.kind == "ptq"


# ------------------------------------------------------------------------------------ offline


def test_torchscript_file_without_mapping_cannot_name_an_avgpool2d(tmp_path: Path) -> None:
    """A TorchScript file says neither the class of a module without parameters nor whether it is an
    AvgPool2d or an AdaptiveAvgPool2d that exported to AveragePool: the mapping file says it (SPEC 6); without
    it the pool is reported, not guessed."""
    files = export_onnx(BASIC.model(), BASIC.inputs(), tmp_path / "m.onnx", exporter="torchscript")
    with_mapping = create_quant_config_from_onnx(
        str(tmp_path / "a.json"), str(files.onnx_file), str(files.mapping_file)
    )
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == BASIC.golden_text()
    assert with_mapping.record("pool").decision == "quantize"
    without = create_quant_config_from_onnx(str(tmp_path / "b.json"), str(files.onnx_file))
    assert "pool" not in json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))
    assert without.record("pool").decision == "not a candidate"


def test_offline_call_checks_argument_types(tmp_path: Path) -> None:
    with pytest.raises(ArgumentTypeError, match="argument batch_num must be int"):
        create_quant_config_from_onnx(str(tmp_path / "c.json"), "m.onnx", None, batch_num="1")  # type: ignore[arg-type]


def test_models_of_the_cases_are_distinct_factories() -> None:
    assert PTQ_CASES_BY_NAME["pc_hfmg"].factory is PtqMixed


# ------------------------------------------------------------------------------------ the CLI (--kind ptq)


@pytest.fixture(scope="module")
def basic_files(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("ptq_cli")
    return export_onnx(BASIC.model(), BASIC.inputs(), folder / "basic.onnx")


def test_cli_generate_writes_the_library_bytes(basic_files: Any, tmp_path: Path) -> None:
    from analyzer.cli import main

    onnx_file = str(basic_files.onnx_file)
    out = tmp_path / "p.json"
    assert main(["generate", onnx_file, "--kind", "ptq", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == BASIC.golden_text()
    skipped = PTQ_CASES_BY_NAME["p_skip_layers"]
    assert main(["generate", onnx_file, "--kind", "ptq", "--skip-layers", "conv2,pool", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == skipped.golden_text()
    floats = PTQ_CASES_BY_NAME["pc_ifmr_floats"]
    cfg = str(floats.cfg_path())
    assert main(["generate", onnx_file, "--kind", "ptq", "--simple-config", cfg, "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == floats.golden_text()


def test_cli_refuses_ptq_arguments_without_the_kind(
    basic_files: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer.cli import main

    assert (
        main(["generate", str(basic_files.onnx_file), "--batch-num", "2", "-o", str(tmp_path / "c.json")])
        == 2
    )
    assert "--batch-num: the arguments of create_quant_config; add --kind ptq" in capsys.readouterr().err
    args = [
        "generate",
        str(basic_files.onnx_file),
        "--kind",
        "ptq",
        "--layer-types",
        "amct-latest",
        "-o",
        "x.json",
    ]
    assert main(args) == 2
    assert "--layer-types applies to --kind retrain only" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_cli_explain_and_validate_a_hand_edited_ptq_config(
    basic_files: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer.cli import main

    onnx_file = str(basic_files.onnx_file)
    assert main(["explain", onnx_file, "--kind", "ptq", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "ptq"
    assert {r["name"]: r["decision"] for r in document["layers"]}["pool"] == "quantize"

    good = tmp_path / "good.json"
    good.write_text(BASIC.golden_text(), encoding="utf-8")
    assert main(["validate", str(good), "--kind", "ptq", "--onnx", onnx_file]) == 0
    capsys.readouterr()

    edited = json.loads(BASIC.golden_text())
    edited["fc"]["weight_quant_params"]["channel_wise"] = True
    edited["conv"]["weight_quant_params"]["num_bits"] = 6  # fine: a Conv2d
    edited["pool"]["weight_quant_params"]["num_bits"] = 7
    edited["relu"] = edited["conv"]
    edited["conv2"]["activation_quant_params"]["act_algo"] = "magic"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(edited), encoding="utf-8")
    assert main(["validate", str(bad), "--kind", "ptq", "--onnx", onnx_file]) == 1
    out = capsys.readouterr().out
    assert "$.fc.weight_quant_params.channel_wise: channel-wise-linear: layer 'fc' is a Linear" in out
    assert "$.pool.weight_quant_params.num_bits: weight-bits" in out
    assert "$.relu: unknown-layer: no quantizable layer named 'relu'" in out
    assert "$.conv2.activation_quant_params: schema" in out
    assert "$.conv.weight_quant_params" not in out
    # the retrain schema refuses a calibration config: the kind matters
    assert main(["validate", str(good)]) == 1


def test_a_distributed_data_parallel_is_not_unwrapped(tmp_path: Path) -> None:
    """SPEC 10.1: unlike the retrain call, AMCT's create_quant_config keeps the DDP wrapper: `module.<name>`."""
    import socket

    import torch.distributed as dist

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        inner = BASIC.model()
        wrapped = nn.parallel.DistributedDataParallel(inner)
        report = create_quant_config(
            str(tmp_path / "c.json"), wrapped, BASIC.inputs(), skip_layers=["module.pool"]
        )
    finally:
        dist.destroy_process_group()
    config = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    expected = json.loads(PTQ_CASES_BY_NAME["p_skip_layers"].golden_text())
    expected["conv2"]["quant_enable"] = True
    assert config == {
        key if key in ptq.TOP_LEVEL_KEYS else f"module.{key}": value for key, value in expected.items()
    }
    assert report.record("module.pool").decision == SKIPPED
    assert [name for name, _ in inner.named_modules()][:2] == ["", "fc"]  # the model is not changed


def test_top_level_keys_in_amct_order_with_every_global_set() -> None:
    cfg = 'fakequant_precision_mode: FORCE_FP16_QUANT do_fusion: false batch_num: 3 skip_fusion_layers: "c3"'
    _report, config = _run(cfg)
    top = [key for key in config if key in ptq.TOP_LEVEL_KEYS]
    assert top == [
        "version",
        "batch_num",
        "activation_offset",
        "do_fusion",
        "fakequant_precision_mode",
        "skip_fusion_layers",
    ]
    assert (config["do_fusion"], config["batch_num"], config["skip_fusion_layers"]) == (False, 3, ["c3"])


def test_an_empty_file_is_the_default_call_and_a_later_oneof_member_wins() -> None:
    assert _run("")[1] == _run(None)[1]
    report, config = _run("common_config { ifmr_quantize { } hfmg_quantize { num_of_bins: 2048 } }")
    assert config["conv"]["activation_quant_params"]["act_algo"] == "hfmg"
    assert any("hfmg_quantize and ifmr_quantize are both given" in n.reason for n in report.notes)
