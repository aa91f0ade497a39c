"""The store's one interface: a handful of methods over rows keyed by (kind, name).

Chosen by URL in the composition root (SQLite under OPENSAGE_HOME by default, any SQLAlchemy
URL otherwise). Writes are serialised through `mutate`, which reads, applies a function and
commits in one transaction, so concurrent updates from request handlers and job supervisors never
overwrite each other; callers report a change only after `mutate` returned (committed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, create_engine, delete, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError

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
        self._write_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> Store:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
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
        if query.name_contains:
            conditions.append(c.name.contains(query.name_contains, autoescape=True))
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
        column = {"name": c.name, "status": c.status}.get(query.sort_by, c.created_at)
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
        with self._write_lock, self.engine.begin() as conn:
            for key, value in new_tags.items():
                conn.execute(delete(tags).where(and_(tags.c.arn == arn, tags.c.key == key)))
                conn.execute(insert(tags).values(arn=arn, key=key, value=value))

    def list_tags(self, arn: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tags).where(tags.c.arn == arn).order_by(tags.c.key))
            return {row.key: row.value for row in rows}

    def delete_tags(self, arn: str, keys: list[str]) -> None:
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(delete(tags).where(and_(tags.c.arn == arn, tags.c.key.in_(keys))))

    # metrics -----------------------------------------------------------------------------

    def add_points(self, arn: str, points: list[MetricPoint]) -> None:
        if not points:
            return
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
