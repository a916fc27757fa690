"""Torch model -> `ExportedGraph` in memory (the library call), or -> ONNX file + mapping file (`export_onnx`).

With `graph.torchscript`, the only modules of `graph/` that import torch (lazily, inside the functions), so
the offline path runs without it. The dynamo exporter is used with `optimize=False` (the optimizer fuses BatchNorm into Conv
and merges initializers, which would change the owners and the sharing the checks read) at opset 18;
the in-memory IR it returns references the model's tensors, so no weight is ever copied or written.

Which exporter the library call tries first (`exporter_plan`): the TorchScript exporter, which costs a
traced forward pass and no fixed setup, unless the model lives on the meta device, its weights are large
(the TorchScript exporter's shape inference copies them) or its example inputs are so large that the real
forward pass would cost more than dynamo's trace with fake tensors (which imports onnxscript, builds an
operator registry, reused within the process, and decomposes the whole program: a warm ResNet-18 export
takes 2.2-2.6 s against TorchScript's 1.2 s). The other exporter is the fallback; both give the same config. Every export holds the
process-wide lock of `graph.exporting`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graph.capabilities import TorchExporters, torch_exporters
from graph.exporting import EXPORT_LOCK, exclusive_export
from graph.ir import (
    WEIGHT_LAYER_CLASSES,
    AttrValue,
    ExportedGraph,
    ModuleInfo,
    NodeRecord,
    Producer,
    TensorRecord,
)
from graph.mapping import default_mapping_path
from graph.proto import node_keys
from graph.scopes import dynamo_owner

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

OPSET = 18
EXPORTERS = ("dynamo", "torchscript")

# torch.nn classes QuantScope recognises; the first one (in this order) that a module is an instance of is
# recorded as its `torch_class`. Subclasses come before their bases.
KNOWN_TORCH_CLASSES = (
    *WEIGHT_LAYER_CLASSES,
    "Embedding",
    "MultiheadAttention",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LayerNorm",
    # the activations a distill unit can end with (SPEC 11.3: a module of these kinds carries its name)
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "AvgPool2d",  # a calibration-config candidate (SPEC 10.2)
)

# constructor facts of the RNN modules that the graph does not show (dropout) or not always (num_layers,
# bidirectional, proj_size): recorded in the module table and the mapping file (SPEC section 9 rule 5)
RNN_FACTS = ("num_layers", "bidirectional", "dropout", "proj_size", "input_size", "hidden_size")


class ExportError(RuntimeError):
    """Every exporter failed; the message carries each exporter's error."""


class ExporterUnavailableError(ExportError):
    """The export needs the dynamo exporter and the installed torch has none; the message names what it needs."""


