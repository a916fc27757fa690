"""Distill groups (SPEC 11.3, 11.5): the chains of modules whose outputs are distilled together, read from the graph.

A *unit* is a candidate layer (Conv2d, Linear) followed by at most one BatchNorm2d and one activation, along
single-consumer edges; a *cascade* chains up to `group_size` units; a *user group* is the one route between two
layers that the simple config names. Everything is read from the networkx graph of `graph.build`, walked in ONNX
node order (the exporter's topological order):

    Conv ──► BatchNormalization ──► Relu ──► Conv ──► Relu ──► ...
    └──────────── unit 1 ──────────────┘    └─ unit 2 ─┘        (group_size 2: one group of both)

A module *carries its name* in the graph when it is of a marked kind (SPEC 11.3): its main op (`MARKED_OPS`) is
a node named after it. An activation op without such a module (`F.relu`) joins the unit but is left out of the
group and reported (SPEC 11.6: AMCT writes `null` there, which its own next step rejects).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from analyzer.errors import ConfigError
from graph import keys
from graph.infer import FUSED_SCOPE
from graph.ir import ModuleInfo

NodeKey = Any

# marked kinds (isinstance, subclasses count) -> the op that carries the module's name in the graph
MARKED_OPS: Mapping[str, frozenset[str]] = {
    "Conv2d": frozenset({"Conv"}),
    "Linear": frozenset({"Gemm", "MatMul"}),
    "BatchNorm1d": frozenset({"BatchNormalization"}),
    "BatchNorm2d": frozenset({"BatchNormalization"}),
    "BatchNorm3d": frozenset({"BatchNormalization"}),
    "ReLU": frozenset({"Relu"}),
    "ReLU6": frozenset({"Clip"}),
    "LeakyReLU": frozenset({"LeakyRelu"}),
    "Sigmoid": frozenset({"Sigmoid"}),
    "Tanh": frozenset({"Tanh"}),
    "Softmax": frozenset({"Softmax"}),
}
MARKED_CLASSES = tuple(MARKED_OPS)
BATCHNORM_CLASSES = frozenset({"BatchNorm1d", "BatchNorm2d", "BatchNorm3d"})
UNIT_BATCHNORM = "BatchNorm2d"  # exact class name (rule 2)
# ONNX op types of the activations that join a unit (rules 2-3); Clip (ReLU6), Gelu and the rest end it
JOINING_ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax"})
# exact class names every named module of a user group must have (SPEC 11.5)
USER_GROUP_TYPES = ("Conv2d", "Linear", "BatchNorm2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax")


def marked_kind(info: ModuleInfo | None) -> str | None:
    """The marked kind a module is an instance of, or None (the class name decides when the isinstance fact is
    not known: a file with dynamo metadata alone, or a mapping written before activations were recorded)."""
    if info is None:
        return None
    if info.torch_class in MARKED_OPS:
        return info.torch_class
    if info.class_name in MARKED_OPS and (info.torch_class is None):
        return info.class_name
    return None


@dataclass(frozen=True, slots=True)
class UserGroup:
    """A `distill_group` entry of the simple config."""

    start: str
    end: str

    def label(self) -> str:
        return f"distill_group(start_layer_name: {self.start}, end_layer_name: {self.end})"


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A functional activation op that joined a unit and is left out of its group (SPEC 11.6)."""

    op: str  # ONNX node name (or op type and index when unnamed)
    op_type: str
    after: str  # the module the op follows in the unit
    group: int  # index into Groups.groups


