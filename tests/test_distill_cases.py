"""Distill files the groups cannot be read from, and what the distill call adds to the shared case machinery.

The 15 public distill cases run with every other reference case: through the library call
(tests/test_reference_cases.py), each exporter forced (tests/test_exporters.py) and the offline call with and
without the mapping file (tests/test_offline.py); their models are in tests/distill_cases.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from analyzer import InputFileError, create_distill_config_from_onnx, create_quant_retrain_config
from graph.export import OnnxExport, export_onnx
from tests.cases import DISTILL_CASES_BY_NAME, Case
from tests.torch_support import skip_without_dynamo


def _write(case: Case, folder: Path, folding: bool) -> OnnxExport:
    return export_onnx(
        case.model(), case.inputs(), folder / "model.onnx", exporter="torchscript", constant_folding=folding
    )


@pytest.mark.parametrize("name", ["d_basic", "d_chain"])
def test_torchscript_file_without_mapping_is_refused(name: str, tmp_path: Path) -> None:
    """A TorchScript file does not say the class of its BatchNorm and activation modules: refused, not guessed."""
    case = DISTILL_CASES_BY_NAME[name]
    written = _write(case, tmp_path / "files", folding=False)
    out = tmp_path / "distill.json"
    with pytest.raises(
        InputFileError, match=r"does not say the class of the modules bn.*pass the mapping file"
    ):
        create_distill_config_from_onnx(str(out), str(written.onnx_file), None, case._cfg())
    assert not out.exists()


@pytest.mark.parametrize("name", ["d_basic", "d_resnet_tiny"])
def test_file_with_batchnorm_folded_is_refused(name: str, tmp_path: Path) -> None:
    """The TorchScript exporter's default folds BatchNorm into the conv: the groups cannot be read, and the error
    says so instead of writing groups without their BatchNorm."""
    case = DISTILL_CASES_BY_NAME[name]
    written = _write(case, tmp_path / "files", folding=True)
    out = tmp_path / "distill.json"
    with pytest.raises(
        InputFileError, match=r"have no BatchNormalization node: the file was exported with BatchNorm folded"
    ):
        create_distill_config_from_onnx(str(out), str(written.onnx_file), str(written.mapping_file))
    assert not out.exists()


def test_a_dynamo_file_made_with_the_optimizer_is_refused(tmp_path: Path) -> None:
    """`torch.onnx.export(dynamo=True)` optimizes by default: the Conv absorbs the BatchNorm and is read as the
    conv's again (from its weight's name), so nothing but the silent BatchNorm module shows the fold."""
    skip_without_dynamo()
    case = DISTILL_CASES_BY_NAME["d_basic"]
    path = tmp_path / "optimized.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(case.model(), case.inputs(), str(path), dynamo=True, verbose=False)
    out = tmp_path / "distill.json"
    with pytest.raises(
        InputFileError, match=r"the BatchNorm modules bn have no BatchNormalization node.*optimize=False"
    ):
        create_distill_config_from_onnx(str(out), str(path))
    assert not out.exists()


def test_the_retrain_call_on_a_distill_model_lists_its_layers_only(tmp_path: Path) -> None:
    """The activation classes now recorded in the module table add nothing to the retrain config."""
    case = DISTILL_CASES_BY_NAME["d_basic"]
    out = tmp_path / "retrain.json"
    create_quant_retrain_config(str(out), case.model(), case.inputs())
    assert list(json.loads(out.read_text(encoding="utf-8"))) == [
        "version",
        "batch_num",
        "fc",
        "conv",
        "conv2",
    ]


def test_command_line_generate_explain_validate_with_kind_distill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer.cli import main

    case = DISTILL_CASES_BY_NAME["dc_group_size_2"]
    written = _write(case, tmp_path / "files", folding=False)
    config = tmp_path / "distill.json"
    generate = ["generate", "--kind", "distill", str(written.onnx_file), "--simple-config", str(case._cfg())]
    assert main([*generate, "-o", str(config)]) == 0
    assert config.read_text(encoding="utf-8") == case.golden_text()

    capsys.readouterr()
    assert main(["explain", "--kind", "distill", str(written.onnx_file), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "distill"
    assert report["groups"][0] == ["conv1", "bn1", "relu1"]

    assert main(["validate", "--kind", "distill", "--onnx", str(written.onnx_file), str(config)]) == 0
    edited = json.loads(config.read_text(encoding="utf-8"))
    edited["fc1"]["distill_weight_config"]["channel_wise"] = True
    edited["conv9"] = edited.pop("conv4")
    config.write_text(json.dumps(edited), encoding="utf-8")
    capsys.readouterr()
    assert main(["validate", "--kind", "distill", "--onnx", str(written.onnx_file), str(config)]) == 1
    out = capsys.readouterr().out
    assert "conv9: not a distill layer" in out
    assert "conv4: a distill layer" in out and "missing from the config" in out
    assert "fc1/distill_weight_config/channel_wise: true on a Linear" in out
