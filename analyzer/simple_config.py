"""The simple config (`quant.cfg`): parse it, validate it, and turn it into per-layer settings (SPEC 4-5).

A `quant.cfg` is one `AMCTRetrainConfig` message (schemas/retrain_config.proto) in protobuf text format,
the AMCT-compatible format of `create_quant_retrain_config(..., config_defination)`. Two stages:

- `load_simple_config` parses the file and runs every check that needs no model (syntax, unknown fields,
  pruning fields, `batch_num: 0`, clip bounds, duplicate overrides, unsupported layer types), so that a broken
  file fails before the model is exported. The file is read the AMCT-compatible way (text-format *merge*: a
  singular field given twice keeps the last value), and a note says where that happened;
- `resolve_simple` applies the file to the layers that passed the checks: skip lists, then
  `override_layer_configs` > `override_layer_types` > global configs, and checks what needs the model
  (layer names, `channel_wise` on Linear, the `dst_type` pairs, at least one layer left enabled).

Every problem found in a stage is reported at once, in one `ConfigError` whose message names the field,
layer or type at fault. Legal configs that behave in a way users do not expect (an override that drops a
global setting, a skip that an override cancels, duplicate skip entries) become notes in the report.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from analyzer.errors import ConfigError, NoQuantizableLayerError
from analyzer.layertypes import LAYER_TYPES, REPORTED_TORCH_CLASSES, SUPPORTED_TYPES
from analyzer.resolve import DataSetting, LayerSetting, QuantLayer, ResolvedConfig, WeightSetting
from graph.files import SIMPLE_CONFIG_LIMIT, read_limited
from schemas import retrain_config_pb2

logger = logging.getLogger(__name__)

# The generated module has no type stubs that pass mypy --strict; its messages are read at this boundary
# only and turned into the typed records below.
_pb: Any = retrain_config_pb2
_PACKAGE_PREFIX = _pb.DESCRIPTOR.package + "."

SKIP_LAYER_FIELDS = ("skip_layers", "quant_skip_layers")
SKIP_TYPE_FIELDS = ("skip_layer_types", "quant_skip_types")
LAYER_OVERRIDES = "override_layer_configs"
TYPE_OVERRIDES = "override_layer_types"
DATA_FIELD = "retrain_data_quant_config"
WEIGHT_FIELD = "retrain_weight_quant_config"
PRUNE_FIELDS = ("regular_prune_skip_layers", "regular_prune_skip_types")
BUILT_IN = "the built-in default"
# (activation, weight) dst_type pairs AMCT accepts; activation INT4 is rejected before this table is read
ALLOWED_DST_PAIRS = frozenset({("INT8", "INT8"), ("INT16", "INT8"), ("INT8", "INT4"), ("INT4", "INT4")})
_ALLOWED_PAIRS_TEXT = "INT8/INT8, INT16/INT8, INT8/INT4"
_PRUNING = "pruning is not supported by create_quant_retrain_config (quantization-aware training only)"
_MAX_LISTED = 10


class SimpleConfigError(ConfigError):
    """An invalid simple config; `problems` holds one line per problem, each naming its culprit."""

    def __init__(self, file_name: str, problems: Sequence[str]) -> None:
        self.file_name = file_name
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = f"{file_name}: {self.problems[0]}"
        else:
            listed = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"{file_name}: {len(self.problems)} problems in the simple config:\n{listed}"
        super().__init__(message)


class SimpleConfigSyntaxError(SimpleConfigError):
    """The file is not valid simple-config text format (syntax error, unknown field or enum value).

    `line` and `column` are 1-based (None when the parser gave no location); `token` is the text there.
    """

    def __init__(
        self, file_name: str, line: int | None, column: int | None, token: str | None, reason: str
    ) -> None:
        self.line = line
        self.column = column
        self.token = token
        where = f" (at {token!r})" if token else ""
        location = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(file_name, [f"{location}{reason}{where}"])


class AllLayersDisabledError(SimpleConfigError, NoQuantizableLayerError):
    """The simple config leaves no layer with `retrain_enable: true`; no file is written."""


@dataclass(frozen=True, slots=True)
class SimpleConfig:
    """A parsed simple config: the `AMCTRetrainConfig` message and the file it came from (for messages).

    `parse_notes` says where the file gives a field more than once: it is read as AMCT reads it (the
    entries are merged, the last value wins), which is legal but rarely meant.
    """

    message: Any  # schemas.retrain_config_pb2.AMCTRetrainConfig
    file_name: str
    parse_notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DataSpec:
    """A `retrain_data_quant_config` as written: None means the field was not set."""

    has_clip: bool = False
    clip_max: float | None = None
    clip_min: float | None = None
    fixed_min: bool | None = None
    dst_type: str | None = None


@dataclass(frozen=True, slots=True)
class WeightSpec:
    """A `retrain_weight_quant_config` as written: None means the field (or the algorithm) was not set."""

    algo: str | None = None
    channel_wise: bool | None = None
    dst_type: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigPart:
    """The data and weight configs of the global level or of one override; None when the part is absent."""

    origin: str  # "global" or e.g. "override_layer_configs 'conv1'"
    data: DataSpec | None
    weight: WeightSpec | None

    @property
    def data_origin(self) -> str:
        if self.data is None:
            return BUILT_IN
        return DATA_FIELD if self.origin == "global" else self.origin

    @property
    def weight_origin(self) -> str:
        if self.weight is None:
            return BUILT_IN
        return WEIGHT_FIELD if self.origin == "global" else self.origin


@dataclass(frozen=True, slots=True)
class SimpleView:
    """The simple config read into typed records (after `load_simple_config` validated it)."""

    batch_num: int
    fakequant_precision_mode: str | None
    global_part: ConfigPart
    skip_layers: tuple[tuple[str, str], ...]  # (field, layer name), in file order
    skip_types: tuple[tuple[str, str], ...]  # (field, layer type)
    layer_overrides: Mapping[str, ConfigPart]
    type_overrides: Mapping[str, ConfigPart]


# ---------------------------------------------------------------------------------------------- parsing


def load_simple_config(path: str | os.PathLike[str]) -> SimpleConfig:
    """Read and validate a `quant.cfg` (protobuf text format) before any model work.

    Args:
        path: the simple config file.

    Returns:
        The parsed config.

    Raises:
        ConfigError: the file cannot be read, is not valid simple-config text format (the message gives line,
            column and the offending token), or breaks a rule that needs no model.
    """
    file_name = os.fspath(path)
    try:
        data = read_limited(file_name, SIMPLE_CONFIG_LIMIT)
    except OSError as err:
        raise SimpleConfigError(file_name, [f"cannot read the simple config: {err.strerror or err}"]) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        reason = f"the file is not UTF-8 text (byte 0x{data[err.start]:02x})"
        raise SimpleConfigSyntaxError(file_name, line, column, None, reason) from err
    return parse_simple_config(text, file_name)


def parse_simple_config(text: str, file_name: str = "<simple config>") -> SimpleConfig:
    """Parse and validate simple-config text; `file_name` only labels the messages.

    Raises:
        ConfigError: as `load_simple_config`.
    """
    message = _pb.AMCTRetrainConfig()
    try:
        # Merge, not Parse: AMCT reads the file this way, so a field given twice is merged (last value wins)
        text_format.Merge(text, message)
    except text_format.ParseError as err:
        raise _syntax_error(err, text, file_name) from err
    problems = _static_problems(message)
    if problems:
        raise SimpleConfigError(file_name, problems)
    parse_notes = _repeated_field_notes(text)
    for note in parse_notes:
        logger.warning("%s: %s", file_name, note)
    for field, value, count in _duplicate_skips(message):
        logger.warning("%s: %s lists %r %d times; the entries are merged", file_name, field, value, count)
    return SimpleConfig(message, file_name, parse_notes)


_MULTIPLE = re.compile(r'should not have multiple "(\w+)" fields')
_ONEOF = re.compile(r'Field "(\w+)" is specified along with field "(\w+)", another member of oneof')


def _repeated_field_notes(text: str) -> tuple[str, ...]:
    """Where the strict parser (one value per singular field) disagrees with the merging one AMCT uses.

    The strict parser stops at the first such place, so one note covers the first occurrence.
    """
    try:
        text_format.Parse(text, _pb.AMCTRetrainConfig())
    except text_format.ParseError as err:
        where = f"line {err.GetLine()}, column {err.GetColumn()}: " if err.GetLine() is not None else ""
        multiple, oneof = _MULTIPLE.search(str(err)), _ONEOF.search(str(err))
        if multiple:
            what = f"{multiple.group(1)} is given more than once"
        elif oneof:
            what = f"{oneof.group(1)} and {oneof.group(2)} are both given (only one of them can be)"
        else:
            what = _LOCATION.sub("", str(err)).replace(_PACKAGE_PREFIX, "")
        return (f"{where}{what}; the entries are merged and the last value wins (AMCT-compatible reading)",)
    return ()


_LOCATION = re.compile(r"^\d+:\d+ : ")
_TOKEN = re.compile(r"\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?|[\w.+-]+|\S")
_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "([^"]+)"')


def _syntax_error(err: text_format.ParseError, text: str, file_name: str) -> SimpleConfigSyntaxError:
    line, column = err.GetLine(), err.GetColumn()
    reason = _LOCATION.sub("", str(err)).replace(_PACKAGE_PREFIX, "")
    if text.startswith("\ufeff"):
        reason += " The file starts with a byte-order mark (BOM); save it as UTF-8 without BOM."
    lines = text.splitlines()
    if line is not None and 1 <= line <= len(lines):
        # the parser quotes the whole line before some messages; the location and the token say it better
        for quoted in (f"'{lines[line - 1]}': ", f"'{lines[line - 1].strip()}': "):
            reason = reason.removeprefix(quoted)
    unknown = _NO_FIELD.search(str(err))
    if unknown:
        reason += _field_hint(unknown.group(1), unknown.group(2))
    return SimpleConfigSyntaxError(file_name, line, column, _token_at(text, line, column), reason)


def _field_hint(full_type: str, field: str) -> str:
    try:
        descriptor = _pb.DESCRIPTOR.pool.FindMessageTypeByName(full_type)
    except KeyError:
        return ""
    fields = [f.name for f in descriptor.fields]
    close = difflib.get_close_matches(field, fields, n=3, cutoff=0.6)
    if close:
        return " Did you mean " + " or ".join(repr(name) for name in close) + "?"
    return " Its fields are: " + ", ".join(fields) + "."


def _token_at(text: str, line: int | None, column: int | None) -> str | None:
    """The token at a 1-based (line, column) of `text`, or the next one on that line; None at the end."""
    if line is None:
        return None
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    source = lines[line - 1]
    match = _TOKEN.search(source, max((column or 1) - 1, 0))
    return match.group(0) if match else None


# ------------------------------------------------------------------------------- checks without a model


def _static_problems(message: Any) -> list[str]:
    problems: list[str] = []
    if message.HasField("batch_num") and message.batch_num == 0:
        problems.append(
            "batch_num: 0 is not allowed; batch_num must be an integer > 0 (the number of batches)"
        )
    if message.HasField(DATA_FIELD):
        problems += _clip_problems(DATA_FIELD, message.retrain_data_quant_config)
    for field in SKIP_TYPE_FIELDS:
        problems += [
            _unsupported_type(field, value) for value in getattr(message, field) if value not in LAYER_TYPES
        ]
    if message.HasField("prune_config"):
        problems.append(f"prune_config: {_PRUNING}; remove prune_config")
    for field in PRUNE_FIELDS:
        values = list(getattr(message, field))
        if values:
            problems.append(f"{field} ({_names(values, quote=True)}): {_PRUNING}; remove {field}")
    problems += _override_problems(message, LAYER_OVERRIDES, "layer_name")
    problems += _override_problems(message, TYPE_OVERRIDES, "layer_type")
    return problems


def _override_problems(message: Any, field: str, key: str) -> list[str]:
    problems: list[str] = []
    entries: dict[str, list[int]] = {}
    for number, entry in enumerate(getattr(message, field), start=1):
        if not entry.HasField(key):
            problems.append(f"{field} entry {number}: {key} is required")
            continue
        value = getattr(entry, key)
        entries.setdefault(value, []).append(number)
        origin = f"{field} {value!r}"
        if key == "layer_type" and value not in LAYER_TYPES:
            problems.append(_unsupported_type(field, value))
        if entry.HasField(DATA_FIELD):
            problems += _clip_problems(f"{origin}: {DATA_FIELD}", entry.retrain_data_quant_config)
        if entry.HasField("prune_config"):
            problems.append(f"{origin}: prune_config: {_PRUNING}; remove prune_config")
    for value, numbers in entries.items():
        if len(numbers) > 1:
            listed = ", ".join(str(n) for n in numbers)
            problems.append(
                f"{field}: {key} {value!r} appears {len(numbers)} times (entries {listed}); "
                "an override does not merge with another, write one entry"
            )
    return problems


def _clip_problems(where: str, data: Any) -> list[str]:
    if data.WhichOneof("quant_algo") != "ulq_quantize" or not data.ulq_quantize.HasField("clip_max_min"):
        return []
    clip = data.ulq_quantize.clip_max_min
    path = f"{where}.ulq_quantize.clip_max_min"
    has_max, has_min = clip.HasField("clip_max"), clip.HasField("clip_min")
    if not (has_max and has_min):
        given, missing = ("clip_max", "clip_min") if has_max else ("clip_min", "clip_max")
        if not (has_max or has_min):
            return [
                f"{path}: clip_max and clip_min are both missing; give both bounds, or remove clip_max_min"
            ]
        return [f"{path}: {given} is set but {missing} is missing; give both bounds, or neither"]
    problems: list[str] = []
    clip_max, clip_min = float(clip.clip_max), float(clip.clip_min)
    if not math.isfinite(clip_max) or clip_max <= 0:
        problems.append(f"{path}: clip_max must be a finite number > 0, got {_fmt(clip_max)}")
    if not math.isfinite(clip_min) or clip_min >= 0:
        problems.append(f"{path}: clip_min must be a finite number < 0, got {_fmt(clip_min)}")
    return problems


def _unsupported_type(field: str, value: str) -> str:
    if value in REPORTED_TORCH_CLASSES:  # a real torch class, just not one QuantScope quantizes
        close: list[str] = []
    else:
        close = [t for t in SUPPORTED_TYPES if t.lower() == value.lower()]
        close = close or difflib.get_close_matches(value, SUPPORTED_TYPES, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{field}: {value!r} is not a supported layer type (supported: {', '.join(SUPPORTED_TYPES)}){hint}"


def _duplicate_skips(message: Any) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    for field in SKIP_LAYER_FIELDS + SKIP_TYPE_FIELDS:
        counts = Counter(getattr(message, field))
        out += [(field, value, count) for value, count in counts.items() if count > 1]
    return out


# ------------------------------------------------------------------------------------- typed view


def _data_spec(data: Any) -> DataSpec:
    if data.WhichOneof("quant_algo") != "ulq_quantize":
        return DataSpec()
    ulq = data.ulq_quantize
    has_clip = ulq.HasField("clip_max_min")
    clip = ulq.clip_max_min
    return DataSpec(
        has_clip=has_clip,
        clip_max=float(clip.clip_max) if has_clip and clip.HasField("clip_max") else None,
        clip_min=float(clip.clip_min) if has_clip and clip.HasField("clip_min") else None,
        fixed_min=bool(ulq.fixed_min) if ulq.HasField("fixed_min") else None,
        dst_type=str(_pb.DataType.Name(ulq.dst_type)) if ulq.HasField("dst_type") else None,
    )


def _weight_spec(weight: Any) -> WeightSpec:
    algo = weight.WhichOneof("quant_algo")
    if algo is None:
        return WeightSpec()
    body = getattr(weight, algo)
    return WeightSpec(
        algo=str(algo),
        channel_wise=bool(body.channel_wise) if body.HasField("channel_wise") else None,
        dst_type=str(_pb.DataType.Name(body.dst_type)) if body.HasField("dst_type") else None,
    )


def _part(origin: str, holder: Any) -> ConfigPart:
    data = _data_spec(holder.retrain_data_quant_config) if holder.HasField(DATA_FIELD) else None
    weight = _weight_spec(holder.retrain_weight_quant_config) if holder.HasField(WEIGHT_FIELD) else None
    return ConfigPart(origin, data, weight)


def read_view(simple: SimpleConfig) -> SimpleView:
    """The typed records of a validated simple config."""
    message = simple.message
    mode = None
    if (
        message.HasField("fakequant_precision_mode")
        and message.fakequant_precision_mode == _pb.FORCE_FP16_QUANT
    ):
        mode = "FORCE_FP16_QUANT"
    return SimpleView(
        batch_num=int(message.batch_num),
        fakequant_precision_mode=mode,
        global_part=_part("global", message),
        skip_layers=tuple(
            (field, str(value)) for field in SKIP_LAYER_FIELDS for value in getattr(message, field)
        ),
        skip_types=tuple(
            (field, str(value)) for field in SKIP_TYPE_FIELDS for value in getattr(message, field)
        ),
        layer_overrides={
            str(e.layer_name): _part(f"{LAYER_OVERRIDES} {e.layer_name!r}", e)
            for e in message.override_layer_configs
        },
        type_overrides={
            str(e.layer_type): _part(f"{TYPE_OVERRIDES} {e.layer_type!r}", e)
            for e in message.override_layer_types
        },
    )


def data_setting(spec: DataSpec | None) -> DataSetting:
    """The JSON data config of a spec (None: the built-in default)."""
    if spec is None:
        return DataSetting()
    return DataSetting(
        clip_max=spec.clip_max if spec.has_clip else None,
        clip_min=spec.clip_min if spec.has_clip else None,
        fixed_min=spec.fixed_min,
        dst_type=spec.dst_type or "INT8",
    )


def weight_setting(spec: WeightSpec | None, layer_type: str) -> WeightSetting:
    """The JSON weight config of a spec for a layer type (channel_wise as written, else the type default)."""
    default = LAYER_TYPES[layer_type].channel_wise_default
    if spec is None:
        return WeightSetting("arq_retrain", default)
    channel_wise = default if spec.channel_wise is None else spec.channel_wise
    return WeightSetting(spec.algo or "arq_retrain", channel_wise, spec.dst_type or "INT8")


# ------------------------------------------------------------------------------------------ resolution


def resolve_simple(
    layers: Sequence[QuantLayer],
    simple: SimpleConfig,
    excluded: Mapping[str, str],
    modules: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Apply a simple config to the quantizable layers (SPEC 5.1, 5.2) and check it against the model (5.3).

    Args:
        layers: the layers that passed the checks, in named_modules() order.
        simple: the parsed simple config.
        excluded: modules the checks excluded, with the reason, to explain a config that names one.
        modules: class name of every module of the model, to explain a name that is not a candidate layer.

    Returns:
        The settings of every layer, with notes for legal but surprising effects of the config.

    Raises:
        ConfigError: a name is not a quantizable layer, or a resolved layer gets settings AMCT rejects
            (`channel_wise: true` on Linear, activation INT4, a dst_type pair not allowed).
        NoQuantizableLayerError: (as `AllLayersDisabledError`, also a ConfigError) every layer is disabled.
    """
    view = read_view(simple)
    names = [layer.name for layer in layers]
    known = set(names)
    problems: list[str] = []
    referenced = list(view.skip_layers) + [(LAYER_OVERRIDES, name) for name in view.layer_overrides]
    for field, name in dict.fromkeys(referenced):
        if name not in known:
            problems.append(_unknown_layer(field, name, names, excluded, modules or {}))

    settings: list[LayerSetting] = []
    notes: list[tuple[str, str]] = []
    grouped: dict[str, list[str]] = {}
    for layer in layers:
        setting, layer_notes, layer_problems = _resolve_layer(layer, view)
        settings.append(setting)
        notes += layer_notes
        for problem in layer_problems:
            grouped.setdefault(problem, []).append(layer.name)
    problems += [f"{_names(culprits)}: {problem}" for problem, culprits in grouped.items()]
    if problems:
        raise SimpleConfigError(simple.file_name, problems)
    if not any(setting.retrain_enable for setting in settings):
        skips = "; ".join(
            f"{field}: {_names(dict.fromkeys(v for f, v in view.skip_layers + view.skip_types if f == field))}"
            for field in SKIP_LAYER_FIELDS + SKIP_TYPE_FIELDS
            if any(f == field for f, _ in view.skip_layers + view.skip_types)
        )
        raise AllLayersDisabledError(
            simple.file_name,
            [f"no layer retrain enabled: the skip lists disable every quantizable layer ({skips})"],
        )
    notes += _config_notes(simple, view, layers, known)
    return ResolvedConfig(
        tuple(settings),
        batch_num=view.batch_num,
        fakequant_precision_mode=view.fakequant_precision_mode,
        notes=tuple(notes),
    )