@dataclass(frozen=True, slots=True)
class Groups:
    """The distill groups of one graph.

    Attributes:
        groups: the groups in config order (sorted by graph position), each a tuple of module names.
        member_of: candidate layer -> index of its group.
        why_none: candidate layer -> why it is in no group.
        unit_end: candidate layer -> why its unit ends where it does (a branch point, a Clip, ...).
        left_out: functional activations left out of groups.
        user: the indices of the groups the simple config asked for.
        stray_activations: activation modules after a user group that are in no group.
    """

    groups: tuple[tuple[str, ...], ...]
    member_of: Mapping[str, int]
    why_none: Mapping[str, str]
    unit_end: Mapping[str, str]
    left_out: tuple[LeftOut, ...]
    user: tuple[int, ...] = ()
    stray_activations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Unit:
    layer: str
    nodes: tuple[NodeKey, ...]  # the unit's nodes in order; the last one is where a cascade continues
    names: tuple[str | None, ...]  # the module name each node carries (None: functional)
    ends: str  # why the unit ends there


class _View:
    """Lookups over the graph: op consumers of each tensor, the name each node carries, call counts."""

    def __init__(self, graph: nx.DiGraph, modules: Mapping[str, ModuleInfo]) -> None:
        self.graph = graph
        self.modules = modules
        # the op nodes' attribute dicts, read directly: networkx's node view costs more than the lookups
        self.data: dict[NodeKey, dict[str, Any]] = {
            n: d for n, d in graph.nodes(data=True) if d[keys.KIND] == keys.KIND_OP
        }
        self.order: list[NodeKey] = sorted(self.data, key=lambda n: self.data[n][keys.INDEX])
        self.readers: dict[str, list[NodeKey]] = defaultdict(list)
        self.carried: dict[NodeKey, str] = {}
        self.calls: dict[str, int] = defaultdict(int)
        kinds = {name: marked_kind(info) for name, info in modules.items()}
        for node in self.order:
            data = self.data[node]
            for tensor in data[keys.INPUTS]:
                if tensor:
                    self.readers[tensor].append(node)
            module = data[keys.MODULE]
            kind = kinds.get(module) if module is not None else None
            if kind is not None and data[keys.OP_TYPE] in MARKED_OPS[kind]:
                self.carried[node] = module
                self.calls[module] += 1
        self.carriers: dict[str, list[NodeKey]] = defaultdict(list)
        for node, name in self.carried.items():
            self.carriers[name].append(node)

    def op(self, node: NodeKey) -> str:
        op_type: str = self.data[node][keys.OP_TYPE]
        return op_type

    def index(self, node: NodeKey) -> int:
        position: int = self.data[node][keys.INDEX]
        return position

    def label(self, node: NodeKey) -> str:
        data = self.data[node]
        return str(data[keys.ONNX_NAME] or f"{data[keys.OP_TYPE]}#{data[keys.INDEX]}")

    def consumers(self, node: NodeKey) -> list[NodeKey]:
        """The op nodes reading output 0 of `node` (each once)."""
        outputs = self.data[node][keys.OUTPUTS]
        if not outputs or not outputs[0]:
            return []
        return list(dict.fromkeys(self.readers.get(outputs[0], ())))

    def successors(self, node: NodeKey) -> list[NodeKey]:
        """The op nodes reading any output of `node`."""
        found: list[NodeKey] = []
        for tensor in self.data[node][keys.OUTPUTS]:
            if tensor:
                found.extend(self.readers.get(tensor, ()))
        return list(dict.fromkeys(found))

    def class_of(self, name: str) -> str:
        info = self.modules.get(name)
        return info.class_name if info is not None else keys.UNKNOWN_CLASS


