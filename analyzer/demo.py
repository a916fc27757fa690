"""The main job on the built-in example: analyse the hand-written ResNet-18 and write its config."""

from __future__ import annotations

import time
from pathlib import Path

from analyzer.api import create_quant_retrain_config
from analyzer.report import Report


def run_demo(config_file: str | Path = "quantscope_demo/resnet18_config.json") -> tuple[Report, float]:
    """Write the example model's config to `config_file`; return the report and the seconds it took."""
    from analyzer.example import example_model

    model, inputs = example_model()
    start = time.perf_counter()
    report = create_quant_retrain_config(str(config_file), model, inputs)
    return report, time.perf_counter() - start
