"""SPEC section 8: an INT4 weight that AMCT cannot pack (groups > 1, odd Cin) is written as INT8, in every mode.

The reference cases `b_*` (AMCT 2be20daf's own output) through the library call; the other entrances and both
exporters run them in tests/test_offline.py and tests/test_exporters.py. Then: every source of INT4, the pair
check on the requested types, the report and the log, Cin read from the graph, and a property test that no
config ever asks INT4 of a layer that cannot be packed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from analyzer import ConfigError, create_quant_retrain_config
from analyzer.api import analyze
from analyzer.emit import render
from analyzer.layers import index_graph, layer_int4_blocker
from analyzer.layertypes import GROUPED, ODD_CIN, Int4Blocker, int4_blocker
from analyzer.report import DOWNGRADE_CHECK, DOWNGRADE_CODE
from analyzer.resolve import QuantLayer, resolve_simple
from analyzer.simple_config import parse_simple_config
from graph.build import build_graph
from graph.export import export_graph
from graph.ir import ExportedGraph, NodeRecord
from tests.cases import CASES_BY_NAME, DOWNGRADE_CASES, Case
from tests.graphs import make_graph, module, op

W4 = "retrain_weight_quant_config: { arq_retrain: { dst_type: INT4 } }\n"
ODD = Int4Blocker(ODD_CIN, "Cin = 3 is odd, INT4 packs two values along Cin")
GROUPS = Int4Blocker(GROUPED, "groups = 2, INT4 packing does not support grouped convolutions")


def _run(case: Case, tmp_path: Path) -> tuple[Any, str]:
    out = tmp_path / "config.json"
    report = create_quant_retrain_config(
        str(out), case.model(), case.inputs(), str(case.cfg_path()), layer_types=case.layer_types
    )
    return report, out.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", DOWNGRADE_CASES, ids=[c.name for c in DOWNGRADE_CASES])
def test_reference_case_is_byte_identical(case: Case, tmp_path: Path) -> None:
    _report, text = _run(case, tmp_path)
    assert text == case.golden_text()


def _downgrades(report: Any) -> dict[str, str]:
    return {r.name: a.reason for r in report.layers for a in r.advisories if a.code == DOWNGRADE_CODE}


def test_report_names_each_downgrade_and_its_reason(tmp_path: Path) -> None:
    report, _ = _run(CASES_BY_NAME["b_w4mix_skipped"], tmp_path)
    assert _downgrades(report) == {
        "conv_odd": "conv_odd: weight INT4 -> INT8: Cin = 3 is odd, INT4 packs two values along Cin",
        "conv_g2": "conv_g2: weight INT4 -> INT8: groups = 2, INT4 packing does not support grouped convolutions",
        "conv_dw": "conv_dw: weight INT4 -> INT8: groups = 8, INT4 packing does not support grouped convolutions",
        "conv_cin5": "conv_cin5: weight INT4 -> INT8: Cin = 5 is odd, INT4 packs two values along Cin",
        "fc_odd": "fc_odd: weight INT4 -> INT8: Cin = 5 is odd, INT4 packs two values along Cin",
    }
    assert set(report.skipped) == {"conv_odd", "conv_even", "conv_g2"}  # skipped layers are downgraded too
    assert report.record("conv_even").int4_packing is None
    assert report.record("conv_dw").int4_packing is not None
    assert f"{DOWNGRADE_CODE} {DOWNGRADE_CHECK}: conv_odd: weight INT4 -> INT8" in report.to_text()


def test_log_gives_one_line_per_kind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="analyzer.api"):
        _run(CASES_BY_NAME["b_w4mix_skipped"], tmp_path)
    lines = [r.getMessage() for r in caplog.records if DOWNGRADE_CHECK in r.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith(f"{DOWNGRADE_CHECK} (odd Cin) on 3 layer(s): conv_odd, conv_cin5, fc_odd")
    assert lines[1].startswith(f"{DOWNGRADE_CHECK} (groups > 1) on 2 layer(s): conv_g2, conv_dw")


def test_no_downgrade_without_int4(tmp_path: Path) -> None:
    case = CASES_BY_NAME["b_w4_odd_cin"]
    out = tmp_path / "config.json"
    report = create_quant_retrain_config(str(out), case.model(), case.inputs())
    assert _downgrades(report) == {}
    assert report.record("conv1").int4_packing == ODD.why


# ------------------------------------------------------------------------------- every source of INT4

LAYERS = (
    QuantLayer("conv1", "Conv2d", ODD),
    QuantLayer("conv2", "Conv2d"),
    QuantLayer("grouped", "Conv2d", GROUPS),
    QuantLayer("fc", "Linear", Int4Blocker(ODD_CIN, "Cin = 7 is odd, INT4 packs two values along Cin")),
)
SOURCES = {
    "global-arq": W4,
    "global-ulq": "retrain_weight_quant_config: { ulq_retrain: { dst_type: INT4 } }",
    "layer-override": "\n".join(
        f'override_layer_configs: {{ layer_name: "{n}" {W4} }}' for n in ("conv1", "conv2", "grouped", "fc")
    ),
    "type-override": 'override_layer_types: { layer_type: "Conv2d" retrain_weight_quant_config: { ulq_retrain: '
    '{ dst_type: INT4 channel_wise: false } } }\noverride_layer_types: { layer_type: "Linear" ' + W4 + "}",
    "skipped": W4 + 'skip_layers: "conv1"\nskip_layers: "grouped"\nskip_layer_types: "Linear"',
}


@pytest.mark.parametrize("source", SOURCES, ids=list(SOURCES))
def test_every_source_of_int4_is_downgraded(source: str) -> None:
    resolved = resolve_simple(LAYERS, parse_simple_config(SOURCES[source], "q.cfg"), {})
    weights = json.loads(render(resolved))
    assert {
        name: weights[name]["retrain_weight_config"]["dst_type"] for name in ("conv1", "grouped", "fc")
    } == {
        "conv1": "INT8",
        "grouped": "INT8",
        "fc": "INT8",
    }
    assert weights["conv2"]["retrain_weight_config"]["dst_type"] == "INT4"
    assert {s.name for s in resolved.layers if s.downgraded is not None} == {"conv1", "grouped", "fc"}


def test_only_dst_type_changes() -> None:
    text = SOURCES["type-override"]
    resolved = resolve_simple(LAYERS, parse_simple_config(text, "q.cfg"), {})
    without = resolve_simple(
        tuple(QuantLayer(layer.name, layer.layer_type) for layer in LAYERS),
        parse_simple_config(text, "q.cfg"),
        {},
    )
    before, after = json.loads(render(without)), json.loads(render(resolved))
    after["conv1"]["retrain_weight_config"]["dst_type"] = "INT4"
    after["grouped"]["retrain_weight_config"]["dst_type"] = "INT4"
    after["fc"]["retrain_weight_config"]["dst_type"] = "INT4"
    assert json.dumps(after) == json.dumps(before)  # same keys, same order, same values but the one


def test_pair_check_runs_on_the_requested_types() -> None:
    text = "retrain_data_quant_config: { ulq_quantize: { dst_type: INT16 } }\n" + W4
    with pytest.raises(ConfigError, match="data INT16 / weight INT4"):
        resolve_simple((QuantLayer("conv1", "Conv2d", ODD),), parse_simple_config(text, "q.cfg"), {})


# ------------------------------------------------------------------------------- Cin and groups from the graph


class Shapes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc3d_odd = nn.Linear(7, 8, bias=False)  # MatMul on a 3-D input
        self.fc3d_even = nn.Linear(8, 6)
        self.up_odd = nn.ConvTranspose2d(5, 4, 2, stride=2)  # Cin on weight axis 0
        self.up_even = nn.ConvTranspose2d(4, 3, 2, stride=2)  # odd Cout never matters
        self.dw = nn.Conv2d(3, 6, 3, groups=3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc3d_even(self.fc3d_odd(x)), self.dw(self.up_even(self.up_odd(y)))


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_cin_and_groups_are_read_from_the_graph(exporter: str) -> None:
    torch.manual_seed(0)
    graph = export_graph(Shapes().eval(), (torch.randn(2, 3, 7), torch.randn(1, 5, 4, 4)), exporter=exporter)
    index = index_graph(build_graph(graph))
    blockers = {
        name: (b.kind, b.why) if (b := layer_int4_blocker(index.by_name[name])) else None
        for name in ("fc3d_odd", "fc3d_even", "up_odd", "up_even", "dw")
    }
    assert blockers == {
        "fc3d_odd": (ODD_CIN, "Cin = 7 is odd, INT4 packs two values along Cin"),
        "fc3d_even": None,
        "up_odd": (ODD_CIN, "Cin = 5 is odd, INT4 packs two values along Cin"),
        "up_even": None,
        "dw": (GROUPED, "groups = 3, INT4 packing does not support grouped convolutions"),
    }


@pytest.mark.parametrize(
    ("cin", "groups", "kind"),
    [(3, 1, ODD_CIN), (4, 1, None), (8, 2, GROUPED), (9, 3, GROUPED), (None, 1, None), (1, 1, ODD_CIN)],
    ids=["odd", "even", "grouped-even", "grouped-odd", "unknown", "one"],
)
def test_int4_blocker_rule(cin: int | None, groups: int, kind: str | None) -> None:
    blocker = int4_blocker(cin, groups)
    assert (blocker.kind if blocker else None) == kind


# ------------------------------------------------------------------------------- property

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DST = st.sampled_from([None, "INT4", "INT8"])
ALGO = st.sampled_from(["arq_retrain", "ulq_retrain"])


@st.composite
def layers_and_config(draw: st.DrawFn) -> tuple[tuple[QuantLayer, ...], str]:
    count = draw(st.integers(1, 6))
    layers = []
    for number in range(count):
        layer_type = draw(st.sampled_from(["Conv2d", "ConvTranspose2d", "Linear"]))
        cin = draw(st.integers(1, 64))
        groups = draw(st.sampled_from([1, 1, 2, 4])) if layer_type == "Conv2d" else 1
        layers.append(QuantLayer(f"l{number}", layer_type, int4_blocker(cin, groups)))

    def weight(cw_ok: bool) -> str:
        dst = draw(DST)
        body = f"dst_type: {dst} " if dst else ""
        if cw_ok and draw(st.booleans()):
            body += "channel_wise: true "
        return f"retrain_weight_quant_config: {{ {draw(ALGO)} {{ {body}}} }}"

    lines = [weight(cw_ok=False)]
    for layer_type in draw(st.sets(st.sampled_from(["Conv2d", "ConvTranspose2d", "Linear"]))):
        lines.append(
            f'override_layer_types: {{ layer_type: "{layer_type}" {weight(layer_type != "Linear")} }}'
        )
    for layer in layers:
        if draw(st.booleans()):
            lines.append(f'override_layer_configs: {{ layer_name: "{layer.name}" {weight(False)} }}')
    skipped = draw(st.sets(st.sampled_from([layer.name for layer in layers])))
    lines += [f'skip_layers: "{name}"' for name in sorted(skipped) if len(skipped) < count]
    return tuple(layers), "\n".join(lines)


@PROPERTY
@given(layers_and_config())
def test_downgrade_never_leaves_an_unpackable_int4_weight(
    generated: tuple[tuple[QuantLayer, ...], str],
) -> None:
    layers, text = generated
    simple = parse_simple_config(text, "generated.cfg")
    resolved = resolve_simple(layers, simple, {})
    requested = resolve_simple(
        tuple(QuantLayer(layer.name, layer.layer_type) for layer in layers), simple, {}
    )
    config = json.loads(render(resolved))
    for layer, asked in zip(layers, requested.layers, strict=True):
        written = config[layer.name]["retrain_weight_config"]["dst_type"]
        if layer.int4_blocker is not None:
            assert written == "INT8"
            assert (resolved.layers[layers.index(layer)].downgraded is not None) == (
                asked.weight.dst_type == "INT4"
            )
        else:
            assert written == asked.weight.dst_type  # a packable layer keeps what the config asked


# (kind of layer, Cin, groups) -> a hand-made graph of that one layer, the way each exporter writes it
@st.composite
def one_layer_graph(draw: st.DrawFn) -> tuple[ExportedGraph, bool]:
    cin = draw(st.integers(1, 33))
    cout = draw(st.integers(1, 9))
    kind = draw(
        st.sampled_from(["conv", "convtranspose", "gemm", "gemm-transposed", "matmul", "matmul-folded"])
    )
    groups = 1
    if kind in ("conv", "convtranspose"):
        groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if cin % g == 0 and cout % g == 0]))
    nodes: list[NodeRecord] = []
    if kind == "conv":
        nodes.append(op("Conv", ["x", "l.weight"], ["y"], "l", group=groups, kernel_shape=(1, 1)))
        weight: tuple[int, ...] = (cout, cin // groups, 1, 1)
    elif kind == "convtranspose":
        nodes.append(op("ConvTranspose", ["x", "l.weight"], ["y"], "l", group=groups, kernel_shape=(1, 1)))
        weight = (cin, cout // groups, 1, 1)
    elif kind == "gemm":  # dynamo and TorchScript on a 2-D input: transB=1 on the (out, in) parameter
        nodes.append(op("Gemm", ["x", "l.weight"], ["y"], "l", transB=1))
        weight = (cout, cin)
    elif kind == "gemm-transposed":  # a hand-made Gemm on an (in, out) weight
        nodes.append(op("Gemm", ["x", "l.weight"], ["y"], "l", transB=0))
        weight = (cin, cout)
    elif kind == "matmul":  # dynamo on a 3-D input: Transpose of the (out, in) parameter, then MatMul
        nodes.append(op("Transpose", ["l.weight"], ["wt"], "l", perm=(1, 0)))
        nodes.append(op("MatMul", ["x", "wt"], ["y"], "l"))
        weight = (cout, cin)
    else:  # TorchScript with constant folding: the transposed copy is the initializer
        nodes.append(op("MatMul", ["x", "l.weight"], ["y"], "l"))
        weight = (cin, cout)
    layer_type = {"conv": "Conv2d", "convtranspose": "ConvTranspose2d"}.get(kind, "Linear")
    graph = make_graph(nodes, {"l.weight": weight}, [module("", "Net", None), module("l", layer_type)])
    return graph, groups > 1 or cin % 2 == 1


@PROPERTY
@given(one_layer_graph(), st.sampled_from(["arq_retrain", "ulq_retrain"]))
def test_no_config_asks_int4_of_a_layer_that_cannot_be_packed(
    generated: tuple[ExportedGraph, bool], algo: str
) -> None:
    graph, unpackable = generated
    simple = parse_simple_config(f"retrain_weight_quant_config: {{ {algo} {{ dst_type: INT4 }} }}", "w4.cfg")
    report, text = analyze(graph, simple)
    written = json.loads(text)["l"]["retrain_weight_config"]["dst_type"]
    assert written == ("INT8" if unpackable else "INT4")
    assert (report.record("l").int4_packing is not None) == unpackable


@pytest.mark.parametrize("name", ["cfg_simple_default", "resnet18_hand"])
def test_a8w4_on_the_section_5_models(name: str, tmp_path: Path) -> None:
    """INT8 data / INT4 weights on the documented models: only the first conv (Cin = 3) is downgraded."""
    case = CASES_BY_NAME[name]
    cfg = tmp_path / "a8w4.cfg"
    cfg.write_text("retrain_data_quant_config: { ulq_quantize: { dst_type: INT8 } }\n" + W4, encoding="utf-8")
    out = tmp_path / "config.json"
    report = create_quant_retrain_config(str(out), case.model(), case.inputs(), str(cfg))
    weights = {
        k: v["retrain_weight_config"]["dst_type"]
        for k, v in json.loads(out.read_text(encoding="utf-8")).items()
        if isinstance(v, dict)
    }
    assert {k for k, v in weights.items() if v == "INT8"} == {"conv1"}
    assert len(weights) > 1 and all(v == "INT4" for k, v in weights.items() if k != "conv1")
    assert _downgrades(report) == {"conv1": f"conv1: weight INT4 -> INT8: {ODD.why}"}
