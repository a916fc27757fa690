"""The checks of SPEC section 2, one function each. Each docstring says why the rule matters.

A check never logs and never raises for a property of the model: it yields findings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from analyzer.checks.base import Check, Finding, Severity
from analyzer.layers import GraphIndex, Layer, LayerOp, typed_ops
from analyzer.layertypes import (
    AMCT_LATEST,
    CHECK_DEPTH_DILATION,
    CHECK_INPUT_RANK,
    CHECK_PADDING_MODE,
    CHECK_RNN_CONFIG,
    CHECK_SMALL_CIN,
    LAYER_TYPE_TABLE,
    SMALL_CIN,
    applies,
    mode_name,
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
    """Quantizable ops made by a module that is not of a selected layer type (a Conv1d in the documented
    mode, a functional `F.linear` in a parent's forward, a subclass renamed like
    `NonDynamicallyQuantizableLinear`), or whose owner cannot be established. AMCT decides by class name, so these never enter the config; the report lists them
    so that no weight-carrying op goes unaccounted for."""
    for layer in index.layers:
        if layer.is_candidate:
            continue
        kinds = sorted({op.op_type for op in layer.ops})
        if layer.class_name == keys.UNKNOWN_CLASS:
            why = "its class is not in the file and cannot be inferred (see inferred)"
        elif (
            layer.class_name in LAYER_TYPE_TABLE
            and layer.class_name not in index.selected
            and AMCT_LATEST in LAYER_TYPE_TABLE[layer.class_name].modes
        ):
            # a type of the current AMCT (SPEC section 9) outside the selected set
            why = (
                f"class {layer.class_name} is not a candidate in this mode (layer_types "
                f"{mode_name(index.selected)!r}); it would be one with --layer-types {AMCT_LATEST}"
            )
        elif layer.class_name in LAYER_TYPE_TABLE:
            why = f"class {layer.class_name} is not torch.nn.{layer.class_name}"
        elif layer.torch_class and layer.torch_class != layer.class_name:
            why = f"class {layer.class_name} (a {layer.torch_class} subclass with another name) is not a quantizable type"
        else:
            why = f"class {layer.class_name} is not a quantizable type"
        made = (
            f"; makes {', '.join(kinds)}" if kinds else ("" if layer.scope else "; never called in forward")
        )
        yield NOT_A_CANDIDATE.finding(layer.name, f"{layer.name or '<root>'}: {why}{made}", _names(layer.ops))
    unresolved = index.graph.graph.get(keys.GRAPH_UNRESOLVED) or {}
    for op in index.unowned_ops:
        cause = unresolved.get(op.onnx_name)
        yield NOT_A_CANDIDATE.finding(
            None,
            f"{op.onnx_name}: {op.op_type} whose torch module cannot be established"
            + (f": {cause}" if cause else ""),
            (op.onnx_name,),
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
        # a multi-layer RNN may make one op per layer in one call; rnn-config excludes it for that
        per_call = _known_int(index, layer.name, "num_layers") or 1
        calls = -(-len(ops) // per_call)
        if calls > 1:
            yield REUSED_MODULE.finding(
                layer.name,
                f"{layer.name}: called {calls} times ({len(ops)} {ops[0].op_type} ops share its weight)",
                _names(ops),
            )


def _known_int(index: GraphIndex, name: str, fact: str) -> int | None:
    info = index.modules.get(name)
    value = info.fact(fact) if info is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
            for tensor in (op.weight, op.bias, *op.more_weights):
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
            assert layer.layer_type is not None
            amct = ""
            if LAYER_TYPE_TABLE[layer.layer_type].amct_keeps_shared and all(
                index.by_name[o].layer_type == layer.layer_type for o in others
            ):
                amct = f" (AMCT 2be20daf keeps {layer.layer_type} layers that share a weight)"
            yield SHARED_WEIGHT.finding(
                layer.name,
                f"{layer.name}: weight {sorted(set(tensors))[0]!r} is shared with {names}{amct}",
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
                found = {graph.nodes[n][keys.OP_TYPE] for n in before}
                kinds = ", ".join(sorted(found))
                # the TorchScript exporter writes circular padding as slices of the input concatenated around it
                wrap = ": circular padding, as Pad mode 'wrap'" if found == {"Concat", "Slice"} else ""
                reason = f"{layer.name}: {kinds} before {op.op_type} inside the module{wrap} (padding_mode must be 'zeros')"
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
                assert layer.layer_type is not None
                shape = _BATCHED.get(LAYER_TYPE_TABLE[layer.layer_type].weight_rank, "(N, Cin, ...)")
                yield INPUT_RANK.finding(
                    layer.name,
                    f"{layer.name}: input is not {shape} (unbatched input, Unsqueeze before {op.op_type})",
                    (op.onnx_name,),
                )
                break


_BATCHED = {3: "(N, Cin, L)", 4: "(N, Cin, H, W)", 5: "(N, Cin, D, H, W)"}


def depth_dilation(index: GraphIndex) -> Iterator[Finding]:
    """A Conv3d dilated along depth (`dilation[0] > 1`): AMCT's QAT Conv3d supports H/W dilation only, and
    leaves such a layer out of its config."""
    graph = index.graph
    for layer in _candidates(index):
        if not applies(layer.layer_type, CHECK_DEPTH_DILATION):
            continue
        for op in typed_ops(layer):
            dilations = graph.nodes[op.node][keys.ATTRS].get("dilations")
            if isinstance(dilations, tuple) and dilations and dilations[0] != 1:
                yield DEPTH_DILATION.finding(
                    layer.name,
                    f"{layer.name}: dilation {dilations} along depth is {dilations[0]} (must be 1)",
                    (op.onnx_name,),
                )
                break


# (fact, the value AMCT requires) for an LSTM/GRU, SPEC section 9 rule 5
_RNN_LIMITS = (("num_layers", 1), ("bidirectional", False), ("dropout", 0.0), ("proj_size", 0))


def _rnn_facts(index: GraphIndex, layer: Layer) -> dict[str, Any]:
    """The RNN facts of a layer: from the module table (the model or the mapping file), else what the graph
    shows (an ONNX op's `direction`; one op per layer and direction)."""
    info = index.modules.get(layer.name)
    facts: dict[str, Any] = {name: info.fact(name) for name, _ in _RNN_LIMITS} if info else {}
    ops = typed_ops(layer)
    if facts.get("bidirectional") is None and ops:
        direction = index.graph.nodes[ops[0].node][keys.ATTRS].get("direction")
        facts["bidirectional"] = direction == "bidirectional"
    return facts


def rnn_config(index: GraphIndex) -> Iterator[Finding]:
    """An LSTM/GRU that AMCT 2be20daf does not quantize: more than one layer, bidirectional, dropout (even
    with one layer, where torch ignores it) or a projection (`proj_size`). batch_first, bias=False and an
    initial state passed in make no difference."""
    for layer in _candidates(index):
        if not applies(layer.layer_type, CHECK_RNN_CONFIG):
            continue
        facts = _rnn_facts(index, layer)
        wrong = [
            f"{name} = {facts[name]!r}"
            for name, allowed in _RNN_LIMITS
            if facts.get(name) is not None and facts[name] != allowed
        ]
        if wrong:
            yield RNN_CONFIG.finding(
                layer.name,
                f"{layer.name}: {', '.join(wrong)} (AMCT quantizes an {layer.layer_type} only with num_layers 1, "
                "one direction, dropout 0 and proj_size 0)",
                _names(typed_ops(layer)),
            )


def rnn_facts_unknown(index: GraphIndex) -> Iterator[Finding]:
    """The graph cannot show an LSTM/GRU's dropout (nor, always, num_layers or proj_size); without the
    module table of the model or its mapping file the rnn-config rule cannot be fully checked."""
    for layer in _candidates(index):
        if not applies(layer.layer_type, CHECK_RNN_CONFIG):
            continue
        facts = _rnn_facts(index, layer)
        unknown = [name for name, _ in _RNN_LIMITS if facts.get(name) is None]
        if unknown:
            yield RNN_FACTS_UNKNOWN.finding(
                layer.name,
                f"{layer.name}: {', '.join(unknown)} could not be established (no mapping file); AMCT leaves "
                f"the {layer.layer_type} out unless num_layers is 1, dropout 0 and proj_size 0",
            )


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
            wanted = "/".join(LAYER_TYPE_TABLE[layer.layer_type].op_types)
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
    output projection, a functional call in a parent): QAT will change that use too. A weight computed from
    the module's parameters (weight norm, spectral norm, pruning) is followed back to them: the ops computing
    it are its own, and another layer's computation reading them counts as that layer."""
    graph = index.graph
    for layer in _candidates(index):
        own = {op.node for op in layer.ops}
        own_path = {step for op in layer.ops for step in op.computed_by}
        for op in typed_ops(layer):
            if op.weight is None:
                continue
            sources = (op.weight, *(op.more_weights if op.computed_by else ()))
            readers = []
            for tensor in sources:
                for node in index.consumers.get(tensor, ()):
                    if node in own or node in own_path:
                        continue
                    for reader in index.weight_path.get(node, (node,)):
                        owner = index.owner(reader)
                        if reader in own or owner == layer.name:
                            continue
                        if owner is not None and owner in index.by_name and index.by_name[owner].is_candidate:
                            continue  # a candidate reader is the shared-weight check's business
                        readers.append(f"{graph.nodes[reader][keys.OP_TYPE]} of {owner or '<unknown>'}")
            if readers:
                yield WEIGHT_USED_ELSEWHERE.finding(
                    layer.name,
                    f"{layer.name}: weight {op.weight!r} is also read by {', '.join(sorted(set(readers)))}",
                )
                break


