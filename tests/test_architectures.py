"""The rules of SPEC section 2 on the module structures of real architecture families.

The expected layers are derived from the model itself (every torch Linear/Conv2d/ConvTranspose2d module,
minus the ones a rule names for a stated reason), not from QuantScope's output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from analyzer import create_quant_retrain_config
from tests import architectures as arch

TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def _candidates(model: nn.Module) -> list[str]:
    return [
        n
        for n, m in model.named_modules()
        if type(m).__name__ in {"Linear", "Conv2d", "ConvTranspose2d"} and isinstance(m, TYPES)
    ]


IMAGE = ((1, 3, 32, 32),)
TOKENS = "tokens"

# (factory, input shapes, {excluded layer: check name}, layers present but not candidates)
FAMILIES: dict[str, tuple[Callable[[], nn.Module], object, dict[str, str]]] = {
    "mobilenet_v2": (arch.MobileNetV2Tiny, IMAGE, {}),
    "efficientnet": (arch.EfficientNetTiny, IMAGE, {}),
    "densenet": (arch.DenseNetTiny, IMAGE, {}),
    # nn.MultiheadAttention's out_proj (a NonDynamicallyQuantizableLinear) is never a candidate
    "vit": (arch.ViTTiny, IMAGE, {}),
    "swin": (arch.SwinTiny, ((1, 3, 36, 36),), {}),
    "bert": (arch.BertTiny, TOKENS, {}),
    # lm_head is tied to the embedding (not a candidate): it stays, with an advisory
    "gpt2": (arch.GPT2Tiny, TOKENS, {}),
    "llama": (arch.LlamaTiny, TOKENS, {}),
}


def _inputs(shapes: object) -> tuple[torch.Tensor, ...]:
    if shapes == TOKENS:
        return (torch.randint(0, 50, (2, 7)),)
    return tuple(torch.randn(*shape) for shape in shapes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_config_is_what_the_rules_give(family: str, tmp_path: Path) -> None:
    factory, shapes, excluded = FAMILIES[family]
    torch.manual_seed(0)
    model = factory()
    out = tmp_path / "config.json"
    report = create_quant_retrain_config(str(out), model, _inputs(shapes))
    config = json.loads(out.read_text(encoding="utf-8"))
    expected = [name for name in _candidates(model) if name not in excluded]
    assert [key for key in config if key not in ("version", "batch_num")] == expected
    for name in expected:
        is_linear = isinstance(dict(model.named_modules())[name], nn.Linear)
        assert config[name]["retrain_weight_config"]["channel_wise"] is (not is_linear), name
    for name, check in excluded.items():
        assert report.record(name).check == check


def test_vit_attention_projection_is_reported_not_configured(tmp_path: Path) -> None:
    torch.manual_seed(0)
    report = create_quant_retrain_config(str(tmp_path / "c.json"), arch.ViTTiny(), _inputs(IMAGE))
    record = report.record("encoder.0.self_attention.out_proj")
    assert record.decision == "not a candidate"
    assert "NonDynamicallyQuantizableLinear" in record.reason
    # the attention's own functional Linear ops are attributed to the attention module
    attention = report.record("encoder.0.self_attention")
    assert attention.decision == "not a candidate"
    assert {"Gemm", "MatMul"} & set(attention.op_types)


def test_gpt2_conv1d_is_not_a_candidate_and_tied_head_gets_an_advisory(tmp_path: Path) -> None:
    torch.manual_seed(0)
    report = create_quant_retrain_config(str(tmp_path / "c.json"), arch.GPT2Tiny(), _inputs(TOKENS))
    assert report.record("c_attn").decision == "not a candidate"
    assert report.quantized == ("lm_head",)
    advisories = {a.check for a in report.record("lm_head").advisories}
    assert "weight-used-elsewhere" in advisories
