"""Endpoint supervisors: run each variant's instances, keep them healthy, carry out updates.

One supervisor thread per active endpoint compares what is stored (the deployment, desired counts
and weights, the status) with the instances it runs, and acts: start instances (one model-server
process per container, under the runtime's shim), health-check them on `/ping`, replace those
that die or stop answering, stop surplus ones after they drain, switch to a new deployment only
once its fleet is healthy (blue/green), and publish what is ready to the route table.

Instances do not outlive the server: at start-up every leftover instance process is stopped and
active endpoints get fresh instances, so a restart brings InService endpoints back.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opensage.control.endpoint_metrics import EndpointMetrics
from opensage.control.endpoints import ACTIVE, KIND
from opensage.control.images import ImageSupport
from opensage.control.logs import parse_log_line
from opensage.control.model_servers import (
    LaunchError,
    ServerConfig,
    ping,
    stage_model,
    start_model_server,
    stop_leftovers,
)
from opensage.control.routing import (
    ContainerAddress,
    EndpointRoutes,
    InstanceRoute,
    RouteTable,
    VariantRoutes,
)
from opensage.control.supervision import Supervision
from opensage.runtime import RunHandle, Runtime
from opensage.storage import ObjectStorage
from opensage.store import Resource, Store

log = logging.getLogger(__name__)
_PING_FAILURES = 3
_FAILURE_REASON_LIMIT = 1024


@dataclass(frozen=True)
class FleetConfig:
    home: Path
    region: str
    poll_interval_seconds: float
    health_interval_seconds: float
    stop_grace_seconds: float
    container_env: dict[str, str]
    images: ImageSupport | None = None

    @property
    def instances_root(self) -> Path:
        return self.home / "instances"

    @property
    def models_root(self) -> Path:
        return self.home / "models"

    @property
    def logs_root(self) -> Path:
        """Each instance's shim files and output, kept after it stops (CloudWatch keeps logs)."""
        return self.home / "logs" / "endpoints"


@dataclass(eq=False)
class Instance:
    route: InstanceRoute
    variant: str
    root: Path
    handles: list[RunHandle]
    sockets: list[Path]
    started_at: float
    healthy: bool = False
    was_healthy: bool = False
    ping_failures: int = 0
    last_ping: float = 0.0

    @property
    def instance_id(self) -> str:
        return self.route.instance_id

    def dead(self) -> bool:
        return any(h.exit_code() is not None or not h.shim_alive() for h in self.handles)

    def last_lines(self, count: int = 5) -> str:
        lines: list[str] = []
        for handle in self.handles:
            if handle.log_path.exists():
                text = handle.log_path.read_text(encoding="utf-8", errors="replace")
                lines += [parse_log_line(line)["message"] for line in text.splitlines()[-count:]]
        return " | ".join(line.strip() for line in lines[-count:] if line.strip())


@dataclass
class Fleet:
    """The instances of one deployment, by variant."""

    deployment: dict[str, Any]
    instances: dict[str, list[Instance]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.deployment["Id"])

    def variant(self, name: str) -> dict[str, Any]:
        return next(v for v in self.deployment["Variants"] if v["VariantName"] == name)

    def all(self) -> list[Instance]:
        return [i for group in self.instances.values() for i in group]

    def healthy(self, variant: str) -> list[Instance]:
        return [i for i in self.instances.get(variant, []) if i.healthy]


class FleetManager:
    """Owns one supervisor thread per active endpoint, the route table they publish into."""

    def __init__(
        self,
        store: Store,
        storage: ObjectStorage,
        runtime: Runtime,
        routes: RouteTable,
        metrics: EndpointMetrics,
        config: FleetConfig,
    ) -> None:
        self.store = store
        self.storage = storage
        self.runtime = runtime
        self.routes = routes
        self.metrics = metrics
        self.config = config
        self.server_config = ServerConfig(config.region, config.container_env, config.images)
        self.threads = Supervision("endpoint", lambda name: EndpointSupervisor(self, name).run())
        self.launch = self.threads.launch
        self.shutting_down = self.threads.shutting_down
        self.on_removed: list[Callable[[str], None]] = []

    def reconcile(self) -> None:
        """Stop what a previous server left running, then serve every active endpoint again."""
        stop_leftovers(self.config.logs_root, self.config.stop_grace_seconds)
        shutil.rmtree(self.config.instances_root, ignore_errors=True)
        shutil.rmtree(self.config.models_root, ignore_errors=True)
        for endpoint in self.store.in_statuses(KIND, ACTIVE):
            # Known before the first request: "no healthy instance yet", not "no such endpoint".
            self.routes.publish(routes_of(endpoint, None))
            self.launch(endpoint.name)

    def shutdown(self, timeout: float = 30.0) -> None:
        self.threads.shutdown(timeout)


