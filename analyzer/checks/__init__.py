"""The check registry: an explicit tuple, in the order findings are reported. Codes are never reused."""

from __future__ import annotations

from analyzer.checks.base import Check, Finding, Severity
from analyzer.checks.rules import (
    COMPUTED_WEIGHT,
    DEPTH_DILATION,
    INPUT_RANK,
    MODULE_ALIASES,
    NO_WEIGHT_OP,
    NOT_A_CANDIDATE,
    NOT_EXECUTED,
    PADDING_MODE,
    REUSED_MODULE,
    RNN_CONFIG,
    RNN_FACTS_UNKNOWN,
    SHARED_WEIGHT,
    SMALL_CIN_CHECK,
    TRANSPOSED_INPUT,
    WEIGHT_USED_ELSEWHERE,
)
from analyzer.layers import GraphIndex

REGISTRY: tuple[Check, ...] = (
    NOT_A_CANDIDATE,
    NOT_EXECUTED,
    REUSED_MODULE,
    SHARED_WEIGHT,
    PADDING_MODE,
    INPUT_RANK,
    TRANSPOSED_INPUT,
    NO_WEIGHT_OP,
    DEPTH_DILATION,
    RNN_CONFIG,
    SMALL_CIN_CHECK,
    WEIGHT_USED_ELSEWHERE,
    MODULE_ALIASES,
    RNN_FACTS_UNKNOWN,
    COMPUTED_WEIGHT,
)


def run_checks(index: GraphIndex, checks: tuple[Check, ...] = REGISTRY) -> tuple[Finding, ...]:
    """Run every check over the indexed graph; findings in registry order, then layer order."""
    return tuple(finding for check in checks for finding in check.run(index))


__all__ = ["REGISTRY", "Check", "Finding", "Severity", "run_checks"]
