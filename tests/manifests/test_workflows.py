"""The cluster workflow, checked as far as this machine can without GitHub or a cluster.

actionlint cannot be installed here (its Python package downloads the binary from GitHub
while it builds), so the two checks it makes that matter most are made with well-kept
tools instead: the workflow against GitHub's workflow schema (check-jsonschema's vendored
copy of SchemaStore's), and every `run:` script through shellcheck, as actionlint does.
The Kubernetes objects the workflow applies next to the project's own are checked with
kubernetes-validate, and the steps that point the manifests at the workflow's cluster are
checked to still find what they edit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yaml"))
CLUSTER_E2E = REPO / ".github" / "cluster-e2e"


def _check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False)


def test_workflows_pass_githubs_workflow_schema() -> None:
    assert WORKFLOWS, "no workflow found under .github/workflows"
    result = _check_jsonschema(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    workflow = yaml.safe_load(WORKFLOWS[0].read_text())
    del workflow["jobs"]["demo"]["runs-on"]  # a job without a runner is not a job
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(workflow))
    assert _check_jsonschema(broken).returncode != 0


def _run_scripts() -> list[tuple[str, str]]:
    scripts = []
    for path in WORKFLOWS:
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for index, step in enumerate(job["steps"]):
                if "run" in step:
                    where = f"{path.name} {job_name} step {index + 1} ({step.get('name', '')})"
                    scripts.append((where, step["run"]))
    return scripts


@pytest.mark.parametrize(("where", "script"), _run_scripts(),
                         ids=[where for where, _ in _run_scripts()])
def test_run_scripts_pass_shellcheck(where: str, script: str, tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    assert "${{" not in script, f"{where}: pass expressions through env:, not into the script"
    # GitHub runs `run:` with bash -e on ubuntu runners.
    file = tmp_path / "step.sh"
    file.write_text("#!/usr/bin/env bash\nset -e\n" + script)
    result = subprocess.run([shellcheck, "--severity=style", str(file)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{where}:\n{result.stdout}"


def test_actions_are_pinned_to_a_commit() -> None:
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    _, _, ref = step["uses"].partition("@")
                    assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), (
                        f"{path.name}: {step['uses']} is not pinned to a full commit")


def _e2e_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.name} {doc['kind']} {doc['metadata']['name']}", doc)
            for path in sorted(CLUSTER_E2E.glob("*.yaml")) if path.name != "kind.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(("where", "document"), _e2e_documents(),
                         ids=[where for where, _ in _e2e_documents()])
def test_the_workflows_own_objects_pass_kubernetes_validate(where: str,
                                                            document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, "1.30", strict=True)


def test_the_workflows_edits_still_find_their_fields() -> None:
    """The workflow points troupe-config at MinIO and the Broker's topic at one replica by
    editing those fields; renaming either in the manifests would silently void the edit."""
    [config] = [d for d in yaml.safe_load_all((REPO / "knative/300-config.yaml").read_text())
                if d and d["kind"] == "ConfigMap"]
    assert "TROUPE_S3_ENDPOINT_URL" in config["data"]
    [kafka] = [d for d in yaml.safe_load_all(
        (REPO / "eventing/100-kafka-broker-config.yaml").read_text()) if d]
    assert "default.topic.replication.factor" in kafka["data"]
    assert kafka["data"]["bootstrap.servers"] == "my-cluster-kafka-bootstrap.kafka:9092"
