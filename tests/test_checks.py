"""Each check fires on a graph that shows its problem and stays quiet on its near twin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from analyzer.checks import REGISTRY, Check, Finding, rules, run_checks
from analyzer.layers import index_graph, layer_int4_blocker
from analyzer.layertypes import ALL_TYPES, SUPPORTED_TYPES, int4_blocker
from graph.build import build_graph
from graph.ir import ExportedGraph, NodeRecord
from tests.graphs import conv, gemm, make_graph, module, op


def findings(
    check: Check, exported: ExportedGraph, types: tuple[str, ...] = SUPPORTED_TYPES
) -> list[Finding]:
    return list(check.run(index_graph(build_graph(exported), types)))


def _conv_model(extra_before: list | None = None, cin: int = 32, group: int = 1) -> ExportedGraph:
    nodes = list(extra_before or [])
    source = nodes[-1].outputs[0] if nodes else "x"
    node, inits = conv("conv", source, "y", cin=cin, group=group)
    return make_graph([*nodes, node], inits, [module("conv", "Conv2d")])


def not_a_candidate_fires() -> ExportedGraph:
    node = op("Conv", ["x", "c1.weight"], ["y"], "c1")
    return make_graph([node], {"c1.weight": (8, 4, 3)}, [module("c1", "Conv1d")])


def not_a_candidate_functional() -> ExportedGraph:
    # the root's forward calls F.linear with a child's weight: the op is the root's, the child never ran
    node = op("Gemm", ["x", "fc.weight"], ["y"], "", transB=1)
    return make_graph([node], {"fc.weight": (16, 16)}, [module("fc", "Linear")])


def not_a_candidate_quiet() -> ExportedGraph:
    return _conv_model()


def not_executed_fires() -> ExportedGraph:
    node, inits = gemm("fc_used", "x", "y")
    return make_graph(
        [node],
        inits | {"fc_unused.weight": (16, 16)},
        [module("fc_used", "Linear"), module("fc_unused", "Linear")],
    )


def not_executed_quiet() -> ExportedGraph:
    node, inits = gemm("fc_used", "x", "y")
    return make_graph([node], inits, [module("fc_used", "Linear")])


def reused_fires() -> ExportedGraph:
    first = op("Conv", ["x", "conv.weight"], ["y1"], "conv")
    second = op("Conv", ["y1", "conv.weight"], ["y2"], "conv")
    return make_graph([first, second], {"conv.weight": (32, 32, 3, 3)}, [module("conv", "Conv2d")])


def shared_fires() -> ExportedGraph:
    a, inits = gemm("fc_a", "x", "y1", weight="fc_b.weight")
    b, _ = gemm("fc_b", "y1", "y2", weight="fc_b.weight")
    mods = [
        module("fc_a", "Linear", params=["fc_a.weight"]),
        module("fc_b", "Linear", params=["fc_b.weight"]),
    ]
    return make_graph([a, b], inits, mods, tied=(("fc_a.weight", "fc_b.weight"),))


def shared_quiet_merged_by_value() -> ExportedGraph:
    # an exporter merged two equal-valued weights into one initializer; the model says they are distinct
    a, inits = gemm("fc_a", "x", "y1", weight="merged")
    b, _ = gemm("fc_b", "y1", "y2", weight="merged")
    mods = [
        module("fc_a", "Linear", params=["fc_a.weight"]),
        module("fc_b", "Linear", params=["fc_b.weight"]),
    ]
    return make_graph([a, b], inits, mods, tied=())


def padding_fires() -> ExportedGraph:
    pad = op("Pad", ["x", "pads"], ["padded"], "conv", mode="reflect")
    return _conv_model([pad])


def padding_slices_fire() -> ExportedGraph:
    # circular padding under the TorchScript exporter: Slice + Concat inside the conv's scope
    s = op("Slice", ["x"], ["s"], "conv")
    c = op("Concat", ["s", "x"], ["padded"], "conv", axis=3)
    return _conv_model([s, c])


def padding_quiet_bias_helpers() -> ExportedGraph:
    # ops in the conv's scope that build the bias (a bias-free conv under dynamo) are not padding
    shape = op("Shape", ["conv.weight"], ["shape"], "conv")
    bias = op("Expand", ["zero", "shape"], ["bias"], "conv")
    conv_node = op("Conv", ["x", "conv.weight", "bias"], ["y"], "conv")
    return make_graph(
        [shape, bias, conv_node], {"conv.weight": (32, 32, 3, 3), "zero": ()}, [module("conv", "Conv2d")]
    )


def padding_quiet_constant_pad() -> ExportedGraph:
    # padding='same' with an even kernel exports to a constant-mode Pad: zero padding, as padding_mode 'zeros'
    pad = op("Pad", ["x", "pads"], ["padded"], "conv", mode="constant")
    return _conv_model([pad])


def input_rank_fires() -> ExportedGraph:
    unsq = op("Unsqueeze", ["x", "axes"], ["x4"], "conv")
    return _conv_model([unsq])


def transposed_fires() -> ExportedGraph:
    node, inits = gemm("fc", "x", "y", trans_a=1)
    return make_graph([node], inits, [module("fc", "Linear")])


def no_weight_op_fires() -> ExportedGraph:
    # a Linear whose forward was replaced by an activation-only matmul
    node = op("MatMul", ["x", "x"], ["y"], "fc")
    return make_graph([node], {}, [module("fc", "Linear")])


def small_cin_fires() -> ExportedGraph:
    return _conv_model(cin=3)


def small_cin_grouped_quiet() -> ExportedGraph:
    # depthwise conv: weight dims[1] is 1, but Cin = dims[1] * group = 32
    return _conv_model(cin=32, group=32)


def used_elsewhere_fires() -> ExportedGraph:
    gather = op("Gather", ["wte.weight", "ids"], ["emb"], "wte")
    head, _ = gemm("lm_head", "emb", "logits", weight="wte.weight")
    mods = [module("wte", "Embedding"), module("lm_head", "Linear")]
    return make_graph([gather, head], {"wte.weight": (16, 16)}, mods, inputs={"ids": (1, 4)})


def aliases_fire() -> ExportedGraph:
    # conv1 is also net.0; its op was made under the alias, and is conv1's all the same
    node, inits = conv("net.0", "x", "y")
    aliased = replace(module("conv1", "Conv2d"), aliases=("net.0",))
    return make_graph([node], inits, [module("", "Net", None), aliased, module("net", "Sequential", None)])


def _conv3d(dilations: tuple[int, int, int]) -> ExportedGraph:
    node = op("Conv", ["x", "c3.weight"], ["y"], "c3", group=1, dilations=dilations, kernel_shape=(3, 3, 3))
    return make_graph([node], {"c3.weight": (4, 2, 3, 3, 3)}, [module("c3", "Conv3d")])


def depth_dilation_fires() -> ExportedGraph:
    return _conv3d((2, 1, 1))


def depth_dilation_quiet_hw() -> ExportedGraph:
    return _conv3d((1, 2, 2))


def _lstm(**facts: object) -> ExportedGraph:
    node = op("LSTM", ["x", "rnn.W", "rnn.R", "rnn.B"], ["y"], "rnn", hidden_size=16, direction="forward")
    inits = {"rnn.W": (1, 64, 8), "rnn.R": (1, 64, 16), "rnn.B": (1, 128)}
    config = tuple(sorted(facts.items())) if facts else None
    info = replace(module("rnn", "LSTM"), config=config)  # type: ignore[arg-type]
    return make_graph([node], inits, [info])


def rnn_config_fires() -> ExportedGraph:
    return _lstm(num_layers=1, bidirectional=False, dropout=0.25, proj_size=0)


def rnn_config_quiet() -> ExportedGraph:
    return _lstm(num_layers=1, bidirectional=False, dropout=0.0, proj_size=0)


def rnn_facts_unknown_fires() -> ExportedGraph:
    return _lstm()


def _weight_norm(name: str, x: str, y: str, scope: str | None = "", v: str | None = None) -> list[NodeRecord]:
    """weight = weight_g * weight_v / ||weight_v|| before a Conv, as the TorchScript exporter writes it: the
    hook's ops carry the scope of the module that called the conv (`scope`), the Conv its own."""
    v = v or f"{name}.weight_v"
    return [
        op("ReduceL2", [v], [f"{name}_norm"], scope, axes=(1, 2, 3), keepdims=1),
        op("Div", [v, f"{name}_norm"], [f"{name}_dir"], scope),
        op("Mul", [f"{name}_dir", f"{name}.weight_g"], [f"{name}_w"], scope),
        op("Conv", [x, f"{name}_w", f"{name}.bias"], [y], name, group=1, kernel_shape=(3, 3)),
    ]


