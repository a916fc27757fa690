"""The kinds table (analyzer.kinds): every row is complete, the CLI offers each kind, the report records it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import schemas
from analyzer import cli
from analyzer.kinds import DEFAULT_KIND, KINDS, Kind, kind_of
from analyzer.report import REPORT_SCHEMA
from tests.cases import CASES_BY_NAME


def test_every_row_names_its_calls_and_schema() -> None:
    assert DEFAULT_KIND == "retrain"
    for name, row in KINDS.items():
        assert isinstance(row, Kind)
        assert row.name == name
        assert row.call.startswith("create_") and row.offline_call == f"{row.call}_from_onnx"
        assert schemas.load_schema(row.config_schema)["type"] == "object"


def test_unknown_kind_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown kind 'qat'; use one of 'retrain'"):
        kind_of("qat")


def test_cli_offers_every_kind_on_generate_explain_validate(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("generate", "explain", "validate"):
        assert cli.main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "--kind" in text
        for name in KINDS:
            assert name in text
    assert cli.main(["generate", "m.onnx", "-o", "c.json", "--kind", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_report_records_its_kind(tmp_path: Path) -> None:
    from analyzer import create_quant_retrain_config

    case = CASES_BY_NAME["linear_variants"]
    report = create_quant_retrain_config(str(tmp_path / "c.json"), case.model(), case.inputs())
    assert report.kind == "retrain"
    document = json.loads(report.to_json())
    assert document["kind"] == "retrain"
    assert "groups" not in document  # distill only
    assert list(schemas.validator(REPORT_SCHEMA).iter_errors(document)) == []
