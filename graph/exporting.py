"""One torch export at a time, and none of its noise in the host program's terminal.

torch's ONNX exporters keep process-global state (the TorchScript exporter's `GLOBALS`, the tracer's module
map, dynamo's mode stacks): two exports running at once in one process fail or, worse, return wrong graphs,
and can leave state behind that spoils a later export. Every export QuantScope runs therefore holds
`EXPORT_LOCK`, a process-wide re-entrant lock; the analysis around the export runs unlocked.

While it holds the lock, an export is silenced without changing anything the host program sees:
- torch's, onnxscript's and onnx_ir's loggers are raised above CRITICAL and put back exactly as they were;
- warnings are ignored inside `warnings.catch_warnings()` (restored on exit);
- what the exporter prints to `sys.stdout`/`sys.stderr` (torch.export prints a partial graph on failure) is
  dropped for the exporting thread only: the streams are wrapped by a filter that passes every other
  thread's output through unchanged, and the original stream objects are put back afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any, TextIO

# loggers whose records an export produces; their children inherit the raised level
NOISY_LOGGERS = ("torch", "onnxscript", "onnx_ir", "onnx")
_SILENT = logging.CRITICAL + 1

EXPORT_LOCK = threading.RLock()


class ThreadMutedStream:
    """A text stream that drops what one thread writes while muted and passes everything else through.

    Only `write`, `writelines` and `flush` are routed; every other attribute (encoding, fileno, isatty,
    buffer, ...) is the wrapped stream's, so code that inspects `sys.stdout` during an export still works.
    Unmuted it is a plain pass-through, so a reference someone kept to it stays harmless.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._thread_id: int | None = None

    def mute(self, thread_id: int | None) -> None:
        """Drop what thread `thread_id` writes from now on (None: drop nothing)."""
        self._thread_id = thread_id

    def _muted(self) -> bool:
        return self._thread_id is not None and threading.get_ident() == self._thread_id

    def write(self, text: str) -> int:
        if self._muted():
            return len(text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        if not self._muted():
            self._stream.writelines(lines)

    def flush(self) -> None:
        if not self._muted():
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# One wrapper per host stream, never freed: CPython's print() holds a borrowed reference to sys.stdout while it
# writes, so a wrapper freed when the streams are put back would crash a thread printing at that moment.
_WRAPPERS: dict[int, ThreadMutedStream] = {}


def _wrapper(stream: TextIO) -> ThreadMutedStream:
    wrapper = _WRAPPERS.get(id(stream))
    if wrapper is None or wrapper._stream is not stream:
        wrapper = _WRAPPERS[id(stream)] = ThreadMutedStream(stream)
    return wrapper


@contextlib.contextmanager
def _muted_streams() -> Iterator[None]:
    saved = (sys.stdout, sys.stderr)
    wrappers = tuple(
        None if stream is None or isinstance(stream, ThreadMutedStream) else _wrapper(stream)
        for stream in saved
    )
    for wrapper in wrappers:
        if wrapper is not None:
            wrapper.mute(threading.get_ident())
    if wrappers[0] is not None:
        sys.stdout = wrappers[0]
    if wrappers[1] is not None:
        sys.stderr = wrappers[1]
    try:
        yield
    finally:
        for wrapper in wrappers:
            if wrapper is not None:
                wrapper.mute(None)
        # put the originals back, unless the host replaced a stream meanwhile (then its choice stands)
        if wrappers[0] is not None and sys.stdout is wrappers[0]:
            sys.stdout = saved[0]
        if wrappers[1] is not None and sys.stderr is wrappers[1]:
            sys.stderr = saved[1]


@contextlib.contextmanager
def _silent_loggers() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    saved = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(_SILENT)
        yield
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def exclusive_export() -> Iterator[None]:
    """Hold the process-wide export lock and silence the exporters for the duration of the block."""
    with EXPORT_LOCK, _silent_loggers(), warnings.catch_warnings(), _muted_streams():
        warnings.simplefilter("ignore")
        yield
