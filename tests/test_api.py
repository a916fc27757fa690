"""The contract of `create_quant_retrain_config` (SPEC section 1): arguments, errors, the model left alone,
the file replaced atomically or not at all."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import analyzer
from analyzer import (
    ArgumentTypeError,
    ExportFailedError,
    NoQuantizableLayerError,
    QuantScopeError,
    create_quant_retrain_config,
)
from graph.capabilities import torch_exporters
from tests.cases import CASES_BY_NAME

CIN3 = CASES_BY_NAME["cin3_conv"]
REFLECT_ONLY = CASES_BY_NAME["reflect_only"]


def test_public_surface_is_pinned() -> None:
    assert sorted(analyzer.__all__) == [
        "AnalysisError",
        "ArgumentTypeError",
        "ConfigError",
        "ExportFailedError",
        "InputFileError",
        "LayerRecord",
        "NoQuantizableLayerError",
        "OutputError",
        "QuantScopeError",
        "Report",
        "UnsupportedModelError",
        "create_distill_config",
        "create_distill_config_from_onnx",
        "create_quant_config",
        "create_quant_config_from_onnx",
        "create_quant_retrain_config",
        "create_quant_retrain_config_from_onnx",
    ]


def test_errors_subclass_the_builtins_amct_callers_catch() -> None:
    assert issubclass(analyzer.ArgumentTypeError, TypeError)
    assert issubclass(analyzer.ConfigError, ValueError)
    assert issubclass(analyzer.NoQuantizableLayerError, ValueError)
    assert issubclass(analyzer.InputFileError, ValueError)
    assert issubclass(analyzer.ExportFailedError, RuntimeError)
    assert issubclass(analyzer.AnalysisError, RuntimeError)
    for name in (
        "AnalysisError",
        "ArgumentTypeError",
        "ConfigError",
        "NoQuantizableLayerError",
        "ExportFailedError",
        "OutputError",
    ):
        assert issubclass(getattr(analyzer, name), QuantScopeError)


class Mixed(nn.Module):
    """A model with state a careless call would disturb: mixed training flags, a hook, a frozen parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 4)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.bn(self.conv(x))).mean((2, 3)))


def _snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "training": [(n, m.training) for n, m in model.named_modules()],
        "params": {
            n: (p.detach().clone(), p.requires_grad, p.data_ptr()) for n, p in model.named_parameters()
        },
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "hooks": [
            (
                n,
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(m._backward_hooks),
                len(m._state_dict_hooks),
            )
            for n, m in model.named_modules()
        ],
        "attrs": [(n, sorted(vars(m))) for n, m in model.named_modules()],
    }


