"""Declarative tables: the quantizable layer types and the per-op facts the checks rely on.

Everything that differs between layer types lives here, in one row per type: the ops it exports to, the
weight rank, the default `channel_wise`, in which layer-type modes it is a candidate, and which of the
type-specific checks apply to it. Where Cin sits in a weight is a per-op fact (`OP_FACTS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from graph.ir import WEIGHT_LAYER_CLASSES


@dataclass(frozen=True, slots=True)
class OpFacts:
    """Where an ONNX op keeps its weight and bias, and which weight axes are the output and input channels.

    `cin_axis` is the input-channel axis of the weight as the op reads it. `transposed_by` names an attribute
    that, when 1, makes the op read its weight transposed (Gemm's `transB`); `cin_per_group` says the weight
    holds Cin / group along that axis (a grouped Conv), so Cin is that dim times the `group` attribute.
    """

    weight_input: int | None  # None for an op without a weight (AveragePool)
    bias_input: int | None
    out_channel_axis: int
    cin_axis: int
    transposed_by: str | None = None
    cin_per_group: bool = False
    recurrent_input: int | None = None  # an RNN op's R; its weights are traced through the module's own ops


OP_FACTS: dict[str, OpFacts] = {
    "Gemm": OpFacts(weight_input=1, bias_input=2, out_channel_axis=0, cin_axis=0, transposed_by="transB"),
    "MatMul": OpFacts(weight_input=1, bias_input=None, out_channel_axis=1, cin_axis=0),
    "Conv": OpFacts(weight_input=1, bias_input=2, out_channel_axis=0, cin_axis=1, cin_per_group=True),
    "ConvTranspose": OpFacts(weight_input=1, bias_input=2, out_channel_axis=1, cin_axis=0),
    # W (and R) of an LSTM/GRU are computed from the module's parameters (gates reordered) by both exporters;
    # the last axis is input_size in torch's weight_ih (4H, in) and in ONNX's W (dirs, 4H, in) alike
    "LSTM": OpFacts(weight_input=1, bias_input=3, out_channel_axis=-2, cin_axis=-1, recurrent_input=2),
    "GRU": OpFacts(weight_input=1, bias_input=3, out_channel_axis=-2, cin_axis=-1, recurrent_input=2),
    # AvgPool2d (a calibration-config candidate, SPEC 10.2) has no weight; its op is indexed only when it is
    # selected, so that the other kinds' reports stay as they were
    "AveragePool": OpFacts(weight_input=None, bias_input=None, out_channel_axis=0, cin_axis=0),
}
# the ops with a weight: indexed for every kind
QUANTIZABLE_OPS = frozenset(op for op, facts in OP_FACTS.items() if facts.weight_input is not None)

# ops that only pass a weight through on its way to the op (the dynamo exporter transposes Linear
# weights for MatMul; other exporters cast or reshape)
WEIGHT_PASSTHROUGH_OPS = frozenset({"Transpose", "Identity", "Cast", "Reshape"})
# ops whose output is a tensor's shape: fixed by the export, whatever the values of their input
SHAPE_OPS = frozenset({"Shape", "Size"})
# ops whose output has the broadcast shape of their inputs: a weight computed from the module's parameters
# (weight_g * weight_v / norm, weight_orig / sigma, weight_orig * mask) has the shape these ops give it
WEIGHT_ELEMENTWISE_OPS = frozenset({"Mul", "Div", "Add", "Sub", "Neg", "Abs", "Cast", "Identity", "Where"})

# layer-type modes (SPEC section 9): the AMCT this project documents, and the current open-source AMCT
DOCUMENTED = "documented"
AMCT_LATEST = "amct-latest"
MODES = (DOCUMENTED, AMCT_LATEST)

# names of the type-specific checks a row of LAYER_TYPE_TABLE can ask for
CHECK_PADDING_MODE = "padding-mode"
CHECK_INPUT_RANK = "input-rank"
CHECK_SMALL_CIN = "small-cin"
CHECK_TRANSPOSED_INPUT = "transposed-input"
CHECK_DEPTH_DILATION = "depth-dilation"
CHECK_RNN_CONFIG = "rnn-config"
_CONV_CHECKS = frozenset({CHECK_PADDING_MODE, CHECK_INPUT_RANK, CHECK_SMALL_CIN})
_NEW_CONV_CHECKS = frozenset({CHECK_PADDING_MODE, CHECK_INPUT_RANK})


@dataclass(frozen=True, slots=True)
class LayerType:
    """A torch class whose modules can be put in the config, and the facts that depend on the type.

    Attributes:
        name: the torch class name (`type(module).__name__` of a candidate).
        op_types: the ONNX ops its forward exports to.
        weight_rank: the rank of its weight.
        channel_wise_default: `channel_wise` when the simple config does not set it.
        modes: the layer-type modes in which it is a candidate.
        checks: the type-specific checks that apply to it (CHECK_PADDING_MODE, CHECK_INPUT_RANK, ...).
        amct_keeps_shared: AMCT 2be20daf keeps two such layers that share a weight (SPEC 9 rule 6).
        has_weight: False for a type without a weight (AvgPool2d): its op has none, and needs none.
    """

    name: str
    op_types: tuple[str, ...]
    weight_rank: int
    channel_wise_default: bool
    modes: frozenset[str] = frozenset(MODES)
    checks: frozenset[str] = frozenset()
    amct_keeps_shared: bool = False
    has_weight: bool = True


_LATEST = frozenset({AMCT_LATEST})

LAYER_TYPE_TABLE: dict[str, LayerType] = {
    "Linear": LayerType(
        "Linear",
        ("Gemm", "MatMul"),
        2,
        channel_wise_default=False,
        checks=frozenset({CHECK_TRANSPOSED_INPUT}),
    ),
    "Conv2d": LayerType("Conv2d", ("Conv",), 4, channel_wise_default=True, checks=_CONV_CHECKS),
    "ConvTranspose2d": LayerType(
        "ConvTranspose2d", ("ConvTranspose",), 4, channel_wise_default=True, checks=_CONV_CHECKS
    ),
    # the current AMCT's types (SPEC section 9), candidates in the amct-latest mode only
    "Conv1d": LayerType(
        "Conv1d", ("Conv",), 3, True, modes=_LATEST, checks=_NEW_CONV_CHECKS, amct_keeps_shared=True
    ),
    "Conv3d": LayerType(
        "Conv3d", ("Conv",), 5, True, modes=_LATEST, checks=_NEW_CONV_CHECKS | {CHECK_DEPTH_DILATION}
    ),
    "ConvTranspose1d": LayerType(
        "ConvTranspose1d", ("ConvTranspose",), 3, True, modes=_LATEST, checks=_NEW_CONV_CHECKS
    ),
    "LSTM": LayerType(
        "LSTM",
        ("LSTM",),
        2,
        True,
        modes=_LATEST,
        checks=frozenset({CHECK_RNN_CONFIG}),
        amct_keeps_shared=True,
    ),
    "GRU": LayerType(
        "GRU", ("GRU",), 2, True, modes=_LATEST, checks=frozenset({CHECK_RNN_CONFIG}), amct_keeps_shared=True
    ),
    # a candidate of the calibration config only (SPEC 10.2), in no layer-type mode of the retrain call
    "AvgPool2d": LayerType("AvgPool2d", ("AveragePool",), 0, False, modes=frozenset(), has_weight=False),
}
# the types a `layer_types` argument can name
ALL_TYPES = tuple(name for name, row in LAYER_TYPE_TABLE.items() if row.modes)


def indexed_ops(selected: tuple[str, ...]) -> frozenset[str]:
    """The op types the module index collects for a selection: every op with a weight, and the ops of the
    selected types without one (AveragePool when AvgPool2d is selected)."""
    return QUANTIZABLE_OPS | {op for name in selected for op in LAYER_TYPE_TABLE[name].op_types}


def types_of_mode(mode: str) -> tuple[str, ...]:
    """The candidate types of a layer-type mode, in table order."""
    return tuple(name for name, row in LAYER_TYPE_TABLE.items() if mode in row.modes)


# the candidate types of the default mode
SUPPORTED_TYPES = types_of_mode(DOCUMENTED)
LAYER_TYPES: dict[str, LayerType] = {name: LAYER_TYPE_TABLE[name] for name in SUPPORTED_TYPES}


def select_types(layer_types: object) -> tuple[str, ...]:
    """The candidate types a `layer_types` argument selects, in table order.

    Args:
        layer_types: "documented", "amct-latest", or a collection of class names of LAYER_TYPE_TABLE.

    Raises:
        TypeError: `layer_types` is neither a string nor a collection of strings.
        ValueError: an unknown mode or class name (the message names it and the allowed values), or an
            empty collection.
    """
    if isinstance(layer_types, str):
        if layer_types in MODES:
            return types_of_mode(layer_types)
        raise ValueError(
            f"layer_types: unknown mode {layer_types!r}; use one of {', '.join(repr(m) for m in MODES)} "
            f"or a collection of these types: {', '.join(ALL_TYPES)}"
        )
    if not isinstance(layer_types, (list, tuple, set, frozenset)) or not all(
        isinstance(item, str) for item in layer_types
    ):
        raise TypeError(
            "layer_types must be 'documented', 'amct-latest' or a list/tuple/set of class names, got "
            f"{type(layer_types).__name__}"
        )
    unknown = sorted(set(layer_types) - set(ALL_TYPES))
    if unknown:
        raise ValueError(
            f"layer_types: {', '.join(repr(u) for u in unknown)} is not a type QuantScope can quantize; "
            f"allowed: {', '.join(ALL_TYPES)}"
        )
    if not layer_types:
        raise ValueError(f"layer_types: the collection is empty; allowed types: {', '.join(ALL_TYPES)}")
    return tuple(name for name in ALL_TYPES if name in layer_types)


def mode_name(selected: tuple[str, ...]) -> str:
    """How the report names a selection: the mode it equals, else the types."""
    for mode in MODES:
        if selected == types_of_mode(mode):
            return mode
    return ",".join(selected)


def applies(layer_type: str | None, check: str) -> bool:
    """Whether the type-specific `check` applies to layers of `layer_type`."""
    return layer_type is not None and check in LAYER_TYPE_TABLE[layer_type].checks


# INT4 packing (SPEC section 8): AMCT packs INT4 weights two at a time along Cin
ODD_CIN = "odd Cin"
GROUPED = "groups > 1"
INT4_PACK_KINDS = (ODD_CIN, GROUPED)


@dataclass(frozen=True, slots=True)
class Int4Blocker:
    """Why a layer's weight cannot be INT4-packed: `kind` is one of INT4_PACK_KINDS, `why` one clause."""

    kind: str
    why: str


def int4_blocker(cin: int | None, groups: int, hidden: int | None = None) -> Int4Blocker | None:
    """Why a weight with `cin` input channels and `groups` groups cannot be INT4-packed, or None if it can.

    A grouped or depthwise convolution cannot be packed whatever its channel counts; otherwise Cin must be
    even (the output-channel count never matters), and so must an LSTM/GRU's `hidden`, the Cin of its
    recurrent weight. An unknown Cin (a symbolic dim) blocks nothing.
    """
    if groups > 1:
        return Int4Blocker(GROUPED, f"groups = {groups}, INT4 packing does not support grouped convolutions")
    if cin is not None and cin % 2:
        what = "input_size" if hidden is not None else "Cin"
        return Int4Blocker(ODD_CIN, f"{what} = {cin} is odd, INT4 packs two values along Cin")
    if hidden is not None and hidden % 2:
        return Int4Blocker(ODD_CIN, f"hidden_size = {hidden} is odd, INT4 packs two values along Cin")
    return None


SMALL_CIN = 16  # Cin at or below this: quantizing is not recommended for accuracy
# torch classes of weight-carrying layers the report lists even when they are not candidates (a Conv1d,
# a renamed Linear subclass), so that no such module goes unaccounted for
REPORTED_TORCH_CLASSES = frozenset(WEIGHT_LAYER_CLASSES)