def require_dynamo(what: str, support: TorchExporters | None = None) -> None:
    """Raise `ExporterUnavailableError` naming `what` needs the dynamo exporter, where this torch has none."""
    missing = (support or torch_exporters()).dynamo_missing
    if missing is not None:
        raise ExporterUnavailableError(f"{what} needs the dynamo exporter, but {missing}")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Return the inner module of a `DataParallel` / `DistributedDataParallel` wrapper."""
    import torch

    wrappers: tuple[type, ...] = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    while isinstance(model, wrappers):
        inner = model.module
        assert isinstance(inner, torch.nn.Module)
        model = inner
    return model


def keep_distributed_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    """A `DistributedDataParallel` as AMCT's `create_quant_config` sees it (SPEC 10.1): not unwrapped, so its
    layers are named `module.<name>`. The export unwraps DDP (`unwrap`), so the inner model is placed, unchanged,
    as the `module` child of a plain container that `unwrap` leaves alone; any other model is returned as is."""
    import torch

    if not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model
    inner = unwrap(model)

    class DistributedDataParallel(torch.nn.Module):  # the wrapper's name, as named_modules() shows it
        def __init__(self) -> None:
            super().__init__()
            self.module = inner

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.module(*args, **kwargs)

    return DistributedDataParallel()


def module_table(model: torch.nn.Module) -> tuple[ModuleInfo, ...]:
    """Describe every module of `model` in `named_modules()` order."""
    import torch

    known = [(name, getattr(torch.nn, name)) for name in KNOWN_TORCH_CLASSES]
    # a module registered under several names (kept as `self.conv1` and placed in a Sequential) is listed
    # once, under its first name; its other names are its aliases
    names: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), []).append(name)
    table = []
    for name, module in model.named_modules():
        cls = type(module)
        torch_class = next((known_name for known_name, base in known if isinstance(module, base)), None)
        params = tuple(
            f"{name}.{pname}" if name else pname for pname, _ in module.named_parameters(recurse=False)
        )
        table.append(
            ModuleInfo(
                name=name,
                class_name=cls.__name__,
                class_path=f"{cls.__module__}.{cls.__qualname__}",
                torch_class=torch_class,
                parameters=params,
                aliases=tuple(alias for alias in names[id(module)] if alias != name),
                config=_module_facts(module, torch),
            )
        )
    return tuple(table)


def _module_facts(module: torch.nn.Module, torch: Any) -> tuple[tuple[str, AttrValue], ...]:
    """The RNN_FACTS of an RNN module (empty for any other module), sorted by name."""
    if not isinstance(module, torch.nn.RNNBase):
        return ()
    facts: list[tuple[str, AttrValue]] = []
    for name in sorted(RNN_FACTS):
        value = getattr(module, name, None)
        if isinstance(value, bool) or value is None:
            facts.append((name, value))
        else:
            facts.append((name, float(value) if name == "dropout" else int(value)))
    return tuple(facts)


def tied_parameters(model: torch.nn.Module) -> tuple[tuple[str, ...], ...]:
    """Groups of parameter names that are one tensor (tied weights), each group sorted."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return tuple(sorted(tuple(sorted(names)) for names in groups.values() if len(names) > 1))


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Export in eval mode, then put back every module's own `training` flag."""
    flags = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _ir_attr(value: Any) -> AttrValue:
    """An onnx_ir attribute value as a plain, hashable Python value (tensors and graphs dropped)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = tuple(value)
        if all(isinstance(item, (int, float, str)) for item in items):
            return items
    return None


def _ir_dims(shape: Any) -> tuple[int | None, ...]:
    if shape is None:
        return ()
    return tuple(dim if isinstance(dim, int) else None for dim in shape)


def graph_from_ir(model_ir: Any, modules: tuple[ModuleInfo, ...], producer: Producer) -> ExportedGraph:
    """Read an onnx_ir `Model` (as the dynamo exporter returns it) without touching tensor data."""
    graph = model_ir.graph
    nodes = []
    names = node_keys(node.name or "" for node in graph)
    for name, node in zip(names, graph, strict=True):
        owner, owner_class = dynamo_owner(node.metadata_props)
        nodes.append(
            NodeRecord(
                name=name,
                op_type=node.op_type,
                inputs=tuple(value.name if value is not None else "" for value in node.inputs),
                outputs=tuple(value.name for value in node.outputs),
                attrs={key: _ir_attr(attr.value) for key, attr in node.attributes.items()},
                module=owner,
                module_class=owner_class,
                domain=node.domain,
            )
        )
    initializers = tuple(
        TensorRecord(name, _ir_dims(value.shape)) for name, value in graph.initializers.items()
    )
    inputs = tuple(TensorRecord(value.name, _ir_dims(value.shape)) for value in graph.inputs)
    return ExportedGraph(tuple(nodes), initializers, inputs, modules, producer)


def _as_args(input_data: Any) -> tuple[Any, ...]:
    return input_data if isinstance(input_data, tuple) else (input_data,)


def is_all_meta(model: torch.nn.Module) -> bool:
    """Whether `model` has parameters or buffers and every one of them is on the meta device."""
    tensors = [*model.parameters(), *model.buffers()]
    return bool(tensors) and all(tensor.is_meta for tensor in tensors)


def _model_args(model: torch.nn.Module, input_data: Any) -> tuple[Any, ...]:
    """The example inputs as a tuple; for a model whose every parameter and buffer is on the meta device,
    tensor inputs are moved to meta too (only their shapes matter), so CPU example inputs are accepted."""
    import torch

    args = _as_args(input_data)
    if not is_all_meta(model):
        return args
    return tuple(arg.to("meta") if isinstance(arg, torch.Tensor) else arg for arg in args)


def _input_shapes(args: Sequence[Any]) -> tuple[tuple[int | None, ...], ...]:
    return tuple(tuple(int(d) for d in arg.shape) for arg in args if hasattr(arg, "shape"))


@functools.cache
def torchlib_registry() -> Any | None:
    """The dynamo exporter's ONNX operator registry, built once per process; None where this torch does not let
    a registry be passed in (then every export builds its own, as `torch.onnx.export` always does).

    `torch.onnx.export(dynamo=True)` rebuilds this registry from torchlib on every call (0.65-1.0 s); the
    registry is only read during an export, so the library call builds it once and passes it on.
    """
    try:
        from torch.onnx._internal.exporter import _core, _registration
    except ImportError:
        return None
    # the core's own opset and optimizer arguments (torch 2.9 on; before, torch.onnx.export applies them after
    # the core returns, so the registry cannot be passed without skipping them)
    if not {"registry", "optimize", "opset_version"} <= set(inspect.signature(_core.export).parameters):
        return None
    if "opset_version" not in inspect.signature(_registration.ONNXRegistry.from_torchlib).parameters:
        return None
    return _registration.ONNXRegistry.from_torchlib(opset_version=OPSET)


def export_dynamo_ir(model: torch.nn.Module, args: tuple[Any, ...]) -> Any:
    """Run the dynamo exporter in memory; return the `ONNXProgram`.

    Exports whose inputs are all tensors go to torch's exporter core with the registry of `torchlib_registry`
    (what `torch.onnx.export` does, less rebuilding the registry); anything else through `torch.onnx.export`.
    """
    import torch

    require_dynamo("this export")
    with exclusive_export():
        registry = torchlib_registry() if all(isinstance(arg, torch.Tensor) for arg in args) else None
        if registry is None:
            return torch.onnx.export(
                model, args, dynamo=True, optimize=False, opset_version=OPSET, verbose=False
            )
        from torch.onnx._internal.exporter import _core

        return _core.export(
            model, args, registry=registry, optimize=False, opset_version=OPSET, verbose=False
        )


def _dynamo_producer(args: tuple[Any, ...]) -> Producer:
    import onnx
    import torch

    return Producer(
        exporter="dynamo",
        opset=OPSET,
        torch_version=str(torch.__version__),
        onnx_version=onnx.__version__,
        producer_name="pytorch",
        producer_version=str(torch.__version__),
        input_shapes=_input_shapes(args),
    )


def _dynamo(model: torch.nn.Module, args: tuple[Any, ...], modules: tuple[ModuleInfo, ...]) -> ExportedGraph:
    program = export_dynamo_ir(model, args)
    return graph_from_ir(program.model, modules, _dynamo_producer(args))


def _torchscript(
    model: torch.nn.Module, args: tuple[Any, ...], modules: tuple[ModuleInfo, ...]
) -> ExportedGraph:
    from graph.torchscript import export_torchscript

    return export_torchscript(model, args, modules, _input_shapes(args))


# Above this many elements in its tensor inputs, a model goes to the dynamo exporter first: the TorchScript
# exporter runs the real forward pass, whose cost grows with the input, while dynamo traces with fake
# tensors at a cost that does not (benchmarks/first_call.py measures both sides of this line)
TORCHSCRIPT_MAX_INPUT_ELEMENTS = 1 << 20
# From this many bytes of parameters and buffers on, too: the TorchScript exporter's ONNX shape inference holds a
# copy of the weights (BERT-base: 82 % of its 438 MB at the peak, as AMCT's own export does) and its cost grows
# with them (a materialized 1.1 B-parameter Llama: 66 s of CPU against dynamo's 14 s), while dynamo copies
# nothing and costs a few seconds more on a first call (BERT-base: 6.6 s against TorchScript's 4-6 s)
TORCHSCRIPT_MAX_WEIGHT_BYTES = 1024**3


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """The exporters to try, in order, and why the first one comes first."""

    order: tuple[str, ...]
    reason: str


def exporter_plan(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    exporter: str | None = None,
    support: TorchExporters | None = None,
) -> ExportPlan:
    """Which exporter the library call tries first for this model and these inputs, and why.

    The TorchScript exporter is the fast one on a first call (no registry to build, no decompositions), and
    both give the same config; dynamo comes first only where TorchScript would be slower or cannot run. Only
    the exporters the installed torch offers (`support`, by default `graph.capabilities.torch_exporters()`)
    are planned: before torch 2.5 (or without onnxscript) that is TorchScript alone.

    Raises:
        ExporterUnavailableError: the dynamo exporter was asked for, or the model is on the meta device (which
            only dynamo can export), and this torch has no dynamo exporter; the message names what it needs.
    """
    support = support or torch_exporters()
    missing = support.dynamo_missing
    if exporter is not None:
        if exporter == "dynamo":
            require_dynamo("exporter='dynamo'", support)
        return ExportPlan((exporter,), f"the {exporter} exporter was asked for")
    if is_all_meta(model):
        require_dynamo(
            "a model whose every parameter is on the meta device (the TorchScript exporter runs the forward pass)",
            support,
        )
        return ExportPlan(
            ("dynamo", "torchscript"),
            "every parameter is on the meta device: dynamo traces shapes, the TorchScript exporter runs the forward pass",
        )
    weight_bytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    elements = sum(arg.numel() for arg in args if hasattr(arg, "numel"))
    dynamo_first = None
    if weight_bytes >= TORCHSCRIPT_MAX_WEIGHT_BYTES:
        dynamo_first = (
            f"the weights take {weight_bytes / 1024**2:.0f} MiB (>= {TORCHSCRIPT_MAX_WEIGHT_BYTES // 1024**2} MiB): "
            "the TorchScript exporter's shape inference would copy them, dynamo copies nothing"
        )
    elif elements > TORCHSCRIPT_MAX_INPUT_ELEMENTS:
        dynamo_first = (
            f"the inputs hold {elements} elements (> {TORCHSCRIPT_MAX_INPUT_ELEMENTS}): the TorchScript exporter's "
            "real forward pass would cost more than dynamo's trace"
        )
    if dynamo_first is not None:
        if missing is not None:
            return ExportPlan(("torchscript",), f"{dynamo_first}; but {missing}: the TorchScript exporter")
        return ExportPlan(("dynamo", "torchscript"), dynamo_first)
    reason = (
        f"the inputs hold {elements} elements (<= {TORCHSCRIPT_MAX_INPUT_ELEMENTS}) and the weights "
        f"{weight_bytes / 1024**2:.0f} MiB: the TorchScript exporter's traced forward pass is the fastest export"
    )
    if missing is not None:
        return ExportPlan(("torchscript",), f"{reason} ({missing}: no fallback)")
    return ExportPlan(("torchscript", "dynamo"), reason)


def export_graph(model: torch.nn.Module, input_data: Any, exporter: str | None = None) -> ExportedGraph:
    """Export `model` in memory and return the graph the analysis reads.

    Exports are serialized by the process-wide `graph.exporting.EXPORT_LOCK` (torch's exporters are not
    thread-safe); the returned graph's producer says which exporter ran and why (`Producer.export_choice`).

    Args:
        model: the model; it is left exactly as it was (training flags restored, nothing attached).
        input_data: a tuple of example inputs, or a single tensor. When every parameter and buffer of
            the model is on the meta device, tensor inputs are moved to meta (CPU inputs are accepted).
        exporter: "dynamo" or "torchscript" to force one; None follows `exporter_plan`, falling back to the
            other exporter when the first fails.

    Raises:
        ValueError: `exporter` is not one of `EXPORTERS`.
        ExporterUnavailableError: only the dynamo exporter could do this export and this torch has none.
        ExportError: every exporter tried failed; the message names each one's error.
    """
    if exporter is not None and exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)} or None, got {exporter!r}")
    model = unwrap(model)
    args = _model_args(model, input_data)
    modules = module_table(model)
    plan = exporter_plan(model, args, exporter)
    errors: list[tuple[str, BaseException]] = []
    # one export at a time; afterwards the training flags are the model's own again
    with EXPORT_LOCK, eval_mode(model):
        for name in plan.order:
            try:
                graph = (
                    _dynamo(model, args, modules) if name == "dynamo" else _torchscript(model, args, modules)
                )
            except Exception as err:  # the exporters raise anything; every failure is reported below
                logger.debug("%s exporter failed: %s", name, err)
                errors.append((name, err))
                continue
            choice = plan.reason
            if errors:
                choice = "; ".join(
                    f"the {other} exporter failed ({summarize_error(e)})" for other, e in errors
                )
                logger.info("%s; used the %s exporter", choice, name)
            graph = replace(graph, producer=replace(graph.producer, export_choice=choice))
            return with_model_facts(graph, model)
    raise _failure(errors)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SUMMARY = re.compile(r"## Exception summary\s*<class '([^']+)'>: ([^\n]*)")


def summarize_error(err: BaseException, limit: int = 300) -> str:
    """One line for an exporter's error: the root cause the dynamo exporter's long report ends with, or the
    first line of the message; the full exception stays chained."""
    text = _ANSI.sub("", str(err))
    found = _SUMMARY.search(text)
    if found:
        line = f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2).strip()}"
    else:
        first = next((part.strip() for part in text.splitlines() if part.strip()), "")
        line = f"{type(err).__name__}: {first}" if first else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _failure(errors: list[tuple[str, BaseException]]) -> ExportError:
    detail = "; ".join(f"{name} exporter: {summarize_error(err)}" for name, err in errors)
    failure = ExportError(f"the model could not be exported to ONNX ({detail})")
    failure.__cause__ = errors[-1][1]
    return failure


def with_model_facts(graph: ExportedGraph, model: torch.nn.Module) -> ExportedGraph:
    """Add what only the model knows: its tied parameter groups, and for each initializer that is a
    parameter or buffer by name, every name that tensor has in the model."""
    tied = tied_parameters(model)
    state = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    state |= {name for name, _ in model.named_buffers(remove_duplicate=False)}
    mates = {name: group for group in tied for name in group}
    initializers = []
    for tensor in graph.initializers:
        names = set(tensor.params)
        if not names and tensor.name in state:
            names.add(tensor.name)
        for name in tuple(names):
            names.update(mates.get(name, ()))
        initializers.append(replace(tensor, params=tuple(sorted(names))))
    return replace(graph, initializers=tuple(initializers), tied_parameters=tied)


@dataclass(frozen=True, slots=True)
class OnnxExport:
    """The files `export_onnx` wrote."""

    onnx_file: Path
    data_file: Path  # the weights (external data), beside the ONNX file; not written for a meta-device model
    mapping_file: Path
    exporter: str


def export_onnx(
    model: torch.nn.Module,
    input_data: Any,
    onnx_file: str | os.PathLike[str],
    mapping_file: str | os.PathLike[str] | None = None,
    exporter: str | None = None,
    *,
    constant_folding: bool = True,
) -> OnnxExport:
    """Export `model` to an ONNX file plus the mapping file the offline analysis reads.

    The weights go to `<onnx file name>.data` beside the ONNX file (external data); the mapping (module
    names and classes, node -> module, initializer -> parameters, tied parameters, provenance) goes to
    `mapping_file`, by default the ONNX path with `.mapping.json` instead of `.onnx`. Analysing the pair
    with `analyzer.create_quant_retrain_config_from_onnx` gives the same config as
    `analyzer.create_quant_retrain_config` on the model.

    A model on the meta device (built under `with torch.device("meta")`) has shapes but no weights: its
    ONNX file is weight-free. Its initializers still point into `<onnx file name>.data` (location, offset
    and length as if the weights were there), but that file is not written (it would be as large as the
    weights); the offline analysis never opens external data, so the pair analyses like the model. An
    existing data file at that path is left as it was.

    Args:
        model: the model (a DataParallel/DistributedDataParallel wrapper is unwrapped); left unchanged.
        input_data: a tuple of example inputs, or a single tensor. When every parameter and buffer of
            the model is on the meta device, tensor inputs are moved to meta (CPU inputs are accepted).
        onnx_file: where the ONNX file is written (an existing one is replaced; folders are created).
        mapping_file: where the mapping is written; None for the default beside the ONNX file.
        exporter: "dynamo" (module scopes in the node metadata too) or "torchscript" (the exporter's
            usual settings, as AMCT and older tools export: BatchNorm folded, equal initializers merged); None
            (the default) for dynamo where this torch has it (torch >= 2.5 with onnxscript), else torchscript.

    Returns:
        The paths written.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: `exporter` is not "dynamo" or "torchscript".
        ExporterUnavailableError: `exporter` is "dynamo" and this torch has none (before torch 2.5, or
            without onnxscript).
        ExportError: the export failed (the exporter's error is chained).
        OSError: a file cannot be written; an existing ONNX or mapping file is then left as it was.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be torch.nn.Module, got {type(model).__name__}")
    if not isinstance(input_data, (tuple, torch.Tensor)):
        raise TypeError(
            f"input_data must be a tuple of inputs or a torch.Tensor, got {type(input_data).__name__}"
        )
    for value, argument, optional in ((onnx_file, "onnx_file", False), (mapping_file, "mapping_file", True)):
        if not (isinstance(value, (str, os.PathLike)) or (optional and value is None)):
            raise TypeError(f"{argument} must be str or os.PathLike, got {type(value).__name__}")
    if exporter is None:
        exporter = default_file_exporter()
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)} or None, got {exporter!r}")
    if exporter == "dynamo":
        require_dynamo("export_onnx(exporter='dynamo') (exporter='torchscript' runs on every torch)")

    onnx_path = Path(onnx_file)
    mapping_path = Path(mapping_file) if mapping_file is not None else default_mapping_path(onnx_path)
    data_path = onnx_path.with_name(onnx_path.name + ".data")
    model = unwrap(model)
    args = _model_args(model, input_data)
    modules = module_table(model)
    with EXPORT_LOCK, eval_mode(model):
        try:
            ir_model, graph = _export_for_file(model, args, modules, exporter, constant_folding)
        except Exception as err:  # the exporters raise anything
            raise _failure([(exporter, err)]) from err
        graph = with_model_facts(graph, model)
    from graph.files import check_target

    check_target(
        mapping_path
    )  # before the ONNX file is replaced: a mapping that cannot be written is known now
    write_model(ir_model, onnx_path, data_path.name)

    from graph.load import read_model
    from graph.mapping import build_mapping, write_mapping

    saved = read_model(onnx_path)
    write_mapping(mapping_path, build_mapping(graph, saved, onnx_path.name))
    return OnnxExport(onnx_path, data_path, mapping_path, exporter)


