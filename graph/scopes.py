"""Module scopes as exporters record them, turned into an owning module name and class."""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
CLASS_HIERARCHY = "pkg.torch.onnx.class_hierarchy"


_SEPARATOR = "', '"
# longest scope text parsed: a real one is a few hundred characters; parsing megabytes of a hostile file's
# metadata with `ast.literal_eval` would cost seconds and gigabytes (and the cache would keep it)
MAX_SCOPE_TEXT = 64 * 1024


@functools.lru_cache(maxsize=4096)
def _literal_list(text: str | None) -> tuple[str, ...] | None:
    """The list of strings that `text` (a Python repr) spells, or None.

    Every node of a dynamo export carries two of these, so the common case is parsed by splitting: the repr of
    a list of strings none of which needs a quote or an escape is exactly `['a', 'b']`. Anything else goes
    through `ast.literal_eval`; text longer than `MAX_SCOPE_TEXT` is not parsed (None). Cached, because a node's two lists are read once for its owner and once for
    the module classes, and class hierarchies repeat across nodes.
    """
    if not text or len(text) > MAX_SCOPE_TEXT:
        return None
    if text.startswith("['") and text.endswith("']") and len(text) >= 4:
        inner = text[2:-2]
        # a repr escapes what is not printable (a raw newline ends a literal early), so only printable text
        # without quotes or backslashes reads the same split as evaluated
        plain = "\\" not in inner and '"' not in inner and inner.isprintable()
        if plain and "'" not in inner.replace(_SEPARATOR, ""):
            return tuple(inner.split(_SEPARATOR))
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return tuple(value)


def dynamo_owner(metadata: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Return (module name, class name) from a dynamo-exported node's metadata.

    `name_scopes` lists the dotted module paths from the root ('') down to the module whose forward made
    the op, then the fx node name; `class_hierarchy` lists the matching classes (qualified names), then
    the aten op. The owner is the entry before the last. A node without scopes has no known owner.
    """
    scopes = _literal_list(metadata.get(NAME_SCOPES))
    if not scopes or len(scopes) < 2:
        return None, None
    classes = _literal_list(metadata.get(CLASS_HIERARCHY))
    owner_class = None
    if classes is not None and len(classes) == len(scopes):
        owner_class = classes[-2].rsplit(".", 1)[-1]
    return scopes[-2], owner_class


def dynamo_class_paths(metadata: Mapping[str, str]) -> dict[str, str]:
    """Map every module path named in a node's scopes to its qualified class name."""
    scopes = _literal_list(metadata.get(NAME_SCOPES))
    classes = _literal_list(metadata.get(CLASS_HIERARCHY))
    if not scopes or classes is None or len(classes) != len(scopes):
        return {}
    return dict(zip(scopes[:-1], classes[:-1], strict=True))
