"""Config schema validation: validating equal layers once gives the same errors as validating each."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from analyzer import emit
from analyzer.emit import schema_errors


def _one_by_one(obj: Any) -> list[str]:
    found = schemas.validator(schemas.CONFIG_SCHEMA).iter_errors(obj)
    return sorted(f"{error.json_path}: {error.message}" for error in found)


_GOOD = {
    "retrain_enable": True,
    "retrain_data_config": {"algo": "ulq_quantize", "dst_type": "INT8"},
    "retrain_weight_config": {"algo": "arq_retrain", "channel_wise": False, "dst_type": "INT8"},
}
_KEYS = [*_GOOD, "algo", "dst_type", "channel_wise", "clip_max", "clip_min", "fixed_min", "extra"]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False)
    | st.sampled_from(["INT4", "INT8", "INT16", "ulq_quantize", "arq_retrain", "ulq_retrain", "x"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5),
    max_leaves=12,
)
_LAYERS = st.one_of(
    st.just(_GOOD),
    _VALUES,
    st.builds(lambda value, key: {**_GOOD, key: value}, _VALUES, st.sampled_from([*_GOOD, "x"])),
)
_NAMES = st.sampled_from(
    ["conv1", "a b", "layer1.0.fc", "it's", "version", "batch_num", "fakequant_precision_mode", "x", "y", "z"]
)


@settings(max_examples=300)
@given(st.dictionaries(_NAMES, _LAYERS, max_size=8))
def test_same_errors_as_one_by_one(obj: dict[str, Any]) -> None:
    assert schema_errors(obj) == _one_by_one(obj)


@given(_VALUES)
def test_same_errors_on_any_value(obj: Any) -> None:
    assert schema_errors(obj) == _one_by_one(obj)


def test_an_error_is_reported_for_every_equal_layer() -> None:
    bad = {**_GOOD, "retrain_data_config": {"algo": "ulq_quantize", "dst_type": "INT2"}}
    obj = {"version": 1, "batch_num": 1, "a": bad, "b": _GOOD, "c d": bad}
    errors = schema_errors(obj)
    assert errors == _one_by_one(obj)
    assert [error.split(":")[0] for error in errors] == [
        "$.a.retrain_data_config.dst_type",
        "$['c d'].retrain_data_config.dst_type",
    ]


@pytest.mark.parametrize(
    "obj",
    [
        {},
        [],
        {"version": 1},
        {"a": {}, "b": [], "c": {}},
        {"version": 1, "x y": {"q": [1, 2.5, {"z": "a\nb"}], "e": {}}, "é": {"k": "ü"}, "n": None},
        {f"layer{i}": {"retrain_enable": True, "cfg": {"algo": "ulq", "list": [i % 2]}} for i in range(6)},
    ],
    ids=["empty", "list", "scalar", "empty-values", "escapes", "repeated-layers"],
)
def test_dumps_is_json_dumps_with_amct_formatting(obj: Any) -> None:
    """`dumps` formats each distinct layer once; the text must stay exactly what `json.dumps` writes."""
    assert emit.dumps(obj) == json.dumps(obj, indent=4, separators=(",", ":"))
