"""The distill simple config (SPEC 11.5) and the distill JSON (SPEC 11.4): parse, resolve per layer, render.

The simple config is one `AMCTPytorchDistillProto.AMCTDistillConfig` message (schemas/distill_config.proto) in
protobuf text format. `load_distill_config` parses it before any model work; `resolve_distill` applies it to the
candidate layers with AMCT's checks and messages, in AMCT's order (SPEC 11.5 "Check order"); `render_distill`
writes the JSON in AMCT's layout (top-level keys, then one entry per candidate in named_modules() order).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from analyzer.emit import dumps
from analyzer.errors import ConfigError, NoQuantizableLayerError
from analyzer.groups import Groups, UserGroup
from analyzer.simple_config import SimpleConfigError, read_simple_text, syntax_error
from schemas.messages import proto_module

logger = logging.getLogger(__name__)

_pb: Any = proto_module("distill_config")  # messages built from schemas/distill_config.binpb; untyped
_PACKAGE_PREFIX = _pb.DESCRIPTOR.package + "."

DISTILL_TYPES = ("Conv2d", "Linear")
CHANNEL_WISE_DEFAULT = {"Conv2d": True, "Linear": False}
DATA_ALGO = "ulq_quantize"
WEIGHT_ALGOS = ("arq_distill", "ulq_distill")
DEFAULT_WEIGHT_ALGO = "arq_distill"
DEFAULT_DST = "INT8"
DATA_FIELD = "distill_data_quant_config"
WEIGHT_FIELD = "distill_weight_quant_config"
LAYER_OVERRIDES = "distill_override_layers"
TYPE_OVERRIDES = "distill_override_layer_types"
SKIP_LAYERS = "quant_skip_layers"
SKIP_TYPES = "quant_skip_layer_types"
TOP_LEVEL = ("version", "batch_num", "group_size", "data_dump", "distill_group")


@dataclass(frozen=True, slots=True)
class DistillData:
    """A layer's `distill_data_config`."""

    clip: tuple[float, float] | None = None  # (clip_max, clip_min), float32 widened to double
    fixed_min: bool | None = None
    dst_type: str = DEFAULT_DST


@dataclass(frozen=True, slots=True)
class DistillWeight:
    """A layer's `distill_weight_config`; `channel_wise` None means the type's default."""

    algo: str = DEFAULT_WEIGHT_ALGO
    channel_wise: bool | None = None
    dst_type: str = DEFAULT_DST


@dataclass(frozen=True, slots=True)
class DistillSetting:
    """One candidate's entry in the config, and where it came from (for the report)."""

    name: str
    layer_type: str
    enabled: bool
    data: DistillData
    weight: DistillWeight
    source: str  # "default", "global", "distill_override_layers 'x'", "quant_skip_layers 'x'", ...

    @property
    def channel_wise(self) -> bool:
        explicit = self.weight.channel_wise
        return CHANNEL_WISE_DEFAULT[self.layer_type] if explicit is None else explicit


@dataclass(frozen=True, slots=True)
class DistillSimple:
    """A parsed distill simple config and the file it came from."""

    message: Any  # an AMCTPytorchDistillProto.AMCTDistillConfig (schemas/distill_config.proto)
    file_name: str

    @property
    def user_groups(self) -> tuple[UserGroup, ...]:
        return tuple(
            UserGroup(str(g.start_layer_name), str(g.end_layer_name)) for g in self.message.distill_group
        )

    @property
    def group_size(self) -> int:
        return int(self.message.group_size)


@dataclass(frozen=True, slots=True)
class DistillResolved:
    """The settings of every candidate in named_modules() order, and the top-level values."""

    layers: tuple[DistillSetting, ...]
    batch_num: int = 1
    group_size: int = 1
    data_dump: bool = False


def load_distill_config(path: str | os.PathLike[str], types: Sequence[str] = DISTILL_TYPES) -> DistillSimple:
    """Parse a distill simple config (protobuf text format) before any model work.

    Raises:
        ConfigError: the file cannot be read or is not valid text format (file, line, column and field named;
            AMCT raises protobuf's ParseError).
    """
    del types  # the checks that name types need the model's candidates (SPEC 11.5)
    text, file_name = read_simple_text(path)
    return parse_distill_config(text, file_name)


def parse_distill_config(text: str, file_name: str = "<simple config>") -> DistillSimple:
    """Parse distill simple-config text; `file_name` only labels the messages."""
    message = _pb.AMCTDistillConfig()
    try:
        # AMCT reads the file this way (a singular field given twice: the last value wins)
        text_format.Merge(text, message)
    except text_format.ParseError as err:
        raise syntax_error(err, text, file_name, _PACKAGE_PREFIX) from err
    problems = _clip_problems(message)
    if problems:
        raise SimpleConfigError(file_name, problems)
    for field in (SKIP_LAYERS, SKIP_TYPES):
        for value, count in Counter(getattr(message, field)).items():
            if count > 1:
                logger.warning("%s: %s lists %r %d times", file_name, field, value, count)
    return DistillSimple(message, file_name)


