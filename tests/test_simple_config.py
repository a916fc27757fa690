"""The simple config (`quant.cfg`, SPEC sections 4-5) through the public call and through the resolver.

The reference cases run end to end and are compared byte for byte with tests/golden. Every validation rule of
SPEC 5.3 has a case that makes it fire, checked for the error type, the words that name the culprit, and
that no config file is written (an existing one stays untouched). Cases beyond the reference set call the
resolver directly when the export adds nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from analyzer import ConfigError, NoQuantizableLayerError, Report, create_quant_retrain_config
from analyzer.emit import render, schema_errors
from analyzer.resolve import QuantLayer, resolve_simple
from analyzer.simple_config import (
    AllLayersDisabledError,
    SimpleConfigSyntaxError,
    load_simple_config,
    parse_simple_config,
)
from tests.cases import CASES_BY_NAME

CFG_SIMPLE = CASES_BY_NAME["cfg_simple"]
SENTINEL = '{"previous": "config"}'
# the quantizable layers of the cfg_simple model, for resolver-level tests
SIMPLE_LAYERS = (
    QuantLayer("conv1", "Conv2d"),
    QuantLayer("conv2", "Conv2d"),
    QuantLayer("up", "ConvTranspose2d"),
    QuantLayer("conv3", "Conv2d"),
    QuantLayer("fc", "Linear"),
)


def _config_notes(report: Report) -> list[tuple[str | None, str]]:
    """Every simple-config note (QS301) of a report, as (layer, reason), wherever the report files it."""
    notes = [(f.layer, f.reason) for f in report.notes if f.code == "QS301"]
    notes += [(r.name, f.reason) for r in report.layers for f in r.advisories if f.code == "QS301"]
    return notes


def _resolve(text: str, layers: Sequence[QuantLayer] = SIMPLE_LAYERS) -> dict[str, Any]:
    resolved = resolve_simple(layers, parse_simple_config(text, "quant.cfg"), {})
    obj: dict[str, Any] = json.loads(render(resolved))
    return obj


# ------------------------------------------------------------------------------------- reference cases


@pytest.mark.parametrize("name", ["cfg_simple", "cfg_resnet18", "cfg_simple_default"])
def test_reference_case_is_byte_identical(name: str, tmp_path: Path) -> None:
    case = CASES_BY_NAME[name]
    out = tmp_path / "config.json"
    cfg = case.cfg_path()
    create_quant_retrain_config(str(out), case.model(), case.inputs(), None if cfg is None else str(cfg))
    assert out.read_text(encoding="utf-8") == case.golden_text()


def test_skipping_an_excluded_layer_names_it_and_the_check_reason(tmp_path: Path) -> None:
    case = CASES_BY_NAME["cfg_skip_excluded_layer"]
    out = tmp_path / "config.json"
    out.write_text(SENTINEL, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        create_quant_retrain_config(str(out), case.model(), case.inputs(), str(case.cfg_path()))
    message = str(info.value)
    assert case.error is not None and case.error in message
    assert "skip_layers" in message and "excluded" in message
    assert "Pad mode 'reflect'" in message  # the check's own reason
    assert out.read_text(encoding="utf-8") == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_cfg_simple_report_flags_the_global_settings_an_override_drops(tmp_path: Path) -> None:
    report = create_quant_retrain_config(
        str(tmp_path / "c.json"), CFG_SIMPLE.model(), CFG_SIMPLE.inputs(), str(CFG_SIMPLE.cfg_path())
    )
    notes = _config_notes(report)
    assert (
        "conv1",
        "conv1: override_layer_configs replaces the global retrain_data_quant_config; fixed_min is not inherited",
    ) in notes
    fc_notes = [reason for layer, reason in notes if layer == "fc"]
    assert any("override_layer_types 'Linear'" in r and "clip_max_min and fixed_min" in r for r in fc_notes)
    assert set(report.skipped) == {"conv2", "up"}


# ------------------------------------------------------------------------------- one test per rule

# (id, cfg text, error class, words the message must contain); every one fails on the cfg_simple model
RULES: list[tuple[str, str, type[ValueError], tuple[str, ...]]] = [
    (
        "bad-syntax",
        'batch_num: 2\nskip_layers "conv2"\n',
        SimpleConfigSyntaxError,
        ("line 2", "column 13", "'\"conv2\"'", 'Expected ":"'),
    ),
    (
        "unknown-field",
        "batch_num: 2\nretrain_data_quant_config: { ulq_quantize: { clip_maxmin: {} } }\n",
        SimpleConfigSyntaxError,
        ("line 2", "column 46", "clip_maxmin", "did you mean 'clip_max_min'"),
    ),
    (
        "unknown-enum-value",
        "retrain_data_quant_config: { ulq_quantize: { dst_type: INT32 } }",
        SimpleConfigSyntaxError,
        ("line 1", "INT32", "DataType"),
    ),
    (
        "unknown-layer",
        'skip_layers: "conv_2"',
        ConfigError,
        ("skip_layers", "'conv_2'", "not a quantizable layer", "did you mean", "'conv2'"),
    ),
    (
        "unknown-layer-in-override",
        'override_layer_configs: { layer_name: "fc1" }',
        ConfigError,
        ("override_layer_configs", "'fc1'", "did you mean 'fc'"),
    ),
    (
        "unknown-type",
        'skip_layer_types: "BatchNorm2d"',
        ConfigError,
        (
            "skip_layer_types",
            "'BatchNorm2d'",
            "not a supported layer type",
            "Linear, Conv2d, ConvTranspose2d",
        ),
    ),
    (
        "unknown-type-in-override",
        'override_layer_types: { layer_type: "linear" }',
        ConfigError,
        ("override_layer_types", "'linear'", "not a supported layer type", "did you mean 'Linear'"),
    ),
    (
        "duplicate-layer-override",
        'override_layer_configs: { layer_name: "conv1" }\noverride_layer_configs: { layer_name: "conv1" }',
        ConfigError,
        ("override_layer_configs", "'conv1'", "2 times", "entries 1, 2"),
    ),
    (
        "duplicate-type-override",
        'override_layer_types: { layer_type: "Conv2d" }\noverride_layer_types: { layer_type: "Conv2d" }',
        ConfigError,
        ("override_layer_types", "'Conv2d'", "2 times"),
    ),
    (
        "override-without-name",
        "override_layer_configs: { retrain_weight_quant_config: { arq_retrain: {} } }",
        ConfigError,
        ("override_layer_configs entry 1", "layer_name is required"),
    ),
    (
        "lone-clip-bound",
        "retrain_data_quant_config: { ulq_quantize: { clip_max_min: { clip_max: 6.0 } } }",
        ConfigError,
        ("retrain_data_quant_config.ulq_quantize.clip_max_min", "clip_max is set but clip_min is missing"),
    ),
    (
        "non-positive-clip-max",
        "retrain_data_quant_config: { ulq_quantize: { clip_max_min: { clip_max: 0.0 clip_min: -1.0 } } }",
        ConfigError,
        ("clip_max must be a finite number > 0", "got 0"),
    ),
    (
        "non-negative-clip-min",
        'override_layer_configs: { layer_name: "conv3" retrain_data_quant_config: '
        "{ ulq_quantize: { clip_max_min: { clip_max: 1.0 clip_min: 0.3 } } } }",
        ConfigError,
        ("override_layer_configs 'conv3'", "clip_min must be a finite number < 0", "got 0.3"),
    ),
    (
        "channel-wise-on-linear",
        "retrain_weight_quant_config: { arq_retrain: { channel_wise: true } }",
        ConfigError,
        ("fc:", "channel_wise: true", "retrain_weight_quant_config", "Linear"),
    ),
    (
        "int4-activations",
        "retrain_data_quant_config: { ulq_quantize: { dst_type: INT4 } }\n"
        "retrain_weight_quant_config: { arq_retrain: { dst_type: INT4 } }",
        ConfigError,
        ("INT4 quantization aware training is not supported", "conv1, conv2, up, conv3, fc"),
    ),
    (
        "bad-dst-type-pair",
        'override_layer_types: { layer_type: "Conv2d" '
        "retrain_data_quant_config: { ulq_quantize: { dst_type: INT16 } } "
        "retrain_weight_quant_config: { ulq_retrain: { dst_type: INT4 } } }",
        ConfigError,
        ("conv1, conv2, conv3:", "data INT16", "weight INT4", "override_layer_types 'Conv2d'", "not allowed"),
    ),
    (
        "pruning-fields",
        'regular_prune_skip_layers: "conv1"\n'
        "prune_config: { filter_pruner: { balanced_l2_norm_filter_prune: { prune_ratio: 0.3 } } }",
        ConfigError,
        ("prune_config", "regular_prune_skip_layers", "pruning is not supported"),
    ),
    (
        "pruning-in-override",
        'override_layer_configs: { layer_name: "conv1" prune_config: { n_out_of_m_pruner: {} } }',
        ConfigError,
        ("override_layer_configs 'conv1': prune_config", "pruning is not supported"),
    ),
    (
        "batch-num-zero",
        "batch_num: 0",
        ConfigError,
        ("batch_num: 0", "> 0"),
    ),
    (
        "all-layers-disabled",
        'skip_layer_types: "Conv2d"\nquant_skip_types: "Linear"\nskip_layers: "up"',
        AllLayersDisabledError,
        (
            "no layer retrain enabled",
            "skip_layer_types: Conv2d",
            "quant_skip_types: Linear",
            "skip_layers: up",
        ),
    ),
]


@pytest.mark.parametrize(("text", "error", "words"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_invalid_config_raises_and_writes_nothing(
    text: str, error: type[ValueError], words: tuple[str, ...], tmp_path: Path
) -> None:
    cfg = tmp_path / "quant.cfg"
    cfg.write_text(text, encoding="utf-8")
    out = tmp_path / "config.json"
    out.write_text(SENTINEL, encoding="utf-8")
    with pytest.raises(error) as info:
        create_quant_retrain_config(str(out), CFG_SIMPLE.model(), CFG_SIMPLE.inputs(), str(cfg))
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(cfg) in message  # every message names the file
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    assert out.read_text(encoding="utf-8") == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "quant.cfg"]


def test_no_file_is_created_when_the_config_is_invalid(tmp_path: Path) -> None:
    cfg = tmp_path / "quant.cfg"
    cfg.write_text('skip_layers: "nope"', encoding="utf-8")
    out = tmp_path / "sub" / "config.json"
    with pytest.raises(ConfigError):
        create_quant_retrain_config(str(out), CFG_SIMPLE.model(), CFG_SIMPLE.inputs(), str(cfg))
    assert not out.exists()


def test_all_disabled_is_also_a_no_quantizable_layer_error() -> None:
    with pytest.raises(NoQuantizableLayerError, match="no layer retrain enabled"):
        _resolve('skip_layer_types: "Conv2d" skip_layer_types: "ConvTranspose2d" skip_layer_types: "Linear"')


def test_syntax_error_carries_line_column_and_token() -> None:
    with pytest.raises(SimpleConfigSyntaxError) as info:
        parse_simple_config("batch_num: 2\n\n  skip_layerz: 'a'\n", "q.cfg")
    err = info.value
    assert (err.line, err.column, err.token) == (3, 3, "skip_layerz")
    assert str(err).startswith("q.cfg: line 3, column 3: ")
    assert "did you mean 'skip_layers'" in str(err).lower()


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("retrain_data_quant_config: { ulq_quantize: { dst_type: INT8 }", 1, 62),  # the last } is missing
        ('batch_num: 2\nskip_layers: "a" skip_layers', 2, 29),  # a field name and no value
        ("retrain_data_quant_config {\n  # a comment after the last token\n", 1, 28),
    ],
    ids=["missing-brace", "missing-colon", "comment-after"],
)
def test_syntax_error_at_the_end_of_the_file_says_so(text: str, line: int, column: int) -> None:
    with pytest.raises(SimpleConfigSyntaxError) as info:
        parse_simple_config(text, "q.cfg")
    err = info.value
    assert err.at_end and err.token is None
    assert (err.line, err.column) == (line, column)
    assert str(err).endswith("(end of file)") and "(at " not in str(err) and "'': " not in str(err)


@pytest.mark.parametrize(
    "text",
    ["batch_num: 4 }", "batch_num: 4 x", 'skip_layers "a"'],
    ids=["stray-brace", "unknown-field", "colon"],
)
def test_an_offending_last_token_is_not_the_end_of_the_file(text: str) -> None:
    with pytest.raises(SimpleConfigSyntaxError) as info:
        parse_simple_config(text, "q.cfg")
    assert not info.value.at_end and "(at '" in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the simple config"):
        load_simple_config(tmp_path / "absent.cfg")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_simple_config('batch_num: 0 skip_layer_types: "Conv3d" prune_config: {}', "q.cfg")
    message = str(info.value)
    assert "3 problems" in message
    assert "batch_num" in message and "'Conv3d'" in message and "prune_config" in message


# --------------------------------------------------------------- names the model has but cannot quantize


class ConvBnConv1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv1d = nn.Conv1d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.bn(self.conv(x))
        out: torch.Tensor = self.conv1d(y.flatten(2))
        return out


def test_a_module_that_is_not_a_candidate_is_named_with_its_class(tmp_path: Path) -> None:
    cfg = tmp_path / "quant.cfg"
    cfg.write_text('skip_layers: "bn"\nquant_skip_layers: "conv1d"', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        create_quant_retrain_config(
            str(tmp_path / "c.json"), ConvBnConv1d().eval(), (torch.randn(1, 3, 8, 8),), str(cfg)
        )
    message = str(info.value)
    assert "'bn' is a BatchNorm2d" in message
    assert "'conv1d' is a Conv1d" in message
    assert not (tmp_path / "c.json").exists()


def test_excluded_and_wrapped_names_are_explained() -> None:
    simple = parse_simple_config('skip_layers: "module.fc" skip_layers: "conv_x"', "q.cfg")
    with pytest.raises(ConfigError) as info:
        resolve_simple(SIMPLE_LAYERS, simple, {"conv_x": "conv_x: reused module (called 2 times)"})
    message = str(info.value)
    assert "did you mean 'fc'" in message and "unwrapped model" in message
    assert "'conv_x' is not a quantizable layer: the checks excluded it (conv_x: reused module" in message


# ------------------------------------------------------------------- resolution beyond the reference


def test_quant_skip_lists_disable_and_keep_the_configs_they_would_have() -> None:
    obj = _resolve(
        'quant_skip_layers: "conv3"\nquant_skip_types: "ConvTranspose2d"\n'
        "retrain_data_quant_config: { ulq_quantize: { dst_type: INT16 } }"
    )
    enabled = {name: layer["retrain_enable"] for name, layer in obj.items() if isinstance(layer, dict)}
    assert enabled == {"conv1": True, "conv2": True, "up": False, "conv3": False, "fc": True}
    for name in enabled:
        assert obj[name]["retrain_data_config"]["dst_type"] == "INT16"


def test_overrides_re_enable_skipped_layers_and_notes_say_so() -> None:
    text = (
        'skip_layers: "conv2"\nskip_layer_types: "Linear"\n'
        'override_layer_configs: { layer_name: "conv2" }\noverride_layer_types: { layer_type: "Linear" }'
    )
    resolved = resolve_simple(SIMPLE_LAYERS, parse_simple_config(text, "q.cfg"), {})
    by_name = {s.name: s for s in resolved.layers}
    assert by_name["conv2"].retrain_enable and by_name["fc"].retrain_enable
    assert by_name["conv2"].source == "override_layer_configs"
    assert by_name["fc"].source == "override_layer_types"
    notes = dict(resolved.notes)
    assert "skip_layers 'conv2' is cancelled by override_layer_configs 'conv2'" in notes["conv2"]
    assert "skip_layer_types 'Linear' is cancelled by override_layer_types 'Linear'" in notes["fc"]


def test_layer_override_beats_type_override_beats_global() -> None:
    text = """
        retrain_weight_quant_config: { arq_retrain: { dst_type: INT4 } }
        retrain_data_quant_config: { ulq_quantize: { fixed_min: true } }
        override_layer_types: { layer_type: "Conv2d" retrain_weight_quant_config: { ulq_retrain: {} } }
        override_layer_configs: {
            layer_name: "conv3" retrain_data_quant_config: { ulq_quantize: { dst_type: INT16 } }
        }
    """
    obj = _resolve(text)
    assert obj["conv1"] == obj["conv2"]
    assert obj["conv1"]["retrain_weight_config"] == {
        "algo": "ulq_retrain",
        "dst_type": "INT8",
        "channel_wise": True,
    }
    assert obj["conv1"]["retrain_data_config"] == {"algo": "ulq_quantize", "dst_type": "INT8"}
    assert obj["conv3"]["retrain_data_config"] == {"algo": "ulq_quantize", "dst_type": "INT16"}
    assert obj["conv3"]["retrain_weight_config"]["algo"] == "arq_retrain"
    for name in ("up", "fc"):  # the global configs
        assert obj[name]["retrain_data_config"]["fixed_min"] is True
        assert obj[name]["retrain_weight_config"]["dst_type"] == "INT4"


def test_top_level_fields_and_float32_values() -> None:
    text = (
        "batch_num: 7\nfakequant_precision_mode: FORCE_FP16_QUANT\n"
        "retrain_data_quant_config: { ulq_quantize: { clip_max_min: { clip_max: 0.3 clip_min: -1e-3 } "
        "fixed_min: false } }"
    )
    resolved = resolve_simple(SIMPLE_LAYERS, parse_simple_config(text, "q.cfg"), {})
    rendered = render(resolved)
    assert rendered.startswith(
        '{\n    "version":1,\n    "fakequant_precision_mode":"FORCE_FP16_QUANT",\n    "batch_num":7,'
    )
    data = json.loads(rendered)["conv1"]["retrain_data_config"]
    assert data == {
        "algo": "ulq_quantize",
        "clip_max": 0.30000001192092896,
        "clip_min": -0.0010000000474974513,
        "fixed_min": False,
        "dst_type": "INT8",
    }
    assert list(data) == ["algo", "clip_max", "clip_min", "fixed_min", "dst_type"]
    assert schema_errors(json.loads(rendered)) == []


def test_channel_wise_false_on_conv_and_default_on_linear() -> None:
    obj = _resolve("retrain_weight_quant_config: { ulq_retrain: { channel_wise: false } }")
    assert obj["conv1"]["retrain_weight_config"] == {
        "algo": "ulq_retrain",
        "dst_type": "INT8",
        "channel_wise": False,
    }
    assert obj["fc"]["retrain_weight_config"]["channel_wise"] is False
    obj = _resolve(
        'override_layer_types: { layer_type: "Linear" retrain_weight_quant_config: { ulq_retrain: {} } }'
    )
    assert obj["fc"]["retrain_weight_config"]["channel_wise"] is False
    assert obj["conv1"]["retrain_weight_config"]["channel_wise"] is True


def test_channel_wise_true_on_linear_by_layer_override_is_rejected() -> None:
    text = (
        'override_layer_configs: { layer_name: "fc" '
        "retrain_weight_quant_config: { ulq_retrain: { channel_wise: true } } }"
    )
    with pytest.raises(ConfigError, match=r"fc: channel_wise: true \(from override_layer_configs 'fc'\)"):
        _resolve(text)


def test_a_type_absent_from_the_model_is_accepted_with_a_note() -> None:
    layers = [QuantLayer("fc", "Linear")]
    resolved = resolve_simple(layers, parse_simple_config('skip_layer_types: "ConvTranspose2d"', "q.cfg"), {})
    assert resolved.layers[0].retrain_enable
    assert any("no quantizable ConvTranspose2d" in note for _, note in resolved.notes)


def test_duplicate_skip_entries_warn_and_merge(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="analyzer.simple_config"):
        simple = parse_simple_config(
            'skip_layers: "conv2" skip_layers: "conv2" quant_skip_layers: "up"', "q.cfg"
        )
    assert any("skip_layers lists 'conv2' 2 times" in r.getMessage() for r in caplog.records)
    resolved = resolve_simple(SIMPLE_LAYERS, simple, {})
    assert [s.name for s in resolved.layers if not s.retrain_enable] == ["conv2", "up"]
    assert ("conv2", "skip_layers lists 'conv2' 2 times; the entries are merged") in resolved.notes


def test_empty_config_gives_the_default_output() -> None:
    obj = _resolve("# nothing but a comment\n")
    default = json.loads(CASES_BY_NAME["cfg_simple_default"].golden_text())
    assert obj == default


def test_a_field_given_twice_is_merged_last_value_wins_with_a_note() -> None:
    text = (
        "batch_num: 2\nretrain_weight_quant_config: { arq_retrain: { dst_type: INT4 } }\n"
        "batch_num: 3\nretrain_weight_quant_config: { ulq_retrain: { } }\n"
    )
    resolved = resolve_simple(SIMPLE_LAYERS, parse_simple_config(text, "q.cfg"), {})
    obj = json.loads(render(resolved))
    assert obj["batch_num"] == 3
    assert obj["conv1"]["retrain_weight_config"]["algo"] == "ulq_retrain"
    merged = [(layer, note) for layer, note in resolved.notes if "more than once" in note]
    assert merged == [
        (
            "",
            "line 3, column 12: batch_num is given more than once; "
            "the entries are merged and the last value wins (AMCT-compatible reading)",
        )
    ]


def test_a_file_that_is_not_utf8_names_the_place(tmp_path: Path) -> None:
    cfg = tmp_path / "quant.cfg"
    cfg.write_bytes(b'batch_num: 1\nskip_layers: "conv\xff1"\n')
    with pytest.raises(SimpleConfigSyntaxError) as info:
        load_simple_config(cfg)
    assert (info.value.line, info.value.column) == (2, 19)
    assert "not UTF-8" in str(info.value) and "0xff" in str(info.value)


def test_a_byte_order_mark_gets_a_hint(tmp_path: Path) -> None:
    cfg = tmp_path / "quant.cfg"
    cfg.write_bytes(b'\xef\xbb\xbfskip_layers: "conv1"\n')
    with pytest.raises(SimpleConfigSyntaxError, match="byte-order mark"):
        load_simple_config(cfg)