def test_model_is_left_exactly_as_it_was(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Mixed()
    model.train()
    model.bn.eval()  # a mix of flags must survive, not just the root's
    model.conv.weight.requires_grad_(False)
    model.fc.register_forward_hook(lambda *_: None)
    before = _snapshot(model)
    create_quant_retrain_config(str(tmp_path / "c.json"), model, torch.randn(1, 3, 8, 8))
    after = _snapshot(model)
    assert after["training"] == before["training"]
    assert after["hooks"] == before["hooks"]
    assert after["attrs"] == before["attrs"]
    for name, (value, grad, ptr) in before["params"].items():  # type: ignore[union-attr]
        new_value, new_grad, new_ptr = after["params"][name]  # type: ignore[index]
        assert torch.equal(value, new_value) and grad == new_grad and ptr == new_ptr, name
    for name, value in before["buffers"].items():  # type: ignore[union-attr]
        assert torch.equal(value, after["buffers"][name]), name  # type: ignore[index]


def test_single_tensor_input_and_pathlike_and_missing_parents(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "config.json"
    create_quant_retrain_config(out, CIN3.model(), CIN3.inputs()[0])
    assert out.read_text(encoding="utf-8") == CIN3.golden_text()


def test_overwrite_replaces_the_file_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "config.json"
    out.write_text("old", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="analyzer"):
        create_quant_retrain_config(str(out), CIN3.model(), CIN3.inputs())
    assert out.read_text(encoding="utf-8") == CIN3.golden_text()
    assert any("overwritten" in r.getMessage() and str(out) in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_advisory_is_logged_once_per_kind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    case = CASES_BY_NAME["padding_modes_all"]  # four convs with Cin <= 16
    with caplog.at_level(logging.WARNING, logger="analyzer"):
        create_quant_retrain_config(str(tmp_path / "c.json"), case.model(), case.inputs())
    small = [r for r in caplog.records if "small-cin" in r.getMessage()]
    assert len(small) == 1
    assert "conv_zeros" in small[0].getMessage()


def test_failed_call_leaves_existing_file_untouched(tmp_path: Path) -> None:
    out = tmp_path / "config.json"
    out.write_text("precious", encoding="utf-8")
    with pytest.raises(NoQuantizableLayerError, match="conv_reflect"):
        create_quant_retrain_config(str(out), REFLECT_ONLY.model(), REFLECT_ONLY.inputs())
    assert out.read_text(encoding="utf-8") == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


class Unexportable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this forward always fails")


def test_export_failure_is_a_runtime_error_chaining_the_cause(tmp_path: Path) -> None:
    out = tmp_path / "config.json"
    out.write_text("precious", encoding="utf-8")
    with pytest.raises(RuntimeError, match="export failed") as info:
        create_quant_retrain_config(str(out), Unexportable(), torch.randn(2, 4))
    assert isinstance(info.value, ExportFailedError)
    assert info.value.__cause__ is not None
    message = str(info.value)
    if torch_exporters().dynamo_missing is None:  # the only exporter of torch 2.1-2.4 is TorchScript
        assert "dynamo exporter: RuntimeError: this forward always fails" in message
    assert "torchscript exporter: RuntimeError: this forward always fails" in message
    assert len(message) < 400  # the exporters' long reports stay in the chained cause
    assert out.read_text(encoding="utf-8") == "precious"


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"config_file": 3}, "config_file"),
        ({"model": "resnet"}, "model"),
        ({"input_data": [1, 2]}, "input_data"),
        ({"config_defination": 7}, "config_defination"),
    ],
    ids=["config_file", "model", "input_data", "config_defination"],
)
def test_wrong_argument_types(kwargs: dict[str, object], culprit: str, tmp_path: Path) -> None:
    args: dict[str, object] = {
        "config_file": str(tmp_path / "c.json"),
        "model": CIN3.model(),
        "input_data": CIN3.inputs(),
        "config_defination": None,
    }
    args.update(kwargs)
    with pytest.raises(TypeError, match=culprit) as info:
        create_quant_retrain_config(**args)  # type: ignore[arg-type]
    assert isinstance(info.value, ArgumentTypeError)
    assert not (tmp_path / "c.json").exists()


def test_data_parallel_wrapper_is_unwrapped(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    create_quant_retrain_config(str(out), nn.DataParallel(CIN3.model()), CIN3.inputs())
    assert out.read_text(encoding="utf-8") == CIN3.golden_text()


def test_report_accounts_for_every_layer(tmp_path: Path) -> None:
    case = CASES_BY_NAME["shared_weight_one_unused"]
    report = create_quant_retrain_config(str(tmp_path / "c.json"), case.model(), case.inputs())
    assert report.quantized == ("fc_used", "head")
    assert report.excluded == ("fc_tied_unused",)
    assert report.record("fc_tied_unused").check == "not-executed"


def test_target_directory_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.mkdir()
    with pytest.raises(OSError, match="directory"):
        create_quant_retrain_config(str(target), CIN3.model(), CIN3.inputs())
    assert target.is_dir() and list(target.iterdir()) == []


def test_no_temporary_file_left_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "config.json"
    out.write_text("precious", encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        create_quant_retrain_config(str(out), CIN3.model(), CIN3.inputs())
    assert out.read_text(encoding="utf-8") == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_nothing_to_quantize_names_what_was_seen_and_carries_the_report(tmp_path: Path) -> None:
    case = CASES_BY_NAME["conv1d_conv3d"]
    with pytest.raises(NoQuantizableLayerError) as info:
        create_quant_retrain_config(str(tmp_path / "c.json"), case.model(), case.inputs())
    message = str(info.value)
    assert "conv1d (Conv1d)" in message and "conv3d (Conv3d)" in message
    report = info.value.report
    assert report is not None
    assert {r.name: r.decision for r in report.layers} == {
        "conv1d": "not a candidate",
        "conv3d": "not a candidate",
    }
    assert not (tmp_path / "c.json").exists()
