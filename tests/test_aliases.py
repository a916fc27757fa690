"""Modules registered under several names (SPEC section 2): one layer, named by its first `named_modules()`
name, owning the ops made under any of its names, on both exporters, offline, and in the mapping file.

The `aliased_conv` reference case (tests/cases.py) runs through every entrance and both exporters in
tests/test_reference_cases.py, tests/test_exporters.py and tests/test_offline.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyzer import create_quant_retrain_config, create_quant_retrain_config_from_onnx
from analyzer.api import analyze
from graph.export import export_graph, export_onnx, module_table
from graph.ir import ModuleInfo
from graph.torchscript import alias_scope_names
from tests.cases import CASES_BY_NAME

EXPORTERS = ("dynamo", "torchscript")
ALIASED = CASES_BY_NAME["aliased_conv"]


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class NestedAlias(nn.Module):
    """`block` (with a child) is also `body.1`; called through the Sequential only."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 8, 1)
        self.block = Block()
        self.body = nn.Sequential(self.stem, self.block)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


class CalledThroughBoth(nn.Module):
    """conv is called once as `conv` and once as `seq.0`: twice, whichever name the call went through."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.seq = nn.Sequential(self.conv)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.seq(self.conv(x)).mean((2, 3)))


def test_module_table_records_aliases() -> None:
    table = {info.name: info for info in module_table(NestedAlias())}
    assert "body.0" not in table and "body.1.conv" not in table
    assert table["stem"].aliases == ("body.0",)
    assert table["block"].aliases == ("body.1",)
    assert table["block.conv"].aliases == ("body.1.conv",)
    assert table["head"].aliases == ()


def test_alias_scope_names_spell_a_call_the_torchscript_way() -> None:
    modules = (
        ModuleInfo("", "Net"),
        ModuleInfo("stem", "Conv2d", aliases=("body.0",)),
        ModuleInfo("block", "Block", aliases=("body.1",)),
        ModuleInfo("block.conv", "Conv2d", aliases=("body.1.conv",)),
        ModuleInfo("body", "Sequential"),
    )
    assert alias_scope_names(modules) == {
        "body.stem": "stem",
        "body.block": "block",
        "body.block.conv": "block.conv",
    }


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_nested_alias_is_one_layer_under_its_first_name(exporter: str) -> None:
    torch.manual_seed(0)
    graph = export_graph(NestedAlias().eval(), (torch.randn(1, 4, 8, 8),), exporter=exporter)
    report, text = analyze(graph)
    assert list(json.loads(text)) == ["version", "batch_num", "stem", "block.conv", "head"]
    assert report.quantized == ("stem", "block.conv", "head")
    names = {record.name for record in report.layers}
    assert not any(name.startswith("body.") for name in names), names
    checks = {a.check for a in report.record("block.conv").advisories}
    assert "module-aliases" in checks


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_module_called_through_two_names_is_reused(exporter: str) -> None:
    torch.manual_seed(0)
    graph = export_graph(CalledThroughBoth().eval(), (torch.randn(1, 8, 8, 8),), exporter=exporter)
    report, _text = analyze(graph)
    record = report.record("conv")
    assert (record.decision, record.check) == ("excluded", "reused-module")
    assert "called 2 times" in record.reason


def test_report_notes_that_amct_drops_the_layer(tmp_path: Path) -> None:
    report = create_quant_retrain_config(str(tmp_path / "c.json"), ALIASED.model(), ALIASED.inputs())
    reasons = [a.reason for a in report.record("conv1").advisories if a.code == "QS203"]
    assert reasons == [
        "conv1: also registered as net.0; one layer under its first name "
        "(AMCT 2be20daf leaves such a layer out of its config)"
    ]
    assert report.record("conv1").decision == "quantize"


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_mapping_records_aliases_and_owners_by_first_name(exporter: str, tmp_path: Path) -> None:
    files = export_onnx(ALIASED.model(), ALIASED.inputs(), tmp_path / "m.onnx", exporter=exporter)
    data = json.loads(files.mapping_file.read_text(encoding="utf-8"))
    assert data["version"] == 3
    entries = {entry["name"]: entry for entry in data["modules"]}
    assert entries["conv1"]["aliases"] == ["net.0"]
    owners = {node["module"] for node in data["nodes"].values() if node["op_type"] == "Conv"}
    assert owners == {"conv1"}


def test_version_1_mapping_is_still_read(tmp_path: Path) -> None:
    case = CASES_BY_NAME["cfg_simple_default"]
    files = export_onnx(case.model(), case.inputs(), tmp_path / "m.onnx", exporter="torchscript")
    data = json.loads(files.mapping_file.read_text(encoding="utf-8"))
    data["version"] = 1
    for entry in data["modules"]:
        del entry["aliases"], entry["config"]
    old = tmp_path / "v1.mapping.json"
    old.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "config.json"
    create_quant_retrain_config_from_onnx(str(out), str(files.onnx_file), str(old))
    assert out.read_text(encoding="utf-8") == case.golden_text()
