"""Alembic environment: runs on the connection `Database.migrate()` hands over (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from mailwarden.store.schema import Base, include_object_for

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through mailwarden.store.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=include_object_for(connection.dialect.name),
)
with context.begin_transaction():
    context.run_migrations()
