"""Resolved calibration parameters -> the JSON text AMCT writes (SPEC 10.3): top-level keys, layers sorted by
name, each block's keys in AMCT's order, schema-validated before anything is written."""

from __future__ import annotations

from typing import Any

from analyzer.emit import dumps, schema_errors
from analyzer.errors import ConfigError
from analyzer.kinds.ptq_config import ADA, HFMG, IFMR, ActSpec, WeightSpec
from analyzer.kinds.ptq_resolve import LayerParams, PtqResolved
from schemas import PTQ_CONFIG_SCHEMA


def _activation(act: ActSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"num_bits": act.num_bits}
    if act.algo == IFMR:
        out["max_percentile"] = act.max_percentile
        out["min_percentile"] = act.min_percentile
        out["search_range"] = list(act.search_range)
        out["search_step"] = act.search_step
    out["act_algo"] = act.algo
    out["asymmetric"] = act.asymmetric
    if act.algo == HFMG:
        out["num_of_bins"] = act.num_of_bins
    return out


def _weight(weight: WeightSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"num_bits": weight.num_bits}
    if weight.algo == ADA:
        out["reg_param"] = weight.reg_param
        out["warm_start"] = weight.warm_start
        out["num_iteration"] = weight.num_iteration
        out["beta_range"] = list(weight.beta_range)
    out["channel_wise"] = weight.channel_wise
    out["wts_algo"] = weight.algo
    return out


def _layer(params: LayerParams) -> dict[str, Any]:
    out: dict[str, Any] = {"quant_enable": params.quant_enable}
    if params.dmq is not None:
        out["dmq_balancer_param"] = params.dmq
    out["activation_quant_params"] = _activation(params.act)
    if params.weight is not None:
        out["weight_quant_params"] = _weight(params.weight)
    return out


def config_object(resolved: PtqResolved) -> dict[str, Any]:
    """The calibration config as an ordered dict, keys in the order AMCT writes them."""
    out: dict[str, Any] = {
        "version": 1,
        "batch_num": resolved.batch_num,
        "activation_offset": resolved.activation_offset,
        "do_fusion": resolved.do_fusion,
    }
    if resolved.fakequant_precision_mode == "FORCE_FP16_QUANT":
        out["fakequant_precision_mode"] = resolved.fakequant_precision_mode
    out["skip_fusion_layers"] = list(resolved.skip_fusion_layers)
    for params in sorted(resolved.layers, key=lambda p: p.name):  # plain str order, as AMCT sorts
        out[params.name] = _layer(params)
    return out


def render(resolved: PtqResolved) -> str:
    """The config JSON text, validated against `schemas/ptq_config.schema.json` first."""
    obj = config_object(resolved)
    errors = schema_errors(obj, PTQ_CONFIG_SCHEMA)
    if errors:
        raise ConfigError(
            "the generated config does not satisfy the calibration config schema: " + "; ".join(errors)
        )
    return dumps(obj)
