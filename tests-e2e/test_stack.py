"""`make up` in miniature: every process starts, answers its probes, and stops cleanly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from e2e_stack import ROOT, read_endpoints, stack_cmd

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("CHORUS_E2E_TARGET") == "compose",
        reason="the embedded stack runner itself (`make up`)",
    ),
]


def test_endpoints_file_names_every_started_service(stack_state: Path) -> None:
    endpoints = read_endpoints(stack_state)
    assert endpoints["KAFKA_BOOTSTRAP_SERVERS"].startswith("127.0.0.1:")
    assert {"GATEWAY_URL", "PUBLISHING_URL", "CONNECTOR_URL"} <= endpoints.keys()


@pytest.mark.parametrize("service", ["GATEWAY_URL", "PUBLISHING_URL", "CONNECTOR_URL"])
def test_every_process_answers_probes_metrics_and_docs(stack_state: Path, service: str) -> None:
    url = read_endpoints(stack_state)[service]
    with httpx.Client(base_url=url, timeout=5) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["database"]["status"] == "up"
        assert checks["broker"]["status"] == "up"
        assert client.get("/healthz").json()["status"] == "ok"
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "chorus_outbox_backlog" in metrics.text
        assert client.get("/openapi.json").json()["openapi"].startswith("3.")


def test_api_refuses_anonymous_calls_with_the_error_body(stack_state: Path) -> None:
    url = read_endpoints(stack_state)["PUBLISHING_URL"]
    resp = httpx.post(f"{url}/api/v1/posts", json={}, headers={"X-Request-ID": "e2e-1"})
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["code"] == "UNAUTHORIZED"
    assert error["requestId"] == "e2e-1"


def test_rerunning_up_replaces_leftovers(stack_state: Path) -> None:
    before = json.loads((stack_state / "stack.json").read_text())["pids"]
    result = subprocess.run(
        stack_cmd(stack_state, "up", "--detach"),
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    after = json.loads((stack_state / "stack.json").read_text())["pids"]
    assert set(before) == set(after)
    for pid in before.values():
        assert not _alive(pid), "the previous run's processes were stopped"
    url = read_endpoints(stack_state)["PUBLISHING_URL"]
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of ours still answers kill(0); read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
