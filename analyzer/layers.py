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
    SHAPE_OPS,
    SUPPORTED_TYPES,
    WEIGHT_ELEMENTWISE_OPS,
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
    # other tensors the weights are computed from (an LSTM/GRU op's W, R and B; a weight-norm, spectral-norm or
    # pruned weight's other sources): initializer names, or parameter names the mapping file records for a
    # weight the exporter folded
    more_weights: tuple[str, ...] = ()
    # a weight computed before the op from the module's parameters and buffers (SPEC section 2): the
    # parameter (or initializer) names it is computed from, and the op nodes that compute it; empty otherwise
    computed_from: tuple[str, ...] = ()
    computed_by: tuple[NodeKey, ...] = ()


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
    # op node computing a weight (weight norm, spectral norm, a pruning mask, an RNN's gate reordering) ->
    # the quantizable ops whose weight it computes: such a node is on the weight's path, not the data's
    weight_path: Mapping[NodeKey, tuple[NodeKey, ...]] = field(default_factory=dict)

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
_MAX_COMPUTATION = (
    256  # ops a weight is computed through (weight norm: 3; an RNN's gates: a few Slice/Concat each)
)


@dataclass(frozen=True, slots=True)
class WeightSource:
    """Where an op's weight input comes from.

    Either an initializer passed through unchanged (`initializer`), or a tensor computed from initializers
    alone before the op (weight norm, spectral norm, a pruning mask, an RNN's reordered gates): `sources` are
    those initializers, `nodes` the ops computing it, `dims` its shape when the ops show it. `transposed`:
    the path transposes it (an odd number of Transpose ops, as the dynamo exporter puts before a Linear's
    MatMul).
    """

    initializer: str | None
    transposed: bool
    dims: tuple[int | None, ...] = ()
    sources: tuple[str, ...] = ()
    nodes: tuple[NodeKey, ...] = ()


def static_tensors(graph: nx.DiGraph, op_nodes: list[tuple[int, NodeKey, dict[str, Any]]]) -> set[str]:
    """The tensors computed from initializers and constants alone (no graph input on their way), the op
    nodes taken in graph order."""
    static = {node[1] for node, data in graph.nodes(data=True) if data[keys.KIND] == keys.KIND_INITIALIZER}
    for _, _node, data in op_nodes:
        # a Shape of the data is fixed by the export, not by the data's values (dynamo slices an RNN's
        # gates with bounds read from the initial state's shape)
        if data[keys.OP_TYPE] in SHAPE_OPS or all(tensor in static for tensor in data[keys.INPUTS] if tensor):
            static.update(tensor for tensor in data[keys.OUTPUTS] if tensor)
    return static


def _passthrough(graph: nx.DiGraph, tensor: str, producers: Mapping[str, NodeKey]) -> tuple[str, bool]:
    """Follow `tensor` back through pass-through ops; the tensor reached and whether the path transposes."""
    transposed = False
    for _ in range(_MAX_PASSTHROUGH):
        source = producers.get(tensor)
        if source is None:
            break
        data = graph.nodes[source]
        if data[keys.KIND] != keys.KIND_OP or data[keys.OP_TYPE] not in WEIGHT_PASSTHROUGH_OPS:
            break
        inputs = data[keys.INPUTS]
        if not inputs or not inputs[0]:
            break
        transposed ^= data[keys.OP_TYPE] == "Transpose"
        tensor = inputs[0]
    return tensor, transposed


def _computation(
    graph: nx.DiGraph, tensor: str, producers: Mapping[str, NodeKey]
) -> tuple[tuple[str, ...], tuple[NodeKey, ...]]:
    """The initializers a static tensor is computed from (sorted) and the op nodes computing it (graph order)."""
    sources: set[str] = set()
    nodes: set[NodeKey] = set()
    stack = [tensor]
    while stack and len(nodes) < _MAX_COMPUTATION:
        source = producers.get(stack.pop())
        if source is None or source in nodes:
            continue
        data = graph.nodes[source]
        if data[keys.KIND] == keys.KIND_INITIALIZER:
            sources.add(source[1])
        elif data[keys.KIND] == keys.KIND_OP:
            nodes.add(source)
            if data[keys.OP_TYPE] not in SHAPE_OPS:  # a shape reads no value: its input is data, not a source
                stack.extend(t for t in data[keys.INPUTS] if t)
    return tuple(sorted(sources)), tuple(sorted(nodes, key=lambda n: graph.nodes[n][keys.INDEX]))


