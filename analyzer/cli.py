"""The `quantscope` command line. Imports only the public API and the report."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from analyzer.errors import QuantScopeError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantscope", description="AMCT-compatible QAT configs by static analysis of exported graphs.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug, tracebacks)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the analysis on the built-in ResNet-18 example")
    demo.add_argument("-o", "--output", default="quantscope_demo/resnet18_config.json", help="where the config is written")
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    from analyzer.demo import run_demo

    report, seconds = run_demo(args.output)
    print(report.to_text())
    print(f"config written to {report.config_file} in {seconds:.1f} s")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 problems found, 2 usage or input errors)."""
    parser = _parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"demo": _cmd_demo}[args.command](args)
    except (QuantScopeError, OSError) as err:
        if args.verbose >= 2:
            raise
        print(f"quantscope: error: {err}", file=sys.stderr)
        return EXIT_USAGE
