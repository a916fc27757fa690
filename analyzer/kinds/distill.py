"""The distillation config (`create_distill_config`, SPEC 11): candidates, groups, settings, JSON.

Its own parts over the shared analysis: the candidate types (Conv2d, Linear), the simple config and its
resolution (`analyzer.kinds.distill_config`), and the distill groups read from the graph (`analyzer.groups`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from analyzer import emit
from analyzer.checks import Finding, Severity
from analyzer.errors import ConfigError, InputFileError, NoQuantizableLayerError
from analyzer.groups import find_groups, folded_batchnorm, unknown_classes
from analyzer.kinds.base import (
    Analysis,
    Generated,
    Kind,
    LayerOutcome,
    PathArg,
    check_amct_modules,
    names_shown,
)
from analyzer.kinds.distill_config import (
    DISTILL_TYPES,
    TOP_LEVEL,
    DistillSetting,
    DistillSimple,
    check_enabled,
    config_object,
    groups_by_layer,
    load_distill_config,
    resolve_distill,
    setting_reason,
)
from analyzer.layers import GraphIndex, Layer, typed_ops

GROUP_CODE = "QS401"  # the report's note on a candidate's distill group (or why it is in none)
GROUP_CHECK = "distill-group"
LEFT_OUT_CODE = "QS402"  # a functional activation left out of a group (SPEC 11.6)
LEFT_OUT_CHECK = "functional-activation"
NO_CANDIDATES = "Not found supported distill quant layers in model."
DISTILL_SCHEMA = "distill_config.schema.json"


def distill_candidates(index: GraphIndex, excluded: Mapping[str, Sequence[Finding]]) -> tuple[Layer, ...]:
    """The Conv2d/Linear layers no shared check excluded, in named_modules() order (SPEC 11.2)."""
    return tuple(
        layer
        for layer in index.layers
        if layer.layer_type in DISTILL_TYPES and layer.name not in excluded and typed_ops(layer)
    )


def select_types(layer_types: Any) -> tuple[str, ...]:
    """The distill candidates are fixed (SPEC 11.2); the call takes no `layer_types`."""
    del layer_types
    return DISTILL_TYPES


def load_simple(path: PathArg, types: tuple[str, ...]) -> DistillSimple:
    """Parse a distill simple config before the export; a missing file is AMCT's FileNotFoundError."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"Not found config_defination file {os.path.realpath(name)}")
    return load_distill_config(path, types)


def _outcome(setting: DistillSetting, group_line: str | None) -> LayerOutcome:
    skipped_by = () if setting.enabled else (setting.source,)
    return LayerOutcome(setting.name, setting.enabled, setting_reason(setting), skipped_by, group_line)


def generate(analysis: Analysis, simple: DistillSimple | None, options: Mapping[str, Any]) -> Generated:
    """Resolve the settings, find the groups and render the JSON, with AMCT's checks in AMCT's order.

    Raises:
        NoQuantizableLayerError: no candidate (AMCT's message), or every layer skipped.
        ConfigError: the simple config does not fit the model, or a user group is invalid.
        InputFileError: the graph cannot show the groups (BatchNorm folded, module classes not in the file).
    """
    del options
    check_amct_modules(analysis.module_classes.items())  # a file read offline: the mapping lists them
    index = analysis.index
    candidates = distill_candidates(index, analysis.excluded)
    if not candidates:
        raise NoQuantizableLayerError(NO_CANDIDATES)
    unreadable = folded_batchnorm(index.graph, index.modules) or unknown_classes(index.graph, index.modules)
    if unreadable is not None:
        raise InputFileError(unreadable)
    resolved = resolve_distill([(layer.name, str(layer.layer_type)) for layer in candidates], simple)
    starts = {layer.name: typed_ops(layer)[0].node for layer in candidates}
    groups = find_groups(
        index.graph,
        index.modules,
        starts,
        resolved.group_size,
        simple.user_groups if simple is not None else (),
    )
    check_enabled(resolved)
    lines = groups_by_layer(groups)
    notes = [
        Finding(GROUP_CODE, GROUP_CHECK, Severity.INFO, name, f"{name}: {lines[name]}")
        for name in (layer.name for layer in candidates)
        if name in groups.why_none
    ]
    left_out = [
        f"the functional {item.op_type} op {item.op} after {item.after} joins distill_group[{item.group}] but has "
        "no module: left out of the group (AMCT writes null there, which its create_distill_model rejects)"
        for item in groups.left_out
    ]
    notes += [Finding(LEFT_OUT_CODE, LEFT_OUT_CHECK, Severity.INFO, None, line) for line in left_out]
    notes += [
        Finding(
            GROUP_CODE,
            GROUP_CHECK,
            Severity.INFO,
            None,
            f"the activation {name} follows a user distill group and is in no group",
        )
        for name in groups.stray_activations
    ]
    warnings = (
        [f"{len(groups.why_none)} distill layer(s) in no group: {names_shown(sorted(groups.why_none))}"]
        if groups.why_none
        else []
    )
    if left_out:
        warnings.append(
            f"{len(left_out)} functional activation(s) left out of their groups (e.g. {left_out[0]})"
        )
    obj = config_object(resolved, groups)
    errors = emit.schema_errors(obj, DISTILL_SCHEMA)
    if errors:
        raise ConfigError("the generated distill config does not satisfy its schema: " + "; ".join(errors))
    return Generated(
        text=emit.dumps(obj),
        outcomes={s.name: _outcome(s, lines.get(s.name)) for s in resolved.layers},
        notes=tuple(notes),
        warnings=tuple(warnings),
        groups=groups.groups,
    )


def schema_errors(text: str | bytes) -> list[str]:
    """The distill schema's complaints about a config text (empty when it fits), as '<json path>: <message>'."""
    import json

    try:
        obj = json.loads(text)
    except ValueError as err:
        return [f"not JSON: {err}"]
    return emit.schema_errors(obj, DISTILL_SCHEMA)


def validate(text: str | bytes, report: Any, model: str) -> list[Any]:
    """The problems of a hand-edited distill config: its schema, then (with the model's report) layers that are
    not its Conv2d/Linear candidates, candidates missing, and group members the model does not have."""
    import json

    problems: list[Any] = schema_errors(text)
    if problems or report is None:
        return problems
    obj = json.loads(text)
    layers = {key for key in obj if key not in TOP_LEVEL}
    candidates = {r.name for r in report.layers if r.layer_type in DISTILL_TYPES and r.decision != "excluded"}
    problems += [f"{name}: not a distill layer of {model}" for name in sorted(layers - candidates)]
    problems += [
        f"{name}: a distill layer of {model} missing from the config" for name in sorted(candidates - layers)
    ]
    for name in sorted(layers & candidates):
        weight = obj[name].get("distill_weight_config", {})
        kind = next(r.layer_type for r in report.layers if r.name == name)
        if kind == "Linear" and weight.get("channel_wise") is True:
            problems.append(
                f"{name}/distill_weight_config/channel_wise: true on a Linear (AMCT: fc layer can not be channewised)"
            )
    return problems


DISTILL = Kind(
    name="distill",
    call="create_distill_config",
    offline_call="create_distill_config_from_onnx",
    summary="distillation QAT config with its distill groups (AMCT create_distill_config)",
    select_types=select_types,
    load_simple=load_simple,
    generate=generate,
    validate_config=validate,
    config_schema=DISTILL_SCHEMA,
    takes_layer_types=False,
    logged_codes=frozenset({GROUP_CODE, LEFT_OUT_CODE}),
)
