"""Candidates + the calibration simple config (or the call's arguments) -> every layer's parameters, SPEC 10.3-10.6.

Every PTQ rule lives here, in AMCT's order: the per-type facts (`PTQ_TYPE_TABLE`), the checks and their messages
(SPEC 10.6, the first failing check is the error), the resolution (10.5: layer override > type override >
common_config > defaults; skips; the four automatic fallbacks; the asymmetric rule) and what the report says
about what AMCT does silently (fallbacks per layer, ignored overrides, ignored arguments; SPEC 10.7).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from analyzer.errors import ConfigError, NoQuantizableLayerError
from analyzer.kinds.ptq_config import (
    ADA,
    ARQ,
    DEFAULT_NUM_BITS,
    HFMG,
    IFMR,
    LAYER_OVERRIDES,
    TYPE_OVERRIDES,
    ActSpec,
    Calibration,
    PtqSimple,
    WeightSpec,
)
from analyzer.layertypes import Int4Blocker
from analyzer.simple_config import SimpleConfigError


@dataclass(frozen=True, slots=True)
class PtqType:
    """What the calibration config allows per candidate type (SPEC 10.2-10.6).

    Attributes:
        channel_wise: the default `channel_wise`; True types also accept `channel_wise: true`.
        int16: INT16 activations (a Linear only with a bias, see `PtqLayer.int16_capable`).
        ada: the ADA weight algorithm.
        dmq_by_type: `dmq_balancer` in an `override_layer_types` entry of the type.
        bits_6_7: 6- and 7-bit weights.
        symmetric_only: activations are always symmetric (`asymmetric` false).
        fusion: a `skip_fusion_layers` entry may name a layer of the type.
    """

    channel_wise: bool
    int16: bool
    ada: bool = False
    dmq_by_type: bool = True
    bits_6_7: bool = False
    symmetric_only: bool = False
    fusion: bool = False


# AMCT's QUANTIZABLE_TYPES, in its order
PTQ_TYPE_TABLE: dict[str, PtqType] = {
    "Conv1d": PtqType(channel_wise=True, int16=True, fusion=True),
    "Conv2d": PtqType(channel_wise=True, int16=True, ada=True, bits_6_7=True, fusion=True),
    "Conv3d": PtqType(channel_wise=True, int16=False, symmetric_only=True, fusion=True),
    "ConvTranspose1d": PtqType(channel_wise=True, int16=True),
    "ConvTranspose2d": PtqType(channel_wise=True, int16=True, ada=True),
    "Linear": PtqType(channel_wise=False, int16=True, ada=True),
    "AvgPool2d": PtqType(channel_wise=False, int16=False, dmq_by_type=False),
    "LSTM": PtqType(channel_wise=True, int16=True, dmq_by_type=False),
    "GRU": PtqType(channel_wise=True, int16=True, dmq_by_type=False),
}
PTQ_TYPES = tuple(PTQ_TYPE_TABLE)
FUSION_TYPES = ("Conv2d", "Conv3d", "Conv1d")  # as AMCT lists them in its message
WEIGHT_BITS = (4, 6, 7, 8)
NUM_OF_BINS = (1024, 2048, 4096, 8192)
# top-level keys of the JSON: a layer cannot take one of these names
GLOBAL_KEYS = (
    "version",
    "batch_num",
    "activation_offset",
    "do_fusion",
    "fakequant_precision_mode",
    "skip_fusion_layers",
)
SKIP_LAYERS, SKIP_TYPES, SKIP_FUSION = "skip_layers", "skip_layer_types", "skip_fusion_layers"

# the report's codes for what AMCT changes silently (SPEC 10.7); QS302 is the INT4 downgrade of every kind
INT4_CODE, INT4_CHECK = "QS302", "int4-downgrade"
INT16_CODE, INT16_CHECK = "QS303", "int16-fallback"
BITS_CODE, BITS_CHECK = "QS304", "weight-bits-fallback"
ADA_CODE, ADA_CHECK = "QS305", "ada-dropped"
DMQ_CODE, DMQ_CHECK = "QS306", "dmq-dropped"
FALLBACK_CODES = (INT16_CODE, BITS_CODE, INT4_CODE, ADA_CODE, DMQ_CODE)


@dataclass(frozen=True, slots=True)
class PtqLayer:
    """A candidate that passed the shared checks: its name, type, whether it has a bias (a Linear without one
    is not INT16-capable) and why its weight cannot be INT4-packed (None when it can)."""

    name: str
    layer_type: str
    has_bias: bool = True
    int4_blocker: Int4Blocker | None = None

    @property
    def int16_capable(self) -> bool:
        return PTQ_TYPE_TABLE[self.layer_type].int16 and (self.layer_type != "Linear" or self.has_bias)


@dataclass(frozen=True, slots=True)
class ModelView:
    """What the PTQ rules need of the model.

    Attributes:
        modules: every module of `named_modules()` -> its class name, in that order.
        layers: the candidates that passed the shared checks, in named_modules() order.
        excluded: the candidates a check excluded -> the reason.
    """

    modules: Mapping[str, str]
    layers: tuple[PtqLayer, ...]
    excluded: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PtqArgs:
    """The call's own arguments (used only without a simple config, SPEC 10.1 item 5)."""

    skip_layers: tuple[str, ...] = ()
    batch_num: int = 1
    activation_offset: bool = True


