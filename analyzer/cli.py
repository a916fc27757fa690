"""The `quantscope` command line: export, generate, explain, validate, demo.

Exit codes: 0 success, 1 problems found (`validate`; `explain` when no layer qualifies), 2 usage or input errors. Errors go to standard error as
one line naming the culprit; `-v` adds the traceback and INFO logging, `-vv` DEBUG logging.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from analyzer.errors import NoQuantizableLayerError
from analyzer.report import strip_ansi

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

PROG = "quantscope"
_LOGGERS = ("analyzer", "graph")
_MAX_ERROR = 400  # characters of an error message shown without -v
_SHOWS_REPORT = frozenset({"demo", "explain", "validate"})


class UsageError(Exception):
    """A problem with the command line or its input files; printed as one line, exit code 2."""


# ---------------------------------------------------------------------------------------------- parsing


def _shape(text: str) -> tuple[int, ...]:
    """`1,3,224,224` (or `1x3x224x224`) -> (1, 3, 224, 224)."""
    parts = text.replace("x", ",").split(",")
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: every dimension must be a positive integer")
    return dims


def _layer_types(text: str) -> str | tuple[str, ...]:
    """`documented`, `amct-latest`, or comma-separated class names (`Conv2d,Conv3d`)."""
    from analyzer.layertypes import MODES, select_types

    value: str | tuple[str, ...] = (
        text if text in MODES else tuple(p.strip() for p in text.split(",") if p.strip())
    )
    try:
        select_types(value)
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def _layer_types_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layer-types",
        type=_layer_types,
        default="documented",
        metavar="TYPES",
        help="the layer types to quantize: documented (Linear, Conv2d, ConvTranspose2d; the default), "
        "amct-latest (also Conv1d, Conv3d, ConvTranspose1d, LSTM, GRU, as AMCT 2be20daf), or a comma-separated "
        "list of those class names",
    )


def _kind_option(parser: argparse.ArgumentParser) -> None:
    from analyzer.kinds import DEFAULT_KIND, KINDS

    parser.add_argument(
        "--kind",
        choices=tuple(KINDS),
        default=DEFAULT_KIND,
        help="the kind of config: "
        + "; ".join(f"{name}: {row.summary}" for name, row in KINDS.items())
        + f" (default: {DEFAULT_KIND})",
    )


def _ptq_options(parser: argparse.ArgumentParser) -> None:
    """The arguments of create_quant_config (`--kind ptq`); with --simple-config they are ignored, as AMCT does."""
    group = parser.add_argument_group("create_quant_config arguments (--kind ptq)")
    group.add_argument(
        "--skip-layers",
        metavar="NAMES",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help="comma-separated layer names written with quant_enable false",
    )
    group.add_argument("--batch-num", type=int, metavar="N", help="batches used for calibration (default 1)")
    group.add_argument(
        "--activation-offset",
        choices=("true", "false"),
        help="asymmetric activations (default true; Conv3d is always symmetric)",
    )


def _kind_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every offline entry point takes for the chosen kind: `kind`, `layer_types`, and
    the kind's own `options` (create_quant_config's skip_layers, batch_num, activation_offset)."""
    from analyzer.kinds import kind_of
    from analyzer.layertypes import DOCUMENTED

    row = kind_of(args.kind)
    if not row.takes_layer_types and args.layer_types != DOCUMENTED:
        raise UsageError(
            f"--layer-types applies to --kind retrain only; {row.call} has its own candidate types"
        )
    given: dict[str, Any] = {
        name: getattr(args, name, None)
        for name in ("skip_layers", "batch_num", "activation_offset")
        if getattr(args, name, None) is not None
    }
    if row.name != "ptq":
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UsageError(f"{flags}: the arguments of create_quant_config; add --kind ptq")
        return {"kind": row.name, "layer_types": args.layer_types}
    from analyzer.kinds import ptq

    options = ptq.options(
        given.get("skip_layers"), given.get("batch_num", 1), given.get("activation_offset", "true") == "true"
    )
    return {"kind": row.name, "layer_types": args.layer_types, "options": options}


