"""The ptq kind: AMCT's `create_quant_config` (post-training quantization, the calibration config), SPEC 10.

Where each PTQ rule lives:
- `analyzer.kinds.ptq_config`: the simple config (`AMCTConfig`, schemas/calibration_config_pytorch.proto);
- `analyzer.kinds.ptq_resolve`: the candidate types and their facts, every check and its message in AMCT's
  order, the resolution and the automatic fallbacks;
- `analyzer.kinds.ptq_emit`: the JSON layout (schemas/ptq_config.schema.json);
- this module: the row of `analyzer.kinds.KINDS`, the call's own argument checks, what the report says, and
  the checks of a hand-edited calibration config (CLI `validate --kind ptq`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from analyzer.checks import Finding, Severity
from analyzer.errors import ArgumentTypeError
from analyzer.kinds.base import (
    Analysis,
    Generated,
    Kind,
    LayerOutcome,
    PathArg,
    check_amct_modules,
    names_shown,
)
from analyzer.kinds.ptq_config import ADA, load_ptq_config
from analyzer.kinds.ptq_emit import render
from analyzer.kinds.ptq_resolve import (
    FALLBACK_CODES,
    FUSION_TYPES,
    GLOBAL_KEYS,
    PTQ_TYPE_TABLE,
    PTQ_TYPES,
    LayerParams,
    ModelView,
    PtqArgs,
    PtqLayer,
    resolve_arguments,
    resolve_simple,
)
from analyzer.layers import layer_int4_blocker, typed_ops
from analyzer.report import CONFIG_NOTE_CODE, EXCLUDED, NOT_CANDIDATE, QUANTIZE, SKIPPED, Report
from schemas import PTQ_CONFIG_SCHEMA

CALL = "create_quant_config"


def select_types(_layer_types: Any) -> tuple[str, ...]:
    """The calibration config's candidate types: fixed (SPEC 10.2)."""
    return PTQ_TYPES


def check_arguments(skip_layers: Any, batch_num: Any, activation_offset: Any, config_defination: Any) -> None:
    """SPEC 10.1 item 4, before the export (QuantScope checks sooner than AMCT, SPEC 10.7).

    Raises:
        TypeError: AMCT's message naming the argument and the type it must be (`batch_num=True` included).
    """
    expected = (
        ("skip_layers", skip_layers, skip_layers is None or isinstance(skip_layers, list), "list"),
        ("batch_num", batch_num, isinstance(batch_num, int) and not isinstance(batch_num, bool), "int"),
        ("activation_offset", activation_offset, isinstance(activation_offset, bool), "bool"),
        (
            "config_defination",
            config_defination,
            config_defination is None or isinstance(config_defination, (str, os.PathLike)),
            "str",
        ),
    )
    for name, value, good, type_name in expected:
        if not good:
            raise ArgumentTypeError(
                f"Func {CALL} argument {name} must be {type_name}, got {type(value).__name__}"
            )
    if skip_layers is not None and not all(isinstance(item, str) for item in skip_layers):
        raise ArgumentTypeError(f"Func {CALL} argument skip_layers must be a list of str (layer names)")


def options(skip_layers: list[str] | None, batch_num: int, activation_offset: bool) -> dict[str, Any]:
    """The `options` of `generate` for a call's own arguments."""
    return {
        "skip_layers": tuple(skip_layers or ()),
        "batch_num": batch_num,
        "activation_offset": activation_offset,
    }


def _model_view(analysis: Analysis) -> ModelView:
    layers = []
    for layer in analysis.candidates:
        assert layer.layer_type is not None
        ops = typed_ops(layer)
        layers.append(
            PtqLayer(
                layer.name,
                layer.layer_type,
                has_bias=ops[0].bias is not None if ops else True,
                int4_blocker=layer_int4_blocker(layer),
            )
        )
    return ModelView(analysis.module_classes, tuple(layers), analysis.exclusion_reasons())