def _weight_norm_inits(name: str, cin: int = 32) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight_v": (16, cin, 3, 3), f"{name}.weight_g": (16, 1, 1, 1), f"{name}.bias": (16,)}


def weight_norm_conv() -> ExportedGraph:
    return make_graph(
        _weight_norm("conv", "x", "y"),
        _weight_norm_inits("conv", cin=3),
        [module("conv", "Conv2d", params=["conv.bias", "conv.weight_g", "conv.weight_v"])],
    )


def spectral_norm_linear() -> ExportedGraph:
    # dynamo's spelling: sigma's MatMul ops inside the Linear's own scope, on the weight's path
    nodes = [
        op("Constant", [], ["shape"], "fc", value_ints=(16, -1)),
        op("Reshape", ["fc.weight_orig", "shape"], ["view"], "fc"),
        op("MatMul", ["view", "fc.weight_v"], ["mv"], "fc"),
        op("MatMul", ["fc.weight_u", "mv"], ["sigma"], "fc"),
        op("Div", ["fc.weight_orig", "sigma"], ["w"], "fc"),
        op("Gemm", ["x", "w", "fc.bias"], ["y"], "fc", transB=1),
    ]
    inits = {"fc.weight_orig": (16, 7), "fc.weight_u": (16,), "fc.weight_v": (7,), "fc.bias": (16,)}
    params = ["fc.bias", "fc.weight_orig"]
    return make_graph(nodes, inits, [module("fc", "Linear", params=params)], inputs={"x": (2, 7)})


