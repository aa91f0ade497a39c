"""The store's one interface: a handful of methods over rows keyed by (kind, name).

Chosen by URL in the composition root (SQLite under OPENSAGE_HOME by default, PostgreSQL through
psycopg 3 by `postgresql://` URL). Writes go through `mutate`, which reads, applies a function and
commits in one transaction, so concurrent updates from request handlers and job supervisors never
overwrite each other; callers report a change only after `mutate` returned (committed).

How writers are kept apart differs by dialect. SQLite has one writer per file anyway, so a
process lock serialises them (its `FOR UPDATE` is a no-op). PostgreSQL locks the row itself:
`mutate` reads with `SELECT ... FOR UPDATE`, so a second writer of the same resource waits for
the first to commit and then reads its result, while writers of other resources run in parallel.
Results are the same on both: names match case-insensitively and sort by code point.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, IntegrityError

from opensage.errors import ValidationError
from opensage.store.schema import metric_points, resources, tags


@dataclass
class Resource:
    kind: str
    name: str
    arn: str
    status: str
    created_at: float
    updated_at: float
    request: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricPoint:
    name: str
    value: float
    timestamp: float


@dataclass(frozen=True)
class ListQuery:
    """Filters and order of a List* call, in store terms."""

    kind: str
    name_contains: str | None = None
    status: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    modified_after: float | None = None
    modified_before: float | None = None
    sort_by: str = "created_at"  # created_at | name | status
    descending: bool = False
    offset: int = 0
    limit: int = 100


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # SQLite: one writer at a time, in this process too. PostgreSQL: row locks do it.
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if self._postgres else threading.Lock()
        )

    @classmethod
    def from_url(cls, url: str) -> Store:
        parsed = _parse_url(url)
        if parsed.drivername.startswith("sqlite"):
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed)
            event.listen(engine, "connect", _sqlite_pragmas)
            return cls(engine)
        # Server connections drop (restarts, idle timeouts): test each one before handing it out.
        # The pool is sized for the threads that write at once (supervisors, request handlers).
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
        return cls(engine)

    def migrate(self) -> None:
        from alembic import command  # imported here: alembic is slow to import, CLIs need it not
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    # resources ---------------------------------------------------------------------------

    def insert(self, resource: Resource) -> bool:
        """False when a resource of that kind and name already exists."""
        try:
            with self._write_lock, self.engine.begin() as conn:
                conn.execute(insert(resources).values(**_row(resource)))
        except IntegrityError:
            return False
        return True

    def get(self, kind: str, name: str) -> Resource | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(resources).where(and_(resources.c.kind == kind, resources.c.name == name))
            ).first()
        return _resource(row._mapping) if row else None

    def get_by_arn(self, arn: str) -> Resource | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(resources).where(resources.c.arn == arn)).first()
        return _resource(row._mapping) if row else None

    def mutate(
        self,
        kind: str,
        name: str,
        change: Callable[[Resource], Resource | None],
        points: list[MetricPoint] | None = None,
    ) -> Resource | None:
        """Apply `change` to the stored resource and commit; `change` returns None to abort.

        Metric points given here are committed in the same transaction, so a log offset stored in
        the state and the points read up to it never disagree after a crash.
        """
        for p in points or ():
            _text(p.name, "A metric name")
        with self._write_lock, self.engine.begin() as conn:
            row = conn.execute(
                select(resources)
                .where(and_(resources.c.kind == kind, resources.c.name == name))
                .with_for_update()
            ).first()
            if row is None:
                return None
            changed = change(_resource(row._mapping))
            if changed is None:
                return None
            conn.execute(update(resources).where(resources.c.id == row.id).values(**_row(changed)))
            if points:
                conn.execute(
                    insert(metric_points),
                    [{"arn": changed.arn, "name": p.name, "value": p.value,
                      "timestamp": p.timestamp} for p in points],
                )  # fmt: skip
            return changed

    def query(self, query: ListQuery) -> list[Resource]:
        c = resources.c
        conditions = [c.kind == query.kind]
        if query.name_contains:  # SQLite's LIKE ignores ASCII case; say so for every dialect
            conditions.append(c.name.icontains(query.name_contains, autoescape=True))
        if query.status:
            conditions.append(c.status == query.status)
        if query.created_after is not None:
            conditions.append(c.created_at > query.created_after)
        if query.created_before is not None:
            conditions.append(c.created_at < query.created_before)
        if query.modified_after is not None:
            conditions.append(c.updated_at > query.modified_after)
        if query.modified_before is not None:
            conditions.append(c.updated_at < query.modified_before)
        column: ColumnElement[Any] = {"name": c.name, "status": c.status}.get(
            query.sort_by, c.created_at
        )
        if self._postgres and query.sort_by in ("name", "status"):
            column = column.collate("C")  # code point order, as SQLite's BINARY, not the locale's
        order = [column.desc(), c.id.desc()] if query.descending else [column.asc(), c.id.asc()]
        stmt = (
            select(resources)
            .where(and_(*conditions))
            .order_by(*order)
            .offset(query.offset)
            .limit(query.limit)
        )
        with self.engine.connect() as conn:
            return [_resource(row._mapping) for row in conn.execute(stmt)]

    def delete(self, kind: str, name: str) -> bool:
        """Remove a resource and its tags; False when it was not there."""
        with self._write_lock, self.engine.begin() as conn:
            row = conn.execute(
                select(resources.c.id, resources.c.arn).where(
                    and_(resources.c.kind == kind, resources.c.name == name)
                )
            ).first()
            if row is None:
                return False
            conn.execute(delete(resources).where(resources.c.id == row.id))
            conn.execute(delete(tags).where(tags.c.arn == row.arn))
            return True

    def query_kind(self, kind: str) -> list[Resource]:
        return self.query(ListQuery(kind=kind, limit=1_000_000))

    def in_statuses(self, kind: str, statuses: list[str]) -> list[Resource]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(resources).where(
                    and_(resources.c.kind == kind, resources.c.status.in_(statuses))
                )
            )
            return [_resource(row._mapping) for row in rows]

    # tags --------------------------------------------------------------------------------

    def put_tags(self, arn: str, new_tags: dict[str, str]) -> None:
        if not new_tags:
            return
        for key, value in new_tags.items():
            _text(key, "A tag key")
            _text(value, "A tag value")
        with self._write_lock, self.engine.begin() as conn:
            if self._postgres:  # no process lock: two AddTags of one key must not collide
                stmt = postgresql.insert(tags).values(
                    [{"arn": arn, "key": k, "value": v} for k, v in new_tags.items()]
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[tags.c.arn, tags.c.key], set_={"value": stmt.excluded.value}
                    )
                )
                return
            for key, value in new_tags.items():
                conn.execute(delete(tags).where(and_(tags.c.arn == arn, tags.c.key == key)))
                conn.execute(insert(tags).values(arn=arn, key=key, value=value))

    def list_tags(self, arn: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tags).where(tags.c.arn == arn).order_by(tags.c.key))
            return {row.key: row.value for row in rows}

    def delete_tags(self, arn: str, keys: list[str]) -> None:
        keys = [k for k in keys if "\x00" not in k]  # none is stored (put_tags refuses them)
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(delete(tags).where(and_(tags.c.arn == arn, tags.c.key.in_(keys))))

    # metrics -----------------------------------------------------------------------------

    def add_points(self, arn: str, points: list[MetricPoint]) -> None:
        if not points:
            return
        for p in points:
            _text(p.name, "A metric name")
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(
                insert(metric_points),
                [{"arn": arn, "name": p.name, "value": p.value, "timestamp": p.timestamp}
                 for p in points],
            )  # fmt: skip

    def metric_points(self, arn: str, since: float | None = None) -> list[MetricPoint]:
        c = metric_points.c
        conditions = [c.arn == arn]
        if since is not None:
            conditions.append(c.timestamp >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(select(metric_points).where(and_(*conditions)).order_by(c.id))
            return [MetricPoint(row.name, row.value, row.timestamp) for row in rows]

    def delete_points(self, arn: str) -> None:
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(delete(metric_points).where(metric_points.c.arn == arn))

    def count(self, kind: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(resources).where(resources.c.kind == kind)
                ).scalar_one()
            )


def _text(value: str, what: str) -> None:
    """PostgreSQL's text columns cannot hold NUL: refused on every dialect, so both answer alike."""
    if "\x00" in value:
        raise ValidationError(f"{what} must not contain the NUL character")


