"""Which object store a storage URL means (`Settings.storage`, env OPENSAGE_STORAGE_URL).

(unset)                         the local folder store under OPENSAGE_HOME/storage
s3://                           AWS S3, credentials and region from boto3's default chain
s3+http://HOST:PORT             any S3-compatible endpoint (MinIO, Ceph, moto...): credentials
s3+https://[KEY:SECRET@]HOST    from the URL when given, else the usual AWS variables;
                                `?region=NAME` picks the region (default: the chain's, else
                                us-east-1)
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from opensage.errors import ValidationError
from opensage.storage.base import ObjectStorage
from opensage.storage.local import LocalObjectStorage

_USAGE = "use s3:// (AWS S3) or s3+http(s)://HOST:PORT (an S3-compatible service)"


def from_url(url: str | None, local_root: Path) -> ObjectStorage:
    """The object store a storage URL names; the folder store under `local_root` for none."""
    if not url:
        return LocalObjectStorage(local_root)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        if parts.netloc or parts.path.strip("/"):
            raise ValidationError(
                f"Invalid storage URL '{url}': s3:// takes no bucket or host (buckets are named "
                "per object); for another endpoint use s3+http(s)://HOST:PORT"
            )
        return _s3(endpoint=None, key=None, secret=None, region=None)
    if scheme not in ("s3+http", "s3+https"):
        raise ValidationError(f"Unsupported storage URL '{url}': {_USAGE}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"Invalid storage URL '{url}': bad port") from exc
    if not parts.hostname or parts.path.strip("/"):
        raise ValidationError(f"Invalid storage URL '{url}': expected {scheme}://HOST[:PORT]")
    query = parse_qs(parts.query)
    unknown = set(query) - {"region"}
    if unknown:
        raise ValidationError(
            f"Invalid storage URL '{url}': unknown option(s) {', '.join(sorted(unknown))}"
        )
    if (parts.username is None) != (parts.password is None):
        raise ValidationError(f"Invalid storage URL '{url}': give both KEY:SECRET@ or neither")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    endpoint = f"{scheme.removeprefix('s3+')}://{host}" + (f":{port}" if port else "")
    return _s3(
        endpoint=endpoint,
        key=unquote(parts.username) if parts.username is not None else None,
        secret=unquote(parts.password) if parts.password is not None else None,
        region=query["region"][-1] if "region" in query else None,
    )


def _s3(
    *, endpoint: str | None, key: str | None, secret: str | None, region: str | None
) -> ObjectStorage:
    import boto3
    from botocore.config import Config

    from opensage.storage.s3 import S3ObjectStorage

    session = boto3.session.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, region_name=region
    )
    # Another endpoint: path-style addressing, which every S3-compatible service answers (bucket
    # host names need DNS set up for them); a region is required to sign, S3's default will do.
    config = Config(
        max_pool_connections=32,  # supervisors, staging and the S3 front end share one client
        s3={"addressing_style": "path"} if endpoint else {},
        retries={"mode": "standard"},
    )
    client = session.client(
        "s3",
        endpoint_url=endpoint,
        region_name=session.region_name or ("us-east-1" if endpoint else None),
        config=config,
    )
    return S3ObjectStorage(client)
