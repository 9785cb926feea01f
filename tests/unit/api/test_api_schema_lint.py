"""Every generated schema is a structural Kubernetes schema, documented, and bounded where CEL rules
need bounds for the API server's cost estimate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kubatch.api import crdgen

SCHEMAS = {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in crdgen.all_crds()}
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "const", "title", "nullable", "examples", "uniqueItems"}


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_structural(kind: str) -> None:
    for path, node in walk(SCHEMAS[kind]):
        assert not FORBIDDEN & node.keys(), f"{kind}{path}: {FORBIDDEN & node.keys()}"
        assert node.get("default", 0) is not None, f"{kind}{path}: default null"
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, f"{kind}{path}"
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, f"{kind}{path}"
        if node["type"] == "object" and path.count(".") > 1:
            assert (
                "properties" in node
                or "additionalProperties" in node
                or node.get("x-kubernetes-preserve-unknown-fields")
            ), f"{kind}{path}: object without fields"
        if "exclusiveMinimum" in node or "exclusiveMaximum" in node:
            assert isinstance(node.get("exclusiveMinimum", True), bool), f"{kind}{path}"


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_every_rule_has_a_message(kind: str) -> None:
    for path, node in walk(SCHEMAS[kind]):
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) <= {"rule", "message", "fieldPath", "reason", "messageExpression"}, f"{kind}{path}"
            assert rule["rule"].strip() and rule["message"].strip(), f"{kind}{path}: {rule}"


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_spec_is_bounded_and_documented(kind: str) -> None:
    """CEL cost is estimated from maxItems/maxProperties/maxLength: every spec collection and string
    has one. Every spec field has a description for `kubectl explain`."""
    for path, node in walk(SCHEMAS[kind]["properties"]["spec"], ".spec"):
        where = f"{kind}{path}"
        if path != ".spec" and not path.endswith(("[]", "}")):
            assert node.get("description"), f"{where}: no description"
        kind_ = node.get("type")
        if kind_ == "array":
            assert "maxItems" in node, f"{where}: no maxItems"
        elif kind_ == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{where}: no maxProperties"
        elif kind_ == "string":
            assert "maxLength" in node or "enum" in node or "format" in node, f"{where}: no maxLength"


def test_list_map_keys_are_required_or_defaulted() -> None:
    for kind, schema in SCHEMAS.items():
        for path, node in walk(schema):
            if node.get("x-kubernetes-list-type") != "map":
                continue
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key], f"{kind}{path}"


def test_printer_columns_point_into_the_schema() -> None:
    for crd in crdgen.all_crds():
        version = crd["spec"]["versions"][0]
        root = version["schema"]["openAPIV3Schema"]
        for column in version["additionalPrinterColumns"]:
            node = root
            parts = column["jsonPath"].lstrip(".").split(".")
            if parts[0] == "metadata":
                continue
            for part in parts:
                name, _, index = part.partition("[")
                node = node["properties"][name]
                if index:  # `capacityLimits[0]`: an item of the list
                    node = node["items"]
            assert node.get("type") == column["type"] or (column["type"] == "date" and node.get("format")), column
