"""Names and code bundles the SDK makes for jobs, models and record sets, as the SageMaker SDK
does: `<base>-<YYYY-MM-DD-HH-MM-SS-mmm>` names and `sourcedir.tar.gz`."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path


def sagemaker_timestamp() -> str:
    """`YYYY-MM-DD-HH-MM-SS-mmm` in UTC, as the SDK's `sagemaker_timestamp`."""
    moment = time.time()
    millis = repr(moment).split(".")[1][:3]
    return time.strftime(f"%Y-%m-%d-%H-%M-%S-{millis}", time.gmtime(moment))


def unique_name(base: str | None, image_uri: str, default: str) -> str:
    """`base` (or the image's repository name), made name-safe, with a timestamp."""
    stem = base or image_uri.rsplit("/", 1)[-1].split(":")[0]
    stem = "".join(c if c.isalnum() else "-" for c in stem).strip("-")[:40] or default
    return f"{stem}-{sagemaker_timestamp()}"


def pack_source(entry_point: str, source_dir: str | None) -> bytes:
    """`sourcedir.tar.gz`: the source folder's entries at the root, or the entry point alone."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if source_dir:
            for path in sorted(Path(source_dir).iterdir()):
                tar.add(path, arcname=path.name)
        else:
            tar.add(entry_point, arcname=Path(entry_point).name)
    return buffer.getvalue()