def default_file_exporter() -> str:
    """The exporter of `export_onnx` when none is asked for: dynamo (its file carries the module scopes and
    analyses without a mapping) where this torch has it, else TorchScript."""
    return "dynamo" if torch_exporters().dynamo_missing is None else "torchscript"


def _export_for_file(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    modules: tuple[ModuleInfo, ...],
    exporter: str,
    constant_folding: bool = True,
) -> tuple[Any, ExportedGraph]:
    """The onnx_ir model to save and its records."""
    import onnx_ir as ir

    if exporter == "dynamo":
        program = export_dynamo_ir(model, args)
        producer = _dynamo_producer(args)
        return program.model, graph_from_ir(program.model, modules, producer)
    from graph.torchscript import export_torchscript_file_graph

    proto, graph = export_torchscript_file_graph(model, args, modules, _input_shapes(args), constant_folding)
    return ir.from_proto(proto), graph


def _point_meta_weights_at(ir_model: Any, data_name: str, base_dir: Path) -> bool:
    """If the exported model's initializers hold meta-device tensors (shapes, no data), replace each of those
    by an external reference into `data_name` at consecutive offsets, without reading or writing any data,
    and return True. Initializers with data (constants the export created) stay in the ONNX file.
    """
    import onnx_ir as ir

    values = list(ir_model.graph.initializers.values())
    if not any(getattr(getattr(value.const_value, "raw", None), "is_meta", False) for value in values):
        return False
    offset = 0
    for value in values:
        tensor = value.const_value
        if tensor is None or not getattr(getattr(tensor, "raw", None), "is_meta", False):
            continue
        length = tensor.nbytes
        value.const_value = ir.ExternalTensor(
            data_name,
            offset,
            length,
            tensor.dtype,
            shape=tensor.shape,
            name=value.name or "",
            base_dir=base_dir,
        )
        offset += length
    return True


