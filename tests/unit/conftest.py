"""Shared fixtures for the unit tests: a local object store and a migrated SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opensage.storage import LocalObjectStorage
from opensage.store import Store


@pytest.fixture
def storage(tmp_path: Path) -> LocalObjectStorage:
    store = LocalObjectStorage(tmp_path / "storage")
    store.create_bucket("bkt")
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store.from_url(f"sqlite:///{tmp_path / 'db' / 'opensage.sqlite'}")
    db.migrate()
    yield db
    db.close()
