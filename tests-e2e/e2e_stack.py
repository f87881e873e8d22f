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
    ]


def read_endpoints(state: Path) -> dict[str, str]:
    out = {}
    for line in (state / "endpoints.env").read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out
