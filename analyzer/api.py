"""The public calls: the AMCT-compatible library calls and their offline twins, one pipeline for every kind.

Every call runs the same steps: an `ExportedGraph` (from torch, or from an ONNX file + mapping) -> networkx
graph -> checks -> the kind's generator (`analyzer.kinds`: resolution with its simple config, its JSON layout)
-> schema-validated JSON written atomically, plus the report. A call is a thin wrapper: its own argument
checks, then `run_call` (library) or `write_from_onnx` (offline) with its kind's row.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from analyzer.checks import run_checks
from analyzer.checks.rules import COMPUTED_WEIGHT
from analyzer.emit import write_atomic
from analyzer.errors import (
    AnalysisError,
    ArgumentTypeError,
    ConfigError,
    ExportFailedError,
    InputFileError,
    NoQuantizableLayerError,
    QuantScopeError,
    UnsupportedModelError,
)
from analyzer.kinds import DEFAULT_KIND, Analysis, Kind, kind_of
from analyzer.kinds.base import check_amct_modules, names_shown
from analyzer.layers import index_graph
from analyzer.layertypes import DOCUMENTED
from analyzer.report import CONFIG_NOTE_CODE, QUANTIZE, Report, build_report, excluding_findings
from graph.build import build_graph, paused_gc
from graph.ir import ExportedGraph

logger = logging.getLogger(__name__)

PathArg = str | os.PathLike  # type: ignore[type-arg]


def _check_path(value: Any, argument: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    expected = "str or os.PathLike" + (" or None" if optional else "")
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(f"{argument} must be {expected}, got {type(value).__name__}")
    if isinstance(value, os.PathLike) and not isinstance(os.fspath(value), str):
        raise ArgumentTypeError(f"{argument} must be {expected} of a text path, got a bytes path")


def _types(row: Kind, layer_types: Any) -> tuple[str, ...]:
    """The candidate types of a call of kind `row` (its fixed set when it takes no `layer_types`)."""
    return row.select_types(layer_types if row.takes_layer_types else None)


def _load_simple(row: Kind, config_defination: PathArg | None, types: tuple[str, ...]) -> Any:
    if config_defination is None:
        return None
    return row.load_simple(config_defination, types)


def analyze(
    exported: ExportedGraph,
    simple: Any = None,
    config_file: str | None = None,
    layer_types: Any = DOCUMENTED,
    *,
    kind: str = DEFAULT_KIND,
    options: Mapping[str, Any] | None = None,
) -> tuple[Report, str]:
    """Run the checks and the kind's generator on an exported graph; return the report and the config JSON text.

    Args:
        exported: the exported graph (from torch or from an ONNX file).
        simple: the kind's parsed simple config (its `load_simple`), or None.
        config_file: where the config will be written (recorded in the report).
        layer_types: the `layer_types` argument (kinds that take one).
        kind: a key of `analyzer.kinds.KINDS`.
        options: the call's own keyword arguments for the kind's `generate` (PTQ: skip_layers, batch_num, ...).

    Raises:
        NoQuantizableLayerError: no layer passes the checks, or every layer is disabled; when the model is the
            cause (not the simple config) the error carries the report.
        ConfigError: the simple config or an argument does not fit the model, or `layer_types` is unknown.
    """
    row = kind_of(kind)
    types = _types(row, layer_types)
    index = index_graph(build_graph(exported), types)
    findings = run_checks(index, row.checks)
    analysis = Analysis(index, findings, excluding_findings(findings), types)
    try:
        generated = row.generate(analysis, simple, options or {})
    except NoQuantizableLayerError as err:
        # about the model, not the config: the table of why nothing qualifies is what the caller needs
        if err.report is None and not isinstance(err, ConfigError):
            err.report = build_report(index, findings, {}, (), config_file, kind=row.name)
        raise
    report = build_report(
        index,
        findings,
        generated.outcomes,
        generated.notes,
        config_file,
        kind=row.name,
        groups=generated.groups,
    )
    _log(report, row.logged_codes)
    for line in generated.warnings:
        logger.warning("%s", line)
    return report, generated.text


def _log(report: Report, logged_codes: frozenset[str] = frozenset()) -> None:
    """One INFO summary line and one WARNING per advisory kind, instead of one message per layer."""
    logger.info("%s", report.summary_line())
    kinds: dict[str, list[str]] = defaultdict(list)
    reasons: dict[str, str] = {}
    for record in report.layers:
        for advisory in record.advisories:
            if advisory.code in logged_codes:
                continue  # the kind logs these itself, one line per kind of change
            if advisory.code == COMPUTED_WEIGHT.code:
                continue  # a fact for the report, not a warning
            if record.decision != QUANTIZE and advisory.code != CONFIG_NOTE_CODE:
                continue  # a layer that will not be quantized needs no warning about quantizing it
            kinds[advisory.check].append(record.name or "<root>")
            reasons.setdefault(advisory.check, advisory.reason)
    for note in report.notes:  # simple-config notes that name no layer are advisories too
        if note.code == CONFIG_NOTE_CODE:
            kinds[note.check].append(note.layer or "<config>")
            reasons.setdefault(note.check, note.reason)
    for check, names in sorted(kinds.items()):
        shown = names_shown(names)
        logger.warning("%s on %d layer(s): %s (e.g. %s)", check, len(names), shown, reasons[check])


def _write(config_file: PathArg, report: Report, text: str) -> Report:
    path = write_atomic(config_file, text)
    return replace(report, config_file=str(path))


def create_quant_retrain_config(
    config_file: PathArg,
    model: Any,
    input_data: Any,
    config_defination: PathArg | None = None,
    *,
    layer_types: Any = DOCUMENTED,
) -> Report:
    """Analyse `model` and write its QAT configuration, as AMCT's call of the same name does.

    Args:
        config_file: where the JSON config is written (an existing file is replaced atomically).
        model: the `torch.nn.Module` (a DataParallel/DistributedDataParallel wrapper is unwrapped); not modified.
        input_data: a tuple of example inputs, or a single tensor; shapes matter, values do not.
        config_defination: optional simple config (`quant.cfg`, protobuf text format).
        layer_types: the candidate types: "documented" (Linear, Conv2d, ConvTranspose2d; the default),
            "amct-latest" (also Conv1d, Conv3d, ConvTranspose1d, LSTM, GRU, as AMCT 2be20daf), or a
            collection of those class names.

    Returns:
        The analysis report (AMCT returns None; scripts written for it ignore the value).

    Raises:
        TypeError: an argument has the wrong type.
        RuntimeError: the model cannot be exported to ONNX (the exporter's error is chained).
        ValueError: the simple config or `layer_types` is invalid, or no layer can be quantized (no file is
            written).
    """
    import torch

    _check_path(config_file, "config_file")
    if not isinstance(model, torch.nn.Module):
        raise ArgumentTypeError(f"model must be torch.nn.Module, got {type(model).__name__}")
    if not isinstance(input_data, (tuple, torch.Tensor)):
        raise ArgumentTypeError(
            f"input_data must be a tuple of inputs or a torch.Tensor, got {type(input_data).__name__}"
        )
    _check_path(config_defination, "config_defination", optional=True)
    return run_call(kind_of("retrain"), config_file, model, input_data, config_defination, layer_types)


def run_call(
    row: Kind,
    config_file: PathArg,
    model: Any,
    input_data: Any,
    config_defination: PathArg | None,
    layer_types: Any = None,
    options: Mapping[str, Any] | None = None,
) -> Report:
    """The shared part of every library call, after its own argument checks: read the simple config (before
    the export, so that a broken file fails fast), export, analyse with kind `row`, write atomically."""
    types = _types(row, layer_types)
    from graph.export import ExportError, export_graph

    simple = _load_simple(row, config_defination, types)
    try:
        exported = export_graph(model, input_data)
    except ExportError as err:
        raise ExportFailedError(f"ONNX export failed: {err}") from err.__cause__
    try:
        report, text = analyze(exported, simple, layer_types=types, kind=row.name, options=options)
    except QuantScopeError:
        raise
    except Exception as err:
        raise _unexpected(f"the graph exported from {type(model).__name__}", err) from err
    return _write(config_file, report, text)


def _unexpected(source: str, err: Exception) -> AnalysisError:
    """The last net: an exception the analysis did not expect, named after the input that caused it."""
    return AnalysisError(
        f"the analysis of {source} failed unexpectedly ({type(err).__name__}: {err}); this is a QuantScope "
        "bug: please report it with that input"
    )


def create_quant_retrain_config_from_onnx(
    config_file: PathArg,
    onnx_file: PathArg,
    mapping_file: PathArg | None = None,
    config_defination: PathArg | None = None,
    *,
    layer_types: Any = DOCUMENTED,
) -> Report:
    """Analyse an ONNX file exported earlier (plus its module mapping) and write the QAT configuration.

    Needs neither torch nor the model's code, and never reads weights. For the same model the output is
    byte-identical to `create_quant_retrain_config`'s.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: the ONNX or mapping file is unreadable or they disagree, a mapping is needed and missing,
            the simple config is invalid, or no layer can be quantized.
    """
    return write_from_onnx(config_file, onnx_file, mapping_file, config_defination, layer_types=layer_types)


def write_from_onnx(
    config_file: PathArg,
    onnx_file: PathArg,
    mapping_file: PathArg | None = None,
    config_defination: PathArg | None = None,
    *,
    layer_types: Any = DOCUMENTED,
    kind: str = DEFAULT_KIND,
    options: Mapping[str, Any] | None = None,
) -> Report:
    """The offline call of any kind: analyse the files and write the config atomically."""
    _check_path(config_file, "config_file")
    report, text = analyze_onnx(
        onnx_file, mapping_file, config_defination, layer_types=layer_types, kind=kind, options=options
    )
    return _write(config_file, report, text)


def analyze_onnx(
    onnx_file: PathArg,
    mapping_file: PathArg | None = None,
    config_defination: PathArg | None = None,
    *,
    layer_types: Any = DOCUMENTED,
    kind: str = DEFAULT_KIND,
    options: Mapping[str, Any] | None = None,
) -> tuple[Report, str]:
    """The offline analysis without writing anything: the report and the config JSON text.

    Used by the offline calls and by the CLI's `explain`/`validate`.
    """
    _check_path(onnx_file, "onnx_file")
    _check_path(mapping_file, "mapping_file", optional=True)
    _check_path(config_defination, "config_defination", optional=True)
    from graph.errors import GraphFileError
    from graph.load import load_graph

    row = kind_of(kind)
    types = _types(row, layer_types)
    simple = _load_simple(row, config_defination, types)
    try:
        with paused_gc():  # the records and the graph are built, not freed: collections would find nothing
            exported = load_graph(onnx_file, mapping_file)
            return analyze(exported, simple, layer_types=types, kind=row.name, options=options)
    except GraphFileError as err:  # unreadable or truncated file, mapping that does not match, mapping needed
        raise InputFileError(str(err)) from err
    except QuantScopeError:
        raise
    except Exception as err:  # graph/ and the checks raise GraphFileError or findings; anything else is a bug
        inputs = repr(os.fspath(onnx_file)) + (f" with {os.fspath(mapping_file)!r}" if mapping_file else "")
        raise _unexpected(inputs, err) from err


def create_quant_config(
    config_file: PathArg,
    model: Any,
    input_data: Any,
    skip_layers: list[str] | None = None,
    batch_num: int = 1,
    activation_offset: bool = True,
    config_defination: PathArg | None = None,
) -> Report:
    """Analyse `model` and write its post-training (calibration) configuration, as AMCT's call of the same name.

    Args:
        config_file: where the JSON config is written (an existing file is replaced atomically).
        model: the `torch.nn.Module`; not modified. A DistributedDataParallel is not unwrapped, as in AMCT: its
            layers are named `module.<name>`.
        input_data: a tuple of example inputs, or a single tensor; shapes matter, values do not.
        skip_layers: names of layers written with `quant_enable: false`.
        batch_num: batches used for calibration.
        activation_offset: asymmetric activations (every layer but Conv3d).
        config_defination: optional calibration simple config (`AMCTConfig`, protobuf text format); when given,
            it is the only source and `skip_layers`, `batch_num`, `activation_offset` are ignored (reported).

    Returns:
        The analysis report (AMCT returns None).

    Raises:
        RuntimeError: the model holds AMCT's own quantization modules, `input_data` is neither a tuple nor a
            tensor (AMCT's messages), or no exporter can export the model.
        TypeError: an argument has the wrong type (AMCT's message names it).
        ValueError: an argument or the simple config fails one of AMCT's checks, or no layer can be
            quantized; nothing is written.
    """
    import torch

    from analyzer.kinds import ptq

    _check_path(config_file, "config_file")
    if not isinstance(model, torch.nn.Module):
        raise ArgumentTypeError(f"model must be torch.nn.Module, got {type(model).__name__}")
    check_amct_modules((name, type(module).__name__) for name, module in model.named_modules())
    if not isinstance(input_data, (tuple, torch.Tensor)):
        raise UnsupportedModelError("input data type must be tuple or torch.Tensor!")
    ptq.check_arguments(skip_layers, batch_num, activation_offset, config_defination)
    options = ptq.options(skip_layers, batch_num, activation_offset)
    from graph.export import keep_distributed_wrapper

    model = keep_distributed_wrapper(model)  # AMCT's call does not unwrap it: names start with `module.`
    return run_call(kind_of("ptq"), config_file, model, input_data, config_defination, options=options)


def create_quant_config_from_onnx(
    config_file: PathArg,
    onnx_file: PathArg,
    mapping_file: PathArg | None = None,
    skip_layers: list[str] | None = None,
    batch_num: int = 1,
    activation_offset: bool = True,
    config_defination: PathArg | None = None,
) -> Report:
    """`create_quant_config` on an ONNX file exported earlier (plus its mapping file): the same bytes, without
    torch and without reading weights. Without the mapping file the facts the graph cannot show are inferred
    (see the README); with it, they are certain.

    Raises:
        TypeError, ValueError: as `create_quant_config`, and an unreadable or mismatched file (ValueError).
        RuntimeError: the mapping lists AMCT's own quantization modules.
    """
    from analyzer.kinds import ptq

    ptq.check_arguments(skip_layers, batch_num, activation_offset, config_defination)
    options = ptq.options(skip_layers, batch_num, activation_offset)
    return write_from_onnx(
        config_file, onnx_file, mapping_file, config_defination, kind="ptq", options=options
    )


# ------------------------------------------------------------------------------- the distillation config

_DISTILL_CALL = "create_distill_config"


def _distill_type_error(argument: str, expected: str, value: Any) -> ArgumentTypeError:
    return ArgumentTypeError(
        f"Func {_DISTILL_CALL} argument {argument} must be {expected} (got {type(value).__name__})"
    )


def create_distill_config(
    config_file: PathArg,
    model: Any,
    input_data: Any,
    config_defination: PathArg | None = None,
) -> Report:
    """Analyse `model` and write its distillation config, as AMCT's call of the same name does (SPEC 11).

    The config holds a quantization setting per Conv2d/Linear layer and `distill_group`, the chains of modules
    distilled together (conv -> BatchNorm2d -> activation units, cascades of `group_size` units, the simple
    config's own groups), read from the exported graph. A functional activation (`F.relu`) is left out of its
    group, where AMCT writes `null` (SPEC 11.6); the report names it.

    Args:
        config_file: where the JSON config is written (an existing file is replaced atomically).
        model: the `torch.nn.Module` (a DataParallel/DistributedDataParallel wrapper is unwrapped); not modified.
        input_data: a tuple of example inputs, or a single tensor.
        config_defination: optional distill simple config (protobuf text format, `AMCTDistillConfig`).

    Returns:
        The analysis report, with the groups (AMCT returns None).

    Raises:
        TypeError: an argument has the wrong type (AMCT's message).
        FileNotFoundError: `config_defination` does not exist.
        RuntimeError: the model holds AMCT operations, or cannot be exported.
        ValueError: no Conv2d/Linear layer, the simple config does not fit, a user group is invalid, or
            every layer is skipped (AMCT's messages; nothing is written).
    """
    import torch

    if not isinstance(config_file, (str, os.PathLike)):
        raise _distill_type_error("config_file", "str", config_file)
    if not isinstance(model, torch.nn.Module):
        raise _distill_type_error("model", "torch.nn.Module", model)
    if not isinstance(input_data, (tuple, torch.Tensor)):
        raise _distill_type_error("input_data", "torch.Tensor or tuple", input_data)
    if config_defination is not None and not isinstance(config_defination, (str, os.PathLike)):
        raise _distill_type_error("config_defination", "str or None", config_defination)
    _check_path(config_file, "config_file")
    _check_path(config_defination, "config_defination", optional=True)

    from graph.export import unwrap

    check_amct_modules((name, type(module).__name__) for name, module in unwrap(model).named_modules())
    return run_call(kind_of("distill"), config_file, model, input_data, config_defination)


def create_distill_config_from_onnx(
    config_file: PathArg,
    onnx_file: PathArg,
    mapping_file: PathArg | None = None,
    config_defination: PathArg | None = None,
) -> Report:
    """Analyse an ONNX file exported earlier (plus its module mapping) and write the distillation config.

    Needs neither torch nor the model's code; for the same model the bytes are `create_distill_config`'s. The
    file must keep every BatchNorm as its own node (`graph.export.export_onnx` does with the dynamo exporter,
    or with `constant_folding=False`); a file with BatchNorm folded into the convolutions is refused.

    Raises:
        TypeError: an argument has the wrong type.
        FileNotFoundError: `config_defination` does not exist.
        ValueError: the files are unreadable, disagree or have BatchNorm folded, or as `create_distill_config`.
    """
    return write_from_onnx(config_file, onnx_file, mapping_file, config_defination, kind="distill")
