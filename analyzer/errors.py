"""The exception tree.

Every error QuantScope raises derives from `QuantScopeError` and from the builtin an AMCT caller catches,
so `except ValueError` around `create_quant_retrain_config` keeps working.
"""

from __future__ import annotations

from typing import Any


class QuantScopeError(Exception):
    """Root of every QuantScope error."""


class ArgumentTypeError(QuantScopeError, TypeError):
    """An argument of a public call has the wrong type."""


class ConfigError(QuantScopeError, ValueError):
    """A simple config (quant.cfg) or a config JSON is invalid; the message names the field or layer."""


class NoQuantizableLayerError(QuantScopeError, ValueError):
    """No layer of the model can be quantized (or every one is disabled); no file is written.

    `report` holds the analysis (every layer's decision and reason) when one was made, so a caller can
    show why nothing qualified.
    """

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class InputFileError(QuantScopeError, ValueError):
    """An input file (ONNX model, mapping file) cannot be read or does not match."""


class ExportFailedError(QuantScopeError, RuntimeError):
    """The model could not be exported to ONNX; the exporter's exception is chained."""


class UnsupportedModelError(QuantScopeError, RuntimeError):
    """The model cannot be configured by this call as AMCT refuses it (it already holds AMCT's own quantization
    modules), or its inputs are of a kind AMCT's call refuses with a RuntimeError."""


class OutputError(QuantScopeError, OSError):
    """An output file cannot be written; any previous file is left untouched."""


class AnalysisError(QuantScopeError, RuntimeError):
    """The analysis failed on an input it had accepted: a QuantScope bug that input triggers. The message
    names the input; the original exception is chained. Nothing is written."""
