"""The Helm chart lints, renders and validates against the Kubernetes API schemas.

Runs the `helm` binary shipped inside a PyPI package (see helm_binary.py) and validates every
rendered manifest with kubernetes-validate (strict: unknown fields are errors).
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from .helm_binary import helm_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "chorus"
PRODUCTION = CHART / "values-production.yaml"
KUBE_VERSION = "1.35.0"
RELEASE = "chorus"
NAMESPACE = "chorus"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
# Kinds from CRDs have no schema in kubernetes-validate.
CRD_KINDS = {"ServiceMonitor"}
ROLES = {
    "publishing": {"api", "worker", "scheduler"},
    "connector": {"api", "worker"},
}
DEV_ONLY_SERVICES = {"sandbox"}
HOOK = "pre-install,pre-upgrade"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        pytest.skip("the packaged helm binary is linux/amd64 only")
    binary = str(helm_binary())
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str) -> str:
        result = subprocess.run(
            [binary, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result.stdout

    return run


@pytest.fixture(scope="module")
def render(helm: Callable[..., str]) -> Render:
    cache: dict[tuple[str, ...], list[Manifest]] = {}

    def _render(*extra: str) -> list[Manifest]:
        if extra not in cache:
            out = helm(
                "template", RELEASE, str(CHART),
                "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *extra,
            )  # fmt: skip
            cache[extra] = [doc for doc in yaml.safe_load_all(out) if doc]
        return cache[extra]

    return _render


def by_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def component(service: str, role: str) -> str:
    return f"{RELEASE}-{service}-{role}"


def pod_labels(deployment: Manifest) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


VALUE_SETS = {"default": (), "production": ("-f", str(PRODUCTION))}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_lints(helm: Callable[..., str], values: tuple[str, ...]) -> None:
    out = helm("lint", str(CHART), "--strict", *values)
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_manifests_validate_against_kubernetes(
    render: Render, values: tuple[str, ...]
) -> None:
    manifests = render(*values, "--api-versions", SERVICE_MONITOR_API)
    errors = []
    for manifest in manifests:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except SchemaNotFoundError:
            assert manifest["kind"] in CRD_KINDS, f"no schema for {name}"
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_one_deployment_per_service_role(render: Render, values: tuple[str, ...]) -> None:
    deployments = by_kind(render(*values), "Deployment")
    expected = {component(s, r) for s, roles in ROLES.items() for r in roles}
    assert set(deployments) == expected
    for service, roles in ROLES.items():
        for role in roles:
            pod = deployments[component(service, role)]["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            assert container["args"] == ["--role", role]
            assert f"/chorus/{service}:" in f"/{container['image']}"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == 10001
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_every_workspace_service_is_in_the_chart() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for pyproject in (REPO / "services").glob("*/pyproject.toml"):
        name = pyproject.parent.name
        if name not in DEV_ONLY_SERVICES:
            assert name in values["services"], f"services/{name} is missing from values.yaml"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_api_roles_have_services_hpas_and_pdbs(render: Render, values: tuple[str, ...]) -> None:
    manifests = render(*values)
    deployments = by_kind(manifests, "Deployment")
    services = by_kind(manifests, "Service")
    hpas = by_kind(manifests, "HorizontalPodAutoscaler")
    pdbs = by_kind(manifests, "PodDisruptionBudget")
    for service in ROLES:
        api = component(service, "api")
        assert api in services, f"no Service for {api}"
        assert selects(services[api]["spec"]["selector"], pod_labels(deployments[api]))
        assert api in hpas and api in pdbs
    assert set(services) == {component(s, "api") for s in ROLES}
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert "replicas" not in deployments[name]["spec"], "the HPA owns replicas"
    for name, pdb in pdbs.items():
        assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(deployments[name]))
    assert set(pdbs) == set(deployments)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_migrations_and_topics_run_as_hooks(render: Render, values: tuple[str, ...]) -> None:
    jobs = by_kind(render(*values), "Job")
    assert set(jobs) == {f"{RELEASE}-{s}-migrate" for s in ROLES} | {f"{RELEASE}-topics"}
    for name, job in jobs.items():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == HOOK, name
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        # Hooks run before the chart's ConfigMap exists: nothing may reference it.
        for source in pod["containers"][0].get("envFrom", []):
            assert "configMapRef" not in source, name
    topics = jobs[f"{RELEASE}-topics"]
    weight = int(topics["metadata"]["annotations"]["helm.sh/hook-weight"])
    for service in ROLES:
        migrate = jobs[f"{RELEASE}-{service}-migrate"]
        assert int(migrate["metadata"]["annotations"]["helm.sh/hook-weight"]) > weight
        assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    container = topics["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "chorus_runtime.topics_cli"]
    assert container["args"] == ["create"]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_configuration_comes_from_configmap_and_existing_secrets(
    render: Render, values: tuple[str, ...]
) -> None:
    manifests = render(*values)
    (configmap,) = by_kind(manifests, "ConfigMap").values()
    data = configmap["data"]
    assert data["CHORUS_MODE"] == "production"
    assert data["CHORUS_KAFKA_BOOTSTRAP_SERVERS"]
    assert "CHORUS_TOPIC_PREFIX" in data
    assert not [k for k in data if any(w in k for w in ("PASSWORD", "SECRET", "TOKEN"))]
    assert not by_kind(manifests, "Secret"), "the chart references Secrets, it never holds them"
    for name, deployment in by_kind(manifests, "Deployment").items():
        sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": configmap["metadata"]["name"]}} in sources
        service = pod_labels(deployment)["chorus/service"]
        assert {"secretRef": {"name": f"chorus-{service}"}} in sources, name


def test_optional_objects_follow_values_and_capabilities(render: Render) -> None:
    default = render()
    assert not by_kind(default, "NetworkPolicy")
    assert not by_kind(render("--api-versions", SERVICE_MONITOR_API), "ServiceMonitor")

    production = render("-f", str(PRODUCTION))
    assert not by_kind(production, "ServiceMonitor"), "needs the monitoring.coreos.com API"
    (policy,) = by_kind(production, "NetworkPolicy").values()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    for deployment in by_kind(production, "Deployment").values():
        assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels(deployment))

    monitored = render("-f", str(PRODUCTION), "--api-versions", SERVICE_MONITOR_API)
    (monitor,) = by_kind(monitored, "ServiceMonitor").values()
    for service in by_kind(monitored, "Service").values():
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
