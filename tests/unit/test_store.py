"""The metadata store: migrations, resources, mutate with metric points, list queries, tags.

Every test runs on SQLite and on PostgreSQL (a throwaway cluster, see tests/backends.py): the
two must give the same answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from opensage.errors import ValidationError
from opensage.store import MetricPoint, Resource, Store
from opensage.store.repository import ListQuery
from tests.backends import postgres_cluster

KIND = "TrainingJob"


def database_url(backend: str, tmp_path: Path) -> str:
    if backend == "postgres":
        return postgres_cluster().create_database(str(tmp_path))
    return f"sqlite:///{tmp_path / 'db' / 'opensage.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Store]:
    db = Store.from_url(database_url(backend, tmp_path))
    db.migrate()
    yield db
    db.close()


def resource(
    name: str,
    *,
    status: str = "InProgress",
    created: float = 100.0,
    updated: float | None = None,
    kind: str = KIND,
) -> Resource:
    return Resource(
        kind=kind,
        name=name,
        arn=f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name.lower()}",
        status=status,
        created_at=created,
        updated_at=created if updated is None else updated,
        request={"TrainingJobName": name},
        state={"SecondaryStatus": "Starting"},
    )


def names(store: Store, **query: object) -> list[str]:
    return [r.name for r in store.query(ListQuery(kind=KIND, **query))]  # type: ignore[arg-type]


# migrations ---------------------------------------------------------------------------------


def test_migrations_are_idempotent_on_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "db.sqlite"
    store = Store.from_url(f"sqlite:///{path}")
    try:
        store.migrate()
        store.migrate()
        assert path.exists()
        tables = set(inspect(store.engine).get_table_names())
        assert {"resources", "tags", "metric_points", "alembic_version"} <= tables
        assert store.insert(resource("job-a"))
    finally:
        store.close()
    reopened = Store.from_url(f"sqlite:///{path}")
    try:
        reopened.migrate()
        job = reopened.get(KIND, "job-a")
        assert job is not None
        assert job.request == {"TrainingJobName": "job-a"}
    finally:
        reopened.close()


def test_migrations_are_idempotent_on_postgres(tmp_path: Path) -> None:
    url = database_url("postgres", tmp_path)
    store = Store.from_url(url)
    try:
        store.migrate()
        store.migrate()
        tables = set(inspect(store.engine).get_table_names())
        assert {"resources", "tags", "metric_points", "alembic_version"} <= tables
        assert store.insert(resource("job-a"))
    finally:
        store.close()
    reopened = Store.from_url(url)
    try:
        reopened.migrate()
        job = reopened.get(KIND, "job-a")
        assert job is not None
        assert job.request == {"TrainingJobName": "job-a"}
    finally:
        reopened.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "Invalid database URL"),
        ("mysql://u@h/db", "Unsupported database"),
        ("postgresql+psycopg2://u@h/db", "Unsupported PostgreSQL driver"),
    ],
)
def test_bad_database_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Store.from_url(url)


def test_a_bare_postgresql_url_means_psycopg_3(tmp_path: Path) -> None:
    url = database_url("postgres", tmp_path).replace("postgresql+psycopg://", "postgresql://")
    store = Store.from_url(url)
    try:
        assert store.engine.dialect.driver == "psycopg"
        store.migrate()
        assert store.count(KIND) == 0
    finally:
        store.close()


# resources ----------------------------------------------------------------------------------


def test_insert_get_and_duplicates(store: Store) -> None:
    job = resource("job-a")
    assert store.insert(job) is True
    assert store.insert(resource("job-a")) is False
    assert store.get(KIND, "job-a") == job
    assert store.get(KIND, "nope") is None
    assert store.get("Model", "job-a") is None
    assert store.get_by_arn(job.arn) == job
    assert store.get_by_arn("arn:none") is None
    assert store.count(KIND) == 1


def test_same_name_in_another_kind_is_allowed(store: Store) -> None:
    assert store.insert(resource("x"))
    other = resource("x", kind="Model")
    other.arn = "arn:aws:sagemaker:us-east-1:123456789012:model/x"
    assert store.insert(other)
    assert store.count(KIND) == 1
    assert store.count("Model") == 1


def test_duplicate_arn_is_refused(store: Store) -> None:
    assert store.insert(resource("job-a"))
    clash = resource("other")
    clash.arn = resource("job-a").arn
    assert store.insert(clash) is False


def test_mutate_commits_change_and_points_together(store: Store) -> None:
    job = resource("job-a")
    store.insert(job)

    def change(r: Resource) -> Resource:
        r.status = "Completed"
        r.state["LogOffset"] = 42
        r.updated_at = 200.0
        return r

    points = [MetricPoint("loss", 0.5, 1.0), MetricPoint("loss", 0.25, 2.0)]
    changed = store.mutate(KIND, "job-a", change, points)
    assert changed is not None
    assert changed.status == "Completed"
    stored = store.get(KIND, "job-a")
    assert stored is not None
    assert (stored.status, stored.state["LogOffset"], stored.updated_at) == ("Completed", 42, 200.0)
    assert store.metric_points(job.arn) == points


def test_mutate_returning_none_commits_nothing(store: Store) -> None:
    job = resource("job-a")
    store.insert(job)

    def abort(r: Resource) -> None:
        r.status = "Failed"  # changed in memory only
        return None

    assert store.mutate(KIND, "job-a", abort, [MetricPoint("loss", 1.0, 1.0)]) is None
    stored = store.get(KIND, "job-a")
    assert stored is not None
    assert stored.status == "InProgress"
    assert store.metric_points(job.arn) == []


def test_mutate_that_raises_commits_nothing(store: Store) -> None:
    job = resource("job-a")
    store.insert(job)

    def boom(r: Resource) -> Resource:
        r.status = "Failed"
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        store.mutate(KIND, "job-a", boom, [MetricPoint("loss", 1.0, 1.0)])
    stored = store.get(KIND, "job-a")
    assert stored is not None
    assert stored.status == "InProgress"
    assert store.metric_points(job.arn) == []


def test_mutate_missing_resource_returns_none(store: Store) -> None:
    called = []
    assert store.mutate(KIND, "ghost", lambda r: called.append(r) or r) is None
    assert called == []


def run_together(count: int, work: Callable[[int], object]) -> None:
    """Run work(0) .. work(count - 1) on as many threads, released at once by a barrier; a
    thread's failure fails the caller."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as exc:  # re-raised below: a thread's failure must fail the test
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []


