"""Which exporter the library call runs first, the fallback when it fails, and what a failed export leaves behind.

The config never depends on the exporter (tests/test_exporters.py runs every reference case on both); these
tests pin the policy itself: TorchScript first for ordinary inputs, dynamo first for a meta-device model or
inputs so large that the real forward pass would cost more than dynamo's trace, the other one as the fallback,
and the report's provenance saying which ran and why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from analyzer import ExportFailedError, create_quant_retrain_config
from analyzer.api import analyze
from graph.capabilities import TorchExporters, torch_exporters
from graph.export import (
    TORCHSCRIPT_MAX_INPUT_ELEMENTS,
    ExporterUnavailableError,
    export_graph,
    export_onnx,
    exporter_plan,
)
from tests.cases import CASES
from tests.torch_support import skip_before_torch

# the policy as it is where the dynamo exporter exists (the pinned torch), whatever torch runs the suite
DYNAMO = TorchExporters("2.13.0", takes_dynamo_argument=True, has_onnxscript=True)
LINEAR = next(c for c in CASES if c.name == "linear_variants")
RESNET = next(c for c in CASES if c.name == "cfg_simple_default")


class TracingRefused(nn.Module):
    """Exports with dynamo only: its forward refuses to run under the TorchScript tracer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError("this forward cannot be traced")
        return self.fc(x)


