"""The transform job supervisor (spec §4.3): start the model servers, resolve the batch
parameters, send every input object's records in mini-batches, write each object's output in
input order.

One thread per job. Each instance (a set of model-server processes, one per container of the
model) takes every n-th input object, whole; within an object up to MaxConcurrentTransforms
mini-batches are in flight, and their answers are written in order to a local file that becomes
the `.out` object only when the whole object succeeded. An object whose requests fail leaves no
output, the others go on, and the job ends Failed naming it. A stopped job removes the outputs
it wrote. After a server restart, a job still in progress is run again from the start (each
output object is replaced whole).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

from opensage.control.model_servers import (
    LaunchError,
    ServerConfig,
    ping,
    stage_model,
    start_model_server,
    stop_leftovers,
)
from opensage.control.models import containers
from opensage.control.supervision import Supervision
from opensage.control.transform_filters import DataProcessing, FilterError
from opensage.control.transform_records import (
    MiniBatch,
    SplitError,
    assembled,
    iter_records,
    mini_batches,
    object_batches,
    open_object,
)
from opensage.control.transforms import ACTIVE, IN_PROGRESS, KIND, STOPPING, data_processing
from opensage.errors import OpenSageError
from opensage.formats.errors import RecordError
from opensage.formats.manifest import parse_manifest
from opensage.runtime import RunHandle, Runtime
from opensage.storage import ObjectStorage, S3Uri
from opensage.store import Resource, Store

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY: Final = 1
DEFAULT_STRATEGY: Final = "MultiRecord"
DEFAULT_PAYLOAD_MB: Final = 6
DEFAULT_TIMEOUT: Final = 600
DEFAULT_RETRIES: Final = 3
_STRATEGIES: Final = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}
WORKERS_ENV: Final = "SAGEMAKER_MODEL_SERVER_WORKERS"
_REASON_LIMIT: Final = 1024


@dataclass(frozen=True)
class TransformConfig:
    jobs_root: Path
    """A folder per job: the staged model and the outputs being written."""
    instances_root: Path
    """A folder per model server's /opt/ml (short paths: the servers' sockets live there)."""
    logs_root: Path
    """Each model server's shim files and output, kept after the job (CloudWatch keeps logs)."""
    server: ServerConfig
    poll_interval_seconds: float
    stop_grace_seconds: float
    startup_timeout_seconds: float = 600.0


class TransformScheduler:
    """Owns one supervisor thread per active transform job."""

    def __init__(
        self, store: Store, storage: ObjectStorage, runtime: Runtime, config: TransformConfig
    ) -> None:
        self.store = store
        self.storage = storage
        self.runtime = runtime
        self.config = config
        self.threads = Supervision("transform", lambda name: TransformSupervisor(self, name).run())
        self.launch = self.threads.launch
        self.shutting_down = self.threads.shutting_down

    def reconcile(self) -> None:
        """Stop the model servers a previous server left, and run its unfinished jobs again."""
        stop_leftovers(self.config.logs_root, self.config.stop_grace_seconds)
        for job in self.store.in_statuses(KIND, ACTIVE):
            self.launch(job.name)

    def shutdown(self, timeout: float = 30.0) -> None:
        self.threads.shutdown(timeout)


@dataclass(frozen=True)
class Parameters:
    """The batch parameters in force (spec §1.8: the request, else the container, else the
    default)."""

    strategy: str
    max_payload_mb: int
    concurrency: int

    @property
    def max_payload(self) -> int | None:
        """In bytes; None for MaxPayloadInMB 0 (no limit)."""
        return self.max_payload_mb * 1024 * 1024 if self.max_payload_mb else None

    @classmethod
    def resolve(cls, request: dict[str, Any], container: dict[str, Any] | None) -> Parameters:
        given = container or {}
        strategy = request.get("BatchStrategy") or _STRATEGIES.get(
            str(given.get("BatchStrategy", "")).upper(), DEFAULT_STRATEGY
        )
        payload = request.get("MaxPayloadInMB")
        if payload is None:
            payload = _whole(given.get("MaxPayloadInMB"), DEFAULT_PAYLOAD_MB, low=0)
        concurrency = request.get("MaxConcurrentTransforms") or _whole(
            given.get("MaxConcurrentTransforms"), DEFAULT_CONCURRENCY, low=1
        )
        return cls(strategy, int(payload), int(concurrency))

    def describe(self) -> dict[str, Any]:
        return {
            "BatchStrategy": self.strategy,
            "MaxPayloadInMB": self.max_payload_mb,
            "MaxConcurrentTransforms": self.concurrency,
        }


