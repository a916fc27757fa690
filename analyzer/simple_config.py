"""The simple config (`quant.cfg`): parse it, validate it, and read it into typed records (SPEC 4, 5.3).

A `quant.cfg` is one `AMCTRetrainConfig` message (schemas/retrain_config.proto) in protobuf text format,
the AMCT-compatible format of `create_quant_retrain_config(..., config_defination)`. This module is the
first of two stages; `analyzer.resolve` is the second and the only one that knows about layers:

- `load_simple_config` parses the file and runs every check that needs no model (syntax, unknown fields,
  pruning fields, `batch_num: 0`, clip bounds, duplicate overrides, unsupported layer types), so that a broken
  file fails before the model is exported. The file is read the AMCT-compatible way (text-format *merge*: a
  singular field given twice keeps the last value), and a note says where that happened;
- `analyzer.resolve.resolve_simple` applies the file to the layers that passed the checks: skip lists, then
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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from analyzer.errors import ConfigError, NoQuantizableLayerError
from analyzer.floats import shortest_float32
from analyzer.layertypes import ALL_TYPES, AMCT_LATEST, REPORTED_TORCH_CLASSES, SUPPORTED_TYPES
from graph.files import SIMPLE_CONFIG_LIMIT, read_limited
from schemas.messages import proto_module

logger = logging.getLogger(__name__)

# The messages of schemas/retrain_config.proto (built at import, schemas.messages) have no static types; they
# are read at this boundary only and turned into the typed records below.
_pb: Any = proto_module("retrain_config")
_PACKAGE_PREFIX = _pb.DESCRIPTOR.package + "."

SKIP_LAYER_FIELDS = ("skip_layers", "quant_skip_layers")
SKIP_TYPE_FIELDS = ("skip_layer_types", "quant_skip_types")
LAYER_OVERRIDES = "override_layer_configs"
TYPE_OVERRIDES = "override_layer_types"
DATA_FIELD = "retrain_data_quant_config"
WEIGHT_FIELD = "retrain_weight_quant_config"
PRUNE_FIELDS = ("regular_prune_skip_layers", "regular_prune_skip_types")
BUILT_IN = "the built-in default"
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
        self,
        file_name: str,
        line: int | None,
        column: int | None,
        token: str | None,
        reason: str,
        at_end: bool = False,
    ) -> None:
        self.line = line
        self.column = column
        self.token = token
        self.at_end = at_end
        where = " (end of file)" if at_end else f" (at {token!r})" if token else ""
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

    message: Any  # AMCTRetrainConfig of schemas/retrain_config.proto
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


def load_simple_config(path: str | os.PathLike[str], types: Sequence[str] = SUPPORTED_TYPES) -> SimpleConfig:
    """Read and validate a `quant.cfg` (protobuf text format) before any model work.

    Args:
        path: the simple config file.
        types: the candidate types of the layer-type mode; the type lists and overrides accept exactly these.

    Returns:
        The parsed config.

    Raises:
        ConfigError: the file cannot be read, is not valid simple-config text format (the message gives line,
            column and the offending token), or breaks a rule that needs no model.
    """
    text, file_name = read_simple_text(path)
    return parse_simple_config(text, file_name, types)


def read_simple_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The text of a simple config file (of any kind) and its name for messages.

    Raises:
        ConfigError: the file cannot be read, is too large, or is not UTF-8 text (line and column given).
    """
    file_name = os.fspath(path)
    try:
        data = read_limited(file_name, SIMPLE_CONFIG_LIMIT)
    except OSError as err:
        raise SimpleConfigError(file_name, [f"cannot read the simple config: {err.strerror or err}"]) from err
    try:
        return data.decode("utf-8"), file_name
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        reason = f"the file is not UTF-8 text (byte 0x{data[err.start]:02x})"
        raise SimpleConfigSyntaxError(file_name, line, column, None, reason) from err


