"""Static checks of docker-compose.yml, the env examples and deploy/Dockerfile.

No Docker engine is needed: the compose file is validated against the Compose Specification
schema (check-jsonschema's vendored copy, run as a program: `integration`) and then read as
YAML (`unit`).
"""

from __future__ import annotations

import base64
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .service_stores import CLICKHOUSE_SERVICES, migrate_command, uses_postgres

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DEV_OVERLAY = REPO / "docker-compose.dev.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DEV_ONLY_SERVICES = {"sandbox"}
# Long-running services that cannot carry a Docker healthcheck, with the reason.
NO_HEALTHCHECK = {
    "otel-collector": "distroless image: no shell or HTTP client to probe with",
    "jaeger": "distroless image: no shell or HTTP client to probe with",
}
SECRET_KEY = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEYS?($|_)", re.I)
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]*:(?P<password>[^@/\s]+)@", re.I)
PLACEHOLDER = "change-me"
# Postgres databases (analytics has none: its state is ClickHouse).
SERVICE_DATABASES = (
    "chorus_gateway",
    "chorus_publishing",
    "chorus_connector",
    "chorus_listening",
    "chorus_inbox",
    "chorus_ai",
)

GATEWAY = "gateway"
GATEWAY_PORT = 8000  # container port of every service (CHORUS_PORT in deploy/Dockerfile)
JWKS_URL = f"http://{GATEWAY}:{GATEWAY_PORT}/.well-known/jwks.json"

Service = dict[str, Any]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    return compose["services"]


def workspace_services() -> list[str]:
    return sorted(p.parent.name for p in (REPO / "services").glob("*/pyproject.toml"))


def build_service(service: Service) -> str | None:
    build = service.get("build")
    if not isinstance(build, dict):
        return None
    return (build.get("args") or {}).get("SERVICE")


def env_file_paths(service: Service) -> list[Path]:
    entries = service.get("env_file") or []
    entries = [entries] if isinstance(entries, str | dict) else entries
    paths = [e["path"] if isinstance(e, dict) else e for e in entries]
    return [REPO / p for p in paths]


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def inline_environment(service: Service) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def one_shot_jobs(services: dict[str, Service]) -> set[str]:
    """Services others wait for with `service_completed_successfully`."""
    jobs: set[str] = set()
    for service in services.values():
        depends = service.get("depends_on") or {}
        if isinstance(depends, dict):
            jobs |= {
                name
                for name, cond in depends.items()
                if (cond or {}).get("condition") == "service_completed_successfully"
            }
    return jobs


def secret_problems(key: str, value: str, *, inline: bool) -> list[str]:
    problems = []
    if SECRET_KEY.search(key) and value and not value.startswith("${"):
        if inline:
            problems.append(f"{key}: secret literal inline (use an env_file or ${{VAR}})")
        elif PLACEHOLDER not in value:
            problems.append(f"{key}: secret value is not an obvious placeholder")
    match = URL_PASSWORD.match(value)
    if match and PLACEHOLDER not in match["password"] and not match["password"].startswith("${"):
        problems.append(f"{key}: URL carries a real-looking password")
    return problems


