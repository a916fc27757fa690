"""`schemas.quick.conforms` against jsonschema: it may say "cannot tell", never "valid" for an invalid config.

The library path skips jsonschema when the quick check says a generated config conforms, so the one-sided
promise is what keeps every written config schema-valid; and it must say yes to the configs QuantScope writes,
or the fast path would never be taken.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas.quick import conforms

SCHEMA = schemas.load_schema(schemas.CONFIG_SCHEMA)
VALIDATOR = schemas.validator(schemas.CONFIG_SCHEMA)
RESERVED = frozenset(SCHEMA["properties"])  # top-level keys that are no layer names
GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))


def _valid(instance: Any) -> bool:
    return not any(True for _ in VALIDATOR.iter_errors(instance))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_every_golden_config_takes_the_fast_path(path: Path) -> None:
    config = json.loads(path.read_text(encoding="utf-8"))
    assert _valid(config)
    assert conforms(config, SCHEMA)


_clips = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {
            "clip_max": st.floats(min_value=0.01, max_value=100),
            "clip_min": st.floats(min_value=-100, max_value=-0.01),
        }
    ),
)
_data = st.builds(
    lambda dst, clips, fixed: {"algo": "ulq_quantize", **clips, **fixed, "dst_type": dst},
    st.sampled_from(["INT4", "INT8", "INT16"]),
    _clips,
    st.one_of(st.just({}), st.builds(lambda b: {"fixed_min": b}, st.booleans())),
)
_weight = st.fixed_dictionaries(
    {
        "algo": st.sampled_from(["arq_retrain", "ulq_retrain"]),
        "channel_wise": st.booleans(),
        "dst_type": st.sampled_from(["INT4", "INT8"]),
    }
)
_layer = st.fixed_dictionaries(
    {"retrain_enable": st.booleans(), "retrain_data_config": _data, "retrain_weight_config": _weight}
)
_config = st.builds(
    lambda batch, layers, fp16: {
        "version": 1,
        **({"fakequant_precision_mode": "FORCE_FP16_QUANT"} if fp16 else {}),
        "batch_num": batch,
        **layers,
    },
    st.integers(min_value=1, max_value=2**31),
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda name: name not in RESERVED), _layer, max_size=4
    ),
    st.booleans(),
)
# values that probe the edges of JSON Schema's type and equality rules
_odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([1.0, 0.0, -0.0, 2.5, math.nan, math.inf, -math.inf]),
    st.sampled_from(["", "INT8", "INT4", "ulq_quantize", "arq_retrain", "FORCE_FP16_QUANT", "1"]),
    st.just([]),
    st.just({}),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    return found


def _mutate(config: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value
    *parents, last = path
    node = config
    for key in parents:
        node = node[key]
    if action == "drop":
        del node[last]
    elif action == "add" and isinstance(node[last], dict):
        node[last]["unexpected"] = value
    else:
        node[last] = value
    return config


@settings(max_examples=300, deadline=None)
@given(_config)
def test_generated_configs_conform(config: dict[str, Any]) -> None:
    assert _valid(config)
    assert conforms(config, SCHEMA)


@settings(max_examples=600, deadline=None)
@given(_config, st.data())
def test_quick_check_never_says_yes_to_an_invalid_config(config: dict[str, Any], data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(_paths(config)))
    action = data.draw(st.sampled_from(["set", "drop", "add"]))
    value = data.draw(_odd)
    mutated = _mutate(json.loads(json.dumps(config)), path, action, value)
    if conforms(mutated, SCHEMA):
        assert _valid(mutated), f"quick check accepted an invalid config: {mutated!r}"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
        {"type": "string", "minLength": 2},
        {"anyOf": [{"type": "string"}]},
        {"$ref": "https://elsewhere/schema.json"},
    ],
    ids=["patternProperties", "minLength", "anyOf", "remote-ref"],
)
def test_an_unknown_keyword_means_cannot_tell(schema: dict[str, Any]) -> None:
    assert not conforms({"a": 1} if schema.get("type") == "object" else "x", schema)


# --- the other kinds' schemas: the calibration config (create_quant_config: arrays, oneOf branches told apart by
# a const) and the distillation config (create_distill_config: the distill_group lists, clip bounds in pairs) ---

GOLDEN = Path(__file__).parent / "golden"
# kind: (its schema, values worth putting anywhere in one of its configs)
KIND_SCHEMAS: dict[str, tuple[str, list[Any]]] = {
    "ptq": (schemas.PTQ_CONFIG_SCHEMA, ["ifmr", "hfmg", "arq_quantize", "ada_quantize", 4096, 0.5, [1]]),
    "distill": (
        "distill_config.schema.json",
        ["ulq_distill", "INT4", "INT16", [], [[]], [["conv"], []], [1], 0],
    ),
}
KIND_GOLDEN = [
    pytest.param(kind, path, id=f"{kind}-{path.stem}")
    for kind in KIND_SCHEMAS
    for path in sorted((GOLDEN / kind).glob("*.json"))
]


@pytest.mark.parametrize(("kind", "path"), KIND_GOLDEN)
def test_every_golden_config_of_another_kind_takes_the_fast_path(kind: str, path: Path) -> None:
    name = KIND_SCHEMAS[kind][0]
    config = json.loads(path.read_text(encoding="utf-8"))
    assert not any(True for _ in schemas.validator(name).iter_errors(config))
    assert conforms(config, schemas.load_schema(name))


@settings(max_examples=600, deadline=None)
@pytest.mark.parametrize("kind", list(KIND_SCHEMAS))
@given(data=st.data())
def test_quick_check_never_says_yes_to_an_invalid_config_of_another_kind(
    kind: str, data: st.DataObject
) -> None:
    name, values = KIND_SCHEMAS[kind]
    path = data.draw(st.sampled_from(sorted((GOLDEN / kind).glob("*.json"))))
    config = json.loads(path.read_text(encoding="utf-8"))
    where = data.draw(st.sampled_from(_paths(config)))
    action = data.draw(st.sampled_from(["set", "drop", "add"]))
    mutated = _mutate(config, where, action, data.draw(st.one_of(_odd, st.sampled_from(values))))
    if conforms(mutated, schemas.load_schema(name)):
        assert not any(True for _ in schemas.validator(name).iter_errors(mutated)), (
            f"accepted an invalid config: {mutated!r}"
        )
