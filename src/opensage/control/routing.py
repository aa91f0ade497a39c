"""InvokeEndpoint: pick a variant by weight, an instance by load, and run its container chain.

Endpoint supervisors publish immutable `EndpointRoutes` snapshots into the `RouteTable`; the
router only reads them, on the server's event loop, so a deployment switch is one reference swap
and a request in flight keeps the snapshot it started with. A request that never reached a model
server (an instance just stopped or died) is retried on another instance, which is what lets
updates and instance replacement drop no request.
"""

from __future__ import annotations

import asyncio
import random
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

from opensage.control.endpoint_metrics import EndpointMetrics
from opensage.control.unix_http import ProtocolError, UnixHttpPool, Unreachable
from opensage.errors import ModelError, ServiceUnavailableError, ValidationError

SERVING_STATUSES = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})
_ATTEMPTS = 3
_PRUNE_SECONDS = 5.0


@dataclass(frozen=True)
class ContainerAddress:
    hostname: str
    socket: str


@dataclass(eq=False)
class InstanceRoute:
    """One variant instance as the router sees it; `outstanding` is only touched on the loop."""

    instance_id: str
    containers: tuple[ContainerAddress, ...]
    outstanding: int = 0


@dataclass(frozen=True)
class VariantRoutes:
    name: str
    weight: float
    instances: tuple[InstanceRoute, ...]
    mode: str = "Serial"  # or Direct

    def pick(self, exclude: set[str]) -> InstanceRoute | None:
        """Least outstanding requests, ties broken at random."""
        candidates = [i for i in self.instances if i.instance_id not in exclude]
        if not candidates:
            return None
        low = min(i.outstanding for i in candidates)
        return random.choice([i for i in candidates if i.outstanding == low])


@dataclass(frozen=True)
class EndpointRoutes:
    name: str
    status: str
    variants: tuple[VariantRoutes, ...]
    _cumulative: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_cumulative", tuple(accumulate(max(0.0, v.weight) for v in self.variants))
        )

    def choose(self, target: str | None) -> VariantRoutes:
        if target is not None:
            for variant in self.variants:
                if variant.name == target:
                    return variant
            raise ValidationError(
                f"The variant {target} is not present in endpoint {self.name}; variants: "
                f"{', '.join(v.name for v in self.variants)}."
            )
        total = self._cumulative[-1] if self._cumulative else 0.0
        if total <= 0:
            raise ValidationError(
                f"Every production variant of endpoint {self.name} has weight 0; set a weight "
                "with UpdateEndpointWeightsAndCapacities or pass TargetVariant."
            )
        index = bisect_right(self._cumulative, random.random() * total)
        return self.variants[min(index, len(self.variants) - 1)]


class RouteTable:
    """Endpoint name (exact case) → its latest snapshot."""

    def __init__(self) -> None:
        self._routes: dict[str, EndpointRoutes] = {}

    def publish(self, routes: EndpointRoutes) -> None:
        self._routes[routes.name] = routes

    def remove(self, name: str) -> None:
        self._routes.pop(name, None)

    def get(self, name: str) -> EndpointRoutes | None:
        return self._routes.get(name)

    def sockets(self) -> set[str]:
        return {
            container.socket
            for routes in list(self._routes.values())
            for variant in routes.variants
            for instance in variant.instances
            for container in instance.containers
        }


@dataclass(frozen=True)
class Invocation:
    endpoint: str
    body: bytes
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    target_variant: str | None = None
    target_container: str | None = None
    inference_id: str | None = None


@dataclass(frozen=True)
class InvocationResult:
    body: bytes
    content_type: str | None
    variant: str
    custom_attributes: str | None = None