@dataclass(frozen=True, slots=True)
class Fallback:
    """A change AMCT makes silently to one layer: the report's code, check name and one-line reason."""

    code: str
    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class LayerParams:
    """One layer of the calibration config; `weight` None when its block is dropped (ADA, SPEC 10.5 rule 9)."""

    name: str
    layer_type: str
    quant_enable: bool
    act: ActSpec
    weight: WeightSpec | None
    dmq: float | None = None
    source: str = "defaults"
    skipped_by: tuple[str, ...] = ()
    fallbacks: tuple[Fallback, ...] = ()


@dataclass(frozen=True, slots=True)
class PtqResolved:
    """The whole calibration config: top-level values, the layers sorted by name, and report notes."""

    layers: tuple[LayerParams, ...]
    batch_num: int = 1
    activation_offset: bool = True
    do_fusion: bool = True
    fakequant_precision_mode: str | None = None
    skip_fusion_layers: tuple[str, ...] = ()
    notes: tuple[tuple[str, str], ...] = ()  # (layer or "", one line)


class SkipsDisableAllError(ConfigError, NoQuantizableLayerError):
    """The skip lists (arguments or simple config) leave no layer to quantize; no file is written."""


def _error(simple: PtqSimple | None, message: str) -> ConfigError:
    """A config error: prefixed with the simple config's file name when the file is the culprit."""
    return SimpleConfigError(simple.file_name, [message]) if simple is not None else ConfigError(message)


def _repeated(values: Sequence[str]) -> list[str]:
    counts = Counter(values)
    return [value for value in dict.fromkeys(values) if counts[value] > 1]


def _check_repeated(simple: PtqSimple | None, field: str, values: Sequence[str]) -> None:
    repeated = _repeated(values)
    if repeated:
        # AMCT's message, its trailing space included
        raise _error(simple, f"Please delete repeated items in {field}, repeated items are {repeated!r} ")


def _check_skip_layers(simple: PtqSimple | None, model: ModelView, names: Sequence[str]) -> None:
    for name in names:
        if name not in model.modules:
            raise _error(simple, f"Layer {name} does not exist in the graph.")
        if model.modules[name] not in PTQ_TYPE_TABLE:
            raise _error(simple, f"Layer {name} does not support quantization.")


def _check_candidates(model: ModelView) -> None:
    if not model.layers:
        raise NoQuantizableLayerError("No layer support quantization in the graph.")
    for layer in model.layers:
        if layer.name in GLOBAL_KEYS:
            raise ConfigError(f"{layer.name} is a global parameter, can not be a layer name")


# ------------------------------------------------------------------------------------ without a simple config


