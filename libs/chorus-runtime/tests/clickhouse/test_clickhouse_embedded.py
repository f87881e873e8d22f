"""chdb-specific behaviour: process rules, laziness, the worker thread, persistence."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from chorus_runtime.clickhouse import (
    ClickHouseError,
    ClickHouseUnavailable,
    EmbeddedClickHouseClient,
)

pytestmark = pytest.mark.integration


async def test_construction_is_lazy_and_connect_opens(chdb_dir: Path) -> None:
    client = EmbeddedClickHouseClient(chdb_dir / ".." / chdb_dir.name, database="lazy_db")
    assert client.path == str(chdb_dir)  # one spelling per directory, as chdb requires
    assert client._session is None
    async with client:
        assert client._session is not None
        rows = await client.query("SELECT currentDatabase() AS db, timezone() AS tz")
        assert rows == [{"db": "lazy_db", "tz": "UTC"}]
        await client.command("DROP DATABASE lazy_db SYNC")
    assert await client.ping() is False


async def test_every_call_runs_on_the_clients_one_worker_thread(chdb_dir: Path) -> None:
    seen: set[int] = set()
    async with EmbeddedClickHouseClient(chdb_dir) as client:

        def record(_session: object) -> None:
            seen.add(threading.get_ident())

        await asyncio.gather(*(client._run(record) for _ in range(20)))
        await asyncio.gather(*(client.query("SELECT sleep(0.01) AS s") for _ in range(5)))
        await client._run(record)
    assert len(seen) == 1
    assert threading.get_ident() not in seen


async def test_a_second_path_in_this_process_is_a_config_error(
    chdb_dir: Path, tmp_path: Path
) -> None:
    # This process's engine is bound to chdb_dir (conftest), so another path can't open.
    client = EmbeddedClickHouseClient(tmp_path / "other")
    with pytest.raises(ClickHouseError, match="one data path per process") as err:
        await client.query("SELECT 1")
    assert not isinstance(err.value, ClickHouseUnavailable)
    await client.close()


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_only_one_process_may_open_a_path_and_data_persists(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    holder_code = f"""
        import asyncio, sys
        from chorus_runtime.clickhouse import EmbeddedClickHouseClient

        async def main():
            async with EmbeddedClickHouseClient({str(path)!r}) as ch:
                await ch.command("CREATE TABLE kept (x UInt8) ENGINE = MergeTree ORDER BY x")
                await ch.insert("kept", [[7]], ["x"])
                print("ready", flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        asyncio.run(main())
    """
    probe_code = f"""
        import asyncio
        from chorus_runtime.clickhouse import EmbeddedClickHouseClient, ClickHouseUnavailable

        async def main():
            ch = EmbeddedClickHouseClient({str(path)!r})
            try:
                print(await ch.query("SELECT x FROM kept"))
            except ClickHouseUnavailable as exc:
                print("unavailable:", exc)
            finally:
                await ch.close()

        asyncio.run(main())
    """
    holder = subprocess.Popen(
        _python(holder_code), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        locked = subprocess.run(
            _python(probe_code), check=False, capture_output=True, text=True, timeout=60
        )
        assert locked.stdout.startswith("unavailable:"), locked.stdout + locked.stderr
        assert "Only one process may open a chdb path" in locked.stdout
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0

    reopened = subprocess.run(
        _python(probe_code), check=False, capture_output=True, text=True, timeout=60
    )
    assert reopened.stdout.strip() == "[{'x': 7}]", reopened.stdout + reopened.stderr
