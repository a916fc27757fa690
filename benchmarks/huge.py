"""Llama-shaped models on the meta device: wall time and peak RSS of the whole library call, each in a fresh
process, with a bare export of the same model (also in a fresh process) for comparison; and the weight-free
ONNX file `graph.export.export_onnx` writes for such a model, analysed offline."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.measure import run_child

SHAPES = ("1B", "7B", "70B")
QUICK_SHAPES = ("1B",)
TARGET_SHAPE = "70B"
TARGET_SECONDS = 60.0
TARGET_PEAK_RSS = 2 * 1024**3
RUNS = 2  # fresh processes per shape and mode: a 70B-shaped run takes half a minute


def run(quick: bool) -> dict[str, Any]:
    """Every shape: the library call and the bare export alternately, each in its own fresh process, `runs` times;
    medians of the wall times, the highest peak RSS."""
    runs = 1 if quick else RUNS
    rows = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        library, export = [], []
        for _ in range(runs):
            library.append(run_child("meta", [shape, "library"]))
            export.append(run_child("meta", [shape, "export"]))
        library_s = statistics.median(run["call_s"] for run in library)
        export_s = statistics.median(run["call_s"] for run in export)
        rows.append(
            {
                "shape": shape,
                "parameters_b": round(library[0]["parameters"] / 1e9, 2),
                "onnx_nodes": export[0]["onnx_nodes"],
                "layers_quantized": library[0]["layers_quantized"],
                "build_s": statistics.median(run["build_s"] for run in library),
                "library_call_s": library_s,
                "library_peak_rss": max(run["peak_rss"] for run in library),
                "bare_export_s": export_s,
                "bare_export_peak_rss": max(run["peak_rss"] for run in export),
                "ratio": library_s / export_s,
                "library_call_runs_s": [run["call_s"] for run in library],
                "bare_export_runs_s": [run["call_s"] for run in export],
            }
        )
    file_shape = QUICK_SHAPES[-1] if quick else TARGET_SHAPE
    weight_free = run_child("meta", [file_shape, "file"])
    return {
        "runs": runs,
        "weight_free_file": weight_free,
        "target_shape": TARGET_SHAPE,
        "target_seconds": TARGET_SECONDS,
        "target_peak_rss": TARGET_PEAK_RSS,
        "rows": rows,
    }
