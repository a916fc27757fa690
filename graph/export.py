"""Torch model -> `ExportedGraph`, in memory.

The only module of `graph/` that imports torch (lazily, inside the functions), so the offline path runs
without it. The dynamo exporter is used with `optimize=False` (the optimizer fuses BatchNorm into Conv
and merges initializers, which would change the owners and the sharing the checks read) at opset 18;
the in-memory IR it returns references the model's tensors, so no weight is ever copied or written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from graph.ir import AttrValue, ExportedGraph, ModuleInfo, NodeRecord, Producer, TensorRecord
from graph.scopes import dynamo_owner

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

OPSET = 18
EXPORTERS = ("dynamo", "torchscript")

# torch.nn classes QuantScope recognises; the first one (in this order) that a module is an instance of is
# recorded as its `torch_class`. Subclasses come before their bases.
KNOWN_TORCH_CLASSES = (
    "Linear",
    "Bilinear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Embedding",
    "MultiheadAttention",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LayerNorm",
)

_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir")


class ExportError(RuntimeError):
    """Every exporter failed; the message carries each exporter's error."""


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Return the inner module of a `DataParallel` / `DistributedDataParallel` wrapper."""
    import torch

    wrappers: tuple[type, ...] = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def module_table(model: torch.nn.Module) -> tuple[ModuleInfo, ...]:
    """Describe every module of `model` in `named_modules()` order."""
    import torch

    known = [(name, getattr(torch.nn, name)) for name in KNOWN_TORCH_CLASSES]
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
            )
        )
    return tuple(table)


def tied_parameters(model: torch.nn.Module) -> tuple[tuple[str, ...], ...]:
    """Groups of parameter names that are one tensor (tied weights), each group sorted."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return tuple(sorted(tuple(sorted(names)) for names in groups.values() if len(names) > 1))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings, progress prints and logs for the duration of an export."""
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


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
            return items  # type: ignore[return-value]
    return None


def _ir_dims(shape: Any) -> tuple[int | None, ...]:
    if shape is None:
        return ()
    return tuple(dim if isinstance(dim, int) else None for dim in shape)


def graph_from_ir(model_ir: Any, modules: tuple[ModuleInfo, ...], producer: Producer) -> ExportedGraph:
    """Read an onnx_ir `Model` (as the dynamo exporter returns it) without touching tensor data."""
    graph = model_ir.graph
    nodes = []
    for index, node in enumerate(graph):
        owner, owner_class = dynamo_owner(node.metadata_props)
        nodes.append(
            NodeRecord(
                name=node.name or f"#{index}",
                op_type=node.op_type,
                inputs=tuple(value.name if value is not None else "" for value in node.inputs),
                outputs=tuple(value.name for value in node.outputs),
                attrs={key: _ir_attr(attr.value) for key, attr in node.attributes.items()},
                module=owner,
                module_class=owner_class,
                domain=node.domain,
            )
        )
    initializers = tuple(TensorRecord(name, _ir_dims(value.shape)) for name, value in graph.initializers.items())
    inputs = tuple(TensorRecord(value.name, _ir_dims(value.shape)) for value in graph.inputs)
    return ExportedGraph(tuple(nodes), initializers, inputs, modules, producer)


def _as_args(input_data: Any) -> tuple[Any, ...]:
    return input_data if isinstance(input_data, tuple) else (input_data,)


def _input_shapes(args: Sequence[Any]) -> tuple[tuple[int | None, ...], ...]:
    return tuple(tuple(int(d) for d in arg.shape) for arg in args if hasattr(arg, "shape"))


def export_dynamo_ir(model: torch.nn.Module, args: tuple[Any, ...]) -> Any:
    """Run the dynamo exporter in memory; return the `ONNXProgram`."""
    import torch

    with _quiet():
        return torch.onnx.export(model, args, dynamo=True, optimize=False, opset_version=OPSET, verbose=False)


def _dynamo(model: torch.nn.Module, args: tuple[Any, ...], modules: tuple[ModuleInfo, ...]) -> ExportedGraph:
    import onnx
    import torch

    program = export_dynamo_ir(model, args)
    producer = Producer(
        exporter="dynamo",
        opset=OPSET,
        torch_version=str(torch.__version__),
        onnx_version=onnx.__version__,
        producer_name="pytorch",
        producer_version=str(torch.__version__),
        input_shapes=_input_shapes(args),
    )
    return graph_from_ir(program.model, modules, producer)


def _torchscript(model: torch.nn.Module, args: tuple[Any, ...], modules: tuple[ModuleInfo, ...]) -> ExportedGraph:
    from graph.torchscript import export_torchscript

    return export_torchscript(model, args, modules, _input_shapes(args))


def export_graph(model: torch.nn.Module, input_data: Any, exporter: str | None = None) -> ExportedGraph:
    """Export `model` in memory and return the graph the analysis reads.

    Args:
        model: the model; it is left exactly as it was (training flags restored, nothing attached).
        input_data: a tuple of example inputs, or a single tensor.
        exporter: "dynamo" or "torchscript" to force one; None tries dynamo, then TorchScript.

    Raises:
        ExportError: every exporter tried failed; the message names each one's error.
    """
    model = unwrap(model)
    args = _as_args(input_data)
    modules = module_table(model)
    tied = tied_parameters(model)
    chosen = EXPORTERS if exporter is None else (exporter,)
    errors: list[tuple[str, BaseException]] = []
    with eval_mode(model):
        for name in chosen:
            try:
                graph = _dynamo(model, args, modules) if name == "dynamo" else _torchscript(model, args, modules)
            except Exception as err:  # the exporters raise anything; every failure is reported below
                logger.debug("%s exporter failed: %s", name, err)
                errors.append((name, err))
                continue
            if errors:
                logger.info("dynamo exporter failed (%s); used the TorchScript exporter", errors[0][1])
            return _with_ties(graph, tied)
    detail = "; ".join(f"{name} exporter: {type(err).__name__}: {err}" for name, err in errors)
    raise ExportError(f"the model could not be exported to ONNX ({detail})") from errors[-1][1]


def _with_ties(graph: ExportedGraph, tied: tuple[tuple[str, ...], ...]) -> ExportedGraph:
    from dataclasses import replace

    return replace(graph, tied_parameters=tied)
