"""Gateway overhead: the same request to a service directly and through the gateway.

    .venv/bin/python bench/gateway.py [--requests N] [--concurrency C] [--warmup W] [--json]

One run, one machine: throwaway Postgres databases for the gateway and publishing services
(`chorus_testing.postgres.DatabaseFactory`, dropped at the end), the embedded broker, and
both services as separate uvicorn processes (api role), publishing verifying tokens with the
gateway's JWKS. A user registers and creates one post through the gateway; then
`GET /api/v1/posts/{id}` is measured directly against publishing and through the gateway
(authentication + plan rate limit + reverse proxy) with the same bearer token, in alternating
rounds so drift (CPU frequency, caches, autovacuum) hits both sides alike.

Reported: requests/s, p50 and p99 for both, the throughput ratio and the p50 overhead, with
PASS/FAIL against the targets below. It is a measurement, not a test: the exit status is 0
whatever the numbers, 1 only when the set-up fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt

from chorus_gateway.main import MIGRATIONS as GATEWAY_MIGRATIONS
from chorus_gateway.settings import GatewaySettings
from chorus_publishing.main import MIGRATIONS as PUBLISHING_MIGRATIONS
from chorus_publishing.settings import PublishingSettings
from chorus_testing.broker import BrokerProcess
from chorus_testing.postgres import ADMIN_URL, DatabaseFactory

# Targets from the issue: the gateway may cost at most 60 % of the throughput and 2 ms of
# median latency.
TARGET_RATIO = 0.4
TARGET_P50_OVERHEAD_MS = 2.0

# Far above anything one machine can send, for every plan and metered group: the benchmark
# measures the rate limiter's cost, never its refusals.
HUGE_LIMIT = {"requests": 10_000_000, "windowSeconds": 60}
PLANS_OVERRIDE = json.dumps(
    {
        plan: {"limits": {group: HUGE_LIMIT for group in ("auth", "api", "publish")}}
        for plan in ("free", "starter", "professional", "enterprise")
    }
)
READY_TIMEOUT = 90.0


class SetupError(Exception):
    """The benchmark could not be set up; the message says what and where to look."""


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(
    settings: GatewaySettings | PublishingSettings, fields: Sequence[str]
) -> dict[str, str]:
    """The named settings as the environment variables the child process reads them from."""
    env: dict[str, str] = {}
    for name in fields:
        value = getattr(settings, name)
        if hasattr(value, "value"):  # enums
            value = value.value
        env[settings.env_name(name)] = value if isinstance(value, str) else json.dumps(value)
    return env


@dataclass
class Service:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop in {timeout:.0f}s; killing it")
            self.proc.kill()
            self.proc.wait(5)


def start_service(name: str, module: str, port: int, env: dict[str, str], logs: Path) -> Service:
    """`python -m <module> serve --role api --port <port>` with only our CHORUS_* variables."""
    log = logs / f"{name}.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--role", "api", "--port", str(port)],
            env={**base, **env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    say(f"{name}: starting on port {port} (pid {proc.pid}, log {log})")
    return Service(name, f"http://127.0.0.1:{port}", proc, log)


async def wait_ready(client: httpx.AsyncClient, service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise SetupError(
                f"{service.name} exited with {service.proc.returncode}:\n{service.log_tail()}"
            )
        try:
            resp = await client.get(f"{service.url}/readyz", timeout=3)
            if resp.status_code == 200:
                say(f"{service.name}: ready at {service.url}")
                return
            last = f"{resp.status_code} {resp.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.2)
    raise SetupError(f"{service.name} not ready after {timeout:.0f}s: {last}\n{service.log_tail()}")


# -- measurement -----------------------------------------------------------------------------


@dataclass
class Series:
    """All measured requests of one target over every round."""

    name: str
    latencies: list[float] = field(default_factory=list)  # seconds
    elapsed: float = 0.0  # wall time of the measured phases
    errors: Counter[str] = field(default_factory=Counter)
    round_rps: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
        return ordered[rank - 1] * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.elapsed, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile_ms(50), 3),
            "p99_ms": round(self.percentile_ms(99), 3),
            "errors": dict(self.errors),
        }


async def run_phase(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str],
    requests: int,
    concurrency: int,
    series: Series | None,
) -> float:
    """`requests` GETs of `url` from `concurrency` workers; returns the phase's wall time."""
    remaining = requests
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                resp = await client.get(url, headers=headers)
                await resp.aread()
                status = str(resp.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies.append(time.perf_counter() - started)
            if status != "200":
                errors[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
    elapsed = time.perf_counter() - started
    if series is not None:
        series.latencies.extend(latencies)
        series.elapsed += elapsed
        series.errors.update(errors)
        series.round_rps.append(requests / elapsed)
    return elapsed


def chunks(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Stack:
    factory: DatabaseFactory = field(default_factory=DatabaseFactory)
    broker: BrokerProcess | None = None
    services: list[Service] = field(default_factory=list)
    publishing_owner_url: str = ""
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chorus-bench-")))

    async def close(self) -> None:
        for service in reversed(self.services):
            service.stop()
        if self.broker is not None:
            self.broker.stop()
            # BrokerProcess leaves its ready-file directory behind; it is ours to remove.
            args = [str(a) for a in self.broker.proc.args]  # type: ignore[union-attr]
            if "--ready-file" in args:
                ready_dir = Path(args[args.index("--ready-file") + 1]).parent
                if ready_dir.name.startswith("chorus-broker-"):
                    shutil.rmtree(ready_dir, ignore_errors=True)
        await self.factory.drop_all()


async def start_stack(stack: Stack, args: argparse.Namespace) -> tuple[Service, Service]:
    say("creating throwaway databases (gateway, publishing) and running their migrations")
    try:
        gateway_db = await stack.factory.create("gateway", GATEWAY_MIGRATIONS)
        publishing_db = await stack.factory.create("publishing", PUBLISHING_MIGRATIONS)
        stack.publishing_owner_url = publishing_db.owner_url
    except Exception as exc:
        raise SetupError(
            f"Postgres at {ADMIN_URL} (CHORUS_TEST_ADMIN_DATABASE_URL): {type(exc).__name__}: {exc}"
        ) from exc
    say("starting the embedded broker")
    stack.broker = BrokerProcess.start()
    shared = {"CHORUS_MODE": "embedded", "CHORUS_LOG_LEVEL": args.log_level}
    common = ("database_url", "migrations_database_url", "kafka_bootstrap_servers", "redis_url")
    gateway_port, publishing_port = free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"

    # Built here first so that a bad value fails now, with the settings' own message.
    publishing = PublishingSettings(
        database_url=publishing_db.app_url,
        migrations_database_url=publishing_db.owner_url,
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=args.redis_url,
        jwks_url=f"{gateway_url}/.well-known/jwks.json",
    )
    gateway = GatewaySettings(
        database_url=gateway_db.app_url,
        migrations_database_url=gateway_db.owner_url,
        kafka_bootstrap_servers=stack.broker.bootstrap_servers,
        redis_url=args.redis_url,
        publishing_url=f"http://127.0.0.1:{publishing_port}",
        plans_override=PLANS_OVERRIDE,
    )
    gw = start_service(
        "gateway",
        "chorus_gateway.main",
        gateway_port,
        {**shared, **settings_env(gateway, (*common, "publishing_url", "plans_override"))},
        stack.logs,
    )
    stack.services.append(gw)
    pub = start_service(
        "publishing",
        "chorus_publishing.main",
        publishing_port,
        {**shared, **settings_env(publishing, (*common, "jwks_url"))},
        stack.logs,
    )
    stack.services.append(pub)
    return gw, pub


async def connect_account(owner_url: str, workspace_id: str) -> str:
    """An X account publishing may post to. Written straight into its projection: the
    connector (OAuth with the sandbox) is not part of this measurement."""
    account_id = str(uuid.uuid4())
    conn = await asyncpg.connect(owner_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(
            "INSERT INTO accounts (id, workspace_id, platform, username, status)"
            " VALUES ($1, $2, 'x', 'bench', 'active')",
            account_id,
            workspace_id,
        )
    finally:
        await conn.close()
    return account_id


async def create_post(
    client: httpx.AsyncClient, gateway: str, publishing_owner_url: str
) -> tuple[str, dict[str, str]]:
    """Register a user and create one post, both through the gateway."""
    reg = await client.post(
        f"{gateway}/api/v1/auth/register",
        json={
            "email": f"bench-{uuid.uuid4().hex[:10]}@example.com",
            "password": "a long benchmark passphrase",
            "name": "Bench Owner",
            "workspaceName": "Bench",
        },
    )
    if reg.status_code != 201:
        raise SetupError(f"register through the gateway: {reg.status_code} {reg.text[:500]}")
    token = reg.json()["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    workspace_id = jwt.decode(token, options={"verify_signature": False})["wid"]
    account_id = await connect_account(publishing_owner_url, workspace_id)
    created = await client.post(
        f"{gateway}/api/v1/posts",
        headers=headers,
        json={
            "content": {"text": "Benchmark post", "hashtags": ["bench"]},
            "platforms": [{"platform": "x", "accountId": account_id}],
        },
    )
    if created.status_code != 201:
        raise SetupError(
            f"create a post through the gateway: {created.status_code} {created.text[:500]}"
        )
    return created.json()["post"]["id"], headers


async def check_same_answer(
    client: httpx.AsyncClient, urls: dict[str, str], headers: dict[str, str], post_id: str
) -> None:
    """Both paths must answer 200 with the same post, or the comparison means nothing."""
    bodies = {}
    for name, url in urls.items():
        resp = await client.get(url, headers=headers)
        if resp.status_code != 200:
            raise SetupError(f"GET {url} ({name}): {resp.status_code} {resp.text[:500]}")
        bodies[name] = resp.json()
    if any(body["post"]["id"] != post_id for body in bodies.values()):
        raise SetupError(f"the two paths disagree: {bodies}")


async def set_up(stack: Stack, args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """Start everything and create the post; returns the two URLs and the auth headers."""
    try:
        gw, pub = await start_stack(stack, args)
        async with httpx.AsyncClient(timeout=10) as client:
            for service in (gw, pub):
                await wait_ready(client, service, args.ready_timeout)
            post_id, headers = await create_post(client, gw.url, stack.publishing_owner_url)
            path = f"/api/v1/posts/{post_id}"
            urls = {"direct": f"{pub.url}{path}", "gateway": f"{gw.url}{path}"}
            await check_same_answer(client, urls, headers, post_id)
    except SetupError:
        raise
    except Exception as exc:  # Postgres/Redis down, broker failed, ...: all set-up failures
        raise SetupError(f"{type(exc).__name__}: {exc}") from exc
    say(f"post {post_id} created; measuring GET {path}")
    return urls, headers


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack()
    ok = False
    try:
        urls, headers = await set_up(stack, args)
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        series = {"direct": Series("direct"), "gateway": Series("via gateway")}
        phase = {"headers": headers, "concurrency": args.concurrency}
        async with httpx.AsyncClient(http1=True, http2=False, limits=limits, timeout=30) as client:
            if args.warmup:
                for name, url in urls.items():
                    say(f"warm-up: {args.warmup} requests {name}")
                    await run_phase(client, url, requests=args.warmup, series=None, **phase)
            for i, n in enumerate(chunks(args.requests, args.rounds), start=1):
                # Alternate who goes first (D G, G D, D G, ...) so drift hits both alike.
                for name in ("direct", "gateway") if i % 2 else ("gateway", "direct"):
                    elapsed = await run_phase(
                        client, urls[name], requests=n, series=series[name], **phase
                    )
                    say(
                        f"round {i}/{args.rounds} {name:>7}: {n} requests, {n / elapsed:8.1f} req/s"
                    )
        ok = True
        return report_data(args, series)
    finally:
        say("stopping the services, the broker, and dropping the databases")
        try:
            await stack.close()
        except Exception as exc:
            say(f"clean-up incomplete: {type(exc).__name__}: {exc}")
        if args.keep_logs or not ok:
            say(f"service logs kept in {stack.logs}")
        else:
            shutil.rmtree(stack.logs, ignore_errors=True)


def report_data(args: argparse.Namespace, series: dict[str, Series]) -> dict[str, Any]:
    direct, gateway = series["direct"], series["gateway"]
    ratio = gateway.rps / direct.rps if direct.rps else 0.0
    overhead = gateway.percentile_ms(50) - direct.percentile_ms(50)
    errors = sum(direct.errors.values()) + sum(gateway.errors.values())
    # Each round's two phases run back to back, so their ratio cancels slow drift.
    round_ratios = [g / d for g, d in zip(gateway.round_rps, direct.round_rps, strict=True)]
    return {
        "benchmark": "gateway",
        "request": "GET /api/v1/posts/{id}",
        "requests_per_target": args.requests,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "direct": direct.summary(),
        "gateway": gateway.summary(),
        "throughput_ratio": round(ratio, 3),
        "round_throughput_ratios": [round(r, 3) for r in round_ratios],
        "p50_overhead_ms": round(overhead, 3),
        "targets": {
            "throughput_ratio_min": TARGET_RATIO,
            "p50_overhead_ms_max": TARGET_P50_OVERHEAD_MS,
        },
        "pass": {
            "throughput_ratio": ratio >= TARGET_RATIO,
            "p50_overhead": overhead <= TARGET_P50_OVERHEAD_MS,
            "no_errors": errors == 0,
        },
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(data: dict[str, Any]) -> None:
    print(
        f"Gateway overhead: {data['request']}, {data['requests_per_target']} requests per "
        f"target, concurrency {data['concurrency']}, {data['rounds']} alternating rounds, "
        f"warm-up {data['warmup']}"
    )
    print(f"{'':14}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for key, label in (("direct", "direct"), ("gateway", "via gateway")):
        row = data[key]
        errors = sum(row["errors"].values())
        print(
            f"{label:14}{row['rps']:>12.1f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{errors:>8}"
        )
    for key in ("direct", "gateway"):
        if data[key]["errors"]:
            print(f"  {key} errors by status: {data[key]['errors']}")
    passed = data["pass"]
    print()
    print(
        f"throughput ratio (gateway/direct) {data['throughput_ratio']:>8.2f}     "
        f"target >= {TARGET_RATIO:.2f}     {verdict(passed['throughput_ratio'])}"
    )
    rounds = data["round_throughput_ratios"]
    if len(rounds) > 1:
        print(
            f"  each round's ratio: median {statistics.median(rounds):.2f}, "
            f"min {min(rounds):.2f}, max {max(rounds):.2f}"
        )
    print(
        f"p50 overhead (gateway - direct)   {data['p50_overhead_ms']:>8.2f} ms  "
        f"target <= {TARGET_P50_OVERHEAD_MS:.2f} ms  {verdict(passed['p50_overhead'])}"
    )
    if not passed["no_errors"]:
        print("some requests failed: the numbers above include their latencies")
    cpus = data["cpus"] or 0
    if data["concurrency"] > 1:
        print(
            f"note: at concurrency {data['concurrency']} the latencies include queueing; "
            "--concurrency 1 shows the per-request overhead alone"
        )
    if cpus < 4:
        print(
            f"note: {cpus} CPU(s): the client, gateway, publishing, Postgres and Redis compete "
            "for them;\n      absolute numbers are low and noisy: compare the ratios "
            "(bench/README.md)"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/gateway.py",
        description="Measure GET /api/v1/posts/{id} directly against publishing and through "
        "the gateway (auth + rate limit + proxy) in one run, and print the ratio.",
    )
    parser.add_argument(
        "--requests", type=int, default=4000, help="measured requests per target (default 4000)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument(
        "--warmup", type=int, default=300, help="unmeasured requests per target first (default 300)"
    )
    parser.add_argument(
        "--rounds", type=int, default=6, help="alternating direct/gateway rounds (default 6)"
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/13",
        help="Redis for the gateway's rate limits (default db 13; only short-lived keys)",
    )
    parser.add_argument("--log-level", default="WARNING", help="services' log level")
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT)
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    args.rounds = min(args.rounds, args.requests)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop  # the services run on uvloop too (uvicorn's default when installed)

        uvloop.install()
    try:
        data = asyncio.run(measure(args))
    except SetupError as exc:
        say(f"set-up failed: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_table(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
