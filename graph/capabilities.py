"""What the installed torch's ONNX exporters offer, read once from torch itself (never from a version table).

torch 2.1-2.4 has only the TorchScript exporter: `torch.onnx.export` takes no `dynamo=` argument (passing one is a
`TypeError`). From 2.5 on it takes `dynamo=True`, which needs onnxscript (not a dependency of torch); from 2.9 on
`dynamo=True` is its default, so the TorchScript exporter must be asked for with `dynamo=False`. The export
policy (`graph.export.exporter_plan`) asks this module which exporters it may plan, and the exporters which
arguments to pass.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from dataclasses import dataclass
from typing import Any

# the first torch whose torch.onnx.export takes dynamo= (the error messages name it)
DYNAMO_MIN_TORCH = "2.5"
DYNAMO_INSTALL_HINT = "pip install 'quantscope[dynamo]'"


@dataclass(frozen=True, slots=True)
class TorchExporters:
    """The installed torch's ONNX exporters."""

    torch_version: str
    takes_dynamo_argument: bool  # torch.onnx.export(dynamo=...) exists (torch >= 2.5)
    has_onnxscript: bool  # the dynamo exporter's dependency is importable
    takes_optimize_argument: bool = (
        True  # torch.onnx.export(optimize=...): the analysis turns the optimizer off
    )

    @property
    def dynamo_missing(self) -> str | None:
        """Why the dynamo exporter cannot run here, naming what it needs; None where it can."""
        if not self.takes_dynamo_argument:
            return (
                f"torch {self.torch_version} has no dynamo exporter "
                f"(it needs torch >= {DYNAMO_MIN_TORCH} with onnxscript)"
            )
        if not self.takes_optimize_argument:
            return (
                f"the dynamo exporter of torch {self.torch_version} takes no optimize= argument "
                "(the analysis needs its optimizer off, which fuses BatchNorm into Conv)"
            )
        if not self.has_onnxscript:
            return (
                f"the dynamo exporter of torch {self.torch_version} needs onnxscript, which is not installed "
                f"({DYNAMO_INSTALL_HINT})"
            )
        return None

    def torchscript_arguments(self) -> dict[str, Any]:
        """The keyword that selects the TorchScript exporter: `dynamo=False` where the argument exists (it
        defaults to True from torch 2.9 on), nothing where it does not."""
        return {"dynamo": False} if self.takes_dynamo_argument else {}


@functools.cache
def torch_exporters() -> TorchExporters:
    """The exporters of the torch this process imported (read once)."""
    import torch

    arguments = inspect.signature(torch.onnx.export).parameters
    return TorchExporters(
        torch_version=str(torch.__version__).split("+", 1)[0],
        takes_dynamo_argument="dynamo" in arguments,
        has_onnxscript=importlib.util.find_spec("onnxscript") is not None,
        takes_optimize_argument="optimize" in arguments,
    )
