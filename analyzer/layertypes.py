"""Declarative tables: the quantizable layer types and the per-op facts the checks rely on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpFacts:
    """Where an ONNX op keeps its weight and bias, and which weight axis is the output channel."""

    weight_input: int
    bias_input: int | None
    out_channel_axis: int


OP_FACTS: dict[str, OpFacts] = {
    "Gemm": OpFacts(weight_input=1, bias_input=2, out_channel_axis=0),
    "MatMul": OpFacts(weight_input=1, bias_input=None, out_channel_axis=1),
    "Conv": OpFacts(weight_input=1, bias_input=2, out_channel_axis=0),
    "ConvTranspose": OpFacts(weight_input=1, bias_input=2, out_channel_axis=1),
}
QUANTIZABLE_OPS = frozenset(OP_FACTS)

# ops that only pass a weight through on its way to the op (the dynamo exporter transposes Linear
# weights for MatMul; other exporters cast or reshape)
WEIGHT_PASSTHROUGH_OPS = frozenset({"Transpose", "Identity", "Cast", "Reshape"})


@dataclass(frozen=True, slots=True)
class LayerType:
    """A torch class whose modules can be put in the config."""

    name: str
    op_types: tuple[str, ...]
    weight_rank: int
    channel_wise_default: bool


LAYER_TYPES: dict[str, LayerType] = {
    "Linear": LayerType("Linear", ("Gemm", "MatMul"), 2, channel_wise_default=False),
    "Conv2d": LayerType("Conv2d", ("Conv",), 4, channel_wise_default=True),
    "ConvTranspose2d": LayerType("ConvTranspose2d", ("ConvTranspose",), 4, channel_wise_default=True),
}
SUPPORTED_TYPES = tuple(LAYER_TYPES)
CONV_TYPES = frozenset({"Conv2d", "ConvTranspose2d"})
SMALL_CIN = 16  # Cin at or below this: quantizing is not recommended for accuracy
# torch classes of weight-carrying layers the report lists even when they are not candidates (a Conv1d,
# a renamed Linear subclass), so that no such module goes unaccounted for
REPORTED_TORCH_CLASSES = frozenset(
    {
        "Linear",
        "Bilinear",
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "ConvTranspose1d",
        "ConvTranspose2d",
        "ConvTranspose3d",
    }
)
