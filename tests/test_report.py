"""The analysis report: every reference case's report is schema-valid and gives the documented reason for every
excluded layer; the summary, provenance, text table and log lines agree with the records."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import schemas
from analyzer import NoQuantizableLayerError, Report, create_quant_retrain_config
from analyzer.api import _log, analyze
from analyzer.checks import Finding, Severity
from analyzer.report import (
    DECISIONS,
    EXCLUDED,
    NOT_CANDIDATE,
    QUANTIZE,
    REPORT_SCHEMA,
    SKIPPED,
    Advisory,
    LayerRecord,
    strip_ansi,
)
from graph.ir import Producer
from graph.torchscript import OPSET as TORCHSCRIPT_OPSET
from tests.cases import CASES_BY_NAME, DEFAULT_CASES, Case
from tests.graphs import conv, gemm, make_graph, module

# What SPEC section 2 says each reference model must show: layer -> (code, check, words of the reason).
EXPECTED_EXCLUDED: dict[str, dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "resnet18_hand": {},
    "shared_weight_linear": {
        "fc_a": ("QS103", "shared-weight", ("shared with fc_b",)),
        "fc_b": ("QS103", "shared-weight", ("shared with fc_a",)),
    },
    "reused_conv": {"conv_reused": ("QS102", "reused-module", ("called 2 times",))},
    "reflect_conv": {
        "conv_reflect": ("QS104", "padding-mode", ("'reflect'", "padding_mode must be 'zeros'"))
    },
    "padding_modes_all": {
        "conv_reflect": ("QS104", "padding-mode", ("'reflect'",)),
        "conv_replicate": ("QS104", "padding-mode", ("'edge'",)),
        "conv_circular": ("QS104", "padding-mode", ("'wrap'",)),
    },
    "cin3_conv": {},
    "convtranspose2d": {},
    "linear_3d_input": {},
    "linear_variants": {},
    "multihead_attention": {},
    "multihead_attention_distinct_qkv": {},
    "shared_weight_one_unused": {"fc_tied_unused": ("QS101", "not-executed", ("never called in forward",))},
    "unused_linear": {"fc_unused": ("QS101", "not-executed", ("never called in forward",))},
    "unbatched_conv": {"conv_unbatched": ("QS105", "input-rank", ("unbatched",))},
    "cfg_simple_default": {},
    "aliased_conv": {},
    # layer_types="amct-latest" (SPEC section 9)
    "a_conv1d": {},
    "a_conv3d_dilation": {
        "conv3d_d_dil": ("QS108", "depth-dilation", ("(2, 1, 1)", "along depth is 2")),
        "conv3d_all_dil": ("QS108", "depth-dilation", ("(2, 2, 2)", "along depth is 2")),
    },
    "a_lstm": {},
    "a_gru_bidirectional": {"rnn": ("QS109", "rnn-config", ("bidirectional = True",))},
    "a_lstm_dropout_1layer": {"rnn": ("QS109", "rnn-config", ("dropout = 0.25",))},
    "a_mix_all": {},
    "a_convtranspose3d_absent": {},
    "a_lstm_unbatched": {},
    # weights computed before the op (weight norm, spectral norm, pruning): kept as the plain layers are
    "sn_cfg_simple_default": {},
    "wn_reused_conv": {"conv_reused": ("QS102", "reused-module", ("called 2 times",))},
    "wn_shared_source": {
        "fc_a": ("QS103", "shared-weight", ("weight_v", "shared with fc_b")),
        "fc_b": ("QS103", "shared-weight", ("weight_v", "shared with fc_a")),
    },
    "a_wn_mix_all": {},
    "parametrized_cfg_simple": {},
    "sn_discriminator": {},
    "a_wn_tcn_block": {},
}
# Modules that are seen but are not candidates (SPEC section 2: the class name decides).
EXPECTED_NOT_CANDIDATE: dict[str, set[str]] = {
    "multihead_attention": {"mha", "mha.out_proj"},
    "multihead_attention_distinct_qkv": {"mha", "mha.out_proj"},
    "a_mix_all": {"up3d"},
    "a_convtranspose3d_absent": {"up"},
    "a_wn_mix_all": {"up3d"},
    # torch.nn.utils.parametrizations renames the class (ParametrizedConv2d, ...)
    "parametrized_cfg_simple": {"conv1", "up", "fc"},
}
# The cases whose call raises: the words the error must contain.
EXPECTED_ERROR: dict[str, tuple[str, ...]] = {
    "reflect_only": ("no layer can be quantized", "conv_reflect", "'reflect'"),
    "convtranspose_1d_3d": ("no layer can be quantized", "no Linear, Conv2d or ConvTranspose2d"),
    "conv1d_conv3d": ("no layer can be quantized", "no Linear, Conv2d or ConvTranspose2d"),
    "conv3d_dilation": ("no layer can be quantized", "no Linear, Conv2d or ConvTranspose2d"),
    "shared_weight_conv1d": ("no layer can be quantized", "no Linear, Conv2d or ConvTranspose2d"),
}
REPORT_CASES = tuple(c for c in DEFAULT_CASES if c.error is None)
ERROR_CASES = tuple(c for c in DEFAULT_CASES if c.error is not None)
# every torch class whose modules the report must list, candidate or not
WEIGHT_LAYER_CLASSES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.LSTM,
    nn.GRU,
)


class _Outcomes:
    """Each case exported once per module: (report, config text) or the exception."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.done: dict[str, tuple[Report, str] | Exception] = {}

    def get(self, case: Case) -> tuple[Report, str] | Exception:
        if case.name not in self.done:
            out = self.folder / f"{case.name}.json"
            cfg = case.cfg_path()
            try:
                report = create_quant_retrain_config(
                    str(out), case.model(), case.inputs(), cfg and str(cfg), layer_types=case.layer_types
                )
                self.done[case.name] = (report, out.read_text(encoding="utf-8"))
            except Exception as err:
                self.done[case.name] = err
        return self.done[case.name]

    def report(self, case: Case) -> tuple[Report, str]:
        got = self.get(case)
        if isinstance(got, Exception):
            raise AssertionError(f"{case.name}: the call raised {got!r}")
        return got


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> _Outcomes:
    return _Outcomes(tmp_path_factory.mktemp("reports"))