def resolve_arguments(model: ModelView, args: PtqArgs) -> PtqResolved:
    """The default call (SPEC 10.3): every candidate with the default parameters, `skip_layers` disabled.

    Raises:
        ConfigError: a repeated, unknown or non-quantizable name in `skip_layers`, or `batch_num <= 0`.
        NoQuantizableLayerError: no candidate, or `skip_layers` disables every one.
    """
    _check_repeated(None, SKIP_LAYERS, args.skip_layers)
    _check_skip_layers(None, model, args.skip_layers)
    _check_candidates(model)
    skipped = set(args.skip_layers)
    if all(layer.name in skipped for layer in model.layers):
        raise SkipsDisableAllError("Except skip_layers, no layer needs to quantize.")
    if args.batch_num <= 0:
        raise ConfigError("The batch_num must be greater than zero.")
    layers = []
    for layer in model.layers:
        row = PTQ_TYPE_TABLE[layer.layer_type]
        asymmetric = False if row.symmetric_only else args.activation_offset
        skipped_by = (f"skip_layers argument {layer.name!r}",) if layer.name in skipped else ()
        layers.append(
            LayerParams(
                layer.name,
                layer.layer_type,
                not skipped_by,
                ActSpec(asymmetric=asymmetric),
                WeightSpec(num_bits=DEFAULT_NUM_BITS, channel_wise=row.channel_wise),
                skipped_by=skipped_by,
            )
        )
    return PtqResolved(
        tuple(sorted(layers, key=lambda p: p.name)),
        batch_num=args.batch_num,
        activation_offset=args.activation_offset,
    )


# --------------------------------------------------------------------------------------- with a simple config


def _override_layer_problem(model: ModelView, name: str, calib: Calibration) -> str | None:
    """The first AMCT check an `override_layer_configs` entry fails (SPEC 10.6), None when it passes."""
    if name not in model.modules:
        return f"Layer {name} does not exist in the graph."
    class_name = model.modules[name]
    layer = next((layer for layer in model.layers if layer.name == name), None)
    act, weight = calib.act, calib.weight
    if class_name == "Conv3d" and act is not None and act.asymmetric:
        return f"Layer {name} can only set asymmetric be False "
    channel_wise_type = class_name in PTQ_TYPE_TABLE and PTQ_TYPE_TABLE[class_name].channel_wise
    if weight is not None and weight.algo == ARQ and weight.channel_wise and not channel_wise_type:
        return f"channel_wise can only be False for {name} layer."
    if calib.dmq is not None and (layer is None or layer.layer_type == "AvgPool2d"):
        return f"dmq_balancer not support for {name} layer"
    if act is not None and act.num_bits == 16 and not (layer is not None and layer.int16_capable):
        return f"int16_quantizable not support for {name} layer"
    if (
        weight is not None
        and weight.algo == ADA
        and not (layer is not None and PTQ_TYPE_TABLE[layer.layer_type].ada)
    ):
        return f"ada_quantizable not support for {name} layer"
    if weight is not None and weight.algo == ARQ and weight.num_bits in (6, 7) and class_name != "Conv2d":
        return f"quant_bits {weight.num_bits} not support for {name} layer"
    return None


def _override_type_problem(layer_type: str, calib: Calibration) -> str | None:
    """The first AMCT check an `override_layer_types` entry fails (SPEC 10.6), None when it passes."""
    if layer_type not in PTQ_TYPE_TABLE:
        return f"Layer type {layer_type} does not support quantize."
    row = PTQ_TYPE_TABLE[layer_type]
    act, weight = calib.act, calib.weight
    if row.symmetric_only and act is not None and act.asymmetric:
        return f"Layer type {layer_type} can only set asymmetric be False "
    if weight is not None and weight.algo == ARQ and weight.channel_wise and not row.channel_wise:
        return f"channel_wise can only be False for {layer_type} type"
    if calib.dmq is not None and not row.dmq_by_type:
        return f"dmq_balancer not support for {layer_type} type"
    if act is not None and act.num_bits == 16 and not row.int16:
        return f"int16_quantizable not support for {layer_type} type"
    if weight is not None and weight.algo == ADA and not row.ada:
        return f"ada_quantizable not support for {layer_type} layer"  # sic: AMCT says layer
    if weight is not None and weight.algo == ARQ and weight.num_bits in (6, 7) and not row.bits_6_7:
        return f"quant_bits {weight.num_bits} not support for {layer_type} type"
    return None