def _clip_problems(message: Any) -> list[str]:
    """Clip bounds that would not be JSON numbers (nan, inf): QuantScope refuses them, naming the field (AMCT would
    write `NaN`/`Infinity` into the config, which is not JSON)."""
    holders = [("", message)]
    holders += [(f"{LAYER_OVERRIDES} {e.layer_name!r}: ", e) for e in message.distill_override_layers]
    holders += [(f"{TYPE_OVERRIDES} {e.layer_type!r}: ", e) for e in message.distill_override_layer_types]
    problems = []
    for where, holder in holders:
        if not holder.HasField(DATA_FIELD):
            continue
        clip = holder.distill_data_quant_config.ulq_quantize.clip_max_min
        for name in ("clip_max", "clip_min"):
            value = float(getattr(clip, name))
            if not math.isfinite(value):
                problems.append(
                    f"{where}{DATA_FIELD}.ulq_quantize.clip_max_min.{name}: {value} is not a finite number"
                )
    return problems


def _data(holder: Any) -> DistillData:
    if not holder.HasField(DATA_FIELD) or holder.distill_data_quant_config.WhichOneof("quant_algo") is None:
        return DistillData()
    ulq = holder.distill_data_quant_config.ulq_quantize
    clip = None
    if ulq.HasField("clip_max_min"):
        clip = (float(ulq.clip_max_min.clip_max), float(ulq.clip_max_min.clip_min))
    return DistillData(
        clip=clip,
        fixed_min=bool(ulq.fixed_min) if ulq.HasField("fixed_min") else None,
        dst_type=str(_pb.DataType.Name(ulq.dst_type)),
    )


def _weight(holder: Any) -> DistillWeight:
    if not holder.HasField(WEIGHT_FIELD):
        return DistillWeight()
    algo = holder.distill_weight_quant_config.WhichOneof("quant_algo")
    if algo is None:
        return DistillWeight()
    body = getattr(holder.distill_weight_quant_config, algo)
    return DistillWeight(
        algo=str(algo),
        channel_wise=bool(body.channel_wise) if body.HasField("channel_wise") else None,
        dst_type=str(_pb.DataType.Name(body.dst_type)),
    )


def _repeated(values: Sequence[str]) -> list[str]:
    counts = Counter(values)
    return [value for value, count in counts.items() if count > 1]


def resolve_distill(candidates: Sequence[tuple[str, str]], simple: DistillSimple | None) -> DistillResolved:
    """Per candidate (name, type) in named_modules() order: skip > layer override > type override > global.

    Runs the checks of SPEC 11.5 that come before the user groups, in its order (skip lists, override
    duplicates and membership, per-layer INT4 equality, batch_num, group_size).

    Raises:
        ConfigError: AMCT's message for the first failing check.
    """
    if simple is None:
        return DistillResolved(
            tuple(
                DistillSetting(n, t, True, DistillData(), DistillWeight(), "default") for n, t in candidates
            )
        )
    message = simple.message
    names = [name for name, _ in candidates]
    types = {layer_type for _, layer_type in candidates}
    missing = [n for n in message.quant_skip_layers if n not in names]
    if missing:
        raise ConfigError(f"{SKIP_LAYERS}{missing} not exist or supported")
    missing = [t for t in message.quant_skip_layer_types if t not in types]
    if missing:
        raise ConfigError(f"{SKIP_TYPES}{missing} not exist or supported")
    layer_names = [str(e.layer_name) for e in message.distill_override_layers]
    repeated = _repeated(layer_names)
    if repeated:
        raise ConfigError(
            f"Please delete repeated items in {LAYER_OVERRIDES}, repeated items are {repeated}."
        )
    missing = [n for n in layer_names if n not in names]
    if missing:
        raise ConfigError(f"{LAYER_OVERRIDES}{missing} not exist or supported for quant")
    type_names = [str(e.layer_type) for e in message.distill_override_layer_types]
    repeated = _repeated(type_names)
    if repeated:
        raise ConfigError(
            f"Please delete repeated items in {TYPE_OVERRIDES},  repeated items are {repeated}."
        )
    missing = [t for t in type_names if t not in types]
    if missing:
        raise ConfigError(f"{TYPE_OVERRIDES}{missing} not exist or supported for quant")

    by_layer = {str(e.layer_name): e for e in message.distill_override_layers}
    by_type = {str(e.layer_type): e for e in message.distill_override_layer_types}
    skip_layers = set(message.quant_skip_layers)
    skip_types = set(message.quant_skip_layer_types)
    settings = []
    for name, layer_type in candidates:
        if name in skip_layers or layer_type in skip_types:
            entry = f"{SKIP_LAYERS} {name!r}" if name in skip_layers else f"{SKIP_TYPES} {layer_type!r}"
            settings.append(DistillSetting(name, layer_type, False, DistillData(), DistillWeight(), entry))
            continue
        if name in by_layer:
            holder, source = by_layer[name], f"{LAYER_OVERRIDES} {name!r}"
        elif layer_type in by_type:
            holder, source = by_type[layer_type], f"{TYPE_OVERRIDES} {layer_type!r}"
        else:
            holder, source = message, "global"
        data, weight = _data(holder), _weight(holder)
        if data.dst_type != weight.dst_type:
            raise ConfigError(
                "Activation and weights with different data_type are not supported for now. Note, activation is "
                f"{data.dst_type} and weight is {weight.dst_type}. (QuantScope: layer {name!r}, from {source})"
            )
        settings.append(DistillSetting(name, layer_type, True, data, weight, source))
    if message.batch_num == 0:
        raise ConfigError("batch_num(0) should be greater than zero")
    if message.group_size == 0:
        raise ConfigError("group_size(0) should be greater than zero")
    return DistillResolved(
        tuple(settings), int(message.batch_num), int(message.group_size), bool(message.data_dump)
    )


