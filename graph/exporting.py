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
  thread's output through unchanged, and the original stream objects are put back afterwards;
- what torch's C++ side writes straight to file descriptors 1 and 2 (the TorchScript exporter prints its whole
  "Torch IR graph at exception" when it fails, before the other exporter succeeds) is dropped too: both
  descriptors point at the null device for the export. A descriptor is process-wide, so every other thread's
  output through `sys.stdout`/`sys.stderr` is written meanwhile to a copy of the host's descriptor, in order
  and unbuffered; what another thread writes to the descriptor itself (C code, or a stream object it took
  before the export, such as a handler `logging.basicConfig` made) during an export is lost.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
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
        # while the stream's file descriptor points at the null device: a stream on a copy of the host's
        # descriptor, where the other threads' output goes meanwhile (under the lock, so it is never
        # swapped or closed in the middle of a write)
        self._divert: TextIO | None = None
        self._divert_lock = threading.RLock()

    def mute(self, thread_id: int | None) -> None:
        """Drop what thread `thread_id` writes from now on (None: drop nothing)."""
        self._thread_id = thread_id

    def divert(self, stream: TextIO | None) -> TextIO | None:
        """Send the other threads' output to `stream` from now on (None: to the wrapped stream again);
        returns the stream it replaces. What the current target holds is flushed first, so that the output
        stays in order."""
        with self._divert_lock:
            with contextlib.suppress(Exception):  # a broken host stream is the host's business
                (self._divert or self._stream).flush()
            previous, self._divert = self._divert, stream
        return previous

    def _muted(self) -> bool:
        return self._thread_id is not None and threading.get_ident() == self._thread_id

    def write(self, text: str) -> int:
        if self._muted():
            return len(text)
        with self._divert_lock:  # never in the middle of a switch of target
            return (self._divert or self._stream).write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

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
        with _muted_descriptors(wrappers):
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


def _fileno(stream: Any) -> int | None:
    try:
        number = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return None
    return number if isinstance(number, int) else None


def _flush_c_streams() -> None:
    """Flush the C library's stdio buffers (what C and C++ code printed and has not written yet)."""
    with contextlib.suppress(Exception):  # no C library to load (an unusual platform): nothing to flush
        ctypes.CDLL(None).fflush(None)


def _flush(streams: tuple[Any, ...]) -> None:
    for stream in streams:
        with contextlib.suppress(Exception):  # a closed or broken host stream is the host's business
            stream.flush()


@contextlib.contextmanager
def _muted_descriptors(wrappers: tuple[ThreadMutedStream | None, ...]) -> Iterator[None]:
    """Point file descriptors 1 and 2 at the null device for the duration of the block, and send what other
    threads write through `wrappers` (the wrapped `sys.stdout`/`sys.stderr`) to copies of the host's
    descriptors meanwhile. Pending output is flushed first, so nothing written before comes out after."""
    streams = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    saved: list[tuple[int, int]] = []
    for fd in (1, 2):
        with contextlib.suppress(OSError):  # a closed descriptor: nothing can be printed there
            saved.append((fd, os.dup(fd)))
    if not saved:
        yield
        return
    _flush(streams)
    _flush_c_streams()
    null = os.open(os.devnull, os.O_WRONLY)
    diverted: list[ThreadMutedStream] = []
    try:
        copies = dict(saved)
        for wrapper in wrappers:
            number = _fileno(wrapper._stream) if wrapper is not None else None
            if wrapper is not None and number is not None and number in copies:
                encoding = getattr(wrapper._stream, "encoding", None) or "utf-8"
                errors = getattr(wrapper._stream, "errors", None) or "strict"
                raw = io.FileIO(copies[number], "w", closefd=False)
                wrapper.divert(io.TextIOWrapper(raw, encoding, errors, write_through=True))
                diverted.append(wrapper)
        for fd, _copy in saved:
            os.dup2(null, fd)
        yield
    finally:
        _flush(streams)
        _flush_c_streams()
        for fd, copy in saved:
            os.dup2(copy, fd)
        for wrapper in diverted:
            stream = wrapper.divert(None)
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
        for _fd, copy in saved:
            os.close(copy)
        os.close(null)


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