def _outcome(params: LayerParams) -> LayerOutcome:
    name = params.name
    if not params.quant_enable:
        return LayerOutcome(
            name, False, f"{name}: quant_enable false ({' and '.join(params.skipped_by)})", params.skipped_by
        )
    act = params.act
    text = f"{act.algo} INT{act.num_bits} {'asymmetric' if act.asymmetric else 'symmetric'} activations"
    weight = params.weight
    if weight is None:
        text += ", weights not quantized"
    else:
        granularity = "per-channel" if weight.channel_wise else "per-tensor"
        text += f", {weight.algo} INT{weight.num_bits} {granularity} weights"
    if params.dmq is not None:
        text += f", dmq_balancer {params.dmq}"
    return LayerOutcome(name, True, f"{name}: {text} ({params.source})")


def _fallback_warnings(layers: Iterable[LayerParams]) -> tuple[str, ...]:
    """One log line per kind of silent change, naming the layers (the report has one advisory per layer)."""
    hits: dict[str, list[tuple[str, str, str]]] = {}
    for params in sorted(layers, key=lambda p: p.name):
        for fallback in params.fallbacks:
            hits.setdefault(fallback.code, []).append((params.name, fallback.check, fallback.reason))
    lines = []
    for code in FALLBACK_CODES:
        if code in hits:
            found = hits[code]
            names = [name for name, _, _ in found]
            lines.append(f"{found[0][1]} on {len(found)} layer(s): {names_shown(names)} (e.g. {found[0][2]})")
    return tuple(lines)


def generate(analysis: Analysis, simple: Any, opts: Mapping[str, Any]) -> Generated:
    """The calibration config of the candidates (SPEC 10.3-10.6) and the report's records.

    Raises:
        UnsupportedModelError: the model holds AMCT's own quantization modules.
        ConfigError: the arguments or the simple config fail one of AMCT's checks (its message).
        NoQuantizableLayerError: no candidate, or the skips leave none.
    """
    check_amct_modules(analysis.module_classes.items())
    model = _model_view(analysis)
    args = PtqArgs(
        skip_layers=tuple(opts.get("skip_layers", ())),
        batch_num=int(opts.get("batch_num", 1)),
        activation_offset=bool(opts.get("activation_offset", True)),
    )
    resolved = resolve_simple(model, simple, args) if simple is not None else resolve_arguments(model, args)
    notes = tuple(
        Finding(fallback.code, fallback.check, Severity.INFO, params.name, fallback.reason)
        for params in resolved.layers
        for fallback in params.fallbacks
    ) + tuple(
        Finding(CONFIG_NOTE_CODE, "config-note", Severity.INFO, layer or None, text)
        for layer, text in resolved.notes
    )
    return Generated(
        text=render(resolved),
        outcomes={params.name: _outcome(params) for params in resolved.layers},
        notes=notes,
        warnings=_fallback_warnings(resolved.layers),
    )


# ------------------------------------------------------------------------------ a hand-edited config (CLI)

TOP_LEVEL_KEYS = frozenset(GLOBAL_KEYS)