def _common() -> argparse.ArgumentParser:
    """-v/-q, accepted after the command too (defaults suppressed so they do not reset the global ones)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="tracebacks and INFO logging (-vv: DEBUG)",
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print errors only"
    )
    return common


def _color_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the table: auto (default) on a terminal unless NO_COLOR is set",
    )


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "onnx", metavar="model.onnx", help="an ONNX file exported earlier (its weights are never read)"
    )
    parser.add_argument(
        "--mapping",
        metavar="m.json",
        help="the module mapping file (default: model.mapping.json beside the ONNX file, when it exists)",
    )
    parser.add_argument(
        "--simple-config", metavar="quant.cfg", help="an AMCT simple config (protobuf text format)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="AMCT-compatible QAT configs for PyTorch models, "
        "by static analysis of the exported ONNX graph.",
        epilog="exit codes: 0 success, 1 problems found (validate), 2 usage or input errors",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="tracebacks and INFO logging (-vv: DEBUG)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="analyse the built-in ResNet-18 example",
        description="Analyse the built-in "
        "ResNet-18 example with the library call, write its config and print the report.",
    )
    demo.add_argument(
        "-o", "--output", default="quantscope_demo/resnet18_config.json", help="where the config goes"
    )
    demo.add_argument(
        "--format", choices=("text", "json"), default="text", help="report format (default: text)"
    )
    _color_option(demo)

    export = sub.add_parser(
        "export",
        parents=[common],
        help="export a model from a factory to ONNX + mapping",
        description="Import MODULE, call FACTORY() (it returns a torch.nn.Module, or (module, inputs)) "
        "and export it to ONNX with its module mapping file. MODULE is a module name importable from "
        "the current folder, or a path to a .py file.",
    )
    export.add_argument(
        "factory", metavar="MODULE:FACTORY", help="e.g. mymodels:build or path/to/models.py:build"
    )
    export.add_argument(
        "--input-shape",
        type=_shape,
        action="append",
        metavar="1,3,224,224",
        help="shape of one random float32 input; repeat for several inputs "
        "(default: the inputs the factory returns)",
    )
    export.add_argument(
        "--input-dtype",
        choices=INPUT_DTYPES,
        action="append",
        metavar="DTYPE",
        help="dtype of the --input-shape inputs: once for all of them, or once per input in the same order "
        f"({', '.join(INPUT_DTYPES)}; default float32). Integer inputs are zeros, a valid token id for any "
        "vocabulary",
    )
    export.add_argument("-o", "--output", required=True, metavar="model.onnx", help="the ONNX file to write")
    export.add_argument("--mapping", metavar="m.json", help="the mapping file (default: model.mapping.json)")
    export.add_argument(
        "--exporter",
        choices=("dynamo", "torchscript"),
        default=None,
        help="default: dynamo where torch has it (torch >= 2.5 with onnxscript), else torchscript",
    )
    export.add_argument(
        "--no-constant-folding",
        dest="constant_folding",
        action="store_false",
        help="torchscript: keep every BatchNorm as its own node (the distill groups need it; dynamo never folds)",
    )

    generate = sub.add_parser(
        "generate",
        parents=[common],
        help="write the QAT config of an exported model",
        description="Analyse an exported ONNX file and write its AMCT config (JSON): the QAT config as "
        "create_quant_retrain_config_from_onnx does, or with --kind ptq the calibration config as "
        "create_quant_config_from_onnx does.",
    )
    _model_options(generate)
    _kind_option(generate)
    _layer_types_option(generate)
    _ptq_options(generate)
    generate.add_argument(
        "-o", "--output", required=True, metavar="config.json", help="the config file to write"
    )

    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="print which layers are quantized and why the others are not",
        description="Analyse an exported ONNX file and print the report: one row per layer, with its "
        "decision and the reason. Nothing is written unless -o or --annotate is given.",
    )
    _model_options(explain)
    _kind_option(explain)
    _layer_types_option(explain)
    _ptq_options(explain)
    explain.add_argument(
        "--format",
        choices=("text", "json", "html"),
        default="text",
        help="report format (default: text; html: one self-contained page, best written with -o)",
    )
    explain.add_argument(
        "-o", "--output", metavar="report", help="write the report to this file instead of stdout"
    )
    explain.add_argument(
        "--annotate",
        metavar="out.onnx",
        help="also write a weight-free copy of the graph whose nodes carry the decisions (open it in Netron)",
    )
    _color_option(explain)

    validate = sub.add_parser(
        "validate",
        parents=[common],
        help="check a hand-edited config",
        description="Check a config JSON against the config schema and, with --onnx, against the "
        "model's layers: unknown layer names, excluded layers added back, channel_wise true on a Linear. "
        "Every problem is printed with its JSON path; the exit code is 1 when there is any.",
    )
    validate.add_argument("config", metavar="config.json", help="the config to check")
    validate.add_argument("--onnx", metavar="model.onnx", help="the model the config is for")
    validate.add_argument(
        "--mapping", metavar="m.json", help="its mapping file (default: beside the ONNX file)"
    )
    _kind_option(validate)
    _layer_types_option(validate)
    return parser


# ---------------------------------------------------------------------------------------------- helpers


def _input_file(path: str, what: str) -> str:
    """`path` when it is a readable file, else a UsageError naming it."""
    target = Path(path)
    if not target.exists():
        raise UsageError(f"{path}: no such file ({what})")
    if target.is_dir():
        raise UsageError(f"{path}: is a directory, expected {what}")
    return path


def _mapping(onnx_file: str, given: str | None) -> str | None:
    from graph.mapping import default_mapping_path

    if given is not None:
        return _input_file(given, "the mapping file")
    beside = default_mapping_path(onnx_file)
    if beside.is_file():
        logging.getLogger(__name__).info("using the mapping file %s", beside)
        return str(beside)
    return None


def _use_color(choice: str, stream: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _root_cause(err: BaseException) -> BaseException:
    """The innermost chained exception: what went wrong, under the exporters' long explanations."""
    seen = {id(err)}
    while err.__cause__ is not None and id(err.__cause__) not in seen:
        err = err.__cause__
        seen.add(id(err))
    return err


