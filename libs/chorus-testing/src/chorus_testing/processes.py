"""A service role as a real child process (`python -m <module> serve --role R`), for tests
and benchmarks that kill, stall or count processes: what `apps.running` cannot do in-process.

Only the CHORUS_* variables given are passed on (none leak in from the caller's environment,
e.g. an armed `CHORUS_FAILPOINTS`); output goes to a log file whose tail failures quote.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    async def ready(self, timeout: float = 60.0) -> None:
        """Until `/readyz` answers 200 (its database and broker are reachable)."""
        deadline = time.monotonic() + timeout
        last = ""
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    resp = await client.get(f"{self.url}/readyz")
                    if resp.status_code == 200:
                        return
                    last = f"{resp.status_code} {resp.text[:300]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s: {last}\n{self.log_tail()}")

    async def exited(self, timeout: float = 60.0) -> int:
        """The exit code, once the process has ended by itself."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} still running after {timeout:.0f}s")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    async def said(self, text: str, timeout: float = 60.0) -> None:
        """Until `text` shows up in the process's output (e.g. a failpoint announcing itself)."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before saying {text!r}:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not say {text!r}:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a node dies."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (graceful shutdown), SIGKILL if it does not end in `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_role(
    name: str,
    module: str,
    role: str,
    env: dict[str, str],
    logs: Path,
    *,
    port: int | None = None,
) -> ServiceProcess:
    """Start `python -m <module> serve --role <role>` with `env` as its only CHORUS_* settings."""
    port = port or free_port()
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--role", role, "--port", str(port)],
            env={**base, **env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(name, proc, port, log)