def _model_problems(obj: Any, report: Report, model: str) -> Iterator[Any]:
    from analyzer.validate import (
        CHANNEL_WISE_LINEAR,
        EXCLUDED_LAYER,
        INT4_UNPACKABLE,
        NOT_QUANTIZABLE,
        UNKNOWN_LAYER,
        Problem,
        json_path,
    )

    records = {record.name: record for record in report.layers}
    for name in obj.get("skip_fusion_layers", []) if isinstance(obj.get("skip_fusion_layers"), list) else []:
        record = records.get(name)
        if isinstance(name, str) and (record is None or record.class_name not in FUSION_TYPES):
            what = f"a {record.class_name}" if record is not None else f"not a layer of {model}"
            yield Problem(
                json_path(["skip_fusion_layers"]),
                NOT_QUANTIZABLE,
                f"{name!r} is {what}; skip_fusion_layers takes {', '.join(FUSION_TYPES)} layers",
            )
    for name, layer in obj.items():
        if name in TOP_LEVEL_KEYS:
            continue
        layer = layer if isinstance(layer, dict) else {}
        record = records.get(name)
        if record is None:
            yield Problem(json_path([name]), UNKNOWN_LAYER, f"no quantizable layer named {name!r} in {model}")
            continue
        if record.decision == NOT_CANDIDATE:
            yield Problem(
                json_path([name]), NOT_QUANTIZABLE, f"{name!r} is not a quantizable layer: {record.reason}"
            )
            continue
        if record.decision == EXCLUDED:
            yield Problem(
                json_path([name]),
                EXCLUDED_LAYER,
                f"{name!r} is added back, but the analysis excluded it ({record.code} {record.check}: {record.reason})",
            )
            continue
        if record.decision not in (QUANTIZE, SKIPPED) or record.layer_type not in PTQ_TYPE_TABLE:
            continue
        row = PTQ_TYPE_TABLE[record.layer_type]
        act, weight = layer.get("activation_quant_params"), layer.get("weight_quant_params")
        act = act if isinstance(act, dict) else {}
        weight = weight if isinstance(weight, dict) else {}
        path = [name, "weight_quant_params"]
        if weight.get("channel_wise") is True and not row.channel_wise:
            yield Problem(
                json_path([*path, "channel_wise"]),
                CHANNEL_WISE_LINEAR,
                f"layer {name!r} is a {record.layer_type}: channel_wise must be false",
            )
        if weight.get("num_bits") in (6, 7) and not row.bits_6_7:
            yield Problem(
                json_path([*path, "num_bits"]),
                "weight-bits",
                f"layer {name!r}: only Conv2d takes 6/7-bit weights",
            )
        if weight.get("num_bits") == 4 and record.int4_packing is not None:
            yield Problem(
                json_path([*path, "num_bits"]),
                INT4_UNPACKABLE,
                f"layer {name!r}: weight INT4 cannot be packed ({record.int4_packing}); AMCT needs 8 here",
            )
        if weight.get("wts_algo") == ADA and not row.ada:
            yield Problem(
                json_path([*path, "wts_algo"]),
                "ada-type",
                f"layer {name!r}: ada_quantize is for Conv2d, ConvTranspose2d and Linear",
            )
        act_path = [name, "activation_quant_params"]
        if act.get("num_bits") == 16 and not row.int16:
            yield Problem(
                json_path([*act_path, "num_bits"]),
                "int16-type",
                f"layer {name!r}: a {record.layer_type} takes no INT16 activations",
            )
        if act.get("asymmetric") is True and row.symmetric_only:
            yield Problem(
                json_path([*act_path, "asymmetric"]),
                "symmetric-only",
                f"layer {name!r}: a {record.layer_type} is symmetric only",
            )


def validate(text: str | bytes, report: Any, model: str) -> list[Any]:
    """The problems of a hand-edited calibration config: JSON syntax and repeated keys, the schema, and (with
    the model's report) layer names and the per-type rules of SPEC 10.6."""
    from analyzer.validate import parse, schema_problems

    obj, problems = parse(text)
    if obj is None:
        return problems
    problems.extend(schema_problems(obj, PTQ_CONFIG_SCHEMA))
    if report is not None and isinstance(obj, dict):
        problems.extend(_model_problems(obj, report, model))
    return sorted(set(problems))


def _load(path: PathArg, types: tuple[str, ...]) -> Any:
    return load_ptq_config(path, types)


PTQ = Kind(
    name="ptq",
    call=CALL,
    offline_call=f"{CALL}_from_onnx",
    summary="post-training calibration config (AMCT create_quant_config)",
    select_types=select_types,
    load_simple=_load,
    generate=generate,
    validate_config=validate,
    config_schema=PTQ_CONFIG_SCHEMA,
    logged_codes=frozenset(FALLBACK_CODES),
)