def _resolve_layer(
    layer: QuantLayer, view: SimpleView
) -> tuple[LayerSetting, list[tuple[str, str]], list[str]]:
    """One layer's setting, its notes, and its problems (each without the layer name, for grouping)."""
    name, layer_type = layer.name, layer.layer_type
    skipped_by = [f"{field} {value!r}" for field, value in view.skip_layers if value == name]
    skipped_by += [f"{field} {value!r}" for field, value in view.skip_types if value == layer_type]
    skipped_by = list(dict.fromkeys(skipped_by))  # a duplicated skip entry is one reason
    part = view.layer_overrides.get(name)
    source = LAYER_OVERRIDES
    if part is None:
        part, source = view.type_overrides.get(layer_type), TYPE_OVERRIDES
    notes: list[tuple[str, str]] = []
    if part is None:
        part = view.global_part
        has_global = part.data is not None or part.weight is not None
        source = "global" if has_global else "default"
        enable = not skipped_by
    else:
        enable = True
        if skipped_by:
            notes.append(
                (
                    name,
                    f"{name}: {' and '.join(skipped_by)} is cancelled by {part.origin}; "
                    "the layer stays enabled",
                )
            )
        notes += _dropped_global_notes(name, layer_type, part, source, view.global_part)
    data = data_setting(part.data)
    weight = weight_setting(part.weight, layer_type)
    problems: list[str] = []
    if data.dst_type == "INT4":
        problems.append(
            f"activation dst_type INT4 (from {part.data_origin}): INT4 quantization aware training is not "
            "supported; use INT8 or INT16 for retrain_data_quant_config"
        )
    elif (data.dst_type, weight.dst_type) not in ALLOWED_DST_PAIRS:
        if part.data_origin == part.weight_origin:
            origin = f"from {part.data_origin}"
        else:
            origin = f"data from {part.data_origin}, weight from {part.weight_origin}"
        problems.append(
            f"dst_type pair data {data.dst_type} / weight {weight.dst_type} ({origin}) is not allowed; "
            f"allowed (data, weight) pairs: {_ALLOWED_PAIRS_TEXT}"
        )
    if layer_type == "Linear" and weight.channel_wise:
        problems.append(
            f"channel_wise: true (from {part.weight_origin}) is not allowed for a Linear layer (its weight "
            "is quantized per tensor); set channel_wise: false, e.g. in "
            'override_layer_types { layer_type: "Linear" }'
        )
    return LayerSetting(name, layer_type, enable, data, weight, source), notes, problems


