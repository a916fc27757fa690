"""Models on the meta device (built under `with torch.device("meta")`): shapes without weights.

The library call analyses them like the same model with weights; `export_onnx` writes a weight-free ONNX
file (its initializers point into a data file that is never written) that the offline call analyses to the
same bytes; CPU example inputs are accepted (moved to meta when every parameter and buffer is on meta).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from analyzer import create_quant_retrain_config, create_quant_retrain_config_from_onnx
from graph.export import export_graph, export_onnx


class Small(nn.Module):
    """A few Conv/Linear layers with a BatchNorm (buffers) and a tied pair of Linear weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc2.weight = self.fc1.weight
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.bn(self.conv1(x)))).mean((2, 3))
        return self.head(self.fc2(torch.relu(self.fc1(y))))


SHAPE = (2, 3, 16, 16)


def _meta_model() -> Small:
    with torch.device("meta"):
        return Small()


def _library_config(tmp_path: Path, model: nn.Module, inputs: torch.Tensor, name: str) -> bytes:
    out = tmp_path / name
    create_quant_retrain_config(str(out), model, inputs)
    return out.read_bytes()


@pytest.mark.needs_dynamo
def test_meta_model_gets_the_config_of_the_model_with_weights(tmp_path: Path) -> None:
    meta = _library_config(tmp_path, _meta_model(), torch.empty(SHAPE, device="meta"), "meta.json")
    torch.manual_seed(0)
    real = _library_config(tmp_path, Small(), torch.randn(SHAPE), "real.json")
    assert meta == real
    assert b'"conv2"' in meta and b'"head"' in meta


@pytest.mark.needs_dynamo
@pytest.mark.parametrize("device", ["meta", "cpu"], ids=["meta-inputs", "cpu-inputs"])
def test_export_onnx_of_a_meta_model_writes_no_weights_and_analyses_like_the_model(
    device: str, tmp_path: Path
) -> None:
    model = _meta_model()
    files = export_onnx(model, torch.zeros(SHAPE, device=device), tmp_path / "out" / "model.onnx")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["model.mapping.json", "model.onnx"]
    assert not files.data_file.exists()

    proto = onnx.load(str(files.onnx_file), load_external_data=False)
    params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    params |= {name for name, _ in model.named_buffers()}
    external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert {t.name for t in external} <= params
    assert {"conv1.weight", "conv2.bias", "bn.running_mean", "head.weight"} <= {t.name for t in external}
    offset = 0
    for tensor in external:
        fields = {entry.key: entry.value for entry in tensor.external_data}
        assert fields["location"] == files.data_file.name
        assert int(fields["offset"]) == offset
        assert not tensor.raw_data
        offset += int(fields["length"])
    assert offset >= sum(p.numel() * 4 for p in model.parameters())

    offline = tmp_path / "offline.json"
    create_quant_retrain_config_from_onnx(str(offline), str(files.onnx_file), str(files.mapping_file))
    library = _library_config(tmp_path, model, torch.empty(SHAPE, device="meta"), "library.json")
    assert offline.read_bytes() == library
    no_mapping = tmp_path / "no_mapping.json"
    create_quant_retrain_config_from_onnx(str(no_mapping), str(files.onnx_file))
    assert no_mapping.read_bytes() == library


@pytest.mark.needs_dynamo
def test_cpu_inputs_are_accepted_for_a_meta_model(tmp_path: Path) -> None:
    model = _meta_model()
    cpu = _library_config(tmp_path, model, torch.randn(SHAPE), "cpu.json")
    meta = _library_config(tmp_path, model, torch.empty(SHAPE, device="meta"), "meta.json")
    assert cpu == meta
    graph = export_graph(model, (torch.randn(SHAPE),))
    assert graph.producer.input_shapes == (SHAPE,)


def test_cpu_inputs_are_not_moved_for_a_model_with_weights_on_the_cpu() -> None:
    """Only an all-meta model gets its inputs moved: a CPU model with meta inputs still fails to export."""
    with pytest.raises(RuntimeError):
        export_graph(Small(), (torch.empty(SHAPE, device="meta"),), exporter="dynamo")
