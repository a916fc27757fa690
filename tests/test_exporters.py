"""Both exporters give the same analysis: every reference case forced through the dynamo exporter and through
the TorchScript exporter, compared byte for byte with the golden JSON; the findings of every check agree too.

Also: how module owners are recovered from TorchScript's scope-style node names (pure unit tests, no torch
export), and models beyond the reference set whose names collide in TorchScript's naming scheme.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyzer.api import analyze
from analyzer.checks import run_checks
from analyzer.layers import index_graph
from analyzer.layertypes import SUPPORTED_TYPES
from graph.build import build_graph
from graph.export import ExportError, export_graph
from graph.ir import ExportedGraph, NodeRecord
from graph.torchscript import ScopeResolver, resolve_owners, scope_of, unqualified_name
from tests.cases import ALL_CASES, CASES, Case

EXPORTERS = ("dynamo", "torchscript")


@functools.cache
def _exported(
    factory: Callable[[], nn.Module], shapes: tuple[tuple[int, ...], ...], exporter: str
) -> ExportedGraph:
    """One export per (model, inputs, exporter) for the whole module: cases sharing a model share it."""
    case = next(c for c in ALL_CASES if c.factory is factory and c.shapes == shapes)
    return export_graph(case.model(), case.inputs(), exporter=exporter)


def exported(case: Case, exporter: str) -> ExportedGraph:
    return _exported(case.factory, case.shapes, exporter)


def _findings(
    graph: ExportedGraph, types: tuple[str, ...] = SUPPORTED_TYPES
) -> list[tuple[str, str, tuple[str, ...]]]:
    """(layer, check code, ONNX op types named) of every finding in the case's layer-type mode."""
    index = index_graph(build_graph(graph), types)
    types = {data.get("onnx_name"): data.get("op_type") for _, data in index.graph.nodes(data=True)}
    return sorted(
        (f.layer or "", f.code, tuple(sorted(str(types.get(n)) for n in f.nodes))) for f in run_checks(index)
    )


def _distinct_models() -> list[Case]:
    seen: set[tuple[object, object]] = set()
    out = []
    for case in CASES:
        if (case.factory, case.shapes) not in seen:
            seen.add((case.factory, case.shapes))
            out.append(case)
    return out


CASE_PARAMS = [
    pytest.param(case, exporter, id=f"{case.name}-{exporter}") for case in ALL_CASES for exporter in EXPORTERS
]


@pytest.mark.parametrize(("case", "exporter"), CASE_PARAMS)
def test_reference_case_with_each_exporter(case: Case, exporter: str) -> None:
    graph = exported(case, exporter)
    assert graph.producer.exporter == exporter
    if case.error is not None:
        with pytest.raises(ValueError, match=case.error):
            case.analyze(graph)
        return
    _report, text = case.analyze(graph)
    assert text == case.golden_text()


@pytest.mark.needs_dynamo
@pytest.mark.parametrize("case", _distinct_models(), ids=lambda c: c.name)
def test_both_exporters_reach_the_same_findings(case: Case) -> None:
    dynamo, torchscript = (_findings(exported(case, exporter), case.types()) for exporter in EXPORTERS)
    # circular padding is Pad(wrap) under dynamo and Slice + Concat under TorchScript: same layer, same code
    assert [(layer, code) for layer, code, _ in dynamo] == [(layer, code) for layer, code, _ in torchscript]


def test_torchscript_weights_keep_their_parameter_names() -> None:
    case = next(c for c in CASES if c.name == "resnet18_hand")
    graph = exported(case, "torchscript")
    names = {t.name for t in graph.initializers}
    assert "conv1.weight" in names and "layer4.1.conv2.weight" in names and "fc.weight" in names
    assert not [name for name in names if name.startswith("onnx::")]
    assert all(t.params == (t.name,) for t in graph.initializers)
    assert any(node.op_type == "BatchNormalization" for node in graph.nodes)  # not folded into the convs
    convs = [node for node in graph.nodes if node.op_type == "Conv"]
    assert len(convs) == 20 and all(node.module and node.module_class == "Conv2d" for node in convs)


