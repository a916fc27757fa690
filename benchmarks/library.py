"""The library call against a bare in-memory dynamo export of the same model, side by side."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from analyzer import create_quant_retrain_config
from benchmarks.measure import paired, quiet_logs
from benchmarks.models import export_cases, parameter_bytes
from graph.export import OPSET

TARGET_RATIO = 1.10


def bare_export(model: torch.nn.Module, args: tuple[Any, ...]) -> Any:
    """What a user of torch would run to get the graph: the dynamo exporter in memory, no optimizer."""
    return torch.onnx.export(model, args, dynamo=True, optimize=False, opset_version=OPSET, verbose=False)


def run(repeats: int, quick: bool) -> dict[str, Any]:
    rows = []
    quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        for case in export_cases(quick):
            torch.manual_seed(0)
            model = case.build().eval()
            args = case.inputs()
            # the warm-up pair, whose results give the table's node and layer counts
            nodes = len(bare_export(model, args).model.graph)
            report = create_quant_retrain_config(config, model, args)
            result = paired(
                lambda model=model, args=args: bare_export(model, args),
                lambda model=model, args=args: create_quant_retrain_config(config, model, args),
                repeats,
                warmup=0,
            )
            rows.append(
                {
                    "model": case.name,
                    "parameters_m": round(parameter_bytes(model) / 4e6, 1),
                    "onnx_nodes": nodes,
                    "layers_quantized": len(report.quantized),
                    "bare_export_s": result.baseline,
                    "library_call_s": result.subject,
                    "ratio": result.ratio,
                    "bare_export_cpu_s": result.baseline_cpu,
                    "library_call_cpu_s": result.subject_cpu,
                    "cpu_ratio": result.cpu_ratio,
                    "bare_export_runs_s": result.baseline_runs,
                    "library_call_runs_s": result.subject_runs,
                }
            )
            del model
    return {"repeats": repeats, "target_ratio": TARGET_RATIO, "rows": rows}
