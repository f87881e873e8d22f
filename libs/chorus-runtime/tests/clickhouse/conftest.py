"""Backends the shared ClickHouse tests run against.

* ``embedded``: :class:`EmbeddedClickHouseClient` on chdb (integration).
* ``server-inprocess``: :class:`ServerClickHouseClient` driving clickhouse-connect's own chdb
  transport, i.e. the server backend's code path (binding, Native typing, error mapping)
  without a server (integration).
* ``server``: :class:`ServerClickHouseClient` against a real server in Docker via
  testcontainers (docker); skipped with the reason when no Docker engine answers.

chdb hosts one engine per process, bound to one path, so every chdb-backed test shares one
directory (kept open by an anchor session: no ~0.5 s engine restart per test) and gets its
own database for isolation.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chorus_runtime.clickhouse import (
    ClickHouseClient,
    EmbeddedClickHouseClient,
    ServerClickHouseClient,
    create_clickhouse_client,
)

# Same engine line as chdb-core 26.9; override where another server version is wanted.
SERVER_IMAGE = os.environ.get("CHORUS_CLICKHOUSE_IMAGE", "clickhouse/clickhouse-server:26.9")

BACKENDS = [
    pytest.param("embedded", marks=pytest.mark.integration),
    pytest.param("server-inprocess", marks=pytest.mark.integration),
    pytest.param("server", marks=pytest.mark.docker),
]


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The process's one chdb data directory, with the engine held open for the session."""
    from chdb import session

    path = tmp_path_factory.mktemp("chdb").resolve()
    anchor = session.Session(str(path))
    yield path
    anchor.close()


@pytest.fixture(scope="session")
def clickhouse_server_url(docker_engine: None) -> Iterator[str]:
    """URL of a throwaway ClickHouse server; skips when there is no Docker engine."""
    from testcontainers.community.clickhouse import ClickHouseContainer

    with ClickHouseContainer(SERVER_IMAGE) as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(8123)
        yield (
            f"clickhouse://{container.username}:{container.password}@{host}:{port}/"
            f"{container.dbname}"
        )


def new_database_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


async def open_backend(request: pytest.FixtureRequest, backend: str, database: str) -> Any:
    """A connected client of ``backend`` whose current database is ``database`` (created)."""
    if backend == "embedded":
        client: ClickHouseClient = EmbeddedClickHouseClient(
            request.getfixturevalue("chdb_dir"), database=database
        )
    elif backend == "server-inprocess":
        import clickhouse_connect

        path = request.getfixturevalue("chdb_dir")
        setup = EmbeddedClickHouseClient(path)
        await setup.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        await setup.close()
        inner = clickhouse_connect.get_client(
            interface="chdb",
            path=str(path),
            database=database,
            tz_mode="aware",
            settings={"session_timezone": "UTC"},
        )
        client = ServerClickHouseClient(client=inner, database=database)
    elif backend == "server":
        url = request.getfixturevalue("clickhouse_server_url")
        admin = create_clickhouse_client(url)
        await admin.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        await admin.close()
        client = create_clickhouse_client(url, database=database)
    else:  # pragma: no cover
        raise AssertionError(backend)
    await client.connect()
    return client


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def ch(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[ClickHouseClient]:
    """A client on a fresh database of each backend; the database is dropped afterwards."""
    database = new_database_name()
    client = await open_backend(request, backend, database)
    try:
        yield client
    finally:
        if not getattr(client, "_closed", False):
            await client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        await client.close()
