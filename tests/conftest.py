"""Tests that need the dynamo exporter (torch >= 2.5 with onnxscript) are skipped, with the reason, on a torch
without it (tox -e oldest): those marked `needs_dynamo` and those parametrized with `exporter="dynamo"`."""

from __future__ import annotations

import pytest


def _needs_dynamo(item: pytest.Item) -> bool:
    if item.get_closest_marker("needs_dynamo") is not None:
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("exporter") == "dynamo"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dynamo_items = [item for item in items if _needs_dynamo(item)]
    if not dynamo_items:
        return
    from tests.torch_support import dynamo_skip_reason  # imports torch: only when a collected test needs it

    reason = dynamo_skip_reason()
    if reason is None:
        return
    for item in dynamo_items:
        item.add_marker(pytest.mark.skip(reason=reason))
