"""What a check is and what it yields."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from analyzer.layers import GraphIndex


class Severity(enum.Enum):
    """What a finding does to its layer."""

    EXCLUDE = "exclude"  # the layer is left out of the config
    ADVISORY = "advisory"  # the layer stays; the user is warned
    INFO = "info"  # a fact for the report (e.g. a functional call that is not a candidate)


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict on one layer: `reason` is a single line naming the layer and the value."""

    code: str
    check: str
    severity: Severity
    layer: str | None
    reason: str
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    """A registered check: a stable code, a name stating the problem, and a function yielding findings."""

    code: str
    name: str
    severity: Severity
    run: Callable[[GraphIndex], Iterator[Finding]]

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip()

    def finding(self, layer: str | None, reason: str, nodes: tuple[str, ...] = ()) -> Finding:
        return Finding(self.code, self.name, self.severity, layer, reason, nodes)
