"""The benchmark results as text tables, JSON and the committed RESULTS.md, with the machine they came from."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MB = 1024**2
GB = 1024**3


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, Python and library versions."""
    import networkx
    import onnx
    import onnxscript
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    ram = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            ram = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_bytes": ram,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "networkx": networkx.__version__,
    }


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['ram_bytes'] / GB:.1f} GiB RAM; Python {info['python']}, "
        f"torch {info['torch']}, onnx {info['onnx']}, onnxscript {info['onnxscript']}, networkx {info['networkx']}"
    )


def _load_line(results: dict[str, Any]) -> str:
    start, end = results.get("load_start"), results.get("load_end")
    if not start or not end:
        return ""
    return f"\nload average (1 min) at start {start[0]:.1f}, at end {end[0]:.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [
            row[0].ljust(widths[0]),
            *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


CPU_NOTE = (
    "wall: medians of wall-clock times; CPU: medians of the process's CPU time (all threads), which other "
    "processes on the machine disturb far less; the verdict uses the CPU ratio"
)


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _mb(size: float) -> str:
    return f"{size / MB:,.0f} MB"


def _ok(good: bool) -> str:
    return "ok" if good else "MISSED"


def library_section(data: dict[str, Any]) -> str:
    limit = data["target_ratio"]
    rows = [
        (
            row["model"],
            f"{row['parameters_m']}M",
            row["exporter"],
            _s(row["bare_export_s"]),
            _s(row["library_call_s"]),
            f"{row['ratio']:.3f}",
            f"{row['cpu_ratio']:.3f}",
            _ok(row["cpu_ratio"] <= limit),
        )
        for row in data["rows"]
    ]
    title = (
        "Warm library call vs a bare in-memory export by the exporter the call used, same settings "
        f"(medians of {data['repeats']}, alternated in one process; target ratio <= {limit})"
    )
    headers = (
        "model",
        "params",
        "exporter",
        "bare export",
        "library call",
        "wall ratio",
        "CPU ratio",
        "target",
    )
    return title + "\n" + table(headers, rows) + "\n" + CPU_NOTE


def first_section(data: dict[str, Any]) -> str:
    limit = data["targets"]["first"]
    rows = [
        (
            row["model"],
            row["exporter"],
            str(row["bare_opset"]),
            _s(row["bare_s"]),
            _s(row["library_s"]),
            f"{row['ratio']:.2f}",
            f"{row['cpu_ratio']:.2f}",
            _ok(row["ratio"] <= limit),
        )
        for row in data["first_calls"]
    ]
    title = (
        "First call in a fresh process (torch and QuantScope imported, model built, then one call timed) vs a bare "
        "torch.onnx.export(dynamo=False, opset_version=11) to io.BytesIO in a fresh process, the export AMCT's call "
        f"runs (medians of {data['repeats']} of each, alternated; target ratio <= {limit}, median "
        f"<= {data['targets']['first_median']}; opset: the lowest from 11 that exports the model)"
    )
    headers = ("model", "exporter", "opset", "bare export", "first call", "wall ratio", "CPU ratio", "target")
    text = title + "\n" + table(headers, rows)
    if data["exporter_costs"]:
        cost_rows = [
            (
                row["model"],
                _s(row["torchscript_s"]),
                _s(row["dynamo_s"]),
                _s(row["torchscript_cpu_s"]),
                _s(row["dynamo_cpu_s"]),
                row["chosen"],
            )
            for row in data["exporter_costs"]
        ]
        text += (
            "\n\nExpensive forward passes: a first-call export with each exporter forced (fresh processes), and the "
            "exporter the policy chooses\n"
            + table(("model", "TorchScript", "dynamo", "TorchScript CPU", "dynamo CPU", "chosen"), cost_rows)
        )
    return text


def offline_section(data: dict[str, Any]) -> str:
    limit = data["target_ratio"]
    rows = [
        (
            row["graph"],
            f"{row['onnx_nodes']:,}",
            f"{row['file_mb']:.1f} MB",
            _ms(row["onnx_load_s"]),
            _ms(row["analysis_s"]),
            f"{row['ratio']:.1f}",
            f"{row['cpu_ratio']:.1f}",
            f"{row['read_pass_ratio']:.1f}",
            f"{row['per_node_us']:.1f} us",
            _ok(row["cpu_ratio"] <= limit),
        )
        for row in data["rows"]
    ]
    title = (
        f"Offline analysis (analyze_onnx) vs onnx.load(load_external_data=False) of the same file "
        f"(medians of {data['repeats']}; target ratio <= {limit})"
    )
    headers = (
        "graph",
        "nodes",
        "file",
        "onnx.load",
        "analysis",
        "wall ratio",
        "CPU ratio",
        "read pass",
        "per node",
        "target",
    )
    first, last = data["per_node_growth_between"]
    growth = data["per_node_growth"]
    note = (
        f"per-node cost {last} / {first}: {growth:.2f} (target <= {data['target_per_node_growth']}: "
        f"{_ok(growth <= data['target_per_node_growth'])})\n"
        "read pass: onnx.load plus one Python pass that only reads each node's name, op type, inputs, outputs, "
        "attributes and metadata, over onnx.load alone (the floor for any Python reader)\n" + CPU_NOTE
    )
    return title + "\n" + table(headers, rows) + "\n" + note


