"""Peak RSS of the library call on a materialized model, minus what the process held before the call."""

from __future__ import annotations

from typing import Any

from benchmarks.measure import run_child

MODELS = ("bert-base", "llama-1B")
QUICK_MODELS = ("bert-base",)
TARGET_FRACTION = 0.10


def run(quick: bool) -> dict[str, Any]:
    rows = []
    for name in QUICK_MODELS if quick else MODELS:
        cold = run_child("memory", [name, "cold"])
        warm = run_child("memory", [name, "warm"])
        rows.append(
            {
                "model": name,
                "parameter_bytes": cold["parameter_bytes"],
                "rss_before": cold["rss_before"],
                "peak_rss": cold["peak_rss"],
                "extra_bytes": cold["peak_rss"] - cold["rss_before"],
                "extra_fraction": (cold["peak_rss"] - cold["rss_before"]) / cold["parameter_bytes"],
                "warm_extra_bytes": warm["peak_rss"] - warm["rss_before"],
                "warm_extra_fraction": (warm["peak_rss"] - warm["rss_before"]) / warm["parameter_bytes"],
                "call_s": cold["call_s"],
            }
        )
    return {"target_fraction": TARGET_FRACTION, "rows": rows}
