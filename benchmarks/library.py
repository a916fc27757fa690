"""Warm library calls against a bare in-memory export by the exporter the call used, side by side."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from analyzer import create_quant_retrain_config
from benchmarks.first_call import bare_export_of
from benchmarks.measure import paired, quiet_logs
from benchmarks.models import first_call_cases, parameter_bytes
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
        for case in first_call_cases(quick):
            torch.manual_seed(0)
            model = case.build().eval()
            args = case.inputs()
            # the warm-up call, whose report gives the exporter it used and the layer count
            report = create_quant_retrain_config(config, model, args)
            exporter = report.producer.exporter
            result = paired(
                lambda model=model, args=args, exporter=exporter: bare_export_of(model, args, exporter),
                lambda model=model, args=args: create_quant_retrain_config(config, model, args),
                repeats,
            )
            rows.append(
                {
                    "model": case.name,
                    "parameters_m": round(parameter_bytes(model) / 4e6, 1),
                    "exporter": exporter,
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
            print(f"  warm {case.name} ({exporter}): CPU ratio {result.cpu_ratio:.3f}", flush=True)
            del model
    return {"repeats": repeats, "target_ratio": TARGET_RATIO, "rows": rows}
