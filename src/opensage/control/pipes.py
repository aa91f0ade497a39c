"""Pipe mode: one FIFO per channel per epoch, `/opt/ml/input/data/<channel>_<epoch>`, fed live.

Each epoch is the channel's objects one after another, byte for byte (in key order, or shuffled
with `ShuffleConfig.Seed` drawn anew each epoch), gunzipped first with `CompressionType=Gzip`, each
wrapped as one RecordIO record with `RecordWrapperType=RecordIO`. The next epoch's FIFO is created
once the current one is done (read to the end or closed early by the program), and the one before
it is removed; epochs go on until the job ends, as on SageMaker.

The feeder never blocks for good: opening and writing are non-blocking with short waits, so a
program that stops reading (or a job being stopped) never holds a server thread.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import os
import select
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from opensage.control.staging import arrange, channel_objects
from opensage.errors import OpenSageError
from opensage.formats.errors import RecordError
from opensage.storage import ObjectStorage, S3Uri

T = TypeVar("T")

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
_WAIT = 0.05


class PipeFeeder:
    """Serves one channel's epochs into FIFOs under `data_dir` until `stop` is set."""

    def __init__(
        self,
        storage: ObjectStorage,
        channel: dict[str, Any],
        data_dir: Path,
        stop: threading.Event,
        first_epoch: int = 0,
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.storage = storage
        self.channel = channel
        self.name = str(channel["ChannelName"])
        self.data_dir = data_dir
        self.stop = stop
        self.epoch = first_epoch
        self.shard = shard
        self.error: str | None = None  # why the channel could not be fed: fails the job
        self.thread = threading.Thread(target=self._run, name=f"pipe-{self.name}", daemon=True)

    def start(self) -> PipeFeeder:
        """Create the first FIFO now, before the program starts: programs detect Pipe mode by
        looking for `<channel>_0` (the XGBoost container does)."""
        path = self.fifo(self.epoch)
        if not path.exists():
            os.mkfifo(path, 0o666)
        self.thread.start()
        return self

    def fifo(self, epoch: int) -> Path:
        return self.data_dir / f"{self.name}_{epoch}"

    def _run(self) -> None:
        try:
            source = self._source()
            if source["S3DataType"] == "AugmentedManifestFile":
                manifest = S3Uri.parse(source["S3Uri"])
                lines = [ln for ln in self.storage.get_bytes(manifest).splitlines() if ln.strip()]
                epochs: Callable[[int], Iterator[bytes]] = lambda epoch: self._augmented(  # noqa: E731
                    manifest, self._order(lines, epoch)
                )
            else:
                objects = sorted((uri for uri, _ in channel_objects(self.storage, source)), key=str)
                epochs = lambda epoch: self._objects(self._order(objects, epoch))  # noqa: E731
            while not self.stop.is_set():
                self._serve(self.epoch, epochs(self.epoch))
                with contextlib.suppress(FileNotFoundError):
                    if self.epoch > 0:
                        self.fifo(self.epoch - 1).unlink()
                self.epoch += 1
        except (OpenSageError, RecordError, ValueError, OSError) as exc:
            self.error = f"ClientError: Channel '{self.name}' (Pipe mode): {exc}"
            log.warning("pipe feeder for channel %s: %s", self.name, self.error)
        except Exception as exc:  # a feeder bug must not take the supervisor down
            log.exception("pipe feeder for channel %s failed", self.name)
            self.error = f"InternalServerError: feeding channel '{self.name}' failed: {exc}"

    def _objects(self, objects: list[S3Uri]) -> Iterator[bytes]:
        for uri in objects:
            yield from self._chunks(uri)

    def _augmented(self, manifest: S3Uri, lines: list[bytes]) -> Iterator[bytes]:
        """Each line's `AttributeNames` values in order; `-ref` values are objects' bytes."""
        from opensage.formats.manifest import augmented_manifest_stream

        source = self._source()
        yield from augmented_manifest_stream(
            b"\n".join(lines) + b"\n",
            source.get("AttributeNames") or [],
            lambda uri: self.storage.get_bytes(S3Uri.parse(uri)),
            record_io=self.channel.get("RecordWrapperType") == "RecordIO",
            source=str(manifest),
        )

    def _source(self) -> dict[str, Any]:
        return dict(self.channel["DataSource"]["S3DataSource"])

    def _order(self, items: list[T], epoch: int) -> list[T]:
        return arrange(items, self.channel.get("ShuffleConfig"), epoch, self.shard)

    def _serve(self, epoch: int, chunks: Iterator[bytes]) -> None:
        path = self.fifo(epoch)
        if not path.exists():
            os.mkfifo(path, 0o666)
        fd = self._open_writer(path)
        if fd is None:
            return
        try:
            for chunk in chunks:
                if not self._write(fd, chunk):
                    return  # the program closed the pipe early, or the job ends
        finally:
            os.close(fd)

    def _open_writer(self, path: Path) -> int | None:
        """Wait for the program to open the FIFO (opening for writing fails until it does)."""
        while not self.stop.is_set():
            try:
                return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            self.stop.wait(_WAIT)
        return None

    def _write(self, fd: int, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            if self.stop.is_set():
                return False
            _, writable, _ = select.select([], [fd], [], _WAIT)
            if not writable:
                continue
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                continue
            except BrokenPipeError:
                return False
            view = view[written:]
        return True

    def _chunks(self, uri: S3Uri) -> Iterator[bytes]:
        with self.storage.open(uri) as raw:
            stream: BinaryIO = raw
            if self.channel.get("CompressionType") == "Gzip":
                stream = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
            if self.channel.get("RecordWrapperType") == "RecordIO":
                from opensage.formats.recordio import encode_record

                yield encode_record(stream.read())
                return
            while chunk := stream.read(_CHUNK):
                yield chunk


def pipe_channels(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's channels delivered in Pipe mode (a channel's InputMode overrides the job's)."""
    default = request["AlgorithmSpecification"]["TrainingInputMode"]
    return [
        c for c in request.get("InputDataConfig", []) if (c.get("InputMode") or default) == "Pipe"
    ]


def next_epoch(data_dir: Path, channel: str) -> int:
    """Where a re-attached feeder resumes: the newest FIFO left on disk (re-served whole)."""
    epochs = [
        int(p.name.rsplit("_", 1)[1])
        for p in data_dir.glob(f"{channel}_*")
        if p.name.rsplit("_", 1)[1].isdigit()
    ]
    return max(epochs, default=0)
