"""Resolved settings -> the JSON text AMCT writes (key order, 4-space indent, no space after ':'),
schema validation, and the atomic write."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import schemas
from analyzer.errors import ConfigError, OutputError
from analyzer.resolve import DataSetting, LayerSetting, ResolvedConfig, WeightSetting
from graph import files
from schemas import quick

logger = logging.getLogger(__name__)


def _data(setting: DataSetting) -> dict[str, Any]:
    out: dict[str, Any] = {"algo": setting.algo}
    if setting.clip_max is not None:
        out["clip_max"] = setting.clip_max
    if setting.clip_min is not None:
        out["clip_min"] = setting.clip_min
    if setting.fixed_min is not None:
        out["fixed_min"] = setting.fixed_min
    out["dst_type"] = setting.dst_type
    return out


def _weight(setting: WeightSetting) -> dict[str, Any]:
    if setting.algo == "ulq_retrain":  # AMCT writes ulq_retrain's keys in this order
        return {"algo": setting.algo, "dst_type": setting.dst_type, "channel_wise": setting.channel_wise}
    return {"algo": setting.algo, "channel_wise": setting.channel_wise, "dst_type": setting.dst_type}


def _layer(setting: LayerSetting) -> dict[str, Any]:
    return {
        "retrain_enable": setting.retrain_enable,
        "retrain_data_config": _data(setting.data),
        "retrain_weight_config": _weight(setting.weight),
    }


def config_object(resolved: ResolvedConfig) -> dict[str, Any]:
    """The config as an ordered dict, keys in the order AMCT writes them."""
    out: dict[str, Any] = {"version": 1}
    if resolved.fakequant_precision_mode == "FORCE_FP16_QUANT":
        out["fakequant_precision_mode"] = resolved.fakequant_precision_mode
    out["batch_num"] = resolved.batch_num
    for layer in resolved.layers:
        out[layer.name] = _layer(layer)
    return out


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per layer


def dumps(obj: Any) -> str:
    """AMCT's JSON formatting: 4-space indent, no space after ':', no trailing newline.

    The same text as `json.dumps(obj, indent=4, separators=(",", ":"))`, made faster for a config: with an
    indent, `json` formats in pure Python, and a big model has thousands of layers with a handful of distinct
    settings. So each distinct top-level value is formatted once (found by its compact text, which the C
    encoder writes) and indented one level by hand: JSON text never holds a raw newline inside a string.
    """
    if not isinstance(obj, dict) or not obj or not all(isinstance(key, str) for key in obj):
        return json.dumps(obj, indent=4, separators=(",", ":"))
    formatted: dict[str, str] = {}
    parts = []
    for key, value in obj.items():
        compact = _COMPACT.encode(value)
        text = formatted.get(compact)
        if text is None:
            text = json.dumps(value, indent=4, separators=(",", ":")).replace("\n", "\n    ")
            formatted[compact] = text
        parts.append(f"{json.dumps(key)}:{text}")
    return "{\n    " + ",\n    ".join(parts) + "\n}"


def schema_errors(obj: Any, schema: str = schemas.CONFIG_SCHEMA) -> list[str]:
    """Every violation of the config schema (`schema`, a file of schemas/ whose `additionalProperties` are the
    layers), each as '<json path>: <message>', sorted by path.

    Layers with equal settings are validated once and their errors reported for each of them, which gives
    the same list as validating every layer: a big model has thousands of layers and a handful of distinct
    settings, and validating each layer would cost more than the rest of the analysis.
    """
    groups = _equal_layers(obj, schema)
    reduced = obj if groups is None else {k: v for k, v in obj.items() if k not in groups or groups[k]}
    if quick.conforms(reduced, schemas.load_schema(schema)):
        return []  # certainly valid (the usual case for a generated config): no need to load jsonschema
    validator = schemas.validator(schema)
    if groups is None:
        return sorted(f"{error.json_path}: {error.message}" for error in validator.iter_errors(obj))
    out: list[str] = []
    for error in validator.iter_errors(reduced):
        path = error.json_path
        head = error.absolute_path[0] if error.absolute_path else None
        if isinstance(head, str) and groups.get(head):
            rest = path[len(_json_path(head)) :]
            out.extend(f"{_json_path(key)}{rest}: {error.message}" for key in groups[head])
        else:
            out.append(f"{path}: {error.message}")
    return sorted(out)


def _equal_layers(obj: Any, schema: str) -> dict[str, list[str]] | None:
    """Layer keys grouped by equal value: the first key of each group maps to every key of the group, the
    others to an empty list. None when `obj` is not a JSON object of JSON values (validated as it is)."""
    if not isinstance(obj, dict):
        return None
    fixed = schemas.load_schema(schema).get("properties", {})
    first: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or key in fixed:
            continue
        try:
            text = json.dumps(value, allow_nan=True)  # keeps key order, which error messages can show
        except (TypeError, ValueError):
            return None
        leader = first.setdefault(text, key)
        groups.setdefault(leader, []).append(key)
        if leader != key:
            groups[key] = []
    return groups


def _json_path(key: str) -> str:
    """The JSON path jsonschema gives a top-level key (`$.conv1`, or `$['a b']` for an irregular name)."""
    from jsonschema.exceptions import ValidationError

    return str(ValidationError("", path=[key]).json_path)


def render(resolved: ResolvedConfig) -> str:
    """Build the config JSON and validate it against the schema before anything is written."""
    obj = config_object(resolved)
    errors = schema_errors(obj)
    if errors:
        raise ConfigError("the generated config does not satisfy the config schema: " + "; ".join(errors))
    return dumps(obj)


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and a rename.

    Missing parent folders are created. On any failure the previous file (if any) is left untouched and no
    temporary file remains. Returns the path written.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write the config to {str(target)!r}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as err:  # ValueError: a NUL character in the path
        why = getattr(err, "strerror", None) or err
        raise OutputError(
            f"cannot create the folder {str(target.parent)!r} for {str(target)!r}: {why}"
        ) from err
    existed = target.exists()
    try:
        files.write_atomic(target, text)
    except OSError as err:
        raise OutputError(f"cannot write {str(target)!r}: {err.strerror or err}") from err
    if existed:
        logger.warning("%s already existed and was overwritten", target)
    return target
