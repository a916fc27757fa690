"""Library calls from several threads of one process (a service, a thread pool over many models).

torch's exporters keep process-global state, so QuantScope serializes exports with a process-wide lock: every
thread gets its own model's exact config, a later call in the same process is still right, and silencing the
exporters never takes the host program's output or logger settings away, during the calls or after them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from analyzer import create_quant_retrain_config
from graph.exporting import EXPORT_LOCK, NOISY_LOGGERS, ThreadMutedStream, exclusive_export
from tests.cases import CASES
from tests.torch_support import skip_without_dynamo

# distinct models with distinct configs, on both exporters' paths (an input above the line goes to dynamo)
NAMES = ("linear_variants", "reused_conv", "cfg_simple_default", "shared_weight_linear", "unused_linear")
THREAD_CASES = [next(c for c in CASES if c.name == name) for name in NAMES]


def _call(case_index: int, folder: Path, round_: int) -> tuple[str, bytes]:
    case = THREAD_CASES[case_index]
    target = folder / f"{case.name}-{round_}.json"
    create_quant_retrain_config(target, case.model(), case.inputs())
    return case.name, target.read_bytes()


def test_threads_calling_at_once_each_get_their_models_config(tmp_path: Path) -> None:
    barrier = threading.Barrier(len(THREAD_CASES))

    def job(index: int) -> tuple[str, bytes]:
        barrier.wait()  # start together, so that the exports really contend
        return _call(index, tmp_path, 0)

    with ThreadPoolExecutor(max_workers=len(THREAD_CASES)) as pool:
        results = list(pool.map(job, range(len(THREAD_CASES))))
    for (name, data), case in zip(results, THREAD_CASES, strict=True):
        assert name == case.name
        assert data.decode() == case.golden_text(), f"{name}: another thread's export leaked into this config"
    # and a plain call afterwards, in the same process, is still right
    name, data = _call(2, tmp_path, 1)
    assert data.decode() == THREAD_CASES[2].golden_text()


def test_host_output_from_other_threads_is_kept_during_exports(capfd: pytest.CaptureFixture[str]) -> None:
    """Another thread printing while exports run: every line reaches the terminal; the streams are the host's
    own objects again afterwards."""
    stdout, stderr = sys.stdout, sys.stderr
    case = THREAD_CASES[0]
    exporting = threading.Event()
    done = threading.Event()
    printed = 0

    def printer() -> None:
        nonlocal printed
        exporting.wait(timeout=30)
        while not done.is_set() or printed < 50:
            print(f"host line {printed}", flush=True)
            print(f"host error {printed}", file=sys.stderr, flush=True)
            printed += 1

    thread = threading.Thread(target=printer)
    thread.start()
    try:
        with exclusive_export():
            exporting.set()
            print("exporter chatter")  # the exporting thread's own output is dropped
            from graph.export import export_graph

            export_graph(case.model(), case.inputs())
    finally:
        done.set()
        thread.join(timeout=60)
    out, err = capfd.readouterr()
    assert sys.stdout is stdout and sys.stderr is stderr
    assert "exporter chatter" not in out
    assert all(f"host line {i}\n" in out for i in range(printed))
    assert all(f"host error {i}\n" in err for i in range(printed))
    print("after the export")
    assert capfd.readouterr().out == "after the export\n"


def test_logger_levels_and_warning_filters_are_the_hosts_afterwards(tmp_path: Path) -> None:
    import warnings

    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    logging.getLogger("torch").setLevel(logging.INFO)  # a host's own choice, kept
    filters = list(warnings.filters)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda i: _call(i, tmp_path, 0), range(3)))
        assert logging.getLogger("torch").level == logging.INFO
        assert warnings.filters == filters
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_muted_stream_passes_other_threads_and_delegates_attributes() -> None:
    class Sink:
        encoding = "utf-8"

        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

    sink = Sink()
    muted = ThreadMutedStream(sink)  # type: ignore[arg-type]
    muted.mute(threading.get_ident())
    assert muted.write("dropped") == len("dropped")
    other = threading.Thread(target=lambda: muted.write("kept "))
    other.start()
    other.join()
    assert sink.text == "kept " and muted.encoding == "utf-8"
    muted.mute(None)
    muted.write("now kept")
    assert sink.text == "kept now kept"


def test_the_export_lock_is_held_during_an_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread cannot take the lock while an export runs (what keeps torch's global state whole)."""
    import graph.torchscript

    seen: list[bool] = []
    real = graph.torchscript.export_torchscript_proto

    def probe(*args: object, **kwargs: object) -> object:
        taken = threading.Thread(target=lambda: seen.append(EXPORT_LOCK.acquire(timeout=0.05)))
        taken.start()
        taken.join()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(graph.torchscript, "export_torchscript_proto", probe)
    from graph.export import export_graph

    export_graph(torch.nn.Linear(2, 2), torch.randn(1, 2))
    assert seen == [False]


