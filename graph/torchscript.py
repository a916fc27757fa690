"""The TorchScript exporter (`torch.onnx.export(dynamo=False)`, plain `torch.onnx.export` before torch 2.5) -> `ExportedGraph`.

The fallback when the dynamo exporter fails, and the exporter AMCT itself uses. Its ONNX carries no module
metadata: the owner of each node is recovered from the scope-style node name the exporter writes
(`/layer1/layer1.0/conv1/Conv`), resolved against the model's module table.

How the exporter builds those names (torch 2.x, `torch/csrc/jit/passes/onnx/naming.cpp` and
`torch.onnx.utils._setup_trace_module_map`):
- each called module contributes one component, its *unqualified* name: the dotted `named_modules()` name
  from its last non-numeric atom on (`layer1.0.conv1` -> `conv1`, `layer1.0` -> `layer1.0`);
- a module that is not called (a `ModuleDict`, a `ModuleList`) contributes nothing, so `heads.cls` gives
  `/cls/Gemm`: components are looked up among descendants, not only children;
- the whole scope string is made unique by a counter suffix on its *last* component: the second call of
  `blk.conv` is `/blk/conv_1`, which collides with a module really named `blk.conv_1` (whose own nodes then
  get `/blk/conv_1/Conv_1`). Such ties are broken by the weights the node reads, then by its neighbours in
  the same scope; a node that stays ambiguous gets no owner (reported, never guessed).

Two ways to export:
- `export_torchscript` (the analysis, in memory): `export_params=False` (no weight is copied; parameters
  become graph inputs under their `state_dict` names), `do_constant_folding=False` (BatchNorm stays a separate
  node, transposed Linear weights stay `Transpose` of the named parameter) and
  `keep_initializers_as_inputs=True` (which turns off the pass that merges initializers with equal values).
  Every weight keeps its parameter name.
- `export_torchscript_proto` with `fold=True` (files, `graph.export.export_onnx(exporter="torchscript")`): the
  exporter's defaults, as AMCT and most existing files have it: BatchNorm folded into the Conv (`onnx::Conv_N`),
  equal initializers merged. Which initializer stands for which parameter is then found from names, the
  exporter's `Identity` aliases and values (`initializer_params`) and recorded in the mapping file; so is what
  a weight folded from a weight-norm, spectral-norm or pruning hook was computed from (`computed_sources`).

torch is imported inside the functions only.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from graph.capabilities import torch_exporters
from graph.exporting import exclusive_export
from graph.ir import ExportedGraph, ModuleInfo, NodeRecord, Producer, TensorRecord, alias_owners
from graph.proto import default_opset, read_initializers, read_inputs, read_nodes

if TYPE_CHECKING:
    import torch

OPSET = 17  # the highest the TorchScript exporter supports well; AMCT uses 11, which fails on attention
_SUFFIX = re.compile(r"^(.+)_(\d+)$")
# ops that carry a weight to its consumer unchanged in meaning (TorchScript's Linear on 3-D input:
# Transpose(weight) -> MatMul; merged initializers: Identity)
_PASS_THROUGH = frozenset({"Transpose", "Identity", "Cast", "Reshape"})


def unqualified_name(name: str) -> str:
    """The scope component the TorchScript exporter uses for module `name` (its last non-numeric atom on)."""
    atoms = name.split(".")
    for index in range(len(atoms) - 1, -1, -1):
        if not atoms[index].isnumeric():
            return ".".join(atoms[index:])
    return name


def scope_of(node_name: str) -> str | None:
    """The scope string of a node name (`/layer1/layer1.0/conv1/Conv_2` -> `/layer1/layer1.0/conv1`,
    `/Relu` -> ``), or None for a name the exporter did not scope (`Constant_12`, `Identity_0`)."""
    if not node_name.startswith("/"):
        return None
    return node_name[: node_name.rfind("/")]


class ScopeResolver:
    """Scope strings -> the modules they can name, over one module table."""

    def __init__(self, module_names: Iterable[str]) -> None:
        self._by_component: dict[str, list[str]] = defaultdict(list)
        for name in module_names:
            if name:
                self._by_component[unqualified_name(name)].append(name)
        self._cache: dict[str, tuple[str, ...]] = {}

    def _descendants(self, parent: str, component: str) -> list[str]:
        """Modules below `parent` whose scope component is `component`, the shallowest ones only."""
        prefix = f"{parent}." if parent else ""
        found = [name for name in self._by_component.get(component, ()) if name.startswith(prefix)]
        if not found:
            return []
        depth = min(name.count(".") for name in found)
        return [name for name in found if name.count(".") == depth]

    def candidates(self, scope: str) -> tuple[str, ...]:
        """Every module the scope string can stand for, most likely first (an exact name before one read
        as a repeated call `<name>_<n>`)."""
        cached = self._cache.get(scope)
        if cached is not None:
            return cached
        components = scope.split("/")[1:] if scope else []
        current = [""]
        for component in components[:-1]:
            current = list(
                dict.fromkeys(m for parent in current for m in self._descendants(parent, component))
            )
            if not current:
                break
        found: list[str] = []
        if not components:
            found = [""]
        elif current:
            last = components[-1]
            spellings = [last]
            repeated = _SUFFIX.match(last)
            if repeated:
                spellings.append(repeated.group(1))
            for spelling in spellings:
                for parent in current:
                    found.extend(self._descendants(parent, spelling))
        result = tuple(dict.fromkeys(found))
        self._cache[scope] = result
        return result


def alias_scope_names(modules: Sequence[ModuleInfo]) -> dict[str, str]:
    """Module names as TorchScript scopes spell a call through an alias -> the module's name.

    The tracer names a module by its first `named_modules()` name but nests it under the module that
    called it: `conv1`, also placed as `net.0`, runs as `/net/conv1` when `net` calls it. For each alias the
    name `<that spelling of the alias's parent>.<the module's scope component>` is added, so the resolver
    finds it like any other module.
    """
    canonical = alias_owners(tuple(modules))
    spelled: dict[str, str] = {}

    def spelling(name: str) -> str:
        if name not in canonical:
            return name
        if name not in spelled:
            parent = name.rsplit(".", 1)[0] if "." in name else ""
            prefix = spelling(parent)
            component = unqualified_name(canonical[name])
            spelled[name] = f"{prefix}.{component}" if prefix else component
        return spelled[name]

    out: dict[str, str] = {}
    for alias, name in canonical.items():
        text = spelling(alias)
        if text != name:
            out.setdefault(text, name)
    return out


def _param_owner(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else ""


def resolve_owners(
    nodes: Sequence[NodeRecord],
    module_names: Iterable[str],
    initializer_params: Mapping[str, tuple[str, ...]],
) -> tuple[str | None, ...]:
    """The owning module of every node, from its scope-style name.

    `initializer_params` maps initializer names to the parameter names they stand for; it breaks ties when a
    scope string can name several modules (a repeated call colliding with a sibling's name, two modules
    with the same unqualified name under uncalled containers). It never overrides an unambiguous scope:
    an op belongs to the module whose forward made it, not to the owner of its weight.
    """
    resolver = ScopeResolver(module_names)
    scopes = [scope_of(node.name) for node in nodes]
    options = [resolver.candidates(scope) if scope is not None else () for scope in scopes]
    owners: list[str | None] = [opts[0] if len(opts) == 1 else None for opts in options]

    producer: dict[str, int] = {}
    consumers: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(nodes):
        for out in node.outputs:
            if out:
                producer[out] = index
        for tensor in node.inputs:
            if tensor:
                consumers[tensor].append(index)

    def weight_owners(index: int, depth: int = 0) -> set[str]:
        """Owners of the parameters node `index` reads, directly or through pass-through ops of its scope."""
        found: set[str] = set()
        for tensor in nodes[index].inputs:
            if tensor in initializer_params:
                found.update(_param_owner(param) for param in initializer_params[tensor])
                continue
            source = producer.get(tensor)
            if (
                source is not None
                and depth < 4
                and nodes[source].op_type in _PASS_THROUGH
                and scopes[source] == scopes[index]
            ):
                found |= weight_owners(source, depth + 1)
        return found

    ambiguous = [index for index, opts in enumerate(options) if len(opts) > 1]
    for index in ambiguous:
        readers = weight_owners(index)
        hits = [name for name in options[index] if name in readers]
        if len(hits) == 1:
            owners[index] = hits[0]
    # the rest (helper ops without a weight) follow their resolved neighbours in the same scope string:
    # first the ops they feed (padding and reshaping ops come before the op they prepare), then the ops
    # that feed them (a bias Add, a Squeeze after the op)
    downstream = [[c for t in node.outputs for c in consumers.get(t, ())] for node in nodes]
    upstream = [[producer[t] for t in node.inputs if t in producer] for node in nodes]
    for neighbours in (downstream, upstream):
        changed = True
        while changed:
            changed = False
            for index in ambiguous:
                if owners[index] is not None:
                    continue
                votes = {
                    owners[n]
                    for n in neighbours[index]
                    if scopes[n] == scopes[index] and owners[n] in options[index]
                }
                if len(votes) == 1:
                    owners[index] = votes.pop()
                    changed = True
    return tuple(owners)


def _state_names(model: torch.nn.Module) -> dict[str, Any]:
    """Every parameter and buffer of the model by every name it has (tied ones under each name)."""
    names: dict[str, Any] = dict(model.named_parameters(remove_duplicate=False))
    names.update(model.named_buffers(remove_duplicate=False))
    return names


def export_torchscript_proto(
    model: torch.nn.Module, args: tuple[Any, ...], fold: bool, constant_folding: bool = True
) -> Any:
    """Run the TorchScript exporter in memory and return the parsed `ModelProto`.

    `fold=False`: parameters as named graph inputs, no weight data, nothing folded or merged (the analysis).
    `fold=True`: the exporter's defaults with weights included (files made the usual way); with
    `constant_folding=False` BatchNorm stays its own node (a file the distill groups can be read from).
    """
    import torch

    with _onnx_log_kept(torch):
        return _export_proto(model, args, fold, constant_folding)


@contextlib.contextmanager
def _onnx_log_kept(torch: Any) -> Iterator[None]:
    """Put torch's C++ ONNX log switch back as it was: the exporter turns it on and leaves it on (torch 2.x
    tests a function object for truth), after which every failing TorchScript export in the process prints
    its whole graph."""
    probe = getattr(torch._C, "_jit_is_onnx_log_enabled", None)
    setter = getattr(torch._C, "_jit_set_onnx_log_enabled", None)
    enabled = probe() if probe is not None else None
    try:
        yield
    finally:
        if setter is not None and enabled is not None:
            setter(enabled)


def _export_proto(model: torch.nn.Module, args: tuple[Any, ...], fold: bool, constant_folding: bool) -> Any:
    import onnx
    import torch

    if fold:
        # through a file: above protobuf's 2 GB limit the exporter needs a path to write external data beside
        with tempfile.TemporaryDirectory(prefix="quantscope-") as folder:
            path = os.path.join(folder, "model.onnx")
            torch.onnx.export(
                model,
                args,
                path,
                opset_version=OPSET,
                verbose=False,
                **torch_exporters().torchscript_arguments(),
                do_constant_folding=constant_folding,
            )
            return onnx.load(path)
    return onnx.load_from_string(analysis_export_bytes(model, args))


def analysis_export_bytes(model: torch.nn.Module, args: tuple[Any, ...]) -> bytes:
    """The TorchScript export the analysis reads, as serialized ONNX: no weight data, nothing folded or merged,
    parameters as graph inputs under their `state_dict` names. Not silenced or locked (see `graph.exporting`)."""
    import torch

    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        args,
        buffer,  # type: ignore[arg-type]
        opset_version=OPSET,
        verbose=False,
        export_params=False,
        do_constant_folding=False,
        keep_initializers_as_inputs=True,
        **torch_exporters().torchscript_arguments(),
    )
    return buffer.getvalue()


def _producer(proto: Any, input_shapes: tuple[tuple[int | None, ...], ...]) -> Producer:
    import onnx
    import torch

    return Producer(
        exporter="torchscript",
        opset=default_opset(proto),
        torch_version=str(torch.__version__),
        onnx_version=onnx.__version__,
        producer_name=proto.producer_name,
        producer_version=proto.producer_version,
        input_shapes=input_shapes,
    )


def _constant(array: Any) -> bool:
    """All elements equal (zeros, ones): such a value says nothing about which tensor it came from."""
    flat = array.reshape(-1)
    if flat.size <= 1:
        return True
    if (flat[:64] != flat[0]).any():  # the usual case, decided without a full pass
        return False
    return bool((flat == flat[0]).all())


def _equal(value: torch.Tensor, other: torch.Tensor) -> bool:
    """Same shape, dtype and values (either may be a transposed view); a few leading elements first, so
    that most mismatches cost nothing."""
    import torch

    if value.shape != other.shape or value.dtype != other.dtype:
        return False
    head = tuple(slice(0, 4) for _ in value.shape)
    return torch.equal(value[head], other[head]) and torch.equal(value, other)


def initializer_params(proto: Any, model: torch.nn.Module) -> dict[str, tuple[str, ...]]:
    """Initializer name -> the parameter/buffer names it stands for, in a file exported the usual way.

    - its own name, when that is a parameter or buffer name;
    - the names the exporter gave the `Identity` copies it made when it merged parameters with equal
      values (`b.weight = Identity(a.weight)`);
    - for a renamed initializer (`onnx::MatMul_12`: a Linear weight the exporter transposed), the names of
      the tensors of the same shape whose value it holds, as is or transposed. Constant-valued tensors
      (zeros, ones) are not matched by value: equal values would be a coincidence, not an identity. A
      folded tensor (BatchNorm folded into a Conv) matches nothing and lists no name.
    """
    import torch
    from onnx import numpy_helper

    state = _state_names(model)
    by_shape: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for name, tensor in state.items():
        by_shape[tuple(tensor.shape)].append(name)
    aliases: dict[str, list[str]] = defaultdict(list)
    for node in proto.graph.node:
        if node.op_type == "Identity" and len(node.input) == 1 and node.output[0] in state:
            aliases[node.input[0]].append(node.output[0])
    found: dict[str, tuple[str, ...]] = {}
    for tensor in proto.graph.initializer:
        names = set(aliases.get(tensor.name, ()))
        if tensor.name in state:
            names.add(tensor.name)
        else:
            array = numpy_helper.to_array(tensor)
            if not _constant(array):
                with warnings.catch_warnings():  # a read-only buffer: only compared, never written
                    warnings.simplefilter("ignore", UserWarning)
                    value = torch.from_numpy(array)
                for name in by_shape.get(tuple(array.shape), ()):
                    if _equal(value, state[name].detach()):
                        names.add(name)
                if array.ndim == 2:  # a Linear weight the exporter stored transposed for MatMul
                    for name in by_shape.get(tuple(reversed(array.shape)), ()):
                        if _equal(value.T, state[name].detach()):
                            names.add(name)
        found[tensor.name] = tuple(sorted(names))
    return found


def computed_weights(model: torch.nn.Module) -> list[tuple[torch.Tensor, tuple[str, ...]]]:
    """Every weight a forward pre-hook of `torch.nn.utils` computes from its module's own parameters and buffers
    (weight norm, spectral norm, pruning), as (its value, the full names of those parameters and buffers).

    Values are computed afresh (spectral norm without a power iteration, as in eval mode), never stored.
    """
    import torch
    from torch.nn.utils import prune
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    found = []
    with torch.no_grad():
        for name, module in model.named_modules():
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, WeightNorm):
                    value = hook.compute_weight(module)
                elif isinstance(hook, SpectralNorm):
                    value = hook.compute_weight(module, do_power_iteration=False)
                elif isinstance(hook, prune.BasePruningMethod):
                    value = hook.apply_mask(module)  # type: ignore[no-untyped-call]
                else:
                    continue
                # the hooks keep the computed tensor's name as `name` (norms) or `_tensor_name` (pruning)
                computed = getattr(hook, "_tensor_name", None) or getattr(hook, "name", "")
                own = (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))
                sources = sorted(
                    f"{name}.{local}" if name else local
                    for local, _ in own
                    if local.startswith(f"{computed}_")
                )
                found.append((value.detach(), tuple(sources)))
    return found


def computed_sources(
    proto: Any, model: torch.nn.Module, params: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """Initializer name -> the parameters and buffers it was computed from, for each weight the exporter
    folded from a module's pre-hook computation (`computed_weights`), matched by shape and value (as is, or
    transposed for a Linear's MatMul). Only initializers that stand for no parameter are compared."""
    import torch
    from onnx import numpy_helper

    weights = computed_weights(model)
    if not weights:
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for tensor in proto.graph.initializer:
        if params.get(tensor.name):
            continue
        shape = tuple(tensor.dims)
        candidates = [
            (value, sources, transposed)
            for value, sources in weights
            for transposed in ((False, True) if value.dim() == 2 else (False,))
            if (tuple(value.T.shape) if transposed else tuple(value.shape)) == shape
        ]
        if not candidates:
            continue
        array = numpy_helper.to_array(tensor)
        if _constant(array):
            continue
        with warnings.catch_warnings():  # a read-only buffer: only compared, never written
            warnings.simplefilter("ignore", UserWarning)
            folded = torch.from_numpy(array)
        for value, sources, transposed in candidates:
            other = value.T if transposed else value
            # the exporter's folding computes with ONNX ops, in another order than the hook: not bit-exact
            if folded.dtype == other.dtype and torch.allclose(folded, other, rtol=1e-5, atol=1e-6):
                found[tensor.name] = sources
                break
    return found


