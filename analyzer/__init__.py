"""QuantScope: AMCT-compatible QAT configurations for PyTorch models, by static analysis of the exported graph."""

from __future__ import annotations

from analyzer.api import (
    create_distill_config,
    create_distill_config_from_onnx,
    create_quant_config,
    create_quant_config_from_onnx,
    create_quant_retrain_config,
    create_quant_retrain_config_from_onnx,
)
from analyzer.errors import (
    AnalysisError,
    ArgumentTypeError,
    ConfigError,
    ExportFailedError,
    InputFileError,
    NoQuantizableLayerError,
    OutputError,
    QuantScopeError,
    UnsupportedModelError,
)
from analyzer.report import LayerRecord, Report

__all__ = [
    "AnalysisError",
    "ArgumentTypeError",
    "ConfigError",
    "ExportFailedError",
    "InputFileError",
    "LayerRecord",
    "NoQuantizableLayerError",
    "OutputError",
    "QuantScopeError",
    "Report",
    "UnsupportedModelError",
    "create_distill_config",
    "create_distill_config_from_onnx",
    "create_quant_config",
    "create_quant_config_from_onnx",
    "create_quant_retrain_config",
    "create_quant_retrain_config_from_onnx",
]
