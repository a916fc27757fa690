"""Names of the attributes QuantScope puts on networkx nodes and graphs, in one place.

Checks read the graph through these constants only, so a renamed attribute is a one-line change.
"""

from __future__ import annotations

# node kinds
KIND = "kind"
KIND_OP = "op"
KIND_INITIALIZER = "initializer"
KIND_INPUT = "input"

# op nodes
OP_TYPE = "op_type"
ONNX_NAME = "onnx_name"  # the ONNX node name (may be empty in hand-made graphs)
ATTRS = "attrs"  # dict of plain-Python attribute values
INPUTS = "inputs"  # tuple of tensor names, "" for an omitted optional input
OUTPUTS = "outputs"
MODULE = "module"  # dotted torch module name owning the op, None when unknown
MODULE_CLASS = "module_class"  # class name of that module, None when unknown
UNKNOWN_CLASS = "?"  # the class name of a module the file names without its class, when none can be inferred
INDEX = "index"  # position of the node in the ONNX graph (topological order)

# initializer / graph-input nodes
DIMS = "dims"  # tuple of ints (None for a symbolic dimension)
PARAMS = "params"  # torch parameter names this initializer stands for
COMPUTED_FROM = "computed_from"  # parameter/buffer names a folded computed weight was computed from

# graph attributes
GRAPH_MODULES = "modules"  # tuple of graph.ir.ModuleInfo in named_modules() order
GRAPH_PRODUCER = "producer"  # graph.ir.Producer
GRAPH_TIED = "tied_parameters"  # groups of tied parameter names, or None when unknown
GRAPH_INFERENCES = "inferences"  # tuple of graph.ir.Inference: facts the file does not say
GRAPH_UNRESOLVED = "unresolved"  # node key -> why the owning module of that op cannot be established
