"""The public calls: the AMCT-compatible `create_quant_retrain_config` and its offline twin.

Both run one pipeline: an `ExportedGraph` (from torch, or from an ONNX file + mapping) -> networkx graph ->
checks -> resolution with the simple config -> schema-validated JSON written atomically, plus the report.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from analyzer.checks import Finding, Severity, run_checks
from analyzer.checks.rules import COMPUTED_WEIGHT
from analyzer.emit import render, write_atomic
from analyzer.errors import (
    AnalysisError,
    ArgumentTypeError,
    ConfigError,
    ExportFailedError,
    InputFileError,
    NoQuantizableLayerError,
    QuantScopeError,
)
from analyzer.layers import GraphIndex, index_graph, layer_int4_blocker
from analyzer.layertypes import DOCUMENTED, INT4_PACK_KINDS, SUPPORTED_TYPES, select_types
from analyzer.report import (
    CONFIG_NOTE_CODE,
    DOWNGRADE_CHECK,
    DOWNGRADE_CODE,
    QUANTIZE,
    Report,
    build_report,
    excluding_findings,
)
from analyzer.resolve import LayerSetting, QuantLayer, resolve
from graph.build import build_graph, paused_gc
from graph.ir import ExportedGraph

if TYPE_CHECKING:
    from analyzer.simple_config import SimpleConfig

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


def _load_simple(
    config_defination: PathArg | None, types: tuple[str, ...] = SUPPORTED_TYPES
) -> SimpleConfig | None:
    if config_defination is None:
        return None
    from analyzer.simple_config import load_simple_config

    return load_simple_config(config_defination, types)


def layer_types_of(layer_types: Any) -> tuple[str, ...]:
    """The candidate types a `layer_types` argument selects (SPEC section 9).

    Raises:
        TypeError: not a string nor a collection of strings.
        ValueError: an unknown mode or type name; the message names it and the allowed ones.
    """
    try:
        return select_types(layer_types)
    except TypeError as err:
        raise ArgumentTypeError(str(err)) from None
    except ValueError as err:
        raise ConfigError(str(err)) from None


def analyze(
    exported: ExportedGraph,
    simple: SimpleConfig | None = None,
    config_file: str | None = None,
    layer_types: Any = DOCUMENTED,
) -> tuple[Report, str]:
    """Run the checks and the resolution on an exported graph; return the report and the config JSON text.

    Raises:
        NoQuantizableLayerError: no layer passes the checks, or every layer is disabled.
        ConfigError: the simple config does not fit the model, or `layer_types` is unknown.
    """
    types = layer_types_of(layer_types)
    index = index_graph(build_graph(exported), types)
    findings = run_checks(index)
    excluded = excluding_findings(findings)
    quantizable = [
        QuantLayer(layer.name, layer.layer_type, layer_int4_blocker(layer))
        for layer in index.layers
        if layer.layer_type is not None and layer.name not in excluded
    ]
    if not quantizable:
        report = build_report(index, findings, {}, (), config_file)
        raise NoQuantizableLayerError(_nothing_to_quantize(index, excluded), report=report)
    reasons_by_layer = {name: "; ".join(f.reason for f in fs) for name, fs in excluded.items()}
    module_classes = {name: info.class_name for name, info in index.modules.items()}
    resolved = resolve(
        quantizable, simple, reasons_by_layer, module_classes, types
    )  # raises when all are disabled
    text = render(resolved)
    config_notes = tuple(
        Finding(CONFIG_NOTE_CODE, "config-note", Severity.INFO, layer or None, note)
        for layer, note in resolved.notes
    )
    downgrades = tuple(
        Finding(DOWNGRADE_CODE, DOWNGRADE_CHECK, Severity.INFO, setting.name, setting.downgrade_reason)
        for setting in resolved.layers
        if setting.downgrade_reason is not None
    )
    settings = {s.name: s for s in resolved.layers}
    report = build_report(index, findings, settings, config_notes + downgrades, config_file)
    _log(report)
    _log_downgrades(resolved.layers)
    return report, text


def _names_shown(names: Sequence[str], most: int = 5) -> str:
    """The first `most` layer names of a log line, then "and N more"."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _log_downgrades(settings: Sequence[LayerSetting]) -> None:
    """One WARNING per kind of INT4 -> INT8 downgrade (odd Cin, grouped conv), naming the layers."""
    for kind in INT4_PACK_KINDS:
        hit = [s for s in settings if s.downgraded is not None and s.downgraded.kind == kind]
        if not hit:
            continue
        logger.warning(
            "%s (%s) on %d layer(s): %s (e.g. %s)",
            DOWNGRADE_CHECK,
            kind,
            len(hit),
            _names_shown([s.name for s in hit]),
            hit[0].downgrade_reason,
        )