def _ids(cases: tuple[Case, ...]) -> list[str]:
    return [c.name for c in cases]


def test_every_default_case_has_an_expectation() -> None:
    assert {c.name for c in REPORT_CASES} == set(EXPECTED_EXCLUDED)
    assert {c.name for c in ERROR_CASES} == set(EXPECTED_ERROR)


@pytest.mark.parametrize("case", REPORT_CASES, ids=_ids(REPORT_CASES))
def test_report_validates_against_its_schema(case: Case, outcomes: _Outcomes) -> None:
    report, _config = outcomes.report(case)
    document = json.loads(report.to_json())
    errors = sorted(
        e.json_path + ": " + e.message for e in schemas.validator(REPORT_SCHEMA).iter_errors(document)
    )
    assert errors == []
    assert [layer["name"] for layer in document["layers"]] == [r.name for r in report.layers]


@pytest.mark.parametrize("case", REPORT_CASES, ids=_ids(REPORT_CASES))
def test_excluded_layers_have_the_documented_reason(case: Case, outcomes: _Outcomes) -> None:
    report, _config = outcomes.report(case)
    expected = EXPECTED_EXCLUDED[case.name]
    assert set(report.excluded) == set(expected)
    for name, (code, check, words) in expected.items():
        record = report.record(name)
        assert (record.decision, record.code, record.check) == (EXCLUDED, code, check)
        assert record.reason.startswith(f"{name}: ")
        assert "\n" not in record.reason
        for word in words:
            assert word in record.reason


@pytest.mark.parametrize("case", REPORT_CASES, ids=_ids(REPORT_CASES))
def test_every_weight_layer_of_the_model_is_accounted_for(case: Case, outcomes: _Outcomes) -> None:
    report, _config = outcomes.report(case)
    seen = {r.name for r in report.layers}
    model = case.model()
    weight_layers = {name for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYER_CLASSES)}
    assert weight_layers <= seen
    not_candidates = {r.name for r in report.layers if r.decision == NOT_CANDIDATE}
    assert not_candidates == EXPECTED_NOT_CANDIDATE.get(case.name, set())
    for record in report.layers:
        assert record.decision in DECISIONS
        assert record.reason.strip()
        assert len(record.nodes) == len(record.op_types)