@pytest.mark.integration
def test_compose_file_matches_compose_spec() -> None:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    result = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE), str(DEV_OVERLAY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.unit
def test_every_workspace_service_is_built_from_the_dockerfile(services: dict[str, Service]) -> None:
    built = {build_service(s) for s in services.values()}
    names = workspace_services()
    assert names, "no services/*/pyproject.toml found"
    for name in names:
        assert name in built, f"services/{name} has no compose service built with SERVICE={name}"
        assert name in services, f"compose service {name!r} (its api role) is missing"
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
            assert service["build"]["context"] == ".", name


@pytest.mark.unit
def test_dev_only_services_sit_behind_the_dev_profile(services: dict[str, Service]) -> None:
    for name, service in services.items():
        if build_service(service) in DEV_ONLY_SERVICES:
            assert service.get("profiles") == ["dev"], f"{name} must be in the dev profile only"
        else:
            assert "profiles" not in service, f"{name} should run by default"


@pytest.mark.unit
def test_expected_roles_and_jobs_exist(services: dict[str, Service]) -> None:
    expected = {
        "gateway": "--role api",
        "gateway-worker": "--role worker",
        "gateway-migrate": "migrate",
        "publishing": "--role api",
        "publishing-worker": "--role worker",
        "publishing-scheduler": "--role scheduler",
        "connector": "--role api",
        "connector-worker": "--role worker",
        "publishing-migrate": "migrate",
        "connector-migrate": "migrate",
        "analytics": "--role api",
        "analytics-worker": "--role worker",
        "analytics-migrate": "migrate-clickhouse",
    }
    for name, command in expected.items():
        assert " ".join(services[name]["command"]) == command, name
    assert services["kafka-init"]["entrypoint"] == ["python", "-m", "chorus_runtime.topics_cli"]
    assert services["kafka-init"]["command"] == ["create"]
    for infra in ("kafka", "clickhouse", "postgres", "redis", "otel-collector"):
        assert infra in services, infra
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


@pytest.mark.unit
def test_every_service_has_a_healthcheck_or_is_a_job(services: dict[str, Service]) -> None:
    jobs = one_shot_jobs(services)
    for name, service in services.items():
        if name in jobs:
            assert service.get("restart") == "no", f"job {name} must not restart"
            continue
        if name in NO_HEALTHCHECK:
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


@pytest.mark.unit
def test_dev_overlay_points_the_connector_at_the_sandbox(services: dict[str, Service]) -> None:
    overlay = yaml.safe_load(DEV_OVERLAY.read_text())["services"]
    assert set(overlay) <= set(services), "the overlay only adjusts services of the file"
    for name in ("connector", "connector-worker"):
        assert overlay[name]["environment"]["CHORUS_CONNECTOR_SANDBOX_URL"] == (
            "http://sandbox:8000"
        )
    assert overlay["sandbox"]["environment"]["CHORUS_SANDBOX_WEBHOOK_URL"] == (
        "http://connector:8000/webhooks"
    )
    assert services["sandbox"]["profiles"] == ["dev"]


@pytest.mark.unit
def test_traces_reach_the_trace_viewer(services: dict[str, Service]) -> None:
    config = yaml.safe_load((REPO / "deploy/otel/collector.yaml").read_text())
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    (name,) = [e for e in exporters if e.startswith("otlp")]
    assert config["exporters"][name]["endpoint"].split(":")[0] == "jaeger"
    assert "jaeger" in services
    assert "127.0.0.1:16686:16686" in services["jaeger"]["ports"]


@pytest.mark.unit
def test_publishing_roles_share_the_media_volume(services: dict[str, Service]) -> None:
    roles = [n for n in services if n.startswith("publishing") and n != "publishing-migrate"]
    assert len(roles) == 3
    for name in roles:
        env = services[name]["environment"]
        assert env["CHORUS_PUBLISHING_MEDIA_ROOT"] == "/var/lib/chorus/media"
        assert env["CHORUS_PUBLISHING_MEDIA_BASE_URL"] == "http://publishing:8000"
        assert "media-data:/var/lib/chorus/media" in services[name]["volumes"]


@pytest.mark.unit
def test_app_services_wait_for_infrastructure_and_migrations(
    services: dict[str, Service],
) -> None:
    for name, service in services.items():
        svc = build_service(service)
        depends = service.get("depends_on") or {}
        for dep, cond in depends.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert cond["condition"] in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
        if not svc or svc in DEV_ONLY_SERVICES or name == "kafka-init":
            continue
        # Postgres for the services with a database, ClickHouse for the others (only).
        store, absent = (
            ("postgres", "clickhouse") if uses_postgres(svc) else ("clickhouse", "postgres")
        )
        if name.endswith("-migrate"):
            assert name == f"{svc}-migrate", f"{name} migrates {svc}"
            assert service["command"] == migrate_command(svc), name
            assert depends[store]["condition"] == "service_healthy", name
            assert absent not in depends, name
            continue
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["kafka-init"]["condition"] == "service_completed_successfully", name
        assert depends[f"{svc}-migrate"]["condition"] == "service_completed_successfully", name
        assert depends[store]["condition"] == "service_healthy", name
        if not uses_postgres(svc):
            assert "postgres" not in depends, f"{name} has no Postgres database"


@pytest.mark.unit
def test_env_files_exist_and_configure_each_service(services: dict[str, Service]) -> None:
    for name, service in services.items():
        for path in env_file_paths(service):
            assert path.is_file(), f"{name}: missing env_file {path.relative_to(REPO)}"
        svc = build_service(service)
        if svc and svc not in DEV_ONLY_SERVICES and name != "kafka-init":
            paths = env_file_paths(service)
            assert REPO / f"deploy/env/{svc}.env.example" in paths, name
            env = read_env_file(REPO / f"deploy/env/{svc}.env.example")
            if uses_postgres(svc):
                assert f"CHORUS_{svc.upper()}_DATABASE_URL" in env, svc
            else:
                assert env.get(f"CHORUS_{svc.upper()}_CLICKHOUSE_URL"), svc
                assert f"CHORUS_{svc.upper()}_DATABASE_URL" not in env, svc
    common = read_env_file(REPO / "deploy/env/common.env.example")
    assert common["CHORUS_MODE"] == "production"
    for key in ("CHORUS_KAFKA_BOOTSTRAP_SERVERS", "CHORUS_REDIS_URL", "CHORUS_OTLP_ENDPOINT"):
        assert common[key], key
    assert "CHORUS_TOPIC_PREFIX" in common


@pytest.mark.unit
def test_no_secret_literals(services: dict[str, Service]) -> None:
    problems: list[str] = []
    for name, service in services.items():
        for key, value in inline_environment(service).items():
            problems += [f"{name}: {p}" for p in secret_problems(key, value, inline=True)]
    for path in sorted((REPO / "deploy" / "env").glob("*.env.example")):
        for key, value in read_env_file(path).items():
            problems += [f"{path.name}: {p}" for p in secret_problems(key, value, inline=False)]
    assert not problems, "\n".join(problems)


@pytest.mark.unit
def test_secret_checker_flags_literals() -> None:
    assert secret_problems("POSTGRES_PASSWORD", "hunter2", inline=True)
    assert secret_problems("POSTGRES_PASSWORD", "hunter2", inline=False)
    assert secret_problems("CHORUS_X_DATABASE_URL", "postgresql://u:hunter2@db/x", inline=False)
    assert not secret_problems("POSTGRES_PASSWORD", "${POSTGRES_PASSWORD}", inline=True)
    assert not secret_problems("POSTGRES_PASSWORD", "change-me-pg", inline=False)
    assert not secret_problems("KAFKA_NODE_ID", "1", inline=True)


@pytest.mark.unit
def test_mounted_files_exist(services: dict[str, Service]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"


@pytest.mark.unit
def test_postgres_init_script_creates_every_service_database(
    services: dict[str, Service],
) -> None:
    script = REPO / "deploy" / "postgres" / "init-databases.sh"
    assert script.stat().st_mode & 0o111, "init script must be executable"
    text = script.read_text()
    for database in SERVICE_DATABASES:
        assert re.search(rf"^\s*{database}\s*$", text, re.M), database
    for svc in CLICKHOUSE_SERVICES:
        assert not re.search(rf"^\s*chorus_{svc}\s*$", text, re.M), f"{svc}: no Postgres database"
    mounts = " ".join(services["postgres"]["volumes"])
    assert "init-databases.sh:/docker-entrypoint-initdb.d/" in mounts


def settings_class(svc: str) -> type[Any]:
    """The ServiceSettings subclass of workspace service `svc` (chorus_<svc>.settings)."""
    from chorus_runtime.settings import ServiceSettings

    module = importlib.import_module(f"chorus_{svc}.settings")
    (cls,) = [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, ServiceSettings)
        and v.__module__ == module.__name__
    ]
    return cls


@pytest.mark.unit
def test_service_stores_match_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """service_stores.py (which services skip Postgres, and how they migrate) is what the
    services' own code says: a service may drop the Postgres checks only if it really has no
    Postgres database, and its migrate job's subcommand must exist."""
    for key in list(os.environ):
        if key.startswith("CHORUS_"):
            monkeypatch.delenv(key)
    for svc in workspace_services():
        if svc in DEV_ONLY_SERVICES:
            continue
        assert settings_class(svc).needs_database() is uses_postgres(svc), svc
    for svc, command in CLICKHOUSE_SERVICES.items():
        main = importlib.import_module(f"chorus_{svc}.main")
        runtime = main.build(settings_class(svc)(clickhouse_url="chdb://:memory:"))
        assert runtime.commands.get(command[0]), f"chorus-{svc} has no {command[0]} subcommand"


@pytest.mark.unit
def test_otel_collector_config_wires_otlp_pipelines() -> None:
    config = yaml.safe_load((REPO / "deploy" / "otel" / "collector.yaml").read_text())
    assert "otlp" in config["receivers"]
    for pipeline in ("traces", "metrics", "logs"):
        wiring = config["service"]["pipelines"][pipeline]
        assert wiring["receivers"] == ["otlp"]
        for kind in ("processors", "exporters"):
            for component in wiring[kind]:
                assert component in config[kind], f"{pipeline}: undefined {component}"


@pytest.mark.unit
def test_dockerfile_builds_a_small_non_root_image() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG SERVICE$", text, re.M)
    assert re.search(r"uv sync --frozen --no-dev .*--package \"chorus-\$\{SERVICE\}\"", text)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS runtime$", text, re.M)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*urllib.*127\.0\.0\.1:8000/healthz", text, re.M)
    assert 'exec \\"chorus-${CHORUS_SERVICE}\\"' in text
    assert re.search(r'^CMD \["--role", "all"\]$', text, re.M)