def check_enabled(resolved: DistillResolved) -> None:
    """The checks SPEC 11.5 runs after the user groups: `channel_wise` on a Linear, then a layer left enabled.

    Raises:
        ConfigError: AMCT's message.
        NoQuantizableLayerError: every layer is skipped.
    """
    for setting in resolved.layers:
        if setting.enabled and setting.layer_type == "Linear" and setting.weight.channel_wise:
            raise ConfigError(
                f" fc layer can not be channewised (QuantScope: layer {setting.name!r} is a Linear; "
                f"channel_wise: true comes from {setting.source})"
            )
    if not any(setting.enabled for setting in resolved.layers):
        raise NoQuantizableLayerError("No layer enabled distillation")


def _data_object(data: DistillData) -> dict[str, Any]:
    out: dict[str, Any] = {"algo": DATA_ALGO}
    if data.clip is not None:
        out["clip_max"], out["clip_min"] = data.clip
    if data.fixed_min is not None:
        out["fixed_min"] = data.fixed_min
    out["dst_type"] = data.dst_type
    return out


def config_object(resolved: DistillResolved, groups: Groups) -> dict[str, Any]:
    """The distill JSON object (SPEC 11.4): top-level keys, then each candidate in named_modules() order."""
    obj: dict[str, Any] = {
        "version": 1,
        "batch_num": resolved.batch_num,
        "group_size": resolved.group_size,
        "data_dump": resolved.data_dump,
        "distill_group": [list(group) for group in groups.groups],
    }
    for setting in resolved.layers:
        obj[setting.name] = {
            "quant_enable": setting.enabled,
            "distill_data_config": _data_object(setting.data),
            "distill_weight_config": {
                "algo": setting.weight.algo,
                "channel_wise": setting.channel_wise,
                "dst_type": setting.weight.dst_type,
            },
        }
    return obj


def render_distill(resolved: DistillResolved, groups: Groups) -> str:
    """The config text: AMCT's formatting (4-space indent, no space after ':', no trailing newline)."""
    return dumps(config_object(resolved, groups))


def setting_reason(setting: DistillSetting) -> str:
    """One line for the report: the layer's settings and where they came from."""
    if not setting.enabled:
        return f"{setting.name}: quant_enable false ({setting.source})"
    data = setting.data
    clip = f", clip [{data.clip[1]!r}, {data.clip[0]!r}]" if data.clip is not None else ""
    return (
        f"{setting.name}: data {DATA_ALGO} {data.dst_type}{clip}; weight {setting.weight.algo} "
        f"{setting.weight.dst_type} channel_wise {str(setting.channel_wise).lower()} (from {setting.source})"
    )


def groups_by_layer(groups: Groups) -> Mapping[str, str]:
    """Per candidate: the one line the report says about its group."""
    lines: dict[str, str] = {}
    for name, index in groups.member_of.items():
        group = groups.groups[index]
        kind = " (a user group of the simple config)" if index in groups.user else ""
        why = groups.unit_end.get(name)
        lines[name] = f"in distill_group[{index}] [{', '.join(group)}]{kind}" + (
            f"; its unit ends: {why}" if why else ""
        )
    for name, why in groups.why_none.items():
        lines[name] = f"in no distill group: {why}"
    return lines
