"""Throwaway real backends for the tests: a PostgreSQL cluster and moto's S3 server.

`OPENSAGE_TEST_BACKENDS` (a comma-separated list of `postgres` and `s3`) makes every server the
integration tests start use them instead of SQLite and the local folder store:

    OPENSAGE_TEST_BACKENDS=postgres,s3 pytest tests/integration      # or: make test-backends

The unit tests of the store and the storage run on both whatever the switch says; where
PostgreSQL (`initdb`) or moto is not installed they skip, saying so.

PostgreSQL: one cluster per test session, `initdb` into a temporary folder (trust
authentication, listening on a Unix socket in that folder only, no TCP port), one fresh database
per server home, stopped and removed when the session ends. PostgreSQL refuses to run as root;
as root the cluster's files belong to `nobody` and its programs run through `runuser -u nobody`
(nothing is created on the machine, and `nobody` reaches only the cluster's own folder).

S3: moto keeps its state in process globals, so one moto process serves one server home (and
its restarts): a test's outputs never show up in another test's listing. The processes of a
module are stopped when the module ends.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ENV = "OPENSAGE_TEST_BACKENDS"
KNOWN = ("postgres", "s3")


def requested() -> set[str]:
    """The backends the switch asks for; an unknown name is a usage error, not a silent no-op."""
    names = {n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()}
    unknown = names - set(KNOWN)
    if unknown:
        listed = ", ".join(sorted(unknown))
        raise pytest.UsageError(
            f"{ENV}: unknown backend(s) {listed}; choose from {', '.join(KNOWN)}"
        )
    return names


def _poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for `check` with a deadline (synchronisation by polling, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# PostgreSQL ---------------------------------------------------------------------------------


class PostgresCluster:
    """A PostgreSQL cluster of its own in a temporary folder, reached over a Unix socket."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="opensage-pg-"))  # short: sockets max 107 B
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self._as_root = os.geteuid() == 0
        self._created = 0
        self._lock = threading.Lock()

    @staticmethod
    def missing() -> str | None:
        """Why no cluster can be started here, or None."""
        if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
            return "PostgreSQL is not installed (no initdb/pg_ctl on PATH)"
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "psycopg is not installed (pip install -e '.[postgres]')"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root, and no runuser to start PostgreSQL as nobody"
        return None

    def _run(self, *args: str) -> None:
        command = [*(["runuser", "-u", "nobody", "--"] if self._as_root else []), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr or done.stdout}")

    def start(self) -> PostgresCluster:
        if self._as_root:
            shutil.chown(self.folder, "nobody")
        initdb = ("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-sync", "--no-instructions")  # fmt: skip
        try:  # a natural-language collation, as production databases have: sorting must not care
            self._run(*initdb, "--locale-provider=icu", "--icu-locale=en-US")
        except RuntimeError:  # a PostgreSQL built without ICU
            shutil.rmtree(self.data, ignore_errors=True)
            self._run(*initdb)
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.folder}' "
            "-c max_connections=400 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"  # a throwaway cluster: durability is not under test here
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-W", "start")
        _poll(self._answers, 60, f"PostgreSQL to accept connections (log: {self.log})")
        return self

    def _answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError as exc:
            log = self.log.read_text() if self.log.exists() else ""
            if not (self.data / "postmaster.pid").exists() and "FATAL" in log:
                raise RuntimeError(f"PostgreSQL did not start:\n{log}") from exc
            return False

    def _dsn(self, database: str) -> str:
        return f"host={self.folder} user=postgres dbname={database}"

    def create_database(self, hint: str = "") -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        with self._lock:
            self._created += 1
            name = f"t{self._created}_{hashlib.sha1(hint.encode()).hexdigest()[:8]}"
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name is ours: letters, digits and _
        return f"postgresql+psycopg://postgres@/{name}?host={self.folder}"

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


_cluster: PostgresCluster | None = None
_cluster_lock = threading.Lock()


def postgres_cluster() -> PostgresCluster:
    """The session's cluster, started on first use (skips the test where none can run)."""
    global _cluster
    reason = PostgresCluster.missing()
    if reason:
        pytest.skip(reason)
    with _cluster_lock:
        if _cluster is None:
            cluster = PostgresCluster()
            try:
                cluster.start()
            except BaseException:
                cluster.stop()
                raise
            atexit.register(cluster.stop)
            _cluster = cluster
        return _cluster


# S3 (moto) ------------------------------------------------------------------------------------


def moto_missing() -> str | None:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return "moto's server is not installed (pip install 'moto[server]')"
    return None


class MotoServer:
    """moto's S3 as a process of its own on a free loopback port."""

    KEY = "testing"  # moto takes any credentials; boto3 needs some

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_url(self) -> str:
        """The opensage storage URL for it, credentials included."""
        return f"s3+http://{self.KEY}:{self.KEY}@127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _poll(self._answers, 60, f"moto on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"moto exited with {self.proc.returncode} (port {self.port} taken?)")
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def reset(self) -> None:
        """Forget every bucket (between tests sharing one server)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# per server home --------------------------------------------------------------------------------


@dataclass
class HomeBackends:
    """What one server home uses; a restarted server on the same home gets the same."""

    database: str | None = None
    moto: MotoServer | None = None

    @property
    def storage(self) -> str | None:
        return self.moto.storage_url if self.moto else None

    def env(self) -> dict[str, str]:
        """The same as environment variables, for servers started as processes (the CLI)."""
        env: dict[str, str] = {}
        if self.database:
            env["OPENSAGE_DATABASE_URL"] = self.database
        if self.storage:
            env["OPENSAGE_STORAGE_URL"] = self.storage
        return env


_homes: dict[Path, HomeBackends] = {}
_homes_lock = threading.Lock()


def for_home(home: Path) -> HomeBackends:
    """The backends the switch asks for, for servers of this home (none: the defaults)."""
    wanted = requested()
    key = home.resolve()
    with _homes_lock:
        found = _homes.get(key)
        if found is None:
            found = HomeBackends()
            if "postgres" in wanted:
                found.database = postgres_cluster().create_database(str(key))
            if "s3" in wanted:
                reason = moto_missing()
                if reason:
                    pytest.skip(reason)
                found.moto = MotoServer().start()
                atexit.register(found.moto.stop)
            _homes[key] = found
        return found


def homes() -> set[Path]:
    with _homes_lock:
        return set(_homes)


def release(keys: set[Path]) -> None:
    """Stop the moto servers of homes no server uses any more (their databases stay: cheap)."""
    with _homes_lock:
        gone = [_homes.pop(k) for k in keys if k in _homes]
    for backends in gone:
        if backends.moto:
            backends.moto.stop()


def describe() -> Any:
    """One line for the pytest header."""
    wanted = requested()
    return f"opensage backends: {', '.join(sorted(wanted)) if wanted else 'sqlite, local folder'}"
