"""From the networkx graph to the layers the checks judge: every module that owns a quantizable op or is
a candidate type, with its ops, weights and shapes.

The graph is indexed once (ops per owner, consumers per initializer); checks then look things up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import networkx as nx

from analyzer.layertypes import (
    LAYER_TYPE_TABLE,
    OP_FACTS,
    REPORTED_TORCH_CLASSES,
    SUPPORTED_TYPES,
    WEIGHT_PASSTHROUGH_OPS,
    Int4Blocker,
    OpFacts,
    indexed_ops,
    int4_blocker,
)
from graph import keys
from graph.build import init_key, paused_gc
from graph.ir import ModuleInfo

NodeKey = Any


@dataclass(frozen=True, slots=True)
class LayerOp:
    """A quantizable op (Gemm/MatMul/Conv/ConvTranspose) and the initializers it reads."""

    node: NodeKey
    onnx_name: str
    op_type: str
    weight: str | None  # initializer name, None when the op's weight is an activation
    weight_dims: tuple[int | None, ...]
    bias: str | None
    cin: int | None = None  # input channels the weight reads (Conv: in_channels, Linear: in_features)
    groups: int = 1  # the Conv/ConvTranspose `group` attribute
    hidden: int | None = None  # an LSTM/GRU op's `hidden_size` attribute
    more_weights: tuple[str, ...] = ()  # other initializers an LSTM/GRU op's W, R and B are computed from


@dataclass(frozen=True, slots=True)
class Layer:
    """A module as the analysis sees it."""

    name: str
    class_name: str
    torch_class: str | None
    layer_type: str | None  # key of LAYER_TYPES when the module is a candidate, else None
    ops: tuple[LayerOp, ...]  # quantizable ops in the module's own scope
    scope: tuple[NodeKey, ...]  # every op node of the module's own scope, in graph order
    order: int  # position in named_modules() order

    @property
    def is_candidate(self) -> bool:
        return self.layer_type is not None


@dataclass(slots=True)
class GraphIndex:
    """Lookups over one graph, built in one pass."""

    graph: nx.DiGraph
    layers: tuple[Layer, ...]
    by_name: Mapping[str, Layer]
    # initializer name -> quantizable-op nodes reading it as weight or bias (through pass-through ops)
    weight_consumers: Mapping[str, tuple[NodeKey, ...]]
    # initializer name -> every op node reading it directly
    consumers: Mapping[str, tuple[NodeKey, ...]]
    unowned_ops: tuple[LayerOp, ...]
    tied: tuple[tuple[str, ...], ...] | None
    modules: Mapping[str, ModuleInfo] = field(default_factory=dict)
    selected: tuple[str, ...] = SUPPORTED_TYPES  # the candidate types of the layer-type mode

    def owner(self, node: NodeKey) -> str | None:
        owner: str | None = self.graph.nodes[node][keys.MODULE]
        return owner


def typed_ops(layer: Layer) -> tuple[LayerOp, ...]:
    """A candidate's ops of the op types its class exports to (its weight-carrying calls; every call of a
    type without a weight, such as AvgPool2d)."""
    if layer.layer_type is None:
        return ()
    row = LAYER_TYPE_TABLE[layer.layer_type]
    return tuple(
        op for op in layer.ops if op.op_type in row.op_types and (op.weight is not None or not row.has_weight)
    )


def layer_int4_blocker(layer: Layer) -> Int4Blocker | None:
    """Why a candidate's weight cannot be INT4-packed (SPEC section 8), read from its first weight op."""
    ops = typed_ops(layer)
    return int4_blocker(ops[0].cin, ops[0].groups, ops[0].hidden) if ops else None


def candidate_type(info: ModuleInfo, selected: tuple[str, ...] = SUPPORTED_TYPES) -> str | None:
    """AMCT's rule: the class name decides, and the module is an instance of the torch class of that name.

    `selected` are the candidate types of the layer-type mode (SPEC section 9).
    """
    if info.class_name not in selected:
        return None
    if info.torch_class_known:
        return info.class_name if info.torch_class == info.class_name else None
    return info.class_name  # only the name is known (dynamo metadata without a mapping)


_MAX_PASSTHROUGH = 8  # a weight is never more than a few pass-through ops away from its initializer


