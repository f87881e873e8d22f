"""`python -m chorus_runtime.embedded.stack up|down|status`: the one-machine stack behind
`make up` (design.md §6.1).

Starts the embedded broker, provisions and migrates each service's Postgres database,
starts every installed service as its own process, waits for each `/readyz`, prints the
endpoints and writes them to `<state>/endpoints.env`. In the foreground Ctrl-C stops
everything; with `--detach` it returns once ready and `down` stops it later.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port: int
    database: bool = True


# Order matters: the gateway first (it serves the JWKS every other service reads).
KNOWN_SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("gateway", "chorus_gateway.main", 8000),
    ServiceSpec("publishing", "chorus_publishing.main", 8001),
    ServiceSpec("connector", "chorus_connector.main", 8002),
    ServiceSpec("listening", "chorus_listening.main", 8003),
    ServiceSpec("inbox", "chorus_inbox.main", 8004),
    # Analytics keeps its data in ClickHouse (embedded: chdb under the state directory).
    ServiceSpec("analytics", "chorus_analytics.main", 8005, database=False),
    ServiceSpec("ai", "chorus_ai.main", 8006),
    ServiceSpec("sandbox", "chorus_sandbox.main", 8010, database=False),
)


def installed_services() -> list[ServiceSpec]:
    return [s for s in KNOWN_SERVICES if importlib.util.find_spec(s.module.split(".")[0])]


def say(msg: str) -> None:
    print(f"[chorus] {msg}", file=sys.stderr, flush=True)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    def __init__(
        self,
        state_dir: Path,
        *,
        port_offset: int = 0,
        topic_prefix: str = "",
        demo: bool = True,
        database_suffix: str = "",
        fresh_databases: bool = False,
    ) -> None:
        self.state = state_dir
        self.demo = demo
        self.database_suffix = database_suffix
        self.fresh_databases = fresh_databases
        self.logs = state_dir / "logs"
        self.pidfile = state_dir / "stack.json"
        self.endpoints = state_dir / "endpoints.env"
        self.port_offset = port_offset
        self.topic_prefix = topic_prefix
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def up(self, *, detach: bool, ready_timeout: float = 90.0) -> int:
        self.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.down(quiet=True)  # leftovers of a previous run never make this fail
        try:
            bootstrap = self._start_broker()
            services = installed_services()
            ports = {spec.name: self._port(spec.name) for spec in services}
            urls = {name: self._url(port) for name, port in ports.items()}
            env = self._base_env(bootstrap)
            if "gateway" in urls:
                # Every service verifies tokens with the gateway's keys; the gateway proxies
                # to every other service.
                env["CHORUS_JWKS_URL"] = f"{urls['gateway']}/.well-known/jwks.json"
                for name, url in urls.items():
                    if name not in ("gateway", "sandbox"):
                        env[f"CHORUS_GATEWAY_{name.upper()}_URL"] = url
            if "analytics" in urls:
                env["CHORUS_ANALYTICS_CLICKHOUSE_URL"] = (
                    f"chdb://{self.state.resolve()}/analytics-chdb"
                )
            if "publishing" in urls:
                # Media files live under the state directory; the connector fetches them
                # from publishing's signed URLs at the port it really got.
                env["CHORUS_PUBLISHING_MEDIA_ROOT"] = str((self.state / "media").resolve())
                env["CHORUS_PUBLISHING_MEDIA_BASE_URL"] = urls["publishing"]
            if "sandbox" in urls:
                # Dev/test only: the connector talks to the simulated platforms.
                env["CHORUS_CONNECTOR_SANDBOX_URL"] = urls["sandbox"]
                if "connector" in urls:
                    env["CHORUS_SANDBOX_WEBHOOK_URL"] = f"{urls['connector']}/webhooks"
            if self.fresh_databases:
                self._drop_databases([s for s in services if s.database])
            for spec in services:
                if spec.database:
                    self._migrate(spec, env)
                self._start_service(spec, ports[spec.name], env)
                self._save()
            for spec in services:
                self._wait_ready(spec.name, urls[spec.name], ready_timeout)
            self._write_endpoints(bootstrap, urls)
            if self.demo and {"gateway", "sandbox"} <= urls.keys():
                self._seed_demo(bootstrap, urls["gateway"])
        except BaseException as exc:
            say(f"start-up failed: {exc}; stopping what was started (logs: {self.logs})")
            self.stop_all()
            return 1
        say(f"ready; endpoints in {self.endpoints}")
        print(self.endpoints.read_text(), end="", flush=True)
        if detach:
            return 0
        return self._foreground()

    def _foreground(self) -> int:
        stopping = {"flag": False}

        def handle(*_: object) -> None:
            stopping["flag"] = True

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)
        say("running in the foreground; Ctrl-C stops everything")
        while not stopping["flag"]:
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    say(f"{name} exited with {proc.returncode}; see {self.logs / (name + '.log')}")
                    self.procs.pop(name)
            time.sleep(0.5)
        say("stopping")
        self.stop_all()
        return 0

    def down(self, *, quiet: bool = False) -> int:
        if not self.pidfile.exists():
            if not quiet:
                say("nothing running")
            return 0
        with contextlib.suppress(ValueError, OSError):
            recorded = json.loads(self.pidfile.read_text())
            for name, pid in reversed(list(recorded.get("pids", {}).items())):
                _terminate_pid(int(pid), name)
        self.pidfile.unlink(missing_ok=True)
        self.endpoints.unlink(missing_ok=True)
        if not quiet:
            say("stopped")
        return 0

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                _terminate_pid(proc.pid, name)
        self.procs.clear()
        self.pidfile.unlink(missing_ok=True)
        self.endpoints.unlink(missing_ok=True)

    # -- pieces ------------------------------------------------------------------------------

    def _base_env(self, bootstrap: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "CHORUS_MODE": "embedded",
                "CHORUS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "CHORUS_TOPIC_PREFIX": self.topic_prefix,
                "CHORUS_DATABASE_NAME_SUFFIX": self.database_suffix,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _port(self, name: str) -> int:
        spec = next(s for s in KNOWN_SERVICES if s.name == name)
        port = spec.port + self.port_offset
        if port_free(port):
            return port
        port = free_port()
        say(f"{name}: port {spec.port + self.port_offset} is taken; using {port}")
        return port

    @staticmethod
    def _url(port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (owned by the child)
        # Own session: Ctrl-C reaches this runner, which stops children in order.
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def _start_broker(self) -> str:
        ready = self.state / "broker.addr"
        ready.unlink(missing_ok=True)
        say("starting the embedded Kafka-protocol broker")
        proc = self._spawn(
            "broker",
            [
                sys.executable,
                "-m",
                "chorus_runtime.embedded.broker_cli",
                "--ready-file",
                str(ready),
                "--prefix",
                self.topic_prefix,
            ],
            dict(os.environ),
        )
        self._save()
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"broker exited; see {self.logs / 'broker.log'}")
            if time.monotonic() > deadline:
                raise TimeoutError("broker did not become ready")
            time.sleep(0.1)
        bootstrap = ready.read_text().strip()
        say(f"broker ready at {bootstrap}")
        return bootstrap

    def _migrate(self, spec: ServiceSpec, env: dict[str, str]) -> None:
        say(f"{spec.name}: provisioning database and running migrations")
        with open(self.logs / f"{spec.name}-migrate.log", "ab") as log:
            result = subprocess.run(
                [sys.executable, "-m", spec.module, "migrate", "--provision"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=300,
            )
        if result.returncode != 0:
            raise RuntimeError(
                f"{spec.name} migrations failed; see {self.logs / (spec.name + '-migrate.log')}"
            )

    def _start_service(self, spec: ServiceSpec, port: int, env: dict[str, str]) -> None:
        say(f"{spec.name}: starting on port {port}")
        self._spawn(
            spec.name,
            [sys.executable, "-m", spec.module, "serve", "--role", "all", "--port", str(port)],
            env,
        )

    def _wait_ready(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {self.logs / (name + '.log')}")
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=3) as resp:
                    if resp.status == 200:
                        say(f"{name}: ready at {url}")
                        return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")[:300]
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.3)
        raise TimeoutError(f"{name} not ready after {timeout:.0f}s: {last}")

    def _drop_databases(self, services: list[ServiceSpec]) -> None:
        """Start from empty databases (tests): only ever the suffixed ones, never a
        developer's `chorus_<service>`."""
        import asyncio

        from chorus_runtime.db.provision import drop_database

        assert self.database_suffix, "fresh databases need a database suffix"
        admin = os.environ.get(
            "CHORUS_TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
        for spec in services:
            name = f"chorus_{spec.name}{self.database_suffix}"
            asyncio.run(drop_database(admin, name))
            say(f"{spec.name}: {name} emptied (--fresh-databases)")

    def _seed_demo(self, bootstrap: str, gateway_url: str) -> None:
        """The demo workspace (dev only; lives in the sandbox package). A failure is reported
        but does not stop a stack that is otherwise up."""
        say("seeding the demo workspace (--no-demo to skip)")
        cmd = [
            sys.executable,
            "-m",
            "chorus_sandbox.demo",
            "--gateway-url",
            gateway_url,
            "--kafka-bootstrap-servers",
            bootstrap,
            "--topic-prefix",
            self.topic_prefix,
        ]
        try:
            result = subprocess.run(cmd, check=False, timeout=180)
        except subprocess.TimeoutExpired:
            say("demo seeding timed out; the stack is up without it")
            return
        if result.returncode != 0:
            say(f"demo seeding failed (exit {result.returncode}); the stack is up without it")

    def _write_endpoints(self, bootstrap: str, urls: dict[str, str]) -> None:
        lines = [f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}", f"TOPIC_PREFIX={self.topic_prefix}"]
        for name, url in urls.items():
            lines.append(f"{name.upper()}_URL={url}")
        tmp = self.endpoints.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.endpoints)

    def _save(self) -> None:
        pids = {name: p.pid for name, p in self.procs.items()}
        self.pidfile.write_text(json.dumps({"pids": pids}, indent=2))