def _broadcast(shapes: list[tuple[int | None, ...]]) -> tuple[int | None, ...]:
    """numpy's broadcast of shapes (a None dim stays None unless the other one decides)."""
    rank = max(len(shape) for shape in shapes)
    out: list[int | None] = []
    for axis in range(rank):
        dims = {shape[axis - rank + len(shape)] for shape in shapes if axis - rank + len(shape) >= 0}
        known = {dim for dim in dims if dim is not None and dim != 1}
        out.append(known.pop() if len(known) == 1 else (1 if dims == {1} else None))
    return tuple(out)


def _computed_dims(
    graph: nx.DiGraph, tensor: str, producers: Mapping[str, NodeKey]
) -> tuple[int | None, ...] | None:
    """The shape of a computed weight, read through elementwise ops (weight_g * weight_v / norm: the
    broadcast of the shapes they combine; a norm or a sigma reduced by other ops never widens it)."""
    known: dict[str, tuple[int | None, ...] | None] = {}

    def dims_of(name: str, depth: int) -> tuple[int | None, ...] | None:
        if name in known:
            return known[name]
        source = producers.get(name)
        found: tuple[int | None, ...] | None = None
        if source is not None and depth <= _MAX_PASSTHROUGH * 4:
            data = graph.nodes[source]
            if data[keys.KIND] == keys.KIND_INITIALIZER:
                found = tuple(data[keys.DIMS])
            elif data[keys.KIND] == keys.KIND_OP and data[keys.OP_TYPE] in WEIGHT_ELEMENTWISE_OPS:
                shapes = [s for t in data[keys.INPUTS] if t and (s := dims_of(t, depth + 1)) is not None]
                found = _broadcast(shapes) if shapes else None
        known[name] = found
        return found

    return dims_of(tensor, 0)


def trace_weight(
    graph: nx.DiGraph, tensor: str, producers: Mapping[str, NodeKey], static: set[str]
) -> WeightSource | None:
    """Where the weight input `tensor` of an op comes from; None when it is an activation (or computed
    from no initializer at all)."""
    reached, transposed = _passthrough(graph, tensor, producers)
    source = producers.get(reached)
    if source is None:
        return None
    data = graph.nodes[source]
    if data[keys.KIND] == keys.KIND_INITIALIZER:
        return WeightSource(reached, transposed, data[keys.DIMS])
    if data[keys.KIND] != keys.KIND_OP or reached not in static:
        return None
    sources, nodes = _computation(graph, reached, producers)
    if not sources:
        return None
    return WeightSource(None, transposed, _computed_dims(graph, reached, producers) or (), sources, nodes)


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
    if not -len(dims) <= axis < len(dims) or dims[axis] is None:
        return None, groups
    cin = int(dims[axis])  # type: ignore[arg-type]
    return (cin * groups if facts.cin_per_group else cin), groups


@dataclass(frozen=True, slots=True)
class _Lookups:
    """What `_layer_op` reads besides the graph: tensor producers, the static tensors, parameter names."""

    producers: Mapping[str, NodeKey]
    static: set[str]
    parameters: frozenset[str]
    tie_root: Mapping[str, str]  # a tied parameter's name -> the first name of its group


def _primary(graph: nx.DiGraph, found: WeightSource, lookups: _Lookups) -> str:
    """The source that stands for a computed weight: one of its shape, a parameter before a buffer
    (`weight_orig` before `weight_mask`, `weight_v` before `weight_g`), then by name."""

    def rank(name: str) -> tuple[bool, bool, str]:
        data = graph.nodes[init_key(name)]
        is_param = name in lookups.parameters or bool(set(data[keys.PARAMS]) & lookups.parameters)
        return (tuple(data[keys.DIMS]) != tuple(found.dims), not is_param, name)

    return min(found.sources, key=rank)


def _shown_names(graph: nx.DiGraph, initializers: tuple[str, ...], owner: str | None) -> tuple[str, ...]:
    """The parameter or buffer names of initializers a weight is computed from, the owner's own name of a
    tied one first (a nameless folded constant is left out when named ones exist)."""
    prefix = f"{owner}." if owner else ""

    def name_of(initializer: str) -> str:
        params: tuple[str, ...] = graph.nodes[init_key(initializer)][keys.PARAMS]
        own = [param for param in params if param.startswith(prefix)]
        return own[0] if own else (params[0] if params else initializer)

    named = [name_of(name) for name in initializers]
    bare = [name for name in named if not name.startswith("onnx::")]
    return tuple(sorted(set(bare or named)))


