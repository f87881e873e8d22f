"""End-to-end: the platform as separate processes, exactly as `make up` starts them — or,
with `CHORUS_E2E_TARGET=compose` where a Docker engine exists, as `docker compose` runs it
(the same journeys against Apache Kafka, ClickHouse server and the built images)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_stack import ROOT, compose_cmd, stack_cmd, write_compose_endpoints

from chorus_testing.fixtures import docker_unavailable_reason

# Simulated platform timeouts short enough for a test, and the connector's HTTP timeout
# shorter still, so `timeout_after_create` really leaves the outcome unknown.
E2E_ENV = {
    "CHORUS_SANDBOX_TIMEOUT_SECONDS": "4",
    "CHORUS_CONNECTOR_HTTP_TIMEOUT_SECONDS": "2",
    "CHORUS_SANDBOX_RATE_LIMIT_WINDOW_SECONDS": "2",
    # The metrics journey needs collection rounds in seconds, not the hourly default.
    "CHORUS_CONNECTOR_METRICS_INTERVAL_SECONDS": "2",
}
TARGET = os.environ.get("CHORUS_E2E_TARGET", "embedded")


@pytest.fixture(scope="session")
def stack_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("stack")
    if TARGET == "compose":
        yield from _compose(state)
        return
    if TARGET != "embedded":
        pytest.fail(f"CHORUS_E2E_TARGET must be embedded or compose, not {TARGET!r}")
    result = subprocess.run(
        stack_cmd(state, "up", "--detach"),
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **E2E_ENV},
    )
    if result.returncode != 0:
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((state / "logs").glob("*.log"))
        )
        pytest.fail(f"stack up failed:\n{result.stderr[-3000:]}\n{logs}")
    yield state
    subprocess.run(stack_cmd(state, "down"), cwd=ROOT, timeout=120, check=False)


def _compose(state: Path) -> Iterator[Path]:
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(f"CHORUS_E2E_TARGET=compose: {reason}")
    up = subprocess.run(
        compose_cmd("up", "-d", "--build", "--wait"), cwd=ROOT, check=False, timeout=1800
    )
    if up.returncode != 0:
        subprocess.run(compose_cmd("logs", "--tail", "50"), cwd=ROOT, check=False, timeout=120)
        pytest.fail("docker compose up failed (logs above)")
    write_compose_endpoints(state)
    try:
        yield state
    finally:
        subprocess.run(compose_cmd("down", "-v"), cwd=ROOT, check=False, timeout=600)