def test_concurrent_mutations_never_lose_an_update(store: Store) -> None:
    """Many threads read-modify-write one row: every increment survives (no lost update)."""
    store.insert(resource("job-a"))
    threads, rounds = 8, 25

    def bump(r: Resource) -> Resource:
        r.state["Count"] = r.state.get("Count", 0) + 1
        return r

    def work(index: int) -> None:
        for i in range(rounds):
            store.mutate(KIND, "job-a", bump, [MetricPoint("m", float(index), float(i))])

    run_together(threads, work)
    stored = store.get(KIND, "job-a")
    assert stored is not None
    assert stored.state["Count"] == threads * rounds
    assert len(store.metric_points(stored.arn)) == threads * rounds


def test_concurrent_inserts_of_one_name_admit_exactly_one(store: Store) -> None:
    threads = 8
    results: list[bool] = []
    run_together(threads, lambda _: results.append(store.insert(resource("job-a"))))
    assert sorted(results) == [False] * (threads - 1) + [True]
    assert store.count(KIND) == 1


def test_concurrent_tag_writes_of_one_key_keep_one_value(store: Store) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/a"
    threads = 8

    def work(index: int) -> None:
        for _ in range(10):
            store.put_tags(arn, {"team": f"t{index}", f"own{index}": "x"})

    run_together(threads, work)
    stored = store.list_tags(arn)
    assert stored["team"] in {f"t{i}" for i in range(threads)}
    assert {k for k in stored if k.startswith("own")} == {f"own{i}" for i in range(threads)}


