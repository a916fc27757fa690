"""First calls in fresh processes, the way a training script runs QuantScope, against the export AMCT's call is
built on; and, for models whose forward pass is expensive, each exporter's first-call cost (where the exporter
policy draws its lines).

A first call is timed in a process of its own: the interpreter is started, torch and QuantScope are imported and
the model is built, then one call is timed (wall clock and the process's CPU time). Its floor is a bare
`torch.onnx.export(model, args, io.BytesIO(), dynamo=False, opset_version=11)` timed the same way in another
fresh process; a model that opset 11 cannot export (nn.MultiheadAttention's `unflatten` needs 13) is exported at
the lowest opset that works, and the table says which.

    python -m benchmarks.first_call child <model> library
    python -m benchmarks.first_call child <model> bare <opset>
    python -m benchmarks.first_call child <model> torchscript|dynamo     (the in-memory export alone)
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import child_output, quiet_logs, run_python_child

FIRST_CALL_TARGET = 1.0  # first call / bare opset-11 export, on every model
FIRST_CALL_MEDIAN_TARGET = 0.7
BARE_OPSETS = (11, 13, 14, 17)


def _case(name: str) -> Any:
    from benchmarks.models import first_call_cases, large_input_cases

    cases = {case.name: case for case in (*first_call_cases(), *large_input_cases())}
    return cases[name]


def bare_torchscript(model: Any, args: tuple[Any, ...], opset: int) -> None:
    """What AMCT's call runs to get its graph: the TorchScript exporter with its default settings, in memory."""
    import torch

    torch.onnx.export(model, args, io.BytesIO(), dynamo=False, opset_version=opset)  # type: ignore[arg-type]


def bare_export_of(model: Any, args: tuple[Any, ...], exporter: str) -> Any:
    """The in-memory export the library call runs, with the same settings, and nothing else (the dynamo side
    through `torch.onnx.export`, which builds its registry anew where the library call reuses one)."""
    import torch

    from graph.export import OPSET
    from graph.torchscript import analysis_export_bytes

    if exporter == "dynamo":
        return torch.onnx.export(model, args, dynamo=True, optimize=False, opset_version=OPSET, verbose=False)
    return analysis_export_bytes(model, args)


def child(name: str, mode: str, opset: str = "11") -> dict[str, Any]:
    """One timed call in this (fresh) process."""
    import torch

    import analyzer
    from graph.export import export_graph

    quiet_logs()
    case = _case(name)
    torch.manual_seed(0)
    model = case.build().eval()
    args = case.inputs()
    result: dict[str, Any] = {"model": name, "mode": mode}
    with tempfile.TemporaryDirectory() as tmp:
        start, start_cpu = time.perf_counter(), time.process_time()
        if mode == "library":
            report = analyzer.create_quant_retrain_config(Path(tmp) / "config.json", model, args)
            result["exporter"] = report.producer.exporter
            result["layers_quantized"] = len(report.quantized)
        elif mode == "bare":
            bare_torchscript(model, args, int(opset))
            result["opset"] = int(opset)
        else:
            export_graph(model, args, exporter=mode)
        result["wall_s"] = time.perf_counter() - start
        result["cpu_s"] = time.process_time() - start_cpu
    return result


def _fresh(name: str, mode: str, *extra: str) -> dict[str, Any]:
    return run_python_child("benchmarks.first_call", ["child", name, mode, *extra])


def _bare_opset(name: str) -> int:
    """The lowest opset from 11 at which the TorchScript exporter exports the model (a fresh process each)."""
    for opset in BARE_OPSETS:
        try:
            _fresh(name, "bare", str(opset))
        except RuntimeError:
            continue
        return opset
    raise RuntimeError(f"{name}: the TorchScript exporter exports it at none of the opsets {BARE_OPSETS}")


def _medians(runs: list[dict[str, Any]]) -> tuple[float, float]:
    return statistics.median(r["wall_s"] for r in runs), statistics.median(r["cpu_s"] for r in runs)


def first_calls(names: list[str], repeats: int) -> list[dict[str, Any]]:
    """Per model: medians of `repeats` fresh-process first calls and as many bare exports, alternated."""
    rows = []
    for name in names:
        opset = _bare_opset(name)
        library: list[dict[str, Any]] = []
        bare: list[dict[str, Any]] = []
        for i in range(repeats):
            for mode in ("library", "bare") if i % 2 == 0 else ("bare", "library"):
                if mode == "library":
                    library.append(_fresh(name, "library"))
                else:
                    bare.append(_fresh(name, "bare", str(opset)))
        library_wall, library_cpu = _medians(library)
        bare_wall, bare_cpu = _medians(bare)
        rows.append(
            {
                "model": name,
                "exporter": library[0]["exporter"],
                "bare_opset": opset,
                "library_s": library_wall,
                "bare_s": bare_wall,
                "ratio": library_wall / bare_wall,
                "library_cpu_s": library_cpu,
                "bare_cpu_s": bare_cpu,
                "cpu_ratio": library_cpu / bare_cpu,
                "library_runs_s": [r["wall_s"] for r in library],
                "bare_runs_s": [r["wall_s"] for r in bare],
            }
        )
        print(
            f"  first call {name}: {library_wall:.2f} s vs bare {bare_wall:.2f} s (opset {opset}), "
            f"ratio {library_wall / bare_wall:.2f}, CPU {library_cpu / bare_cpu:.2f}",
            flush=True,
        )
    return rows


def exporter_costs(names: list[str], repeats: int) -> list[dict[str, Any]]:
    """Per model: a first-call export with each exporter forced (fresh processes): where the policy's line lies."""
    rows = []
    for name in names:
        runs: dict[str, list[dict[str, Any]]] = {"torchscript": [], "dynamo": []}
        for i in range(repeats):
            order = ("torchscript", "dynamo") if i % 2 == 0 else ("dynamo", "torchscript")
            for exporter in order:
                runs[exporter].append(_fresh(name, exporter))
        library = _fresh(name, "library")
        ts_wall, ts_cpu = _medians(runs["torchscript"])
        dy_wall, dy_cpu = _medians(runs["dynamo"])
        rows.append(
            {
                "model": name,
                "torchscript_s": ts_wall,
                "dynamo_s": dy_wall,
                "torchscript_cpu_s": ts_cpu,
                "dynamo_cpu_s": dy_cpu,
                "chosen": library["exporter"],
            }
        )
        print(
            f"  exporters {name}: torchscript {ts_wall:.2f} s, dynamo {dy_wall:.2f} s; chosen {library['exporter']}",
            flush=True,
        )
    return rows


def run(repeats: int, quick: bool) -> dict[str, Any]:
    from benchmarks.models import first_call_cases, large_input_cases

    names = [case.name for case in first_call_cases(quick)]
    large = [] if quick else [case.name for case in large_input_cases()]
    return {
        "repeats": repeats,
        "targets": {"first": FIRST_CALL_TARGET, "first_median": FIRST_CALL_MEDIAN_TARGET},
        "first_calls": first_calls(names, repeats),
        "exporter_costs": exporter_costs(large, max(1, repeats // 2)),
    }


def main(argv: list[str]) -> int:
    command, *args = argv
    if command != "child":
        raise SystemExit("usage: python -m benchmarks.first_call child <model> <mode> [opset]")
    child_output(child(*args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
