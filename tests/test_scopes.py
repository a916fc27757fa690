"""The dynamo scope parser: the fast path agrees with `ast.literal_eval` on every input."""

from __future__ import annotations

import ast

from hypothesis import example, given
from hypothesis import strategies as st

from graph.scopes import CLASS_HIERARCHY, NAME_SCOPES, _literal_list, dynamo_class_paths, dynamo_owner


def _reference(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return tuple(value)


@given(st.lists(st.text()))
def test_repr_of_a_list_of_strings(items: list[str]) -> None:
    assert _literal_list(repr(items)) == _reference(repr(items)) == (tuple(items) if items else ())


_PIECES = ["'", "', '", "a", "b.0", "", "\\", '"', ", ", "['", "']", "[", "]", " ", "\n", "é"]


@given(st.lists(st.sampled_from(_PIECES)).map("".join))
@example("['\n']")  # a raw newline: no repr writes it, and it ends the literal early
def test_near_misses(text: str) -> None:
    assert _literal_list(text) == _reference(text)


@given(st.text())
def test_any_text(text: str) -> None:
    assert _literal_list(text) == _reference(text)


def test_owner_and_classes_from_metadata() -> None:
    metadata = {
        NAME_SCOPES: "['', 'layer1', 'layer1.0', 'layer1.0.conv1', 'conv2d_1']",
        CLASS_HIERARCHY: "['m.Net', 'torch.nn.modules.container.Sequential', 'm.Block', "
        "'torch.nn.modules.conv.Conv2d', 'aten.conv2d.default']",
    }
    assert dynamo_owner(metadata) == ("layer1.0.conv1", "Conv2d")
    assert dynamo_class_paths(metadata) == {
        "": "m.Net",
        "layer1": "torch.nn.modules.container.Sequential",
        "layer1.0": "m.Block",
        "layer1.0.conv1": "torch.nn.modules.conv.Conv2d",
    }
    assert dynamo_owner({NAME_SCOPES: "[\"it's\", 'x']"}) == ("it's", None)
    assert dynamo_owner({}) == (None, None)
