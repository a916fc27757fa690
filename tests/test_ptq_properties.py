"""Property tests of the calibration config's resolution (SPEC 10.5: priority, skips, fallbacks) and of the float
formatting (SPEC 10.4: `float(str(numpy.float32(v)))`), on synthetic models: no export needed."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from analyzer.errors import NoQuantizableLayerError
from analyzer.floats import amct_float, shortest_float32, to_float32
from analyzer.kinds.ptq_config import ActSpec, Calibration, PtqSimple, WeightSpec
from analyzer.kinds.ptq_resolve import PTQ_TYPE_TABLE, PTQ_TYPES, ModelView, PtqLayer, resolve_simple
from analyzer.layertypes import int4_blocker

NAMES = ("a", "B", "c.0", "c.1", "d10", "d2", "e", "f")
# an HFMG num_of_bins per source marks where a layer's parameters came from
LAYER_BINS, TYPE_BINS, COMMON_BINS = 1024, 2048, 8192


@st.composite
def models(draw: st.DrawFn) -> ModelView:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=len(NAMES), unique=True))
    layers = tuple(
        PtqLayer(
            name,
            draw(st.sampled_from(PTQ_TYPES)),
            has_bias=draw(st.booleans()),
            int4_blocker=int4_blocker(draw(st.integers(1, 9)), draw(st.sampled_from((1, 1, 2)))),
        )
        for name in names
    )
    return ModelView({layer.name: layer.layer_type for layer in layers}, layers, {})


def _simple(**fields: object) -> PtqSimple:
    base: dict[str, object] = {
        "file_name": "quant.cfg",
        "batch_num": 1,
        "activation_offset": True,
        "do_fusion": True,
        "fakequant_precision_mode": None,
        "skip_layers": (),
        "skip_layer_types": (),
        "skip_fusion_layers": (),
        "common": None,
        "type_overrides": (),
        "layer_overrides": (),
    }
    base.update(fields)
    return PtqSimple(**base)  # type: ignore[arg-type]


def _hfmg(origin: str, bins: int) -> Calibration:
    return Calibration(origin, act=ActSpec(algo="hfmg", num_of_bins=bins))


@settings(max_examples=150, deadline=None)
@given(model=models(), data=st.data())
def test_layer_override_beats_type_override_beats_common(model: ModelView, data: st.DataObject) -> None:
    layer_names = data.draw(st.sets(st.sampled_from([layer.name for layer in model.layers])))
    types = data.draw(st.sets(st.sampled_from(PTQ_TYPES)))
    with_common = data.draw(st.booleans())
    simple = _simple(
        common=_hfmg("common_config", COMMON_BINS) if with_common else None,
        layer_overrides=tuple(
            (n, _hfmg(f"override_layer_configs {n!r}", LAYER_BINS)) for n in sorted(layer_names)
        ),
        type_overrides=tuple((t, _hfmg(f"override_layer_types {t!r}", TYPE_BINS)) for t in sorted(types)),
    )
    resolved = resolve_simple(model, simple)
    assert [p.name for p in resolved.layers] == sorted(layer.name for layer in model.layers)
    by_name = {p.name: p for p in resolved.layers}
    for layer in model.layers:
        act = by_name[layer.name].act
        if layer.name in layer_names:
            expected = LAYER_BINS
        elif layer.layer_type in types:
            expected = TYPE_BINS
        elif with_common:
            expected = COMMON_BINS
        else:
            assert act.algo == "ifmr"  # the built-in default block
            continue
        assert (act.algo, act.num_of_bins) == ("hfmg", expected)
        assert by_name[layer.name].weight is not None
        # an override is complete on its own: the weight block is the default, channel_wise by type
        assert by_name[layer.name].weight.channel_wise == PTQ_TYPE_TABLE[layer.layer_type].channel_wise  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None)
@given(model=models(), data=st.data())
def test_skips_disable_exactly_the_named_layers_and_types_even_with_an_override(
    model: ModelView, data: st.DataObject
) -> None:
    names = [layer.name for layer in model.layers]
    skip_layers = data.draw(st.lists(st.sampled_from(names), unique=True))
    present = sorted({layer.layer_type for layer in model.layers})
    skip_types = data.draw(st.lists(st.sampled_from(present), unique=True))
    overridden = data.draw(st.sets(st.sampled_from(names)))
    simple = _simple(
        skip_layers=tuple(skip_layers),
        skip_layer_types=tuple(skip_types),
        layer_overrides=tuple(
            (n, _hfmg(f"override_layer_configs {n!r}", LAYER_BINS)) for n in sorted(overridden)
        ),
    )
    disabled = {
        layer.name for layer in model.layers if layer.name in skip_layers or layer.layer_type in skip_types
    }
    if disabled == set(names):
        with pytest.raises(NoQuantizableLayerError, match="no layer need to quantize"):
            resolve_simple(model, simple)
        return
    resolved = resolve_simple(model, simple)
    assert {p.name for p in resolved.layers if not p.quant_enable} == disabled
    for p in resolved.layers:  # a skipped layer keeps the parameters it would have had
        assert (p.act.num_of_bins == LAYER_BINS) == (p.name in overridden)


@settings(max_examples=200, deadline=None)
@given(model=models(), bits=st.sampled_from((4, 6, 7, 8)), int16=st.booleans(), offset=st.booleans())
def test_fallbacks_touch_exactly_the_layers_spec_names(
    model: ModelView, bits: int, int16: bool, offset: bool
) -> None:
    common = Calibration(
        "common_config",
        act=ActSpec(num_bits=16 if int16 else 8),
        weight=WeightSpec(num_bits=bits, channel_wise=False),
    )
    resolved = resolve_simple(model, _simple(common=common, activation_offset=offset))
    layers = {layer.name: layer for layer in model.layers}
    for p in resolved.layers:
        layer = layers[p.name]
        assert p.act.num_bits == (16 if int16 and layer.int16_capable else 8)
        if bits in (6, 7):
            expected = bits if layer.layer_type == "Conv2d" else 8
        elif bits == 4:
            expected = 8 if layer.int4_blocker is not None and layer.layer_type != "AvgPool2d" else 4
        else:
            expected = 8
        assert p.weight is not None and p.weight.num_bits == expected
        assert (expected != bits) == any(f.code in ("QS302", "QS304") for f in p.fallbacks)
        assert p.act.asymmetric is (False if layer.layer_type == "Conv3d" else offset)


@settings(max_examples=100, deadline=None)
@given(model=models())
def test_common_ada_drops_the_weight_block_of_every_type_ada_does_not_support(model: ModelView) -> None:
    resolved = resolve_simple(
        model, _simple(common=Calibration("common_config", weight=WeightSpec(algo="ada_quantize")))
    )
    for p in resolved.layers:
        kept = PTQ_TYPE_TABLE[p.layer_type].ada
        assert (p.weight is not None) == kept
        assert any(f.code == "QS305" for f in p.fallbacks) == (not kept)


# ------------------------------------------------------------------------------------------ float formatting

finite_float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(value=finite_float32)
def test_amct_float_reads_back_as_the_same_float32(value: float) -> None:
    assert to_float32(amct_float(value)) == to_float32(value)


@given(value=finite_float32)
def test_no_shorter_decimal_reads_back(value: float) -> None:
    assume(value != 0)
    text = shortest_float32(value)
    digits = len(repr(abs(amct_float(value))).split("e")[0].replace(".", "").strip("0"))
    if digits > 1:
        shorter = f"{value:.{digits - 1}e}"
        assert struct.pack("<f", float(shorter)) != struct.pack("<f", value) or float(shorter) == float(text)


@settings(deadline=None)
@given(value=st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_amct_float_is_what_numpy_writes(value: float) -> None:
    numpy = pytest.importorskip("numpy")  # not a dependency; when present, the reference itself
    assert amct_float(value) == float(str(numpy.float32(value)))


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (0.3, 0.3),
        (1.7, 1.7),
        (0.001, 0.001),
        (0.9999, 0.9999),
        (20, 20.0),
        (0.999999, 0.999999),
        (3421389.75, 3421389.8),
    ],
)
def test_reference_values(value: float, written: float) -> None:
    assert amct_float(value) == written
    assert math.isclose(amct_float(value), value, rel_tol=1e-6)
