"""Errors of `graph/` that callers turn into their own (the analyzer wraps them into `InputFileError`)."""

from __future__ import annotations


class GraphFileError(ValueError):
    """An ONNX or mapping file cannot be read, or the two do not match; the message names the file and
    the entries at fault."""
