"""Quantizable layers (+ the simple config) -> the settings of every layer, per SPEC section 5.

The second stage of the simple config: `analyzer.simple_config` parses and validates the file without a
model; this module applies it to the layers that passed the checks (skip lists, then
`override_layer_configs` > `override_layer_types` > global configs) and checks what needs the model (layer
names, `channel_wise` on Linear, the `dst_type` pairs, at least one layer left enabled). Imports go one way:
this module reads `analyzer.simple_config`, never the reverse.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from analyzer.layertypes import LAYER_TYPE_TABLE, SUPPORTED_TYPES, Int4Blocker
from analyzer.simple_config import (
    DATA_FIELD,
    LAYER_OVERRIDES,
    SKIP_LAYER_FIELDS,
    SKIP_TYPE_FIELDS,
    TYPE_OVERRIDES,
    WEIGHT_FIELD,
    AllLayersDisabledError,
    ConfigPart,
    DataSpec,
    SimpleConfig,
    SimpleConfigError,
    SimpleView,
    WeightSpec,
    duplicate_skips,
    join_names,
    read_view,
)

# (activation, weight) dst_type pairs AMCT accepts; activation INT4 is rejected before this table is read
ALLOWED_DST_PAIRS = frozenset({("INT8", "INT8"), ("INT16", "INT8"), ("INT8", "INT4"), ("INT4", "INT4")})
_ALLOWED_PAIRS_TEXT = "INT8/INT8, INT16/INT8, INT8/INT4"


@dataclass(frozen=True, slots=True)
class QuantLayer:
    """A layer that passed every check: its name, its type (a key of LAYER_TYPES), and why its weight cannot
    be INT4-packed (None when it can, or when the caller does not know)."""

    name: str
    layer_type: str
    int4_blocker: Int4Blocker | None = None


@dataclass(frozen=True, slots=True)
class DataSetting:
    """`retrain_data_config` of one layer."""

    algo: str = "ulq_quantize"
    clip_max: float | None = None
    clip_min: float | None = None
    fixed_min: bool | None = None
    dst_type: str = "INT8"


@dataclass(frozen=True, slots=True)
class WeightSetting:
    """`retrain_weight_config` of one layer."""

    algo: str
    channel_wise: bool
    dst_type: str = "INT8"


@dataclass(frozen=True, slots=True)
class LayerSetting:
    """Everything the JSON says about one layer, and where it came from (for the report)."""

    name: str
    layer_type: str
    retrain_enable: bool
    data: DataSetting
    weight: WeightSetting
    source: str = "default"  # "default", "global", "override_layer_types", "override_layer_configs"
    # set when the config asked INT4 weights of a layer that cannot be INT4-packed (SPEC 8): written as INT8
    downgraded: Int4Blocker | None = None
    # the skip entries that disabled the layer (`skip_layers 'conv2'`, `skip_layer_types 'Conv2d'`)
    skipped_by: tuple[str, ...] = ()

    @property
    def downgrade_reason(self) -> str | None:
        """The one-line report reason of the INT4 -> INT8 downgrade, None when there was none."""
        if self.downgraded is None:
            return None
        return f"{self.name}: weight INT4 -> INT8: {self.downgraded.why}"


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """The whole config: top-level keys and the layers in named_modules() order."""

    layers: tuple[LayerSetting, ...]
    batch_num: int = 1
    fakequant_precision_mode: str | None = None
    notes: tuple[tuple[str, str], ...] = ()  # (layer or "", one-line note) for legal-but-surprising configs


def default_weight(layer_type: str) -> WeightSetting:
    return WeightSetting("arq_retrain", LAYER_TYPE_TABLE[layer_type].channel_wise_default)


def resolve(
    layers: Sequence[QuantLayer],
    simple: SimpleConfig | None = None,
    excluded: Mapping[str, str] | None = None,
    modules: Mapping[str, str] | None = None,
    types: Sequence[str] = SUPPORTED_TYPES,
) -> ResolvedConfig:
    """Give every quantizable layer its settings.

    Args:
        layers: the layers that passed the checks, in named_modules() order.
        simple: the parsed simple config, or None for the built-in defaults.
        excluded: names of modules the checks excluded, with the reason; used to explain a simple config
            that names one of them.
        modules: the class name of every module of the model (named_modules()), used to explain a simple
            config that names a module that is not a candidate layer (e.g. a Conv1d).

    Raises:
        ConfigError: the simple config names an unknown layer or type, or is inconsistent.
    """
    if simple is not None:
        return resolve_simple(layers, simple, excluded or {}, modules or {}, types)
    return ResolvedConfig(
        tuple(
            LayerSetting(layer.name, layer.layer_type, True, DataSetting(), default_weight(layer.layer_type))
            for layer in layers
        )
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
    default = LAYER_TYPE_TABLE[layer_type].channel_wise_default
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
    types: Sequence[str] = SUPPORTED_TYPES,
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
            problems.append(_unknown_layer(field, name, names, excluded, modules or {}, tuple(types)))

    settings: list[LayerSetting] = []
    notes: list[tuple[str, str]] = []
    grouped: dict[str, list[str]] = {}
    for layer in layers:
        setting, layer_notes, layer_problems = _resolve_layer(layer, view)
        settings.append(setting)
        notes += layer_notes
        for problem in layer_problems:
            grouped.setdefault(problem, []).append(layer.name)
    problems += [f"{join_names(culprits)}: {problem}" for problem, culprits in grouped.items()]
    if problems:
        raise SimpleConfigError(simple.file_name, problems)
    if not any(setting.retrain_enable for setting in settings):
        skips = "; ".join(
            f"{field}: {join_names(dict.fromkeys(v for f, v in view.skip_layers + view.skip_types if f == field))}"
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
    # SPEC 8: after the pair check, which judges the types the config asked for
    downgraded = None
    if weight.dst_type == "INT4" and layer.int4_blocker is not None:
        weight, downgraded = replace(weight, dst_type="INT8"), layer.int4_blocker
    skips = () if enable else tuple(skipped_by)
    return LayerSetting(name, layer_type, enable, data, weight, source, downgraded, skips), notes, problems


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
        default_cw = LAYER_TYPE_TABLE[layer_type].channel_wise_default
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
    for field, value, count in duplicate_skips(simple.message):
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
    field: str,
    name: str,
    names: Sequence[str],
    excluded: Mapping[str, str],
    modules: Mapping[str, str],
    types: tuple[str, ...],
) -> str:
    if name in excluded:
        return f"{field}: {name!r} is not a quantizable layer: the checks excluded it ({excluded[name]})"
    supported = ", ".join(types)
    if name in modules:
        class_name = modules[name]
        if class_name in LAYER_TYPE_TABLE and class_name not in types and LAYER_TYPE_TABLE[class_name].modes:
            return (
                f"{field}: {name!r} is a {class_name}, not a quantizable layer type in this mode (supported: "
                f"{supported}); it is one with --layer-types amct-latest"
            )
        if class_name in types:
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
    return f"{base}; the quantizable layers are: {join_names(names)}"
