"""The deploy files against the real schemas of what reads them, offline.

Every Kubernetes resource validates strictly (no property the API server would reject or drop)
against the Kubernetes OpenAPI schemas that ``kubernetes-validate`` ships, as written and as
``kubectl kustomize`` builds them where kubectl is installed. The Compose file validates
against the Compose specification's schema that ``check-jsonschema`` ships
(``--builtin-schema vendor.compose-spec``). Each validator is also shown a broken copy, so a
validator that accepted anything would fail here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
KUBERNETES_VERSION = kubernetes_validate.latest_version()


def manifests() -> list[tuple[str, dict[str, Any]]]:
    resources = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":  # kustomize's own input, no Kubernetes kind
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                name = f"{path.name}:{document['kind']}/{document['metadata']['name']}"
                resources.append((name, document))
    return resources


def strict_errors(resource: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'.'.join(str(p) for p in exc.path)}: {exc.message}"
    return None


@pytest.mark.parametrize("resource", [r for _, r in manifests()], ids=[n for n, _ in manifests()])
def test_kubernetes_resource_validates_strictly(resource: dict[str, Any]) -> None:
    problem = strict_errors(resource)
    assert problem is None, f"against Kubernetes {KUBERNETES_VERSION}: {problem}"


def test_kubernetes_validation_rejects_a_field_the_api_does_not_have() -> None:
    _, deployment = next((n, r) for n, r in manifests() if r["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    problem = strict_errors(broken)
    assert problem is not None
    assert "livenessProbes" in problem


def test_kubernetes_manifests_as_kustomize_builds_them_validate_strictly() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the files as written are validated above")
    built = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    resources = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert len(resources) == len(manifests())
    problems = {
        f"{r['kind']}/{r['metadata']['name']}": strict_errors(r)
        for r in resources
        if strict_errors(r) is not None
    }
    assert not problems, problems
    assert {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"} == {
        "tickwork"
    }


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    # The module of the check-jsonschema this environment installed (its schema is vendored).
    command = [sys.executable, "-m", "check_jsonschema", "--color", "never"]
    return subprocess.run(
        [*command, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_validates_against_the_compose_specification() -> None:
    checked = check_compose(COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_validation_rejects_a_key_compose_does_not_have(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    stop_grace_period: 120s", "    grace: 120s"))
    assert broken.read_text() != COMPOSE.read_text(), "the worker's stop_grace_period moved"
    checked = check_compose(broken)
    assert checked.returncode != 0
    assert "grace" in checked.stdout + checked.stderr