@pytest.mark.unit
def test_dockerignore_keeps_the_build_inputs() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in ("pyproject.toml", "uv.lock", "libs", "services", "schemas"):
        assert needed not in ignored, f"{needed} is excluded from the build context"
        assert (REPO / needed).exists(), needed
    for heavy in (".venv", ".chorus", ".git", "tests-e2e", "**/__pycache__"):
        assert heavy in ignored, heavy
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M)
    for sources in copied:
        for source in sources.split():
            assert (REPO / source.rstrip("/")).exists(), f"COPY source {source} missing"


# -- the gateway ----------------------------------------------------------------------------


def effective_env(service: Service) -> dict[str, str]:
    """env_file entries in order, then `environment` (what compose hands the container)."""
    env: dict[str, str] = {}
    for path in env_file_paths(service):
        env.update(read_env_file(path))
    env.update(inline_environment(service))
    return env


def api_role_of(services: dict[str, Service], name: str) -> Service:
    """Compose service `name` must run the api role of a workspace service."""
    assert name in services, f"no compose service {name}"
    service = services[name]
    assert service["command"] == ["--role", "api"], name
    return service


def published_ports(service: Service) -> list[str]:
    return [str(p) for p in service.get("ports") or []]


@pytest.mark.unit
def test_gateway_is_the_client_entry_point_on_port_8000(services: dict[str, Service]) -> None:
    gateway = api_role_of(services, GATEWAY)
    assert build_service(gateway) == GATEWAY
    assert published_ports(gateway) == [f"127.0.0.1:8000:{GATEWAY_PORT}"]
    for name, service in services.items():
        if name != GATEWAY:
            assert not [p for p in published_ports(service) if p.split(":")[-2] == "8000"], name
    worker = services["gateway-worker"]
    assert build_service(worker) == GATEWAY and worker["command"] == ["--role", "worker"]
    assert not published_ports(worker)
    migrate = services["gateway-migrate"]
    assert build_service(migrate) == GATEWAY and migrate["command"] == ["migrate"]
    for name in (GATEWAY, "gateway-worker"):
        depends = services[name]["depends_on"]
        assert depends["gateway-migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy", "rate limits need Redis"


@pytest.mark.unit
def test_every_service_verifies_tokens_with_the_gateway_jwks(
    services: dict[str, Service],
) -> None:
    gateway = api_role_of(services, GATEWAY)
    assert build_service(gateway) == GATEWAY
    checked = 0
    for name, service in services.items():
        svc = build_service(service)
        if not svc:
            continue
        env = effective_env(service)
        assert env.get("CHORUS_JWKS_URL") == JWKS_URL, name
        # A service-prefixed variable would win over the shared one.
        assert f"CHORUS_{svc.upper()}_JWKS_URL" not in env, name
        checked += 1
    assert checked >= len(workspace_services())


@pytest.mark.unit
def test_gateway_upstreams_are_the_services_api_roles(services: dict[str, Service]) -> None:
    from chorus_gateway.main import UPSTREAMS

    env = read_env_file(REPO / "deploy/env/gateway.env.example")
    # Services with a compose api role get a URL; the others stay empty until they are wired
    # in (that every workspace service is, is checked above).
    deployed = {build_service(s) for s in services.values()} - {None, GATEWAY}
    for upstream in UPSTREAMS:
        key = f"CHORUS_GATEWAY_{upstream.upper()}_URL"
        assert key in env, f"gateway.env.example does not mention {key}"
        url = env[key]
        if upstream not in deployed:
            assert url == "", f"{key}: {upstream} is not in docker-compose.yml; leave it empty"
            continue
        assert url == f"http://{upstream}:{GATEWAY_PORT}", key
        assert build_service(api_role_of(services, upstream)) == upstream


@pytest.mark.unit
def test_gateway_env_example_builds_gateway_settings(
    services: dict[str, Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example env files are accepted by the gateway's own settings and key parser
    (e.g. CHORUS_GATEWAY_TRUSTED_PROXIES must be a JSON list, not an empty string)."""
    from chorus_gateway.settings import GatewaySettings
    from chorus_runtime.crypto import Keyring

    for key in list(os.environ):
        if key.startswith("CHORUS_"):
            monkeypatch.delenv(key)
    for key, value in effective_env(services[GATEWAY]).items():
        monkeypatch.setenv(key, value)
    settings = GatewaySettings()
    assert settings.mode.value == "production"
    assert settings.database_url.endswith("@postgres:5432/chorus_gateway")
    assert settings.trusted_proxies == []
    assert settings.jwks_url == JWKS_URL
    kek = settings.key_encryption_key
    assert PLACEHOLDER in kek, "the example key must be an obvious placeholder"
    kid, _, key = kek.partition(":")
    assert kid and len(base64.b64decode(key, validate=True)) == 32, "format kid:base64(32 bytes)"
    Keyring.parse(kek)


# -- analytics (ClickHouse, no Postgres) -------------------------------------------------------


@pytest.mark.unit
def test_analytics_env_example_builds_analytics_settings(
    services: dict[str, Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The analytics env files are accepted by its own settings; the ClickHouse URL is the
    compose server with clickhouse.env.example's (placeholder) credentials."""
    from chorus_analytics.settings import AnalyticsSettings

    for key in list(os.environ):
        if key.startswith("CHORUS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CHORUS_PORT", "8000")  # deploy/Dockerfile's ENV
    for name in ("analytics", "analytics-worker", "analytics-migrate"):
        for key, value in effective_env(services[name]).items():
            monkeypatch.setenv(key, value)
        settings = AnalyticsSettings()
        assert settings.mode.value == "production", name
        assert settings.port == GATEWAY_PORT, name
        assert not settings.embedded_clickhouse, name
        assert settings.migrate_on_start is False, f"{name}: analytics-migrate migrates"
    clickhouse = read_env_file(REPO / "deploy/env/clickhouse.env.example")
    url = urlsplit(settings.clickhouse_url)
    assert (url.scheme, url.hostname, url.port) == ("clickhouse", "clickhouse", 8123)
    assert url.username == clickhouse["CLICKHOUSE_USER"]
    assert url.password == clickhouse["CLICKHOUSE_PASSWORD"]
    assert PLACEHOLDER in url.password
