"""Row-level security for tenant tables (migration helpers).

The policy admits a row when its workspace matches `app.tenant_id` of the transaction, or
when the transaction is an explicit system one. FORCE makes it apply to the owner too.
"""

from __future__ import annotations

from alembic import op


def enable_tenant_rls(table: str, column: str = "workspace_id") -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column}::text = current_setting('app.tenant_id', true) "
        f"OR current_setting('app.system', true) = 'on') "
        f"WITH CHECK ({column}::text = current_setting('app.tenant_id', true) "
        f"OR current_setting('app.system', true) = 'on')"
    )


def disable_tenant_rls(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