class EndpointSupervisor:
    def __init__(self, manager: FleetManager, name: str) -> None:
        self.m = manager
        self.name = name
        self.fleet: Fleet | None = None
        self.pending: Fleet | None = None
        self.backoff: dict[str, float] = {}
        self.not_before: dict[str, float] = {}

    # the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:
            log.exception("supervisor for endpoint %s failed", self.name)
            self._fail(f"InternalServerError: opensage could not supervise the endpoint: {exc}")
            self._stop_all()

    def _run(self) -> None:
        while not self.m.shutting_down.is_set():
            endpoint = self.m.store.get(KIND, self.name)
            if endpoint is None or endpoint.status == "Deleting":
                self._stop_all()
                if endpoint is not None:
                    self.m.store.delete(KIND, self.name)
                    self.m.store.delete_points(endpoint.arn)
                self.m.routes.remove(self.name)
                self.m.metrics.forget(self.name)
                for hook in self.m.on_removed:
                    hook(self.name)
                return
            if endpoint.status == "Failed":
                self._stop_all()
                self._publish(endpoint)
                return
            self._step(endpoint)
            self.m.shutting_down.wait(self.m.config.poll_interval_seconds)
        self._stop_all()  # the server is stopping: instances do not outlive it

    def _step(self, endpoint: Resource) -> None:
        state = endpoint.state
        if self.fleet is None or self.fleet.id != state["Deployment"]["Id"]:
            self.fleet = Fleet(state["Deployment"])
        strict = endpoint.status in ("Creating", "Updating") and "Pending" not in state
        try:
            self._maintain(self.fleet, state["Variants"], strict=strict)
        except LaunchError as exc:
            if endpoint.status == "Creating":
                self._fail(str(exc))
                self._stop_all()
            else:
                self._roll_back(endpoint, str(exc))
            return
        pending = state.get("Pending")
        if pending is not None:
            self._step_pending(endpoint, pending)
            return
        if self.pending is not None:  # an update was rolled back or superseded
            self._stop_fleet(self.pending)
            self.pending = None
        self._publish(endpoint)
        self._record_progress(endpoint)

    def _step_pending(self, endpoint: Resource, pending: dict[str, Any]) -> None:
        """Blue/green: bring the new fleet up beside the old; switch only when it is healthy."""
        assert self.fleet is not None
        if self.pending is None or self.pending.id != pending["Deployment"]["Id"]:
            if self.pending is not None:
                self._stop_fleet(self.pending)
            self.pending = Fleet(pending["Deployment"])
        self._publish(endpoint)
        try:
            self._maintain(self.pending, pending["Variants"], strict=True)
        except LaunchError as exc:
            self._stop_fleet(self.pending)
            self.pending = None
            self._roll_back(endpoint, str(exc))
            return
        if not self._complete(self.pending, pending["Variants"]):
            return
        old, self.fleet, self.pending = self.fleet, self.pending, None
        generation = endpoint.state["Generation"]

        def switch(e: Resource) -> Resource | None:
            if e.state.get("Generation") != generation or e.status != "Updating":
                return None
            e.state["Deployment"] = pending["Deployment"]
            e.state["Variants"] = {
                name: {**values, "CurrentWeight": values["DesiredWeight"],
                       "CurrentInstanceCount": len(self.fleet.healthy(name)) if self.fleet else 0}
                for name, values in pending["Variants"].items()
            }  # fmt: skip
            e.state.pop("Pending", None)
            return _now_in_service(e)

        switched = self.m.store.mutate(KIND, self.name, switch)
        if switched is None:  # superseded meanwhile: keep serving the old fleet
            self.pending, self.fleet = self.fleet, old
            return
        self._publish(switched)
        self._stop_fleet(old)

    # instances ---------------------------------------------------------------------------

    def _maintain(self, fleet: Fleet, values: dict[str, Any], strict: bool) -> None:
        """One pass over a fleet: reap, check, replace, start and stop instances.

        An instance that never became healthy fails the launch when `strict` (creating, or
        updating: the caller fails or rolls back); otherwise it is replaced, with a back-off so
        a model that cannot start does not spin.
        """
        now = time.monotonic()
        for variant in fleet.deployment["Variants"]:
            name = variant["VariantName"]
            group = fleet.instances.setdefault(name, [])
            for instance in list(group):
                problem = self._check(instance, variant, now)
                if problem is None:
                    continue
                group.remove(instance)
                self._stop([instance])
                if strict and not instance.was_healthy:
                    raise LaunchError(problem)
                log.warning("endpoint %s: replacing instance: %s", self.name, problem)
                if not instance.was_healthy:
                    self.backoff[name] = min(60.0, 2 * self.backoff.get(name, 0.5))
                    self.not_before[name] = now + self.backoff[name]
                else:
                    self.backoff.pop(name, None)
            desired = int(values[name]["DesiredInstanceCount"])
            if now < self.not_before.get(name, 0.0):
                continue
            while len(group) < desired:
                group.append(self._start_instance(fleet, variant))
            if len(group) > desired:
                surplus = sorted(group, key=lambda i: (i.healthy, i.started_at))[
                    : len(group) - desired
                ]
                for instance in surplus:
                    group.remove(instance)
                self._drain_and_stop(surplus)

    def _check(self, instance: Instance, variant: dict[str, Any], now: float) -> str | None:
        """Why the instance must go, or None while it is (or may still become) healthy."""
        name = variant["VariantName"]
        if instance.dead():
            return self._reason(instance, name, "stopped")
        if instance.healthy and now - instance.last_ping < self.m.config.health_interval_seconds:
            return None
        instance.last_ping = now
        if all(ping(str(s), 2.0) for s in instance.sockets):
            instance.healthy = instance.was_healthy = True
            instance.ping_failures = 0
            return None
        if instance.healthy:
            instance.ping_failures += 1
            if instance.ping_failures >= _PING_FAILURES:
                return self._reason(instance, name, "stopped answering the ping health check")
            return None
        if now - instance.started_at > float(variant["StartupTimeout"]):
            return self._reason(instance, name, "did not pass the ping health check in time")
        return None

    def _reason(self, instance: Instance, variant: str, what: str) -> str:
        lines = instance.last_lines()
        reason = (
            f"The primary container for production variant {variant} {what}. Please check "
            "the logs of this endpoint."
        )
        if lines:
            reason += f" Last log lines: {lines}"
        return reason[:_FAILURE_REASON_LIMIT]

    def _start_instance(self, fleet: Fleet, variant: dict[str, Any]) -> Instance:
        instance_id = f"i-{secrets.token_hex(4)}"
        root = self.m.config.instances_root / instance_id
        models = self._models(fleet, variant)
        handles, sockets, addresses = [], [], []
        for index, (container, model_dir) in enumerate(
            zip(variant["Containers"], models, strict=True)
        ):
            stream = f"{variant['VariantName']}/{instance_id}"
            if len(variant["Containers"]) > 1:
                stream += f"/{container['ContainerHostname']}"
            handle, host_socket = start_model_server(
                self.m.runtime,
                self.m.server_config,
                container,
                model_dir,
                root / f"c{index}",
                self.m.config.logs_root / self.name / stream,
                network_isolation=bool(variant["NetworkIsolation"]),
            )
            handles.append(handle)
            sockets.append(host_socket)
            addresses.append(ContainerAddress(container["ContainerHostname"], str(host_socket)))
        route = InstanceRoute(instance_id, tuple(addresses))
        log.info("endpoint %s: started %s for variant %s", self.name, instance_id,
                 variant["VariantName"])  # fmt: skip
        return Instance(route, variant["VariantName"], root, handles, sockets, time.monotonic())

    def _models(self, fleet: Fleet, variant: dict[str, Any]) -> list[Path]:
        """Each container's model folder, downloaded once per deployment."""
        folders = []
        for index, container in enumerate(variant["Containers"]):
            folder = self.m.config.models_root / fleet.id / f"{variant['VariantName']}-{index}"
            if not (folder / ".ready").exists():
                shutil.rmtree(folder, ignore_errors=True)
                stage_model(self.m.storage, container, folder / "model")
                (folder / ".ready").touch()
            folders.append(folder / "model")
        return folders

    def _drain_and_stop(self, instances: list[Instance], timeout: float = 30.0) -> None:
        """Let requests already routed to them finish, then stop them."""
        deadline = time.monotonic() + timeout
        while any(i.route.outstanding for i in instances) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop(instances)

    def _stop(self, instances: list[Instance]) -> None:
        for instance in instances:
            for handle in instance.handles:
                handle.terminate()
        deadline = time.monotonic() + self.m.config.stop_grace_seconds
        for instance in instances:
            for handle in instance.handles:
                while handle.shim_alive() and time.monotonic() < deadline:
                    time.sleep(0.02)
                if handle.shim_alive():
                    handle.kill()
            shutil.rmtree(instance.root, ignore_errors=True)

    def _stop_fleet(self, fleet: Fleet) -> None:
        instances = fleet.all()
        fleet.instances.clear()
        self._drain_and_stop(instances)
        shutil.rmtree(self.m.config.models_root / fleet.id, ignore_errors=True)

    def _stop_all(self) -> None:
        for fleet in (self.fleet, self.pending):
            if fleet is not None:
                self._stop(fleet.all())
                fleet.instances.clear()
                shutil.rmtree(self.m.config.models_root / fleet.id, ignore_errors=True)

    # state -------------------------------------------------------------------------------

    def _publish(self, endpoint: Resource) -> None:
        self.m.routes.publish(routes_of(endpoint, self.fleet))

    def _complete(self, fleet: Fleet, values: dict[str, Any]) -> bool:
        return all(
            len(fleet.healthy(name)) >= int(v["DesiredInstanceCount"])
            and len(fleet.instances.get(name, [])) == int(v["DesiredInstanceCount"])
            for name, v in values.items()
        )

    def _record_progress(self, endpoint: Resource) -> None:
        """Store current counts and weights; finish Creating/Updating once the fleet matches."""
        assert self.fleet is not None
        fleet = self.fleet
        variants = endpoint.state["Variants"]
        counts = {name: len(fleet.healthy(name)) for name in variants}
        done = endpoint.status in ("Creating", "Updating") and self._complete(fleet, variants)
        changed = any(
            variants[name]["CurrentInstanceCount"] != counts[name]
            or variants[name]["CurrentWeight"] != variants[name]["DesiredWeight"]
            for name in variants
        )
        if not done and not changed:
            return
        generation = endpoint.state["Generation"]

        def apply(e: Resource) -> Resource | None:
            for name, count in counts.items():
                if name in e.state["Variants"]:
                    values = e.state["Variants"][name]
                    values["CurrentInstanceCount"] = count
                    values["CurrentWeight"] = values["DesiredWeight"]
            if done and e.state.get("Generation") == generation and "Pending" not in e.state:
                return _now_in_service(e)
            return e

        updated = self.m.store.mutate(KIND, self.name, apply)
        if updated is not None:
            self._publish(updated)  # before anyone can read the new status

    def _fail(self, reason: str) -> None:
        def apply(e: Resource) -> Resource | None:
            if e.status == "Deleting":
                return None
            e.status = "Failed"
            e.state["FailureReason"] = reason[:_FAILURE_REASON_LIMIT]
            e.state["LastModifiedTime"] = e.updated_at = time.time()
            return e

        self.m.store.mutate(KIND, self.name, apply)

    def _roll_back(self, endpoint: Resource, reason: str) -> None:
        """An update failed: what served before keeps serving, and the endpoint says why.

        A new deployment is dropped; a capacity change goes back to the instances that run.
        """
        fleet = self.fleet

        def apply(e: Resource) -> Resource | None:
            if e.state.get("Generation") != endpoint.state["Generation"]:
                return None
            if "Pending" in e.state:
                e.state.pop("Pending")
            elif fleet is not None:
                for name, values in e.state["Variants"].items():
                    values["DesiredInstanceCount"] = max(1, len(fleet.healthy(name)))
            e.state["FailureReason"] = reason[:_FAILURE_REASON_LIMIT]
            return _now_in_service(e)

        self.m.store.mutate(KIND, self.name, apply)


def routes_of(endpoint: Resource, fleet: Fleet | None) -> EndpointRoutes:
    """What the router may use now: the served deployment's variants and healthy instances."""
    variants = []
    if fleet is not None and fleet.id != endpoint.state["Deployment"]["Id"]:
        fleet = None  # not the deployment the endpoint serves
    if endpoint.status != "Failed":
        for variant in endpoint.state["Deployment"]["Variants"]:
            name = variant["VariantName"]
            variants.append(
                VariantRoutes(
                    name=name,
                    weight=float(endpoint.state["Variants"][name]["DesiredWeight"]),
                    instances=tuple(i.route for i in fleet.healthy(name)) if fleet else (),
                    mode=variant["Mode"],
                )
            )
    return EndpointRoutes(endpoint.name, endpoint.status, tuple(variants))


def _now_in_service(endpoint: Resource) -> Resource:
    endpoint.status = "InService"
    endpoint.state["LastModifiedTime"] = endpoint.updated_at = time.time()
    return endpoint
