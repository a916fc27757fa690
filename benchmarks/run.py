"""`python -m benchmarks`: run the benchmarks, print the tables, write the JSON (and RESULTS.md on a full run)."""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SECTION_NAMES = ("first", "library", "offline", "huge", "memory", "kinds", "html")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller models and sizes, fewer repeats (a smoke run)"
    )
    parser.add_argument(
        "--only", choices=SECTION_NAMES, action="append", help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 7, 2 with --quick)")
    parser.add_argument(
        "--json", type=Path, default=HERE / "results" / "latest.json", help="where the JSON results go"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="where the markdown table goes (default: benchmarks/RESULTS.md on a full run of every benchmark)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from benchmarks import first_call, html_page, huge, kinds, library, memory, offline, report
    from benchmarks.measure import load_average

    warnings.filterwarnings(
        "ignore"
    )  # the exporter's deprecation chatter, for the bare export as for the library

    repeats = args.repeats or (2 if args.quick else 7)
    chosen = args.only or list(SECTION_NAMES)
    runners = {
        "first": lambda: first_call.run(
            3 if args.repeats is None and not args.quick else repeats, args.quick
        ),
        "library": lambda: library.run(repeats, args.quick),
        "offline": lambda: offline.run(repeats, args.quick),
        "huge": lambda: huge.run(args.quick),
        "memory": lambda: memory.run(args.quick),
        "kinds": lambda: kinds.run(repeats, args.quick),
        "html": lambda: html_page.run(args.quick),
    }
    start = time.perf_counter()
    load_start = load_average()
    sections: dict[str, Any] = {}
    for name in SECTION_NAMES:
        if name in chosen:
            section_start = time.perf_counter()
            sections[name] = runners[name]()
            sections[name]["seconds"] = time.perf_counter() - section_start
            print(f"[{name}: {sections[name]['seconds']:.0f} s]", flush=True)
    results = {
        "quick": args.quick,
        "seconds": time.perf_counter() - start,
        "machine": report.machine(),
        "load_start": load_start,
        "load_end": load_average(),
        "sections": sections,
    }
    text = report.render(results)
    print(text, end="")
    report.write_json(results, args.json)
    markdown = args.markdown
    if markdown is None and not args.quick and set(chosen) == set(SECTION_NAMES):
        markdown = HERE / "RESULTS.md"
    if markdown is not None:
        report.write_markdown(results, text, markdown)
    return 0