def test_large_json_and_float_timestamps_round_trip(store: Store) -> None:
    job = resource("job-a", created=1_700_000_000.123456, updated=1_700_000_001.654321)
    job.request = {"Nested": {"List": [1, 2.5, None, True, "é\u2603"], "Big": "x" * 100_000}}
    job.state = {"Order": {"z": 1, "a": 2}}
    store.insert(job)
    stored = store.get(KIND, "job-a")
    assert stored == job
    assert list(stored.state["Order"]) == ["z", "a"]  # key order kept, as SQLite keeps it


def test_metric_points_keep_insertion_order_per_arn(store: Store) -> None:
    a, b = resource("job-a"), resource("job-b")
    store.insert(a)
    store.insert(b)
    store.mutate(KIND, "job-a", lambda r: r, [MetricPoint("m", 3.0, 1.0)])
    store.mutate(KIND, "job-b", lambda r: r, [MetricPoint("m", 9.0, 1.0)])
    store.mutate(KIND, "job-a", lambda r: r, [MetricPoint("m", 1.0, 2.0)])
    assert [p.value for p in store.metric_points(a.arn)] == [3.0, 1.0]
    assert [p.value for p in store.metric_points(b.arn)] == [9.0]


def test_in_statuses(store: Store) -> None:
    store.insert(resource("a", status="InProgress"))
    store.insert(resource("b", status="Stopping"))
    store.insert(resource("c", status="Completed"))
    found = sorted(r.name for r in store.in_statuses(KIND, ["InProgress", "Stopping"]))
    assert found == ["a", "b"]
    assert store.in_statuses(KIND, []) == []


# list queries -------------------------------------------------------------------------------


@pytest.fixture
def populated(store: Store) -> Store:
    rows = [
        ("job-b", "Completed", 30.0, 300.0),
        ("job-a", "InProgress", 10.0, 100.0),
        ("job%x", "Failed", 20.0, 200.0),
        ("job_y", "InProgress", 40.0, 400.0),
        ("jobzz", "Completed", 50.0, 500.0),
    ]
    for name, status, created, updated in rows:
        store.insert(resource(name, status=status, created=created, updated=updated))
    return store


def test_query_default_order_is_created_ascending(populated: Store) -> None:
    assert names(populated) == ["job-a", "job%x", "job-b", "job_y", "jobzz"]


def test_query_name_contains_treats_wildcards_literally(populated: Store) -> None:
    assert names(populated, name_contains="%") == ["job%x"]
    assert names(populated, name_contains="_") == ["job_y"]
    assert names(populated, name_contains="b_") == ["job_y"]
    assert names(populated, name_contains="-") == ["job-a", "job-b"]
    assert names(populated, name_contains="job") == names(populated)
    assert names(populated, name_contains="nothing") == []


def test_query_name_contains_ignores_case(populated: Store) -> None:
    assert names(populated, name_contains="JOB-") == ["job-a", "job-b"]
    assert names(populated, name_contains="ZZ") == ["jobzz"]


def test_query_sorts_names_by_code_point(store: Store) -> None:
    for i, name in enumerate(["b", "B", "a-x", "A", "a_x", "ax", "a.x"]):
        row = resource(name, created=float(i))
        row.arn += f"-{i}"  # the ARN is lower case: B's would clash with b's
        assert store.insert(row)
    assert names(store, sort_by="name") == ["A", "B", "a-x", "a.x", "a_x", "ax", "b"]


def test_query_ties_break_by_insertion_order(store: Store) -> None:
    for name in ["c", "a", "b"]:
        store.insert(resource(name, status="Completed", created=5.0))
    assert names(store) == ["c", "a", "b"]
    assert names(store, sort_by="status") == ["c", "a", "b"]
    assert names(store, sort_by="status", descending=True) == ["b", "a", "c"]