def parse_simple_config(
    text: str, file_name: str = "<simple config>", types: Sequence[str] = SUPPORTED_TYPES
) -> SimpleConfig:
    """Parse and validate simple-config text; `file_name` only labels the messages.

    Raises:
        ConfigError: as `load_simple_config`.
    """
    message = _pb.AMCTRetrainConfig()
    try:
        # Merge, not Parse: AMCT reads the file this way, so a field given twice is merged (last value wins)
        text_format.Merge(text, message)
    except text_format.ParseError as err:
        raise syntax_error(err, text, file_name) from err
    problems = _static_problems(message, tuple(types))
    if problems:
        raise SimpleConfigError(file_name, problems)
    parse_notes = repeated_field_notes(text, _pb.AMCTRetrainConfig)
    for note in parse_notes:
        logger.warning("%s: %s", file_name, note)
    for field, value, count in duplicate_skips(message):
        logger.warning("%s: %s lists %r %d times; the entries are merged", file_name, field, value, count)
    return SimpleConfig(message, file_name, parse_notes)


_MULTIPLE = re.compile(r'should not have multiple "(\w+)" fields')
_ONEOF = re.compile(r'Field "(\w+)" is specified along with field "(\w+)", another member of oneof')


def repeated_field_notes(text: str, message_class: Any) -> tuple[str, ...]:
    """Where the strict parser (one value per singular field) disagrees with the merging one AMCT uses.

    The strict parser stops at the first such place, so one note covers the first occurrence.
    """
    prefix = message_class.DESCRIPTOR.file.package + "."
    try:
        text_format.Parse(text, message_class())
    except text_format.ParseError as err:
        where = f"line {err.GetLine()}, column {err.GetColumn()}: " if err.GetLine() is not None else ""
        multiple, oneof = _MULTIPLE.search(str(err)), _ONEOF.search(str(err))
        if multiple:
            what = f"{multiple.group(1)} is given more than once"
        elif oneof:
            what = f"{oneof.group(1)} and {oneof.group(2)} are both given (only one of them can be)"
        else:
            what = _LOCATION.sub("", str(err)).replace(prefix, "")
        return (f"{where}{what}; the entries are merged and the last value wins (AMCT-compatible reading)",)
    return ()


_LOCATION = re.compile(r"^\d+:\d+ : ")
_TOKEN = re.compile(r"\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?|[\w.+-]+|\S")
_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "([^"]+)"')


def syntax_error(
    err: text_format.ParseError, text: str, file_name: str, package_prefix: str = _PACKAGE_PREFIX
) -> SimpleConfigSyntaxError:
    """The error of a text-format parse failure: file, line, column, the token there, and a hint for a
    misspelt field. `package_prefix` (the proto package and a dot) is left out of message type names."""
    line, column = err.GetLine(), err.GetColumn()
    reason = _LOCATION.sub("", str(err)).replace(package_prefix, "")
    if text.startswith("\ufeff"):
        reason += " The file starts with a byte-order mark (BOM); save it as UTF-8 without BOM."
    lines = text.splitlines()
    if line is not None and 1 <= line <= len(lines):
        # the parser quotes the whole line before some messages; the location and the token say it better
        for quoted in (f"'{lines[line - 1]}': ", f"'{lines[line - 1].strip()}': "):
            reason = reason.removeprefix(quoted)
    reason = reason.removeprefix("'': ")  # the parser quotes the empty rest of the text at its end
    unknown = _NO_FIELD.search(str(err))
    if unknown:
        reason += _field_hint(unknown.group(1), unknown.group(2))
    token = _token_at(text, line, column)
    end = _end_of_file(text, line, column, token, reason)
    if end is not None:
        return SimpleConfigSyntaxError(file_name, line, end, None, reason, at_end=True)
    return SimpleConfigSyntaxError(file_name, line, column, token, reason)