def _layer_op(graph: nx.DiGraph, node: NodeKey, lookups: _Lookups) -> LayerOp:
    data = graph.nodes[node]
    facts = OP_FACTS[data[keys.OP_TYPE]]
    inputs: tuple[str, ...] = data[keys.INPUTS]

    def traced(position: int | None) -> WeightSource | None:
        if position is None or position >= len(inputs) or not inputs[position]:
            return None
        return trace_weight(graph, inputs[position], lookups.producers, lookups.static)

    found = traced(facts.weight_input)
    found_bias = traced(facts.bias_input)
    bias = found_bias.initializer if found_bias is not None else None
    weight = transposed = None
    dims: tuple[int | None, ...] = ()
    more: tuple[str, ...] = ()
    computed_from: tuple[str, ...] = ()
    computed_by: tuple[NodeKey, ...] = ()
    hidden_size = None
    if facts.recurrent_input is not None:
        weight, bias, more, computed_by = _rnn_weights(graph, node, lookups, facts)
        hidden = data[keys.ATTRS].get("hidden_size")
        hidden_size = hidden if isinstance(hidden, int) else None
        dims = graph.nodes[init_key(weight)][keys.DIMS] if weight is not None else ()
    elif found is not None:
        transposed, dims = found.transposed, found.dims
        weight = found.initializer if found.initializer is not None else _primary(graph, found, lookups)
        if found.initializer is None:
            more = tuple(name for name in found.sources if name != weight)
            computed_from = _shown_names(graph, found.sources, data[keys.MODULE])
            computed_by = found.nodes
        else:
            # a weight the exporter folded, whose sources the mapping file records
            computed_from = graph.nodes[init_key(weight)].get(keys.COMPUTED_FROM, ())
            more = tuple(sorted({lookups.tie_root.get(name, name) for name in computed_from}))
    if data[keys.OP_TYPE] == "MatMul" and weight is not None:
        bias = _matmul_bias(graph, node)
    cin, groups = _cin(facts, data[keys.ATTRS], dims, bool(transposed))
    return LayerOp(
        node,
        data[keys.ONNX_NAME],
        data[keys.OP_TYPE],
        weight,
        dims,
        bias,
        cin,
        groups,
        hidden_size,
        more,
        computed_from,
        computed_by,
    )


def _rnn_weights(
    graph: nx.DiGraph, node: NodeKey, lookups: _Lookups, facts: OpFacts
) -> tuple[str | None, str | None, tuple[str, ...], tuple[NodeKey, ...]]:
    """The initializers an LSTM/GRU op's W, B and R are computed from (both exporters reorder the gates with
    Slice/Concat of the module's parameters): (first weight of W, first of B, the rest, the computing ops)."""
    inputs: tuple[str, ...] = graph.nodes[node][keys.INPUTS]
    nodes: set[NodeKey] = set()

    def sources(position: int | None) -> list[str]:
        if position is None or position >= len(inputs) or not inputs[position]:
            return []
        found = trace_weight(graph, inputs[position], lookups.producers, lookups.static)
        if found is None:
            return []
        if found.initializer is not None:
            names: tuple[str, ...] = (found.initializer,)
        else:
            names = found.sources
            nodes.update(found.nodes)
        return [
            name
            for name in names
            if len(graph.nodes[init_key(name)][keys.DIMS]) >= 2 or position == facts.bias_input
        ]

    weights, biases, recurrent = (
        sources(facts.weight_input),
        sources(facts.bias_input),
        sources(facts.recurrent_input),
    )
    weight = weights[0] if weights else None
    bias = biases[0] if biases else None
    more = tuple(t for t in dict.fromkeys([*weights, *recurrent, *biases]) if t not in (weight, bias))
    return weight, bias, more, tuple(sorted(nodes, key=lambda n: graph.nodes[n][keys.INDEX]))


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
    tied: tuple[tuple[str, ...], ...] | None = graph.graph.get(keys.GRAPH_TIED)
    lookups = _Lookups(
        producers,
        static_tensors(graph, op_nodes),
        frozenset(param for info in modules for param in info.parameters),
        {name: group[0] for group in tied or () for name in group},
    )
    all_ops: list[tuple[str | None, LayerOp]] = []
    weight_path: dict[NodeKey, list[NodeKey]] = defaultdict(list)
    for _, node, data in op_nodes:
        owner = data[keys.MODULE]
        if owner is not None:
            scope[owner].append(node)
            seen_classes.setdefault(owner, data[keys.MODULE_CLASS])
        for pred in graph.predecessors(node):
            if pred in initializers:
                consumers[pred[1]].append(node)
        if data[keys.OP_TYPE] in wanted_ops:
            op = _layer_op(graph, node, lookups)
            all_ops.append((owner, op))
            for step in op.computed_by:
                weight_path[step].append(node)
    for owner, op in all_ops:
        if op.node in weight_path:  # a MatMul of spectral norm's sigma: on another op's weight path
            continue
        quant_ops[owner].append(op)
        for tensor in (op.weight, op.bias, *op.more_weights):
            if tensor is not None:
                weight_consumers[tensor].append(op.node)

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
        tied=tied,
        modules={info.name: info for info in modules},
        selected=selected,
        weight_path={key: tuple(value) for key, value in weight_path.items()},
    )
