"""Postgres access: engine, unit of work with tenant scoping, runtime tables, migrations."""

from chorus_runtime.db.database import Database, UnitOfWork
from chorus_runtime.db.tables import outbox_table, processed_events_table, runtime_metadata

__all__ = ["Database", "UnitOfWork", "outbox_table", "processed_events_table", "runtime_metadata"]
