"""The offline analysis of an ONNX file against parsing it, on exported models and on synthetic graphs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import onnx

from analyzer.api import analyze_onnx
from benchmarks.measure import paired, quiet_logs
from benchmarks.synthetic import write_synthetic

TARGET_RATIO = 3.0
TARGET_PER_NODE_GROWTH = 1.5
SYNTHETIC_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)


def parse(path: Path) -> onnx.ModelProto:
    """The baseline: parse the file, leaving external data (the weights) where it is."""
    return onnx.load(path, load_external_data=False)


def read_pass(model: onnx.ModelProto) -> int:
    """The least any Python reader of the graph does: touch every field the analysis needs once.

    Reported next to the analysis as a floor: the cost of getting each node's name, op type, inputs, outputs,
    attributes and metadata out of the parsed protobuf into Python objects, before any analysis.
    """
    count = 0
    for node in model.graph.node:
        record = (
            node.name,
            node.op_type,
            tuple(node.input),
            tuple(node.output),
            tuple(attr.name for attr in node.attribute),
            {entry.key: entry.value for entry in node.metadata_props},
        )
        count += len(record)
    for tensor in model.graph.initializer:
        count += len((tensor.name, tuple(tensor.dims)))
    return count


def export_files(folder: Path, quick: bool) -> list[tuple[str, Path, Path | None]]:
    """Export the library benchmark's models to weight-free ONNX files (+ mapping) with `graph.export`."""
    from benchmarks.models import export_cases
    from graph.export import export_onnx

    files = []
    for case in export_cases(quick):
        written = export_onnx(case.build().eval(), case.inputs(), folder / f"{case.name}.onnx")
        files.append((case.name, written.onnx_file, written.mapping_file))
    return files


def _row(name: str, path: Path, mapping: Path | None, repeats: int) -> dict[str, Any]:
    model = parse(path)
    nodes = len(model.graph.node)
    floor = paired(lambda: parse(path), lambda: read_pass(parse(path)), repeats)
    result = paired(lambda: parse(path), lambda: analyze_onnx(path, mapping), repeats)
    return {
        "graph": name,
        "onnx_nodes": nodes,
        "file_mb": round(path.stat().st_size / 1e6, 2),
        "mapping": mapping is not None,
        "onnx_load_s": result.baseline,
        "analysis_s": result.subject,
        "ratio": result.ratio,
        "onnx_load_cpu_s": result.baseline_cpu,
        "analysis_cpu_s": result.subject_cpu,
        "cpu_ratio": result.cpu_ratio,
        "read_pass_ratio": floor.ratio,
        "per_node_us": result.subject / nodes * 1e6,
        "onnx_load_runs_s": result.baseline_runs,
        "analysis_runs_s": result.subject_runs,
    }


def run(repeats: int, quick: bool) -> dict[str, Any]:
    quiet_logs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, path, mapping in export_files(folder, quick):
            rows.append(_row(name, path, mapping, repeats))
        for size in QUICK_SIZES if quick else SYNTHETIC_SIZES:
            path = write_synthetic(folder, size)
            rows.append(_row(f"synthetic-{size // 1000}k", path, None, repeats))
    synthetic = [row for row in rows if row["graph"].startswith("synthetic-")]
    growth = synthetic[-1]["per_node_us"] / synthetic[0]["per_node_us"]
    return {
        "repeats": repeats,
        "target_ratio": TARGET_RATIO,
        "target_per_node_growth": TARGET_PER_NODE_GROWTH,
        "per_node_growth": growth,
        "per_node_growth_between": [synthetic[0]["graph"], synthetic[-1]["graph"]],
        "rows": rows,
    }