def _end_of_file(
    text: str, line: int | None, column: int | None, token: str | None, reason: str
) -> int | None:
    """The 1-based column just past the last token when the parser ran out of text (a missing `}` at the end),
    else None. The parser reports such an error past the end of the line, or, for a message left open, at the
    last token it read; any other token it points at is the culprit, whatever follows it."""
    lines = text.splitlines()
    if line is None or column is None or not 1 <= line <= len(lines):
        return None
    source = lines[line - 1]
    if column > len(source):
        rest_start = len(source)
    elif token is not None and reason.startswith(('Expected "}".', 'Expected ">".')):
        # a message still open: at the end of the text the parser points at the last token it read (any
        # token it could still read there would be a field name or the closing brace, not this error)
        start = source.find(token, column - 1)
        if start < 0:
            return None
        rest_start = start + len(token)
    else:
        return None
    rest = [source[rest_start:], *lines[line:]]
    if any(part.split("#", 1)[0].strip() for part in rest):
        return None
    return rest_start + 1


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


def _static_problems(message: Any, types: tuple[str, ...]) -> list[str]:
    problems: list[str] = []
    if message.HasField("batch_num") and message.batch_num == 0:
        problems.append(
            "batch_num: 0 is not allowed; batch_num must be an integer > 0 (the number of batches)"
        )
    if message.HasField(DATA_FIELD):
        problems += _clip_problems(DATA_FIELD, message.retrain_data_quant_config)
    for field in SKIP_TYPE_FIELDS:
        problems += [
            _unsupported_type(field, value, types) for value in getattr(message, field) if value not in types
        ]
    if message.HasField("prune_config"):
        problems.append(f"prune_config: {_PRUNING}; remove prune_config")
    for field in PRUNE_FIELDS:
        values = list(getattr(message, field))
        if values:
            problems.append(f"{field} ({join_names(values, quote=True)}): {_PRUNING}; remove {field}")
    problems += _override_problems(message, LAYER_OVERRIDES, "layer_name", types)
    problems += _override_problems(message, TYPE_OVERRIDES, "layer_type", types)
    return problems


def _override_problems(message: Any, field: str, key: str, types: tuple[str, ...]) -> list[str]:
    problems: list[str] = []
    entries: dict[str, list[int]] = {}
    for number, entry in enumerate(getattr(message, field), start=1):
        if not entry.HasField(key):
            problems.append(f"{field} entry {number}: {key} is required")
            continue
        value = getattr(entry, key)
        entries.setdefault(value, []).append(number)
        origin = f"{field} {value!r}"
        if key == "layer_type" and value not in types:
            problems.append(_unsupported_type(field, value, types))
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


def _unsupported_type(field: str, value: str, types: tuple[str, ...]) -> str:
    if value in REPORTED_TORCH_CLASSES:  # a real torch class, just not one QuantScope quantizes here
        close: list[str] = []
    else:
        close = [t for t in types if t.lower() == value.lower()]
        close = close or difflib.get_close_matches(value, types, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if value in ALL_TYPES and types == SUPPORTED_TYPES:
        hint = f"; it is one with --layer-types {AMCT_LATEST} (layer_types={AMCT_LATEST!r})"
    return f"{field}: {value!r} is not a supported layer type (supported: {', '.join(types)}){hint}"


def duplicate_skips(message: Any) -> list[tuple[str, str, int]]:
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


# ------------------------------------------------------------------------------------------- helpers


def join_names(values: Iterable[str], quote: bool = False) -> str:
    items = [repr(v) if quote else v for v in values]
    if len(items) > _MAX_LISTED:
        return ", ".join(items[:_MAX_LISTED]) + f" and {len(items) - _MAX_LISTED} more"
    return ", ".join(items)


def _fmt(value: float) -> str:
    """The shortest text that reads back as the same float32 (-0.3, not -0.30000001192092896; 0, not 0.0)."""
    if not math.isfinite(value):
        return str(value)
    return shortest_float32(value).removesuffix(".0")
