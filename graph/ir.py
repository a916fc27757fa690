"""The in-memory form of an exported model that every entrance produces.

Both the torch export (library call) and the ONNX loader (offline call) produce an `ExportedGraph`;
`graph.build` turns it into the networkx graph the checks read. Only names, op types, attributes,
scopes and initializer shapes are kept: never weight data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

AttrValue = int | float | str | tuple[int, ...] | tuple[float, ...] | tuple[str, ...] | None


# torch.nn classes whose modules carry a layer's weight: recorded as a module's `torch_class` (graph.export) and
# listed by the report whether or not they are candidates (analyzer.layertypes), so none goes unaccounted for
WEIGHT_LAYER_CLASSES = (
    "Linear",
    "Bilinear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "LSTM",
    "GRU",
    "RNN",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One ONNX op, with the torch module that produced it (its scope)."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, AttrValue]
    module: str | None
    module_class: str | None
    domain: str = ""


@dataclass(frozen=True, slots=True)
class TensorRecord:
    """An initializer or a graph input: name and shape, never values."""

    name: str
    dims: tuple[int | None, ...]
    params: tuple[str, ...] = ()
    # a weight the exporter folded from a module's parameters and buffers before its op (weight norm,
    # spectral norm, a pruning mask): their names, known from the model or the mapping file
    computed_from: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """A torch module as `named_modules()` lists it.

    `torch_class` is the name of the `torch.nn` class (among those QuantScope knows) that the module is an
    instance of, or None. AMCT's candidate rule needs both: `class_name` decides, and the module must be an
    instance of the torch class of that name. `torch_class` is None as well when the source could not tell
    (a file with dynamo metadata alone); `torch_class_known` says which. `aliases` are the module's other
    names (`named_modules(remove_duplicate=False)`: a module also placed in a Sequential); `name` is the first.
    """

    name: str
    class_name: str
    class_path: str = ""
    torch_class: str | None = None
    torch_class_known: bool = True
    parameters: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    # constructor facts the graph cannot show (an LSTM's dropout, num_layers, ...), as (name, value) sorted by
    # name; None when the source could not tell (an ONNX file without its mapping)
    config: tuple[tuple[str, AttrValue], ...] | None = ()

    def fact(self, name: str) -> AttrValue:
        """The value of constructor fact `name`, None when unknown."""
        return dict(self.config or ()).get(name)


def alias_owners(modules: tuple[ModuleInfo, ...]) -> dict[str, str]:
    """Every other name of a module -> its name in `named_modules()` (an empty dict when no module has two)."""
    return {alias: info.name for info in modules for alias in info.aliases}


@dataclass(frozen=True, slots=True)
class Producer:
    """Where an exported graph came from, for the report's provenance."""

    exporter: str  # "dynamo", "torchscript" or "unknown"
    opset: int | None = None
    torch_version: str | None = None
    onnx_version: str | None = None
    producer_name: str = ""
    producer_version: str = ""
    input_shapes: tuple[tuple[int | None, ...], ...] = ()
    # which exporter ran and why (the first choice's reason, or why the exporters before it failed); empty
    # for a graph read from a file
    export_choice: str = ""


@dataclass(frozen=True, slots=True)
class Inference:
    """A fact about a module that the file does not state and the loader inferred (or failed to).

    Attributes:
        module: the module the fact is about (its dotted name as inferred).
        fact: what was inferred: `class`, `owner`, `name`, `order`, `call` or `tie`.
        value: the inferred value (`Conv2d`, `layer1.0.conv1`), or None when it could not be established.
        basis: one line saying from what (`from its Conv op with a 4-D weight`).
    """

    module: str
    fact: str
    value: str | None
    basis: str


@dataclass(frozen=True, slots=True)
class ExportedGraph:
    """Everything the analysis knows about one exported model."""

    nodes: tuple[NodeRecord, ...]
    initializers: tuple[TensorRecord, ...]
    inputs: tuple[TensorRecord, ...]
    modules: tuple[ModuleInfo, ...]
    producer: Producer = field(default_factory=lambda: Producer("unknown"))
    # parameter names tied to the same tensor in the model (one group per shared Parameter);
    # lets the shared-weight check tell a real tie from initializers an exporter merged by value
    tied_parameters: tuple[tuple[str, ...], ...] | None = None
    # facts the loader inferred because the file does not say them (a file without a mapping whose scopes
    # were rewritten by the optimizer, or a TorchScript file); empty for files that say everything
    inferences: tuple[Inference, ...] = ()
    # node key -> why its owning module cannot be established (such ops are reported, never guessed)
    unresolved: Mapping[str, str] = field(default_factory=dict)