class NeverExports(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fc(x)
        raise RuntimeError("this forward always fails")


def test_ordinary_inputs_go_to_the_torchscript_exporter_first() -> None:
    plan = exporter_plan(LINEAR.model(), LINEAR.inputs(), support=DYNAMO)
    assert plan.order == ("torchscript", "dynamo")
    assert "32 elements" in plan.reason


def test_inputs_above_the_line_go_to_dynamo_first() -> None:
    side = int((TORCHSCRIPT_MAX_INPUT_ELEMENTS // 3) ** 0.5) + 1  # just above the line
    above = (torch.empty(1, 3, side, side),)
    assert exporter_plan(nn.Conv2d(3, 4, 3), above, support=DYNAMO).order == ("dynamo", "torchscript")
    below = (torch.empty(1, 3, side - 2, side - 2),)
    assert exporter_plan(nn.Conv2d(3, 4, 3), below, support=DYNAMO).order == ("torchscript", "dynamo")


def test_large_weights_go_to_dynamo_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import graph.export

    model = nn.Linear(64, 64)  # 16.6 kB of weights
    assert exporter_plan(model, (torch.empty(2, 64),), support=DYNAMO).order == ("torchscript", "dynamo")
    monkeypatch.setattr(graph.export, "TORCHSCRIPT_MAX_WEIGHT_BYTES", 16 * 1024)
    plan = exporter_plan(model, (torch.empty(2, 64),), support=DYNAMO)
    assert plan.order == ("dynamo", "torchscript")
    assert "shape inference would copy them" in plan.reason


def test_a_meta_model_goes_to_dynamo_first() -> None:
    with torch.device("meta"):
        model = nn.Linear(4, 4)
    plan = exporter_plan(model, (torch.empty(2, 4, device="meta"),), support=DYNAMO)
    assert plan.order == ("dynamo", "torchscript") and "meta device" in plan.reason


def test_a_forced_exporter_is_the_only_one_tried() -> None:
    assert exporter_plan(nn.Linear(4, 4), (torch.empty(2, 4),), "dynamo", support=DYNAMO).order == ("dynamo",)


def test_the_report_says_which_exporter_ran_and_why(tmp_path: Path) -> None:
    report = create_quant_retrain_config(tmp_path / "c.json", LINEAR.model(), LINEAR.inputs())
    provenance = report.to_dict()["provenance"]
    assert provenance["exporter"] == "torchscript"
    assert (
        "the TorchScript exporter's traced forward pass is the fastest export" in provenance["export_choice"]
    )
    assert f"why torchscript: {provenance['export_choice']}" in report.to_text()


@pytest.mark.needs_dynamo
def test_torchscript_failing_falls_back_to_dynamo_with_the_same_config(tmp_path: Path) -> None:
    report = create_quant_retrain_config(tmp_path / "c.json", TracingRefused(), torch.randn(2, 4))
    assert report.producer.exporter == "dynamo"
    assert "the torchscript exporter failed" in report.producer.export_choice
    assert "this forward cannot be traced" in report.producer.export_choice
    assert report.quantized == ("fc",)


@pytest.mark.needs_dynamo
def test_an_exporter_missing_from_torch_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch without the TorchScript exporter: the call still works, through dynamo."""
    import graph.torchscript

    def gone(*_args: object, **_kwargs: object) -> None:
        raise ImportError("the TorchScript-based ONNX exporter was removed")

    monkeypatch.setattr(graph.torchscript, "export_torchscript_proto", gone)
    exported = export_graph(LINEAR.model(), LINEAR.inputs())
    assert exported.producer.exporter == "dynamo"
    assert "ImportError: the TorchScript-based ONNX exporter was removed" in exported.producer.export_choice
    assert analyze(exported)[1] == LINEAR.golden_text()


@pytest.mark.needs_dynamo
def test_dynamo_failing_on_a_large_input_falls_back_to_torchscript(monkeypatch: pytest.MonkeyPatch) -> None:
    import graph.export

    def broken(*_args: object) -> None:
        raise RuntimeError("dynamo is down")

    monkeypatch.setattr(graph.export, "export_dynamo_ir", broken)
    monkeypatch.setattr(graph.export, "TORCHSCRIPT_MAX_INPUT_ELEMENTS", 8)  # LINEAR's 32 elements are "large"
    exported = export_graph(LINEAR.model(), LINEAR.inputs())
    assert exported.producer.exporter == "torchscript"
    assert "the dynamo exporter failed (RuntimeError: dynamo is down)" in exported.producer.export_choice
    assert analyze(exported)[1] == LINEAR.golden_text()


@pytest.mark.parametrize("exporter", [None, "torchscript", "dynamo"], ids=["plan", "torchscript", "dynamo"])
def test_a_failed_export_leaves_nothing_that_changes_the_next_call(exporter: str | None) -> None:
    """After exports that failed (inside torch's exporters, mid-trace), the next export is exactly right."""
    for model in (NeverExports(), TracingRefused()):
        with contextlib.suppress(Exception):  # whether it fails depends on the exporter; what follows matters
            export_graph(model, torch.randn(2, 4), exporter=exporter)
    assert not torch.onnx.is_in_onnx_export()
    assert not torch.jit.is_tracing()
    model = RESNET.model()
    exported = export_graph(model, RESNET.inputs(), exporter=exporter)
    assert analyze(exported)[1] == RESNET.golden_text()
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


NOISY_FAILURE = """
import torch
from graph.export import ExportError, export_graph

class DataDependent(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # dynamo cannot trace this branch: torch.export prints its partial graph to stderr
            return x * 2
        return x

try:
    export_graph(DataDependent(), (torch.randn(1, 3, 8, 8),), exporter="dynamo")
except ExportError:
    pass
else:
    raise SystemExit("the export was expected to fail")
"""


@pytest.mark.needs_dynamo
def test_a_failing_export_prints_nothing_to_the_terminal() -> None:
    """torch.export prints a partial graph and logs an error when dynamo fails; none of it reaches the user."""
    skip_before_torch(
        "2.9",
        "torch 2.7's dynamo exporter exports this data-dependent model (its fallback capture strategies)",
    )
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", NOISY_FAILURE],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == ""
    assert done.stderr == ""


@pytest.mark.needs_dynamo
def test_dynamo_reuses_one_registry_and_exports_the_same_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passing the registry built once gives the very graph `torch.onnx.export(dynamo=True)` gives."""
    import graph.export

    if graph.export.torchlib_registry() is None:
        pytest.skip("this torch does not take a registry: every export builds its own")
    graph.export.torchlib_registry.cache_clear()
    model, args = RESNET.model(), RESNET.inputs()
    reused = [export_graph(model, args, exporter="dynamo") for _ in range(2)]
    assert graph.export.torchlib_registry.cache_info().misses == 1  # built once for both exports
    monkeypatch.setattr(graph.export, "torchlib_registry", lambda: None)  # the public call, registry rebuilt
    public = export_graph(model, args, exporter="dynamo")
    for exported in reused:
        assert (exported.nodes, exported.initializers, exported.inputs) == (
            public.nodes,
            public.initializers,
            public.inputs,
        )
    assert analyze(reused[1])[1] == RESNET.golden_text()


# what the export policy sees on torch 2.1-2.4 (no dynamo= argument) and on a newer torch without onnxscript
OLD_TORCH = TorchExporters("2.1.0", takes_dynamo_argument=False, has_onnxscript=False)
NO_ONNXSCRIPT = TorchExporters("2.7.1", takes_dynamo_argument=True, has_onnxscript=False)
NEEDS_NEWER_TORCH = r"torch 2\.1\.0 has no dynamo exporter \(it needs torch >= 2\.5 with onnxscript\)"


def test_without_dynamo_the_plan_is_torchscript_alone_and_says_why() -> None:
    plan = exporter_plan(LINEAR.model(), LINEAR.inputs(), support=OLD_TORCH)
    assert plan.order == ("torchscript",)
    assert "the TorchScript exporter's traced forward pass is the fastest export" in plan.reason
    assert re.search(NEEDS_NEWER_TORCH + ": no fallback", plan.reason)
    plan = exporter_plan(LINEAR.model(), LINEAR.inputs(), support=NO_ONNXSCRIPT)
    assert plan.order == ("torchscript",)
    assert "needs onnxscript, which is not installed (pip install 'quantscope[dynamo]')" in plan.reason
    no_optimize = TorchExporters("2.5.0", True, True, takes_optimize_argument=False)
    plan = exporter_plan(LINEAR.model(), LINEAR.inputs(), support=no_optimize)
    assert plan.order == ("torchscript",) and "takes no optimize= argument" in plan.reason


def test_without_dynamo_large_inputs_and_weights_go_to_torchscript(monkeypatch: pytest.MonkeyPatch) -> None:
    import graph.export

    side = int((TORCHSCRIPT_MAX_INPUT_ELEMENTS // 3) ** 0.5) + 1
    plan = exporter_plan(nn.Conv2d(3, 4, 3), (torch.empty(1, 3, side, side),), support=OLD_TORCH)
    assert plan.order == ("torchscript",)
    assert "would cost more than dynamo's trace; but torch 2.1.0 has no dynamo exporter" in plan.reason
    monkeypatch.setattr(graph.export, "TORCHSCRIPT_MAX_WEIGHT_BYTES", 16 * 1024)
    plan = exporter_plan(nn.Linear(64, 64), (torch.empty(2, 64),), support=OLD_TORCH)
    assert plan.order == ("torchscript",)
    assert "shape inference would copy them" in plan.reason and "torch >= 2.5" in plan.reason


def test_without_dynamo_a_meta_model_or_a_forced_dynamo_is_a_clear_error() -> None:
    with torch.device("meta"):
        model = nn.Linear(4, 4)
    with pytest.raises(
        ExporterUnavailableError, match=r"meta device.*needs the dynamo exporter, but " + NEEDS_NEWER_TORCH
    ):
        exporter_plan(model, (torch.empty(2, 4, device="meta"),), support=OLD_TORCH)
    with pytest.raises(
        ExporterUnavailableError, match=r"exporter='dynamo' needs the dynamo exporter, but .*onnxscript"
    ):
        exporter_plan(LINEAR.model(), LINEAR.inputs(), "dynamo", support=NO_ONNXSCRIPT)
    assert exporter_plan(LINEAR.model(), LINEAR.inputs(), "torchscript", support=OLD_TORCH).order == (
        "torchscript",
    )


def test_the_torchscript_exporter_is_asked_for_only_with_arguments_torch_takes() -> None:
    assert OLD_TORCH.torchscript_arguments() == {}
    assert NO_ONNXSCRIPT.torchscript_arguments() == {"dynamo": False}
    installed = torch_exporters()
    takes = "dynamo" in inspect.signature(torch.onnx.export).parameters
    assert installed.takes_dynamo_argument == takes
    assert installed.torchscript_arguments() == ({"dynamo": False} if takes else {})
    assert (installed.dynamo_missing is None) == (
        takes and importlib.util.find_spec("onnxscript") is not None
    )


def test_a_meta_model_on_a_torch_without_dynamo_fails_clearly_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import graph.export

    monkeypatch.setattr(graph.export, "torch_exporters", lambda: OLD_TORCH)
    with torch.device("meta"):
        model = nn.Linear(4, 4)
    out = tmp_path / "c.json"
    with pytest.raises(ExportFailedError, match=NEEDS_NEWER_TORCH) as info:
        create_quant_retrain_config(out, model, torch.randn(2, 4))
    assert not isinstance(info.value, TypeError)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExporterUnavailableError, match=r"exporter='torchscript' runs on every torch"):
        export_onnx(LINEAR.model(), LINEAR.inputs(), tmp_path / "m.onnx", exporter="dynamo")
    assert list(tmp_path.iterdir()) == []
    # without an exporter asked for, export_onnx takes the one this torch has
    assert export_onnx(LINEAR.model(), LINEAR.inputs(), tmp_path / "m.onnx").exporter == "torchscript"


def test_the_library_call_on_this_torch_uses_only_what_it_offers(tmp_path: Path) -> None:
    """Whatever torch runs the suite (2.1, 2.7.1, 2.13), an ordinary model exports and says which exporter ran."""
    report = create_quant_retrain_config(tmp_path / "c.json", LINEAR.model(), LINEAR.inputs())
    missing = torch_exporters().dynamo_missing
    assert report.producer.exporter == "torchscript"
    if missing is None:
        assert "no fallback" not in report.producer.export_choice
    else:
        assert f"({missing}: no fallback)" in report.producer.export_choice
    assert (tmp_path / "c.json").read_text(encoding="utf-8") == LINEAR.golden_text()