class Router:
    def __init__(
        self,
        table: RouteTable,
        metrics: EndpointMetrics,
        region: str,
        account: str,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.table = table
        self.metrics = metrics
        self.region = region
        self.account = account
        self.timeout_seconds = timeout_seconds
        self._pool: UnixHttpPool | None = None
        self._pruned = time.monotonic()

    async def invoke(self, call: Invocation) -> InvocationResult:
        started = time.perf_counter()
        routes = self.table.get(call.endpoint)
        if routes is None:
            raise ValidationError(f"Endpoint {call.endpoint} of account {self.account} not found.")
        if routes.status not in SERVING_STATUSES:
            raise ValidationError(
                f"Endpoint {call.endpoint} of account {self.account} is not in service "
                f"(status {routes.status})."
            )
        variant = routes.choose(call.target_variant)
        chain = self._chain(variant, call)
        tried: set[str] = set()
        for _attempt in range(_ATTEMPTS):
            instance = variant.pick(tried)
            if instance is None:
                break
            instance.outstanding += 1
            model_started = time.perf_counter()
            try:
                status, result = await self._run_chain(instance, chain, call, variant.name)
            except Unreachable:
                tried.add(instance.instance_id)
                continue
            finally:
                instance.outstanding -= 1
            finished = time.perf_counter()
            model_us = (finished - model_started) * 1e6
            self.metrics.record(
                call.endpoint,
                variant.name,
                status=status,
                model_us=model_us,
                overhead_us=(finished - started) * 1e6 - model_us,
                instances=len(variant.instances),
            )
            if isinstance(result, ModelError):
                raise result
            return result
        raise ServiceUnavailableError(
            f"No healthy instance of variant {variant.name} of endpoint {call.endpoint} is "
            "available now; retry shortly."
        )

    def close(self) -> None:
        """Close idle model-server connections (the server is stopping)."""
        if self._pool is not None:
            self._pool.close()

    def _chain(self, variant: VariantRoutes, call: Invocation) -> list[int]:
        """Indexes of the containers this call runs through, in order."""
        if not variant.instances:
            return []
        containers = variant.instances[0].containers
        if variant.mode != "Direct":
            if call.target_container is not None:
                raise ValidationError(
                    "TargetContainerHostname is only valid for an endpoint whose model uses "
                    "InferenceExecutionConfig Mode Direct."
                )
            return list(range(len(containers)))
        if call.target_container is None:
            raise ValidationError(
                "TargetContainerHostname is required: the endpoint's model runs its containers "
                "in Direct mode."
            )
        for index, container in enumerate(containers):
            if container.hostname == call.target_container:
                return [index]
        raise ValidationError(
            f"TargetContainerHostname {call.target_container} is not a container of the model: "
            f"{', '.join(c.hostname for c in containers)}."
        )

    async def _run_chain(
        self, instance: InstanceRoute, chain: list[int], call: Invocation, variant: str
    ) -> tuple[int | None, InvocationResult | ModelError]:
        """Status of the last container reached (None: no valid answer) and the outcome."""
        if self._pool is None:
            self._pool = UnixHttpPool()
        if time.monotonic() - self._pruned > _PRUNE_SECONDS:
            self._pruned = time.monotonic()
            self._pool.keep_only(self.table.sockets())
        body, content_type = call.body, call.content_type
        custom: str | None = None
        for position, index in enumerate(chain):
            container = instance.containers[index]
            headers = []
            if content_type is not None:
                headers.append(("Content-Type", content_type))
            if call.accept is not None:
                headers.append(("Accept", call.accept))
            if call.custom_attributes is not None:
                headers.append(("X-Amzn-SageMaker-Custom-Attributes", call.custom_attributes))
            if call.inference_id is not None:
                headers.append(("X-Amzn-SageMaker-Inference-Id", call.inference_id))
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    reply = await self._pool.request(
                        container.socket, "/invocations", headers, body
                    )
            except Unreachable:
                if position == 0:
                    raise  # nothing ran yet: another instance may take it
                return None, self._error(call, container.hostname, None, "")
            except (TimeoutError, ProtocolError) as exc:
                self._pool.forget(container.socket)
                message = "" if isinstance(exc, TimeoutError) else str(exc)
                return None, self._error(call, container.hostname, None, message)
            if not 200 <= reply.status < 300:
                text = reply.body.decode("utf-8", errors="replace")
                return reply.status, self._error(call, container.hostname, reply.status, text)
            body = reply.body
            content_type = reply.headers.get("content-type")
            custom = reply.headers.get("x-amzn-sagemaker-custom-attributes")
        return 200, InvocationResult(body, content_type, variant, custom)

    def _error(self, call: Invocation, container: str, status: int | None, text: str) -> ModelError:
        group = f"/aws/sagemaker/Endpoints/{call.endpoint}"
        stream_arn = f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}"
        if status is None:
            message = (
                "Your invocation timed out while waiting for a response from container "
                f"{container}. Review the latency metrics for each container in Amazon "
                "CloudWatch, resolve the issue, and try again."
            )
            if text:
                message = f"Received an invalid response from container {container}: {text}"
            return ModelError(message, 0, text, stream_arn)
        kind = "client" if status < 500 else "server"
        message = (
            f'Received {kind} error ({status}) from {container} with message "{text}". See '
            f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region="
            f"{self.region}#logEventViewer:group={group} in account {self.account} for more "
            "information."
        )
        return ModelError(message, status, text, stream_arn)