def _check_overrides(simple: PtqSimple, model: ModelView) -> None:
    _check_repeated(simple, LAYER_OVERRIDES, [name for name, _ in simple.layer_overrides])
    for name, calib in simple.layer_overrides:
        problem = _override_layer_problem(model, name, calib)
        if problem is not None:
            raise _error(simple, problem)
    _check_repeated(simple, TYPE_OVERRIDES, [layer_type for layer_type, _ in simple.type_overrides])
    for layer_type, calib in simple.type_overrides:
        problem = _override_type_problem(layer_type, calib)
        if problem is not None:
            raise _error(simple, problem)


def _layer_params(layer: PtqLayer, simple: PtqSimple) -> LayerParams:
    """SPEC 10.5 rules 1-8 for one layer (rule 9, the ADA drop, comes after the value checks)."""
    row = PTQ_TYPE_TABLE[layer.layer_type]
    layer_overrides, type_overrides = dict(simple.layer_overrides), dict(simple.type_overrides)
    common = simple.common
    calib = layer_overrides.get(layer.name) or type_overrides.get(layer.layer_type) or common
    act = (calib.act if calib is not None else None) or ActSpec()
    weight = (calib.weight if calib is not None else None) or WeightSpec()
    weight = replace(
        weight,
        num_bits=DEFAULT_NUM_BITS if weight.num_bits is None else weight.num_bits,
        channel_wise=row.channel_wise if weight.channel_wise is None else weight.channel_wise,
    )
    dmq = calib.dmq if calib is not None else None
    fallbacks: list[Fallback] = []
    from_common = calib is not None and calib is common
    name = layer.name
    if dmq is not None and layer.layer_type == "AvgPool2d" and from_common:
        fallbacks.append(
            Fallback(
                DMQ_CODE, DMQ_CHECK, f"{name}: dmq_balancer of common_config dropped: AvgPool2d has no weight"
            )
        )
        dmq = None
    common_int16 = common is not None and common.act is not None and common.act.num_bits == 16
    if common_int16 and act.num_bits == 16 and not layer.int16_capable:
        what = "a Linear without bias" if layer.layer_type == "Linear" else f"a {layer.layer_type}"
        fallbacks.append(
            Fallback(
                INT16_CODE, INT16_CHECK, f"{name}: activation INT16 -> INT8: {what} is not INT16-capable"
            )
        )
        act = replace(act, num_bits=8)
    if weight.num_bits in (6, 7) and not row.bits_6_7:
        fallbacks.append(
            Fallback(
                BITS_CODE,
                BITS_CHECK,
                f"{name}: weight {weight.num_bits}-bit -> 8-bit: only Conv2d keeps 6- and 7-bit weights",
            )
        )
        weight = replace(weight, num_bits=8)
    if weight.num_bits == 4 and layer.layer_type != "AvgPool2d" and layer.int4_blocker is not None:
        fallbacks.append(
            Fallback(INT4_CODE, INT4_CHECK, f"{name}: weight INT4 -> INT8: {layer.int4_blocker.why}")
        )
        weight = replace(weight, num_bits=8)
    if row.symmetric_only:
        act = replace(act, asymmetric=False)
    elif act.asymmetric is None:
        common_act = common.act if common is not None else None
        if common_act is not None and common_act.asymmetric is not None and act.algo == common_act.algo:
            act = replace(act, asymmetric=common_act.asymmetric)
        else:
            act = replace(act, asymmetric=simple.activation_offset)
    skipped_by = tuple(
        [f"skip_layers {name!r}"] * (name in simple.skip_layers)
        + [f"skip_layer_types {layer.layer_type!r}"] * (layer.layer_type in simple.skip_layer_types)
    )
    source = calib.origin if calib is not None else "defaults"
    return LayerParams(
        name, layer.layer_type, not skipped_by, act, weight, dmq, source, skipped_by, tuple(fallbacks)
    )