def write_model(ir_model: Any, onnx_path: Path, data_name: str) -> None:
    """Save an onnx_ir model with every weight in one external-data file `data_name` beside it (a
    meta-device model's initializers point into that file, which is then not written).

    Both files are written into a temporary folder beside the target and renamed into place, the weights
    first: a failure or an interrupt leaves existing files as they were and no temporary file behind. (The
    two renames are not one step: a reader at that instant may see the new weights with the old graph.)
    """
    import onnx_ir as ir

    from graph.files import check_target

    for target in (onnx_path, onnx_path.with_name(data_name)):
        check_target(target)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(
        tempfile.mkdtemp(
            prefix=f".{os.fsdecode(os.fsencode(onnx_path.name)[:100])}.", suffix=".tmp", dir=onnx_path.parent
        )
    )
    try:
        with exclusive_export():
            if _point_meta_weights_at(ir_model, data_name, folder):
                ir.save(ir_model, folder / onnx_path.name)  # no data to write: the data file is not created
            else:
                ir.save(ir_model, folder / onnx_path.name, external_data=data_name)
        for name, target in ((data_name, onnx_path.with_name(data_name)), (onnx_path.name, onnx_path)):
            staged = folder / name
            if name == data_name and not staged.exists():  # no weights: no data file
                continue
            with contextlib.suppress(OSError):  # a replaced file keeps its permissions
                os.chmod(staged, stat.S_IMODE(target.stat().st_mode))
            os.replace(staged, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
