"""A hand-edited config JSON -> every problem in it, each with its JSON path.

Three layers of checking, each independent of the next so that one run lists everything:
1. parsing: JSON syntax, and no key repeated in an object (AMCT rejects repeated keys);
2. the config schema (`schemas/config.schema.json`, the one every generated config satisfies) and the value
   rules the schema cannot express (allowed data/weight `dst_type` pairs, no INT4 activations);
3. given the model's analysis report: every layer key names a quantizable layer of the model, no layer the
   analysis excluded is added back, `channel_wise` is false on every Linear, and no layer whose weight cannot
   be INT4-packed (groups > 1, odd Cin; SPEC section 8) asks for INT4 weights.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.emit import schema_errors
from analyzer.report import EXCLUDED, NOT_CANDIDATE, QUANTIZE, SKIPPED, Report
from schemas import CONFIG_SCHEMA

TOP_LEVEL_KEYS = frozenset({"version", "batch_num", "fakequant_precision_mode"})
# (data dst_type, weight dst_type) pairs AMCT accepts; INT4 activations are rejected at generation time
ALLOWED_DST_PAIRS = frozenset({("INT8", "INT8"), ("INT16", "INT8"), ("INT8", "INT4")})

# kinds of problem, as printed
SYNTAX = "syntax"
DUPLICATE_KEY = "duplicate-key"
SCHEMA = "schema"
DST_TYPE = "dst-type"
UNKNOWN_LAYER = "unknown-layer"
NOT_QUANTIZABLE = "not-quantizable"
EXCLUDED_LAYER = "excluded-layer"
CHANNEL_WISE_LINEAR = "channel-wise-linear"
INT4_UNPACKABLE = "int4-unpackable"
KINDS = (
    SYNTAX,
    DUPLICATE_KEY,
    SCHEMA,
    DST_TYPE,
    UNKNOWN_LAYER,
    NOT_QUANTIZABLE,
    EXCLUDED_LAYER,
    CHANNEL_WISE_LINEAR,
    INT4_UNPACKABLE,
)

_PROPERTY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")  # the names jsonschema writes as `.name` in a JSON path
_PATH_PREFIX = re.compile(r"^\$(?:\.[a-zA-Z][a-zA-Z0-9_]*|\[\d+\]|\['(?:[^'\\]|\\.)*'\])*")


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One mistake in a config: where (a JSON path, as jsonschema writes it), what kind, and a message."""

    path: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.message}"


def json_path(parts: Sequence[str | int]) -> str:
    """The JSON path of `parts` in the notation jsonschema uses (`$.a['b.c'][0]`)."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PROPERTY.match(part):
            path += "." + part
        else:
            path += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return path


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys that appeared more than once in the text."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    repeated = []
    for key, value in pairs:
        if key in obj and key not in repeated:
            repeated.append(key)
        obj[key] = value
    obj.duplicates = tuple(repeated)
    return obj


class _NotJson(ValueError):
    """A token Python's json module accepts but JSON does not (NaN, Infinity, a number beyond a double)."""


