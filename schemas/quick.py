"""A yes-or-"ask jsonschema" check of an instance against one of QuantScope's own schemas.

Importing jsonschema costs more than a first call's whole analysis of a small model (0.1-0.35 s here), and the
configs QuantScope generates are valid by construction; so the schema document itself is interpreted here for
the keywords QuantScope's schemas use, and jsonschema runs only when this check cannot say yes (to find and word
the errors). The check is one-sided: `conforms` is True only when every keyword holds with the plain meaning
that jsonschema gives it; anything unusual (a keyword not listed here, a float where an integer is expected, a
NaN, a value whose type is ambiguous for `enum`) gives False, never a guess. A property test compares it with
jsonschema on generated and mutated configs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# keywords that say nothing about validity
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description", "$comment"})
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


def _same(value: Any, expected: Any) -> bool:
    """`value` equals `expected` the way jsonschema's `const`/`enum` compare scalars (True is not 1)."""
    return (
        type(value) is type(expected)
        and isinstance(expected, (str, int, bool, type(None)))
        and value == expected
    )


def _is_type(value: Any, name: str) -> bool:
    types = _TYPES.get(name)
    if types is None or (isinstance(value, bool) and name != "boolean"):
        return False
    return isinstance(value, types) and not (isinstance(value, float) and not math.isfinite(value))


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


def conforms(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> bool:
    """True when `instance` certainly satisfies `schema`; False when it does not, or this check cannot tell."""
    root = schema if root is None else root
    for keyword, expected in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if not _holds(keyword, expected, instance, schema, root):
            return False
    return True


def _ruled_out(instance: Any, branch: Mapping[str, Any]) -> bool:
    """Whether `instance` certainly fails `branch`: a property of it has a string `const` that it differs from."""
    if not isinstance(instance, dict):
        return False
    return any(
        isinstance(sub, Mapping)
        and isinstance(sub.get("const"), str)
        and isinstance(instance.get(name), str)
        and instance[name] != sub["const"]
        for name, sub in branch.get("properties", {}).items()
    )


def _holds(
    keyword: str, expected: Any, instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]
) -> bool:
    if keyword == "$ref":
        target = _resolve(expected, root)
        return target is not None and conforms(instance, target, root)
    if keyword == "type":
        names = expected if isinstance(expected, list) else [expected]
        return any(_is_type(instance, name) for name in names)
    if keyword == "const":
        return _same(instance, expected)
    if keyword == "enum":
        return any(_same(instance, option) for option in expected)
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if not _is_type(instance, "number"):
            return False  # jsonschema ignores the keyword for other types; the type keyword decides
        checks = {
            "minimum": instance >= expected,
            "maximum": instance <= expected,
            "exclusiveMinimum": instance > expected,
            "exclusiveMaximum": instance < expected,
        }
        return bool(checks[keyword])
    if keyword == "oneOf":
        # certain only when one branch holds and each other one is ruled out by a string `const` property
        # (the branches of QuantScope's schemas are told apart that way, e.g. by `act_algo`)
        holding = [sub for sub in expected if conforms(instance, sub, root)]
        return len(holding) == 1 and all(
            _ruled_out(instance, sub) for sub in expected if sub is not holding[0]
        )
    if keyword in ("items", "minItems", "maxItems"):
        if not isinstance(instance, list) or "prefixItems" in schema:
            return False  # jsonschema ignores these for other types; the type keyword decides
        if keyword == "items":
            return all(conforms(item, expected, root) for item in instance)
        return bool(len(instance) >= expected if keyword == "minItems" else len(instance) <= expected)
    if not isinstance(instance, dict) or not all(isinstance(key, str) for key in instance):
        return False  # the object keywords below, on anything but a JSON object: let jsonschema say
    if keyword == "required":
        return all(name in instance for name in expected)
    if keyword == "dependentRequired":
        return all(
            all(other in instance for other in needs) for name, needs in expected.items() if name in instance
        )
    if keyword == "properties":
        return all(conforms(instance[name], sub, root) for name, sub in expected.items() if name in instance)
    if keyword == "additionalProperties":
        known = schema.get("properties", {})
        if "patternProperties" in schema:
            return False
        extra = [key for key in instance if key not in known]
        if expected is False:
            return not extra
        return expected is True or all(conforms(instance[key], expected, root) for key in extra)
    return False  # a keyword this check does not know
