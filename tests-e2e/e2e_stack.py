"""Helpers to run the stack as `make up` does, in a temporary state directory."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stack_cmd(state: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "chorus_runtime.embedded.stack",
        *args,
        "--state-dir",
        str(state),
        "--port-offset",
        "100",
        "--topic-prefix",
        "e2e.",
        # Databases of their own, emptied at each start: nothing of a developer's stack (or
        # of an earlier run) leaks into the journeys, and they touch nothing of yours.
        "--database-suffix",
        "_e2e",
        *(["--fresh-databases"] if args[0] == "up" else []),
    ]


def compose_cmd(*args: str) -> list[str]:
    """`docker compose` with the dev overlay and profile (sandbox wired to the connector)."""
    return [
        "docker",
        "compose",
        "-f",
        str(ROOT / "docker-compose.yml"),
        "-f",
        str(ROOT / "docker-compose.dev.yml"),
        "--profile",
        "dev",
        *args,
    ]


def write_compose_endpoints(state: Path) -> None:
    """The compose stack's published ports, in the same file `make up` writes."""
    (state / "endpoints.env").write_text(
        "KAFKA_BOOTSTRAP_SERVERS=localhost:9094\n"
        "TOPIC_PREFIX=\n"
        "GATEWAY_URL=http://127.0.0.1:8000\n"
        "SANDBOX_URL=http://127.0.0.1:8099\n"
    )


def read_endpoints(state: Path) -> dict[str, str]:
    out = {}
    for line in (state / "endpoints.env").read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out
