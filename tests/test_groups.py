"""Distill groups (SPEC 11.3, 11.5) on hand-built graphs: every grouping rule, read in place without torch.

Each graph is a chain of ops with their modules (tests/graphs.py); `_groups` runs `analyzer.groups.find_groups`
with every Conv/Gemm/MatMul of a Conv2d/Linear module as a candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

from analyzer.errors import ConfigError
from analyzer.groups import (
    Groups,
    UserGroup,
    find_groups,
    folded_batchnorm,
    marked_kind,
    unknown_classes,
)
from graph.build import build_graph
from graph.ir import ModuleInfo, NodeRecord
from tests.graphs import make_graph, module, op

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


def _graph(
    nodes: Sequence[NodeRecord], modules: Iterable[ModuleInfo]
) -> tuple[object, dict[str, ModuleInfo]]:
    exported = make_graph(nodes, {}, modules)
    return build_graph(exported), {info.name: info for info in exported.modules}


def _groups(
    nodes: Sequence[NodeRecord],
    modules: Iterable[ModuleInfo],
    group_size: int = 1,
    user: Sequence[tuple[str, str]] = (),
) -> Groups:
    graph, table = _graph(nodes, modules)
    starts: dict[str, object] = {}
    for key, data in graph.nodes(data=True):  # type: ignore[attr-defined]
        owner = data.get("module")
        if data.get("op_type") in WEIGHT_OPS and owner and marked_kind(table[owner]) in ("Conv2d", "Linear"):
            starts.setdefault(owner, key)
    starts = dict(sorted(starts.items(), key=lambda item: list(table).index(item[0])))
    return find_groups(graph, table, starts, group_size, [UserGroup(s, e) for s, e in user])


def conv(name: str, x: str, y: str) -> NodeRecord:
    return op("Conv", [x], [y], name)


def bn(name: str, x: str, y: str) -> NodeRecord:
    return op("BatchNormalization", [x], [y], name)


CONV = module("conv", "Conv2d")
BN2D = module("bn", "BatchNorm2d")
RELU = module("relu", "ReLU")


# --- units (rules 1-5) ---------------------------------------------------------------------------------------


def test_conv_batchnorm2d_relu_is_one_unit() -> None:
    nodes = [conv("conv", "x", "a"), bn("bn", "a", "b"), op("Relu", ["b"], ["c"], "relu")]
    found = _groups(nodes, [CONV, BN2D, RELU])
    assert found.groups == (("conv", "bn", "relu"),)
    assert found.member_of == {"conv": 0}
    assert "after the activation Relu" in found.unit_end["conv"]


@pytest.mark.parametrize(
    ("bn_module", "why"),
    [
        (module("bn", "BatchNorm1d"), "is a BatchNorm1d, not a BatchNorm2d"),
        (module("bn", "BatchNorm3d"), "is a BatchNorm3d, not a BatchNorm2d"),
        # timm's BatchNormAct2d: a BatchNorm2d subclass; the BN test is on the exact class name
        (module("bn", "BatchNormAct2d", "BatchNorm2d"), "is a BatchNormAct2d, not a BatchNorm2d"),
    ],
    ids=["BatchNorm1d", "BatchNorm3d", "subclass"],
)
def test_a_batchnorm_other_than_batchnorm2d_leaves_the_layer_in_no_group(
    bn_module: ModuleInfo, why: str
) -> None:
    nodes = [
        conv("conv", "x", "a"),
        bn("bn", "a", "b"),
        op("Relu", ["b"], ["c"], "relu"),
        conv("conv2", "c", "d"),
    ]
    found = _groups(nodes, [CONV, bn_module, RELU, module("conv2", "Conv2d")])
    assert found.groups == (("conv2",),)
    assert "conv" not in found.member_of
    assert why in found.why_none["conv"]


def test_a_reused_batchnorm_leaves_every_layer_before_it_in_no_group() -> None:
    nodes = [
        conv("conv_a", "x", "a"),
        bn("bn", "a", "b"),
        conv("conv_b", "b", "c"),
        bn("bn", "c", "d"),
        conv("conv_c", "d", "e"),
    ]
    modules = [module("conv_a", "Conv2d"), module("conv_b", "Conv2d"), BN2D, module("conv_c", "Conv2d")]
    found = _groups(nodes, modules)
    assert found.groups == (("conv_c",),)
    assert set(found.why_none) == {"conv_a", "conv_b"}
    assert "called 2 times (reused)" in found.why_none["conv_a"]


@pytest.mark.parametrize(
    ("op_type", "class_name"),
    [
        ("Relu", "ReLU"),
        ("LeakyRelu", "LeakyReLU"),
        ("Sigmoid", "Sigmoid"),
        ("Tanh", "Tanh"),
        ("Softmax", "Softmax"),
    ],
)
def test_activations_that_join_a_unit(op_type: str, class_name: str) -> None:
    nodes = [conv("conv", "x", "a"), op(op_type, ["a"], ["b"], "act"), conv("conv2", "b", "c")]
    found = _groups(nodes, [CONV, module("act", class_name), module("conv2", "Conv2d")])
    assert found.groups == (("conv", "act"), ("conv2",))


@pytest.mark.parametrize(
    ("op_type", "class_name"), [("Clip", "ReLU6"), ("Gelu", "GELU"), ("MaxPool", "MaxPool2d")]
)
def test_activations_that_end_a_unit(op_type: str, class_name: str) -> None:
    nodes = [conv("conv", "x", "a"), op(op_type, ["a"], ["b"], "act")]
    found = _groups(nodes, [CONV, module("act", class_name)])
    assert found.groups == (("conv",),)
    assert op_type in found.unit_end["conv"]


def test_activation_after_the_batchnorm_joins_and_clip_after_it_does_not() -> None:
    nodes = [
        conv("c1", "x", "a"),
        bn("bn1", "a", "b"),
        op("Sigmoid", ["b"], ["c"], "sig"),
        conv("c2", "c", "d"),
        bn("bn2", "d", "e"),
        op("Clip", ["e"], ["f"], "relu6"),
    ]
    modules = [
        module("c1", "Conv2d"),
        module("bn1", "BatchNorm2d"),
        module("sig", "Sigmoid"),
        module("c2", "Conv2d"),
        module("bn2", "BatchNorm2d"),
        module("relu6", "ReLU6"),
    ]
    assert _groups(nodes, modules).groups == (("c1", "bn1", "sig"), ("c2", "bn2"))


def test_a_batchnorm_whose_output_is_used_twice_ends_the_unit_after_it() -> None:
    nodes = [
        conv("conv", "x", "a"),
        bn("bn", "a", "b"),
        op("Relu", ["b"], ["c"], "relu"),
        op("Add", ["b", "c"], ["d"]),
    ]
    found = _groups(nodes, [CONV, BN2D, RELU])
    assert found.groups == (("conv", "bn"),)
    assert "used 2 times" in found.unit_end["conv"]


def test_a_branch_point_makes_a_unit_of_the_layer_alone() -> None:
    nodes = [
        conv("stem", "x", "s"),
        op("Relu", ["s"], ["r"], "relu"),
        conv("left", "s", "l"),
    ]
    found = _groups(nodes, [module("stem", "Conv2d"), RELU, module("left", "Conv2d")])
    assert found.groups == (("stem",), ("left",))
    assert "a branch point" in found.unit_end["stem"]


def test_a_functional_activation_joins_the_unit_but_is_left_out_of_the_group() -> None:
    """SPEC 11.6: AMCT writes null for it; QuantScope leaves it out and reports it."""
    nodes = [
        conv("conv", "x", "a"),
        bn("bn", "a", "b"),
        op("Relu", ["b"], ["c"], None, name="/Relu"),  # F.relu in the root module
        conv("conv2", "c", "d"),
        op(
            "Sigmoid", ["d"], ["e"], "block", name="/block/Sigmoid"
        ),  # torch.sigmoid inside an unmarked module
        conv("conv3", "e", "f"),
    ]
    modules = [
        CONV,
        BN2D,
        module("conv2", "Conv2d"),
        module("block", "BasicConv2d", None),
        module("conv3", "Conv2d"),
    ]
    found = _groups(nodes, modules, group_size=2)
    # the functional op still joins: the cascade continues from it
    assert found.groups == (("conv", "bn", "conv2"), ("conv3",))
    assert [(item.op, item.after, item.group) for item in found.left_out] == [
        ("/Relu", "bn", 0),
        ("/block/Sigmoid", "conv2", 0),
    ]


def test_a_linear_on_nd_input_with_bias_is_a_unit_alone_and_ends_a_cascade() -> None:
    nodes = [
        op("MatMul", ["x"], ["m"], "fc"),
        op("Add", ["m"], ["a"], "fc"),
        op("Relu", ["a"], ["r"], "relu"),
        op("MatMul", ["r"], ["m2"], "fc2"),
    ]
    found = _groups(nodes, [module("fc", "Linear"), RELU, module("fc2", "Linear")], group_size=3)
    assert found.groups == (("fc",), ("fc2",))
    assert "bias Add" in found.unit_end["fc"]


def test_a_shared_activation_module_appears_in_every_unit_it_follows() -> None:
    nodes = [
        conv("c1", "x", "a"),
        op("Relu", ["a"], ["b"], "relu"),
        conv("c2", "b", "c"),
        op("Relu", ["c"], ["d"], "relu"),
    ]
    found = _groups(nodes, [module("c1", "Conv2d"), RELU, module("c2", "Conv2d")])
    assert found.groups == (("c1", "relu"), ("c2", "relu"))


@pytest.mark.parametrize(
    ("relu", "named"),
    [
        (module("relu", "MyReLU", "ReLU"), True),  # a ReLU subclass carries its name (isinstance)
        (module("relu", "ReLU", None), True),  # a mapping written before activations were recorded
        (module("relu", "MyAct", None), False),  # not a marked kind: functional
    ],
    ids=["subclass", "old-mapping", "unmarked"],
)
def test_which_activation_modules_carry_their_name(relu: ModuleInfo, named: bool) -> None:
    nodes = [conv("conv", "x", "a"), op("Relu", ["a"], ["b"], "relu")]
    found = _groups(nodes, [CONV, relu])
    assert found.groups == ((("conv", "relu"),) if named else (("conv",),))
    assert bool(found.left_out) is not named


# --- cascades --------------------------------------------------------------------------------------------------


def _chain(length: int) -> tuple[list[NodeRecord], list[ModuleInfo]]:
    nodes, modules, tensor = [], [], "x"
    for number in range(length):
        nodes += [
            conv(f"c{number}", tensor, f"a{number}"),
            op("Relu", [f"a{number}"], [f"r{number}"], f"r{number}"),
        ]
        modules += [module(f"c{number}", "Conv2d"), module(f"r{number}", "ReLU")]
        tensor = f"r{number}"
    return nodes, modules


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, [["c0", "r0"], ["c1", "r1"], ["c2", "r2"], ["c3", "r3"], ["c4", "r4"]]),
        (2, [["c0", "r0", "c1", "r1"], ["c2", "r2", "c3", "r3"], ["c4", "r4"]]),
        (3, [["c0", "r0", "c1", "r1", "c2", "r2"], ["c3", "r3", "c4", "r4"]]),
        (9, [["c0", "r0", "c1", "r1", "c2", "r2", "c3", "r3", "c4", "r4"]]),
    ],
)
def test_cascades_chain_up_to_group_size_units(size: int, expected: list[list[str]]) -> None:
    nodes, modules = _chain(5)
    assert [list(g) for g in _groups(nodes, modules, group_size=size).groups] == expected


def test_a_cascade_stops_at_a_layer_without_a_unit_and_at_a_branch() -> None:
    nodes = [
        conv("c0", "x", "a"),
        conv("c1", "a", "b"),
        bn("bn1d", "b", "c"),  # c1 has no unit
        conv("c2", "c", "d"),
        conv("c3", "d", "e"),
        op("Add", ["e", "e"], ["f"]),
        conv("c4", "e", "g"),  # c3's output is used twice: c4 does not continue c3's cascade
    ]
    modules = [
        module("c0", "Conv2d"),
        module("c1", "Conv2d"),
        module("bn1d", "BatchNorm1d"),
        module("c2", "Conv2d"),
        module("c3", "Conv2d"),
        module("c4", "Conv2d"),
    ]
    found = _groups(nodes, modules, group_size=4)
    assert found.groups == (("c0",), ("c2", "c3"), ("c4",))
    assert "c1" in found.why_none


def test_no_group_at_all_is_an_error() -> None:
    nodes = [conv("conv", "x", "a"), bn("bn", "a", "b")]
    with pytest.raises(
        ConfigError, match=r"^Not found distill group in graph, please check the model or cfg file\.$"
    ):
        _groups(nodes, [CONV, module("bn", "BatchNorm1d")])


# --- user groups (SPEC 11.5) -----------------------------------------------------------------------------------


def test_a_user_group_is_its_one_route_and_the_rest_is_automatic() -> None:
    nodes, modules = _chain(4)
    found = _groups(nodes, modules, user=[("c1", "c2")])
    assert found.groups == (("c0", "r0"), ("c1", "r1", "c2"), ("c3", "r3"))
    assert found.user == (1,)
    assert found.member_of["c1"] == found.member_of["c2"] == 1
    # r2 follows the user group and is in no group: reported
    assert found.stray_activations == ("r2",)


def test_groups_are_sorted_by_graph_position() -> None:
    nodes, modules = _chain(3)
    modules = list(reversed(modules))  # registration order is not graph order
    found = _groups(nodes, modules, user=[("c2", "r2")])
    assert found.groups == (("c0", "r0"), ("c1", "r1"), ("c2", "r2"))


BRANCHES = [
    conv("stem", "x", "s"),
    conv("left", "s", "l"),
    conv("right", "s", "r"),
    op("Add", ["l", "r"], ["a"]),
    conv("merge", "a", "m"),
    op("MaxPool", ["m"], ["p"], "pool"),
    conv("out", "p", "o"),
]
BRANCH_MODULES = [module(n, "Conv2d") for n in ("stem", "left", "right", "merge", "out")] + [
    module("pool", "MaxPool2d")
]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (
            "stem",
            "merge",
            r"^Can not find an only route from start_layer_name\(stem\) to end_layer_name\(merge\)",
        ),
        (
            "merge",
            "stem",
            r"^Can not find an only route from start_layer_name\(merge\) to end_layer_name\(stem\)",
        ),
        ("stem", "nowhere", r"only route from start_layer_name\(stem\) to end_layer_name\(nowhere\)"),
        (
            "left",
            "merge",
            r"^layer \[None\] in distill_group\(start_layer_name: left, end_layer_name: merge\) not exist or not a "
            r"nn\.Module object\.",
        ),
        (  # a MaxPool2d is not a marked kind: its op carries no name
            "merge",
            "out",
            r"^layer \[None\] in distill_group\(start_layer_name: merge, end_layer_name: out\) not exist",
        ),
    ],
    ids=["two-routes", "wrong-order", "unknown-end", "functional-op", "unmarked-module"],
)
def test_user_group_errors(start: str, end: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _groups(BRANCHES, BRANCH_MODULES, user=[(start, end)])


def test_user_group_through_a_named_module_of_an_unsupported_type_is_refused() -> None:
    """ReLU6 carries its name (a marked kind) but is not among the types a user group may hold."""
    nodes = [conv("c1", "x", "a"), op("Clip", ["a"], ["b"], "relu6"), conv("c2", "b", "c")]
    modules = [module("c1", "Conv2d"), module("relu6", "ReLU6"), module("c2", "Conv2d")]
    with pytest.raises(
        ConfigError,
        match=r"^layer \[relu6\] in distill_group\(start_layer_name: c1, end_layer_name: c2\) is not a supported "
        r"type\['Conv2d', 'Linear', 'BatchNorm2d', 'ReLU', 'LeakyReLU', 'Sigmoid', 'Tanh', 'Softmax'\]$",
    ):
        _groups(nodes, modules, user=[("c1", "c2")])


def test_user_group_through_a_reused_batchnorm_is_refused() -> None:
    nodes = [conv("c1", "x", "a"), bn("bn", "a", "b"), conv("c2", "b", "c"), bn("bn", "c", "d")]
    modules = [module("c1", "Conv2d"), BN2D, module("c2", "Conv2d")]
    with pytest.raises(ConfigError, match=r"^Not support to distill reused module for bn$"):
        _groups(nodes, modules, user=[("c1", "c2")])


def test_a_reused_start_layer_is_refused_before_the_route() -> None:
    nodes = [conv("c1", "x", "a"), conv("c1", "a", "b"), op("Relu", ["b"], ["c"], "relu")]
    with pytest.raises(
        ConfigError, match=r"^Not support module c1 be reused as a start layer of distill_group$"
    ):
        _groups(nodes, [module("c1", "Conv2d"), RELU], user=[("c1", "nowhere")])


def test_two_user_groups_sharing_a_module_are_refused() -> None:
    nodes, modules = _chain(3)
    with pytest.raises(
        ConfigError,
        match=r"^There is an intersection between distill_group\(start_layer_name: c0, end_layer_name: c1\) and "
        r"distill_group\(start_layer_name: c1, end_layer_name: c2\)$",
    ):
        _groups(nodes, modules, user=[("c0", "c1"), ("c1", "c2")])


# --- graphs the groups cannot be read from ---------------------------------------------------------------------


def test_batchnorm_folded_into_the_conv_is_refused() -> None:
    """The dynamo optimizer gives the fused Conv the BatchNorm's scope; no BatchNormalization node is left."""
    graph, table = _graph([conv("bn", "x", "a"), op("Relu", ["a"], ["b"], "relu")], [CONV, BN2D, RELU])
    why = folded_batchnorm(graph, table)  # type: ignore[arg-type]
    assert why is not None and "bn have no BatchNormalization node" in why and "folded" in why


def test_batchnorm_kept_is_not_refused() -> None:
    unused = module("bn_unused", "BatchNorm2d")  # registered, never called: no sign of a fold
    graph, table = _graph([conv("conv", "x", "a"), bn("bn", "a", "b")], [CONV, BN2D, unused])
    assert folded_batchnorm(graph, table) is None  # type: ignore[arg-type]


def test_modules_of_unknown_class_are_refused() -> None:
    """A TorchScript file without its mapping names the modules of its Relu/BatchNormalization ops, not their
    classes: whether they join a unit cannot be said."""
    graph, table = _graph(
        [conv("conv", "x", "a"), op("Relu", ["a"], ["b"], "relu")], [CONV, module("relu", "?", None)]
    )
    why = unknown_classes(graph, table)  # type: ignore[arg-type]
    assert why is not None and "relu (Relu" in why and "mapping file" in why
    graph, table = _graph([conv("conv", "x", "a"), op("Relu", ["a"], ["b"], "relu")], [CONV, RELU])
    assert unknown_classes(graph, table) is None  # type: ignore[arg-type]
