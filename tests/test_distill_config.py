"""The distill simple config (SPEC 11.5) and the call-level checks (SPEC 11.1): resolution, AMCT's messages in
AMCT's order, the JSON layout (SPEC 11.4). Resolution runs on (name, type) lists, without a model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from analyzer import ConfigError, create_distill_config
from analyzer.errors import NoQuantizableLayerError
from analyzer.groups import Groups
from analyzer.kinds.distill_config import (
    DistillSimple,
    check_enabled,
    parse_distill_config,
    render_distill,
    resolve_distill,
)
from tests.cases import DISTILL_CASES_BY_NAME

LAYERS = [("fc3", "Linear"), ("conv1", "Conv2d"), ("conv2", "Conv2d"), ("fc1", "Linear")]
GROUPS = Groups((("conv1",), ("conv2",), ("fc1",), ("fc3",)), {}, {}, {}, ())


def _simple(text: str) -> DistillSimple:
    return parse_distill_config(text, "test.cfg")


def _json(text: str, layers: list[tuple[str, str]] = LAYERS) -> dict[str, object]:
    resolved = resolve_distill(layers, _simple(text))
    check_enabled(resolved)
    loaded: dict[str, object] = json.loads(render_distill(resolved, GROUPS))
    return loaded


def test_defaults_layout_and_key_order() -> None:
    text = render_distill(resolve_distill(LAYERS, None), GROUPS)
    obj = json.loads(text)
    assert list(obj) == [
        "version",
        "batch_num",
        "group_size",
        "data_dump",
        "distill_group",
        "fc3",
        "conv1",
        "conv2",
        "fc1",
    ]
    assert obj["conv1"] == {
        "quant_enable": True,
        "distill_data_config": {"algo": "ulq_quantize", "dst_type": "INT8"},
        "distill_weight_config": {"algo": "arq_distill", "channel_wise": True, "dst_type": "INT8"},
    }
    assert obj["fc3"]["distill_weight_config"]["channel_wise"] is False
    assert text == json.dumps(obj, indent=4, separators=(",", ":"))  # AMCT's formatting, no trailing newline


def test_clip_values_are_float32_widened_to_double() -> None:
    obj = _json(
        "distill_data_quant_config: { ulq_quantize: { clip_max_min: { clip_max: 0.3 clip_min: -0.1 } } }"
    )
    data = obj["conv1"]["distill_data_config"]  # type: ignore[index]
    assert list(data) == ["algo", "clip_max", "clip_min", "dst_type"]
    assert data["clip_max"] == 0.30000001192092896 and data["clip_min"] == -0.10000000149011612


def test_priority_skip_then_layer_then_type_then_global() -> None:
    obj = _json(
        """
        distill_data_quant_config: { ulq_quantize: { fixed_min: true } }
        distill_weight_quant_config: { ulq_distill: { channel_wise: false } }
        distill_override_layer_types: { layer_type: "Conv2d" distill_weight_quant_config: { arq_distill: {} } }
        distill_override_layers: { layer_name: "conv2" }
        distill_override_layers: { layer_name: "fc1" distill_data_quant_config: { ulq_quantize: { dst_type: INT4 } }
            distill_weight_quant_config: { arq_distill: { dst_type: INT4 } } }
        quant_skip_layers: "fc1"
        """
    )
    weight = {name: obj[name]["distill_weight_config"] for name in ("fc3", "conv1", "conv2", "fc1")}  # type: ignore[index]
    assert weight["fc3"] == {"algo": "ulq_distill", "channel_wise": False, "dst_type": "INT8"}  # global
    assert weight["conv1"] == {
        "algo": "arq_distill",
        "channel_wise": True,
        "dst_type": "INT8",
    }  # type, no inheritance
    assert weight["conv2"] == {
        "algo": "arq_distill",
        "channel_wise": True,
        "dst_type": "INT8",
    }  # empty override
    assert obj["conv2"]["distill_data_config"] == {"algo": "ulq_quantize", "dst_type": "INT8"}  # type: ignore[index]
    assert obj["fc1"]["quant_enable"] is False  # type: ignore[index]
    assert weight["fc1"] == {
        "algo": "arq_distill",
        "channel_wise": False,
        "dst_type": "INT8",
    }  # skip: defaults


def test_int4_for_both_is_allowed_without_a_cin_downgrade() -> None:
    obj = _json(
        "distill_data_quant_config: { ulq_quantize: { dst_type: INT4 } } "
        "distill_weight_quant_config: { arq_distill: { dst_type: INT4 } }",
        [("conv", "Conv2d")],
    )
    assert obj["conv"]["distill_weight_config"]["dst_type"] == "INT4"  # type: ignore[index]


def test_top_level_values_are_copied() -> None:
    obj = _json("batch_num: 4 group_size: 3 data_dump: true")
    assert (obj["batch_num"], obj["group_size"], obj["data_dump"]) == (4, 3, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('quant_skip_layers: "nope"', r"^quant_skip_layers\['nope'\] not exist or supported$"),
        (
            'quant_skip_layer_types: "ConvTranspose2d"',
            r"^quant_skip_layer_types\['ConvTranspose2d'\] not exist",
        ),
        (
            'distill_override_layers: { layer_name: "conv1" } distill_override_layers: { layer_name: "conv1" }',
            r"^Please delete repeated items in distill_override_layers, repeated items are \['conv1'\]\.$",
        ),
        (
            'distill_override_layers: { layer_name: "bn1" }',
            r"^distill_override_layers\['bn1'\] not exist or supported for quant$",
        ),
        (
            'distill_override_layer_types: { layer_type: "Linear" } distill_override_layer_types: { layer_type: "Linear" }',
            r"^Please delete repeated items in distill_override_layer_types,  repeated items are \['Linear'\]\.$",
        ),
        (
            'distill_override_layer_types: { layer_type: "BatchNorm2d" }',
            r"^distill_override_layer_types\['BatchNorm2d'\] not exist or supported for quant$",
        ),
        (
            "distill_weight_quant_config: { ulq_distill: { dst_type: INT4 } }",
            r"^Activation and weights with different data_type are not supported for now\. Note, activation is INT8 "
            r"and weight is INT4\.",
        ),
        ("batch_num: 0", r"^batch_num\(0\) should be greater than zero$"),
        ("group_size: 0", r"^group_size\(0\) should be greater than zero$"),
        (
            "distill_weight_quant_config: { arq_distill: { channel_wise: true } }",
            r"^ fc layer can not be channewised",
        ),
        (
            'quant_skip_layer_types: "Conv2d" quant_skip_layer_types: "Linear"',
            r"^No layer enabled distillation$",
        ),
    ],
    ids=[
        "skip-layer",
        "skip-type",
        "override-duplicate",
        "override-member",
        "type-duplicate",
        "type-member",
        "int4-mismatch",
        "batch_num",
        "group_size",
        "channel-wise-linear",
        "all-skipped",
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _json(text)


def test_a_type_must_be_the_type_of_a_candidate_of_this_model() -> None:
    with pytest.raises(ConfigError, match=r"^quant_skip_layer_types\['Linear'\] not exist or supported$"):
        _json('quant_skip_layer_types: "Linear"', [("conv", "Conv2d")])


def test_check_order_skip_lists_before_overrides_before_int4_before_batch_num() -> None:
    text = (
        'batch_num: 0 quant_skip_layers: "x" distill_override_layers: { layer_name: "y" } '
        "distill_weight_quant_config: { ulq_distill: { dst_type: INT4 } }"
    )
    with pytest.raises(ConfigError, match=r"^quant_skip_layers"):
        _json(text)
    with pytest.raises(ConfigError, match=r"^distill_override_layers"):
        _json(text.replace('quant_skip_layers: "x"', ""))
    with pytest.raises(ConfigError, match=r"^Activation and weights"):
        _json(
            text.replace('quant_skip_layers: "x"', "").replace(
                'distill_override_layers: { layer_name: "y" }', ""
            )
        )
    with pytest.raises(ConfigError, match=r"^batch_num\(0\)"):
        _json("batch_num: 0 group_size: 0")


def test_the_channel_wise_check_ignores_a_skipped_linear() -> None:
    obj = _json(
        'distill_weight_quant_config: { arq_distill: { channel_wise: true } } quant_skip_layer_types: "Linear"'
    )
    assert obj["conv1"]["quant_enable"] is True and obj["fc1"]["quant_enable"] is False  # type: ignore[index]


def test_a_syntax_error_names_file_line_column_and_field() -> None:
    with pytest.raises(
        ConfigError, match=r"test\.cfg: line 2, column 1: .*group_sise.*Did you mean 'group_size'"
    ):
        _simple("batch_num: 2\ngroup_sise: 2\n")


def test_duplicate_skip_entries_are_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    obj = _json('quant_skip_layers: "conv1" quant_skip_layers: "conv1"')
    assert obj["conv1"]["quant_enable"] is False  # type: ignore[index]
    assert "quant_skip_layers lists 'conv1' 2 times" in caplog.text


# --- the call (SPEC 11.1) --------------------------------------------------------------------------------------


BASIC = DISTILL_CASES_BY_NAME["d_basic"]


@pytest.mark.parametrize(
    ("arguments", "culprit"),
    [
        ({"config_file": 3}, "config_file must be str"),
        ({"model": "net"}, "model must be torch.nn.Module"),
        ({"input_data": [torch.zeros(1)]}, "input_data must be torch.Tensor or tuple"),
        ({"config_defination": 1}, "config_defination must be str or None"),
    ],
    ids=["config_file", "model", "input_data", "config_defination"],
)
def test_argument_types(arguments: dict[str, object], culprit: str, tmp_path: Path) -> None:
    call: dict[str, object] = {
        "config_file": str(tmp_path / "d.json"),
        "model": BASIC.model(),
        "input_data": BASIC.inputs(),
        **arguments,
    }
    with pytest.raises(TypeError, match=rf"^Func create_distill_config argument {culprit}"):
        create_distill_config(**call)  # type: ignore[arg-type]


def test_a_missing_simple_config_is_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.cfg"
    with pytest.raises(
        FileNotFoundError, match=rf"^Not found config_defination file {os.path.realpath(missing)}$"
    ):
        create_distill_config(str(tmp_path / "d.json"), BASIC.model(), BASIC.inputs(), str(missing))
    assert list(tmp_path.iterdir()) == []


class Recorder(nn.Module):  # named like an AMCT operation
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_a_model_holding_amct_operations_is_refused(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 1), Recorder())
    with pytest.raises(RuntimeError, match=r"following quant layers are in the model \{'1': 'Recorder'\}"):
        create_distill_config(str(tmp_path / "d.json"), model, torch.zeros(1, 4, 4, 4))


def test_a_wrapped_model_is_unwrapped(tmp_path: Path) -> None:
    out = tmp_path / "d.json"
    create_distill_config(str(out), nn.DataParallel(BASIC.model()), BASIC.inputs())
    assert out.read_text(encoding="utf-8") == BASIC.golden_text()


def test_a_failed_call_leaves_an_existing_file_untouched(tmp_path: Path) -> None:
    out = tmp_path / "d.json"
    out.write_text("previous", encoding="utf-8")
    cfg = tmp_path / "bad.cfg"
    cfg.write_text('quant_skip_layers: "nope"', encoding="utf-8")
    with pytest.raises(ConfigError):
        create_distill_config(str(out), BASIC.model(), BASIC.inputs(), str(cfg))
    assert out.read_text(encoding="utf-8") == "previous"


def test_the_report_carries_the_groups_and_each_layers_group(tmp_path: Path) -> None:
    case = DISTILL_CASES_BY_NAME["d_bn_variants"]
    report = create_distill_config(str(tmp_path / "d.json"), case.model(), case.inputs())
    data = json.loads(report.to_json())
    assert data["kind"] == "distill"
    assert data["groups"] == [["conv_c", "bn_c"], ["fc2"]]
    groups = {layer["name"]: layer.get("group") for layer in data["layers"]}
    assert groups["conv_c"].startswith("in distill_group[0] [conv_c, bn_c]")
    assert "'bn1d', is a BatchNorm1d" in groups["fc1"]
    assert "'bn_shared', is called 2 times (reused)" in groups["conv_a"]
    import schemas

    assert not list(schemas.validator("report.schema.json").iter_errors(data))


def test_the_report_names_the_functional_ops_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = DISTILL_CASES_BY_NAME["d_functional"]
    report = create_distill_config(str(tmp_path / "d.json"), case.model(), case.inputs())
    left = [note.reason for note in report.notes if note.code == "QS402"]
    assert len(left) == 3
    assert "functional Relu op" in left[0] and "after conv1" in left[0] and "distill_group[0]" in left[0]
    assert "functional Sigmoid op" in left[1] and "after bn2" in left[1]
    assert "3 functional activation(s) left out" in caplog.text


def test_no_candidates_raises_with_the_report(tmp_path: Path) -> None:
    case = DISTILL_CASES_BY_NAME["e_d_no_candidates"]
    with pytest.raises(NoQuantizableLayerError) as info:
        create_distill_config(str(tmp_path / "d.json"), case.model(), case.inputs())
    assert info.value.report is not None


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_a_clip_bound_that_is_not_a_json_number_is_refused(value: str) -> None:
    text = (
        'distill_override_layer_types: { layer_type: "Conv2d" distill_data_quant_config: { ulq_quantize: '
        f"{{ clip_max_min: {{ clip_max: 1 clip_min: {value} }} }} }} }}"
    )
    with pytest.raises(
        ConfigError,
        match=r"^test\.cfg: distill_override_layer_types 'Conv2d': distill_data_quant_config\.ulq_quantize\."
        r"clip_max_min\.clip_min: .* is not a finite number$",
    ):
        _simple(text)