# A model the TorchScript exporter fails on (aten::vdot of parametrizations.spectral_norm) and dynamo exports:
# the library call tries TorchScript first on so small an input, and torch's C++ side then prints its whole
# "Torch IR graph at exception" straight to file descriptor 1. Another thread prints numbered lines through
# sys.stdout/sys.stderr the whole time the TorchScript export runs (started inside it, joined before it ends,
# so every line is written while the descriptors point at the null device).
FD_NOISE_SCRIPT = """
import sys, threading, tempfile, os
import torch
from torch import nn
import graph.torchscript
from analyzer import create_quant_retrain_config

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.utils.parametrizations.spectral_norm(nn.Linear(8, 8))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.fc(x))

def printer(done):
    count = 0
    while not done.is_set() or count < 300:
        print(f"host line {count}", flush=True)
        print(f"host error {count}", file=sys.stderr, flush=True)
        count += 1

real = graph.torchscript.export_torchscript_proto

def export_while_printing(*args, **kwargs):
    done = threading.Event()
    thread = threading.Thread(target=printer, args=(done,))
    thread.start()
    try:
        return real(*args, **kwargs)
    finally:
        done.set()
        thread.join()

graph.torchscript.export_torchscript_proto = export_while_printing
torch.manual_seed(0)
report = create_quant_retrain_config(os.path.join(tempfile.mkdtemp(), "c.json"), Net(), torch.randn(2, 8))
os.write(1, b"fd 1 is the host's again\\n")
print("choice:", report.producer.export_choice, file=sys.stderr)
"""


def test_a_failed_exporter_prints_nothing_and_other_threads_keep_their_output(tmp_path: Path) -> None:
    import subprocess

    skip_without_dynamo()  # the case: TorchScript fails, then dynamo succeeds
    script = tmp_path / "noise.py"
    script.write_text(FD_NOISE_SCRIPT, encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=600,
        check=True,
    )
    out = done.stdout.splitlines()
    err = done.stderr.splitlines()
    assert "the torchscript exporter failed" in err[-1]  # the case this test is about happened
    assert "Torch IR graph" not in done.stdout + done.stderr
    lines = [line for line in out if line.startswith("host line ")]
    errors = [line for line in err if line.startswith("host error ")]
    # every line of the other thread, in order, on each stream, and nothing else
    assert lines == [f"host line {i}" for i in range(len(lines))] and len(lines) >= 300
    assert errors == [f"host error {i}" for i in range(len(errors))] and len(errors) == len(lines)
    assert out == [*lines, "fd 1 is the host's again"]
    assert err == [*errors, err[-1]]


def test_torchs_onnx_log_switch_is_left_as_it_was() -> None:
    """The TorchScript exporter turns torch's C++ ONNX log on and never off; QuantScope puts it back, so that a
    later failing export elsewhere in the process does not print its graph because of this call."""
    from graph.export import export_graph

    torch._C._jit_set_onnx_log_enabled(False)  # whatever an earlier export in this process left
    export_graph(torch.nn.Linear(2, 2), torch.randn(1, 2), exporter="torchscript")
    assert not torch._C._jit_is_onnx_log_enabled()
