"""`ExportedGraph` -> networkx `DiGraph`: one node per ONNX op, initializer and graph input; edges follow tensors.

Node keys are `("op", index)`, `("init", name)` and `("input", name)`, so duplicate or empty ONNX node
names cannot collide. One pass over the nodes; no quadratic work.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from graph import keys
from graph.ir import ExportedGraph

TENSOR = "tensor"  # edge attribute: name of the tensor the edge carries


def op_key(index: int) -> tuple[str, int]:
    return ("op", index)


def init_key(name: str) -> tuple[str, str]:
    return ("init", name)


def build_graph(exported: ExportedGraph) -> nx.DiGraph:
    """Build the networkx graph the checks read."""
    graph = nx.DiGraph()
    graph.graph[keys.GRAPH_MODULES] = exported.modules
    graph.graph[keys.GRAPH_PRODUCER] = exported.producer
    graph.graph[keys.GRAPH_TIED] = exported.tied_parameters

    producers: dict[str, Any] = {}
    node: tuple[str, str | int]
    for tensor in exported.initializers:
        node = init_key(tensor.name)
        graph.add_node(
            node, **{keys.KIND: keys.KIND_INITIALIZER, keys.DIMS: tensor.dims, keys.PARAMS: tensor.params}
        )
        producers[tensor.name] = node
    for tensor in exported.inputs:
        if tensor.name in producers:  # an initializer listed as input too (old exporters): it is a weight
            continue
        node = ("input", tensor.name)
        graph.add_node(node, **{keys.KIND: keys.KIND_INPUT, keys.DIMS: tensor.dims})
        producers[tensor.name] = node

    for index, record in enumerate(exported.nodes):
        node = op_key(index)
        graph.add_node(
            node,
            **{
                keys.KIND: keys.KIND_OP,
                keys.INDEX: index,
                keys.ONNX_NAME: record.name,
                keys.OP_TYPE: record.op_type,
                keys.ATTRS: record.attrs,
                keys.INPUTS: record.inputs,
                keys.OUTPUTS: record.outputs,
                keys.MODULE: record.module,
                keys.MODULE_CLASS: record.module_class,
            },
        )
        for tensor_name in record.outputs:
            if tensor_name:
                producers[tensor_name] = node
    # edges after all producers are known, so a graph listed out of order still links up
    for index, record in enumerate(exported.nodes):
        node = op_key(index)
        for tensor_name in record.inputs:
            source = producers.get(tensor_name) if tensor_name else None
            if source is not None:
                graph.add_edge(source, node, **{TENSOR: tensor_name})
    return graph
