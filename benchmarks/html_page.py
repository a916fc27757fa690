"""The HTML report at scale: time to write the page and its size, then how it behaves in headless Chromium.

Pages: the Llama-2-70B-shaped model on the meta device (the library call in a fresh process, then
`Report.to_html()` and the write), and synthetic dynamo-shaped graphs of 1,000 and 10,000 Linear layers
(benchmarks/synthetic.py, analysed offline). In the browser (when Debian's chromium and chromium-driver are
installed): the time from navigation to the end of the load event (parsing, the data read and the tree's open
blocks built by the page's script), then the time of a search, of a decision filter and of "expand all" (which
fills every block), each with the layout it causes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import quiet_logs, run_child

TARGET_BYTES = 2 * 1024 * 1024  # a 1,000-layer model's page
TARGET_LAYERS = 1000
REPEATS = 5
BROWSER_REPEATS = 3
SYNTHETIC_LAYERS = (1000, 10000)
QUICK_SYNTHETIC_LAYERS = (1000,)
LAYERS_PER_BLOCK = 2  # benchmarks.synthetic: fc1 and fc2 in each block of ten nodes


def write_page(report: Any, path: Path, config: str | None = None, repeats: int = REPEATS) -> dict[str, Any]:
    """Median seconds of `report.to_html()` and of writing it (atomically), and the page's size.

    `config`: the config text; by default the page reads the file the library call wrote (`config_file`).
    """
    from analyzer.emit import write_atomic

    render, write = [], []
    page = ""
    for _ in range(repeats):
        start = time.perf_counter()
        page = report.to_html(config, layer_types="documented")
        render.append(time.perf_counter() - start)
        start = time.perf_counter()
        write_atomic(path, page)
        write.append(time.perf_counter() - start)
    return {
        "layers": len(report.layers),
        "to_html_s": statistics.median(render),
        "write_s": statistics.median(write),
        "bytes": path.stat().st_size,
    }


_SEARCH = """
const box = document.getElementById('qs-search');
const t = performance.now();
box.value = arguments[0];
box.dispatchEvent(new Event('input'));
document.body.offsetHeight;
const spent = performance.now() - t;
box.value = ''; box.dispatchEvent(new Event('input'));
return spent;
"""
_FILTER = """
const box = document.querySelector('input[name="decision"][value="quantize"]');
const t = performance.now();
box.click();
document.body.offsetHeight;
const spent = performance.now() - t;
box.click();
return spent;
"""
_EXPAND = """
const t = performance.now();
document.getElementById('qs-expand').click();
document.body.offsetHeight;
const spent = performance.now() - t;
document.getElementById('qs-collapse').click();
return spent;
"""


def in_browser(path: Path, search: str) -> dict[str, Any] | None:
    """Load, search, filter and expand times of the page in headless Chromium (None without a browser)."""
    from tests import browser

    if browser.missing() is not None:
        return None
    load, searches, filters, expands = [], [], [], []
    with browser.chromium() as driver:
        for _ in range(BROWSER_REPEATS):
            driver.get(path.as_uri())
            load.append(
                driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd")
                / 1e3
            )
            searches.append(driver.execute_script(_SEARCH, search) / 1e3)
            filters.append(driver.execute_script(_FILTER) / 1e3)
            expands.append(driver.execute_script(_EXPAND) / 1e3)
        rows = driver.execute_script("return document.querySelectorAll('#qs-tree .row').length")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return {
        "load_s": statistics.median(load),
        "search_s": statistics.median(searches),
        "filter_s": statistics.median(filters),
        "expand_s": statistics.median(expands),
        "rows": rows,
        "console_errors": len(errors),
    }


def _synthetic(folder: Path, layers: int) -> dict[str, Any]:
    from analyzer.api import analyze_onnx
    from benchmarks.synthetic import NODES_PER_BLOCK, write_synthetic

    onnx_file = write_synthetic(folder, layers // LAYERS_PER_BLOCK * NODES_PER_BLOCK)
    report, config = analyze_onnx(onnx_file)
    page = folder / f"synthetic-{layers}.html"
    row = {"page": f"synthetic, {layers:,} Linear layers", **write_page(report, page, config)}
    row["browser"] = in_browser(page, "blocks.7")
    return row


def run(quick: bool) -> dict[str, Any]:
    quiet_logs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not quick:
            page = folder / "llama-70b.html"
            meta = run_child("html", ["70B", str(page)])
            meta["browser"] = in_browser(page, "layers.7.")
            rows.append({"page": "Llama-2-70B-shaped, meta device (library call)", **meta})
        for layers in QUICK_SYNTHETIC_LAYERS if quick else SYNTHETIC_LAYERS:
            rows.append(_synthetic(folder, layers))
    return {
        "repeats": REPEATS,
        "browser_repeats": BROWSER_REPEATS,
        "target_bytes": TARGET_BYTES,
        "target_layers": TARGET_LAYERS,
        "rows": rows,
    }
