"""`Session`: where the server is, boto3 clients for it, and data upload/download.

With `OPENSAGE_ENDPOINT` set it uses that server; otherwise it starts an embedded one (state under
`OPENSAGE_HOME`) that lives as long as the process.

    >>> session = Session()                                        # doctest: +SKIP
    >>> uri = session.upload_data("train.csv", key_prefix="demo")  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3

from opensage.app import EmbeddedServer, free_port
from opensage.sdk.endpoints import create_endpoint
from opensage.settings import Settings

_CREDENTIALS = {"aws_access_key_id": "opensage", "aws_secret_access_key": "opensage"}


class Session:
    def __init__(self, endpoint_url: str | None = None, region: str | None = None) -> None:
        settings = Settings.from_env()
        self.boto_region_name = region or settings.region
        self._server: EmbeddedServer | None = None
        endpoint = endpoint_url or os.environ.get("OPENSAGE_ENDPOINT")
        if endpoint is None:
            settings = replace(settings, port=free_port())
            self._server = EmbeddedServer(settings).start()
            atexit.register(self.close)
            endpoint = self._server.endpoint_url
        self.endpoint_url = endpoint
        self.account_id = settings.account_id
        self.sagemaker_client = self._client("sagemaker")
        self.s3_client = self._client("s3")
        self.logs_client = self._client("logs")
        self.sagemaker_runtime_client = self._client("sagemaker-runtime")
        self.cloudwatch_client = self._client("cloudwatch")

    def _client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.boto_region_name,
            **_CREDENTIALS,
        )

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def default_bucket(self) -> str:
        """`sagemaker-<region>-<account>`, created on first use, as the SageMaker SDK does."""
        bucket = f"sagemaker-{self.boto_region_name}-{self.account_id}"
        self.s3_client.create_bucket(Bucket=bucket)
        return bucket

    def upload_data(self, path: str, bucket: str | None = None, key_prefix: str = "data") -> str:
        """Upload a file or a folder's files; returns the S3 URI of the file or the prefix."""
        bucket = bucket or self.default_bucket()
        source = Path(path)
        prefix = key_prefix.strip("/")
        if source.is_dir():
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                key = f"{prefix}/{file.relative_to(source).as_posix()}".lstrip("/")
                self.s3_client.put_object(Bucket=bucket, Key=key, Body=file.read_bytes())
            return f"s3://{bucket}/{prefix}"
        key = f"{prefix}/{source.name}".lstrip("/")
        self.s3_client.put_object(Bucket=bucket, Key=key, Body=source.read_bytes())
        return f"s3://{bucket}/{key}"

    def endpoint_from_production_variants(
        self,
        name: str,
        production_variants: list[dict[str, Any]],
        tags: list[dict[str, str]] | None = None,
        kms_key: str | None = None,
        wait: bool = True,
    ) -> str:
        """An endpoint (and its config, both named `name`) over several variants, each from
        `production_variant(...)`, traffic split by their weights; returns the name."""
        return create_endpoint(self, name, production_variants, tags, kms_key, wait)

    def download_data(self, path: str, bucket: str, key_prefix: str = "") -> list[str]:
        """Download every object under the prefix into `path`; returns the local file paths."""
        paginator = self.s3_client.get_paginator("list_objects_v2")
        written = []
        for page in paginator.paginate(Bucket=bucket, Prefix=key_prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                relative = key[len(key_prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
                dest = Path(path) / relative
                dest.parent.mkdir(parents=True, exist_ok=True)
                body = self.s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
                dest.write_bytes(body)
                written.append(str(dest))
        return written
