"""What a kind of config is: the row of facts and the few functions each generator provides.

QuantScope writes three kinds of AMCT config over one analysis (STYLE.md "Variants of one thing"): the
quantization-aware-training config (`retrain`), the post-training calibration config (`ptq`) and the
distillation config (`distill`). The export, the graph, the module index, the shared checks, the report and the
CLI are the same for all of them; a kind is a `Kind` row naming its own parts:

- `select_types(layer_types)`: the candidate class names (section 2 / 9 / 10.2 / 11.2 of the SPEC);
- `load_simple(path, types)`: parse and check its simple config before the export (its own `.proto`);
- `generate(analysis, simple, options)`: resolve the settings of every candidate, render the JSON text (its own
  layout and key order) and say, per layer, what the report should record;
- `validate_config(text, report, model)`: the problems of a hand-edited config of this kind (CLI `validate`).

`analyzer.api` runs the shared pipeline and calls these; `analyzer.kinds.KINDS` is the table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analyzer.checks import REGISTRY, Check, Finding
from analyzer.errors import UnsupportedModelError
from analyzer.layers import GraphIndex, Layer

if TYPE_CHECKING:
    from analyzer.report import Report

PathArg = str | os.PathLike  # type: ignore[type-arg]


@dataclass(frozen=True, slots=True)
class Analysis:
    """The shared analysis of one model, as every kind's `generate` receives it.

    Attributes:
        index: the indexed graph (layers in named_modules() order, lookups for the checks).
        findings: every check's findings, in registry order.
        excluded: the excluding findings by layer name.
        types: the candidate types of the call.
    """

    index: GraphIndex
    findings: tuple[Finding, ...]
    excluded: Mapping[str, Sequence[Finding]]
    types: tuple[str, ...]

    @property
    def candidates(self) -> tuple[Layer, ...]:
        """The candidate layers no check excluded, in named_modules() order."""
        return tuple(
            layer
            for layer in self.index.layers
            if layer.layer_type is not None and layer.name not in self.excluded
        )

    @property
    def module_classes(self) -> dict[str, str]:
        """The class name of every module of the model (named_modules()), by name."""
        return {name: info.class_name for name, info in self.index.modules.items()}

    def exclusion_reasons(self) -> dict[str, str]:
        """Why each excluded layer is excluded: its findings' reasons joined in one line."""
        return {name: "; ".join(f.reason for f in found) for name, found in self.excluded.items()}


@dataclass(frozen=True, slots=True)
class LayerOutcome:
    """What a kind's config says about one candidate layer that is in it, for the report.

    Attributes:
        name: the layer name (a key of the config).
        enabled: quantized (`retrain_enable`/`quant_enable` true) or written disabled.
        reason: one line naming the layer: its settings and where they came from, or what disabled it.
        skipped_by: the entries that disabled it (`skip_layers 'conv2'`), empty when enabled.
        group: distill only: which distill group the layer is in, or why it is in none; None for other kinds.
    """

    name: str
    enabled: bool
    reason: str
    skipped_by: tuple[str, ...] = ()
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Generated:
    """What a kind's `generate` returns.

    Attributes:
        text: the config JSON text, validated against the kind's schema, ready to be written.
        outcomes: the outcome of every layer in the config, by name.
        notes: findings about the config (advisories such as automatic fallbacks, notes on the simple config);
            those naming a layer of the report become its advisories, the others the report's notes.
        warnings: extra log lines (WARNING), one per kind of silent change, logged after the summary.
        groups: the distill groups (lists of layer names in config order), None for the other kinds.
    """

    text: str
    outcomes: Mapping[str, LayerOutcome]
    notes: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()
    groups: tuple[tuple[str, ...], ...] | None = None


# the function types of a row
SelectTypes = Callable[[Any], tuple[str, ...]]
LoadSimple = Callable[[PathArg, tuple[str, ...]], Any]
Generate = Callable[[Analysis, Any, Mapping[str, Any]], Generated]
ValidateConfig = Callable[["str | bytes", "Report | None", str], list[Any]]


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of config: its facts and its own functions (a row of `analyzer.kinds.KINDS`).

    Attributes:
        name: "retrain", "ptq" or "distill" (the CLI's `--kind`).
        call: the AMCT-compatible library call's name.
        offline_call: the name of its offline twin (ONNX file + mapping).
        summary: one line for the CLI help.
        select_types: the `layer_types` argument -> the candidate class names (raises TypeError/ValueError).
        load_simple: parse and statically check a simple config (before any model work).
        generate: candidates + simple config + call options -> the JSON text and the report's outcomes.
        validate_config: the problems of a hand-edited config text (with the model's report when given).
        config_schema: the JSON Schema file (in `schemas/`) of its config.
        checks: the check registry it runs (the shared one unless it adds its own).
        takes_layer_types: whether the call accepts a `layer_types` argument (its CLI `--layer-types`).
        logged_codes: advisory codes the kind logs itself (through `Generated.warnings`), not one per layer.
    """

    name: str
    call: str
    offline_call: str
    summary: str
    select_types: SelectTypes
    load_simple: LoadSimple
    generate: Generate
    validate_config: ValidateConfig
    config_schema: str
    checks: tuple[Check, ...] = REGISTRY
    takes_layer_types: bool = False
    logged_codes: frozenset[str] = frozenset()


def names_shown(names: Sequence[str], most: int = 5) -> str:
    """The first `most` names of a log line or message, then "and N more"."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


# AMCT's own quantization modules: a model holding one cannot be configured again (SPEC 10.1 item 1; the distill call too, 11.1)
AMCT_OP_CLASSES = frozenset(
    {
        "IFMR",
        "HFMG",
        "Recorder",
        "AscendQuant",
        "AscendDeQuant",
        "RetrainQuant",
        "RNNRetrainQuant",
        "MarkedQuantizableModule",
        "QuantIdentity",
        "SelectiveMaskGen",
        "DMQBalancer",
        "Conv2dQAT",
        "LinearQAT",
        "LSTMQAT",
        "GRUQAT",
        "OFMRQuant",
        "ConvTranspose1dQAT",
    }
)


def check_amct_modules(modules: Iterable[tuple[str, str]]) -> None:
    """SPEC 10.1 item 1: a model that already holds AMCT's quantization modules is refused.

    Args:
        modules: (name, class name) of every module, in named_modules() order.

    Raises:
        UnsupportedModelError: (a RuntimeError) AMCT's message, naming each such module and its class.
    """
    found = {name: class_name for name, class_name in modules if class_name in AMCT_OP_CLASSES}
    if found:
        raise UnsupportedModelError(
            f"The model cannot be quantized for following quant layers are in the model {found!r}"
        )