def graph_from_torchscript(
    proto: Any,
    modules: tuple[ModuleInfo, ...],
    producer: Producer,
    initializer_params: Mapping[str, tuple[str, ...]],
    parameter_inputs: frozenset[str] = frozenset(),
    computed: Mapping[str, tuple[str, ...]] | None = None,
) -> ExportedGraph:
    """Records of a TorchScript `ModelProto`, each node owned by the module its scope-style name names.

    Graph inputs named in `parameter_inputs` (an export with `export_params=False`) are weights: they are
    recorded as initializers. `computed` names, for a folded computed weight, what it was computed from.
    """
    records = read_nodes(proto.graph)
    classes = {info.name: info.class_name for info in modules}
    scope_names = alias_scope_names(modules)
    owners = resolve_owners(records, [*classes, *scope_names], initializer_params)
    owners = tuple(scope_names.get(owner, owner) if owner is not None else None for owner in owners)
    nodes = tuple(
        replace(record, module=owner, module_class=classes.get(owner) if owner is not None else None)
        for record, owner in zip(records, owners, strict=True)
    )
    graph_inputs = read_inputs(proto.graph)
    weights = [tensor for tensor in graph_inputs if tensor.name in parameter_inputs]
    initializers = tuple(
        TensorRecord(
            tensor.name,
            tensor.dims,
            initializer_params.get(tensor.name, ()),
            (computed or {}).get(tensor.name, ()),
        )
        for tensor in (*read_initializers(proto.graph), *weights)
    )
    inputs = tuple(tensor for tensor in graph_inputs if tensor.name not in parameter_inputs)
    return ExportedGraph(nodes, initializers, inputs, modules, producer)


