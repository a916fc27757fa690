"""What the suite needs of the installed torch (2.1 to the pinned 2.13): the TorchScript exporter's selecting
keyword and the skip of tests that need the dynamo exporter, with the reason (`graph.capabilities`)."""

from __future__ import annotations

import pytest

from graph.capabilities import torch_exporters

# pass to a direct torch.onnx.export call for the TorchScript exporter: dynamo=False where torch takes it
TORCHSCRIPT = torch_exporters().torchscript_arguments()


def dynamo_skip_reason() -> str | None:
    """Why a test that needs the dynamo exporter cannot run on this torch; None where it can."""
    missing = torch_exporters().dynamo_missing
    return None if missing is None else f"needs the dynamo exporter: {missing}"


def skip_before_torch(version: str, why: str) -> None:
    """Skip the calling test on a torch older than `version` (a test of what newer torch writes), saying why."""
    installed = torch_exporters().torch_version
    if tuple(int(p) for p in installed.split(".")[:2]) < tuple(int(p) for p in version.split(".")[:2]):
        pytest.skip(f"needs torch >= {version} (installed {installed}): {why}")


def skip_without_dynamo() -> None:
    """Skip the calling test (or fixture) where this torch has no dynamo exporter."""
    reason = dynamo_skip_reason()
    if reason is not None:
        pytest.skip(reason)
