"""A create_quant_config call costs the retrain call's time plus milliseconds: the same export, the same analysis,
another generator. Measured warm, alternated in one process: the two whole calls, and the analysis alone (one
exported graph analysed by each kind, no export)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from analyzer import create_quant_config, create_quant_retrain_config
from analyzer.api import analyze
from benchmarks.measure import paired, quiet_logs
from benchmarks.models import first_call_cases
from graph.export import export_graph

# "plus milliseconds": the PTQ analysis at most 50 ms more than the retrain analysis on the same exported graph
# (the export, which dominates both calls and varies by a tenth with the machine's load, is the same code)
TARGET_EXTRA_S = 0.05


def run(repeats: int, quick: bool) -> dict[str, Any]:
    rows = []
    quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        for case in first_call_cases(quick):
            torch.manual_seed(0)
            model = case.build().eval()
            args = case.inputs()
            calls = paired(
                lambda model=model, args=args: create_quant_retrain_config(config, model, args),
                lambda model=model, args=args: create_quant_config(config, model, args),
                repeats,
            )
            report = create_quant_config(config, model, args)
            graph = export_graph(model, args, exporter=report.producer.exporter)
            analysis = paired(
                lambda graph=graph: analyze(graph, kind="retrain"),
                lambda graph=graph: analyze(graph, kind="ptq"),
                repeats,
            )
            rows.append(
                {
                    "model": case.name,
                    "exporter": report.producer.exporter,
                    "layers": len(report.quantized),
                    "retrain_call_s": calls.baseline,
                    "ptq_call_s": calls.subject,
                    "extra_s": calls.subject - calls.baseline,
                    "fastest_extra_s": min(calls.subject_runs) - min(calls.baseline_runs),
                    "retrain_analysis_s": analysis.baseline,
                    "ptq_analysis_s": analysis.subject,
                    "analysis_extra_s": analysis.subject - analysis.baseline,
                    "retrain_call_runs_s": calls.baseline_runs,
                    "ptq_call_runs_s": calls.subject_runs,
                }
            )
            print(
                f"  ptq {case.name}: call {calls.subject:.3f} s vs {calls.baseline:.3f} s, "
                f"analysis {analysis.subject * 1e3:.1f} ms vs {analysis.baseline * 1e3:.1f} ms",
                flush=True,
            )
            del model, graph
    return {"repeats": repeats, "target_extra_s": TARGET_EXTRA_S, "rows": rows}


def section(data: dict[str, Any]) -> str:
    """The table of the benchmark, for benchmarks/report.py."""
    from benchmarks.report import table

    rows = [
        (
            row["model"],
            row["exporter"],
            str(row["layers"]),
            f"{row['retrain_call_s']:.3f} s",
            f"{row['ptq_call_s']:.3f} s",
            f"{row['extra_s'] * 1e3:+.0f} ms",
            f"{row['fastest_extra_s'] * 1e3:+.0f} ms",
            f"{row['retrain_analysis_s'] * 1e3:.1f} ms",
            f"{row['ptq_analysis_s'] * 1e3:.1f} ms",
            "ok" if row["analysis_extra_s"] <= data["target_extra_s"] else "MISSED",
        )
        for row in data["rows"]
    ]
    title = (
        "create_quant_config vs create_quant_retrain_config, warm, same model and inputs (medians of "
        f"{data['repeats']}, alternated in one process; analysis = one exported graph analysed by each kind; "
        f"extra: median and fastest-run difference of the whole calls; target: the PTQ analysis at most "
        f"{data['target_extra_s'] * 1e3:.0f} ms slower)"
    )
    headers = (
        "model",
        "exporter",
        "layers",
        "retrain call",
        "PTQ call",
        "extra",
        "extra (fastest)",
        "retrain analysis",
        "PTQ analysis",
        "target",
    )
    return title + "\n" + table(headers, rows)