def _parse_url(url: str) -> URL:
    """The URL with PostgreSQL's driver made explicit: psycopg 3, the one the `postgres` extra
    installs (a bare `postgresql://` meant psycopg2 before SQLAlchemy 2.1)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValidationError(
            f"Invalid database URL '{url}': expected sqlite:///PATH or "
            "postgresql://USER@HOST/DATABASE"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise ValidationError(
                f"Unsupported PostgreSQL driver '{driver}': use postgresql+psycopg://"
            )
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ValidationError(
                "A PostgreSQL database URL needs psycopg 3: pip install 'opensage[postgres]'"
            ) from exc
        return parsed.set(drivername="postgresql+psycopg")
    if backend != "sqlite":
        raise ValidationError(
            f"Unsupported database '{parsed.drivername}' in the database URL: use sqlite:///PATH "
            "or postgresql+psycopg://USER@HOST/DATABASE"
        )
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _row(resource: Resource) -> dict[str, Any]:
    return {
        "kind": resource.kind,
        "name": resource.name,
        "arn": resource.arn,
        "status": resource.status,
        "created_at": resource.created_at,
        "updated_at": resource.updated_at,
        "request": resource.request,
        "state": resource.state,
    }


def _resource(row: Any) -> Resource:
    return Resource(
        kind=row["kind"],
        name=row["name"],
        arn=row["arn"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        request=dict(row["request"]),
        state=dict(row["state"]),
    )