def export_torchscript(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    modules: tuple[ModuleInfo, ...],
    input_shapes: tuple[tuple[int | None, ...], ...],
) -> ExportedGraph:
    """Export with the TorchScript exporter in memory (no weight copied) and recover each node's module."""
    with exclusive_export():
        proto = export_torchscript_proto(model, args, fold=False)
    state = _state_names(model)
    named = {tensor.name for tensor in proto.graph.input if tensor.name in state}
    named |= {tensor.name for tensor in proto.graph.initializer if tensor.name in state}
    params = {name: (name,) for name in named}
    return graph_from_torchscript(proto, modules, _producer(proto, input_shapes), params, frozenset(named))


def export_torchscript_file_graph(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    modules: tuple[ModuleInfo, ...],
    input_shapes: tuple[tuple[int | None, ...], ...],
    constant_folding: bool = True,
) -> tuple[Any, ExportedGraph]:
    """Export the usual way (constant folding unless asked not to, weights included) for a file: the
    `ModelProto` to save and its records, with initializers matched to parameters (`initializer_params`)."""
    with exclusive_export():
        proto = export_torchscript_proto(model, args, fold=True, constant_folding=constant_folding)
    params = initializer_params(proto, model)
    computed = computed_sources(proto, model, params)
    return proto, graph_from_torchscript(
        proto, modules, _producer(proto, input_shapes), params, computed=computed
    )