def shared_source_fires() -> ExportedGraph:
    # two weight-norm convs whose weights are computed from one weight_v (a tied parameter)
    nodes = [*_weight_norm("a", "x", "y1", v="a.weight_v"), *_weight_norm("b", "y1", "y2", v="a.weight_v")]
    inits = _weight_norm_inits("a") | {"b.weight_g": (16, 1, 1, 1), "b.bias": (16,)}
    mods = [
        module("a", "Conv2d", params=["a.bias", "a.weight_g", "a.weight_v"]),
        module("b", "Conv2d", params=["b.bias", "b.weight_g", "b.weight_v"]),
    ]
    return make_graph(nodes, inits, mods, tied=(("a.weight_v", "b.weight_v"),))


def computed_weight_read_elsewhere() -> ExportedGraph:
    graph = weight_norm_conv()
    probe = op("ReduceMean", ["conv.weight_v"], ["stat"], "")
    return replace(graph, nodes=(*graph.nodes, probe))


LATEST_GRAPHS = {
    depth_dilation_fires,
    depth_dilation_quiet_hw,
    rnn_config_fires,
    rnn_config_quiet,
    rnn_facts_unknown_fires,
}


CASES: list[tuple[Check, Callable[[], ExportedGraph], str | None]] = [
    # (check, graph, expected reason fragment, or None when the check must stay quiet)
    (
        rules.NOT_A_CANDIDATE,
        not_a_candidate_fires,
        "c1: class Conv1d is not a candidate in this mode (layer_types 'documented'); it would be one with --layer-types amct-latest",
    ),
    (rules.NOT_A_CANDIDATE, not_a_candidate_functional, "makes Gemm"),
    (rules.NOT_A_CANDIDATE, not_a_candidate_quiet, None),
    (rules.NOT_EXECUTED, not_executed_fires, "fc_unused: no op of the graph belongs to it"),
    (rules.NOT_EXECUTED, not_executed_quiet, None),
    (rules.REUSED_MODULE, reused_fires, "conv: called 2 times"),
    (rules.REUSED_MODULE, not_a_candidate_quiet, None),
    (rules.SHARED_WEIGHT, shared_fires, "shared with fc_b"),
    (rules.SHARED_WEIGHT, shared_quiet_merged_by_value, None),
    (rules.SHARED_WEIGHT, not_executed_quiet, None),
    (rules.PADDING_MODE, padding_fires, "conv: Pad mode 'reflect' before Conv"),
    (rules.PADDING_MODE, padding_slices_fire, "Concat, Slice before Conv"),
    (rules.PADDING_MODE, padding_quiet_bias_helpers, None),
    (rules.PADDING_MODE, padding_quiet_constant_pad, None),
    (rules.PADDING_MODE, reused_fires, None),  # the first call's Conv is not padding for the second
    (rules.INPUT_RANK, input_rank_fires, "conv: input is not (N, Cin, H, W)"),
    (rules.INPUT_RANK, not_a_candidate_quiet, None),
    (rules.INPUT_RANK, reused_fires, None),
    (rules.TRANSPOSED_INPUT, transposed_fires, "fc: Gemm with transA=1"),
    (rules.TRANSPOSED_INPUT, not_executed_quiet, None),
    (rules.NO_WEIGHT_OP, no_weight_op_fires, "fc: ran but made no Gemm/MatMul op with a weight"),
    (rules.NO_WEIGHT_OP, not_executed_quiet, None),
    (rules.SMALL_CIN_CHECK, small_cin_fires, "conv: Cin = 3 <= 16"),
    (rules.SMALL_CIN_CHECK, small_cin_grouped_quiet, None),
    (
        rules.WEIGHT_USED_ELSEWHERE,
        used_elsewhere_fires,
        "lm_head: weight 'wte.weight' is also read by Gather of wte",
    ),
    (rules.WEIGHT_USED_ELSEWHERE, not_executed_quiet, None),
    (rules.MODULE_ALIASES, aliases_fire, "conv1: also registered as net.0; one layer under its first name"),
    (rules.MODULE_ALIASES, small_cin_fires, None),
    (rules.DEPTH_DILATION, depth_dilation_fires, "c3: dilation (2, 1, 1) along depth is 2 (must be 1)"),
    (rules.DEPTH_DILATION, depth_dilation_quiet_hw, None),
    (
        rules.RNN_CONFIG,
        rnn_config_fires,
        "rnn: dropout = 0.25 (AMCT quantizes an LSTM only with num_layers 1",
    ),
    (rules.RNN_CONFIG, rnn_config_quiet, None),
    (
        rules.RNN_FACTS_UNKNOWN,
        rnn_facts_unknown_fires,
        "rnn: num_layers, dropout, proj_size could not be established",
    ),
    (rules.RNN_FACTS_UNKNOWN, rnn_config_quiet, None),
    (rules.COMPUTED_WEIGHT, weight_norm_conv, "conv: weight computed from weight_g, weight_v"),
    (rules.COMPUTED_WEIGHT, spectral_norm_linear, "fc: weight computed from weight_orig, weight_u, weight_v"),
    (rules.COMPUTED_WEIGHT, not_a_candidate_quiet, None),
    # the computing ops are the weight's: no missing weight op, no second call, no padding, no other reader
    (rules.NO_WEIGHT_OP, weight_norm_conv, None),
    (rules.NO_WEIGHT_OP, spectral_norm_linear, None),
    (rules.REUSED_MODULE, spectral_norm_linear, None),
    (rules.PADDING_MODE, weight_norm_conv, None),
    (rules.WEIGHT_USED_ELSEWHERE, weight_norm_conv, None),
    (rules.WEIGHT_USED_ELSEWHERE, spectral_norm_linear, None),
    (
        rules.WEIGHT_USED_ELSEWHERE,
        computed_weight_read_elsewhere,
        "conv: weight 'conv.weight_v' is also read by ReduceMean of <unknown>",
    ),
    (rules.SHARED_WEIGHT, shared_source_fires, "a: weight 'a.weight_v' is shared with b"),
    (rules.SHARED_WEIGHT, weight_norm_conv, None),
    (rules.SMALL_CIN_CHECK, weight_norm_conv, "conv: Cin = 3 <= 16"),
]


