"""The kinds of config QuantScope writes over one analysis: a table of rows (`analyzer.kinds.base.Kind`).

A new kind is a module with its row and its few own functions, added to `KINDS`; the library calls
(`analyzer.api`), the report and the CLI (`--kind`) pick it up from here.
"""

from __future__ import annotations

from analyzer.kinds.base import Analysis, Generated, Kind, LayerOutcome
from analyzer.kinds.distill import DISTILL
from analyzer.kinds.ptq import PTQ
from analyzer.kinds.retrain import RETRAIN

KINDS: dict[str, Kind] = {row.name: row for row in (RETRAIN, PTQ, DISTILL)}
DEFAULT_KIND = RETRAIN.name


def kind_of(name: str) -> Kind:
    """The row of kind `name`.

    Raises:
        ValueError: an unknown kind; the message names it and the known ones.
    """
    row = KINDS.get(name) if isinstance(name, str) else None
    if row is None:
        raise ValueError(f"unknown kind {name!r}; use one of {', '.join(repr(k) for k in KINDS)}")
    return row


__all__ = ["DEFAULT_KIND", "KINDS", "Analysis", "Generated", "Kind", "LayerOutcome", "kind_of"]
