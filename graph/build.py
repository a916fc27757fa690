"""`ExportedGraph` -> networkx `DiGraph`: one node per ONNX op, initializer and graph input; edges follow tensors.

Node keys are `("op", index)`, `("init", name)` and `("input", name)`, so duplicate or empty ONNX node
names cannot collide. One pass over the nodes; no quadratic work.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import networkx as nx

from graph import keys
from graph.ir import ExportedGraph, alias_owners

TENSOR = "tensor"  # edge attribute: name of the tensor the edge carries


def op_key(index: int) -> tuple[str, int]:
    return ("op", index)


def init_key(name: str) -> tuple[str, str]:
    return ("init", name)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a big graph is built or indexed.

    Building allocates several containers per node and frees almost none, so every collection would walk the
    ever-growing graph for nothing: at 100k nodes that made the per-node cost grow with the graph's size.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_graph(exported: ExportedGraph) -> nx.DiGraph:
    """Build the networkx graph the checks read."""
    with paused_gc():
        return _build(exported)


def _build(exported: ExportedGraph) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.graph[keys.GRAPH_MODULES] = exported.modules
    graph.graph[keys.GRAPH_PRODUCER] = exported.producer
    graph.graph[keys.GRAPH_TIED] = exported.tied_parameters
    graph.graph[keys.GRAPH_INFERENCES] = exported.inferences
    graph.graph[keys.GRAPH_UNRESOLVED] = exported.unresolved

    producers: dict[str, Any] = {}
    nodes: list[tuple[Any, dict[str, Any]]] = []
    node: tuple[str, str | int]
    for tensor in exported.initializers:
        node = init_key(tensor.name)
        nodes.append(
            (
                node,
                {
                    keys.KIND: keys.KIND_INITIALIZER,
                    keys.DIMS: tensor.dims,
                    keys.PARAMS: tensor.params,
                    keys.COMPUTED_FROM: tensor.computed_from,
                },
            )
        )
        producers[tensor.name] = node
    for tensor in exported.inputs:
        if tensor.name in producers:  # an initializer listed as input too (old exporters): it is a weight
            continue
        node = ("input", tensor.name)
        nodes.append((node, {keys.KIND: keys.KIND_INPUT, keys.DIMS: tensor.dims}))
        producers[tensor.name] = node

    # an op made under another name of a module (`net.0` for `conv1`) belongs to the module (SPEC section 2)
    aliases = alias_owners(exported.modules)
    op_nodes = []
    for index, record in enumerate(exported.nodes):
        node = op_key(index)
        op_nodes.append(node)
        nodes.append(
            (
                node,
                {
                    keys.KIND: keys.KIND_OP,
                    keys.INDEX: index,
                    keys.ONNX_NAME: record.name,
                    keys.OP_TYPE: record.op_type,
                    keys.ATTRS: record.attrs,
                    keys.INPUTS: record.inputs,
                    keys.OUTPUTS: record.outputs,
                    keys.MODULE: aliases.get(record.module, record.module)
                    if record.module is not None
                    else None,
                    keys.MODULE_CLASS: record.module_class,
                },
            )
        )
        for tensor_name in record.outputs:
            if tensor_name:
                producers[tensor_name] = node
    # bulk insertion: one call for all nodes and one for all edges instead of one per node and per edge
    graph.add_nodes_from(nodes)
    # edges after all producers are known, so a graph listed out of order still links up
    graph.add_edges_from(
        (producers[tensor_name], node, {TENSOR: tensor_name})
        for node, record in zip(op_nodes, exported.nodes, strict=True)
        for tensor_name in record.inputs
        if tensor_name and tensor_name in producers
    )
    return graph
