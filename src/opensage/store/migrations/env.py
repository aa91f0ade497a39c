"""Alembic environment: the connection is handed in by `Store.migrate`, never read from an ini."""

from alembic import context

from opensage.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