def find_groups(
    graph: nx.DiGraph,
    modules: Mapping[str, ModuleInfo],
    candidates: Mapping[str, NodeKey],
    group_size: int = 1,
    user_groups: Sequence[UserGroup] = (),
) -> Groups:
    """The distill groups of `graph`.

    Args:
        graph: the networkx graph of `graph.build`.
        modules: the module table by name.
        candidates: each candidate layer -> its first weight op node (Conv, Gemm or MatMul).
        group_size: the units per cascade.
        user_groups: the simple config's `distill_group` entries.

    Raises:
        ConfigError: a user group is invalid (SPEC 11.5, in its check order), or there is no group at all.
    """
    view = _View(graph, modules)
    user_paths = _user_routes(view, user_groups)
    in_user = {name for path in user_paths for name in _names(view, path)}
    in_user_nodes = {node for path in user_paths for node in path}

    units: dict[NodeKey, _Unit] = {}
    why_none: dict[str, str] = {}
    for layer, start in candidates.items():
        if layer in in_user:
            continue
        unit, reason = _unit(view, layer, start)
        if unit is None:
            why_none[layer] = reason
        else:
            units[start] = unit

    raw: list[tuple[int, list[_Unit] | None, tuple[NodeKey, ...]]] = []
    for path in user_paths:
        raw.append((view.index(path[0]), None, tuple(path)))
    used: set[NodeKey] = set(in_user_nodes)
    for node in view.order:
        unit = units.get(node)
        if unit is None or node in used:
            continue
        chain = [unit]
        used.update(unit.nodes)
        while len(chain) < group_size:
            following = view.consumers(chain[-1].nodes[-1])
            nxt = units.get(following[0]) if len(following) == 1 else None
            if nxt is None or following[0] in used:
                break
            chain.append(nxt)
            used.update(nxt.nodes)
        raw.append((view.index(node), chain, ()))
    raw.sort(key=lambda item: item[0])

    groups: list[tuple[str, ...]] = []
    member_of: dict[str, int] = {}
    unit_end: dict[str, str] = {}
    left_out: list[LeftOut] = []
    user: list[int] = []
    for index, (_, links, route) in enumerate(raw):
        names: list[str] = []
        if links is None:
            user.append(index)
            names = _names(view, route)
            for name in names:
                if name in candidates:
                    member_of[name] = index
        else:
            for unit in links:
                member_of[unit.layer] = index
                unit_end[unit.layer] = unit.ends
                for node, carried in zip(unit.nodes, unit.names, strict=True):
                    if carried is not None:
                        names.append(carried)
                    else:
                        after = names[-1] if names else unit.layer
                        left_out.append(LeftOut(view.label(node), view.op(node), after, index))
        groups.append(tuple(names))
    if not groups:
        raise ConfigError("Not found distill group in graph, please check the model or cfg file.")
    grouped = {name for group in groups for name in group}
    stray = tuple(
        dict.fromkeys(
            view.carried[reader]
            for path in user_paths
            for reader in view.consumers(path[-1])
            if reader in view.carried
            and view.op(reader) in JOINING_ACTIVATIONS
            and view.carried[reader] not in grouped
        )
    )
    return Groups(tuple(groups), member_of, why_none, unit_end, tuple(left_out), tuple(user), stray)


def _names(view: _View, path: Iterable[NodeKey]) -> list[str]:
    return [view.carried[node] for node in path if node in view.carried]


def _unit(view: _View, layer: str, start: NodeKey) -> tuple[_Unit | None, str]:
    """The unit a candidate starts (rules 1-5), or None and why it has none."""
    nodes: list[NodeKey] = [start]
    names: list[str | None] = [layer]

    def done(ends: str) -> tuple[_Unit, str]:
        return _Unit(layer, tuple(nodes), tuple(names), ends), ""

    following = view.consumers(start)
    if not following:
        return done("its output has no consumer")
    if len(following) > 1:
        return done(f"its output is used {len(following)} times (a branch point)")
    nxt = following[0]
    data = view.data[nxt]
    if view.op(start) == "MatMul" and view.op(nxt) == "Add" and data[keys.MODULE] == layer:
        return done("its bias Add follows (a Linear on N-D input)")
    if view.op(nxt) == "BatchNormalization":
        bn = view.carried.get(nxt)
        if bn is None:
            owner = data[keys.MODULE]
            what = f"module {owner!r} ({view.class_of(owner)})" if owner is not None else "no module"
            return (
                None,
                f"the BatchNormalization after it ({view.label(nxt)}) belongs to {what}, not a BatchNorm2d",
            )
        cls = view.class_of(bn)
        if cls != UNIT_BATCHNORM:
            return None, f"the BatchNorm after it, {bn!r}, is a {cls}, not a BatchNorm2d"
        if view.calls[bn] > 1:
            return None, f"the BatchNorm after it, {bn!r}, is called {view.calls[bn]} times (reused)"
        nodes.append(nxt)
        names.append(bn)
        after_bn = view.consumers(nxt)
        if len(after_bn) != 1:
            return done(
                f"the output of {bn!r} is used {len(after_bn)} times"
                if after_bn
                else f"the output of {bn!r} has no consumer"
            )
        nxt = after_bn[0]
    if view.op(nxt) in JOINING_ACTIVATIONS:
        nodes.append(nxt)
        names.append(view.carried.get(nxt))
        return done(f"after the activation {view.op(nxt)}")
    return done(f"{view.op(nxt)} ({view.label(nxt)}) follows, which does not join a unit")


