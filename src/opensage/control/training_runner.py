"""The training job supervisor: stage → run → watch → collect, resumable after a restart.

Every step is derived from what is stored (the job's SecondaryStatus) and what is on disk (the
shim's files), so a supervisor started by `reconcile` after a server restart continues where the
last one stopped: it re-stages a job that was downloading, re-attaches to a program whose shim
still runs, collects one that finished meanwhile, and fails one whose program vanished.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensage.contract import FAILURE_REASON_LIMIT, MLPaths
from opensage.control import images, lifecycle
from opensage.control.lifecycle import Primary, Secondary
from opensage.control.logs import parse_log_line
from opensage.control.metrics import MetricDefinition, compile_definitions, extract
from opensage.control.pipes import PipeFeeder, next_epoch, pipe_channels
from opensage.control.staging import (
    StagingError,
    download_channel,
    download_code,
    download_prefix,
    shard_of,
    sync_up,
    upload_artifacts,
)
from opensage.control.supervision import Supervision
from opensage.errors import ValidationError
from opensage.images import ImageError
from opensage.runtime import ContainerSpec, RunHandle, Runtime, build_job_tree
from opensage.runtime.base import start
from opensage.storage import ObjectStorage, S3Uri
from opensage.store import MetricPoint, Resource, Store

log = logging.getLogger(__name__)
KIND = "TrainingJob"


@dataclass(frozen=True)
class RunnerConfig:
    jobs_root: Path
    region: str
    stop_grace_seconds: float
    poll_interval_seconds: float
    container_env: dict[str, str]
    checkpoint_sync_seconds: float = 10.0
    images: images.ImageSupport | None = None


class TrainingScheduler:
    """Owns one supervisor thread per active job."""

    def __init__(
        self, store: Store, storage: ObjectStorage, runtime: Runtime, config: RunnerConfig
    ) -> None:
        self.store = store
        self.storage = storage
        self.runtime = runtime
        self.config = config
        self.threads = Supervision("job", lambda name: JobSupervisor(self, name).run())
        self.launch = self.threads.launch
        self.shutting_down = self.threads.shutting_down

    def reconcile(self) -> None:
        """Resume every job a previous server left in flight."""
        for job in self.store.in_statuses(KIND, lifecycle.ACTIVE_PRIMARY):
            self.launch(job.name)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop supervising; the programs keep running and are re-attached on restart."""
        self.threads.shutdown(timeout)

    def job_dir(self, name: str) -> Path:
        return self.config.jobs_root / name


@dataclass
class Host:
    """One instance of a job: `algo-<n>`, its `/opt/ml` tree and its program's run folder."""

    name: str
    index: int  # 0-based
    paths: MLPaths
    handle: RunHandle


def run_dir(root: Path, host: str) -> Path:
    """algo-1's run folder keeps the single-instance name, so older jobs re-attach."""
    return root / ("run" if host == "algo-1" else f"run-{host}")


