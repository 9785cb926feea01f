"""crdgen: the committed CRDs match the models, and the CRDs carry the names fixed by api.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubatch.api import crdgen
from kubatch.api.constants import CATEGORY, GROUP, KINDS, VERSION

ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = ROOT / "crds"

# api.md: kind -> (scope, short name, printer columns that must exist, in this order)
CONTRACT = {
    "ComputeEnvironment": ("Cluster", "ce", ["TYPE", "STATE", "STATUS", "DESIRED-VCPUS", "MAX-VCPUS", "AGE"]),
    "JobQueue": ("Cluster", "jq", ["PRIORITY", "STATE", "STATUS", "AGE"]),
    "SchedulingPolicy": ("Cluster", "sp", ["AGE"]),
    "ConsumableResource": ("Cluster", "cres", ["TYPE", "TOTAL", "IN-USE", "AVAILABLE"]),
    "ServiceEnvironment": ("Cluster", "se", ["TYPE", "STATE", "STATUS", "MAX-CAPACITY", "IN-USE", "AGE"]),
    "JobDefinition": ("Namespaced", "jd", ["TYPE", "REVISION", "STATUS", "AGE"]),
    "BatchJob": ("Namespaced", "bj", ["QUEUE", "STATUS", "REASON", "ATTEMPTS", "AGE"]),
    "JobSchedule": ("Namespaced", "js", ["SCHEDULE", "SUSPEND", "LAST-SCHEDULE", "AGE"]),
}


def test_committed_crds_match_the_models() -> None:
    assert crdgen.drift(CRD_DIR) == [], "run `python -m kubatch.api.crdgen`"


def test_committed_files_are_the_rendered_crds() -> None:
    for crd in crdgen.all_crds():
        loaded = yaml.safe_load((CRD_DIR / crdgen.file_name(crd)).read_text())
        assert loaded == crd


def test_all_crds_follow_the_contract() -> None:
    crds = {c["spec"]["names"]["kind"]: c for c in crdgen.all_crds()}
    assert set(crds) == set(CONTRACT) == {k.kind for k in KINDS}
    for kind, (scope, short, columns) in CONTRACT.items():
        crd = crds[kind]
        spec = crd["spec"]
        assert spec["group"] == GROUP
        assert spec["scope"] == scope
        assert spec["names"]["shortNames"] == [short]
        assert spec["names"]["categories"] == [CATEGORY]
        assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{GROUP}"
        (version,) = spec["versions"]
        assert version["name"] == VERSION and version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}
        shown = [c["name"].upper() for c in version["additionalPrinterColumns"] if not c.get("priority")]
        assert [c for c in shown if c in columns] == columns


def test_check_reports_drift_and_stale_files(tmp_path: Path) -> None:
    assert crdgen.main(["--output-dir", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--output-dir", str(tmp_path)]) == 0
    target = tmp_path / "batchjobs.kubatch.dev.yaml"
    target.write_text(target.read_text().replace("minimum: 2", "minimum: 1"))
    assert crdgen.main(["--check", "--output-dir", str(tmp_path)]) == 1
    crdgen.main(["--output-dir", str(tmp_path)])
    (tmp_path / "old.kubatch.dev.yaml").write_text("{}")
    assert any("stale" in p for p in crdgen.drift(tmp_path))


def test_nullable_union_without_structural_form_is_refused() -> None:
    with pytest.raises(ValueError, match="no structural form"):
        crdgen._convert({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, {})


def test_conversion_rules() -> None:
    defs = {"M": {"type": "object", "title": "M", "description": "model", "x-kubernetes-validations": [1]}}
    field = {
        "anyOf": [{"$ref": "#/$defs/M"}, {"type": "null"}],
        "default": None,
        "description": "field",
        "x-kubernetes-validations": [2],
    }
    assert crdgen._convert(field, defs) == {
        "type": "object",
        "description": "field\n\nmodel",
        "x-kubernetes-validations": [1, 2],
    }
    assert crdgen._convert({"const": "A", "type": "string"}, {}) == {"type": "string", "enum": ["A"]}
    assert crdgen._convert({"type": "integer", "exclusiveMinimum": 0}, {}) == {"type": "integer", "minimum": 1}
    assert crdgen._convert({"type": "object", "additionalProperties": True}, {}) == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert crdgen._convert({"anyOf": [{"type": "integer"}, {"type": "string"}]}, {}) == {
        "x-kubernetes-int-or-string": True
    }
