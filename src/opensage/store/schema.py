"""The tables. Changes to them go through a new Alembic revision in `migrations/versions`."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("arn", String(2048), nullable=False, unique=True),
    Column("status", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("request", JSON, nullable=False),
    Column("state", JSON, nullable=False),
    Index("ix_resources_kind_name", "kind", "name", unique=True),
    Index("ix_resources_kind_status", "kind", "status"),
)

tags = Table(
    "tags",
    metadata,
    Column("arn", String(2048), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

metric_points = Table(
    "metric_points",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("arn", String(2048), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("value", Float, nullable=False),
    Column("timestamp", Float, nullable=False),
)
