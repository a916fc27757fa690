"""Build `ExportedGraph`s by hand, so that a check's case reads in place without torch or an export."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from graph.ir import AttrValue, ExportedGraph, ModuleInfo, NodeRecord, TensorRecord


def op(
    op_type: str,
    inputs: Iterable[str],
    outputs: Iterable[str],
    module: str | None = None,
    name: str = "",
    **attrs: AttrValue,
) -> NodeRecord:
    """One op; `module` is the owning module's name (its class is looked up when the graph is made)."""
    outputs = tuple(outputs)
    return NodeRecord(
        name or f"{module or ''}/{op_type}_{outputs[0]}", op_type, tuple(inputs), outputs, attrs, module, None
    )


def module(
    name: str, class_name: str, torch_class: str | None = "same", params: Iterable[str] = ()
) -> ModuleInfo:
    """A module; torch_class "same" means an instance of the torch class of its own name."""
    resolved = class_name if torch_class == "same" else torch_class
    return ModuleInfo(name, class_name, f"torch.nn.{class_name}", resolved, True, tuple(params))


def make_graph(
    nodes: Iterable[NodeRecord],
    initializers: Mapping[str, tuple[int, ...]],
    modules: Iterable[ModuleInfo],
    inputs: Mapping[str, tuple[int, ...]] | None = None,
    tied: tuple[tuple[str, ...], ...] | None = None,
) -> ExportedGraph:
    modules = (module("", "Net", None), *modules)
    classes = {m.name: m.class_name for m in modules}
    records = tuple(
        NodeRecord(n.name, n.op_type, n.inputs, n.outputs, n.attrs, n.module, classes.get(n.module or "\0"))
        for n in nodes
    )
    return ExportedGraph(
        records,
        tuple(TensorRecord(name, dims) for name, dims in initializers.items()),
        tuple(TensorRecord(name, dims) for name, dims in (inputs or {"x": (1, 3, 16, 16)}).items()),
        modules,
        tied_parameters=tied,
    )


def conv(
    name: str, x: str, y: str, cin: int = 32, cout: int = 32, group: int = 1
) -> tuple[NodeRecord, dict[str, tuple[int, ...]]]:
    """A Conv2d's Conv op and its weight initializer."""
    weight = f"{name}.weight"
    node = op("Conv", [x, weight], [y], name, group=group, kernel_shape=(3, 3))
    return node, {weight: (cout, cin // group, 3, 3)}


def gemm(
    name: str, x: str, y: str, weight: str | None = None, trans_a: int = 0
) -> tuple[NodeRecord, dict[str, tuple[int, ...]]]:
    """A Linear's Gemm op and its weight initializer."""
    weight = weight or f"{name}.weight"
    node = op("Gemm", [x, weight], [y], name, transA=trans_a, transB=1)
    return node, {weight: (16, 16)}