class JobSupervisor:
    def __init__(self, scheduler: TrainingScheduler, name: str) -> None:
        self.s = scheduler
        self.name = name
        self.root = scheduler.job_dir(name)
        job = scheduler.store.get(KIND, name)
        count = int(job.request["ResourceConfig"]["InstanceCount"]) if job else 1
        self.hosts = [
            Host(f"algo-{i}", i - 1, MLPaths(self.root / f"algo-{i}"),
                 RunHandle(run_dir(self.root, f"algo-{i}")))
            for i in range(1, count + 1)
        ]  # fmt: skip
        self.pipes_stop = threading.Event()
        self.feeders: list[PipeFeeder] = []

    @property
    def paths(self) -> MLPaths:
        """algo-1's tree: its model and output are the job's artifacts, its log the metrics."""
        return self.hosts[0].paths

    @property
    def handle(self) -> RunHandle:
        return self.hosts[0].handle

    # persistence helpers ---------------------------------------------------------------------

    def _job(self) -> Resource:
        job = self.s.store.get(KIND, self.name)
        assert job is not None
        return job

    def _update(
        self,
        change: Callable[[dict[str, Any]], None] | None = None,
        to: Secondary | None = None,
        message: str | None = None,
        points: list[MetricPoint] | None = None,
    ) -> Resource:
        def apply(job: Resource) -> Resource:
            now = time.time()
            if change is not None:
                change(job.state)
            if to is not None:
                job.status = lifecycle.advance(job.state, to, now, message)
            job.updated_at = now
            return job

        updated = self.s.store.mutate(KIND, self.name, apply, points)
        assert updated is not None
        return updated

    # the run ---------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a supervisor bug must still end the job with a reason
            log.exception("supervisor for %s failed", self.name)
            self._fail(f"InternalServerError: opensage could not supervise the job: {exc}")

    def _run(self) -> None:
        job = self._job()
        secondary = Secondary(job.state["SecondaryStatus"])
        if secondary in (Secondary.STARTING, Secondary.DOWNLOADING):
            if job.state.get("StopRequested"):
                self._finish_without_run(job)
                return
            if not self._stage(job):
                return
            secondary = Secondary.TRAINING
        if secondary in (Secondary.TRAINING, Secondary.STOPPING) and not self._watch():
            return  # server shutting down: the program runs on, a restart re-attaches
        self._collect()

    def _finish_without_run(self, job: Resource) -> None:
        if job.state["SecondaryStatus"] != Secondary.STOPPING:
            self._update(to=Secondary.STOPPING)
        self._update(to=Secondary.STOPPED)

    def _stage(self, job: Resource) -> bool:
        if job.state["SecondaryStatus"] == Secondary.STARTING:
            self._update(to=Secondary.DOWNLOADING)
        request = job.request
        try:
            self._build_tree(request)
            self._unpack_image(request)
        except StagingError as exc:
            self._fail(exc.message)
            return False
        if self.s.shutting_down.is_set():
            return False
        now = time.time()
        streams = {f"{self.name}/{host.name}-{int(now)}": host.name for host in self.hosts}

        def started(state: dict[str, Any]) -> None:
            state["TrainingStartTime"] = now
            state["LogStream"] = next(iter(streams))
            state["LogStreams"] = streams

        job = self._update(started, to=Secondary.TRAINING)
        if job.state.get("StopRequested"):
            return True  # the watcher sees the request and ends the job as Stopped
        self._start_program(request)
        return True

    def _build_tree(self, request: dict[str, Any]) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        spec = request["AlgorithmSpecification"]
        hyperparameters: dict[str, str] = request.get("HyperParameters", {})
        channels = request.get("InputDataConfig", [])
        input_config: dict[str, dict[str, str]] = {}
        for channel in channels:
            entry = {
                "TrainingInputMode": channel.get("InputMode") or spec["TrainingInputMode"],
                "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                    "S3DataDistributionType", "FullyReplicated"
                ),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            if "ContentType" in channel:
                entry = {"ContentType": channel["ContentType"], **entry}
            input_config[channel["ChannelName"]] = entry
        resource = request["ResourceConfig"]
        names = [host.name for host in self.hosts]
        piped = {c["ChannelName"] for c in pipe_channels(request)}
        for host in self.hosts:
            build_job_tree(
                host.paths.base,
                hyperparameters,
                {
                    "current_host": host.name,
                    "current_instance_type": resource["InstanceType"],
                    "current_group_name": "homogeneousCluster",
                    "hosts": names,
                    "instance_groups": [
                        {
                            "instance_group_name": "homogeneousCluster",
                            "instance_type": resource["InstanceType"],
                            "hosts": names,
                        }
                    ],
                    "network_interface_name": "eth0",
                },
                input_config,
            )
            for channel in channels:
                if channel["ChannelName"] in piped:
                    continue  # fed live through FIFOs once the program starts
                folder = host.paths.channel(channel["ChannelName"])
                folder.mkdir(parents=True, exist_ok=True)
                download_channel(
                    self.s.storage,
                    channel["DataSource"]["S3DataSource"],
                    folder,
                    shard_of(channel, host.index, len(self.hosts)),
                    channel.get("ShuffleConfig"),
                )
        submit = _decoded(hyperparameters.get("sagemaker_submit_directory"))
        for host in self.hosts:
            if isinstance(submit, str) and submit.startswith("s3://"):
                download_code(self.s.storage, submit, host.paths.code)
            if "CheckpointConfig" in request:
                prefix = S3Uri.parse(request["CheckpointConfig"]["S3Uri"])
                download_prefix(self.s.storage, prefix, host.paths.checkpoints)

    def _start_feeders(self, request: dict[str, Any]) -> None:
        """Pipe-mode channels: FIFOs fed by threads of this supervisor while the program runs
        (after a server restart, from the newest FIFO left on disk)."""
        if self.feeders:
            return
        for host in self.hosts:
            host.paths.data.mkdir(parents=True, exist_ok=True)
            for channel in pipe_channels(request):
                feeder = PipeFeeder(
                    self.s.storage,
                    channel,
                    host.paths.data,
                    self.pipes_stop,
                    next_epoch(host.paths.data, channel["ChannelName"]),
                    shard_of(channel, host.index, len(self.hosts)),
                )
                self.feeders.append(feeder.start())

    def _stop_feeders(self) -> None:
        self.pipes_stop.set()
        for feeder in self.feeders:
            feeder.thread.join(5)

    def _program(self, request: dict[str, Any]) -> images.Program:
        spec = request["AlgorithmSpecification"]
        support = self.s.config.images
        return images.resolve(
            spec["TrainingImage"],
            request.get("HyperParameters", {}),
            spec.get("ContainerEntrypoint"),
            spec.get("ContainerArguments"),
            support.store if support else None,
        )

    def _unpack_image(self, request: dict[str, Any]) -> None:
        """A stored image's root file system, unpacked (once per image) while Downloading."""
        try:
            program = self._program(request)
            support = self.s.config.images
            if program.image is not None and support is not None:
                support.user(program.image, support.prepare(program.image))
        except (ValidationError, ImageError) as exc:
            image = request["AlgorithmSpecification"]["TrainingImage"]
            raise StagingError(f"ClientError: image {image} cannot run: {exc}") from None

    def _start_program(self, request: dict[str, Any]) -> None:
        self._start_feeders(request)
        program = self._program(request)
        job = self._job()
        env = {
            **self.s.config.container_env,
            "AWS_REGION": self.s.config.region,
            "AWS_DEFAULT_REGION": self.s.config.region,
            "TRAINING_JOB_NAME": self.name,
            "TRAINING_JOB_ARN": job.arn,
            "PYTHONUNBUFFERED": "1",
            **request.get("Environment", {}),
        }
        runtime, root, workdir, user, image_id = self.s.runtime, None, None, None, None
        support = self.s.config.images
        if program.image is not None and support is not None:
            runtime = support.runner()
            root = support.prepare(program.image)
            workdir = program.image.working_dir
            user = support.user(program.image, root)
            image_id = program.image.id
            env = {**program.image.env, **env}
        for host in self.hosts:
            container = ContainerSpec(
                job_dir=host.paths.base,
                run_dir=host.handle.run_dir,
                command=program.command,
                env=env,
                network_isolation=bool(request.get("EnableNetworkIsolation")),
                root=root,
                workdir=workdir,
                user=user,
                image_id=image_id,
            )
            host.handle = start(runtime, container)

    # watching --------------------------------------------------------------------------------

    def _definitions(self, request: dict[str, Any]) -> list[MetricDefinition]:
        spec = request["AlgorithmSpecification"]
        program = self._program(request)
        return compile_definitions(
            [*program.metric_definitions, *spec.get("MetricDefinitions", [])]
        )

    def _watch(self) -> bool:
        """Follow the program to its end; False if the server shuts down first."""
        try:
            return self._follow()
        finally:
            self._stop_feeders()

    def _follow(self) -> bool:
        job = self._job()
        definitions = self._definitions(job.request)
        max_runtime = job.request["StoppingCondition"]["MaxRuntimeInSeconds"]
        checkpoint = job.request.get("CheckpointConfig")
        synced_at = time.monotonic()
        terminated_at: float | None = None
        if not (self.handle.run_dir / "shim.pid").exists():
            if job.state.get("StopRequested") or job.state.get("MaxRuntimeExceeded"):
                return True  # stopped before the program was started
            self._start_program(job.request)
        elif any(h.handle.exit_code() is None for h in self.hosts):
            self._start_feeders(job.request)  # re-attached to a running program
        while True:
            codes = [host.handle.exit_code() for host in self.hosts]
            self._read_log(definitions)
            if all(code is not None for code in codes):
                return True
            fed_badly = next((f.error for f in self.feeders if f.error), None)
            if fed_badly and not job.state.get("InputFailure"):
                job = self._record_input_failure(fed_badly)
            if any(code not in (None, 0) for code in codes):
                for host in self.hosts:  # one host failed: the job fails, stop the others
                    host.handle.terminate()
            lost = [
                h for h in self.hosts if not h.handle.shim_alive() and h.handle.exit_code() is None
            ]
            if lost:
                self._update(lambda s: s.update(ProgramLost=True))
                return True
            if self.s.shutting_down.wait(self.s.config.poll_interval_seconds):
                return False
            if checkpoint and time.monotonic() - synced_at > self.s.config.checkpoint_sync_seconds:
                prefix = S3Uri.parse(checkpoint["S3Uri"])
                sync_up(self.s.storage, self.paths.checkpoints, prefix)
                synced_at = time.monotonic()
            job = self._job()
            now = time.time()
            start_time = job.state.get("TrainingStartTime", now)
            if not job.state.get("StopRequested") and now - start_time > max_runtime:
                job = self._update(
                    lambda s: s.update(StopRequested=True, MaxRuntimeExceeded=True),
                    to=Secondary.STOPPING,
                )
            if job.state.get("StopRequested"):
                if terminated_at is None:
                    terminated_at = now
                    for host in self.hosts:
                        host.handle.terminate()
                elif now - terminated_at > self.s.config.stop_grace_seconds:
                    for host in self.hosts:
                        host.handle.kill()

    def _record_input_failure(self, reason: str) -> Resource:
        """A Pipe-mode channel cannot be fed: the job fails with why, and its program stops."""
        job = self._update(lambda s: s.update(InputFailure=reason))
        for host in self.hosts:
            host.handle.terminate()
        return job

    def _read_log(self, definitions: list[MetricDefinition]) -> None:
        path = self.handle.log_path
        if not path.exists():
            return
        offset = int(self._job().state.get("LogOffset", 0))
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        if end == 0:
            return
        points: list[MetricPoint] = []
        for line in data[:end].decode("utf-8", errors="replace").split("\n")[:-1]:
            event = parse_log_line(line)
            points.extend(extract(definitions, event["message"], event["timestamp"] / 1000))
        self._update(lambda s: s.update(LogOffset=offset + end), points=points)

    # collecting ------------------------------------------------------------------------------

    def _collect(self) -> None:
        job = self._job()
        state = job.state
        # The host that says why it failed (its failure file) over those stopped because of it.
        reasons = [
            (self._failure_reason(h, state), h.paths.failure_file.exists()) for h in self.hosts
        ]
        failed = sorted((not explained, r) for r, explained in reasons if r is not None)
        failure = state.get("InputFailure") or (failed[0][1] if failed else None)
        if state.get("InputFailure"):
            ending = Secondary.FAILED
        elif state.get("MaxRuntimeExceeded"):
            ending = Secondary.MAX_RUNTIME_EXCEEDED
        elif state.get("StopRequested"):
            ending = Secondary.STOPPED
        elif failure is not None:
            ending = Secondary.FAILED
        else:
            ending = Secondary.COMPLETED
        if ending is not Secondary.FAILED and state["SecondaryStatus"] != Secondary.UPLOADING:
            self._update(to=Secondary.UPLOADING)
        if (self.handle.run_dir / "shim.pid").exists():
            output = S3Uri.parse(job.request["OutputDataConfig"]["S3OutputPath"])
            upload_artifacts(
                self.s.storage, self.paths, output.join(self.name, "output"), self.root
            )
            if "CheckpointConfig" in job.request:
                prefix = S3Uri.parse(job.request["CheckpointConfig"]["S3Uri"])
                sync_up(self.s.storage, self.paths.checkpoints, prefix)

        def finish(s: dict[str, Any]) -> None:
            s["TrainingEndTime"] = time.time()
            if ending is Secondary.FAILED:
                s["FailureReason"] = failure

        self._update(finish, to=ending)

    def _failure_reason(self, host: Host, state: dict[str, Any]) -> str | None:
        if state.get("ProgramLost"):
            return (
                "InternalServerError: the training program ended while the opensage server was "
                "down and left no exit status"
            )
        code = host.handle.exit_code()
        text = ""
        if host.paths.failure_file.exists():
            text = host.paths.failure_file.read_text(encoding="utf-8", errors="replace").strip()
        if code == 0 and not text:
            return None
        if not text:
            return f"AlgorithmError: , exit code: {code}"
        if not text.startswith(("ClientError", "AlgorithmError")):
            text = f"AlgorithmError: {text}"
        return text[:FAILURE_REASON_LIMIT]

    def _fail(self, reason: str) -> None:
        job = self.s.store.get(KIND, self.name)
        if job is None or job.status not in (Primary.IN_PROGRESS, Primary.STOPPING):
            return

        def failed(s: dict[str, Any]) -> None:
            s["FailureReason"] = reason[:FAILURE_REASON_LIMIT]
            s["TrainingEndTime"] = time.time()

        self._update(failed, to=Secondary.FAILED)


def _decoded(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value