def _trace_initializer(
    graph: nx.DiGraph, tensor: str, producers: Mapping[str, NodeKey]
) -> tuple[str | None, bool]:
    """Follow `tensor` back through pass-through ops to the initializer it comes from.

    Returns the initializer name (None when the tensor does not come from one) and whether the path
    transposes it (an odd number of Transpose ops, as the dynamo exporter puts before a Linear's MatMul).
    """
    transposed = False
    for _ in range(_MAX_PASSTHROUGH):
        source = producers.get(tensor)
        if source is None:
            return None, False
        data = graph.nodes[source]
        if data[keys.KIND] == keys.KIND_INITIALIZER:
            return tensor, transposed
        if data[keys.KIND] != keys.KIND_OP or data[keys.OP_TYPE] not in WEIGHT_PASSTHROUGH_OPS:
            return None, False
        inputs = data[keys.INPUTS]
        if not inputs or not inputs[0]:
            return None, False
        transposed ^= data[keys.OP_TYPE] == "Transpose"
        tensor = inputs[0]
    return None, False


def _cin(
    facts: OpFacts, attrs: Mapping[str, Any], dims: tuple[int | None, ...], transposed: bool
) -> tuple[int | None, int]:
    """Cin and groups of an op's weight, from its dims and attributes (OP_FACTS says where Cin sits)."""
    group = attrs.get("group")
    groups = group if isinstance(group, int) and group > 0 else 1
    axis = facts.cin_axis
    if facts.transposed_by is not None and attrs.get(facts.transposed_by) == 1:
        axis = 1 - axis
    if transposed and len(dims) == 2:
        axis = 1 - axis
    if axis >= len(dims) or dims[axis] is None:
        return None, groups
    cin = int(dims[axis])  # type: ignore[arg-type]
    return (cin * groups if facts.cin_per_group else cin), groups


def _layer_op(graph: nx.DiGraph, node: NodeKey, producers: Mapping[str, NodeKey]) -> LayerOp:
    data = graph.nodes[node]
    facts = OP_FACTS[data[keys.OP_TYPE]]
    inputs: tuple[str, ...] = data[keys.INPUTS]

    def traced(position: int | None) -> tuple[str | None, bool]:
        if position is None or position >= len(inputs) or not inputs[position]:
            return None, False
        return _trace_initializer(graph, inputs[position], producers)

    weight, transposed = traced(facts.weight_input)
    bias, _ = traced(facts.bias_input)
    if data[keys.OP_TYPE] == "MatMul" and weight is not None:
        bias = _matmul_bias(graph, node)
    more: tuple[str, ...] = ()
    hidden_size = None
    if facts.recurrent_input is not None:
        weight, bias, more = _rnn_weights(graph, node, producers, facts)
        hidden = data[keys.ATTRS].get("hidden_size")
        hidden_size = hidden if isinstance(hidden, int) else None
    dims: tuple[int | None, ...] = graph.nodes[init_key(weight)][keys.DIMS] if weight is not None else ()
    cin, groups = _cin(facts, data[keys.ATTRS], dims, transposed)
    return LayerOp(
        node, data[keys.ONNX_NAME], data[keys.OP_TYPE], weight, dims, bias, cin, groups, hidden_size, more
    )


_MAX_RNN_WALK = 256  # ops an LSTM/GRU's weights are computed through (a few Slice/Concat per gate)


def _rnn_weights(
    graph: nx.DiGraph, node: NodeKey, producers: Mapping[str, NodeKey], facts: OpFacts
) -> tuple[str | None, str | None, tuple[str, ...]]:
    """The initializers an LSTM/GRU op's W, B and R are computed from, through any op of the module's own
    scope (both exporters reorder the gates with Slice/Concat): (first weight of W, first of B, the rest)."""
    inputs: tuple[str, ...] = graph.nodes[node][keys.INPUTS]
    owner = graph.nodes[node][keys.MODULE]

    def sources(position: int | None) -> list[str]:
        if position is None or position >= len(inputs) or not inputs[position]:
            return []
        found: list[str] = []
        stack: list[str] = [inputs[position]]
        seen: set[NodeKey] = set()
        while stack and len(seen) < _MAX_RNN_WALK:
            tensor = stack.pop()
            source = producers.get(tensor)
            if source is None or source in seen:
                continue
            seen.add(source)
            data = graph.nodes[source]
            if data[keys.KIND] == keys.KIND_INITIALIZER:
                if len(data[keys.DIMS]) >= 2 or position == facts.bias_input:
                    found.append(tensor)
            elif data[keys.KIND] == keys.KIND_OP and data[keys.MODULE] == owner:
                stack.extend(t for t in data[keys.INPUTS] if t)
        return sorted(set(found))

    weights, biases, recurrent = (
        sources(facts.weight_input),
        sources(facts.bias_input),
        sources(facts.recurrent_input),
    )
    weight = weights[0] if weights else None
    bias = biases[0] if biases else None
    more = tuple(t for t in dict.fromkeys([*weights, *recurrent, *biases]) if t not in (weight, bias))
    return weight, bias, more


