"""Property tests of the simple config: generated valid configs always give schema-valid JSON, and the
resolution obeys SPEC 5.1/5.2 (skip lists, override_layer_configs > override_layer_types > global, no
inheritance from the global configs), checked against an independent model of those rules.

Configs are generated as plain Python records, written to protobuf text format and parsed back, so the
parser is exercised too. No model is exported: `resolve_simple` runs on generated layer lists.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.emit import render, schema_errors
from analyzer.errors import ConfigError
from analyzer.resolve import QuantLayer, resolve_simple
from analyzer.simple_config import AllLayersDisabledError, parse_simple_config

TYPES = ("Linear", "Conv2d", "ConvTranspose2d")
CHANNEL_WISE_DEFAULT = {"Linear": False, "Conv2d": True, "ConvTranspose2d": True}
# (data, weight) dst_type pairs a config part may carry (None: the field is not written)
VALID_PAIRS = (
    (None, None),
    ("INT8", None),
    ("INT16", None),
    (None, "INT4"),
    ("INT8", "INT8"),
    ("INT16", "INT8"),
    ("INT8", "INT4"),
    (None, "INT8"),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Data:
    clip: tuple[float, float] | None
    fixed_min: bool | None
    dst_type: str | None

    def text(self) -> str:
        body = ""
        if self.clip is not None:
            body += f"clip_max_min {{ clip_max: {self.clip[0]!r} clip_min: {self.clip[1]!r} }} "
        if self.fixed_min is not None:
            body += f"fixed_min: {str(self.fixed_min).lower()} "
        if self.dst_type is not None:
            body += f"dst_type: {self.dst_type} "
        return f"retrain_data_quant_config {{ ulq_quantize {{ {body}}} }}"


@dataclass(frozen=True)
class Weight:
    algo: str | None
    channel_wise: bool | None
    dst_type: str | None

    def text(self) -> str:
        if self.algo is None:
            return "retrain_weight_quant_config { }"
        body = ""
        if self.channel_wise is not None:
            body += f"channel_wise: {str(self.channel_wise).lower()} "
        if self.dst_type is not None:
            body += f"dst_type: {self.dst_type} "
        return f"retrain_weight_quant_config {{ {self.algo} {{ {body}}} }}"


@dataclass(frozen=True)
class Part:
    data: Data | None
    weight: Weight | None

    def text(self) -> str:
        return " ".join(p.text() for p in (self.data, self.weight) if p is not None)


@dataclass(frozen=True)
class Generated:
    layers: tuple[QuantLayer, ...]
    batch_num: int | None
    fp16: bool
    global_part: Part
    skip_layers: tuple[tuple[str, str], ...]  # (field, name)
    skip_types: tuple[tuple[str, str], ...]
    layer_overrides: dict[str, Part]
    type_overrides: dict[str, Part]

    def text(self) -> str:
        lines = []
        if self.batch_num is not None:
            lines.append(f"batch_num: {self.batch_num}")
        if self.fp16:
            lines.append("fakequant_precision_mode: FORCE_FP16_QUANT")
        lines.append(self.global_part.text())
        lines += [f'{field}: "{value}"' for field, value in self.skip_layers + self.skip_types]
        lines += [
            f'override_layer_types {{ layer_type: "{t}" {p.text()} }}' for t, p in self.type_overrides.items()
        ]
        lines += [
            f'override_layer_configs {{ layer_name: "{n}" {p.text()} }}'
            for n, p in self.layer_overrides.items()
        ]
        return "\n".join(lines) + "\n"


float32_positive = st.floats(min_value=2.0**-20, max_value=2.0**20, width=32, allow_subnormal=False)


@st.composite
def parts(draw: st.DrawFn, allow_channel_wise_true: bool) -> Part:
    data_dst, weight_dst = draw(st.sampled_from(VALID_PAIRS))
    data = None
    if draw(st.booleans()) or data_dst is not None:
        clip = None
        if draw(st.booleans()):
            clip = (draw(float32_positive), -draw(float32_positive))
        data = Data(clip, draw(st.none() | st.booleans()), data_dst)
    weight = None
    if draw(st.booleans()) or weight_dst is not None:
        algo: str | None = draw(st.sampled_from(["arq_retrain", "ulq_retrain"]))
        if weight_dst is None:
            algo = draw(st.sampled_from([None, algo]))
        channel_wise = draw(st.none() | (st.booleans() if allow_channel_wise_true else st.just(False)))
        weight = Weight(algo, channel_wise if algo else None, weight_dst if algo else None)
    return Part(data, weight)


names = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[0-9a-z_]{1,4}){0,2}", fullmatch=True)


@st.composite
def configs(draw: st.DrawFn) -> Generated:
    layer_names = draw(st.lists(names, min_size=1, max_size=8, unique=True))
    layers = tuple(QuantLayer(n, draw(st.sampled_from(TYPES))) for n in layer_names)
    by_type = {layer.name: layer.layer_type for layer in layers}
    type_overrides = {
        t: draw(parts(allow_channel_wise_true=t != "Linear"))
        for t in draw(st.lists(st.sampled_from(TYPES), unique=True, max_size=3))
    }
    layer_overrides = {
        n: draw(parts(allow_channel_wise_true=by_type[n] != "Linear"))
        for n in draw(st.lists(st.sampled_from(layer_names), unique=True, max_size=len(layer_names)))
    }
    # the global config may set channel_wise: true only when no Linear layer ends up with it
    linear_uses_global = any(
        lt == "Linear" and n not in layer_overrides and "Linear" not in type_overrides
        for n, lt in by_type.items()
    )
    global_part = draw(parts(allow_channel_wise_true=not linear_uses_global))
    skip_fields = st.sampled_from(["skip_layers", "quant_skip_layers"])
    skip_layers = tuple(draw(st.lists(st.tuples(skip_fields, st.sampled_from(layer_names)), max_size=6)))
    type_fields = st.sampled_from(["skip_layer_types", "quant_skip_types"])
    skip_types = tuple(draw(st.lists(st.tuples(type_fields, st.sampled_from(TYPES)), max_size=3)))
    return Generated(
        layers,
        draw(st.none() | st.integers(min_value=1, max_value=2**32 - 1)),
        draw(st.booleans()),
        global_part,
        skip_layers,
        skip_types,
        layer_overrides,
        type_overrides,
    )


def _f32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def expected_layer(
    gen: Generated, layer: QuantLayer
) -> tuple[bool, str, dict[str, object], dict[str, object]]:
    """The SPEC 5.1 model: (retrain_enable, source, data config, weight config) of one layer."""
    skipped = any(v == layer.name for _, v in gen.skip_layers) or any(
        v == layer.layer_type for _, v in gen.skip_types
    )
    if layer.name in gen.layer_overrides:
        part, source, enable = gen.layer_overrides[layer.name], "override_layer_configs", True
    elif layer.layer_type in gen.type_overrides:
        part, source, enable = gen.type_overrides[layer.layer_type], "override_layer_types", True
    else:
        part, enable = gen.global_part, not skipped
        source = "global" if part.data or part.weight else "default"
    data: dict[str, object] = {"algo": "ulq_quantize"}
    if part.data is not None and part.data.clip is not None:
        data["clip_max"], data["clip_min"] = _f32(part.data.clip[0]), _f32(part.data.clip[1])
    if part.data is not None and part.data.fixed_min is not None:
        data["fixed_min"] = part.data.fixed_min
    data["dst_type"] = (part.data.dst_type if part.data else None) or "INT8"
    weight = part.weight or Weight(None, None, None)
    channel_wise = (
        CHANNEL_WISE_DEFAULT[layer.layer_type] if weight.channel_wise is None else weight.channel_wise
    )
    weight_config: dict[str, object] = {
        "algo": weight.algo or "arq_retrain",
        "channel_wise": channel_wise,
        "dst_type": weight.dst_type or "INT8",
    }
    return enable, source, data, weight_config


@PROPERTY
@given(configs())
def test_valid_configs_give_schema_valid_json_resolved_by_priority(gen: Generated) -> None:
    simple = parse_simple_config(gen.text(), "generated.cfg")
    expected = {layer.name: expected_layer(gen, layer) for layer in gen.layers}
    if not any(enable for enable, *_ in expected.values()):
        with pytest.raises(AllLayersDisabledError, match="no layer retrain enabled"):
            resolve_simple(gen.layers, simple, {})
        return
    resolved = resolve_simple(gen.layers, simple, {})
    text = render(resolved)  # raises when the JSON breaks the schema
    obj = json.loads(text)
    assert schema_errors(obj) == []
    assert list(obj)[:1] == ["version"] and obj["batch_num"] == (gen.batch_num or 1)
    assert ("fakequant_precision_mode" in obj) == gen.fp16
    assert [k for k in obj if isinstance(obj[k], dict)] == [layer.name for layer in gen.layers]
    for setting in resolved.layers:
        enable, source, data, weight = expected[setting.name]
        assert setting.retrain_enable is enable
        assert setting.source == source
        assert obj[setting.name]["retrain_data_config"] == data
        assert obj[setting.name]["retrain_weight_config"] == weight


@PROPERTY
@given(configs())
def test_skip_cancelled_by_override_is_noted_exactly_when_it_happens(gen: Generated) -> None:
    simple = parse_simple_config(gen.text(), "generated.cfg")
    try:
        resolved = resolve_simple(gen.layers, simple, {})
    except AllLayersDisabledError:
        return
    noted = {layer for layer, note in resolved.notes if "is cancelled by" in note}
    expected = set()
    for layer in gen.layers:
        skipped = any(v == layer.name for _, v in gen.skip_layers)
        skipped = skipped or any(v == layer.layer_type for _, v in gen.skip_types)
        overridden = layer.name in gen.layer_overrides or layer.layer_type in gen.type_overrides
        if skipped and overridden:
            expected.add(layer.name)
    assert noted == expected


@PROPERTY
@given(configs(), names)
def test_an_unknown_name_is_always_rejected_by_name(gen: Generated, extra: str) -> None:
    known = {layer.name for layer in gen.layers}
    while extra in known:
        extra += "_x"
    text = gen.text() + f'quant_skip_layers: "{extra}"\n'
    with pytest.raises(ConfigError) as info:
        resolve_simple(gen.layers, parse_simple_config(text, "generated.cfg"), {})
    assert f"quant_skip_layers: {extra!r} is not a quantizable layer" in str(info.value)


@PROPERTY
@given(configs())
def test_global_channel_wise_true_reaching_a_linear_is_rejected(gen: Generated) -> None:
    linear = [
        layer.name
        for layer in gen.layers
        if layer.layer_type == "Linear"
        and layer.name not in gen.layer_overrides
        and "Linear" not in gen.type_overrides
    ]
    global_part = Part(gen.global_part.data, Weight("arq_retrain", True, None))
    text = Generated(
        gen.layers,
        gen.batch_num,
        gen.fp16,
        global_part,
        (),
        (),
        gen.layer_overrides,
        gen.type_overrides,
    ).text()
    simple = parse_simple_config(text, "generated.cfg")
    if not linear:
        resolve_simple(gen.layers, simple, {})  # no Linear layer takes the global weight config
        return
    with pytest.raises(ConfigError) as info:
        resolve_simple(gen.layers, simple, {})
    message = str(info.value)
    assert "channel_wise: true (from retrain_weight_quant_config)" in message
    assert all(name in message for name in linear)