def _value_problem(params: LayerParams) -> str | None:
    """The first value check a layer fails (SPEC 10.6, without the ` in layer <n>` suffix), None if none."""
    act, weight = params.act, params.weight
    # not a check of AMCT's, which would write NaN or Infinity, neither of them JSON
    floats = {"dmq_balancer_param": params.dmq}
    if act.algo == IFMR:
        floats.update(
            max_percentile=act.max_percentile,
            min_percentile=act.min_percentile,
            search_range_start=act.search_range[0],
            search_range_end=act.search_range[1],
            search_step=act.search_step,
        )
    if weight is not None and weight.algo == ADA:
        floats.update(
            reg_param=weight.reg_param,
            warm_start=weight.warm_start,
            beta_range_start=weight.beta_range[0],
            beta_range_end=weight.beta_range[1],
        )
    for field, value in floats.items():
        if value is not None and not math.isfinite(value):
            return f"{field} must be a finite number, got {value}"
    if weight is not None and weight.num_bits not in WEIGHT_BITS:
        return "weight num_bits is not in [4, 6, 7, 8]"
    if act.algo == IFMR:
        low, high = act.search_range
        if low <= 0:
            return "search_range[0] must be greater than zero"
        if low >= high:
            return "search_range[0] must be less than search_range[1]"
        if act.search_step <= 0:
            return "The search_step must be greater than zero"
        # on the decimal strings, as AMCT compares them: 0.6 with [0.7, 1.3] is accepted
        if Decimal(repr(act.search_step)) > Decimal(repr(high)) - Decimal(repr(low)):
            return "The search_step must be less than or equal to (search_range[1] - search_range[0])"
        for field, value in (("max_percentile", act.max_percentile), ("min_percentile", act.min_percentile)):
            if not 0.5 < value <= 1.0:
                return f"The {field} must be greater than 0.5 and less than or equal to 1.0"
    if act.algo == HFMG and act.num_of_bins not in NUM_OF_BINS:
        return f"num_of_bins {act.num_of_bins} must be in [1024, 2048, 4096, 8192]"
    if weight is not None and weight.algo == ADA:
        if not 0 < weight.reg_param < 1:
            return "The reg_param must be greater than 0 and less than 1"
        if weight.beta_range[1] <= 0:
            return "The beta_range_end must be greater than 0"
    if params.dmq is not None and not 0.2 <= params.dmq <= 0.8:
        return "The dmq_balancer_param must be in range [0.2, 0.8]"
    if weight is not None and weight.algo == ADA:
        if weight.beta_range[0] <= weight.beta_range[1]:
            return "beta_range beta_range_start must large than beta_range_end"
        if not 0 < weight.warm_start < 1:
            return "warm_start must be less than 1 and larger than 0"
    if weight is not None and weight.channel_wise and not PTQ_TYPE_TABLE[params.layer_type].channel_wise:
        return f"The channel_wise must be False for layer type {params.layer_type}"
    return None


def _drop_ada(params: LayerParams, common: Calibration | None) -> LayerParams:
    """SPEC 10.5 rule 9: with `ada_quantize` in common_config, an ADA layer of a type ADA does not support loses
    its whole weight block."""
    common_ada = common is not None and common.weight is not None and common.weight.algo == ADA
    weight = params.weight
    if not common_ada or weight is None or weight.algo != ADA or PTQ_TYPE_TABLE[params.layer_type].ada:
        return params
    reason = (
        f"{params.name}: ada_quantize dropped: weight_quant_params removed "
        f"(ADA supports Conv2d, ConvTranspose2d and Linear; this is a {params.layer_type})"
    )
    return replace(params, weight=None, fallbacks=(*params.fallbacks, Fallback(ADA_CODE, ADA_CHECK, reason)))


