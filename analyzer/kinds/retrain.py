"""The retrain kind: AMCT's `create_quant_retrain_config` (quantization-aware training), SPEC sections 1-9.

Its own parts live where they always did: the simple config in `analyzer.simple_config`
(`schemas/retrain_config.proto`), the resolution in `analyzer.resolve`, the JSON layout in `analyzer.emit`
and the hand-edited-config checks in `analyzer.validate`. This module ties them into a `Kind` row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analyzer.checks import Finding, Severity
from analyzer.emit import render
from analyzer.errors import ArgumentTypeError, ConfigError, NoQuantizableLayerError
from analyzer.kinds.base import Analysis, Generated, Kind, LayerOutcome, PathArg, names_shown
from analyzer.layers import GraphIndex, layer_int4_blocker
from analyzer.layertypes import INT4_PACK_KINDS, select_types
from analyzer.report import CONFIG_NOTE_CODE, DOWNGRADE_CHECK, DOWNGRADE_CODE
from analyzer.resolve import LayerSetting, QuantLayer, resolve
from schemas import CONFIG_SCHEMA

_SOURCES = {
    "default": "built-in defaults",
    "global": "the global settings of the simple config",
    "override_layer_types": "override_layer_types",
    "override_layer_configs": "override_layer_configs",
}


def layer_types_of(layer_types: Any) -> tuple[str, ...]:
    """The candidate types a `layer_types` argument selects (SPEC section 9).

    Raises:
        TypeError: not a string nor a collection of strings.
        ValueError: an unknown mode or type name; the message names it and the allowed ones.
    """
    try:
        return select_types(layer_types)
    except TypeError as err:
        raise ArgumentTypeError(str(err)) from None
    except ValueError as err:
        raise ConfigError(str(err)) from None


def load_simple(path: PathArg, types: tuple[str, ...]) -> Any:
    """Parse and check a `quant.cfg` (`AMCTRetrainConfig`) before the export."""
    from analyzer.simple_config import load_simple_config

    return load_simple_config(path, types)


def nothing_to_quantize(index: GraphIndex, excluded: Mapping[str, Sequence[Finding]]) -> str:
    """Why no layer can be quantized: each excluded layer's reason, else the weight-carrying modules seen."""
    if excluded:
        reasons = "; ".join(f.reason for found in excluded.values() for f in found)
        return f"no layer can be quantized ({reasons})"
    seen = [f"{layer.name or '<root>'} ({layer.class_name})" for layer in index.layers]
    detail = f"; seen: {names_shown(seen, 10)}"
    kinds = index.selected
    wanted = f"{', '.join(kinds[:-1])} or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
    return f"no layer can be quantized (no {wanted} module{detail if seen else ''})"


def _outcome(setting: LayerSetting) -> LayerOutcome:
    if not setting.retrain_enable:
        reason = (
            f"{setting.name}: retrain_enable false, disabled by the simple config "
            f"({' and '.join(setting.skipped_by) or 'skip lists'})"
        )
        return LayerOutcome(setting.name, False, reason, setting.skipped_by)
    data, weight = setting.data, setting.weight
    granularity = "per-channel" if weight.channel_wise else "per-tensor"
    source = _SOURCES.get(setting.source, setting.source)
    reason = f"{setting.name}: {data.dst_type} data / {weight.dst_type} weight, {weight.algo} {granularity} ({source})"
    return LayerOutcome(setting.name, True, reason)


def _downgrade_warnings(settings: Sequence[LayerSetting]) -> tuple[str, ...]:
    """One line per kind of INT4 -> INT8 downgrade (odd Cin, grouped conv), naming the layers."""
    lines = []
    for kind in INT4_PACK_KINDS:
        hit = [s for s in settings if s.downgraded is not None and s.downgraded.kind == kind]
        if hit:
            lines.append(
                f"{DOWNGRADE_CHECK} ({kind}) on {len(hit)} layer(s): {names_shown([s.name for s in hit])} "
                f"(e.g. {hit[0].downgrade_reason})"
            )
    return tuple(lines)


def generate(analysis: Analysis, simple: Any, options: Mapping[str, Any]) -> Generated:
    """Resolve the retrain settings of the candidates (SPEC 5) and render the JSON (SPEC 3).

    Raises:
        NoQuantizableLayerError: no layer passes the checks, or every layer is disabled.
        ConfigError: the simple config does not fit the model.
    """
    quantizable = [
        QuantLayer(layer.name, layer.layer_type, layer_int4_blocker(layer))
        for layer in analysis.candidates
        if layer.layer_type is not None
    ]
    if not quantizable:
        raise NoQuantizableLayerError(nothing_to_quantize(analysis.index, analysis.excluded))
    resolved = resolve(
        quantizable, simple, analysis.exclusion_reasons(), analysis.module_classes, analysis.types
    )  # raises when all are disabled
    text = render(resolved)
    config_notes = tuple(
        Finding(CONFIG_NOTE_CODE, "config-note", Severity.INFO, layer or None, note)
        for layer, note in resolved.notes
    )
    downgrades = tuple(
        Finding(DOWNGRADE_CODE, DOWNGRADE_CHECK, Severity.INFO, setting.name, setting.downgrade_reason)
        for setting in resolved.layers
        if setting.downgrade_reason is not None
    )
    return Generated(
        text=text,
        outcomes={setting.name: _outcome(setting) for setting in resolved.layers},
        notes=config_notes + downgrades,
        warnings=_downgrade_warnings(resolved.layers),
    )


def validate(text: str | bytes, report: Any, model: str) -> list[Any]:
    """The problems of a hand-edited retrain config (analyzer.validate)."""
    from analyzer.validate import validate_config

    return list(validate_config(text, report, model))


RETRAIN = Kind(
    name="retrain",
    call="create_quant_retrain_config",
    offline_call="create_quant_retrain_config_from_onnx",
    summary="quantization-aware training config (AMCT create_quant_retrain_config)",
    select_types=layer_types_of,
    load_simple=load_simple,
    generate=generate,
    validate_config=validate,
    config_schema=CONFIG_SCHEMA,
    takes_layer_types=True,
    logged_codes=frozenset({DOWNGRADE_CODE}),
)
