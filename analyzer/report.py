"""Decisions -> the analysis report: one record per layer the analysis saw, a summary and provenance.

The report accounts for every module that could have been a layer: every candidate (Linear, Conv2d,
ConvTranspose2d), every module that owns a Gemm/MatMul/Conv/ConvTranspose op (functional calls included),
and every Linear/Conv*/ConvTranspose* of any rank. Each gets one decision and a one-line reason; the JSON
form is described by `schemas/report.schema.json`.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from analyzer.checks import Finding, Severity
from analyzer.kinds.base import LayerOutcome
from analyzer.layers import GraphIndex, Layer, layer_int4_blocker
from graph import keys
from graph.ir import Producer

REPORT_SCHEMA = "report.schema.json"
REPORT_VERSION = 1

QUANTIZE = "quantize"
SKIPPED = "skipped by config"
EXCLUDED = "excluded"
NOT_CANDIDATE = "not a candidate"
DECISIONS = (QUANTIZE, SKIPPED, EXCLUDED, NOT_CANDIDATE)

CONFIG_NOTE_CODE = "QS301"
# an INT4 weight the config asked for, written as INT8 because it cannot be INT4-packed (SPEC section 8)
DOWNGRADE_CODE = "QS302"
DOWNGRADE_CHECK = "int4-downgrade"

# ANSI SGR colours per decision, used only when the caller asks for colour (the CLI does on a terminal)
_COLOURS = {QUANTIZE: "32", SKIPPED: "33", EXCLUDED: "31", NOT_CANDIDATE: "2"}
_BOLD = "1"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("quantscope")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.1.0"


@dataclass(frozen=True, slots=True)
class Advisory:
    """A note on a layer that does not change its decision (Cin <= 16, a surprising simple-config entry)."""

    code: str
    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class Inferred:
    """A fact about a layer that the analysed file does not say, and what QuantScope inferred it from.

    `fact` is `class`, `owner`, `name`, `order`, `call` or `tie`; `value` is None when the fact could not be
    established (the layer is then reported, never configured).
    """

    fact: str
    value: str | None
    basis: str

    def text(self) -> str:
        value = "not established" if self.value is None else self.value
        return f"{self.fact} {value} ({self.basis})" if self.fact != "order" else f"order {self.basis}"


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """What QuantScope decided about one module, and why.

    Attributes:
        name: the module's name in `named_modules()` ("" for the root module).
        class_name: `type(module).__name__`.
        layer_type: the quantizable type (`Linear`, `Conv2d`, ... a row of the layer-type table) when a
            candidate in the selected mode, else None.
        op_types: the op type of each quantizable op the module made, in graph order.
        nodes: the ONNX node name of each of those ops.
        weight_shape: the dims of the first op's weight initializer, None when no op has one.
        decision: one of `quantize`, `skipped by config`, `excluded`, `not a candidate`.
        code, check: the check behind the decision (None for `quantize` and `skipped by config`).
        reason: one line naming the layer and the value.
        advisories: notes that leave the decision as it is.
        inferred: facts the file does not say that the decision rests on (a file without a mapping).
        int4_packing: for a candidate whose weight cannot be INT4-packed, why (SPEC section 8); else None.
    """

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
    inferred: tuple[Inferred, ...] = ()
    int4_packing: str | None = None
    group: str | None = None  # distill: the layer's distill group, or why it is in none

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "class_name": self.class_name,
            "layer_type": self.layer_type,
            "op_types": list(self.op_types),
            "nodes": list(self.nodes),
            "weight_shape": None if self.weight_shape is None else list(self.weight_shape),
            "decision": self.decision,
            "code": self.code,
            "check": self.check,
            "reason": self.reason,
            "advisories": [{"code": a.code, "check": a.check, "reason": a.reason} for a in self.advisories],
            "inferred": [{"fact": i.fact, "value": i.value, "basis": i.basis} for i in self.inferred],
            "int4_packing": self.int4_packing,
        }
        if self.group is not None:
            out["group"] = self.group
        return out


@dataclass(frozen=True, slots=True)
class Report:
    """The analysis of one model: every layer's record, findings tied to no layer, and where it came from.

    Returned by every library call; `to_json()` gives the form `schemas/report.schema.json` describes and
    `to_text()` a table a person reads at a glance. `kind` is the kind of config (`retrain`, `ptq`,
    `distill`); `groups` the distill groups (layer names in config order), None for the other kinds.
    """

    layers: tuple[LayerRecord, ...]
    notes: tuple[Finding, ...]
    producer: Producer
    config_file: str | None = None
    kind: str = "retrain"
    groups: tuple[tuple[str, ...], ...] | None = None

    @property
    def quantized(self) -> tuple[str, ...]:
        """Names of the layers written with `retrain_enable: true`."""
        return tuple(r.name for r in self.layers if r.decision == QUANTIZE)

    @property
    def excluded(self) -> tuple[str, ...]:
        """Names of the candidate layers a check left out of the config."""
        return tuple(r.name for r in self.layers if r.decision == EXCLUDED)

    @property
    def skipped(self) -> tuple[str, ...]:
        """Names of the layers the simple config disabled (in the config with `retrain_enable: false`)."""
        return tuple(r.name for r in self.layers if r.decision == SKIPPED)

    def record(self, name: str) -> LayerRecord:
        """The record of layer `name` (KeyError when the analysis did not see it)."""
        for rec in self.layers:
            if rec.name == name:
                return rec
        raise KeyError(name)

    @property
    def summary(self) -> dict[str, Any]:
        """Counts by decision, by the check that excluded a layer and by advisory kind; the summary line."""
        decisions = Counter(r.decision for r in self.layers)
        excluded = Counter(r.check or "?" for r in self.layers if r.decision == EXCLUDED)
        advisories = Counter(a.check for r in self.layers for a in r.advisories)
        return {
            "layers": len(self.layers),
            "decisions": {d: decisions[d] for d in DECISIONS},
            "excluded_by_check": dict(sorted(excluded.items())),
            "advisories_by_check": dict(sorted(advisories.items())),
            "inferred_layers": self.inferred_layers,
            "line": self.summary_line(),
        }

    @property
    def inferred_layers(self) -> int:
        """How many layers rest on facts the file does not say (0 for a file with a mapping)."""
        return sum(1 for r in self.layers if r.inferred)

    def summary_line(self) -> str:
        """One line: N quantized, M excluded by reason, K skipped by config, J not candidates."""
        counts = Counter(r.decision for r in self.layers)
        reasons = Counter(r.check or "?" for r in self.layers if r.decision == EXCLUDED)
        text = (
            f"{counts[QUANTIZE]} {_plural(counts[QUANTIZE], 'layer')} quantized, {counts[EXCLUDED]} excluded"
        )
        if reasons:
            text += " (" + ", ".join(f"{name}: {n}" for name, n in sorted(reasons.items())) + ")"
        if counts[SKIPPED]:
            text += f", {counts[SKIPPED]} skipped by config"
        if counts[NOT_CANDIDATE]:
            text += (
                f", {counts[NOT_CANDIDATE]} not {_plural(counts[NOT_CANDIDATE], 'a candidate', 'candidates')}"
            )
        inferred = self.inferred_layers
        if inferred:
            text += f"; {inferred} {_plural(inferred, 'layer rests', 'layers rest')} on inferred facts"
        return text

    def provenance(self) -> dict[str, Any]:
        """Versions, exporter, opset and input shapes of the analysed graph."""
        p = self.producer
        return {
            "quantscope_version": _version(),
            "exporter": p.exporter,
            "opset": p.opset,
            "torch_version": p.torch_version,
            "onnx_version": p.onnx_version,
            "producer_name": p.producer_name,
            "producer_version": p.producer_version,
            "input_shapes": [list(shape) for shape in p.input_shapes],
            "export_choice": p.export_choice,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as Python objects, keys in a fixed order."""
        out: dict[str, Any] = {
            "version": REPORT_VERSION,
            "kind": self.kind,
            "provenance": self.provenance(),
            "config_file": self.config_file,
            "summary": self.summary,
            "layers": [r.to_dict() for r in self.layers],
            "notes": [
                {
                    "code": f.code,
                    "check": f.check,
                    "severity": f.severity.value,
                    "layer": f.layer,
                    "reason": f.reason,
                    "nodes": list(f.nodes),
                }
                for f in self.notes
            ],
        }
        if self.groups is not None:
            out["groups"] = [list(group) for group in self.groups]
        return out

    def to_json(self) -> str:
        """The report as JSON (2-space indent, deterministic), valid against `schemas/report.schema.json`."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_text(self, color: bool = False) -> str:
        """A table, one row per layer with aligned columns, then advisories, notes and the summary line.

        Args:
            color: colour the decision column and the headings with ANSI codes (for a terminal).
        """
        return "\n".join(_text_lines(self, color))

    def to_html(
        self,
        config: str | Mapping[str, Any] | None = None,
        *,
        simple_config: str | os.PathLike[str] | None = None,
        layer_types: Any = None,
    ) -> str:
        """One self-contained HTML page: the module tree with every decision, filters, search, per-layer details.

        Args:
            config: the config that was written (JSON text or object), whose entries show each layer's
                settings; by default the file `config_file` names, when there is one.
            simple_config: the simple config of the run (a path), shown with its contents.
            layer_types: the layer-type mode of the run (`"documented"`, `"amct-latest"` or class names).
        """
        from analyzer.html import report_html

        return report_html(self, config, simple_config, layer_types)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return one if n == 1 else (many or one + "s")


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and text else text


def strip_ansi(text: str) -> str:
    """`text` without ANSI colour codes."""
    return _ANSI.sub("", text)


def _local(reason: str, name: str) -> str:
    """A reason without the leading `name: ` of each of its parts (the table already names the layer)."""
    prefix = f"{name or '<root>'}: "
    return "; ".join(part.removeprefix(prefix) for part in reason.split("; "))


def _ops_cell(op_types: tuple[str, ...]) -> str:
    if not op_types:
        return "-"
    counts = Counter(op_types)
    return ",".join(f"{n}x{op}" if n > 1 else op for op, n in sorted(counts.items()))


def _shape_cell(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return "-"
    return "x".join("?" if d is None else str(d) for d in shape) or "scalar"


def _inputs_text(shapes: Iterable[tuple[int | None, ...]]) -> str:
    return ", ".join(_shape_cell(s) for s in shapes) or "unknown"


def _text_lines(report: Report, color: bool) -> Iterable[str]:
    p = report.producer
    opset = f"opset {p.opset}" if p.opset is not None else "opset unknown"
    kind = f" ({report.kind} config)" if report.kind != "retrain" else ""
    yield f"QuantScope {_version()}{kind}: {p.exporter} export, {opset}, inputs {_inputs_text(p.input_shapes)}"
    if p.export_choice:
        yield f"why {p.exporter}: {p.export_choice}"
    yield ""
    # the inferred column appears only when some layer rests on inference, so that the table of a file
    # that says everything stays as it was
    marked = any(r.inferred for r in report.layers)
    header = (
        "layer",
        "class",
        "ops",
        "weight",
        "decision",
        "code",
        *(("inferred",) if marked else ()),
        "reason",
    )
    rows = [
        (
            r.name or "<root>",
            r.class_name,
            _ops_cell(r.op_types),
            _shape_cell(r.weight_shape),
            r.decision,
            r.code or ("(" + ",".join(sorted({a.code for a in r.advisories})) + ")" if r.advisories else ""),
            *((",".join(dict.fromkeys(i.fact for i in r.inferred)) or "-",) if marked else ()),
            _local(r.reason, r.name),
        )
        for r in report.layers
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...], decision: str | None) -> str:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        if decision is not None:
            cells[4] = _paint(cells[4], _COLOURS[decision], color)
        else:
            cells = [_paint(cell, _BOLD, color) for cell in cells]
        last = _paint(row[-1], _BOLD, color) if decision is None else row[-1]
        return "  ".join([*cells, last]).rstrip()

    yield line(header, None)
    for rec, row in zip(report.layers, rows, strict=True):
        yield line(row, rec.decision)
    # advisories of the layers in the config; an excluded layer's are in the JSON form only
    advisories = [(r, a) for r in report.layers for a in r.advisories if r.decision in (QUANTIZE, SKIPPED)]
    if advisories:
        yield ""
        yield _paint("advisories (the layer keeps its decision):", _BOLD, color)
        for _rec, adv in advisories:
            yield f"  {adv.code} {adv.check}: {adv.reason}"
    if report.groups is not None:
        yield ""
        yield _paint("distill groups (distill_group, in config order):", _BOLD, color)
        for number, group in enumerate(report.groups):
            yield f"  [{number}] {' -> '.join(group)}"
        outside = [r for r in report.layers if r.group is not None and r.group.startswith("in no ")]
        for rec in outside:
            yield f"  {rec.name}: {rec.group}"
    inferred = [(r, i) for r in report.layers for i in r.inferred]
    if inferred:
        yield ""
        yield _paint(
            "inferred (the file does not say these facts; the layers above rest on them):", _BOLD, color
        )
        for rec, fact in inferred:
            yield f"  {rec.name or '<root>'}: {fact.text()}"
    if report.notes:
        yield ""
        yield _paint("notes:", _BOLD, color)
        for note in report.notes:
            yield f"  {note.code} {note.check}: {note.reason}"
    yield ""
    yield _paint(report.summary_line(), _BOLD, color)


def _record(
    layer: Layer,
    findings: list[Finding],
    setting: LayerOutcome | None,
    notes: Iterable[Finding],
    inferred: tuple[Inferred, ...] = (),
) -> LayerRecord:
    excluding = [f for f in findings if f.severity is Severity.EXCLUDE]
    info = [f for f in findings if f.severity is Severity.INFO]
    # a non-candidate's INFO finding is its reason; every other non-excluding finding is an advisory
    kept = [
        f
        for f in findings
        if f.severity is Severity.ADVISORY or (f.severity is Severity.INFO and layer.is_candidate)
    ]
    advisories = tuple(Advisory(f.code, f.check, f.reason) for f in (*kept, *notes))
    first_weight = next((op.weight_dims for op in layer.ops if op.weight is not None), None)
    common: dict[str, Any] = {
        "name": layer.name,
        "class_name": layer.class_name,
        "layer_type": layer.layer_type,
        "op_types": tuple(op.op_type for op in layer.ops),
        "nodes": tuple(op.onnx_name for op in layer.ops),
        "weight_shape": first_weight,
        "advisories": advisories,
        "inferred": inferred,
        "int4_packing": blocker.why if (blocker := layer_int4_blocker(layer)) is not None else None,
    }
    if not layer.is_candidate:
        first = info[0] if info else None
        return LayerRecord(
            **common,
            decision=NOT_CANDIDATE,
            code=first.code if first else None,
            check=first.check if first else None,
            reason=first.reason
            if first
            else f"{layer.name or '<root>'}: class {layer.class_name} is not a quantizable type",
        )
    if excluding:
        return LayerRecord(
            **common,
            decision=EXCLUDED,
            code=excluding[0].code,
            check=excluding[0].check,
            reason="; ".join(f.reason for f in excluding),
        )
    if setting is None:
        raise ValueError(f"no resolved setting for candidate layer {layer.name!r}, and no check excluded it")
    decision = QUANTIZE if setting.enabled else SKIPPED
    return LayerRecord(
        **common, decision=decision, code=None, check=None, reason=setting.reason, group=setting.group
    )


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
    settings: Mapping[str, LayerOutcome],
    config_notes: tuple[Finding, ...] = (),
    config_file: str | None = None,
    kind: str = "retrain",
    groups: tuple[tuple[str, ...], ...] | None = None,
) -> Report:
    """Turn the checks' findings and the resolved settings into one record per layer.

    Args:
        index: the indexed graph (its layers are the report's rows, in named_modules() order).
        findings: every check's findings.
        settings: the outcome of every layer that is in the config, by name (from the kind's `generate`).
        config_notes: notes on the config (QS301, fallbacks); those naming a layer become its advisories.
        config_file: where the config was written, if it was.
        kind: the kind of config (`retrain`, `ptq`, `distill`).
        groups: the distill groups, None for the other kinds.
    """
    by_layer: dict[str | None, list[Finding]] = {}
    for f in findings:
        by_layer.setdefault(f.layer, []).append(f)
    notes_by_layer: dict[str | None, list[Finding]] = {}
    for note in config_notes:
        notes_by_layer.setdefault(note.layer, []).append(note)
    inferred: dict[str, list[Inferred]] = {}
    for fact in index.graph.graph.get(keys.GRAPH_INFERENCES) or ():
        entry = Inferred(fact.fact, fact.value, fact.basis)
        found = inferred.setdefault(fact.module, [])
        if entry not in found:
            found.append(entry)
    records = tuple(
        _record(
            layer,
            by_layer.get(layer.name, []),
            settings.get(layer.name),
            notes_by_layer.get(layer.name, ()),
            tuple(inferred.get(layer.name, ())),
        )
        for layer in index.layers
    )
    layer_names = {layer.name for layer in index.layers}
    notes = tuple(f for f in (*findings, *config_notes) if f.layer is None or f.layer not in layer_names)
    producer = index.graph.graph.get(keys.GRAPH_PRODUCER) or Producer("unknown")
    return Report(records, notes, producer, config_file, kind, groups)
