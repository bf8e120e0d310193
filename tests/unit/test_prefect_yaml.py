from pathlib import Path

import pytest

from deployments.prefect_yaml import read_deployments
from tasks.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def test_project_prefect_yaml_defines_both_deployments():
    specs = {spec.name: spec for spec in read_deployments(ROOT / "prefect.yaml")}
    assert set(specs) == {"deploy-on-merge", "scheduled-redeploy"}
    assert specs["deploy-on-merge"].crons == ()
    assert specs["scheduled-redeploy"].crons == (("0 3 * * *", "UTC"),)
    for spec in specs.values():
        assert spec.concurrency_limit == 1
        assert spec.parameters["rollback"] is True
        assert spec.parameters["secrets"] == ["GRAFANA_API_KEY"]
        assert "GRAFANA_API_KEY" not in spec.parameters["variables"]


def test_errors_name_the_file(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        read_deployments(tmp_path / "prefect.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("deployments: [\n")
    with pytest.raises(InputError, match=r"bad\.yaml is not valid YAML"):
        read_deployments(bad)
    other = tmp_path / "other.yaml"
    other.write_text("deployments:\n  - name: x\n    entrypoint: other.py:f\n")
    with pytest.raises(InputError, match="no deployment has entrypoint"):
        read_deployments(other)