def _terminate_pid(pid: int, name: str, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    say(f"{name} did not stop in {timeout:.0f}s; killing it")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorus-stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--detach", action="store_true", help="return once everything is ready")
    parser.add_argument("--state-dir", type=Path, default=Path(".chorus"))
    parser.add_argument("--port-offset", type=int, default=0)
    parser.add_argument("--topic-prefix", default=os.environ.get("CHORUS_TOPIC_PREFIX", ""))
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument(
        "--no-demo",
        action="store_true",
        default=os.environ.get("CHORUS_DEMO", "1") == "0",
        help="do not seed the demo workspace (also CHORUS_DEMO=0)",
    )
    parser.add_argument(
        "--database-suffix",
        default=os.environ.get("CHORUS_DATABASE_NAME_SUFFIX", ""),
        help="use databases chorus_<service><suffix> (tests keep apart from yours)",
    )
    parser.add_argument(
        "--fresh-databases",
        action="store_true",
        help="drop the suffixed databases first (needs --database-suffix)",
    )
    args = parser.parse_args(argv)
    if args.fresh_databases and not args.database_suffix:
        parser.error("--fresh-databases needs --database-suffix: it never drops your databases")
    if not re.fullmatch(r"[a-z0-9_]{0,20}", args.database_suffix):
        parser.error("--database-suffix: lowercase letters, digits and _ only")
    stack = Stack(
        args.state_dir,
        port_offset=args.port_offset,
        topic_prefix=args.topic_prefix,
        demo=not args.no_demo,
        database_suffix=args.database_suffix,
        fresh_databases=args.fresh_databases,
    )
    if args.command == "up":
        return stack.up(detach=args.detach, ready_timeout=args.ready_timeout)
    if args.command == "down":
        return stack.down()
    if stack.endpoints.exists():
        print(stack.endpoints.read_text(), end="")
        return 0
    say("not running")
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