def _user_routes(view: _View, user_groups: Sequence[UserGroup]) -> list[list[NodeKey]]:
    """The one route of each user group, checked in SPEC 11.5's order."""
    routes: list[list[NodeKey]] = []
    for group in user_groups:
        starts = view.carriers.get(group.start, [])
        if len(starts) > 1:
            raise ConfigError(f"Not support module {group.start} be reused as a start layer of distill_group")
        route = _only_route(view, starts[0], frozenset(view.carriers.get(group.end, ()))) if starts else None
        if route is None:
            raise ConfigError(
                f"Can not find an only route from start_layer_name({group.start}) to "
                f"end_layer_name({group.end}), please check whether layer in model and in right order."
            )
        for node in route:
            name = view.carried.get(node)
            if name is None:
                raise ConfigError(
                    f"layer [None] in {group.label()} not exist or not a nn.Module object. "
                    f"(QuantScope: the op {view.label(node)} ({view.op(node)}) on the route has no module of a "
                    "marked kind)"
                )
            cls = view.class_of(name)
            if cls not in USER_GROUP_TYPES:
                raise ConfigError(
                    f"layer [{name}] in {group.label()} is not a supported type{list(USER_GROUP_TYPES)}"
                )
            if cls in BATCHNORM_CLASSES and view.calls[name] > 1:
                raise ConfigError(f"Not support to distill reused module for {name}")
        routes.append(route)
    for first in range(len(routes)):
        for second in range(first + 1, len(routes)):
            if set(_names(view, routes[first])) & set(_names(view, routes[second])):
                raise ConfigError(
                    f"There is an intersection between {user_groups[first].label()} and "
                    f"{user_groups[second].label()}"
                )
    return routes


def _only_route(view: _View, start: NodeKey, ends: frozenset[NodeKey]) -> list[NodeKey] | None:
    """The one path from `start` along consumers to a node in `ends`, or None when there are none or several."""
    counts: dict[NodeKey, int] = {}

    def count(node: NodeKey) -> int:  # paths from node to an end, capped at 2; iterative: graphs are deep
        stack = [node]
        while stack:
            current = stack[-1]
            if current in counts:
                stack.pop()
                continue
            if current in ends:
                counts[current] = 1
                stack.pop()
                continue
            pending = [s for s in view.successors(current) if s not in counts]
            if pending:
                stack.extend(pending)
                continue
            counts[current] = min(2, sum(counts[s] for s in view.successors(current)))
            stack.pop()
        return counts[node]

    if count(start) != 1:
        return None
    route = [start]
    while route[-1] not in ends:
        route.append(next(s for s in view.successors(route[-1]) if counts.get(s, 0) == 1))
    return route


