"""Settings, read once at the edge (CLI, SDK, tests) and passed down as one object."""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_HOME = Path.home() / ".opensage"


@dataclass(frozen=True)
class Settings:
    """Everything the composition root needs to build an opensage server.

    >>> s = Settings(home=Path("/tmp/os-home"))
    >>> s.database_url
    'sqlite:////tmp/os-home/opensage.db'
    """

    home: Path = DEFAULT_HOME
    host: str = "127.0.0.1"
    port: int = 8080
    region: str = "us-east-1"
    account_id: str = "123456789012"
    database: str | None = None
    storage: str | None = None  # None: folders under home; s3:// or s3+http(s)://host:port
    runtime: str = "auto"  # auto | process | sandbox
    image_runtime: str = "sandbox"  # sandbox | docker | podman: what runs container images
    auth_configured: bool = False
    stop_grace_seconds: float = 120.0
    poll_interval_seconds: float = 0.2
    checkpoint_sync_seconds: float = 10.0
    health_interval_seconds: float = 5.0
    invocation_timeout_seconds: float = 60.0
    metrics_flush_seconds: float = 60.0
    autoscaling_period_seconds: float = 60.0  # one CloudWatch datapoint per evaluation
    autoscaling_scale_in_points: int = 15  # consecutive low datapoints before a scale-in
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls(home=Path(env.get("OPENSAGE_HOME") or DEFAULT_HOME).expanduser())
        overrides: dict[str, object] = {}
        if "OPENSAGE_DATABASE_URL" in env:
            overrides["database"] = env["OPENSAGE_DATABASE_URL"]
        if env.get("OPENSAGE_STORAGE_URL"):
            overrides["storage"] = env["OPENSAGE_STORAGE_URL"]
        if "OPENSAGE_RUNTIME" in env:
            overrides["runtime"] = env["OPENSAGE_RUNTIME"]
        if "OPENSAGE_IMAGE_RUNTIME" in env:
            overrides["image_runtime"] = env["OPENSAGE_IMAGE_RUNTIME"]
        if "OPENSAGE_REGION" in env:
            overrides["region"] = env["OPENSAGE_REGION"]
        if "OPENSAGE_STOP_GRACE_SECONDS" in env:
            overrides["stop_grace_seconds"] = float(env["OPENSAGE_STOP_GRACE_SECONDS"])
        if "OPENSAGE_AUTOSCALING_PERIOD_SECONDS" in env:
            overrides["autoscaling_period_seconds"] = float(
                env["OPENSAGE_AUTOSCALING_PERIOD_SECONDS"]
            )
        return replace(settings, **overrides)  # type: ignore[arg-type]

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.home / 'opensage.db'}"

    @property
    def storage_root(self) -> Path:
        return self.home / "storage"

    @property
    def images_root(self) -> Path:
        return self.home / "images"

    @property
    def jobs_root(self) -> Path:
        return self.home / "jobs"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def resolved_runtime(self) -> str:
        """`auto` means the sandbox where bubblewrap is installed, the plain process otherwise."""
        if self.runtime != "auto":
            return self.runtime
        return "sandbox" if shutil.which("bwrap") else "process"

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
