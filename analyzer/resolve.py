"""Quantizable layers (+ the simple config) -> the settings of every layer, per SPEC section 5."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyzer.layertypes import LAYER_TYPES

if TYPE_CHECKING:
    from analyzer.simple_config import SimpleConfig


@dataclass(frozen=True, slots=True)
class QuantLayer:
    """A layer that passed every check: its name and its type (a key of LAYER_TYPES)."""

    name: str
    layer_type: str


@dataclass(frozen=True, slots=True)
class DataSetting:
    """`retrain_data_config` of one layer."""

    algo: str = "ulq_quantize"
    clip_max: float | None = None
    clip_min: float | None = None
    fixed_min: bool | None = None
    dst_type: str = "INT8"


@dataclass(frozen=True, slots=True)
class WeightSetting:
    """`retrain_weight_config` of one layer."""

    algo: str
    channel_wise: bool
    dst_type: str = "INT8"


@dataclass(frozen=True, slots=True)
class LayerSetting:
    """Everything the JSON says about one layer, and where it came from (for the report)."""

    name: str
    layer_type: str
    retrain_enable: bool
    data: DataSetting
    weight: WeightSetting
    source: str = "default"  # "default", "global", "override_layer_types", "override_layer_configs"


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """The whole config: top-level keys and the layers in named_modules() order."""

    layers: tuple[LayerSetting, ...]
    batch_num: int = 1
    fakequant_precision_mode: str | None = None
    notes: tuple[tuple[str, str], ...] = ()  # (layer or "", one-line note) for legal-but-surprising configs


def default_weight(layer_type: str) -> WeightSetting:
    return WeightSetting("arq_retrain", LAYER_TYPES[layer_type].channel_wise_default)


def resolve(
    layers: Sequence[QuantLayer],
    simple: SimpleConfig | None = None,
    excluded: Mapping[str, str] | None = None,
    modules: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Give every quantizable layer its settings.

    Args:
        layers: the layers that passed the checks, in named_modules() order.
        simple: the parsed simple config, or None for the built-in defaults.
        excluded: names of modules the checks excluded, with the reason; used to explain a simple config
            that names one of them.
        modules: the class name of every module of the model (named_modules()), used to explain a simple
            config that names a module that is not a candidate layer (e.g. a Conv1d).

    Raises:
        ConfigError: the simple config names an unknown layer or type, or is inconsistent.
    """
    if simple is not None:
        from analyzer.simple_config import resolve_simple

        return resolve_simple(layers, simple, excluded or {}, modules or {})
    return ResolvedConfig(
        tuple(
            LayerSetting(layer.name, layer.layer_type, True, DataSetting(), default_weight(layer.layer_type))
            for layer in layers
        )
    )
