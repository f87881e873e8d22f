"""Base for tenant-scoped repositories: every statement is built already filtered by the
workspace of the unit of work, so forgetting the tenant filter takes effort (RLS is the
second wall behind it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Delete, Select, Table, Update, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chorus_runtime.db.database import UnitOfWork


class TenantRepository:
    tenant_column = "workspace_id"

    def __init__(self, uow: UnitOfWork) -> None:
        if uow.tenant_id is None:
            raise ValueError("a tenant repository needs a tenant-scoped unit of work")
        self.uow = uow
        self.workspace_id: str = uow.tenant_id

    @property
    def session(self) -> AsyncSession:
        return self.uow.session

    def _where(self, table: Table) -> Any:
        return table.c[self.tenant_column] == self.workspace_id

    def select(self, table: Table, *columns: Any) -> Select[Any]:
        return (select(*columns) if columns else select(table)).where(self._where(table))

    def update(self, table: Table) -> Update:
        return update(table).where(self._where(table))

    def delete(self, table: Table) -> Delete:
        return delete(table).where(self._where(table))

    def values(self, **values: Any) -> dict[str, Any]:
        """Row values for an insert, with the tenant column set from the unit of work."""
        return {**values, self.tenant_column: self.workspace_id}
