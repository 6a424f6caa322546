"""Every manifest validates against the schemas Knative, Kubernetes and skaffold publish."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = REPO.parent / "shared" / "tools" / "validate-manifests"
CORE_API_PREFIXES = ("v1", "rbac.authorization.k8s.io/")


@pytest.fixture(scope="module")
def validator() -> Path:
    if not VALIDATOR.is_file():
        pytest.skip("../shared/tools/validate-manifests is absent: the handbook's validator "
                    "and Knative's CRD schemas live there")
    return VALIDATOR


def test_every_document_passes_the_strict_validator(validator: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(validator), "--strict", "knative", "eventing", "skaffold",
         "skaffold.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 invalid" in result.stdout
    # Core kinds are checked too (kubernetes-validate is installed), never skipped.
    assert "skip " not in result.stdout


def core_documents() -> list[tuple[str, dict[str, object]]]:
    found = []
    for folder in ("knative", "eventing", "skaffold"):
        for path in sorted((REPO / folder).rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and str(doc.get("apiVersion", "")).startswith(CORE_API_PREFIXES):
                    found.append((f"{path.relative_to(REPO)} {doc['kind']}", doc))
    return found


@pytest.mark.parametrize(("where", "document"), core_documents(),
                         ids=[where for where, _ in core_documents()])
def test_core_kinds_pass_kubernetes_validate(where: str, document: dict[str, object]) -> None:
    kubernetes_validate.validate(document, "1.30", strict=True)