def test_torchscript_records_tied_parameters() -> None:
    case = next(c for c in CASES if c.name == "shared_weight_linear")
    graph = exported(case, "torchscript")
    assert graph.tied_parameters == (("fc_a.weight", "fc_b.weight"),)
    shared = next(t for t in graph.initializers if t.name == "fc_a.weight")
    assert shared.params == ("fc_a.weight", "fc_b.weight")


def test_torchscript_padding_helpers_carry_the_conv_scope() -> None:
    case = next(c for c in CASES if c.name == "padding_modes_all")
    graph = exported(case, "torchscript")
    ops = {(node.op_type, node.module) for node in graph.nodes}
    assert ("Pad", "conv_reflect") in ops and ("Pad", "conv_replicate") in ops
    assert ("Concat", "conv_circular") in ops and ("Slice", "conv_circular") in ops
    assert not any(node.op_type == "Pad" for node in graph.nodes if node.module == "conv_circular")


# --- models beyond the reference set: names that collide in TorchScript's naming scheme -------------------


class Block(nn.Module):
    """`conv` is called twice: its second call is named `conv_1` by TorchScript, like the real `conv_1`."""

    def __init__(self, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, padding_mode=padding_mode)
        self.conv_1 = nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular")
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_1(self.conv(self.conv(x)))
        return x + self.proj(x.mean((2, 3)))[:, :, None, None]