def computed_weight(index: GraphIndex) -> Iterator[Finding]:
    """The layer's weight is computed before its op from the module's own parameters and buffers (the
    forward pre-hooks of `torch.nn.utils.weight_norm`, `spectral_norm` and `prune`). Such a layer keeps its
    class name and is a candidate like any other; the report says what its weight is computed from, so
    that a user sees why it is kept."""
    for layer in _candidates(index):
        for op in typed_ops(layer):
            if op.computed_from:
                prefix = f"{layer.name}."
                names = [n[len(prefix) :] if n.startswith(prefix) else n for n in op.computed_from]
                yield COMPUTED_WEIGHT.finding(
                    layer.name,
                    f"{layer.name}: weight computed from {', '.join(names)}",
                    (op.onnx_name,),
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
DEPTH_DILATION = Check("QS108", "depth-dilation", Severity.EXCLUDE, depth_dilation)
RNN_CONFIG = Check("QS109", "rnn-config", Severity.EXCLUDE, rnn_config)
RNN_FACTS_UNKNOWN = Check("QS204", "rnn-facts-unknown", Severity.ADVISORY, rnn_facts_unknown)
WEIGHT_USED_ELSEWHERE = Check("QS202", "weight-used-elsewhere", Severity.ADVISORY, weight_used_elsewhere)
MODULE_ALIASES = Check("QS203", "module-aliases", Severity.ADVISORY, module_aliases)
COMPUTED_WEIGHT = Check("QS002", "computed-weight", Severity.INFO, computed_weight)