@pytest.mark.parametrize("case", REPORT_CASES, ids=_ids(REPORT_CASES))
def test_report_agrees_with_the_written_config(case: Case, outcomes: _Outcomes) -> None:
    report, config = outcomes.report(case)
    layers = {key: value for key, value in json.loads(config).items() if isinstance(value, dict)}
    in_config = [r.name for r in report.layers if r.decision in (QUANTIZE, SKIPPED)]
    assert list(layers) == in_config
    for name, entry in layers.items():
        assert entry["retrain_enable"] is (report.record(name).decision == QUANTIZE)


@pytest.mark.parametrize("case", REPORT_CASES, ids=_ids(REPORT_CASES))
def test_small_cin_advisory_follows_the_model(case: Case, outcomes: _Outcomes) -> None:
    report, _config = outcomes.report(case)
    model = dict(case.model().named_modules())
    for record in report.layers:
        module = model[record.name]
        small = isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.in_channels <= 16
        codes = [a.code for a in record.advisories]
        assert ("QS201" in codes) == (small and record.decision != NOT_CANDIDATE), record.name
        if small and record.decision != NOT_CANDIDATE:
            assert f"Cin = {module.in_channels}" in record.advisories[codes.index("QS201")].reason


@pytest.mark.parametrize("case", REPORT_CASES, ids=_ids(REPORT_CASES))
def test_summary_counts_the_records(case: Case, outcomes: _Outcomes) -> None:
    report, _config = outcomes.report(case)
    summary = report.to_dict()["summary"]
    decisions = Counter(r.decision for r in report.layers)
    assert summary["layers"] == len(report.layers)
    assert summary["decisions"] == {d: decisions[d] for d in DECISIONS}
    assert summary["excluded_by_check"] == dict(
        Counter(check for _c, check, _w in EXPECTED_EXCLUDED[case.name].values())
    )
    assert summary["line"] == report.summary_line()
    assert report.summary_line().startswith(f"{decisions[QUANTIZE]} layer")


@pytest.mark.parametrize("case", REPORT_CASES, ids=_ids(REPORT_CASES))
def test_provenance_names_the_export(case: Case, outcomes: _Outcomes) -> None:
    report, _config = outcomes.report(case)
    provenance = report.to_dict()["provenance"]
    assert provenance["exporter"] == "torchscript"  # small models and inputs: the TorchScript exporter first
    assert provenance["opset"] == TORCHSCRIPT_OPSET
    assert (
        "the TorchScript exporter's traced forward pass is the fastest export" in provenance["export_choice"]
    )
    assert provenance["torch_version"] == str(torch.__version__)
    assert provenance["input_shapes"] == [list(shape) for shape in case.shapes]


@pytest.mark.parametrize("case", ERROR_CASES, ids=_ids(ERROR_CASES))
def test_error_case_explains_itself(case: Case, outcomes: _Outcomes) -> None:
    got = outcomes.get(case)
    assert isinstance(got, NoQuantizableLayerError)
    assert "\n" not in str(got)
    for word in EXPECTED_ERROR[case.name]:
        assert word in str(got)


def test_simple_config_skips_and_notes_are_in_the_report(outcomes: _Outcomes) -> None:
    # cfg_simple skips conv2 by name and `up` by type, and its overrides replace the global settings of conv1
    # and fc: the skipped layers are "skipped by config", the replacements are QS301 advisories on the layer
    report, _config = outcomes.report(CASES_BY_NAME["cfg_simple"])
    assert set(report.skipped) == {"conv2", "up"}
    assert report.record("conv2").decision == SKIPPED
    # by name or by type, and which entry
    assert report.record("conv2").reason.endswith("disabled by the simple config (skip_layers 'conv2')")
    assert report.record("up").reason.endswith("(skip_layer_types 'ConvTranspose2d')")
    for name in ("conv1", "fc"):
        notes = [a for a in report.record(name).advisories if a.code == "QS301"]
        assert notes and all(a.reason.startswith(f"{name}: ") for a in notes)
    assert "override_layer_configs" in report.record("conv1").reason
    assert report.to_dict()["summary"]["decisions"][SKIPPED] == 2
    assert "2 skipped by config" in report.summary_line()
    errors = list(schemas.validator(REPORT_SCHEMA).iter_errors(json.loads(report.to_json())))
    assert errors == []


