"""A validator and a hypothesis instance generator for the subset of OpenAPI v3 (structural schema)
that the generated CRDs use. CEL rules are not evaluated here; the integration tests cover them on a
real API server."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

JSON = Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def validate(value: JSON, schema: dict[str, Any], path: str = "") -> list[str]:
    """Every way value breaks schema, as `path: problem` strings (empty = valid)."""
    errors: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            errors.append(f"{path}: not an int or string: {value!r}")
        return errors
    kind = schema.get("type")
    if kind is None:
        return [f"{path}: schema without type"]
    if isinstance(value, bool) and kind != "boolean":
        return [f"{path}: expected {kind}, got bool"]
    if not isinstance(value, _TYPES[kind]):
        return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        errors += _string(value, schema, path)
    elif isinstance(value, int | float):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
    elif isinstance(value, list):
        errors += _array(value, schema, path)
    elif isinstance(value, dict):
        errors += _object(value, schema, path)
    return errors


def _string(value: str, schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    if len(value) < schema.get("minLength", 0):
        errors.append(f"{path}: shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: longer than {schema['maxLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            errors.append(f"{path}: {value!r} is not an RFC 3339 date-time")
    return errors


def _array(value: list[JSON], schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    if len(value) < schema.get("minItems", 0):
        errors.append(f"{path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: more than {schema['maxItems']} items")
    for i, item in enumerate(value):
        errors += validate(item, schema["items"], f"{path}[{i}]")
    if schema.get("x-kubernetes-list-type") == "map":
        keys = schema["x-kubernetes-list-map-keys"]
        seen = [tuple(item.get(k) for k in keys) for item in value if isinstance(item, dict)]
        if len(seen) != len(set(seen)):
            errors.append(f"{path}: duplicate map keys {keys}")
    return errors


def _object(value: dict[str, JSON], schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(f"{path}: more than {schema['maxProperties']} properties")
    for name in schema.get("required", []):
        if name not in value:
            errors.append(f"{path}.{name}: required")
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if not properties and extra is None:
        return errors  # `metadata: {type: object}`: the API server validates ObjectMeta itself
    for name, item in value.items():
        if name in properties:
            errors += validate(item, properties[name], f"{path}.{name}")
        elif isinstance(extra, dict):
            errors += validate(item, extra, f"{path}.{name}")
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            errors.append(f"{path}.{name}: unknown field")
    return errors


# --------------------------------------------------------------------------------------------------
# Generating valid instances

_MAX_ITEMS = 3
_KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


def _rfc3339(d: datetime) -> str:
    return d.isoformat().replace("+00:00", "Z")


def instances(schema: dict[str, Any]) -> st.SearchStrategy[JSON]:
    """Values valid against schema (OpenAPI only; CEL rules may not hold)."""
    if schema.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(0, 10_000), st.from_regex(r"[0-9]{1,4}(m|Mi|Gi)?", fullmatch=True))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(schema.get("minimum", -1e6), schema.get("maximum", 1e6), allow_nan=False, allow_infinity=False)
    if kind == "string":
        return _strings(schema)
    if kind == "array":
        item = instances(schema["items"])
        size = {"min_size": schema.get("minItems", 0), "max_size": min(schema.get("maxItems", 10), _MAX_ITEMS)}
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema["x-kubernetes-list-map-keys"]
            return st.lists(item, unique_by=lambda v: tuple(v.get(k) for k in keys), **size)
        return st.lists(item, **size)
    if "properties" in schema:
        required = set(schema.get("required", []))
        props = {name: instances(sub) for name, sub in schema["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in props.items() if k in required},
            optional={k: v for k, v in props.items() if k not in required},
        )
    if isinstance(schema.get("additionalProperties"), dict):
        return st.dictionaries(
            _KEY, instances(schema["additionalProperties"]), max_size=min(schema.get("maxProperties", 5), _MAX_ITEMS)
        )
    return st.just({})


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 64)
    if schema.get("format") == "date-time":
        return st.datetimes(datetime(1970, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC)).map(_rfc3339)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= high)
    return st.text(min_size=low, max_size=min(high, 16))
