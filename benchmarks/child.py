"""Measurements that need a fresh process (peak RSS is per process): run as `python -m benchmarks.child ...`.

    python -m benchmarks.child meta <1B|7B|70B> <library|export|file>
    python -m benchmarks.child memory <model> <cold|warm>
    python -m benchmarks.child html <1B|7B|70B> <page.html>

Each prints one JSON line with its figures.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import child_output, current_rss_bytes, peak_rss_bytes, quiet_logs


def meta(shape_name: str, mode: str) -> dict[str, Any]:
    """Build a Llama-shaped model on the meta device and run the library call (or a bare export) on it."""
    import torch

    from analyzer import create_quant_retrain_config
    from benchmarks.library import bare_export
    from benchmarks.models import LLAMA_SHAPES, llama, llama_inputs

    quiet_logs()
    shape = LLAMA_SHAPES[shape_name]
    start = time.perf_counter()
    with torch.device("meta"):
        model = llama(shape)
        ids = llama_inputs(shape)
    build = time.perf_counter() - start
    rss_before = current_rss_bytes()
    result: dict[str, Any] = {"shape": shape_name, "mode": mode, "parameters": shape.parameters}
    start = time.perf_counter()
    if mode == "library":
        with tempfile.TemporaryDirectory() as tmp:
            report = create_quant_retrain_config(Path(tmp) / "config.json", model, ids)
        result["layers_quantized"] = len(report.quantized)
    elif mode == "export":
        result["onnx_nodes"] = len(bare_export(model, ids).model.graph)
    else:
        return _weight_free_file(model, ids, result)
    result.update(
        build_s=build, call_s=time.perf_counter() - start, rss_before=rss_before, peak_rss=peak_rss_bytes()
    )
    return result


def _weight_free_file(model: Any, ids: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Write the meta model's ONNX file (+ mapping) with `graph.export.export_onnx`, then analyse it offline."""
    from analyzer.api import analyze_onnx
    from graph.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            written = export_onnx(model, ids, Path(tmp) / "model.onnx")
        except Exception as err:  # reported in the table: what the exporter does with a meta model
            result["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:200]
            return result
        result["export_s"] = time.perf_counter() - start
        result["onnx_bytes"] = written.onnx_file.stat().st_size
        data = written.data_file.stat() if written.data_file.exists() else None
        result["data_bytes_on_disk"] = data.st_blocks * 512 if data is not None else 0
        start = time.perf_counter()
        report, _ = analyze_onnx(written.onnx_file, written.mapping_file)
        result["offline_s"] = time.perf_counter() - start
        result["layers_quantized"] = len(report.quantized)
    result["peak_rss"] = peak_rss_bytes()
    return result


def _materialized(name: str) -> Any:
    """The named model with real (random) weights, every page touched, built without a transient copy."""
    import torch

    from benchmarks.models import LLAMA_SHAPES, export_cases, llama, llama_inputs

    cases = {case.name: case for case in (*export_cases(False), *export_cases(True))}
    if name.startswith("llama-"):
        shape = LLAMA_SHAPES[name.removeprefix("llama-")]
        build, inputs = (lambda: llama(shape)), (lambda: llama_inputs(shape))
    else:
        build, inputs = cases[name].build, cases[name].inputs
    with torch.device("meta"):
        model = build()
    model = model.to_empty(device="cpu").eval()
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.is_floating_point():
                tensor.normal_(0.0, 0.02)
            else:
                tensor.zero_()
    return model, inputs()


def memory(name: str, mode: str) -> dict[str, Any]:
    """Peak RSS of the library call on a materialized model, over the RSS just before the call.

    `warm` first runs the call once on a tiny model, so that what is measured is what the call costs for this
    model rather than the one-time cost of importing the exporter; `cold` does not.
    """
    import torch

    from analyzer import create_quant_retrain_config
    from benchmarks.models import parameter_bytes

    quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        if mode == "warm":
            tiny = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
            create_quant_retrain_config(config, tiny, torch.randn(2, 8))
        model, args = _materialized(name)
        rss_before = current_rss_bytes()
        peak_before = peak_rss_bytes()
        start = time.perf_counter()
        report = create_quant_retrain_config(config, model, args)
        call = time.perf_counter() - start
    return {
        "model": name,
        "mode": mode,
        "parameter_bytes": parameter_bytes(model),
        "rss_before": rss_before,
        "peak_before": peak_before,
        "peak_rss": peak_rss_bytes(),
        "call_s": call,
        "layers_quantized": len(report.quantized),
    }


def html(shape_name: str, page: str) -> dict[str, Any]:
    """The library call on a Llama-shaped meta model, then its HTML report written to `page`, timed."""
    import torch

    from analyzer import create_quant_retrain_config
    from benchmarks.html_page import write_page
    from benchmarks.models import LLAMA_SHAPES, llama, llama_inputs

    quiet_logs()
    shape = LLAMA_SHAPES[shape_name]
    with torch.device("meta"):
        model, ids = llama(shape), llama_inputs(shape)
    with tempfile.TemporaryDirectory() as tmp:
        report = create_quant_retrain_config(Path(tmp) / "config.json", model, ids)
        return {"shape": shape_name, **write_page(report, Path(page))}


def main(argv: list[str]) -> int:
    task, *args = argv
    tasks = {"meta": meta, "memory": memory, "html": html}
    child_output(tasks[task](*args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
