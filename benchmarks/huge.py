"""Llama-shaped models on the meta device: wall time and peak RSS of the whole library call, each in a fresh
process, with a bare export of the same model (also in a fresh process) for comparison; and the weight-free
ONNX file `graph.export.export_onnx` writes for such a model, analysed offline."""

from __future__ import annotations

from typing import Any

from benchmarks.measure import run_child

SHAPES = ("1B", "7B", "70B")
QUICK_SHAPES = ("1B",)
TARGET_SHAPE = "70B"
TARGET_SECONDS = 60.0
TARGET_PEAK_RSS = 2 * 1024**3


def run(quick: bool) -> dict[str, Any]:
    rows = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        library = run_child("meta", [shape, "library"])
        export = run_child("meta", [shape, "export"])
        rows.append(
            {
                "shape": shape,
                "parameters_b": round(library["parameters"] / 1e9, 2),
                "onnx_nodes": export["onnx_nodes"],
                "layers_quantized": library["layers_quantized"],
                "build_s": library["build_s"],
                "library_call_s": library["call_s"],
                "library_peak_rss": library["peak_rss"],
                "bare_export_s": export["call_s"],
                "bare_export_peak_rss": export["peak_rss"],
                "ratio": library["call_s"] / export["call_s"],
            }
        )
    file_shape = QUICK_SHAPES[-1] if quick else TARGET_SHAPE
    weight_free = run_child("meta", [file_shape, "file"])
    return {
        "weight_free_file": weight_free,
        "target_shape": TARGET_SHAPE,
        "target_seconds": TARGET_SECONDS,
        "target_peak_rss": TARGET_PEAK_RSS,
        "rows": rows,
    }