def _constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _number(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotJson(f"the number {text[:40]} is out of range")
    return value


def parse(text: str | bytes) -> tuple[Any, list[Problem]]:
    """Parse config JSON; return the object (None when unparsable) and the syntax / duplicate-key problems.

    Read as AMCT reads it (`json.load` on a UTF-8 text file), minus what JSON itself forbids: bytes must be
    UTF-8 (no UTF-16, no byte order mark), and NaN, Infinity and out-of-range numbers are syntax errors.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            return None, [Problem("$", SYNTAX, f"not UTF-8 text (byte {err.start}: {err.reason})")]
    try:
        obj = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_number)
    except json.JSONDecodeError as err:
        return None, [Problem("$", SYNTAX, f"line {err.lineno} column {err.colno}: {err.msg}")]
    except RecursionError:
        return None, [Problem("$", SYNTAX, "nested too deeply")]
    except ValueError as err:  # _NotJson, or an integer of more than 4300 digits
        return None, [Problem("$", SYNTAX, str(err).split(";")[0])]
    return obj, list(_duplicates(obj, []))


def _duplicates(value: Any, parts: list[str | int]) -> Iterator[Problem]:
    if isinstance(value, _Object):
        for key in value.duplicates:
            yield Problem(
                json_path([*parts, key]),
                DUPLICATE_KEY,
                f"key {key!r} appears more than once (AMCT rejects it)",
            )
        for key, child in value.items():
            yield from _duplicates(child, [*parts, key])
    elif isinstance(value, list):
        for position, child in enumerate(value):
            yield from _duplicates(child, [*parts, position])


_PATH_PART = re.compile(r"\.([a-zA-Z][a-zA-Z0-9_]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")
_CONST = re.compile(r"^(.*) was expected$")
_ENUM = re.compile(r"^(.*) is not one of \[(.*)\]$")
_MISSING = object()


def _at(obj: Any, path: str) -> Any:
    """The value at a JSON path written as jsonschema writes it, or `_MISSING`."""
    value = obj
    for key, index, quoted in _PATH_PART.findall(path[1:]):
        if index:
            if not isinstance(value, list) or int(index) >= len(value):
                return _MISSING
            value = value[int(index)]
            continue
        name = key or re.sub(r"\\(.)", r"\1", quoted)
        if not isinstance(value, dict) or name not in value:
            return _MISSING
        value = value[name]
    return value


def _with_value(obj: Any, path: str, message: str) -> str:
    """A const/enum violation reworded to name the wrong value as well as the allowed ones
    (`'magic' is not allowed; expected 'ulq_quantize'`)."""
    const = _CONST.match(message)
    enum = _ENUM.match(message)
    if not const and not enum:
        return message
    value = _at(obj, path)
    if value is _MISSING:
        return message
    shown = json.dumps(value) if not isinstance(value, str) else repr(value)
    if const:
        return f"{shown} is not allowed; expected {const.group(1)}"
    assert enum is not None
    return f"{shown} is not allowed; expected one of {enum.group(2)}"


def schema_problems(obj: Any, schema: str = CONFIG_SCHEMA) -> Iterator[Problem]:
    """The violations of `schema` (a config schema of schemas/), each with its JSON path and the wrong value."""
    for error in schema_errors(obj, schema):
        match = _PATH_PREFIX.match(error)
        path = match.group(0) if match else "$"
        message = error[len(path) + 2 :] if error.startswith(path + ": ") else error
        yield Problem(path, SCHEMA, _with_value(obj, path, message))


def _layers(obj: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The layer entries of a config object (every top-level key but the global ones)."""
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        if key not in TOP_LEVEL_KEYS:
            yield key, value if isinstance(value, dict) else {}


def _dst_problems(obj: Any) -> Iterator[Problem]:
    for name, layer in _layers(obj):
        data, weight = layer.get("retrain_data_config"), layer.get("retrain_weight_config")
        if not isinstance(data, dict) or not isinstance(weight, dict):
            continue
        act, wts = data.get("dst_type", "INT8"), weight.get("dst_type", "INT8")
        if not isinstance(act, str) or not isinstance(wts, str):
            continue  # the schema reports it
        path = json_path([name, "retrain_data_config", "dst_type"])
        if act == "INT4":
            yield Problem(
                path, DST_TYPE, f"layer {name!r}: INT4 quantization aware training is not supported"
            )
        elif (act, wts) not in ALLOWED_DST_PAIRS and act in {"INT8", "INT16"} and wts in {"INT4", "INT8"}:
            allowed = ", ".join(f"{a}/{w}" for a, w in sorted(ALLOWED_DST_PAIRS))
            yield Problem(
                path,
                DST_TYPE,
                f"layer {name!r}: data/weight dst_type {act}/{wts} is not an allowed pair ({allowed})",
            )


def _model_problems(obj: Any, report: Report, model: str) -> Iterator[Problem]:
    records = {record.name: record for record in report.layers}
    configurable = sorted(r.name for r in report.layers if r.decision in (QUANTIZE, SKIPPED))
    for name, layer in _layers(obj):
        path = json_path([name])
        record = records.get(name)
        if record is None:
            close = difflib.get_close_matches(name, configurable, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            yield Problem(path, UNKNOWN_LAYER, f"no layer named {name!r} in {model}{hint}")
            continue
        if record.decision == NOT_CANDIDATE:
            yield Problem(path, NOT_QUANTIZABLE, f"{name!r} is not a quantizable layer: {record.reason}")
            continue
        if record.decision == EXCLUDED:
            enabled = layer.get("retrain_enable") is True
            verb = "re-enabled" if enabled else "added back"
            yield Problem(
                path,
                EXCLUDED_LAYER,
                f"{name!r} is {verb}, but the analysis excluded it "
                f"({record.code} {record.check}: {record.reason})",
            )
            continue
        weight = layer.get("retrain_weight_config")
        if record.layer_type == "Linear" and isinstance(weight, dict) and weight.get("channel_wise") is True:
            yield Problem(
                json_path([name, "retrain_weight_config", "channel_wise"]),
                CHANNEL_WISE_LINEAR,
                f"layer {name!r} is a Linear: channel_wise must be false",
            )
        if record.int4_packing is not None and isinstance(weight, dict) and weight.get("dst_type") == "INT4":
            yield Problem(
                json_path([name, "retrain_weight_config", "dst_type"]),
                INT4_UNPACKABLE,
                f"layer {name!r}: weight INT4 cannot be packed ({record.int4_packing}); AMCT needs INT8 here",
            )


def validate_config(
    text: str | bytes, report: Report | None = None, model: str = "the model"
) -> list[Problem]:
    """Every problem of a config JSON text, sorted by JSON path.

    Args:
        text: the config file's content.
        report: the analysis report of the model the config is for; without it only the file is checked.
        model: how messages name the model (e.g. its file name).
    """
    obj, problems = parse(text)
    if obj is None:
        return problems
    problems.extend(schema_problems(obj))
    problems.extend(_dst_problems(obj))
    if report is not None:
        problems.extend(_model_problems(obj, report, model))
    return sorted(set(problems))
