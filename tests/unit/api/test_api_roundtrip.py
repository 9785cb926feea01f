"""Property tests: any object valid against a generated schema parses into its model, and the model
writes it back in a form that is equal after a second parse and still valid against the schema."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from kubatch.api import crdgen
from tests.unit.api.openapi_subset import instances, validate

MODELS: list[type[BaseModel]] = [m for k in crdgen.KIND_SCHEMAS for m in (k.spec, k.status)]


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_round_trip(model: type[Any]) -> None:
    schema = crdgen.structural_schema(model)

    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], deadline=None)
    @given(instances(schema))
    def check(raw: dict[str, Any]) -> None:
        assert validate(raw, schema) == [], "generator produced an invalid instance"
        parsed = model.model_validate(raw)
        written = parsed.to_dict()
        assert validate(written, schema) == []
        again = model.model_validate(written)
        assert again == parsed
        assert again.to_dict() == written

    check()


@given(st.data())
def test_validator_rejects_what_the_schema_forbids(data: st.DataObject) -> None:
    schema = crdgen.structural_schema(MODELS[0])
    raw = data.draw(instances(schema))
    assert validate({**raw, "unknownField": 1}, schema) != []
    assert validate({**raw, "type": "NOT_A_TYPE"}, schema) != []
