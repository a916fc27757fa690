"""Every other kind's call costs the retrain call's time plus milliseconds: the same export, the same analysis,
another generator (a row of `analyzer.kinds.KINDS` each: create_quant_config, create_distill_config, ...).
Measured warm, alternated in one process with the retrain call: the two whole calls, and the analysis alone (one
exported graph analysed by each kind, no export)."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch

import analyzer
from analyzer.api import analyze
from analyzer.kinds import KINDS
from benchmarks.measure import paired, quiet_logs
from benchmarks.models import first_call_cases
from graph.export import export_graph

# the kind every other one is measured against
BASELINE = "retrain"

# "plus milliseconds": a kind's analysis at most 50 ms more than the retrain analysis on the same exported graph
# (the export, which dominates every call and varies by a tenth with the machine's load, is the same code)
TARGET_EXTRA_S = 0.05


def _call(kind: str, config: Path, model: Any, args: Any) -> analyzer.Report:
    """The kind's library call (its row's `call`) with the arguments every kind's call takes."""
    result: analyzer.Report = getattr(analyzer, KINDS[kind].call)(config, model, args)
    return result


def run(repeats: int, quick: bool) -> dict[str, Any]:
    rows = []
    quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        for case in first_call_cases(quick):
            torch.manual_seed(0)
            model = case.build().eval()
            args = case.inputs()
            exporter = _call(BASELINE, config, model, args).producer.exporter
            graph = export_graph(model, args, exporter=exporter)
            for kind in KINDS:
                if kind == BASELINE:
                    continue
                calls = paired(
                    partial(_call, BASELINE, config, model, args),
                    partial(_call, kind, config, model, args),
                    repeats,
                )
                analysis = paired(
                    partial(analyze, graph, kind=BASELINE), partial(analyze, graph, kind=kind), repeats
                )
                rows.append(
                    {
                        "model": case.name,
                        "exporter": exporter,
                        "kind": kind,
                        "call": KINDS[kind].call,
                        "layers": len(_call(kind, config, model, args).quantized),
                        "retrain_call_s": calls.baseline,
                        "kind_call_s": calls.subject,
                        "extra_s": calls.subject - calls.baseline,
                        "fastest_extra_s": min(calls.subject_runs) - min(calls.baseline_runs),
                        "retrain_analysis_s": analysis.baseline,
                        "kind_analysis_s": analysis.subject,
                        "analysis_extra_s": analysis.subject - analysis.baseline,
                        "retrain_call_runs_s": calls.baseline_runs,
                        "kind_call_runs_s": calls.subject_runs,
                    }
                )
                print(
                    f"  {kind} {case.name}: call {calls.subject:.3f} s vs {calls.baseline:.3f} s, "
                    f"analysis {analysis.subject * 1e3:.1f} ms vs {analysis.baseline * 1e3:.1f} ms",
                    flush=True,
                )
            del model, graph
    return {"repeats": repeats, "baseline": BASELINE, "target_extra_s": TARGET_EXTRA_S, "rows": rows}


def worst(data: dict[str, Any]) -> dict[str, Any]:
    """The row whose analysis adds the most to the retrain analysis (the target's measure)."""
    row: dict[str, Any] = max(data["rows"], key=lambda row: row["analysis_extra_s"])
    return row


def section(data: dict[str, Any]) -> str:
    """The table of the benchmark, for benchmarks/report.py."""
    from benchmarks.report import table

    rows = [
        (
            row["model"],
            row["exporter"],
            row["kind"],
            str(row["layers"]),
            f"{row['retrain_call_s']:.3f} s",
            f"{row['kind_call_s']:.3f} s",
            f"{row['extra_s'] * 1e3:+.0f} ms",
            f"{row['fastest_extra_s'] * 1e3:+.0f} ms",
            f"{row['retrain_analysis_s'] * 1e3:.1f} ms",
            f"{row['kind_analysis_s'] * 1e3:.1f} ms",
            "ok" if row["analysis_extra_s"] <= data["target_extra_s"] else "MISSED",
        )
        for row in data["rows"]
    ]
    calls = ", ".join(row.call for name, row in KINDS.items() if name != data["baseline"])
    title = (
        f"Each kind's call ({calls}) vs create_quant_retrain_config, warm, same model and inputs (medians of "
        f"{data['repeats']}, alternated in one process; analysis = one exported graph analysed by each kind; "
        f"extra: median and fastest-run difference of the whole calls; target: the kind's analysis at most "
        f"{data['target_extra_s'] * 1e3:.0f} ms slower)"
    )
    headers = (
        "model",
        "exporter",
        "kind",
        "layers",
        "retrain call",
        "kind call",
        "extra",
        "extra (fastest)",
        "retrain analysis",
        "kind analysis",
        "target",
    )
    return title + "\n" + table(headers, rows)