def huge_section(data: dict[str, Any]) -> str:
    rows = [
        (
            row["shape"],
            f"{row['parameters_b']}B",
            f"{row['onnx_nodes']:,}",
            str(row["layers_quantized"]),
            _s(row["build_s"]),
            _s(row["library_call_s"]),
            _mb(row["library_peak_rss"]),
            _s(row["bare_export_s"]),
            _mb(row["bare_export_peak_rss"]),
            f"{row['ratio']:.2f}",
        )
        for row in data["rows"]
    ]
    title = (
        f"Llama-shaped models on the meta device, a fresh process per run, medians of {data['runs']} "
        f"(target for {data['target_shape']}: call <= {data['target_seconds']:.0f} s, "
        f"peak RSS <= {data['target_peak_rss'] / GB:.0f} GB)"
    )
    headers = (
        "shape",
        "params",
        "nodes",
        "layers",
        "build",
        "library call",
        "peak RSS",
        "bare export",
        "peak RSS",
        "ratio",
    )
    note = "peak RSS: VmHWM of the whole process (Python, torch and the model included)"
    return (
        title + "\n" + table(headers, rows) + "\n" + note + "\n" + _weight_free_line(data["weight_free_file"])
    )


def _weight_free_line(data: dict[str, Any]) -> str:
    head = f"weight-free ONNX file of the {data['shape']}-shaped meta model with graph.export.export_onnx: "
    if "error" in data:
        return head + f"fails ({data['error']})"
    return head + (
        f"export {_s(data['export_s'])}, ONNX file {data['onnx_bytes'] / MB:,.1f} MB, weights on disk "
        f"{data['data_bytes_on_disk'] / MB:,.1f} MB; offline analysis {_s(data['offline_s'])}, "
        f"{data['layers_quantized']} layers quantized; peak RSS {_mb(data['peak_rss'])}"
    )


def memory_section(data: dict[str, Any]) -> str:
    limit = data["target_fraction"]
    rows = [
        (
            row["model"],
            _mb(row["parameter_bytes"]),
            _mb(row["rss_before"]),
            _mb(row["peak_rss"]),
            _mb(row["extra_bytes"]),
            f"{row['extra_fraction']:.1%}",
            _mb(row["warm_extra_bytes"]),
            f"{row['warm_extra_fraction']:.1%}",
            _ok(row["warm_extra_fraction"] <= limit),
        )
        for row in data["rows"]
    ]
    title = f"Library call on a materialized model: peak RSS over the RSS before the call (target <= {limit:.0%} of parameter bytes)"
    headers = (
        "model",
        "parameters",
        "RSS before",
        "peak RSS",
        "extra",
        "% params",
        "warm extra",
        "% params",
        "target",
    )
    note = (
        "extra: the first call in a fresh process, which also imports the exporter (torch.onnx, onnxscript) once; "
        "warm extra: after one call on a tiny model, i.e. what the call costs for this model (the verdict)"
    )
    return title + "\n" + table(headers, rows) + "\n" + note


def html_section(data: dict[str, Any]) -> str:
    rows = []
    for row in data["rows"]:
        seen = row.get("browser")
        rows.append(
            (
                row["page"],
                f"{row['layers']:,}",
                _ms(row["to_html_s"]),
                _ms(row["write_s"]),
                f"{row['bytes'] / MB:.2f} MB",
                *(
                    (_ms(seen["load_s"]), _ms(seen["search_s"]), _ms(seen["filter_s"]), _ms(seen["expand_s"]))
                    if seen
                    else ("-", "-", "-", "-")
                ),
            )
        )
    title = (
        f"HTML report (`Report.to_html()`, medians of {data['repeats']}; in headless Chromium, medians of "
        f"{data['browser_repeats']} loads; target: a {data['target_layers']:,}-layer page "
        f"<= {data['target_bytes'] / MB:.0f} MB)"
    )
    headers = ("page", "layers", "to_html", "write", "size", "load", "search", "filter", "expand all")
    note = (
        "load: navigation start to the end of the load event (the page's script has read the data and built the "
        "tree's open blocks; the others are filled when opened); "
        "search, filter (quantize off), expand all: the handler and the layout it causes"
    )
    return title + "\n" + table(headers, rows) + "\n" + note