def _matmul_bias(graph: nx.DiGraph, node: NodeKey) -> str | None:
    """The bias of a Linear exported as MatMul is the initializer of the Add that follows in the same scope."""
    owner = graph.nodes[node][keys.MODULE]
    for succ in graph.successors(node):
        data = graph.nodes[succ]
        if data[keys.OP_TYPE] != "Add" or data[keys.MODULE] != owner:
            continue
        for pred in graph.predecessors(succ):
            if graph.nodes[pred][keys.KIND] == keys.KIND_INITIALIZER:
                name: str = pred[1]
                return name
    return None


def index_graph(graph: nx.DiGraph, selected: tuple[str, ...] = SUPPORTED_TYPES) -> GraphIndex:
    """Collect the layers of `graph` in named_modules() order, plus the lookups the checks need.

    `selected` are the candidate types of the layer-type mode (SPEC section 9; default: the documented ones).
    """
    with paused_gc():
        return _index(graph, selected)


def _index(graph: nx.DiGraph, selected: tuple[str, ...]) -> GraphIndex:
    modules: tuple[ModuleInfo, ...] = graph.graph[keys.GRAPH_MODULES]
    producers: dict[str, NodeKey] = {}
    initializers: set[NodeKey] = set()
    op_nodes: list[tuple[int, NodeKey, dict[str, Any]]] = []
    for node, data in graph.nodes(data=True):
        kind = data[keys.KIND]
        if kind == keys.KIND_OP:
            op_nodes.append((data[keys.INDEX], node, data))
            for out in data[keys.OUTPUTS]:
                if out:
                    producers[out] = node
        else:
            producers[node[1]] = node
            if kind == keys.KIND_INITIALIZER:
                initializers.add(node)
    op_nodes.sort(key=itemgetter(0))

    scope: dict[str, list[NodeKey]] = defaultdict(list)
    quant_ops: dict[str | None, list[LayerOp]] = defaultdict(list)
    weight_consumers: dict[str, list[NodeKey]] = defaultdict(list)
    consumers: dict[str, list[NodeKey]] = defaultdict(list)
    seen_classes: dict[str, str | None] = {}
    wanted_ops = indexed_ops(selected)
    for _, node, data in op_nodes:
        owner = data[keys.MODULE]
        if owner is not None:
            scope[owner].append(node)
            seen_classes.setdefault(owner, data[keys.MODULE_CLASS])
        for pred in graph.predecessors(node):
            if pred in initializers:
                consumers[pred[1]].append(node)
        if data[keys.OP_TYPE] in wanted_ops:
            op = _layer_op(graph, node, producers)
            quant_ops[owner].append(op)
            for tensor in (op.weight, op.bias, *op.more_weights):
                if tensor is not None:
                    weight_consumers[tensor].append(node)

    layers: list[Layer] = []
    known = set()
    for order, info in enumerate(modules):
        known.add(info.name)
        ctype = candidate_type(info, selected)
        looks_like_layer = (
            info.torch_class in REPORTED_TORCH_CLASSES or info.class_name in REPORTED_TORCH_CLASSES
        )
        if ctype is None and not quant_ops.get(info.name) and not looks_like_layer:
            continue
        layers.append(
            Layer(
                name=info.name,
                class_name=info.class_name,
                torch_class=info.torch_class,
                layer_type=ctype,
                ops=tuple(quant_ops.get(info.name, ())),
                scope=tuple(scope.get(info.name, ())),
                order=order,
            )
        )
    # owners the module table does not list (e.g. a mapping-free file): report them after the known ones
    for owner, ops in quant_ops.items():
        if owner is None or owner in known:
            continue
        layers.append(
            Layer(
                owner,
                seen_classes.get(owner) or "?",
                None,
                None,
                tuple(ops),
                tuple(scope[owner]),
                len(layers) + len(modules),
            )
        )
    by_name = {layer.name: layer for layer in layers}
    return GraphIndex(
        graph=graph,
        layers=tuple(layers),
        by_name=by_name,
        weight_consumers={key: tuple(value) for key, value in weight_consumers.items()},
        consumers={key: tuple(value) for key, value in consumers.items()},
        unowned_ops=tuple(quant_ops.get(None, ())),
        tied=graph.graph.get(keys.GRAPH_TIED),
        modules={info.name: info for info in modules},
        selected=selected,
    )