def folded_batchnorm(graph: nx.DiGraph, modules: Mapping[str, ModuleInfo]) -> str | None:
    """Why the groups cannot be read from this graph because a BatchNorm was folded into a conv, else None.

    The groups need every BatchNorm as its own BatchNormalization node (SPEC 11.3). A file exported with
    constant folding (the TorchScript exporter's default) or through the dynamo optimizer has none: the conv
    absorbed it. Signs, with a BatchNorm module that makes no BatchNormalization node: a Conv owned by a
    BatchNorm module (the optimizer gives the fused node the BatchNorm's scope), or a Conv whose weight is a
    tensor the exporter made (`onnx::Conv_12`: no parameter stands for it), or a Conv the file was read as owned
    by its conv although it carried the BatchNorm's scope (the dynamo optimizer's `FuseBatchNormIntoConv`).
    """
    batchnorms = {name for name, info in modules.items() if marked_kind(info) in BATCHNORM_CLASSES}
    if not batchnorms:
        return None
    with_node: set[str] = set()
    suspects: list[str] = []
    for node, data in graph.nodes(data=True):
        if data[keys.KIND] != keys.KIND_OP:
            continue
        owner = data[keys.MODULE]
        if data[keys.OP_TYPE] == "BatchNormalization" and owner is not None:
            with_node.add(owner)
        elif data[keys.OP_TYPE] == "Conv":
            inputs = data[keys.INPUTS]
            weight = graph.nodes.get(("init", inputs[1])) if len(inputs) > 1 and inputs[1] else None
            made = weight is not None and not weight.get(keys.PARAMS) and inputs[1].startswith("onnx::Conv")
            if owner in batchnorms or made:
                suspects.append(str(data[keys.ONNX_NAME] or node))
    silent = sorted(batchnorms - with_node)
    for fact in graph.graph.get(keys.GRAPH_INFERENCES) or ():
        # the dynamo optimizer's fused Conv, re-owned to its conv from its weight's name (graph.infer)
        if fact.fact == "owner" and any(f"{FUSED_SCOPE} {name!r}" in fact.basis for name in silent):
            suspects.append(fact.basis.split(" (", 1)[0])
    if not suspects or not (silent or not batchnorms):
        return None
    shown = ", ".join(silent[:5]) + (f" and {len(silent) - 5} more" if len(silent) > 5 else "")
    what = (
        f"the BatchNorm modules {shown} have no BatchNormalization node"
        if silent
        else "a Conv reads a folded weight"
    )
    return (
        f"{what}: the file was exported with BatchNorm "
        f"folded into the convolutions (e.g. {suspects[0]}), so the distill groups (conv -> BatchNorm -> "
        "activation, SPEC 11.3) cannot be read from it; export it again with BatchNorm kept (QuantScope's "
        "export_onnx does with exporter='dynamo', or with constant_folding=False; with torch.onnx.export: "
        "dynamo=True with optimize=False, or dynamo=False with do_constant_folding=False)"
    )


def unknown_classes(graph: nx.DiGraph, modules: Mapping[str, ModuleInfo]) -> str | None:
    """Why the groups cannot be read because the file does not say the class of a module whose op could join a
    unit (a TorchScript file read without its mapping: BatchNorm and activation modules have no class), else
    None. Whether such an op joins, and under which name, depends on that class (SPEC 11.3 rules 2-4)."""
    unknown: list[str] = []
    for _, data in graph.nodes(data=True):
        if data[keys.KIND] != keys.KIND_OP:
            continue
        if data[keys.OP_TYPE] != "BatchNormalization" and data[keys.OP_TYPE] not in JOINING_ACTIVATIONS:
            continue
        owner = data[keys.MODULE]
        if owner is None:
            continue
        info = modules.get(owner)
        if info is None or info.class_name == keys.UNKNOWN_CLASS:
            unknown.append(f"{owner or '<root>'} ({data[keys.OP_TYPE]} {data[keys.ONNX_NAME]})")
    if not unknown:
        return None
    shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    return (
        f"the file does not say the class of the modules {shown}: whether their ops join a distill unit, and "
        "under which name, depends on it (SPEC 11.3); pass the mapping file written with the ONNX file"
    )
