"""Facts a file without a mapping does not state, inferred from what it does state, and marked as such.

Two kinds of file come here (torch is never imported):
- a dynamo export rewritten by torch's default optimizer (`torch.onnx.export(model, args, path)`): a Conv
  that absorbed a BatchNorm carries the BatchNorm's scope (`FuseBatchNormIntoConv`), so its owner is
  inferred from the parameter name of the weight it still reads (`conv1.weight` -> `conv1`) and, when no
  other node names that module's class, its class from the op and the weight's rank (`fuse_owners`);
- a TorchScript export (`dynamo=False`), which carries no metadata at all: owners come from the
  scope-style node names (`/layer1/layer1.0/conv1/Conv`) read with the exporter's naming rules (see
  `graph.torchscript`), checked against the parameter names the file still has (`fc.weight`), classes from
  the op and the weight's rank, and the layer order from the initializer order or the node order
  (`graph_from_node_names`).

Every inferred fact becomes an `Inference` (module, fact, value, basis) that the report shows per layer. A
fact that cannot be established is not guessed: the op gets no owner (it is reported with the reason in
`ExportedGraph.unresolved`) or the module no class (it is reported, never configured).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from graph.ir import ExportedGraph, Inference, NodeRecord, TensorRecord
from graph.keys import UNKNOWN_CLASS
from graph.proto import file_producer, read_initializers, read_inputs, read_nodes
from graph.torchscript import ScopeResolver, scope_of, unqualified_name

WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
# recurrent ops: one op per LSTM/GRU module, its W/R/B built from the module's parameters inside its scope
RNN_OPS = frozenset({"LSTM", "GRU"})
# a parameter or buffer name: dotted, its last atom an identifier (`fc.weight`, `mha.in_proj_weight`);
# graph inputs such as `input.1` end with a number, exporter names such as `onnx::Conv_12` have colons
_PARAMETER = re.compile(r"^[A-Za-z_][\w]*(?:\.[\w]+)*\.[A-Za-z_]\w*$")
_REPEATED = re.compile(r"^(.+)_(\d+)$")
# ops the TorchScript exporter puts between an initializer and its reader without changing which tensor
# it is (merged initializers are read through Identity)
_ALIAS_OPS = frozenset({"Identity"})
# ops that make a view of a weight without making it another tensor
_VIEW_OPS = frozenset({"Transpose", "Cast", "Reshape"})


# how an owner inference names the module whose scope an optimizer-rewritten op carried (`... carries the scope
# of 'bn1'`): a BatchNorm folded into a conv is found from it (analyzer.groups.folded_batchnorm)
FUSED_SCOPE = "carries the scope of"


def looks_like_parameter(name: str) -> bool:
    """Whether a tensor name reads as a torch parameter/buffer name (`layer1.0.conv1.weight`)."""
    return bool(_PARAMETER.match(name))


def parameter_owner(name: str) -> str:
    """The module a parameter name belongs to (`layer1.0.conv1.weight` -> `layer1.0.conv1`)."""
    return name.rsplit(".", 1)[0] if "." in name else ""


_CLASS_BY_OP = {
    ("Conv", 3): "Conv1d",
    ("Conv", 4): "Conv2d",
    ("Conv", 5): "Conv3d",
    ("ConvTranspose", 3): "ConvTranspose1d",
    ("ConvTranspose", 4): "ConvTranspose2d",
    ("ConvTranspose", 5): "ConvTranspose3d",
    ("Gemm", 2): "Linear",
    ("MatMul", 2): "Linear",
}


def class_from_op(op_type: str, weight_rank: int) -> str | None:
    """The torch class a weight op of this kind comes from (Conv with a 4-D weight -> Conv2d), or None."""
    return _CLASS_BY_OP.get((op_type, weight_rank))


def class_basis(op_type: str, weight_rank: int) -> str:
    return f"from its {op_type} op with a {weight_rank}-D weight"


@dataclass(frozen=True, slots=True)
class Fused:
    """What `fuse_owners` found for the weight ops the optimizer rewrote."""

    owners: Mapping[int, tuple[str | None, str | None]]  # node position -> (module, class name)
    class_paths: Mapping[str, str]  # inferred classes of modules no node's metadata names
    inferences: tuple[Inference, ...]
    unresolved: Mapping[int, str]  # node position -> why its owner cannot be established


def fuse_owners(
    nodes: Sequence[NodeRecord],
    rules: Mapping[int, str],
    parameters: Iterable[str],
    folded_from: Mapping[str, tuple[str, ...]],
    dims: Mapping[str, tuple[int | None, ...]],
    class_paths: Mapping[str, str],
) -> Fused:
    """Owners of the weight ops a `Fuse...` rule of the optimizer rewrote.

    Args:
        nodes: the records, owners as the metadata gives them (the fused module's scope).
        rules: node position -> the optimizer rules that rewrote it.
        parameters: the parameter names of the exported program (its graph signature).
        folded_from: initializer -> the tensors the optimizer folded it from (`pkg.onnxscript.optimizer.folded_from`).
        dims: initializer dims.
        class_paths: module path -> qualified class, from every node's metadata.
    """
    params = set(parameters)
    owners: dict[int, tuple[str | None, str | None]] = {}
    extra: dict[str, str] = {}
    inferences: list[Inference] = []
    unresolved: dict[int, str] = {}
    for position, rule in rules.items():
        node = nodes[position]
        if node.op_type not in WEIGHT_OPS or "Fuse" not in rule:
            continue
        fused_into = node.module if node.module is not None else "?"
        weight = node.inputs[1] if len(node.inputs) > 1 else ""
        sources = (weight,) if weight in params else folded_from.get(weight, ())
        named = [source for source in sources if source in params]
        rewritten = (
            f"{node.name} ({rule.split(', ')[1] if ', ' in rule else rule}) {FUSED_SCOPE} {fused_into!r}"
        )
        if len(named) != 1 or weight not in dims:
            unresolved[position] = (
                f"{rewritten} and its weight {weight!r} is no parameter name, so the module that made it "
                "cannot be established"
            )
            owners[position] = (None, None)
            continue
        owner = parameter_owner(named[0])
        inferences.append(
            Inference(
                owner, "owner", owner, f"{rewritten}; owner from its weight's parameter name {named[0]!r}"
            )
        )
        cls = class_paths.get(owner) or extra.get(owner)
        if cls is None:
            rank = len(dims[weight])
            inferred = class_from_op(node.op_type, rank)
            if inferred is None:
                unresolved[position] = f"{rewritten}; the class of {owner!r} cannot be established"
                owners[position] = (None, None)
                continue
            extra[owner] = inferred
            inferences.append(Inference(owner, "class", inferred, class_basis(node.op_type, rank)))
            cls = inferred
        owners[position] = (owner, cls.rsplit(".", 1)[-1])
    return Fused(owners, extra, tuple(inferences), unresolved)


def _not_linear(node: NodeRecord) -> str:
    """Why a Gemm/MatMul cannot come from a torch Linear as the TorchScript exporter writes one, or "".

    A Linear's weight is `(out, in)`: its Gemm has `transB = 1`, and its MatMul reads a transposed copy (a
    renamed initializer, or `Transpose` of the parameter), never the parameter itself. A `Conv1D`-style
    layer (`x @ W` with `W` stored `(in, out)`, as GPT-2 has it) shows otherwise.
    """
    if node.op_type == "Gemm" and node.attrs.get("transB", 0) != 1:
        return "its Gemm does not transpose the weight (transB = 0): a (in, out) weight, not a Linear's"
    if node.op_type == "MatMul" and len(node.inputs) > 1 and looks_like_parameter(node.inputs[1]):
        return f"its MatMul reads the parameter {node.inputs[1]!r} untransposed: a (in, out) weight, not a Linear's"
    return ""


def assumed_ties(nodes: Sequence[NodeRecord], initializers: Iterable[str]) -> tuple[Inference, ...]:
    """The weight ops of different modules that read one initializer, in a file that does not record ties.

    Such a tensor is taken as a tied parameter (the shared-weight check excludes both layers), but the file
    cannot tell a tie from equal-valued tensors that torch's default optimizer merged (deep-copied layers):
    the decision rests on that reading, and each of those modules says so.
    """
    names = set(initializers)
    readers: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        if node.op_type not in WEIGHT_OPS or node.module is None:
            continue
        for tensor in node.inputs[1:3]:
            if tensor in names and node.module not in readers[tensor]:
                readers[tensor].append(node.module)
    found: list[Inference] = []
    for tensor, owners in readers.items():
        if len(owners) < 2:
            continue
        for owner in owners:
            others = ", ".join(o for o in owners if o != owner)
            found.append(
                Inference(
                    owner,
                    "tie",
                    tensor,
                    f"{tensor!r} is also read by {others}: taken as one tied parameter (the file cannot tell "
                    "it from equal tensors an optimizer merged)",
                )
            )
    return tuple(found)


# --- TorchScript files --------------------------------------------------------------------------------------


def reconstruct(components: Sequence[str]) -> str:
    """The dotted module name that scope components spell, read with the exporter's naming rule.

    Each component is a module's *unqualified* name (from its last non-numeric atom on), so a component that
    extends its parent's unqualified name with numeric atoms is a numbered child (`features` then
    `features.0` -> `features.0`; `features.1`, `conv`, `conv.0` -> `features.1.conv.0`), and any other is a
    child by that name. Containers that are never called (ModuleList/ModuleDict) leave no component: their
    names cannot be recovered from the scope alone.
    """
    name = ""
    for component in components:
        if not name:
            name = component
            continue
        parent = unqualified_name(name)
        if component.startswith(parent + ".") and all(
            atom.isnumeric() for atom in component[len(parent) + 1 :].split(".")
        ):
            name += component[len(parent) :]
        else:
            name = f"{name}.{component}"
    return name


@dataclass(slots=True)
class _Scope:
    """The nodes of one scope string, and what they read."""

    nodes: list[int]
    evidence: set[str]  # owners of the parameter-named tensors its nodes read


def _aliases(nodes: Sequence[NodeRecord], weights: set[str], ops: frozenset[str]) -> dict[str, str]:
    """Tensor -> the weight it is made from by `ops` alone: merged copies (`Identity(onnx::Conv_239)`), or
    views (`Transpose(fc.weight)`, a Linear exported without constant folding)."""
    found: dict[str, str] = {}
    for node in nodes:
        if node.op_type in ops and node.inputs and node.inputs[0]:
            source = found.get(node.inputs[0], node.inputs[0])
            if source in weights:
                for out in node.outputs:
                    found[out] = source
    return found


def _computed_sources(nodes: Sequence[NodeRecord], weights: set[str]) -> dict[str, tuple[str, ...]]:
    """Tensor -> the weights it is computed from, for every op output computed from weights and constants alone
    (no graph input on its way), nodes taken in graph order."""
    sources: dict[str, frozenset[str]] = {name: frozenset((name,)) for name in weights}
    for node in nodes:
        inputs = [tensor for tensor in node.inputs if tensor]
        if all(tensor in sources for tensor in inputs):
            found = frozenset().union(*(sources[tensor] for tensor in inputs))
            for out in node.outputs:
                if out:
                    sources[out] = found
    return {
        tensor: tuple(sorted(found)) for tensor, found in sources.items() if tensor not in weights and found
    }


def graph_from_node_names(model: Any) -> ExportedGraph | None:
    """Records of a TorchScript-exported model from its node names alone (no mapping, no metadata).

    Returns None when the nodes carry no scope-style names (the file is not a TorchScript export).
    """
    graph = model.graph
    records = read_nodes(graph)
    scopes = [scope_of(node.name) for node in records]
    if not any(scope for scope in scopes):
        return None
    initializers = read_initializers(graph)
    init_names = {tensor.name for tensor in initializers}
    graph_inputs = read_inputs(graph)
    # exported with export_params=False: the weights are graph inputs, after the model's own inputs: under
    # their parameter names, or renamed where constant folding made them (`onnx::Conv_12`)
    candidates = [t for t in graph_inputs if t.name not in init_names]
    start = next((i for i, t in enumerate(candidates) if looks_like_parameter(t.name)), len(candidates))
    param_inputs = candidates[start:]
    weights = {tensor.name for tensor in (*initializers, *param_inputs)}
    dims = {tensor.name: tensor.dims for tensor in (*initializers, *param_inputs)}
    aliases = _aliases(records, weights, _ALIAS_OPS)
    views = _aliases(records, weights | set(aliases), _VIEW_OPS)

    def base(tensor: str) -> str:
        tensor = views.get(tensor, tensor)
        return aliases.get(tensor, tensor)

    readable = weights | set(aliases) | set(views)
    named = [name for name in (*weights, *aliases) if looks_like_parameter(name)]
    table: set[str] = set()
    for name in named:
        owner = parameter_owner(name)
        while True:
            table.add(owner)
            if not owner:
                break
            owner = parameter_owner(owner)
    resolver = ScopeResolver(table)

    by_scope: dict[str, _Scope] = {}
    for index, (node, scope) in enumerate(zip(records, scopes, strict=True)):
        if scope is None:
            continue
        entry = by_scope.setdefault(scope, _Scope([], set()))
        entry.nodes.append(index)
        for tensor in node.inputs:
            if tensor in readable and looks_like_parameter(tensor):
                entry.evidence.add(parameter_owner(tensor))

    inferences: list[Inference] = []
    owner_of_scope: dict[str, str] = {}
    how: dict[str, str] = {}  # owner -> how its name was established (for the report)
    repeated_of: dict[str, str] = {}  # scope text -> the module it is a further call of
    for text, entry in by_scope.items():
        components = text.split("/")[1:] if text else []
        backed = [name for name in resolver.candidates(text) if name in entry.evidence]
        if len(backed) == 1:
            owner = backed[0]
            exact = reconstruct(components) == owner
            last = components[-1] if components else ""
            if not exact and unqualified_name(owner) != last and _REPEATED.match(last):
                repeated_of[text] = owner
            how.setdefault(
                owner,
                f"from the node names ({text or '/'}/...) and the parameter names its ops read",
            )
        else:
            owner = reconstruct(components)
            how.setdefault(owner, f"from the node names ({text or '/'}/...)")
        owner_of_scope[text] = owner

    # a further call of a module whose weights were renamed: `/blk/conv_1` reading the tensor `/blk/conv` reads
    weight_of: dict[int, str] = {}
    computed = _computed_sources(records, weights)
    for index, node in enumerate(records):
        if node.op_type in WEIGHT_OPS and len(node.inputs) > 1 and node.inputs[1] in readable:
            weight_of[index] = base(node.inputs[1])
        elif node.op_type in WEIGHT_OPS and len(node.inputs) > 1 and node.inputs[1] in computed:
            # a weight computed before the op (spectral norm's weight_orig / sigma, which the exporter's
            # folding leaves; a whole weight-norm computation when nothing was folded): it stands for the
            # highest-rank parameter it reads, of the op's own module, or of the one module all of them
            # belong to (a module that ran under another name: `net.conv1` reading `conv1.weight_v`)
            made_in = scopes[index]
            maker = owner_of_scope.get(made_in) if made_in is not None else None
            named = [t for t in computed[node.inputs[1]] if looks_like_parameter(t)]
            own_sources = [t for t in named if parameter_owner(t) == maker]
            if not own_sources and len({parameter_owner(t) for t in named}) == 1:
                own_sources = named
            if own_sources:
                weight_of[index] = max(own_sources, key=lambda t: (len(dims[t]), t))
    owners_read: dict[str, set[str]] = defaultdict(set)
    for index, tensor in weight_of.items():
        scope = scopes[index]
        if scope is not None:
            owners_read[owner_of_scope[scope]].add(tensor)
    for text, owner in list(owner_of_scope.items()):
        if text in repeated_of or owner in table:
            continue
        head, _, last = owner.rpartition(".")
        repeated = _REPEATED.match(last)
        if not repeated:
            continue
        called = f"{head}.{repeated.group(1)}" if head else repeated.group(1)
        if called in owners_read and owners_read[owner] and owners_read[owner] <= owners_read[called]:
            owner_of_scope[text] = called
            repeated_of[text] = called
    for text, called in repeated_of.items():
        inferences.append(
            Inference(
                called,
                "call",
                called,
                f"{text} read as a further call of {called} (the exporter's _N suffix, and the same weight)",
            )
        )

    owners: list[str | None] = [owner_of_scope[s] if s is not None else None for s in scopes]
    modules_seen: list[str] = []
    for seen in owners:
        if seen is not None and seen not in modules_seen:
            modules_seen.append(seen)
    names: set[str] = set(table)
    for seen in modules_seen:
        while True:
            names.add(seen)
            if not seen:
                break
            seen = parameter_owner(seen)
    parents = {parameter_owner(name) for name in names if name}

    # classes: a leaf module whose weight ops are all one op kind on one weight tensor
    ops_of: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(records):
        made_by = owners[index]
        if made_by is not None and (node.op_type in WEIGHT_OPS or node.op_type in RNN_OPS):
            ops_of[made_by].append(index)
    classes: dict[str, str] = {}
    unresolved = {
        records[index].name: f"{records[index].name}: its node name carries no module scope"
        for index, scope in enumerate(scopes)
        if scope is None and records[index].op_type in WEIGHT_OPS
    }
    for owner, indices in ops_of.items():
        kinds = sorted({records[i].op_type for i in indices})
        tensors = {weight_of.get(i) for i in indices}
        why = ""
        if owner and owner not in parents and len(kinds) == 1 and kinds[0] in RNN_OPS:
            # only an nn.LSTM/nn.GRU makes this op (its gates' weights are sliced and concatenated first)
            classes[owner] = kinds[0]
            inferences.append(Inference(owner, "class", kinds[0], f"from its {kinds[0]} op"))
            continue
        if not owner:
            why = "the model itself makes it (a functional call in its forward)"
        elif owner in parents:
            why = "it has child modules, so it is no Linear/Conv layer (a functional call in its forward)"
        elif None in tensors:
            why = f"it makes {', '.join(kinds)} on activations"
        elif len(kinds) > 1 or len(tensors) > 1:
            why = f"it makes {len(indices)} ops ({', '.join(kinds)}) on {len(tensors)} different weights"
        else:
            why = _not_linear(records[indices[0]])
        if why:
            inferences.append(Inference(owner, "class", None, why))
            continue
        weight = next(iter(tensors))
        assert weight is not None
        rank = len(dims[weight])
        inferred = class_from_op(kinds[0], rank)
        if inferred is None:
            inferences.append(
                Inference(
                    owner, "class", None, f"no torch layer class makes {kinds[0]} with a {rank}-D weight"
                )
            )
            continue
        classes[owner] = inferred
        inferences.append(Inference(owner, "class", inferred, class_basis(kinds[0], rank)))
    for owner in ops_of:
        if owner:
            inferences.append(Inference(owner, "name", owner, how.get(owner, "from the node names")))

    # layer order: named_modules() order is the order of the parameters when every layer's weight is an
    # initializer under its own parameter name (the exporter lists them in named_parameters() order); when
    # some were renamed (BatchNorm folded, Linear weights transposed) or merged into another's (read through
    # Identity), the initializers no longer say it, and the node order (call order) is the best there is
    weight_params = {
        owner: [
            t
            for i in indices
            for t in (views.get(name, name) for name in records[i].inputs[1:2])
            if t in weights and looks_like_parameter(t) and parameter_owner(t) == owner
        ]
        for owner, indices in ops_of.items()
        if owner in classes
    }
    by_params = all(weight_params.values()) and bool(weight_params)
    ordered_params = [
        name
        for name in (*(t.name for t in initializers), *(t.name for t in param_inputs))
        if looks_like_parameter(name)
    ]
    basis = (
        "from the order of the parameter initializers (named_parameters() order)"
        if by_params
        else "from the node order (the order of the calls in forward)"
    )
    for owner in classes:
        inferences.append(Inference(owner, "order", None, basis))

    from graph.load import derive_modules

    all_paths = {name: classes.get(name, UNKNOWN_CLASS) for name in names}
    table_modules = derive_modules(ordered_params if by_params else (), (), modules_seen, all_paths)

    # parameters and ties, in the names the model would have: `<owner>.weight`/`.bias` for each tensor an op
    # reads; a tensor read directly by several modules is one tensor in the model (the exporter reads merged
    # equal-valued tensors through Identity copies instead)
    own: dict[str, list[str]] = defaultdict(list)
    direct: dict[str, set[str]] = defaultdict(set)
    for owner, indices in ops_of.items():
        for i in indices:
            for position, role in ((1, "weight"), (2, "bias")):
                if position >= len(records[i].inputs):
                    continue
                tensor = records[i].inputs[position]
                if tensor not in readable:
                    continue
                pname = f"{owner}.{role}" if owner else role
                if pname not in own[owner]:
                    own[owner].append(pname)
                tensor = views.get(tensor, tensor)
                if tensor in weights:  # read as it is, or through a view: not a merged copy
                    direct[tensor].add(pname)
    tied = tuple(
        tuple(sorted(group))
        for group in (direct[t] for t in sorted(direct))
        if len({parameter_owner(p) for p in group}) > 1
    )
    modules = tuple(
        replace(
            info,
            class_path=info.class_name if info.class_name != UNKNOWN_CLASS else "",
            parameters=tuple(own.get(info.name, ())),
        )
        for info in table_modules
    )
    nodes = tuple(
        replace(
            record,
            module=owner,
            module_class=classes.get(owner, UNKNOWN_CLASS) if owner is not None else None,
        )
        for record, owner in zip(records, owners, strict=True)
    )
    records_of_weights = tuple(
        TensorRecord(tensor.name, tensor.dims, (tensor.name,) if looks_like_parameter(tensor.name) else ())
        for tensor in (*initializers, *param_inputs)
    )
    producer = file_producer(
        model, "torchscript", tuple(t.dims for t in graph_inputs if t.name not in weights)
    )
    return ExportedGraph(
        nodes,
        records_of_weights,
        tuple(t for t in graph_inputs if t.name not in weights),
        modules,
        producer,
        tied,
        tuple(inferences),
        unresolved,
    )
