"""JSON Schemas and the simple-config `.proto`, shipped inside the package and read with importlib.resources."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

CONFIG_SCHEMA = "config.schema.json"
PTQ_CONFIG_SCHEMA = "ptq_config.schema.json"  # the calibration config of create_quant_config


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed JSON Schema `name` (e.g. "config.schema.json") from this package."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def validator(name: str) -> Any:
    """A jsonschema validator for schema `name`, built once."""
    import jsonschema

    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)