def _whole(value: Any, default: int, *, low: int) -> int:
    """A container's answer if it is a whole number in range, else the default."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= low:
        return value
    return default


@dataclass(frozen=True)
class InputObject:
    uri: S3Uri
    relative: str
    """Its key relative to the input prefix's folder (up to its last "/"): the output is
    `<S3OutputPath>/<relative>.out`."""


class JobFailure(Exception):
    """The whole job fails with this reason (as opposed to one input object)."""


class ObjectFailure(Exception):
    """One input object fails: no output for it, the others go on."""


class Stopped(Exception):
    """The job was asked to stop."""


@dataclass
class Instance:
    """One instance of the job: a model server per container of the model, in pipeline order."""

    instance_id: str
    handles: list[RunHandle]
    sockets: list[str]

    def dead(self) -> bool:
        return any(h.exit_code() is not None or not h.shim_alive() for h in self.handles)

    def last_lines(self, count: int = 5) -> str:
        lines: list[str] = []
        for handle in self.handles:
            if handle.log_path.exists():
                text = handle.log_path.read_text(encoding="utf-8", errors="replace")
                lines += text.splitlines()[-count:]
        return " | ".join(line.strip() for line in lines[-count:] if line.strip())


@dataclass
class Outcome:
    """What the instances report back, under a lock."""

    failures: list[str] = field(default_factory=list)
    written: list[S3Uri] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class TransformSupervisor:
    def __init__(self, scheduler: TransformScheduler, name: str) -> None:
        self.s = scheduler
        self.name = name
        self.root = scheduler.config.jobs_root / name
        self.stop = threading.Event()
        self.instances: list[Instance] = []

    # the job -----------------------------------------------------------------------------

    def run(self) -> None:
        finished = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(finished,), name=f"transform-{self.name}-watch", daemon=True
        )
        watcher.start()
        try:
            self._run()
        except Stopped:
            if not self.s.shutting_down.is_set():  # else the next server runs it again
                self._finish("Stopped")
        except JobFailure as exc:
            self._finish("Failed", str(exc))
        except Exception as exc:
            log.exception("transform job %s failed", self.name)
            self._finish("Failed", f"InternalServerError: opensage could not run the job: {exc}")
        finally:
            finished.set()
            self._stop_servers()
            shutil.rmtree(self.root, ignore_errors=True)
            for instance in self.instances:
                shutil.rmtree(
                    self.s.config.instances_root / instance.instance_id, ignore_errors=True
                )

    def _run(self) -> None:
        job = self._job()
        if job.status == STOPPING:
            raise Stopped
        shutil.rmtree(self.root, ignore_errors=True)
        self._update(lambda state: state.update(TransformStartTime=time.time()))
        request = job.request
        objects = self._inputs(request)
        self._start_servers(job)
        params = Parameters.resolve(request, execution_parameters(self.instances[0].sockets[0]))
        self._update(lambda state: state.update(Effective=params.describe()))
        outcome = Outcome()
        workers = [
            threading.Thread(
                target=self._serve_share,
                args=(instance, objects[index :: len(self.instances)], request, params, outcome),
                name=f"transform-{self.name}-{instance.instance_id}",
                daemon=True,
            )
            for index, instance in enumerate(self.instances)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if self.stop.is_set() and self.s.shutting_down.is_set():
            raise Stopped  # its outputs are replaced when the next server runs it again
        if self.stop.is_set():
            for uri in outcome.written:  # a stopped job stores no output (spec §4.2)
                with contextlib.suppress(OpenSageError, OSError):
                    self.s.storage.delete(uri)
            raise Stopped
        if outcome.failures:
            count = len(outcome.failures)
            raise JobFailure(
                f"ClientError: {count} of {len(objects)} input objects failed and have no "
                f"output: {'; '.join(sorted(outcome.failures))}"
            )
        self._finish("Completed")

    def _watch(self, finished: threading.Event) -> None:
        """Notice StopTransformJob (and the server stopping) while the job runs."""
        while not finished.wait(self.s.config.poll_interval_seconds):
            job = self.s.store.get(KIND, self.name)
            if job is None or job.status == STOPPING or self.s.shutting_down.is_set():
                self.stop.set()
                self._stop_servers()
                return

    # inputs ------------------------------------------------------------------------------

    def _inputs(self, request: dict[str, Any]) -> list[InputObject]:
        source = request["TransformInput"]["DataSource"]["S3DataSource"]
        uri = S3Uri.parse(source["S3Uri"])
        try:
            if source["S3DataType"] == "ManifestFile":
                objects = self._manifest(uri)
            else:
                folder = uri.key[: uri.key.rfind("/") + 1]
                objects = [
                    InputObject(info.uri, info.uri.key[len(folder) :])
                    for info in self.s.storage.list(uri)
                    if not info.uri.key.endswith("/")
                ]
        except OpenSageError as exc:
            raise JobFailure(
                f"ClientError: Could not read the input at {uri}: {exc.message}"
            ) from exc
        if not objects:
            raise JobFailure(f"ClientError: No input objects found at {uri}.")
        return sorted(objects, key=lambda o: str(o.uri))

    def _manifest(self, uri: S3Uri) -> list[InputObject]:
        if self.s.storage.head(uri) is None:
            raise JobFailure(f"ClientError: The manifest file {uri} does not exist.")
        try:
            prefix, keys = parse_manifest(self.s.storage.get_bytes(uri), source=str(uri))
            base = S3Uri.parse(prefix)
        except (RecordError, OpenSageError) as exc:
            raise JobFailure(f"ClientError: The manifest file {uri} is not valid: {exc}") from exc
        folder = base.key[: base.key.rfind("/") + 1]
        objects = []
        for key in keys:
            full = S3Uri.parse(prefix + key)
            objects.append(InputObject(full, full.key[len(folder) :]))
        return objects

    # servers -----------------------------------------------------------------------------

    def _start_servers(self, job: Resource) -> None:
        request = job.request
        model = job.state["Model"]
        defined = containers(model)
        isolated = bool(model.get("EnableNetworkIsolation", False))
        try:
            staged = []
            for index, container in enumerate(defined):
                folder = self.root / "models" / f"c{index}"
                stage_model(self.s.storage, container, folder)
                staged.append(folder)
            for _ in range(int(request["TransformResources"]["InstanceCount"])):
                self.instances.append(self._start_instance(defined, staged, request, isolated))
        except LaunchError as exc:
            raise JobFailure(f"ClientError: {exc}") from exc
        self._wait_ready()

    def _start_instance(
        self,
        defined: list[dict[str, Any]],
        staged: list[Path],
        request: dict[str, Any],
        isolated: bool,
    ) -> Instance:
        instance_id = f"i-{secrets.token_hex(4)}"
        handles, sockets = [], []
        for index, (container, model_dir) in enumerate(zip(defined, staged, strict=True)):
            stream = (
                instance_id
                if len(defined) == 1
                else f"{instance_id}/{container['ContainerHostname']}"
            )
            handle, path = start_model_server(
                self.s.runtime,
                self.s.config.server,
                container,
                model_dir,
                self.s.config.instances_root / instance_id / f"c{index}",
                self.s.config.logs_root / self.name / stream,
                network_isolation=isolated,
                extra_env=batch_environment(request, container),
            )
            handles.append(handle)
            sockets.append(str(path))
        return Instance(instance_id, handles, sockets)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.s.config.startup_timeout_seconds
        waiting = list(self.instances)
        while waiting:
            if self.stop.is_set():
                raise Stopped
            for instance in list(waiting):
                if instance.dead():
                    raise JobFailure(
                        "ClientError: The model server stopped before it answered /ping. Last "
                        f"log lines: {instance.last_lines() or '(none)'}"
                    )
                if all(ping(path, 2.0) for path in instance.sockets):
                    waiting.remove(instance)
            if waiting and time.monotonic() > deadline:
                raise JobFailure(
                    "ClientError: The model server did not answer /ping within "
                    f"{self.s.config.startup_timeout_seconds:.0f} seconds. Last log lines: "
                    f"{waiting[0].last_lines() or '(none)'}"
                )
            if waiting:
                self.stop.wait(0.05)

    def _stop_servers(self) -> None:
        handles = [h for instance in self.instances for h in instance.handles]
        for handle in handles:
            handle.terminate()
        deadline = time.monotonic() + self.s.config.stop_grace_seconds
        for handle in handles:
            while handle.shim_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if handle.shim_alive():
                handle.kill()

    # objects -----------------------------------------------------------------------------

    def _serve_share(
        self,
        instance: Instance,
        objects: list[InputObject],
        request: dict[str, Any],
        params: Parameters,
        outcome: Outcome,
    ) -> None:
        client = InvocationClient(instance.sockets, request, self.stop)
        processing = data_processing(request)
        with ThreadPoolExecutor(params.concurrency, f"{instance.instance_id}-send") as pool:
            for item in objects:
                if self.stop.is_set():
                    return
                try:
                    written = self._transform(item, request, params, client, pool, processing)
                except ObjectFailure as exc:
                    with outcome.lock:
                        outcome.failures.append(f"{item.uri}: {exc}"[:_REASON_LIMIT])
                    continue
                except Stopped:
                    return
                with outcome.lock:
                    outcome.written.append(written)
        client.close()

    def _transform(
        self,
        item: InputObject,
        request: dict[str, Any],
        params: Parameters,
        client: InvocationClient,
        pool: ThreadPoolExecutor,
        processing: DataProcessing | None,
    ) -> S3Uri:
        transform_input, output = request["TransformInput"], request["TransformOutput"]
        target = S3Uri.parse(output["S3OutputPath"]).join(item.relative + ".out")
        scratch = self.root / "outputs" / f"{secrets.token_hex(8)}.out"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.s.storage.open(item.uri) as raw, scratch.open("wb") as sink:
                stream = open_object(raw, transform_input["CompressionType"])
                bodies = self._answers(stream, transform_input, params, client, pool, processing)
                for piece in assembled(bodies, output["AssembleWith"]):
                    sink.write(piece)
            if self.stop.is_set():
                raise Stopped
            self.s.storage.put_file(target, scratch)
        except (SplitError, FilterError) as exc:
            raise ObjectFailure(str(exc)) from exc
        except OpenSageError as exc:
            raise ObjectFailure(exc.message) from exc
        finally:
            scratch.unlink(missing_ok=True)
        return target

    def _answers(
        self,
        stream: BinaryIO,
        transform_input: dict[str, Any],
        params: Parameters,
        client: InvocationClient,
        pool: ThreadPoolExecutor,
        processing: DataProcessing | None,
    ) -> Iterator[bytes]:
        """The model's answers in input order: one per mini-batch, or per record with a join or
        an output filter; at most `params.concurrency` requests in flight."""
        split, strategy = transform_input["SplitType"], params.strategy
        originals: deque[bytes] = deque()
        if processing is None:  # requests sliced straight from the read buffers
            batches = object_batches(stream, split, strategy, params.max_payload)
        else:
            records = _filtered(iter_records(stream, split), processing, originals)
            batches = mini_batches(records, split, strategy, params.max_payload)
            if not processing.rewrites_output:
                processing = None  # an input filter alone: the answers pass through whole
        window: deque[tuple[int, int, Future[bytes]]] = deque()
        for batch in batches:
            if self.stop.is_set():
                raise Stopped
            window.append((batch.first, batch.count, pool.submit(client.invoke, batch.body, batch)))
            while len(window) > params.concurrency:
                yield from self._settled(window.popleft(), processing, originals)
        while window:
            yield from self._settled(window.popleft(), processing, originals)

    def _settled(
        self,
        sent: tuple[int, int, Future[bytes]],
        processing: DataProcessing | None,
        originals: deque[bytes],
    ) -> Iterator[bytes]:
        first, count, future = sent
        body = future.result()
        if processing is None:
            yield body
            return
        results = processing.per_record_outputs(body, count, first + 1)
        for offset, result in enumerate(results):
            yield processing.output(originals.popleft(), result, first + offset + 1)

    # state -------------------------------------------------------------------------------

    def _job(self) -> Resource:
        job = self.s.store.get(KIND, self.name)
        if job is None:
            raise Stopped
        return job

    def _update(self, change: Any) -> None:
        def apply(job: Resource) -> Resource:
            change(job.state)
            job.updated_at = job.state["LastModifiedTime"] = time.time()
            return job

        self.s.store.mutate(KIND, self.name, apply)

    def _finish(self, status: str, reason: str | None = None) -> None:
        def apply(job: Resource) -> Resource | None:
            if job.status not in (IN_PROGRESS, STOPPING):
                return None
            now = time.time()
            job.status = "Stopped" if job.status == STOPPING and status != "Completed" else status
            if job.status == "Failed" and reason:
                job.state["FailureReason"] = reason[:_REASON_LIMIT]
            job.state["TransformEndTime"] = now
            job.updated_at = job.state["LastModifiedTime"] = now
            return job

        self.s.store.mutate(KIND, self.name, apply)


def _filtered(
    records: Iterable[bytes], processing: DataProcessing, originals: deque[bytes]
) -> Iterator[bytes]:
    """The records as sent (input filter applied), keeping the originals for the join and the
    output filter."""
    keep = processing.rewrites_output
    for number, record in enumerate(records, start=1):
        if keep:
            originals.append(record)
        yield processing.filter_input(record, number)


def batch_environment(
    request: dict[str, Any], container: dict[str, Any] | None = None
) -> dict[str, str]:
    """The job's Environment and the batch variables `container` sees (spec §1.5)."""
    env = {str(k): str(v) for k, v in (request.get("Environment") or {}).items()}
    own = (container or {}).get("Environment") or {}
    if WORKERS_ENV in own:
        env.setdefault(WORKERS_ENV, str(own[WORKERS_ENV]))
    env["SAGEMAKER_BATCH"] = "true"
    if request.get("MaxPayloadInMB") is not None:
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(request["MaxPayloadInMB"])
    if request.get("BatchStrategy"):
        env["SAGEMAKER_BATCH_STRATEGY"] = {v: k for k, v in _STRATEGIES.items()}[
            request["BatchStrategy"]
        ]
    if request.get("MaxConcurrentTransforms"):
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(request["MaxConcurrentTransforms"])
        # A worker process per request in flight, at most one per CPU (the SageMaker
        # containers run a worker per CPU), unless the model or the job chose a number.
        workers = min(int(request["MaxConcurrentTransforms"]), os.cpu_count() or 1)
        env.setdefault(WORKERS_ENV, str(workers))
    return env