def _dropped_global_notes(
    name: str, layer_type: str, part: ConfigPart, source: str, global_part: ConfigPart
) -> list[tuple[str, str]]:
    """Global settings an override leaves out and therefore replaces with built-in defaults."""
    label = source if source == LAYER_OVERRIDES else part.origin
    notes: list[tuple[str, str]] = []
    if global_part.data is not None:
        spec = part.data or DataSpec()
        glob = global_part.data
        dropped = []
        if glob.has_clip and not spec.has_clip:
            dropped.append("clip_max_min")
        if glob.fixed_min is not None and spec.fixed_min is None:
            dropped.append("fixed_min")
        if glob.dst_type not in (None, "INT8") and spec.dst_type is None:
            dropped.append(f"dst_type {glob.dst_type}")
        if dropped:
            notes.append((name, f"{name}: {label} replaces the global {DATA_FIELD}; {_inherited(dropped)}"))
    if global_part.weight is not None:
        spec_w = part.weight or WeightSpec()
        glob_w = global_part.weight
        default_cw = LAYER_TYPES[layer_type].channel_wise_default
        dropped = []
        if glob_w.algo not in (None, "arq_retrain") and spec_w.algo is None:
            dropped.append(glob_w.algo)
        if (
            glob_w.channel_wise is not None
            and spec_w.channel_wise is None
            and glob_w.channel_wise != default_cw
        ):
            dropped.append(f"channel_wise: {str(glob_w.channel_wise).lower()}")
        if glob_w.dst_type not in (None, "INT8") and spec_w.dst_type is None:
            dropped.append(f"dst_type {glob_w.dst_type}")
        if dropped:
            notes.append((name, f"{name}: {label} replaces the global {WEIGHT_FIELD}; {_inherited(dropped)}"))
    return notes