@pytest.mark.parametrize(
    ("check", "make", "expected"),
    CASES,
    ids=[f"{c.code}-{m.__name__}" for c, m, _ in CASES],
)
def test_check(check: Check, make: Callable[[], ExportedGraph], expected: str | None) -> None:
    found = findings(check, make(), ALL_TYPES if make in LATEST_GRAPHS else SUPPORTED_TYPES)
    if expected is None:
        assert found == []
    else:
        assert found, f"{check.name} did not fire"
        assert all(f.code == check.code for f in found)
        assert any(expected in f.reason for f in found), [f.reason for f in found]


def test_every_check_fires_and_stays_quiet_somewhere() -> None:
    fires = {c.code for c, _, expected in CASES if expected is not None}
    quiet = {c.code for c, _, expected in CASES if expected is None}
    codes = {c.code for c in REGISTRY}
    assert fires == codes
    assert quiet == codes


def test_codes_and_names_are_unique_and_documented() -> None:
    assert len({c.code for c in REGISTRY}) == len(REGISTRY)
    assert len({c.name for c in REGISTRY}) == len(REGISTRY)
    for check in REGISTRY:
        assert check.code.startswith("QS") and check.code[2:].isdigit()
        assert len(check.doc) > 40, f"{check.code} needs a docstring saying why it matters"