def test_query_status_filter(populated: Store) -> None:
    assert names(populated, status="Completed") == ["job-b", "jobzz"]
    assert names(populated, status="Stopped") == []


def test_query_time_filters_are_strict(populated: Store) -> None:
    assert names(populated, created_after=20.0) == ["job-b", "job_y", "jobzz"]
    assert names(populated, created_before=30.0) == ["job-a", "job%x"]
    assert names(populated, created_after=10.0, created_before=50.0) == ["job%x", "job-b", "job_y"]
    assert names(populated, modified_after=400.0) == ["jobzz"]
    assert names(populated, modified_before=200.0) == ["job-a"]


@pytest.mark.parametrize(
    ("sort_by", "descending", "expected"),
    [
        ("name", False, ["job%x", "job-a", "job-b", "job_y", "jobzz"]),
        ("name", True, ["jobzz", "job_y", "job-b", "job-a", "job%x"]),
        ("created_at", True, ["jobzz", "job_y", "job-b", "job%x", "job-a"]),
        ("status", False, ["job-b", "jobzz", "job%x", "job-a", "job_y"]),
        ("status", True, ["job_y", "job-a", "job%x", "jobzz", "job-b"]),
        ("unknown", False, ["job-a", "job%x", "job-b", "job_y", "jobzz"]),
    ],
)
def test_query_sorting(
    populated: Store, sort_by: str, descending: bool, expected: list[str]
) -> None:
    assert names(populated, sort_by=sort_by, descending=descending) == expected


def test_query_offset_and_limit(populated: Store) -> None:
    everything = names(populated)
    assert names(populated, limit=2) == everything[:2]
    assert names(populated, offset=2, limit=2) == everything[2:4]
    assert names(populated, offset=4, limit=2) == everything[4:]
    assert names(populated, offset=10) == []


def test_query_is_per_kind(populated: Store) -> None:
    other = resource("job-a", kind="Model")
    other.arn = "arn:model"
    populated.insert(other)
    assert [r.name for r in populated.query(ListQuery(kind="Model"))] == ["job-a"]


# tags ---------------------------------------------------------------------------------------


def test_tags_put_overwrite_delete(store: Store) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/a"
    assert store.list_tags(arn) == {}
    store.put_tags(arn, {"team": "ml", "env": "dev"})
    assert store.list_tags(arn) == {"env": "dev", "team": "ml"}
    assert list(store.list_tags(arn)) == ["env", "team"]
    store.put_tags(arn, {"env": "prod", "cost": "1"})
    assert store.list_tags(arn) == {"cost": "1", "env": "prod", "team": "ml"}
    store.delete_tags(arn, ["team", "missing"])
    assert store.list_tags(arn) == {"cost": "1", "env": "prod"}
    store.delete_tags(arn, [])
    assert store.list_tags(arn) == {"cost": "1", "env": "prod"}
    assert store.list_tags(arn + "-other") == {}


def test_nul_characters_in_text_columns_are_refused_alike(store: Store) -> None:
    """PostgreSQL's text cannot hold NUL: both dialects give the same validation error."""
    arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/a"
    with pytest.raises(ValidationError, match="tag value"):
        store.put_tags(arn, {"k": "a\x00b"})
    with pytest.raises(ValidationError, match="tag key"):
        store.put_tags(arn, {"k\x00": "v"})
    store.delete_tags(arn, ["k\x00"])
    assert store.list_tags(arn) == {}
    store.insert(resource("job-a"))
    with pytest.raises(ValidationError, match="metric name"):
        store.mutate(KIND, "job-a", lambda r: r, [MetricPoint("m\x00", 1.0, 1.0)])
    with pytest.raises(ValidationError, match="metric name"):
        store.add_points(arn, [MetricPoint("m\x00", 1.0, 1.0)])
    job = resource("job-b")
    job.request = {"Free": "text\x00with NUL"}  # JSON escapes it: fine on both
    store.insert(job)
    assert store.get(KIND, "job-b") == job