def _one_line(message: str) -> str:
    line = " ".join(strip_ansi(message).split())
    return line if len(line) <= _MAX_ERROR else line[: _MAX_ERROR - 1] + "… (-v for details)"


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return str(err) or type(err).__name__


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"


@contextmanager
def _logging(level: int) -> Iterator[None]:
    """Route the library's loggers to the current stderr at `level` for the duration of one command."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(level)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (lvl, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(lvl)
            lg.propagate = propagate


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail on a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (e.g. captured by a test)
        pass


def _say(args: argparse.Namespace, text: str) -> None:
    """Informational output on stdout, silenced by -q."""
    if not args.quiet:
        print(text)


# ---------------------------------------------------------------------------------------------- commands


def _cmd_demo(args: argparse.Namespace) -> int:
    from analyzer.demo import run_demo

    report, seconds = run_demo(args.output)
    if args.format == "json":
        print(report.to_json())
    else:
        print(report.to_text(color=_use_color(args.color, sys.stdout)))
    _say(args, f"config written to {report.config_file} in {seconds:.1f} s")
    return EXIT_OK


def _load_factory(spec: str) -> Any:
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{spec}: expected MODULE:FACTORY, e.g. mymodels:build")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise UsageError(f"{module_name}: no such file (the module of {spec})")
        loader_spec = importlib.util.spec_from_file_location(f"_quantscope_factory_{path.stem}", path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"{module_name}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        folder = str(path.parent.resolve())
        sys.path.insert(0, folder)  # so the file can import its neighbours
        try:
            loader_spec.loader.exec_module(module)
        except Exception as err:
            raise UsageError(f"{spec}: importing {module_name} failed: {type(err).__name__}: {err}") from err
        finally:
            sys.path.remove(folder)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` does: the current folder is importable
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise UsageError(f"{spec}: cannot import {module_name!r} ({err})") from err
        except Exception as err:
            raise UsageError(
                f"{spec}: importing {module_name!r} failed: {type(err).__name__}: {err}"
            ) from err
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UsageError(f"{spec}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"{spec}: {attr!r} is not callable")
    return target


INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool")


def _input_dtypes(dtypes: list[str] | None, shapes: list[tuple[int, ...]] | None) -> list[str]:
    """One dtype per --input-shape: the one given for all, or one given per input."""
    if not dtypes:
        return ["float32"] * len(shapes or ())
    if not shapes:
        raise UsageError("--input-dtype needs --input-shape (the dtype of which input?)")
    if len(dtypes) == 1:
        return dtypes * len(shapes)
    if len(dtypes) != len(shapes):
        raise UsageError(
            f"--input-dtype given {len(dtypes)} times for {len(shapes)} --input-shape inputs; "
            "give it once (for every input) or once per input"
        )
    return dtypes


def _model_and_inputs(
    spec: str, shapes: list[tuple[int, ...]] | None, dtypes: list[str] | None = None
) -> tuple[Any, Any]:
    import torch

    kinds = _input_dtypes(dtypes, shapes)
    factory = _load_factory(spec)
    try:
        made = factory()
    except Exception as err:
        raise UsageError(f"{spec}: the factory raised {type(err).__name__}: {err}") from err
    inputs: Any = None
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module):
        made, inputs = made
    if not isinstance(made, torch.nn.Module):
        raise UsageError(
            f"{spec}: returned {type(made).__name__}, expected a torch.nn.Module or (module, inputs)"
        )
    if shapes:
        gen = torch.Generator().manual_seed(0)
        inputs = tuple(
            torch.randn(*shape, generator=gen, dtype=getattr(torch, kind))
            if getattr(torch, kind).is_floating_point
            else torch.zeros(*shape, dtype=getattr(torch, kind))
            for shape, kind in zip(shapes, kinds, strict=True)
        )
    if inputs is None:
        raise UsageError(
            f"{spec}: no example inputs; pass --input-shape or return (module, inputs) from the factory"
        )
    return made, inputs


def _cmd_export(args: argparse.Namespace) -> int:
    model, inputs = _model_and_inputs(args.factory, args.input_shape, args.input_dtype)
    from graph.export import default_file_exporter, export_onnx

    exporter = args.exporter or default_file_exporter()
    try:
        written = export_onnx(
            model,
            inputs,
            args.output,
            mapping_file=args.mapping,
            exporter=exporter,
            constant_folding=args.constant_folding,
        )
    except Exception as err:
        cause = _root_cause(err)
        raise UsageError(
            f"{args.factory}: the {exporter} export to {args.output} failed: "
            f"{type(cause).__name__}: {_describe(cause)}"
        ) from err
    _say(args, f"wrote {written.onnx_file} (weights in {written.data_file.name}) and {written.mapping_file}")
    return EXIT_OK


def _cmd_generate(args: argparse.Namespace) -> int:
    from analyzer.api import write_from_onnx

    kind = _kind_arguments(args)
    onnx_file = _input_file(args.onnx, "the ONNX model")
    simple = _input_file(args.simple_config, "the simple config") if args.simple_config else None
    report = write_from_onnx(args.output, onnx_file, _mapping(onnx_file, args.mapping), simple, **kind)
    _say(args, f"wrote {report.config_file}: {report.summary_line()}")
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from analyzer.api import analyze_onnx

    kind = _kind_arguments(args)
    onnx_file = _input_file(args.onnx, "the ONNX model")
    simple = _input_file(args.simple_config, "the simple config") if args.simple_config else None
    status = EXIT_OK
    config_text: str | None  # the config the analysis would write: the layers' settings on the html page
    try:
        report, config_text = analyze_onnx(onnx_file, _mapping(onnx_file, args.mapping), simple, **kind)
    except NoQuantizableLayerError as err:
        if err.report is None:
            raise
        # nothing qualifies: the table of why is exactly what the user needs; the error line follows it
        report, config_text = err.report, None
        print(f"quantscope: error: {err}", file=sys.stderr)
        status = EXIT_FINDINGS
    if args.annotate:
        from analyzer.annotate import write_annotated

        written = write_annotated(onnx_file, report, args.annotate)
        logging.getLogger(__name__).info("wrote the annotated graph %s", written)
    if args.output:
        from analyzer.emit import write_atomic

        if args.format == "html":
            text = report.to_html(config_text, simple_config=simple, layer_types=args.layer_types)
        else:
            text = (report.to_json() if args.format == "json" else report.to_text()) + "\n"
        write_atomic(args.output, text)
        _say(args, f"wrote {args.output}: {report.summary_line()}")
    elif args.format == "html":
        print(report.to_html(config_text, simple_config=simple, layer_types=args.layer_types), end="")
    elif args.format == "json":
        print(report.to_json())
    else:
        print(report.to_text(color=_use_color(args.color, sys.stdout)))
    return status


def _read_config(path: str) -> bytes:
    from graph.files import CONFIG_LIMIT, read_limited

    _input_file(path, "the config to validate")
    try:
        return read_limited(path, CONFIG_LIMIT)  # a regular file, and not a huge one
    except OSError as err:
        raise UsageError(f"{path}: cannot read: {err.strerror or err}") from err


def _cmd_validate(args: argparse.Namespace) -> int:
    from analyzer.kinds import kind_of

    if args.mapping and not args.onnx:
        raise UsageError("--mapping needs --onnx: the mapping describes a model")
    kind = _kind_arguments(args)
    text = _read_config(args.config)
    report = None
    if args.onnx:
        from analyzer.api import analyze_onnx

        onnx_file = _input_file(args.onnx, "the ONNX model")
        report, _text = analyze_onnx(onnx_file, _mapping(onnx_file, args.mapping), **kind)
    problems = kind_of(args.kind).validate_config(text, report, args.onnx or "the model")
    for problem in problems:
        print(f"{args.config}: {problem}")
    if problems:
        _say(args, f"found {len(problems)} problem{'s' if len(problems) != 1 else ''} in {args.config}")
        return EXIT_FINDINGS
    against = f" and the layers of {args.onnx}" if args.onnx else ""
    _say(args, f"{args.config}: OK (the config schema{against})")
    return EXIT_OK


COMMANDS = {
    "demo": _cmd_demo,
    "export": _cmd_export,
    "generate": _cmd_generate,
    "explain": _cmd_explain,
    "validate": _cmd_validate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 problems found, 2 usage or input errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) and usage errors (2, already printed by argparse)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    verbose: int = args.verbose
    # commands that print the report (or the problems) already show every advisory: no warnings on top
    quiet = args.quiet or (args.command in _SHOWS_REPORT and not verbose)
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    with _logging(level):
        try:
            return COMMANDS[args.command](args)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `quantscope explain m.onnx | head`: the reader stopped; so do we, quietly
            _silence_stdout()
            return EXIT_OK
        except Exception as err:  # every failure is one line on stderr; the traceback only with -v
            if verbose:
                traceback.print_exc(file=sys.stderr)
            known = isinstance(err, (UsageError, OSError, ValueError, TypeError, RuntimeError))
            prefix = "error" if known else f"internal error ({type(err).__name__})"
            print(f"{PROG}: {prefix}: {_one_line(_describe(err))}", file=sys.stderr)
            return EXIT_USAGE