class Collisions(nn.Module):
    """Two ModuleDicts (not called, so absent from TorchScript scopes) holding equally named children."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.ModuleDict({"blk": Block("reflect")})
        self.b = nn.ModuleDict({"blk": Block()})
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 5), "box": nn.Linear(8, 4)})
        self.aux = nn.ModuleDict({"cls": nn.Linear(8, 5)})
        self.seq = nn.Sequential(nn.Sequential(nn.Conv2d(8, 8, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.seq(self.b["blk"](self.a["blk"](self.stem(x))))
        y = x.mean((2, 3))
        return (
            self.heads["cls"](y),
            self.heads["box"](y),
            self.aux["cls"](y),
            F.linear(y, self.aux["cls"].weight),
        )


@functools.cache
def _collisions(exporter: str) -> ExportedGraph:
    torch.manual_seed(0)
    return export_graph(Collisions(), (torch.randn(1, 3, 8, 8),), exporter=exporter)


@pytest.mark.needs_dynamo
def test_colliding_names_resolve_like_the_dynamo_scopes() -> None:
    dynamo, torchscript = _collisions("dynamo"), _collisions("torchscript")
    # F.linear on 2-D input is a Gemm under dynamo, Transpose + MatMul under TorchScript: compare the owners
    kind = {"Conv": "Conv", "Gemm": "Linear", "MatMul": "Linear"}
    ts_owners = [(kind[n.op_type], n.module) for n in torchscript.nodes if n.op_type in kind]
    dyn_owners = [(kind[n.op_type], n.module) for n in dynamo.nodes if n.op_type in kind]
    assert ts_owners == dyn_owners
    assert (
        ("Linear", "aux.cls") in ts_owners
        and ("Linear", "heads.cls") in ts_owners
        and ("Linear", "") in ts_owners
    )
    assert [owner for op, owner in ts_owners if owner and owner.startswith("a.blk.conv")] == [
        "a.blk.conv",
        "a.blk.conv",
        "a.blk.conv_1",
    ]
    assert [(layer, code) for layer, code, _ in _findings(dynamo)] == [
        (layer, code) for layer, code, _ in _findings(torchscript)
    ]


@pytest.mark.needs_dynamo
def test_colliding_names_give_the_same_config() -> None:
    texts = [analyze(_collisions(exporter))[1] for exporter in EXPORTERS]
    assert texts[0] == texts[1]
    for excluded in ('"a.blk.conv"', '"a.blk.conv_1"', '"b.blk.conv"', '"b.blk.conv_1"'):
        assert excluded not in texts[0]  # reused, or circular / reflect padding
    for kept in ('"stem"', '"a.blk.proj"', '"heads.cls"', '"aux.cls"', '"seq.0.0"'):
        assert kept in texts[0]


# --- scope names -> modules, without an export ---------------------------------------------------------


def test_unqualified_name_is_the_exporters_scope_component() -> None:
    assert unqualified_name("layer1.0.conv1") == "conv1"
    assert unqualified_name("layer1.0") == "layer1.0"
    assert unqualified_name("features.0.0") == "features.0.0"
    assert unqualified_name("heads.cls") == "cls"
    assert unqualified_name("0") == "0"


def test_scope_of_node_names() -> None:
    assert scope_of("/layer1/layer1.0/conv1/Conv_2") == "/layer1/layer1.0/conv1"
    assert scope_of("/Relu") == ""
    assert scope_of("Constant_12") is None


RESNET_NAMES = (
    "",
    "conv1",
    "layer1",
    "layer1.0",
    "layer1.0.conv1",
    "layer1.0.relu",
    "fc",
    "heads",
    "heads.cls",
)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("", ("",)),
        ("/conv1", ("conv1",)),
        ("/layer1/layer1.0/conv1", ("layer1.0.conv1",)),
        ("/layer1/layer1.0/relu_1", ("layer1.0.relu",)),  # the second call of relu
        ("/cls", ("heads.cls",)),  # the ModuleDict parent is not in the scope
        ("/cls_3", ("heads.cls",)),
        ("/nothing", ()),
        ("/layer1/nothing/conv1", ()),
    ],
)
def test_scope_candidates(scope: str, expected: tuple[str, ...]) -> None:
    assert ScopeResolver(RESNET_NAMES).candidates(scope) == expected


def _node(name: str, op_type: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> NodeRecord:
    return NodeRecord(name, op_type, inputs, outputs, {}, None, None)


def test_ambiguous_scope_is_resolved_by_the_weight_then_by_data_flow() -> None:
    names = ("", "blk", "blk.conv", "blk.conv_1")
    nodes = [
        _node("/blk/conv/Conv", "Conv", ("x", "blk.conv.weight"), ("a",)),
        _node("/blk/conv_1/Pad", "Pad", ("a",), ("b",)),  # the second call of blk.conv pads its input
        _node("/blk/conv_1/Conv", "Conv", ("b", "blk.conv.weight"), ("c",)),
        _node("/blk/conv_1/Slice", "Slice", ("c",), ("d",)),  # blk.conv_1 (circular) pads its input
        _node("/blk/conv_1/Concat", "Concat", ("d", "c"), ("e",)),
        _node("/blk/conv_1/Conv_1", "Conv", ("e", "blk.conv_1.weight"), ("f",)),
        _node("/blk/conv_1/Relu", "Relu", ("g",), ("h",)),  # reads nothing known: stays unknown
        _node("Constant_3", "Constant", (), ("k",)),
    ]
    params = {"blk.conv.weight": ("blk.conv.weight",), "blk.conv_1.weight": ("blk.conv_1.weight",)}
    owners = resolve_owners(nodes, names, params)
    assert owners == (
        "blk.conv",
        "blk.conv",
        "blk.conv",
        "blk.conv_1",
        "blk.conv_1",
        "blk.conv_1",
        None,
        None,
    )


def test_weight_never_overrides_an_unambiguous_scope() -> None:
    # a parent calling F.linear(x, self.child.weight): the op is the parent's
    nodes = [_node("/Gemm", "Gemm", ("x", "child.weight"), ("y",))]
    assert resolve_owners(nodes, ("", "child"), {"child.weight": ("child.weight",)}) == ("",)


# --- export_graph's contract for the exporter choice ---------------------------------------------------


class Unexportable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no forward today")


def test_unknown_exporter_is_rejected() -> None:
    with pytest.raises(ValueError, match="exporter must be one of"):
        export_graph(nn.Linear(2, 2), torch.randn(1, 2), exporter="onnxruntime")


@pytest.mark.needs_dynamo
def test_both_exporters_failing_names_both() -> None:
    with pytest.raises(
        ExportError, match=r"(?s)torchscript exporter.*no forward today.*dynamo exporter.*no forward today"
    ):
        export_graph(Unexportable(), torch.randn(1, 2))


def test_torchscript_export_leaves_the_model_alone() -> None:
    case = next(c for c in CASES if c.name == "cfg_simple_default")
    model = case.model()
    model.train()
    model.conv2.eval()
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    flags = {name: m.training for name, m in model.named_modules()}
    export_graph(model, case.inputs(), exporter="torchscript")
    assert {name: m.training for name, m in model.named_modules()} == flags
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