def resolve_simple(model: ModelView, simple: PtqSimple, args: PtqArgs | None = None) -> PtqResolved:
    """Apply a calibration simple config to the candidates, checking in AMCT's order (SPEC 10.5, 10.6).

    `args` are the call's own arguments: ignored (the simple config is the only source), and reported so.

    Raises:
        ConfigError: the first check that fails, with AMCT's message (prefixed with the file name).
        NoQuantizableLayerError: no candidate, or the skips leave none.
    """
    _check_repeated(simple, SKIP_LAYERS, simple.skip_layers)
    _check_repeated(simple, SKIP_TYPES, simple.skip_layer_types)
    _check_repeated(simple, SKIP_FUSION, simple.skip_fusion_layers)
    _check_overrides(simple, model)
    _check_skip_layers(simple, model, simple.skip_layers)
    for layer_type in simple.skip_layer_types:
        if layer_type not in PTQ_TYPE_TABLE:
            raise _error(simple, f"Layer type {layer_type} does not support quantize.")
    if set(PTQ_TYPES) <= set(simple.skip_layer_types):
        raise SkipsDisableAllError(f"{simple.file_name}: Except skip_types, no type need to quantize.")
    _check_candidates(model)
    params = [_layer_params(layer, simple) for layer in model.layers]
    if not any(p.quant_enable for p in params):
        raise SkipsDisableAllError(
            f"{simple.file_name}: Except skip_layers or skip_types, no layer need to quantize."
        )
    if simple.batch_num <= 0:
        raise _error(simple, "The batch_num must be greater than zero.")
    for name in simple.skip_fusion_layers:
        if name not in model.modules:
            raise _error(simple, f'Layer "{name}" in skip_fusion_layers does not exist in the graph.')
        if model.modules[name] not in FUSION_TYPES:
            raise _error(
                simple, f'Skip fusion layer "{name}"\'s type not in supported list {list(FUSION_TYPES)!r}'
            )
    for p in params:  # named_modules() order
        problem = _value_problem(p)
        if problem is not None:
            raise _error(simple, f"{problem} in layer {p.name}")
    final = [_drop_ada(p, simple.common) for p in params]
    return PtqResolved(
        tuple(sorted(final, key=lambda p: p.name)),
        batch_num=simple.batch_num,
        activation_offset=simple.activation_offset,
        do_fusion=simple.do_fusion,
        fakequant_precision_mode=simple.fakequant_precision_mode,
        skip_fusion_layers=simple.skip_fusion_layers,
        notes=tuple(_notes(model, simple, params, args)),
    )


def _notes(
    model: ModelView, simple: PtqSimple, params: Sequence[LayerParams], args: PtqArgs | None
) -> list[tuple[str, str]]:
    """What AMCT does silently with this simple config (SPEC 10.7), one line each."""
    notes: list[tuple[str, str]] = [("", note) for note in simple.parse_notes]
    candidates = {layer.name for layer in model.layers}
    for name, calib in simple.layer_overrides:
        if name in candidates:
            continue
        why = (
            f"the checks excluded it ({model.excluded[name]})"
            if name in model.excluded
            else f"it is a {model.modules[name]}, not a candidate layer"
        )
        notes.append((name, f"{calib.origin}: {why}; the entry is ignored, as AMCT ignores it"))
    layer_overrides = dict(simple.layer_overrides)
    for p in params:
        if p.skipped_by and p.name in layer_overrides:
            notes.append(
                (
                    p.name,
                    f"{p.name}: {' and '.join(p.skipped_by)} keeps quant_enable false although "
                    f"{layer_overrides[p.name].origin} sets its parameters (unlike the retrain call)",
                )
            )
    present = {layer.layer_type for layer in model.layers}
    for layer_type, calib in simple.type_overrides:
        if layer_type not in present:
            notes.append(
                ("", f"{calib.origin}: the model has no {layer_type} candidate; the entry has no effect")
            )
    if args is not None:
        ignored = []
        if args.skip_layers:
            ignored.append(f"skip_layers={list(args.skip_layers)!r}")
        if args.batch_num != 1:
            ignored.append(f"batch_num={args.batch_num}")
        if not args.activation_offset:
            ignored.append("activation_offset=False")
        if ignored:
            notes.append(
                (
                    "",
                    f"{', '.join(ignored)} ignored: with config_defination the simple config is the only source "
                    f"(batch_num {simple.batch_num}, activation_offset {str(simple.activation_offset).lower()}"
                    f"{', its skip lists' if args.skip_layers else ''})",
                )
            )
    return notes
