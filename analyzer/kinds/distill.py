"""The distillation config (`create_distill_config`, SPEC 11): candidates, groups, settings, JSON.

Its own parts over the shared analysis: the candidate types (Conv2d, Linear), the simple config and its
resolution (`analyzer.kinds.distill_config`), and the distill groups read from the graph (`analyzer.groups`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from analyzer.checks import Finding, Severity
from analyzer.errors import InputFileError, NoQuantizableLayerError
from analyzer.groups import Groups, find_groups, folded_batchnorm, unknown_classes
from analyzer.kinds.distill_config import (
    DISTILL_TYPES,
    DistillResolved,
    DistillSimple,
    check_enabled,
    groups_by_layer,
    render_distill,
    resolve_distill,
)
from analyzer.layers import GraphIndex, Layer, typed_ops

GROUP_CODE = "QS401"  # the report's note on a candidate's distill group (or why it is in none)
GROUP_CHECK = "distill-group"
LEFT_OUT_CODE = "QS402"  # a functional activation left out of a group (SPEC 11.6)
LEFT_OUT_CHECK = "functional-activation"
NO_CANDIDATES = "Not found supported distill quant layers in model."


@dataclass(frozen=True, slots=True)
class DistillOutput:
    """What the distill generator gives the shared pipeline."""

    text: str
    resolved: DistillResolved
    groups: Groups
    notes: tuple[Finding, ...]


def distill_candidates(index: GraphIndex, excluded: Mapping[str, Sequence[Finding]]) -> tuple[Layer, ...]:
    """The Conv2d/Linear layers no shared check excluded, in named_modules() order (SPEC 11.2)."""
    return tuple(
        layer
        for layer in index.layers
        if layer.layer_type in DISTILL_TYPES and layer.name not in excluded and typed_ops(layer)
    )


def generate_distill(
    index: GraphIndex, excluded: Mapping[str, Sequence[Finding]], simple: DistillSimple | None
) -> DistillOutput:
    """Resolve the settings, find the groups and render the JSON, with AMCT's checks in AMCT's order.

    Raises:
        NoQuantizableLayerError: no candidate (AMCT's message), or every layer skipped.
        ConfigError: the simple config does not fit the model, or a user group is invalid.
        InputFileError: the graph has BatchNorm folded into its convolutions (the groups cannot be read).
    """
    candidates = distill_candidates(index, excluded)
    if not candidates:
        raise NoQuantizableLayerError(NO_CANDIDATES)
    unreadable = folded_batchnorm(index.graph, index.modules) or unknown_classes(index.graph, index.modules)
    if unreadable is not None:
        raise InputFileError(unreadable)
    resolved = resolve_distill([(layer.name, str(layer.layer_type)) for layer in candidates], simple)
    starts = {layer.name: typed_ops(layer)[0].node for layer in candidates}
    groups = find_groups(
        index.graph,
        index.modules,
        starts,
        resolved.group_size,
        simple.user_groups if simple is not None else (),
    )
    check_enabled(resolved)
    notes = [
        Finding(GROUP_CODE, GROUP_CHECK, Severity.INFO, name, f"{name}: {line}")
        for name, line in groups_by_layer(groups).items()
    ]
    notes += [
        Finding(
            LEFT_OUT_CODE,
            LEFT_OUT_CHECK,
            Severity.INFO,
            None,
            f"the functional {item.op_type} op {item.op} after {item.after} joins distill group {item.group} "
            f"but has no module: left out of the group (AMCT writes null there, which its create_distill_model "
            "rejects)",
        )
        for item in groups.left_out
    ]
    notes += [
        Finding(
            GROUP_CODE,
            GROUP_CHECK,
            Severity.INFO,
            None,
            f"the activation {name} follows a user distill group and is in no group",
        )
        for name in groups.stray_activations
    ]
    return DistillOutput(render_distill(resolved, groups), resolved, groups, tuple(notes))