# ------------------------------------------------------------------ the text table, on hand-built graphs


def _small_report() -> Report:
    first, first_init = conv("stem", "x", "a", cin=3)
    second, second_init = conv("body.block_with_a_long_name", "a", "b", cin=32)
    head, head_init = gemm("head", "b", "y")
    exported = make_graph(
        [first, second, head],
        {**first_init, **second_init, **head_init},
        [
            module("stem", "Conv2d"),
            module("body", "Sequential", None),
            module("body.block_with_a_long_name", "Conv2d"),
            module("head", "Linear"),
            module("spare", "Linear"),
            module("seq_conv", "Conv1d"),
        ],
    )
    report, _text = analyze(exported)
    return report


def _columns(header: str) -> list[int]:
    return [
        header.index(title) for title in ("layer", "class", "ops", "weight", "decision", "code", "reason")
    ]


def test_text_table_columns_are_aligned() -> None:
    report = _small_report()
    lines = report.to_text().splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("layer"))
    starts = _columns(lines[header_at])
    rows = lines[header_at + 1 : header_at + 1 + len(report.layers)]
    for record, row in zip(report.layers, rows, strict=True):
        cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        assert cells[0] == record.name
        assert cells[1] == record.class_name
        assert cells[4] == record.decision
        assert cells[5].startswith(record.code or "")
        assert record.reason.endswith(cells[6])
        for a in starts[1:]:
            assert row[a - 2 : a] == "  "  # two spaces before every column


def test_text_lists_advisories_and_ends_with_the_summary() -> None:
    report = _small_report()
    text = report.to_text()
    assert report.record("stem").advisories
    assert "QS201 small-cin: stem: Cin = 3" in text
    assert text.splitlines()[-1] == report.summary_line()
    assert report.record("spare").decision == EXCLUDED
    assert report.record("seq_conv").decision == NOT_CANDIDATE


def test_colour_only_when_asked_and_alignment_unchanged() -> None:
    report = _small_report()
    plain = report.to_text()
    coloured = report.to_text(color=True)
    assert "\x1b[" not in plain
    assert "\x1b[" in coloured
    assert strip_ansi(coloured) == plain


def test_json_output_is_deterministic() -> None:
    assert _small_report().to_json() == _small_report().to_json()


def test_report_of_a_hand_built_graph_is_schema_valid() -> None:
    document: Any = json.loads(_small_report().to_json())
    assert list(schemas.validator(REPORT_SCHEMA).iter_errors(document)) == []
    document["layers"][0]["decision"] = "maybe"
    assert list(schemas.validator(REPORT_SCHEMA).iter_errors(document))
    document = json.loads(_small_report().to_json())
    document["layers"][0]["surprise"] = 1
    assert list(schemas.validator(REPORT_SCHEMA).iter_errors(document))


# ------------------------------------------------------------------ logging


def _record(name: str, *advisories: tuple[str, str]) -> LayerRecord:
    return LayerRecord(
        name,
        "Conv2d",
        "Conv2d",
        ("Conv",),
        (f"/{name}/Conv",),
        (8, 3, 3, 3),
        QUANTIZE,
        None,
        None,
        f"{name}: quantized",
        tuple(Advisory(code, check, f"{name}: {check}") for code, check in advisories),
    )


def test_log_is_one_summary_and_one_warning_per_advisory_kind(caplog: pytest.LogCaptureFixture) -> None:
    layers = (
        *(_record(f"conv{i}", ("QS201", "small-cin")) for i in range(8)),
        _record("conv8", ("QS201", "small-cin"), ("QS301", "config-note")),
    )
    note = Finding("QS301", "config-note", Severity.INFO, None, "skip_layers lists 'conv0' 2 times")
    report = Report(layers, (note,), Producer("dynamo"))
    with caplog.at_level(logging.INFO, logger="analyzer"):
        _log(report)
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in infos] == [report.summary_line()]
    assert len(warnings) == 2
    small_cin = next(r.getMessage() for r in warnings if r.getMessage().startswith("small-cin"))
    assert "on 9 layer(s)" in small_cin and "and 4 more" in small_cin
    config_note = next(r.getMessage() for r in warnings if r.getMessage().startswith("config-note"))
    assert "on 2 layer(s)" in config_note