def _nothing_to_quantize(index: GraphIndex, excluded: Mapping[str, list[Finding]]) -> str:
    """Why no layer can be quantized: each excluded layer's reason, else the weight-carrying modules seen."""
    if excluded:
        reasons = "; ".join(f.reason for found in excluded.values() for f in found)
        return f"no layer can be quantized ({reasons})"
    seen = [f"{layer.name or '<root>'} ({layer.class_name})" for layer in index.layers]
    detail = f"; seen: {_names_shown(seen, 10)}"
    kinds = index.selected
    wanted = f"{', '.join(kinds[:-1])} or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
    return f"no layer can be quantized (no {wanted} module{detail if seen else ''})"


def _log(report: Report) -> None:
    """One INFO summary line and one WARNING per advisory kind, instead of one message per layer."""
    logger.info("%s", report.summary_line())
    kinds: dict[str, list[str]] = defaultdict(list)
    reasons: dict[str, str] = {}
    for record in report.layers:
        for advisory in record.advisories:
            if advisory.code == DOWNGRADE_CODE:
                continue  # logged per kind by _log_downgrades
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
        shown = _names_shown(names)
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
    types = layer_types_of(layer_types)

    from graph.export import ExportError, export_graph

    simple = _load_simple(config_defination, types)
    try:
        exported = export_graph(model, input_data)
    except ExportError as err:
        raise ExportFailedError(f"ONNX export failed: {err}") from err.__cause__
    try:
        report, text = analyze(exported, simple, layer_types=types)
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
    _check_path(config_file, "config_file")
    report, text = analyze_onnx(onnx_file, mapping_file, config_defination, layer_types=layer_types)
    return _write(config_file, report, text)


def analyze_onnx(
    onnx_file: PathArg,
    mapping_file: PathArg | None = None,
    config_defination: PathArg | None = None,
    *,
    layer_types: Any = DOCUMENTED,
) -> tuple[Report, str]:
    """The offline analysis without writing anything: the report and the config JSON text.

    Used by `create_quant_retrain_config_from_onnx` and by the CLI's `explain`/`validate`.
    """
    _check_path(onnx_file, "onnx_file")
    _check_path(mapping_file, "mapping_file", optional=True)
    _check_path(config_defination, "config_defination", optional=True)
    from graph.errors import GraphFileError
    from graph.load import load_graph

    types = layer_types_of(layer_types)
    simple = _load_simple(config_defination, types)
    try:
        with paused_gc():  # the records and the graph are built, not freed: collections would find nothing
            exported = load_graph(onnx_file, mapping_file)
            return analyze(exported, simple, layer_types=types)
    except GraphFileError as err:  # unreadable or truncated file, mapping that does not match, mapping needed
        raise InputFileError(str(err)) from err
    except QuantScopeError:
        raise
    except Exception as err:  # graph/ and the checks raise GraphFileError or findings; anything else is a bug
        inputs = repr(os.fspath(onnx_file)) + (f" with {os.fspath(mapping_file)!r}" if mapping_file else "")
        raise _unexpected(inputs, err) from err
