"""Two processes generating configs into the same folder (issue 6): into different files, into the same file
with the same content, and into the same file with different content. Every read of a target while they run
sees a whole config (one of the expected texts) or no file yet, never a part of one; afterwards each target
holds a whole config and no temporary file is left.

The children run the offline call on the committed fixtures (`tests/fixtures/`), so they need no torch and
start in about a second; they start writing together (a file barrier) and write many times each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
WRITES = 40  # per child

CHILD = """
import sys, time, logging
from pathlib import Path
logging.disable(logging.CRITICAL)
from analyzer import create_quant_retrain_config_from_onnx
target, onnx_file, barrier, name, count = sys.argv[1:6]
Path(barrier, "ready-" + name).touch()
while not Path(barrier, "go").exists():
    time.sleep(0.005)
for _ in range(int(count)):
    create_quant_retrain_config_from_onnx(target, onnx_file)
assert "torch" not in sys.modules, "the offline call imported torch"
"""

TEXTS = {
    "tiny": (FIXTURES / "tiny.config.json").read_bytes(),
    "weird": (FIXTURES / "weird_names.config.json").read_bytes(),
}
MODELS = {"tiny": FIXTURES / "tiny_dynamo.onnx", "weird": FIXTURES / "weird_names_dynamo.onnx"}


def _run(jobs: list[tuple[Path, str]], barrier: Path) -> dict[Path, int]:
    """Start one child per (target, model), release them together, and read every target while they write.

    Returns how many whole configs were read per target; fails on any read that is not a whole config."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(target), str(MODELS[model]), str(barrier), str(n), str(WRITES)],
            cwd=REPO,
            env=env,
            stderr=subprocess.PIPE,
        )
        for n, (target, model) in enumerate(jobs)
    ]
    allowed: dict[Path, set[bytes]] = {}
    for target, model in jobs:
        allowed.setdefault(target, set()).add(TEXTS[model])
    reads = dict.fromkeys(allowed, 0)
    try:
        while len(list(barrier.glob("ready-*"))) < len(jobs):
            assert all(child.poll() is None for child in children), "a child died before the barrier"
            time.sleep(0.01)
        (barrier / "go").touch()
        while any(child.poll() is None for child in children):
            for target, texts in allowed.items():
                try:
                    content = target.read_bytes()
                except FileNotFoundError:
                    continue  # not written yet
                assert content in texts, f"a reader saw a partial or mixed {target.name}: {content[:80]!r}..."
                reads[target] += 1
    finally:  # never leave a child behind, whatever failed
        for child in children:
            if child.poll() is None:
                child.kill()
        errors = [child.communicate()[1] for child in children]
    for child, err in zip(children, errors, strict=True):
        assert child.returncode == 0, err.decode(errors="replace")
    for target, texts in allowed.items():
        assert target.read_bytes() in texts
    return reads


@pytest.mark.parametrize(
    "layout",
    ["different-files", "same-file-same-content", "same-file-different-content"],
)
def test_two_processes_writing_configs_into_one_folder(layout: str, tmp_path: Path) -> None:
    out = tmp_path / "configs"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    if layout == "different-files":
        jobs = [(out / "a.json", "tiny"), (out / "b.json", "weird")]
    elif layout == "same-file-same-content":
        jobs = [(out / "c.json", "tiny"), (out / "c.json", "tiny")]
    else:
        jobs = [(out / "c.json", "tiny"), (out / "c.json", "weird")]
    reads = _run(jobs, barrier)
    assert sum(reads.values()) > 0  # the reader did look while they wrote
    assert sorted(path.name for path in out.iterdir()) == sorted({target.name for target, _ in jobs})
