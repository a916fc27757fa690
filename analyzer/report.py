"""Decisions -> the analysis report: one record per layer the analysis saw, a summary and provenance."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from analyzer.checks import Finding, Severity
from analyzer.layers import GraphIndex, Layer
from analyzer.resolve import LayerSetting
from graph.ir import Producer

QUANTIZE = "quantize"
SKIPPED = "skipped by config"
EXCLUDED = "excluded"
NOT_CANDIDATE = "not a candidate"
DECISIONS = (QUANTIZE, SKIPPED, EXCLUDED, NOT_CANDIDATE)


@dataclass(frozen=True, slots=True)
class Advisory:
    code: str
    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """What QuantScope decided about one module, and why."""

    name: str
    class_name: str
    layer_type: str | None
    op_types: tuple[str, ...]
    nodes: tuple[str, ...]
    weight_shape: tuple[int | None, ...] | None
    decision: str
    code: str | None
    check: str | None
    reason: str
    advisories: tuple[Advisory, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """The analysis of one model: every layer's record, the findings not tied to a layer, and where it came from.

    Returned by both library calls; `to_json()` gives the form `schemas/report.schema.json` describes and
    `to_text()` a table a person reads at a glance.
    """

    layers: tuple[LayerRecord, ...]
    notes: tuple[Finding, ...]
    producer: Producer
    config_file: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def quantized(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.layers if r.decision == QUANTIZE)

    @property
    def excluded(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.layers if r.decision == EXCLUDED)

    def record(self, name: str) -> LayerRecord:
        """The record of layer `name` (KeyError when the analysis did not see it)."""
        for rec in self.layers:
            if rec.name == name:
                return rec
        raise KeyError(name)

    def summary_line(self) -> str:
        """One line: N quantized, M excluded by reason, K skipped by config."""
        counts = Counter(r.decision for r in self.layers)
        reasons = Counter(r.check for r in self.layers if r.decision == EXCLUDED)
        text = f"{counts[QUANTIZE]} layers quantized, {counts[EXCLUDED]} excluded"
        if reasons:
            text += " (" + ", ".join(f"{name}: {n}" for name, n in sorted(reasons.items())) + ")"
        if counts[SKIPPED]:
            text += f", {counts[SKIPPED]} skipped by config"
        if counts[NOT_CANDIDATE]:
            text += f", {counts[NOT_CANDIDATE]} not candidates"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": dict(self.summary),
            "provenance": {k: v for k, v in asdict(self.producer).items()},
            "config_file": self.config_file,
            "layers": [asdict(r) for r in self.layers],
            "notes": [
                {"code": f.code, "check": f.check, "severity": f.severity.value, "layer": f.layer, "reason": f.reason}
                for f in self.notes
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """A plain-text table: one row per layer, aligned columns, then the summary line."""
        header = ("layer", "class", "ops", "decision", "code", "reason")
        rows = [
            (r.name or "<root>", r.class_name, ",".join(sorted(set(r.op_types))) or "-", r.decision, r.code or "", r.reason)
            for r in self.layers
        ]
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
        lines = []
        for row in [header, *rows]:
            cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
            lines.append("  ".join([*cells, str(row[-1])]).rstrip())
        for rec in self.layers:
            for adv in rec.advisories:
                lines.append(f"advisory {adv.code} {adv.check}: {adv.reason}")
        for note in self.notes:
            lines.append(f"note {note.code} {note.check}: {note.reason}")
        lines.append(self.summary_line())
        return "\n".join(lines)


def _record(layer: Layer, findings: list[Finding], setting: LayerSetting | None) -> LayerRecord:
    excluding = [f for f in findings if f.severity is Severity.EXCLUDE]
    info = [f for f in findings if f.severity is Severity.INFO]
    advisories = tuple(Advisory(f.code, f.check, f.reason) for f in findings if f.severity is Severity.ADVISORY)
    first_weight = next((op.weight_dims for op in layer.ops if op.weight is not None), None)
    common = dict(
        name=layer.name,
        class_name=layer.class_name,
        layer_type=layer.layer_type,
        op_types=tuple(op.op_type for op in layer.ops),
        nodes=tuple(op.onnx_name for op in layer.ops),
        weight_shape=first_weight,
        advisories=advisories,
    )
    if not layer.is_candidate:
        first = info[0] if info else None
        return LayerRecord(
            **common,  # type: ignore[arg-type]
            decision=NOT_CANDIDATE,
            code=first.code if first else None,
            check=first.check if first else None,
            reason=first.reason if first else f"class {layer.class_name} is not a quantizable type",
        )
    if excluding:
        return LayerRecord(
            **common,  # type: ignore[arg-type]
            decision=EXCLUDED,
            code=excluding[0].code,
            check=excluding[0].check,
            reason="; ".join(f.reason for f in excluding),
        )
    assert setting is not None
    if not setting.retrain_enable:
        return LayerRecord(**common, decision=SKIPPED, code=None, check=None, reason=f"{layer.name}: disabled by the simple config")  # type: ignore[arg-type]
    return LayerRecord(**common, decision=QUANTIZE, code=None, check=None, reason=f"{layer.name}: {layer.layer_type}, settings from {setting.source}")  # type: ignore[arg-type]


def excluding_findings(findings: tuple[Finding, ...]) -> dict[str, list[Finding]]:
    """Exclusion findings by layer name."""
    out: dict[str, list[Finding]] = {}
    for f in findings:
        if f.severity is Severity.EXCLUDE and f.layer is not None:
            out.setdefault(f.layer, []).append(f)
    return out


def build_report(
    index: GraphIndex,
    findings: tuple[Finding, ...],
    settings: Mapping[str, LayerSetting],
    config_notes: tuple[Finding, ...] = (),
    config_file: str | None = None,
) -> Report:
    by_layer: dict[str | None, list[Finding]] = {}
    for f in findings:
        by_layer.setdefault(f.layer, []).append(f)
    records = tuple(_record(layer, by_layer.get(layer.name, []), settings.get(layer.name)) for layer in index.layers)
    layer_names = {layer.name for layer in index.layers}
    notes = tuple(f for f in findings if f.layer is None or f.layer not in layer_names) + config_notes
    counts = Counter(r.decision for r in records)
    reasons = Counter(r.check for r in records if r.decision == EXCLUDED)
    summary = {
        "decisions": {d: counts[d] for d in DECISIONS},
        "excluded_by_check": dict(sorted(reasons.items())),  # type: ignore[type-var]
        "advisories_by_check": dict(sorted(Counter(a.check for r in records for a in r.advisories).items())),
    }
    producer = index.graph.graph.get("producer") or Producer("unknown")
    return Report(records, notes, producer, config_file, summary)
