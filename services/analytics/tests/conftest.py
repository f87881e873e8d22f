"""Fixtures: the process's one chdb directory, a migrated database per test, the service.

chdb serves one data path per process and keeps its engine bound to it while any session is
open. Every analytics test shares one directory (held open by an anchor session) and gets
its own database. If another suite in this pytest process already bound the engine to its
own directory (the runtime's ClickHouse tests do), that directory is reused.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from analytics_support import AnalyticsApp, analytics_settings, new_database
from faststream.kafka import TestKafkaBroker

from chorus_analytics.main import build
from chorus_analytics.store import MIGRATIONS, SESSION_SETTINGS
from chorus_runtime.clickhouse import EmbeddedClickHouseClient, migrate_up
from chorus_runtime.service import Role
from chorus_testing.apps import running
from chorus_testing.auth import TestTokens

_BOUND = re.compile(r"already initialized with path '([^']+)'")
# Same engine line as chdb-core 26.9; override where another server version is wanted.
SERVER_IMAGE = os.environ.get("CHORUS_CLICKHOUSE_IMAGE", "clickhouse/clickhouse-server:26.9")


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from chdb import session

    path = tmp_path_factory.mktemp("analytics-chdb").resolve()
    try:
        anchor = session.Session(str(path))
    except Exception as exc:
        bound = _BOUND.search(str(exc))
        if bound is None:
            raise
        path = Path(bound.group(1))
        anchor = session.Session(str(path))
    yield path
    anchor.close()


@pytest.fixture(scope="session")
def clickhouse_server_url(docker_engine: None) -> Iterator[str]:
    """A throwaway ClickHouse server (testcontainers), admin URL without a database."""
    from testcontainers.community.clickhouse import ClickHouseContainer

    # Access management on: the data-team tests create users, roles and row policies.
    container = ClickHouseContainer(SERVER_IMAGE).with_env(
        "CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT", "1"
    )
    with container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(8123)
        yield f"clickhouse://{container.username}:{container.password}@{host}:{port}/"


@pytest.fixture
async def database(chdb_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database name (dropped afterwards)."""
    name = new_database()
    client = EmbeddedClickHouseClient(chdb_path, database=name)
    await migrate_up(client, MIGRATIONS)
    yield name
    await client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    await client.close()


@pytest.fixture
async def ch(chdb_path: Path, database: str) -> AsyncIterator[EmbeddedClickHouseClient]:
    """A client on the test's migrated database."""
    client = EmbeddedClickHouseClient(chdb_path, database=database, settings=SESSION_SETTINGS)
    yield client
    await client.close()


@pytest.fixture
async def app(chdb_path: Path, database: str, tokens: TestTokens) -> AsyncIterator[AnalyticsApp]:
    """The analytics API role on the test's database (FastStream's in-memory broker)."""
    runtime = build(analytics_settings(chdb_path, database, export_chunk_rows=3))
    async with (
        TestKafkaBroker(runtime.broker),
        running(runtime, Role.API, verifier=tokens.verifier()) as svc,
    ):
        yield AnalyticsApp(runtime, svc.client, tokens)
