"""The composition root: `create_app(settings)` builds the one ASGI app and everything under it.

Backends are chosen here by setting (store URL, runtime name) and nowhere else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import uvicorn

from opensage.control.autoscaler import Autoscaler
from opensage.control.autoscaling import AutoscalingService
from opensage.control.cloudwatch import CloudWatchService
from opensage.control.endpoint_configs import EndpointConfigService
from opensage.control.endpoint_metrics import EndpointMetrics, MetricsFlusher
from opensage.control.endpoints import EndpointService
from opensage.control.fleet import FleetConfig, FleetManager
from opensage.control.images import ImageSupport
from opensage.control.logs import LogService
from opensage.control.models import ModelService
from opensage.control.routing import Router, RouteTable
from opensage.control.tags import TagService
from opensage.control.training import TrainingService
from opensage.control.training_runner import RunnerConfig, TrainingScheduler, run_dir
from opensage.control.transform_runner import TransformConfig, TransformScheduler
from opensage.control.transforms import TransformService
from opensage.control.tuning import TuningService
from opensage.control.tuning_runner import TrainingApi, TuningScheduler
from opensage.errors import OpenSageError, ValidationError
from opensage.images import ImageStore
from opensage.runtime import runtime_for
from opensage.runtime.engine import ENGINES, EngineRuntime, engine_answers
from opensage.server.app import EdgeApp, build_asgi
from opensage.server.awsjson import JsonService
from opensage.server.registry import RegistryApi
from opensage.server.runtime_api import RuntimeApi
from opensage.server.s3 import S3Api
from opensage.server.sts import StsApi
from opensage.settings import Settings
from opensage.storage import from_url as storage_from_url
from opensage.store import Store


def create_app(settings: Settings) -> EdgeApp:
    store = Store.from_url(settings.database_url)
    storage = storage_from_url(settings.storage, settings.storage_root)
    runtime = runtime_for(settings.resolved_runtime())
    image_support = _image_support(settings)
    scheduler = TrainingScheduler(
        store,
        storage,
        runtime,
        RunnerConfig(
            jobs_root=settings.jobs_root,
            region=settings.region,
            stop_grace_seconds=settings.stop_grace_seconds,
            poll_interval_seconds=settings.poll_interval_seconds,
            checkpoint_sync_seconds=settings.checkpoint_sync_seconds,
            container_env={
                "S3_ENDPOINT_URL": settings.endpoint_url,
                "AWS_ENDPOINT_URL_S3": settings.endpoint_url,
                **settings.extra_env,
            },
            images=image_support,
        ),
    )
    training = TrainingService(
        store, settings.region, settings.account_id, scheduler.launch, image_support.store
    )
    tuner = TuningScheduler(
        store, TrainingApi(training.create, training.stop), settings.poll_interval_seconds
    )
    tuning = TuningService(
        store, settings.region, settings.account_id, tuner.launch, image_support.store
    )
    routes, endpoint_metrics = RouteTable(), EndpointMetrics()
    fleet = FleetManager(
        store,
        storage,
        runtime,
        routes,
        endpoint_metrics,
        FleetConfig(
            home=settings.home,
            region=settings.region,
            poll_interval_seconds=settings.poll_interval_seconds,
            health_interval_seconds=settings.health_interval_seconds,
            stop_grace_seconds=settings.stop_grace_seconds,
            container_env=scheduler.config.container_env,
            images=image_support,
        ),
    )
    models = ModelService(store, settings.region, settings.account_id, image_support.store)
    transformer = TransformScheduler(
        store,
        storage,
        runtime,
        TransformConfig(
            jobs_root=settings.home / "transform-jobs",
            instances_root=fleet.config.instances_root,
            logs_root=settings.home / "logs" / "transform-jobs",
            server=fleet.server_config,
            poll_interval_seconds=settings.poll_interval_seconds,
            stop_grace_seconds=settings.stop_grace_seconds,
        ),
    )
    transforms = TransformService(store, settings.region, settings.account_id, transformer.launch)
    configs = EndpointConfigService(store, models, settings.region, settings.account_id)
    endpoints = EndpointService(
        store, configs, models, settings.region, settings.account_id, fleet.launch
    )
    router = Router(
        routes,
        endpoint_metrics,
        settings.region,
        settings.account_id,
        settings.invocation_timeout_seconds,
    )
    flusher = MetricsFlusher(endpoint_metrics, store, endpoints.arn, settings.metrics_flush_seconds)
    tags = TagService(store)
    logs = LogService(
        store,
        lambda job, host: run_dir(scheduler.job_dir(job), host) / "output.log",
        settings.region,
        settings.account_id,
        fleet.config.logs_root,
        transformer.config.logs_root,
    )
    sagemaker = JsonService.from_botocore(
        "sagemaker",
        {
            "CreateTrainingJob": training.create,
            "DescribeTrainingJob": training.describe,
            "ListTrainingJobs": training.list,
            "StopTrainingJob": training.stop,
            "CreateHyperParameterTuningJob": tuning.create,
            "DescribeHyperParameterTuningJob": tuning.describe,
            "ListHyperParameterTuningJobs": tuning.list,
            "StopHyperParameterTuningJob": tuning.stop,
            "ListTrainingJobsForHyperParameterTuningJob": tuning.list_training_jobs,
            "CreateModel": models.create,
            "DescribeModel": models.describe,
            "ListModels": models.list,
            "DeleteModel": models.delete,
            "CreateEndpointConfig": configs.create,
            "DescribeEndpointConfig": configs.describe,
            "ListEndpointConfigs": configs.list,
            "DeleteEndpointConfig": configs.delete,
            "CreateEndpoint": endpoints.create,
            "DescribeEndpoint": endpoints.describe,
            "ListEndpoints": endpoints.list,
            "UpdateEndpoint": endpoints.update,
            "UpdateEndpointWeightsAndCapacities": endpoints.update_weights_and_capacities,
            "DeleteEndpoint": endpoints.delete,
            "CreateTransformJob": transforms.create,
            "DescribeTransformJob": transforms.describe,
            "ListTransformJobs": transforms.list,
            "StopTransformJob": transforms.stop,
            "AddTags": tags.add,
            "ListTags": tags.list,
            "DeleteTags": tags.delete,
        },
    )
    autoscaling = AutoscalingService(store, endpoints, settings.region, settings.account_id)
    endpoints.on_delete.append(autoscaling.deregister_endpoint)
    endpoints.update_guards.append(autoscaling.guard_update)
    autoscaler = Autoscaler(
        autoscaling,
        endpoint_metrics,
        settings.autoscaling_period_seconds,
        scale_in_points=settings.autoscaling_scale_in_points,
    )
    application_autoscaling = JsonService.from_botocore(
        "application-autoscaling", autoscaling.handlers()
    )
    cloudwatch_logs = JsonService.from_botocore(
        "logs",
        {
            "DescribeLogStreams": logs.describe_log_streams,
            "GetLogEvents": logs.get_log_events,
        },
    )

    cloudwatch = CloudWatchService(store, endpoints.arn)
    cloudwatch_metrics = JsonService.from_botocore(
        "cloudwatch",
        {
            "GetMetricStatistics": cloudwatch.get_metric_statistics,
            "ListMetrics": cloudwatch.list_metrics,
        },
    )

    def startup() -> None:
        settings.home.mkdir(parents=True, exist_ok=True)
        if settings.storage is None:
            settings.storage_root.mkdir(parents=True, exist_ok=True)
        store.migrate()
        scheduler.reconcile()
        tuner.reconcile()
        fleet.reconcile()  # first: it clears the instance folders transform jobs use too
        transformer.reconcile()
        flusher.start()
        autoscaler.start()

    def shutdown() -> None:
        autoscaler.stop()  # first: no capacity changes while the fleet stops
        tuner.shutdown()  # before training: no trial is launched while jobs are detached
        scheduler.shutdown()
        transformer.shutdown()
        fleet.shutdown()
        router.close()
        flusher.stop()
        store.close()

    app = build_asgi(
        [sagemaker, cloudwatch_logs, application_autoscaling, cloudwatch_metrics],
        S3Api(storage, settings.home / "uploads"),
        StsApi(settings.account_id),
        RuntimeApi(router),
        RegistryApi(image_support.store, settings.auth_configured),
        endpoint_metrics.prometheus,
        startup,
        shutdown,
    )
    app.state.settings = settings
    return app


def _image_support(settings: Settings) -> ImageSupport:
    """The image store and what runs its images: bubblewrap, or an engine when the setting
    asks for one (absent: every image job fails saying what to install)."""
    store = ImageStore(settings.images_root)
    engine = settings.image_runtime
    if engine in ENGINES:
        runtime = EngineRuntime(engine) if engine_answers(engine) else None
        missing = f"OPENSAGE_IMAGE_RUNTIME is {engine}, but no {engine} engine answers here"
        return ImageSupport(store, runtime, missing)
    if engine != "sandbox":
        raise ValidationError(
            f"Unknown image runtime '{engine}': choose sandbox, {' or '.join(ENGINES)}"
        )
    return ImageSupport(
        store,
        runtime_for("sandbox") if shutil.which("bwrap") else None,
        "Running container images needs bubblewrap (`bwrap`), which is not installed here: "
        "install it (e.g. `apt-get install bubblewrap`), or set OPENSAGE_IMAGE_RUNTIME=docker",
    )


class HomeInUseError(OpenSageError):
    """Two servers supervising the same jobs would race each other: one server per home."""


class HomeLock:
    """An exclusive lock on `OPENSAGE_HOME`, held for the life of a server."""

    def __init__(self, home: Path) -> None:
        self.path = home / "server.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise HomeInUseError(
                f"{self.path.parent} is in use by another opensage server ({owner}); use that "
                "server (set OPENSAGE_ENDPOINT) or choose another OPENSAGE_HOME"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None


def check_bind(settings: Settings) -> None:
    """Without request signing, opensage must not be reachable from other machines."""
    if not settings.is_loopback() and not settings.auth_configured:
        raise ValidationError(
            f"Refusing to listen on {settings.host}: it is not a loopback address and request "
            "authentication is not configured (it is not available yet). Use 127.0.0.1."
        )


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """No access log and no proxy-header rewriting: both cost time on every InvokeEndpoint, and
    opensage listens on loopback, not behind a proxy."""
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


def serve(settings: Settings) -> None:
    check_bind(settings)
    lock = HomeLock(settings.home)
    lock.acquire()
    try:
        uvicorn.Server(uvicorn_config(settings)).run()
    finally:
        lock.release()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """The real server on a background thread, for the SDK without an endpoint, and for tests."""

    def __init__(self, settings: Settings) -> None:
        check_bind(settings)
        self.settings = settings
        self._server = uvicorn.Server(uvicorn_config(settings))
        self._thread = threading.Thread(target=self._server.run, name="opensage", daemon=True)
        self._lock = HomeLock(settings.home)

    @property
    def endpoint_url(self) -> str:
        return self.settings.endpoint_url

    def start(self, timeout: float = 30.0) -> EmbeddedServer:
        self._lock.acquire()
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded opensage server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        self._lock.release()


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(settings).start()
    try:
        yield server
    finally:
        server.stop()