# the model servers' HTTP ------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("model", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except BaseException:
            sock.close()  # the model server is gone (a stopped job): no socket left open
            raise
        self.sock = sock


def execution_parameters(path: str) -> dict[str, Any] | None:
    """The container's `GET /execution-parameters` answer, or None (no answer, not JSON)."""
    connection = _UnixConnection(path, 10.0)
    try:
        connection.request("GET", "/execution-parameters")
        reply = connection.getresponse()
        body = reply.read()
        if reply.status != 200:
            return None
        value = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()
    return value if isinstance(value, dict) else None


class InvocationClient:
    """POST /invocations through the model's containers in order, one keep-alive connection
    per container and sending thread; retries (spec §4.3: connection errors, timeouts, 5xx)."""

    def __init__(self, sockets: list[str], request: dict[str, Any], stop: threading.Event) -> None:
        config = request.get("ModelClientConfig") or {}
        self.sockets = sockets
        self.stop = stop
        self.timeout = float(config.get("InvocationsTimeoutInSeconds") or DEFAULT_TIMEOUT)
        retries = config.get("InvocationsMaxRetries")
        self.retries = DEFAULT_RETRIES if retries is None else int(retries)
        self.content_type = request["TransformInput"].get("ContentType")
        self.accept = request["TransformOutput"].get("Accept")
        self._local = threading.local()
        self._all: list[_UnixConnection] = []
        self._lock = threading.Lock()

    def invoke(self, body: bytes, batch: MiniBatch) -> bytes:
        content_type = self.content_type
        for index, path in enumerate(self.sockets):
            status, body, content_type = self._post(index, path, body, content_type)
            if not 200 <= status < 300:
                text = body.decode("utf-8", errors="replace").strip()
                raise ObjectFailure(
                    f"{_records(batch)}: the model server answered {status}"
                    + (f" from container {index + 1}" if len(self.sockets) > 1 else "")
                    + (f": {text[:300]}" if text else "")
                )
        return body

    def _post(
        self, index: int, path: str, body: bytes, content_type: str | None
    ) -> tuple[int, bytes, str | None]:
        headers = {"Content-Type": content_type} if content_type else {}
        if self.accept:
            headers["Accept"] = self.accept
        problem, outcome = "", None
        for _ in range(self.retries + 1):
            if self.stop.is_set():
                raise Stopped
            connection = self._connection(index, path)
            try:
                connection.request("POST", "/invocations", body=body, headers=headers)
                reply = connection.getresponse()
                answer = reply.read()
            except TimeoutError:
                problem = f"no answer within {self.timeout:.0f} seconds"
                self._drop(index)
                continue
            except (OSError, http.client.HTTPException) as exc:
                problem = f"the connection failed ({exc})"
                self._drop(index)
                continue
            problem, outcome = "", (reply.status, answer, reply.getheader("Content-Type"))
            if reply.status < 500:
                return outcome
            if reply.will_close:
                self._drop(index)
        if problem or outcome is None:
            raise ObjectFailure(f"the model server failed: {problem}")
        return outcome

    def _connection(self, index: int, path: str) -> _UnixConnection:
        held: dict[int, _UnixConnection] = self._local.__dict__.setdefault("connections", {})
        if index not in held:
            held[index] = _UnixConnection(path, self.timeout)
            with self._lock:
                self._all.append(held[index])
        return held[index]

    def _drop(self, index: int) -> None:
        held: dict[int, _UnixConnection] = self._local.__dict__.setdefault("connections", {})
        connection = held.pop(index, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()


def _records(batch: MiniBatch) -> str:
    """Which records a mini-batch carried, for a person reading the FailureReason."""
    first, count = batch.first + 1, batch.count
    return f"record {first}" if count == 1 else f"records {first}-{first + count - 1}"
