"""`opensage images load|list|rm`: the local image store, without a server or a Docker daemon.

$ opensage images load my-algo.tar
Loaded my-algo:1 (sha256:3f1c2a9b8e7d)
$ opensage images list
REPOSITORY:TAG  IMAGE ID      SIZE     ENTRYPOINT
my-algo:1       3f1c2a9b8e7d  41.2 MB  /usr/bin/python3 /app/main.py

The store lives under OPENSAGE_HOME (the server's), which the server reads on every request:
an image loaded here is usable by the next CreateTrainingJob or CreateModel.
"""

from __future__ import annotations

from pathlib import Path

from opensage.cli.tables import table
from opensage.images import ImageError, ImageStore, ReferenceError, load
from opensage.settings import Settings


def store() -> ImageStore:
    return ImageStore(Settings.from_env().images_root)


def load_images(path: str, name: str | None) -> None:
    try:
        images = load(store(), Path(path), name)
    except (ImageError, ReferenceError) as exc:
        raise SystemExit(f"opensage: cannot load {path}: {exc}") from None
    for image in images:
        names = ", ".join(image.names) or "(no name)"
        print(f"Loaded {names} ({_short(image.id)})")


def list_images() -> None:
    rows = []
    for image in store().images():
        for name in image.names or ("<none>",):
            command = " ".join([*image.entrypoint, *image.cmd])
            rows.append([name, _short(image.id), _size(image.size), command])
    table(["REPOSITORY:TAG", "IMAGE ID", "SIZE", "ENTRYPOINT"], sorted(rows))


def remove_images(references: list[str]) -> None:
    images = store()
    for reference in references:
        try:
            removed = images.remove(reference)
        except (ImageError, ReferenceError) as exc:
            raise SystemExit(f"opensage: {exc}") from None
        print(f"Untagged {reference}" + (f"; deleted {len(removed)} blobs" if removed else ""))


def _short(digest: str) -> str:
    return "sha256:" + digest.removeprefix("sha256:")[:12]


def _size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    value, unit = size / 1000, "kB"
    for larger in ("MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, larger
    return f"{value:.1f} {unit}"