def test_computed_weight_has_the_shape_cin_and_sources_of_its_computation() -> None:
    index = index_graph(build_graph(weight_norm_conv()))
    (conv_op,) = index.by_name["conv"].ops
    assert conv_op.weight == "conv.weight_v"  # the source of the weight's shape, a parameter
    assert conv_op.weight_dims == (16, 3, 3, 3) and conv_op.cin == 3
    assert conv_op.more_weights == ("conv.weight_g",)
    assert layer_int4_blocker(index.by_name["conv"]) == int4_blocker(3, 1)
    linear = index_graph(build_graph(spectral_norm_linear())).by_name["fc"]
    # sigma's MatMul ops compute the weight: they are not calls of the Linear
    assert [op.op_type for op in linear.ops] == ["Gemm"]
    assert linear.ops[0].weight == "fc.weight_orig" and linear.ops[0].cin == 7


def test_a_shape_read_on_a_weights_path_is_no_source() -> None:
    # dynamo slices an RNN's gates with bounds read from a shape; the shape of another layer's output reads
    # no value of it, so that layer's weight is not a source of the RNN's
    nodes = [
        op("Gemm", ["x", "fc.weight"], ["y"], "fc", transB=1),
        op("Shape", ["y"], ["bounds"], "rnn"),
        op("Slice", ["rnn.weight_ih", "bounds", "bounds"], ["w"], "rnn"),
        op("LSTM", ["y", "w", "rnn.R", "rnn.B"], ["out"], "rnn", hidden_size=16, direction="forward"),
    ]
    inits = {"fc.weight": (16, 16), "rnn.weight_ih": (1, 64, 16), "rnn.R": (1, 64, 16), "rnn.B": (1, 128)}
    exported = make_graph(
        nodes, inits, [module("fc", "Linear"), module("rnn", "LSTM")], inputs={"x": (2, 16)}
    )
    index = index_graph(build_graph(exported), ALL_TYPES)
    (lstm,) = index.by_name["rnn"].ops
    assert lstm.weight == "rnn.weight_ih" and "fc.weight" not in lstm.more_weights
    assert findings(rules.SHARED_WEIGHT, exported, ALL_TYPES) == []


def test_shared_source_excludes_both_layers() -> None:
    found = findings(rules.SHARED_WEIGHT, shared_source_fires())
    assert sorted(f.layer for f in found) == ["a", "b"]


def test_shared_weight_excludes_both_layers() -> None:
    found = findings(rules.SHARED_WEIGHT, shared_fires())
    assert sorted(f.layer for f in found) == ["fc_a", "fc_b"]


def test_shared_weight_without_model_ties_trusts_the_graph() -> None:
    # a file analysed with no parameter table: one initializer read by two layers is a tie
    graph = shared_quiet_merged_by_value()
    unknown = ExportedGraph(
        graph.nodes, graph.initializers, graph.inputs, graph.modules, tied_parameters=None
    )
    assert sorted(f.layer for f in findings(rules.SHARED_WEIGHT, unknown)) == ["fc_a", "fc_b"]


def test_functional_call_is_attributed_to_the_caller_not_the_weight_owner() -> None:
    all_findings = run_checks(index_graph(build_graph(not_a_candidate_functional())))
    by_code = {(f.code, f.layer) for f in all_findings}
    assert ("QS001", "") in by_code  # the root made the Gemm
    assert ("QS101", "fc") in by_code  # fc itself never ran


def test_subclass_keeping_the_name_is_a_candidate_and_renamed_one_is_not() -> None:
    kept = op("Gemm", ["x", "a.weight"], ["y1"], "a", transB=1)
    renamed = op("Gemm", ["y1", "b.weight"], ["y2"], "b", transB=1)
    mods = [module("a", "Linear"), module("b", "NonDynamicallyQuantizableLinear", torch_class="Linear")]
    index = index_graph(
        build_graph(make_graph([kept, renamed], {"a.weight": (16, 16), "b.weight": (16, 16)}, mods))
    )
    assert index.by_name["a"].layer_type == "Linear"
    assert index.by_name["b"].layer_type is None
    # a class named Linear that is not torch.nn.Linear is no candidate either
    fake = module("c", "Linear", torch_class=None)
    index = index_graph(build_graph(make_graph([], {}, [fake])))
    assert index.by_name["c"].layer_type is None