def targets(sections: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(target, limit, measured, verdict) for every target of the sections that ran."""
    out = []
    if "first" in sections:
        data = sections["first"]
        rows = data["first_calls"]
        worst = max(rows, key=lambda row: row["ratio"])
        median = statistics.median(row["ratio"] for row in rows)
        out.append(
            (
                "first call / bare opset-11 export (wall), worst model",
                f"<= {data['targets']['first']}",
                f"{worst['ratio']:.2f} ({worst['model']})",
                _ok(worst["ratio"] <= data["targets"]["first"]),
            )
        )
        out.append(
            (
                "first call / bare opset-11 export (wall), median",
                f"<= {data['targets']['first_median']}",
                f"{median:.2f}",
                _ok(median <= data["targets"]["first_median"]),
            )
        )
    if "library" in sections:
        data = sections["library"]
        worst = max(data["rows"], key=lambda row: row["cpu_ratio"])
        out.append(
            (
                "library call / bare export (CPU), worst model",
                f"<= {data['target_ratio']}",
                f"{worst['cpu_ratio']:.3f} ({worst['model']})",
                _ok(worst["cpu_ratio"] <= data["target_ratio"]),
            )
        )
    if "offline" in sections:
        data = sections["offline"]
        worst = max(data["rows"], key=lambda row: row["cpu_ratio"])
        out.append(
            (
                "offline analysis / onnx.load (CPU), worst graph",
                f"<= {data['target_ratio']}",
                f"{worst['cpu_ratio']:.1f} ({worst['graph']})",
                _ok(worst["cpu_ratio"] <= data["target_ratio"]),
            )
        )
        first, last = data["per_node_growth_between"]
        out.append(
            (
                f"per-node cost {last} / {first}",
                f"<= {data['target_per_node_growth']}",
                f"{data['per_node_growth']:.2f}",
                _ok(data["per_node_growth"] <= data["target_per_node_growth"]),
            )
        )
    if "huge" in sections:
        data = sections["huge"]
        row = next((row for row in data["rows"] if row["shape"] == data["target_shape"]), data["rows"][-1])
        out.append(
            (
                f"{row['shape']}-shaped meta model, library call",
                f"<= {data['target_seconds']:.0f} s",
                _s(row["library_call_s"]),
                _ok(row["library_call_s"] <= data["target_seconds"]),
            )
        )
        out.append(
            (
                f"{row['shape']}-shaped meta model, peak RSS",
                f"<= {data['target_peak_rss'] / GB:.0f} GB",
                _mb(row["library_peak_rss"]),
                _ok(row["library_peak_rss"] <= data["target_peak_rss"]),
            )
        )
    if "memory" in sections:
        data = sections["memory"]
        worst = max(data["rows"], key=lambda row: row["warm_extra_fraction"])
        out.append(
            (
                "materialized model, extra peak RSS / parameter bytes (warm)",
                f"<= {data['target_fraction']:.0%}",
                f"{worst['warm_extra_fraction']:.1%} ({worst['model']})",
                _ok(worst["warm_extra_fraction"] <= data["target_fraction"]),
            )
        )
    if "kinds" in sections and sections["kinds"]["rows"]:
        from benchmarks.kinds import worst

        data = sections["kinds"]
        row = worst(data)
        out.append(
            (
                "another kind's analysis - retrain analysis, worst",
                f"<= {data['target_extra_s'] * 1e3:.0f} ms",
                f"{row['analysis_extra_s'] * 1e3:+.1f} ms ({row['kind']}, {row['model']})",
                _ok(row["analysis_extra_s"] <= data["target_extra_s"]),
            )
        )
    if "html" in sections:
        data = sections["html"]
        row = min(
            (row for row in data["rows"] if row["layers"] >= data["target_layers"]),
            key=lambda row: row["layers"],
        )
        out.append(
            (
                f"HTML report of {row['layers']:,} layers, size",
                f"<= {data['target_bytes'] / MB:.0f} MB",
                f"{row['bytes'] / MB:.2f} MB",
                _ok(row["bytes"] <= data["target_bytes"]),
            )
        )
    return out


SECTIONS = {
    "first": first_section,
    "library": library_section,
    "offline": offline_section,
    "huge": huge_section,
    "memory": memory_section,
    "kinds": lambda data: _kinds_section(data),
    "html": html_section,
}


def _kinds_section(data: dict[str, Any]) -> str:
    from benchmarks.kinds import section

    return section(data)


def render(results: dict[str, Any]) -> str:
    parts = [
        f"QuantScope benchmarks ({'quick' if results['quick'] else 'full'} run, {results['seconds']:.0f} s)"
    ]
    parts.append(machine_line(results["machine"]) + _load_line(results))
    for name, section in SECTIONS.items():
        if name in results["sections"]:
            parts.append(section(results["sections"][name]))
    rows = targets(results["sections"])
    if rows:
        parts.append("Targets\n" + table(("target", "limit", "measured", "verdict"), rows))
    return "\n\n".join(parts) + "\n"


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def write_markdown(results: dict[str, Any], text: str, path: Path) -> None:
    info = results["machine"]
    lines = [
        "# QuantScope benchmark results",
        "",
        "Written by `python -m benchmarks` (`tox -e bench`) from its last full run; the raw figures are in "
        "`benchmarks/results/latest.json` (not committed).",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores",
        f"- RAM: {info['ram_bytes'] / GB:.1f} GiB",
        f"- Python {info['python']}, torch {info['torch']}, onnx {info['onnx']}, onnxscript {info['onnxscript']}, "
        f"networkx {info['networkx']}",
        "",
        "```text",
        text.rstrip("\n"),
        "```",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
