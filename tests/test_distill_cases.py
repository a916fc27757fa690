"""The distill reference cases (SPEC 11, reference/distill/) through every entrance, compared byte for byte with
the golden JSON: the library call, each exporter forced, and the offline call on files written by both exporters,
with and without the mapping file. The retrain call's golden files stay unchanged (tests/test_reference_cases.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from torch import nn

from analyzer import InputFileError, create_distill_config, create_distill_config_from_onnx
from analyzer.api import analyze
from analyzer.kinds.distill import load_simple
from graph.export import OnnxExport, export_graph, export_onnx
from graph.ir import ExportedGraph
from tests.distill_cases import DISTILL_CASES, DistillCase

IDS = [case.name for case in DISTILL_CASES]


def _outcome(case: DistillCase, run: Callable[[], object], out: Path) -> None:
    """The case's golden bytes in `out`, or its error with nothing written."""
    if case.error is not None:
        with pytest.raises(case.error_type, match=case.error):
            run()
        assert not out.exists()
        return
    run()
    assert out.read_text(encoding="utf-8") == case.golden_text()


@pytest.mark.parametrize("case", DISTILL_CASES, ids=IDS)
def test_library_call(case: DistillCase, tmp_path: Path) -> None:
    out = tmp_path / "distill.json"
    _outcome(case, lambda: create_distill_config(str(out), case.model(), case.inputs(), case.cfg_path()), out)


@functools.cache
def _exported(
    factory: Callable[[], nn.Module], shapes: tuple[tuple[int, ...], ...], exporter: str
) -> ExportedGraph:
    case = next(c for c in DISTILL_CASES if c.factory is factory and c.shapes == shapes)
    return export_graph(case.model(), case.inputs(), exporter=exporter)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("case", DISTILL_CASES, ids=IDS)
def test_each_exporter(case: DistillCase, exporter: str) -> None:
    """Both exporters' graphs show conv -> BatchNormalization -> activation the same way (BatchNorm unfolded)."""
    exported = _exported(case.factory, case.shapes, exporter)
    simple = load_simple(case.cfg_path(), ()) if case.cfg else None  # type: ignore[arg-type]
    if case.error is not None:
        with pytest.raises(case.error_type, match=case.error):
            analyze(exported, simple, kind="distill")
        return
    _, text = analyze(exported, simple, kind="distill")
    assert text == case.golden_text()


class _Files:
    """Each (model, inputs, exporter) written once for the module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[tuple[object, ...], OnnxExport] = {}

    def get(self, case: DistillCase, exporter: str, folding: bool = False) -> OnnxExport:
        key = (case.factory, case.shapes, exporter, folding)
        if key not in self.done:
            folder = self.root / f"{case.name}-{exporter}-{'folded' if folding else 'kept'}"
            self.done[key] = export_onnx(
                case.model(),
                case.inputs(),
                folder / "model.onnx",
                exporter=exporter,
                constant_folding=folding,
            )
        return self.done[key]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> _Files:
    return _Files(tmp_path_factory.mktemp("distill-files"))


OFFLINE = [("dynamo", True), ("dynamo", False), ("torchscript", True)]


@pytest.mark.parametrize(
    ("exporter", "with_mapping"), OFFLINE, ids=[f"{e}-{'mapping' if m else 'alone'}" for e, m in OFFLINE]
)
@pytest.mark.parametrize("case", DISTILL_CASES, ids=IDS)
def test_offline_call(
    case: DistillCase, exporter: str, with_mapping: bool, files: _Files, tmp_path: Path
) -> None:
    written = files.get(case, exporter)
    mapping = str(written.mapping_file) if with_mapping else None
    out = tmp_path / "distill.json"
    _outcome(
        case,
        lambda: create_distill_config_from_onnx(str(out), str(written.onnx_file), mapping, case.cfg_path()),
        out,
    )


@pytest.mark.parametrize(
    "case", [c for c in DISTILL_CASES if c.name in ("d_basic", "d_chain")], ids=["d_basic", "d_chain"]
)
def test_torchscript_file_without_mapping_is_refused(
    case: DistillCase, files: _Files, tmp_path: Path
) -> None:
    """A TorchScript file does not say the class of its BatchNorm and activation modules: refused, not guessed."""
    written = files.get(case, "torchscript")
    out = tmp_path / "distill.json"
    with pytest.raises(
        InputFileError, match=r"does not say the class of the modules bn.*pass the mapping file"
    ):
        create_distill_config_from_onnx(str(out), str(written.onnx_file), None, case.cfg_path())
    assert not out.exists()


@pytest.mark.parametrize(
    "case",
    [c for c in DISTILL_CASES if c.name in ("d_basic", "d_resnet_tiny")],
    ids=["d_basic", "d_resnet_tiny"],
)
def test_file_with_batchnorm_folded_is_refused(case: DistillCase, files: _Files, tmp_path: Path) -> None:
    """The TorchScript exporter's default folds BatchNorm into the conv: the groups cannot be read, and the error
    says so instead of writing groups without their BatchNorm."""
    written = files.get(case, "torchscript", folding=True)
    out = tmp_path / "distill.json"
    with pytest.raises(
        InputFileError, match=r"have no BatchNormalization node: the file was exported with BatchNorm folded"
    ):
        create_distill_config_from_onnx(
            str(out), str(written.onnx_file), str(written.mapping_file), case.cfg_path()
        )
    assert not out.exists()


def test_the_retrain_call_is_unchanged_on_a_distill_model(tmp_path: Path) -> None:
    """The activation classes now recorded in the module table change nothing in the retrain config."""
    from analyzer import create_quant_retrain_config

    case = DISTILL_CASES[0]
    out = tmp_path / "retrain.json"
    create_quant_retrain_config(str(out), case.model(), case.inputs())
    import json

    assert list(json.loads(out.read_text(encoding="utf-8"))) == [
        "version",
        "batch_num",
        "fc",
        "conv",
        "conv2",
    ]


def test_a_dynamo_file_made_with_the_optimizer_is_refused(tmp_path: Path) -> None:
    """`torch.onnx.export(dynamo=True)` optimizes by default: the Conv absorbs the BatchNorm and is read as the
    conv's again (from its weight's name), so nothing but the silent BatchNorm module shows the fold."""
    import warnings

    import torch

    case = DISTILL_CASES[0]
    path = tmp_path / "optimized.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(case.model(), case.inputs(), str(path), dynamo=True, verbose=False)
    out = tmp_path / "distill.json"
    with pytest.raises(
        InputFileError, match=r"the BatchNorm modules bn have no BatchNormalization node.*optimize=False"
    ):
        create_distill_config_from_onnx(str(out), str(path))
    assert not out.exists()