def _inherited(fields: list[str]) -> str:
    if len(fields) == 1:
        return f"{fields[0]} is not inherited"
    return f"{', '.join(fields[:-1])} and {fields[-1]} are not inherited"


def _config_notes(
    simple: SimpleConfig, view: SimpleView, layers: Sequence[QuantLayer], known: set[str]
) -> list[tuple[str, str]]:
    notes: list[tuple[str, str]] = [("", note) for note in simple.parse_notes]
    for field, value, count in _duplicate_skips(simple.message):
        layer = value if value in known else ""
        notes.append((layer, f"{field} lists {value!r} {count} times; the entries are merged"))
    present = {layer.layer_type for layer in layers}
    typed = [(field, value) for field, value in view.skip_types] + [
        (TYPE_OVERRIDES, t) for t in view.type_overrides
    ]
    for field, value in dict.fromkeys(typed):
        if value not in present:
            notes.append(
                (
                    "",
                    f"{field} {value!r}: the model has no quantizable {value} layer; the entry has no effect",
                )
            )
    return notes


def _unknown_layer(
    field: str, name: str, names: Sequence[str], excluded: Mapping[str, str], modules: Mapping[str, str]
) -> str:
    if name in excluded:
        return f"{field}: {name!r} is not a quantizable layer: the checks excluded it ({excluded[name]})"
    supported = ", ".join(SUPPORTED_TYPES)
    if name in modules:
        class_name = modules[name]
        if class_name in LAYER_TYPES:
            return (
                f"{field}: {name!r} is a {class_name} that is not an instance of torch.nn.{class_name}, "
                "so it is not a quantizable layer"
            )
        return f"{field}: {name!r} is a {class_name}, not a quantizable layer type (supported: {supported})"
    base = f"{field}: {name!r} is not a quantizable layer of the model"
    if name.startswith("module.") and name[len("module.") :] in names:
        return f"{base}; did you mean {name[len('module.') :]!r}? (names are those of the unwrapped model)"
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return f"{base}; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"{base}; the quantizable layers are: {_names(names)}"


# ------------------------------------------------------------------------------------------- helpers


def _names(values: Iterable[str], quote: bool = False) -> str:
    items = [repr(v) if quote else v for v in values]
    if len(items) > _MAX_LISTED:
        return ", ".join(items[:_MAX_LISTED]) + f" and {len(items) - _MAX_LISTED} more"
    return ", ".join(items)


def _fmt(value: float) -> str:
    """The shortest text that reads back as the same float32 (-0.3, not -0.30000001192092896)."""
    if not math.isfinite(value):
        return str(value)
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.pack("<f", float(text)) == packed:
            return text
    return repr(value)
