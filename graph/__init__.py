"""Exported graphs: torch export, ONNX loading, module mapping and the networkx form the analysis reads.

Nothing here imports torch at import time; `graph.export` does so inside its functions. The two entry points
of offline analysis are available from the package itself, imported on first use:

- `graph.export_onnx(model, input_data, onnx_file, mapping_file=None, exporter="dynamo")` (`graph.export`):
  write an ONNX file (weights as external data beside it) and its mapping file;
- `graph.load_graph(onnx_file, mapping_file=None)` (`graph.load`): read them back, without torch or weights.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"export_onnx": "graph.export", "load_graph": "graph.load"}
__all__ = ["export_onnx", "load_graph"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'graph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
