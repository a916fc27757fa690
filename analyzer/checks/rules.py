"""The checks of SPEC section 2, one function each. Each docstring says why the rule matters.

A check never logs and never raises for a property of the model: it yields findings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from analyzer.checks.base import Check, Finding, Severity
from analyzer.layers import GraphIndex, Layer, LayerOp, typed_ops
from analyzer.layertypes import (
    CHECK_INPUT_RANK,
    CHECK_PADDING_MODE,
    CHECK_SMALL_CIN,
    LAYER_TYPES,
    SMALL_CIN,
    applies,
)
from graph import keys
from graph.build import TENSOR

# ops that may sit inside a Conv2d's own scope in front of the Conv without changing what it computes
_NEUTRAL_BEFORE_CONV = frozenset({"Constant", "Identity", "Cast", "Transpose", "Unsqueeze", "Squeeze"})


def _names(ops: tuple[LayerOp, ...]) -> tuple[str, ...]:
    return tuple(op.onnx_name for op in ops)


def _candidates(index: GraphIndex) -> Iterator[Layer]:
    return (layer for layer in index.layers if layer.is_candidate)


def not_a_candidate(index: GraphIndex) -> Iterator[Finding]:
    """Quantizable ops made by a module that is not a Linear/Conv2d/ConvTranspose2d (a Conv1d, a functional
    `F.linear` in a parent's forward, a subclass renamed like `NonDynamicallyQuantizableLinear`), or whose owner
    cannot be established. AMCT decides by class name, so these never enter the config; the report lists them
    so that no weight-carrying op goes unaccounted for."""
    for layer in index.layers:
        if layer.is_candidate:
            continue
        kinds = sorted({op.op_type for op in layer.ops})
        if layer.class_name in LAYER_TYPES:
            why = f"class {layer.class_name} is not torch.nn.{layer.class_name}"
        elif layer.torch_class and layer.torch_class != layer.class_name:
            why = f"class {layer.class_name} (a {layer.torch_class} subclass with another name) is not a quantizable type"
        else:
            why = f"class {layer.class_name} is not a quantizable type"
        made = (
            f"; makes {', '.join(kinds)}" if kinds else ("" if layer.scope else "; never called in forward")
        )
        yield NOT_A_CANDIDATE.finding(layer.name, f"{layer.name or '<root>'}: {why}{made}", _names(layer.ops))
    for op in index.unowned_ops:
        yield NOT_A_CANDIDATE.finding(
            None, f"{op.onnx_name}: {op.op_type} whose torch module cannot be established", (op.onnx_name,)
        )


def not_executed(index: GraphIndex) -> Iterator[Finding]:
    """No node of the graph belongs to the module: its forward never ran for these inputs, so there is
    nothing to calibrate (a module defined but unused, or whose weight a parent uses functionally)."""
    for layer in _candidates(index):
        if not layer.scope:
            yield NOT_EXECUTED.finding(
                layer.name, f"{layer.name}: no op of the graph belongs to it (never called in forward)"
            )


def reused_module(index: GraphIndex) -> Iterator[Finding]:
    """A module called several times shares one weight and one set of quantization factors between call
    sites whose activations differ; AMCT does not support it (reused layer: shared weight and bias)."""
    for layer in _candidates(index):
        ops = typed_ops(layer)
        if len(ops) > 1:
            yield REUSED_MODULE.finding(
                layer.name,
                f"{layer.name}: called {len(ops)} times ({len(ops)} {ops[0].op_type} ops share its weight)",
                _names(ops),
            )


def _tied(index: GraphIndex, first: str, second: str) -> bool:
    """Whether two layers' weights are one tensor in the model, when the model's ties are known."""
    if index.tied is None:
        return True
    params_a = set(index.modules[first].parameters) if first in index.modules else set()
    params_b = set(index.modules[second].parameters) if second in index.modules else set()
    return any(params_a & set(group) and params_b & set(group) for group in index.tied)


def shared_weight(index: GraphIndex) -> Iterator[Finding]:
    """The layer's weight or bias tensor is read by another candidate layer's op (tied parameters):
    quantizing one would change the other. Read from the graph's consumers, not from module attributes,
    so a tied module that never runs does not count; initializers an exporter merged by value are told
    apart from real ties with the model's parameter table when it is known."""
    for layer in _candidates(index):
        others: set[str] = set()
        tensors = []
        for op in typed_ops(layer):
            for tensor in (op.weight, op.bias):
                if tensor is None:
                    continue
                for node in index.weight_consumers.get(tensor, ()):
                    owner = index.owner(node)
                    if owner is None or owner == layer.name or owner not in index.by_name:
                        continue
                    if index.by_name[owner].is_candidate and _tied(index, layer.name, owner):
                        others.add(owner)
                        tensors.append(tensor)
        if others:
            names = ", ".join(sorted(others))
            yield SHARED_WEIGHT.finding(
                layer.name,
                f"{layer.name}: weight {sorted(set(tensors))[0]!r} is shared with {names}",
                _names(layer.ops),
            )


def _ops_before(index: GraphIndex, layer: Layer, op: LayerOp) -> list[str]:
    """Op nodes inside the layer's own scope that feed the op's data input (input 0), in graph order."""
    graph = index.graph
    found = []
    data_input = graph.nodes[op.node][keys.INPUTS][0]
    stack = [
        pred for pred in graph.predecessors(op.node) if graph.edges[pred, op.node].get(TENSOR) == data_input
    ]
    # another call of the same module (`self.conv(self.conv(x))`) ends the walk: it is not padding
    seen = {own.node for own in layer.ops}
    while stack:
        node = stack.pop()
        if (
            node in seen
            or graph.nodes[node][keys.KIND] != keys.KIND_OP
            or graph.nodes[node][keys.MODULE] != layer.name
        ):
            continue
        seen.add(node)
        found.append(node)
        for pred in graph.predecessors(node):
            stack.append(pred)
    found.sort(key=lambda node: graph.nodes[node][keys.INDEX])
    return found


def _neutral(data: dict[str, Any]) -> bool:
    """An op that leaves the conv's input as a zero-padded conv expects it: a constant-mode Pad is what
    `padding='same'` with an even kernel exports to, and is zero padding (padding_mode 'zeros')."""
    if data[keys.OP_TYPE] == "Pad":
        return (data[keys.ATTRS].get("mode") or "constant") == "constant"
    return data[keys.OP_TYPE] in _NEUTRAL_BEFORE_CONV


def padding_mode(index: GraphIndex) -> Iterator[Finding]:
    """A conv with `padding_mode` other than 'zeros' pads its input with a separate Pad (reflect, edge, wrap)
    or Slice/Concat ops inside its own scope; the quantized Conv would no longer be the whole layer."""
    graph = index.graph
    for layer in _candidates(index):
        if not applies(layer.layer_type, CHECK_PADDING_MODE):
            continue
        for op in typed_ops(layer):
            before = [n for n in _ops_before(index, layer, op) if not _neutral(graph.nodes[n])]
            if not before:
                continue
            pads = [n for n in before if graph.nodes[n][keys.OP_TYPE] == "Pad"]
            if pads:
                mode = graph.nodes[pads[0]][keys.ATTRS].get("mode") or "constant"
                reason = f"{layer.name}: Pad mode {mode!r} before {op.op_type} (padding_mode must be 'zeros')"
            else:
                kinds = ", ".join(sorted({graph.nodes[n][keys.OP_TYPE] for n in before}))
                reason = f"{layer.name}: {kinds} before {op.op_type} inside the module (padding_mode must be 'zeros')"
            yield PADDING_MODE.finding(
                layer.name, reason, tuple(graph.nodes[n][keys.ONNX_NAME] for n in before)
            )
            break


def input_rank(index: GraphIndex) -> Iterator[Finding]:
    """A Conv2d/ConvTranspose2d must see an (N, Cin, H, W) input; an unbatched 3-D input makes the module
    add and remove the batch axis itself (Unsqueeze/Squeeze in its scope), which the QAT wrapper does not."""
    graph = index.graph
    for layer in _candidates(index):
        if not applies(layer.layer_type, CHECK_INPUT_RANK):
            continue
        for op in typed_ops(layer):
            before = _ops_before(index, layer, op)
            if any(graph.nodes[n][keys.OP_TYPE] == "Unsqueeze" for n in before):
                yield INPUT_RANK.finding(
                    layer.name,
                    f"{layer.name}: input is not (N, Cin, H, W) (unbatched input, Unsqueeze before {op.op_type})",
                    (op.onnx_name,),
                )
                break


def transposed_input(index: GraphIndex) -> Iterator[Finding]:
    """A Gemm with transA = 1 multiplies a transposed activation; the quantized Linear assumes (N, in)."""
    graph = index.graph
    for layer in _candidates(index):
        for op in typed_ops(layer):
            if op.op_type == "Gemm" and graph.nodes[op.node][keys.ATTRS].get("transA") == 1:
                yield TRANSPOSED_INPUT.finding(
                    layer.name, f"{layer.name}: Gemm with transA=1 (transposed input)", (op.onnx_name,)
                )
                break


def no_weight_op(index: GraphIndex) -> Iterator[Finding]:
    """The module ran but made no op of the kind its class exports to with its own weight (its forward was
    replaced or it calls something else): there is no op to quantize for it."""
    for layer in _candidates(index):
        if layer.scope and not typed_ops(layer):
            assert layer.layer_type is not None
            wanted = "/".join(LAYER_TYPES[layer.layer_type].op_types)
            yield NO_WEIGHT_OP.finding(layer.name, f"{layer.name}: ran but made no {wanted} op with a weight")


def small_cin(index: GraphIndex) -> Iterator[Finding]:
    """A conv with few input channels (Cin <= 16, e.g. the first conv of a CNN on RGB input) loses much
    accuracy when quantized; it stays in the config, but quantizing it is not recommended."""
    for layer in _candidates(index):
        if not applies(layer.layer_type, CHECK_SMALL_CIN):
            continue
        for op in typed_ops(layer):
            dims = op.weight_dims
            if len(dims) < 2 or dims[0] is None or dims[1] is None or op.cin is None:
                continue
            cin = op.cin
            if cin <= SMALL_CIN:
                yield SMALL_CIN_CHECK.finding(
                    layer.name,
                    f"{layer.name}: Cin = {cin} <= {SMALL_CIN}, quantizing it is not recommended for accuracy",
                    (op.onnx_name,),
                )
            break


def weight_used_elsewhere(index: GraphIndex) -> Iterator[Finding]:
    """The layer's weight is also read by an op that is not a candidate layer's (an embedding tied to an
    output projection, a functional call in a parent): QAT will change that use too."""
    graph = index.graph
    for layer in _candidates(index):
        own = {op.node for op in layer.ops}
        for op in typed_ops(layer):
            if op.weight is None:
                continue
            readers = []
            for node in index.consumers.get(op.weight, ()):
                owner = index.owner(node)
                if node in own or owner == layer.name:
                    continue
                if owner is not None and owner in index.by_name and index.by_name[owner].is_candidate:
                    continue  # a candidate reader is the shared-weight check's business
                readers.append(f"{graph.nodes[node][keys.OP_TYPE]} of {owner or '<unknown>'}")
            if readers:
                yield WEIGHT_USED_ELSEWHERE.finding(
                    layer.name,
                    f"{layer.name}: weight {op.weight!r} is also read by {', '.join(sorted(set(readers)))}",
                )
                break


def module_aliases(index: GraphIndex) -> Iterator[Finding]:
    """The layer is registered under several names (kept as `self.conv1` and placed in a Sequential, as
    weight-norm and TCN-style code does). It is one layer, named by its first `named_modules()` name, and
    ops made under any name belong to it; AMCT 2be20daf leaves such a layer out of its config, so a config
    from QuantScope quantizes a layer that AMCT's own would not."""
    for layer in _candidates(index):
        info = index.modules.get(layer.name)
        if info is not None and info.aliases:
            yield MODULE_ALIASES.finding(
                layer.name,
                f"{layer.name}: also registered as {', '.join(info.aliases)}; one layer under its first name "
                "(AMCT 2be20daf leaves such a layer out of its config)",
            )


NOT_A_CANDIDATE = Check("QS001", "not-a-candidate", Severity.INFO, not_a_candidate)
NOT_EXECUTED = Check("QS101", "not-executed", Severity.EXCLUDE, not_executed)
REUSED_MODULE = Check("QS102", "reused-module", Severity.EXCLUDE, reused_module)
SHARED_WEIGHT = Check("QS103", "shared-weight", Severity.EXCLUDE, shared_weight)
PADDING_MODE = Check("QS104", "padding-mode", Severity.EXCLUDE, padding_mode)
INPUT_RANK = Check("QS105", "input-rank", Severity.EXCLUDE, input_rank)
TRANSPOSED_INPUT = Check("QS106", "transposed-input", Severity.EXCLUDE, transposed_input)
NO_WEIGHT_OP = Check("QS107", "no-weight-op", Severity.EXCLUDE, no_weight_op)
SMALL_CIN_CHECK = Check("QS201", "small-cin", Severity.ADVISORY, small_cin)
WEIGHT_USED_ELSEWHERE = Check("QS202", "weight-used-elsewhere", Severity.ADVISORY, weight_used_elsewhere)
MODULE_ALIASES = Check("QS203", "module-aliases", Severity.ADVISORY, module_aliases)
