"""The calibration simple config (`AMCTConfig`, schemas/calibration_config_pytorch.proto), SPEC 10.4.

Parsing only: the file is read the way AMCT reads it (text-format merge: a singular field given twice keeps
its last value; within a oneof a later member replaces an earlier one), and every `CalibrationConfig` message
is turned into typed records with the proto defaults filled and float32 fields written as AMCT writes them
(`analyzer.floats.amct_float`). Every rule that needs the model is `analyzer.kinds.ptq_resolve`'s, because
AMCT checks them in an order that interleaves file and model (SPEC 10.6).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from analyzer.floats import amct_float
from analyzer.simple_config import read_simple_text, repeated_field_notes, syntax_error
from schemas.messages import proto_module

logger = logging.getLogger(__name__)

# the message classes of schemas/calibration_config_pytorch.proto (built from its committed descriptor, see
# schemas.messages); untyped for mypy --strict, so read at this boundary only
_pb: Any = proto_module("calibration_config_pytorch")
_PACKAGE_PREFIX = _pb.DESCRIPTOR.package + "."

COMMON = "common_config"
LAYER_OVERRIDES = "override_layer_configs"
TYPE_OVERRIDES = "override_layer_types"
IFMR, HFMG = "ifmr", "hfmg"
ARQ, ADA = "arq_quantize", "ada_quantize"

# SPEC 10.3 defaults (the proto's, and AMCT's default block)
DEFAULT_MAX_PERCENTILE = 0.999999
DEFAULT_MIN_PERCENTILE = 0.999999
DEFAULT_SEARCH_RANGE = (0.7, 1.3)
DEFAULT_SEARCH_STEP = 0.01
DEFAULT_NUM_OF_BINS = 4096
DEFAULT_NUM_BITS = 8


@dataclass(frozen=True, slots=True)
class ActSpec:
    """An activation algorithm as the layer gets it: IFMR fields, or HFMG's `num_of_bins`.

    `asymmetric` is None when the message does not set it (SPEC 10.5 rule 8 then decides).
    """

    algo: str = IFMR
    num_bits: int = DEFAULT_NUM_BITS
    asymmetric: bool | None = None
    max_percentile: float = DEFAULT_MAX_PERCENTILE
    min_percentile: float = DEFAULT_MIN_PERCENTILE
    search_range: tuple[float, float] = DEFAULT_SEARCH_RANGE
    search_step: float = DEFAULT_SEARCH_STEP
    num_of_bins: int = DEFAULT_NUM_OF_BINS


@dataclass(frozen=True, slots=True)
class WeightSpec:
    """A weight algorithm: ARQ (`num_bits` None when `quant_bits` is not set) or ADA with its four fields.

    `channel_wise` is None when the message does not set it (the layer type's default then applies).
    """

    algo: str = ARQ
    num_bits: int | None = None
    channel_wise: bool | None = None
    reg_param: float = 0.01
    warm_start: float = 0.2
    num_iteration: int = 10000
    beta_range: tuple[float, float] = (20.0, 2.0)


@dataclass(frozen=True, slots=True)
class Calibration:
    """One `CalibrationConfig` message: where it is (`common_config`, `override_layer_types 'Conv2d'`, ...),
    and its parts, None when absent."""

    origin: str
    act: ActSpec | None = None
    weight: WeightSpec | None = None
    dmq: float | None = None


@dataclass(frozen=True, slots=True)
class PtqSimple:
    """A parsed calibration simple config: the typed view of the `AMCTConfig` message, in file order."""

    file_name: str
    batch_num: int
    activation_offset: bool
    do_fusion: bool
    fakequant_precision_mode: str | None
    skip_layers: tuple[str, ...]
    skip_layer_types: tuple[str, ...]
    skip_fusion_layers: tuple[str, ...]
    common: Calibration | None
    type_overrides: tuple[tuple[str, Calibration], ...]
    layer_overrides: tuple[tuple[str, Calibration], ...]
    parse_notes: tuple[str, ...] = ()


def load_ptq_config(path: str | os.PathLike[str], types: tuple[str, ...] = ()) -> PtqSimple:
    """Read a calibration simple config (`types` is unused: its types are fixed, SPEC 10.2).

    Raises:
        ConfigError: the file cannot be read or is not valid `AMCTConfig` text format (file, line, column,
            the token there and, for a misspelt field, the close names).
    """
    text, file_name = read_simple_text(path)
    return parse_ptq_config(text, file_name)


def parse_ptq_config(text: str, file_name: str = "<simple config>") -> PtqSimple:
    """Parse calibration simple-config text; `file_name` only labels the messages."""
    message = _pb.AMCTConfig()
    try:
        text_format.Merge(text, message)  # AMCT's reading: a field given twice keeps its last value
    except text_format.ParseError as err:
        raise syntax_error(err, text, file_name, _PACKAGE_PREFIX) from err
    notes = repeated_field_notes(text, _pb.AMCTConfig)
    for note in notes:
        logger.warning("%s: %s", file_name, note)
    mode = None
    if (
        message.HasField("fakequant_precision_mode")
        and message.fakequant_precision_mode == _pb.FORCE_FP16_QUANT
    ):
        mode = "FORCE_FP16_QUANT"
    return PtqSimple(
        file_name=file_name,
        batch_num=int(message.batch_num),
        activation_offset=bool(message.activation_offset),
        do_fusion=bool(message.do_fusion),
        fakequant_precision_mode=mode,
        skip_layers=tuple(str(v) for v in message.skip_layers),
        skip_layer_types=tuple(str(v) for v in message.skip_layer_types),
        skip_fusion_layers=tuple(str(v) for v in message.skip_fusion_layers),
        common=calibration(COMMON, message.common_config) if message.HasField(COMMON) else None,
        type_overrides=tuple(
            (str(e.layer_type), calibration(f"{TYPE_OVERRIDES} {e.layer_type!r}", e.calibration_config))
            for e in message.override_layer_types
        ),
        layer_overrides=tuple(
            (str(e.layer_name), calibration(f"{LAYER_OVERRIDES} {e.layer_name!r}", e.calibration_config))
            for e in message.override_layer_configs
        ),
        parse_notes=notes,
    )


def _bits(dst_type: int) -> int:
    return 16 if dst_type == _pb.INT16 else 8


def calibration(origin: str, message: Any) -> Calibration:
    """The typed record of one `CalibrationConfig` message (defaults filled, floats as AMCT writes them)."""
    act: ActSpec | None = None
    algo = message.WhichOneof("acts_quant_algo")
    if algo == "ifmr_quantize":
        ifmr = message.ifmr_quantize
        act = ActSpec(
            algo=IFMR,
            num_bits=_bits(ifmr.dst_type),
            asymmetric=bool(ifmr.asymmetric) if ifmr.HasField("asymmetric") else None,
            max_percentile=amct_float(ifmr.max_percentile),
            min_percentile=amct_float(ifmr.min_percentile),
            search_range=(amct_float(ifmr.search_range_start), amct_float(ifmr.search_range_end)),
            search_step=amct_float(ifmr.search_step),
        )
    elif algo == "hfmg_quantize":
        hfmg = message.hfmg_quantize
        act = ActSpec(
            algo=HFMG,
            num_bits=_bits(hfmg.dst_type),
            asymmetric=bool(hfmg.asymmetric) if hfmg.HasField("asymmetric") else None,
            num_of_bins=int(hfmg.num_of_bins),
        )
    weight: WeightSpec | None = None
    wts = message.WhichOneof("wts_quant_algo")
    if wts == ARQ:
        arq = message.arq_quantize
        weight = WeightSpec(
            algo=ARQ,
            num_bits=int(arq.quant_bits) if arq.HasField("quant_bits") else None,
            channel_wise=bool(arq.channel_wise) if arq.HasField("channel_wise") else None,
        )
    elif wts == ADA:
        ada = message.ada_quantize
        weight = WeightSpec(
            algo=ADA,
            channel_wise=bool(ada.channel_wise) if ada.HasField("channel_wise") else None,
            reg_param=amct_float(ada.reg_param),
            warm_start=amct_float(ada.warm_start),
            num_iteration=int(ada.num_iteration),
            beta_range=(amct_float(ada.beta_range_start), amct_float(ada.beta_range_end)),
        )
    dmq = None
    if message.WhichOneof("tensor_balancer") == "dmq_balancer":
        dmq = amct_float(message.dmq_balancer.migration_strength)
    return Calibration(origin, act, weight, dmq)
